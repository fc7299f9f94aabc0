"""Client benchmarks (not asserted): kafka_client vs confluent-kafka vs aiokafka vs
kafka-python against the same broker, in the same run, reported as ratios.

The broker is Apache Kafka from Maven by default (KC_BENCH_BROKER=kafka-core for
kafka-core's own); one is started for the module.  Each round moves a fixed
number of messages (KC_BENCH_CLIENT_N, default 20000; use 200000 for a real run).

  producer throughput: N messages of 200 B and 1 KiB, acks=1, linger.ms=5, batches of
                       up to 1 MB for every client (librdkafka's default batch.size).  kafka_client uses ``Producer.produce`` (no future per
                       record, as confluent's produce); ``kafka_client-aio`` uses
                       ``AIOProducer.produce``; aiokafka and kafka-python return futures.
  produce latency:     one message at a time (acks=1, linger.ms=0) at a fixed rate;
                       p50/p99/p99.9 in extra_info.
  consumer throughput: read N pre-produced 200 B messages from offset 0.

At the end the module prints and writes (benches/results/client-ratios-<broker>.json)
kafka_client's rate divided by each other client's (latency: other p99 / ours).
"""

from __future__ import annotations

import asyncio
import inspect
import json
import os
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]

N = int(os.environ.get("KC_BENCH_CLIENT_N", "20000"))
BATCH = int(os.environ.get("KC_BENCH_BATCH_SIZE", "1000000"))
LAT_N = int(os.environ.get("KC_BENCH_LATENCY_N", "1000"))
LAT_RATE = int(os.environ.get("KC_BENCH_LATENCY_RATE", "500"))  # messages per second for the latency run
ROUNDS = int(os.environ.get("KC_BENCH_ROUNDS", "3"))
CLIENTS = ["kafka_client", "kafka_client-aio", "confluent", "aiokafka", "kafka-python"]
CONSUMERS = ["kafka_client", "kafka_client-sync", "confluent", "aiokafka", "kafka-python"]

# (bench, size) -> client -> messages/s (best round) or latency figures
RESULTS: dict[str, dict[str, Any]] = {}


@pytest.fixture(scope="module")
def broker():  # type: ignore[no-untyped-def]
    kind = os.environ.get("KC_BENCH_BROKER", "apache")
    if kind == "kafka-core":
        from kafka_bench.kafka_core_broker import KafkaCoreBroker

        b = KafkaCoreBroker(settings={"num.partitions": "1"})
    else:
        from kafka_bench.apache_kafka import ApacheKafka

        b = ApacheKafka(heap="1g")
    b.start()
    yield b.bootstrap
    b.cleanup()
    _report(kind)


def _report(kind: str) -> None:
    ratios: dict[str, dict[str, float]] = {}
    for bench, by_client in RESULTS.items():
        ours = by_client.get("kafka_client")
        if ours is None:
            continue
        row: dict[str, float] = {}
        for client, v in by_client.items():
            if client == "kafka_client":
                continue
            if bench.startswith("latency"):
                # > 1: our p99 is lower (better) than theirs
                row[client] = v["p99_ms"] / ours["p99_ms"] if ours["p99_ms"] else float("nan")
            else:
                row[client] = ours / v if v else float("nan")
        ratios[bench] = row
    out = {"broker": kind, "messages": N, "latency_messages": LAT_N, "latency_rate": LAT_RATE,
           "results": RESULTS, "ratios_kafka_client_over": ratios}
    path = ROOT / "benches" / "results" / f"client-ratios-{kind}.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(out, indent=1))
    lines = [f"\nkafka_client vs others on {kind} (N={N}); throughput: ours/theirs, latency: their p99/our p99"]
    for bench, row in ratios.items():
        lines.append(f"  {bench:<22} " + "  ".join(f"{c}={r:.2f}x" for c, r in row.items()))
    for bench, by_client in RESULTS.items():
        if bench.startswith("latency"):
            for c, v in by_client.items():
                lines.append(f"  latency {c:<18} p50={v['p50_ms']:.3f} p99={v['p99_ms']:.3f} p99.9={v['p999_ms']:.3f} ms")
        else:
            lines.append(f"  {bench:<22} " + "  ".join(f"{c}={v:,.0f}/s" for c, v in by_client.items()))
    sys.stderr.write("\n".join(lines) + "\n")


def _topic(bootstrap: str) -> str:
    from kafka_client import AdminClient, NewTopic

    name = f"bench-{uuid.uuid4().hex[:8]}"
    with AdminClient(bootstrap) as a:
        a.create_topics([NewTopic(name, 1, 1)], raise_on_error=True)
    return name


def _produce(client: str, bootstrap: str, topic: str, n: int, size: int) -> None:
    value = b"x" * size
    if client == "kafka_client":
        from kafka_client import Producer

        with Producer(bootstrap, acks=1, linger_ms=5, batch_size=BATCH) as p:
            produce = p.produce
            for _ in range(n):
                produce(topic, value)
            p.flush()
    elif client == "kafka_client-aio":
        from kafka_client import AIOProducer
        from kafka_client.errors import BufferFullError

        async def go0() -> None:
            async with AIOProducer(bootstrap, acks=1, linger_ms=5, batch_size=BATCH) as p:
                await p.partitions_for(topic)
                produce = p.produce
                for i in range(n):
                    while True:
                        try:
                            produce(topic, value)
                            break
                        except BufferFullError:
                            await asyncio.sleep(0.001)
                    if i & 1023 == 0:
                        await asyncio.sleep(0)  # let the sender run
                await p.flush()

        asyncio.run(go0())
    elif client == "confluent":
        import confluent_kafka as ck

        p = ck.Producer({"bootstrap.servers": bootstrap, "acks": 1, "linger.ms": 5, "batch.size": BATCH})
        for _ in range(n):
            while True:
                try:
                    p.produce(topic, value)
                    break
                except BufferError:
                    p.poll(0.01)
            p.poll(0)
        p.flush(60)
    elif client == "aiokafka":
        import aiokafka

        async def go() -> None:
            p = aiokafka.AIOKafkaProducer(bootstrap_servers=bootstrap, acks=1, linger_ms=5, max_batch_size=BATCH)
            await p.start()
            futs = [await p.send(topic, value) for _ in range(n)]
            await asyncio.gather(*futs)
            await p.stop()

        asyncio.run(go())
    else:
        import kafka

        p = kafka.KafkaProducer(bootstrap_servers=bootstrap, acks=1, linger_ms=5, batch_size=BATCH)
        for _ in range(n):
            p.send(topic, value)
        p.flush()
        p.close()


def _rate(benchmark: Any, n: int) -> float:
    return n / benchmark.stats.stats.min


@pytest.mark.parametrize("size", [200, 1024])
@pytest.mark.parametrize("client", CLIENTS)
def test_producer_throughput(benchmark, broker: str, client: str, size: int) -> None:  # type: ignore[no-untyped-def]
    topic = _topic(broker)
    benchmark.extra_info.update(messages=N, size=size)
    benchmark.pedantic(_produce, args=(client, broker, topic, N, size), rounds=ROUNDS, iterations=1)
    RESULTS.setdefault(f"produce-{size}B", {})[client] = _rate(benchmark, N)


async def _paced(send: Callable[[], Any]) -> list[float]:
    """LAT_N calls of send (a plain function or one returning an awaitable) at LAT_RATE a second:
    the seconds each call took."""
    lat: list[float] = []
    gap = 1 / LAT_RATE
    nxt = time.perf_counter()
    for _ in range(LAT_N):
        t0 = time.perf_counter()
        r = send()
        if inspect.isawaitable(r):
            await r
        lat.append(time.perf_counter() - t0)
        nxt += gap
        await asyncio.sleep(max(0.0, nxt - time.perf_counter()))
    return lat


def _latency(client: str, bootstrap: str, topic: str) -> list[float]:
    value = b"x" * 200
    if client in ("kafka_client", "kafka_client-aio"):
        from kafka_client import AIOProducer

        async def go() -> list[float]:
            async with AIOProducer(bootstrap, acks=1, linger_ms=0) as p:
                await p.send(topic, value)
                return await _paced(lambda: p.send(topic, value))

        return asyncio.run(go())
    if client == "confluent":
        import confluent_kafka as ck

        cp = ck.Producer({"bootstrap.servers": bootstrap, "acks": 1, "linger.ms": 0})

        def produce_one() -> None:
            cp.produce(topic, value)
            cp.flush()

        produce_one()
        return asyncio.run(_paced(produce_one))
    if client == "aiokafka":
        import aiokafka

        async def go2() -> list[float]:
            ap = aiokafka.AIOKafkaProducer(bootstrap_servers=bootstrap, acks=1, linger_ms=0)
            await ap.start()
            await ap.send_and_wait(topic, value)
            try:
                return await _paced(lambda: ap.send_and_wait(topic, value))
            finally:
                await ap.stop()

        return asyncio.run(go2())
    import kafka

    kp = kafka.KafkaProducer(bootstrap_servers=bootstrap, acks=1, linger_ms=0)
    kp.send(topic, value).get(30)
    try:
        return asyncio.run(_paced(lambda: kp.send(topic, value).get(30)))
    finally:
        kp.close()


@pytest.mark.parametrize("client", [c for c in CLIENTS if c != "kafka_client-aio"])
def test_produce_latency(benchmark, broker: str, client: str) -> None:  # type: ignore[no-untyped-def]
    topic = _topic(broker)
    result: list[float] = []

    def run() -> None:
        result[:] = _latency(client, broker, topic)

    benchmark.pedantic(run, rounds=1, iterations=1)
    s = sorted(result)
    figures = {"p50_ms": s[len(s) // 2] * 1000, "p99_ms": s[int(len(s) * 0.99)] * 1000,
               "p999_ms": s[min(len(s) - 1, int(len(s) * 0.999))] * 1000}
    benchmark.extra_info.update(messages=LAT_N, rate=LAT_RATE, **figures)
    RESULTS.setdefault("latency-200B", {})[client] = figures


def _consume(client: str, bootstrap: str, topic: str, n: int) -> None:
    if client == "kafka_client":
        from kafka_client import AIOConsumer, TopicPartition

        async def go() -> None:
            async with AIOConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                   max_poll_records=10000) as c:
                c.assign([TopicPartition(topic, 0)])
                got = 0
                while got < n:
                    for recs in (await c.getmany(timeout_ms=1000)).values():
                        got += len(recs)

        asyncio.run(go())
    elif client == "kafka_client-sync":
        from kafka_client import Consumer, TopicPartition

        with Consumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest", max_poll_records=10000) as c:
            c.assign([TopicPartition(topic, 0)])
            got = 0
            while got < n:
                for recs in c.poll(1.0).values():
                    got += len(recs)
    elif client == "confluent":
        import confluent_kafka as ck

        c = ck.Consumer({"bootstrap.servers": bootstrap, "group.id": uuid.uuid4().hex,
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
        c.assign([ck.TopicPartition(topic, 0, ck.OFFSET_BEGINNING)])
        got = 0
        while got < n:
            got += len([m for m in c.consume(min(1000, n - got), 1.0) if not m.error()])
        c.close()
    elif client == "aiokafka":
        import aiokafka

        async def go2() -> None:
            c = aiokafka.AIOKafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                          enable_auto_commit=False)
            await c.start()
            tp = aiokafka.TopicPartition(topic, 0)
            c.assign([tp])
            await c.seek_to_beginning(tp)
            got = 0
            while got < n:
                for recs in (await c.getmany(timeout_ms=1000, max_records=10000)).values():
                    got += len(recs)
            await c.stop()

        asyncio.run(go2())
    else:
        import kafka

        c = kafka.KafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False)
        tp = kafka.TopicPartition(topic, 0)
        c.assign([tp])
        c.seek_to_beginning(tp)
        got = 0
        while got < n:
            for recs in c.poll(1000, max_records=10000).values():
                got += len(recs)
        c.close()


@pytest.fixture(scope="module")
def filled_topic(broker: str) -> str:
    topic = _topic(broker)
    _produce("kafka_client", broker, topic, N, 200)
    return topic


@pytest.mark.parametrize("client", CONSUMERS)
def test_consumer_throughput(benchmark, broker: str, filled_topic: str, client: str) -> None:  # type: ignore[no-untyped-def]
    benchmark.extra_info.update(messages=N, size=200)
    benchmark.pedantic(_consume, args=(client, broker, filled_topic, N), rounds=ROUNDS, iterations=1)
    RESULTS.setdefault("consume-200B", {})[client] = _rate(benchmark, N)
