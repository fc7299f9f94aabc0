"""Awaited single operations (issue 11 §2): a latency-sensitive application sends one record and
waits for its acknowledgement before the next, or commits one offset and waits.

Each client does the same on the same broker and topic: ``warmup`` operations, then ``count``
timed ones; the figures are percentiles of the per-operation wall time in milliseconds.

- ``kc_aio_send``: ``await kafka_client.AIOProducer.send(...)``;
- ``kc_sync_send``: ``kafka_client.Producer.send(...).result()``;
- ``confluent_send``: confluent-kafka ``produce()`` then ``flush()``;
- ``aiokafka_send``: ``await aiokafka.AIOKafkaProducer.send_and_wait(...)``;
- ``kc_aio_commit`` / ``confluent_commit`` / ``aiokafka_commit``: one offset of an assigned
  partition committed and waited for (``AIOConsumer.commit``, ``Consumer.commit(asynchronous=
  False)``, ``AIOKafkaConsumer.commit``).

Producers use acks=all and linger 0 (each client's way of saying it).  Run as
``python -m kafka_bench.latency --bootstrap HOST:PORT`` for a JSON line, or through
``kafka-core bench`` (the ``latency`` scenario), which runs it on every system of the run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
import uuid
from collections.abc import Callable
from typing import Any

SENDERS = ("kc_aio_send", "kc_sync_send", "confluent_send", "aiokafka_send")
COMMITTERS = ("kc_aio_commit", "confluent_commit", "aiokafka_commit")


class Samples(list[float]):
    """Per-operation wall times (seconds), and the process CPU time the ``n`` timed operations
    used in all (every thread: librdkafka's and our I/O thread count)."""
    cpu = 0.0


def percentiles(samples: list[float]) -> dict[str, float]:
    """p50/p90/p99/max in milliseconds of samples in seconds; with ``Samples``, also the client
    process's CPU microseconds per operation (``cpu_us``): on a loaded machine the wall-time
    percentiles move with the neighbours, the CPU cost much less."""
    s = sorted(samples)
    q = statistics.quantiles(s, n=100, method="inclusive")
    out = {"n": len(s), "p50_ms": q[49] * 1e3, "p90_ms": q[89] * 1e3, "p99_ms": q[98] * 1e3,
           "max_ms": s[-1] * 1e3}
    if isinstance(samples, Samples):
        out["cpu_us"] = samples.cpu / len(s) * 1e6
    return out


def _timed(n: int, op: Callable[[int], Any]) -> Samples:
    out = Samples()
    clock = time.perf_counter
    c0 = time.process_time()
    for i in range(n):
        t0 = clock()
        op(i)
        out.append(clock() - t0)
    out.cpu = time.process_time() - c0
    return out


async def _atimed(n: int, op: Callable[[int], Any]) -> Samples:
    out = Samples()
    clock = time.perf_counter
    c0 = time.process_time()
    for i in range(n):
        t0 = clock()
        await op(i)
        out.append(clock() - t0)
    out.cpu = time.process_time() - c0
    return out


VALUE = b"x" * 100


def kc_aio_send(bootstrap: str, topic: str, count: int, warmup: int) -> list[float]:
    from kafka_client import AIOProducer

    async def main() -> list[float]:
        async with AIOProducer(bootstrap, acks="all", linger_ms=0) as p:
            await _atimed(warmup, lambda i: p.send(topic, VALUE, partition=0))
            return await _atimed(count, lambda i: p.send(topic, VALUE, partition=0))
    return _run(main())


def kc_sync_send(bootstrap: str, topic: str, count: int, warmup: int) -> list[float]:
    from kafka_client import Producer

    p = Producer(bootstrap, acks="all", linger_ms=0)
    try:
        _timed(warmup, lambda i: p.send(topic, VALUE, partition=0).result())
        return _timed(count, lambda i: p.send(topic, VALUE, partition=0).result())
    finally:
        p.close()


def confluent_send(bootstrap: str, topic: str, count: int, warmup: int) -> list[float]:
    import confluent_kafka as ck

    p = ck.Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 0})

    def op(i: int) -> None:
        p.produce(topic, VALUE, partition=0)
        p.flush()
    _timed(warmup, op)
    return _timed(count, op)


def aiokafka_send(bootstrap: str, topic: str, count: int, warmup: int) -> list[float]:
    import aiokafka  # type: ignore[import-untyped]

    async def main() -> list[float]:
        p = aiokafka.AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=0)
        await p.start()
        try:
            await _atimed(warmup, lambda i: p.send_and_wait(topic, VALUE, partition=0))
            return await _atimed(count, lambda i: p.send_and_wait(topic, VALUE, partition=0))
        finally:
            await p.stop()
    return _run(main())


async def _aio_commits(c: Any, tp: Any, count: int, warmup: int) -> list[float]:
    """One offset of ``tp`` committed and awaited at a time on a started asyncio consumer (kafka_client
    or aiokafka: the same assign/commit calls)."""
    c.assign([tp])
    await _atimed(warmup, lambda i: c.commit({tp: i + 1}))
    return await _atimed(count, lambda i: c.commit({tp: warmup + i + 1}))


def kc_aio_commit(bootstrap: str, topic: str, count: int, warmup: int) -> list[float]:
    from kafka_client import AIOConsumer, TopicPartition

    async def main() -> list[float]:
        async with AIOConsumer(bootstrap_servers=bootstrap, group_id=f"lat-{uuid.uuid4().hex[:8]}",
                               enable_auto_commit=False) as c:
            return await _aio_commits(c, TopicPartition(topic, 0), count, warmup)
    return _run(main())


def confluent_commit(bootstrap: str, topic: str, count: int, warmup: int) -> list[float]:
    import confluent_kafka as ck

    c = ck.Consumer({"bootstrap.servers": bootstrap, "group.id": f"lat-{uuid.uuid4().hex[:8]}",
                     "enable.auto.commit": False})
    try:
        c.assign([ck.TopicPartition(topic, 0, 0)])

        def op(i: int) -> None:
            c.commit(offsets=[ck.TopicPartition(topic, 0, i + 1)], asynchronous=False)
        _timed(warmup, op)
        return _timed(count, lambda i: op(warmup + i))
    finally:
        c.close()


def aiokafka_commit(bootstrap: str, topic: str, count: int, warmup: int) -> list[float]:
    import aiokafka
    from aiokafka.structs import TopicPartition as ATP  # type: ignore[import-untyped]

    async def main() -> list[float]:
        c = aiokafka.AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=f"lat-{uuid.uuid4().hex[:8]}",
                                      enable_auto_commit=False)
        await c.start()
        try:
            return await _aio_commits(c, ATP(topic, 0), count, warmup)
        finally:
            await c.stop()
    return _run(main())


def _run(coro: Any) -> Any:
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


def create_topic(bootstrap: str) -> str:
    from confluent_kafka.admin import AdminClient, NewTopic

    name = f"latency-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})   # held until the result
    admin.create_topics([NewTopic(name, 1, 1)])[name].result(30)
    return name


def run(bootstrap: str, count: int = 2000, warmup: int = 200, which: tuple[str, ...] = SENDERS + COMMITTERS,
        topic: str | None = None, rounds: int = 1) -> dict[str, dict[str, Any]]:
    """Every client in ``which`` against one broker on one topic, interleaved: each of ``rounds``
    rounds runs every client once (A, B, C, A, B, C: a neighbour's burst on this shared machine
    then hits every client, not one).  Each figure is the median over the rounds of that round's
    percentile; ``rounds`` keeps every round's p50/p99/cpu."""
    topic = topic or create_topic(bootstrap)
    fns = globals()
    per: dict[str, list[dict[str, float]]] = {name: [] for name in which}
    for _ in range(rounds):
        for name in which:
            per[name].append(percentiles(fns[name](bootstrap, topic, count, warmup)))
    out: dict[str, dict[str, Any]] = {}
    for name, rs in per.items():
        row: dict[str, Any] = {k: statistics.median(r[k] for r in rs) for k in rs[0]}
        row["rounds"] = [{k: round(r[k], 4) for k in ("p50_ms", "p99_ms", "cpu_us") if k in r} for r in rs]
        out[name] = row
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m kafka_bench.latency", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--count", type=int, default=2000)
    ap.add_argument("--warmup", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=1, help="interleaved rounds; figures are medians of rounds")
    ap.add_argument("--only", help="comma-separated subset of: " + ",".join(SENDERS + COMMITTERS))
    args = ap.parse_args(argv)
    which = tuple(args.only.split(",")) if args.only else SENDERS + COMMITTERS
    print(json.dumps(run(args.bootstrap, args.count, args.warmup, which, rounds=args.rounds)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
