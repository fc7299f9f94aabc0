"""Crash loop (issue 16): kill -9 the broker again and again under acks=all produce load, then
check that every acknowledged record is still there.

    python benches/system/bench_crash_loop.py [--cycles 100] [--partitions 4] [--run-s 0.4-1.2]
                                              [--rate 20000] [--out FILE]

Each cycle: a confluent-kafka producer (acks=all, idempotent, linger 2 ms) sends unique values
(about --rate a second)
to a topic of the broker started with ``log.flush.interval.messages=1``; after a random 0.4-1.2 s
the broker gets SIGKILL mid-load, the producer's outstanding messages fail (not acknowledged),
and the broker is started again on the same data: the time from start to a listening port is the
cycle's recovery time.  At the end a consumer reads every partition from offset 0 and each
acknowledged value is looked up.  lost must be 0; duplicates (a retry whose first attempt was
written before the kill: at-least-once) are allowed and counted.

Prints and writes one JSON line: cycles, records acked, found, lost, duplicates, recovery seconds
(median, max).  tests/broker/test_crash_loop.py runs it for 10 cycles in the suite."""

from __future__ import annotations

import argparse
import json
import random
import shutil
import signal
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
for _sub in ("src", "python"):  # a checkout that is not pip-installed: the in-tree packages
    if str(ROOT / _sub) not in sys.path:
        sys.path.insert(0, str(ROOT / _sub))

from kafka_bench.kafka_core_broker import KafkaCoreBroker  # noqa: E402

TOPIC = "crash-loop"


def _create_topic(bootstrap: str, partitions: int) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})   # kept alive until the result
    admin.create_topics([NewTopic(TOPIC, num_partitions=partitions, replication_factor=1)])[TOPIC].result(30)


def _cycle(b: KafkaCoreBroker, n: int, run_s: float, rate: int, acked: set[bytes]) -> int:
    """Produce about rate records/s until the broker is killed run_s seconds in; the values
    acknowledged go to acked.  Returns how many were sent."""
    from confluent_kafka import Producer

    p = Producer({"bootstrap.servers": b.bootstrap, "acks": "all", "enable.idempotence": True,
                  "linger.ms": 2, "message.timeout.ms": 1500, "socket.timeout.ms": 1000, "log_level": 0})
    lock = threading.Lock()

    def delivered(err: Any, msg: Any) -> None:
        if err is None:
            with lock:
                acked.add(msg.value())

    killer = threading.Timer(run_s, b.kill)
    killer.start()
    sent, t0 = 0, time.monotonic()
    while b.proc is not None or sent == 0:
        if sent > rate * (time.monotonic() - t0):
            p.poll(0.001)
            continue
        try:
            p.produce(TOPIC, b"c%d-%d" % (n, sent), on_delivery=delivered)
            sent += 1
        except BufferError:
            p.poll(0.01)
        p.poll(0)
    killer.join()
    p.flush(10)   # what was outstanding fails: the broker is gone
    return sent


def _read_back(bootstrap: str, partitions: int) -> list[bytes]:
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "crash-loop-check", "enable.auto.commit": False})
    ends = {i: c.get_watermark_offsets(TopicPartition(TOPIC, i), timeout=30)[1] for i in range(partitions)}
    c.assign([TopicPartition(TOPIC, i, 0) for i in range(partitions)])
    values: list[bytes] = []
    pos = dict.fromkeys(ends, 0)
    deadline = time.monotonic() + 120
    while any(pos[i] < ends[i] for i in ends) and time.monotonic() < deadline:
        for m in c.consume(10000, 1.0):
            if m.error():
                raise RuntimeError(f"consumer error: {m.error()}")
            values.append(m.value())
            pos[m.partition()] = m.offset() + 1
    c.close()
    return values


def run(cycles: int, partitions: int = 4, run_s: tuple[float, float] = (0.4, 1.2), rate: int = 20_000,
        data_dir: Path | None = None, seed: int = 16) -> dict[str, Any]:
    rng = random.Random(seed)
    own = data_dir is None
    d = data_dir or Path(tempfile.mkdtemp(prefix="crash-loop-"))
    b = KafkaCoreBroker(data_dir=d, settings={"log.flush.interval.messages": "1"})
    b.start()
    acked: set[bytes] = set()
    recovery: list[float] = []
    sent = 0
    try:
        _create_topic(b.bootstrap, partitions)
        for n in range(cycles):
            sent += _cycle(b, n, rng.uniform(*run_s), rate, acked)
            t = time.monotonic()
            b.start(timeout=120)
            recovery.append(time.monotonic() - t)
        values = _read_back(b.bootstrap, partitions)
    finally:
        b.stop(signal.SIGTERM)
        if own:
            shutil.rmtree(d, ignore_errors=True)
    found = set(values)
    return {"cycles": cycles, "partitions": partitions, "sent": sent, "acked": len(acked),
            "found": len(found & acked), "lost": len(acked - found), "duplicates": len(values) - len(found),
            "records_in_log": len(values), "recovery_s_median": round(statistics.median(recovery), 3),
            "recovery_s_max": round(max(recovery), 3)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cycles", type=int, default=100)
    ap.add_argument("--partitions", type=int, default=4)
    ap.add_argument("--run-s", default="0.4-1.2", help="seconds of load before each kill: LOW-HIGH")
    ap.add_argument("--rate", type=int, default=20_000, help="records/s offered (acks=all)")
    ap.add_argument("--out", type=Path)
    a = ap.parse_args()
    lo, hi = (float(x) for x in a.run_s.split("-"))
    t = time.monotonic()
    res = run(a.cycles, a.partitions, (lo, hi), a.rate)
    res["wall_s"] = round(time.monotonic() - t, 1)
    line = json.dumps(res)
    print(line)
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        with open(a.out, "a") as f:
            f.write(line + "\n")
    sys.exit(0 if res["lost"] == 0 else 1)


if __name__ == "__main__":
    main()
