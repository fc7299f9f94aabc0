"""Protocol-level fuzzing of a running kafka-core broker (issue 16): mutated request frames of
every api and version over many connections at once, with liveness checked as it goes.

    python benches/fuzz/fuzz_broker.py --frames 1000000 --connections 50

Frames: a valid request of a random api and version (kafka_protocol.testing.random_message, the
shapes real clients send) with 0-4 mutations (bit flips, byte overwrites, truncation, a size
prefix that lies) — about one in five left valid, so the broker also does real work (topics
created and deleted, groups joined, records appended).  Each connection sends without waiting
and drains whatever comes back; a connection the broker closes is reopened.  Every
``--check-every`` frames a fresh client must get metadata and a produced record back within 10 s.
At the end: frames sent, connections the broker closed, the broker's peak RSS, and whether it is
still alive and serving.  Exit 1 on a failed check.

``tests/fuzz/test_fuzz_replay.py::test_broker_survives_mutated_frames`` runs a short round of the
same in the suite.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import struct
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "python"), str(ROOT / "src")]


def frames(rng: random.Random) -> Any:
    """Endless (bytes) frames, size prefix included."""
    from kafka_protocol import encode_request
    from kafka_protocol.messages import REQUESTS
    from kafka_protocol.testing import random_message

    apis = sorted(REQUESTS.items())
    while True:
        key, cls = rng.choice(apis)
        v = rng.randint(cls.MIN_VERSION, cls.MAX_VERSION)
        try:
            frame = bytearray(encode_request(key, v, rng.randrange(1 << 31), "fuzz", random_message(cls, v, rng)))
        except Exception:  # noqa: BLE001 - a random message this version cannot carry
            continue
        if len(frame) > 1 << 20:
            continue
        for _ in range(rng.choice((0, 1, 1, 2, 3, 4))):
            op = rng.randrange(4)
            if op == 0:
                i = rng.randrange(4, len(frame))
                frame[i] ^= 1 << rng.randrange(8)
            elif op == 1:
                frame[rng.randrange(4, len(frame))] = rng.randrange(256)
            elif op == 2 and len(frame) > 12:
                del frame[rng.randrange(12, len(frame)):]
                struct.pack_into(">i", frame, 0, len(frame) - 4)
            else:
                struct.pack_into(">i", frame, 0, rng.choice((len(frame) - 4 + rng.randint(-8, 8),
                                                             rng.randrange(1 << 31), -rng.randrange(1 << 31))))
        yield bytes(frame)


async def _drain(reader: asyncio.StreamReader) -> None:
    try:
        while await reader.read(1 << 16):
            pass
    except (ConnectionError, OSError):
        pass


async def _connection(port: int, gen: Any, budget: list[int], stats: dict[str, int]) -> None:
    while budget[0] > 0:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            stats["connect_failures"] += 1
            await asyncio.sleep(0.05)
            continue
        drain = asyncio.ensure_future(_drain(reader))
        try:
            for _ in range(rng_len(stats)):
                if budget[0] <= 0 or drain.done():
                    break
                budget[0] -= 1
                writer.write(next(gen))
                stats["frames"] += 1
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        await asyncio.wait([drain], timeout=0.05)     # the broker's answer to the last frames, or its close
        if drain.done():
            stats["closed_by_broker"] += 1
        writer.close()
        drain.cancel()


async def _round(port: int, gen: Any, budget: list[int], stats: dict[str, int], connections: int) -> None:
    await asyncio.gather(*(_connection(port, gen, budget, stats) for _ in range(connections)))


def rng_len(stats: dict[str, int]) -> int:
    return 1 + stats["frames"] % 97        # frames per connection before it is reopened: 1..97


def check(bootstrap: str, n: int) -> float:
    """A fresh client's metadata and a record round trip; seconds it took."""
    from kafka_client import Consumer, Producer

    t0 = time.monotonic()
    topic = f"alive-{n}"
    with Producer(bootstrap, request_timeout_ms=10000) as p:
        md = p.send(topic, b"still-here").result(10)
    with Consumer(bootstrap_servers=bootstrap) as c:
        from kafka_client import TopicPartition
        tp = TopicPartition(topic, md.partition)
        c.assign([tp])
        c.seek(tp, md.offset)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            got = [r.value for rs in c.poll(0.5).values() for r in rs]
            if got:
                assert got[0] == b"still-here"
                return time.monotonic() - t0
    raise AssertionError("the produced record did not come back")


def run(bootstrap: str, port: int, total: int, connections: int, check_every: int, seed: int,
        pid: int | None = None) -> dict[str, Any]:
    from kafka_bench.procs import PeakRss

    rng = random.Random(seed)
    gen = frames(rng)
    stats = {"frames": 0, "closed_by_broker": 0, "connect_failures": 0}
    checks: list[float] = []
    peak = PeakRss(pid) if pid else None
    if peak:
        peak.__enter__()
    t0 = time.monotonic()
    try:
        done = 0
        while done < total:
            step = min(check_every, total - done)
            asyncio.run(_round(port, gen, [step], stats, connections))
            done += step
            checks.append(check(bootstrap, len(checks)))
    finally:
        if peak:
            peak.__exit__()
    return {**stats, "seconds": round(time.monotonic() - t0, 1), "checks": len(checks),
            "slowest_check_s": round(max(checks), 3) if checks else None,
            "peak_rss_mib": round(peak.peak / 2**20, 1) if peak else None}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, default=100_000)
    ap.add_argument("--connections", type=int, default=50)
    ap.add_argument("--check-every", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    from kafka_bench.kafka_core_broker import KafkaCoreBroker

    with KafkaCoreBroker(settings={"auto.create.topics.enable": "true"}) as b:
        assert b.proc is not None
        out = run(b.bootstrap, b.port, args.frames, args.connections, args.check_every, args.seed, b.proc.pid)
        out["alive"] = b.proc.poll() is None
        tail = [ln for ln in b.log_text().splitlines() if "Traceback" in ln or "ERROR" in ln]
        out["broker_error_lines"] = len(tail)
    print(json.dumps(out))
    sys.exit(0 if out["alive"] else 1)


if __name__ == "__main__":
    main()
