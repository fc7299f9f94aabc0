"""Interop both ways with confluent-kafka (librdkafka) and the Java client (console tools):
what one produces the other consumes byte-exactly, and keys map to the same partitions."""

from __future__ import annotations

import time

import pytest
from kafka_bench import apache_kafka as ak
from kafka_client import Producer, partition_for_key

from .helpers import consume, flat

pytestmark = pytest.mark.interop

ck = pytest.importorskip("confluent_kafka")

RECORDS = [(b"key-%d" % i, bytes(range(256))[i % 7:] * (i % 5 + 1), [("h", b"%d" % i), ("e", b"")])
           for i in range(200)]


def _ck_consume(bootstrap: str, topic: str, n: int, partitions: int = 1) -> list:
    # assign(), not subscribe(): no group coordinator needed.
    c = ck.Consumer({"bootstrap.servers": bootstrap, "group.id": f"ck-{topic}", "auto.offset.reset": "earliest",
                     "enable.auto.commit": False})
    c.assign([ck.TopicPartition(topic, p, ck.OFFSET_BEGINNING) for p in range(partitions)])
    out = []
    deadline = time.monotonic() + 30
    while len(out) < n and time.monotonic() < deadline:
        m = c.poll(0.5)
        if m is None or m.error():
            continue
        out.append(m)
    c.close()
    return out


@pytest.mark.parametrize("codec", ["none", "gzip", "snappy", "lz4", "zstd"])
def test_ours_to_confluent(bootstrap: str, new_topic, codec: str) -> None:  # type: ignore[no-untyped-def]
    topic = new_topic(3)
    with Producer(bootstrap, compression_type=codec, linger_ms=10) as p:
        for k, v, h in RECORDS:
            p.send(topic, v, key=k, headers=h, timestamp_ms=1_700_000_000_000)
        p.flush()
    msgs = _ck_consume(bootstrap, topic, len(RECORDS), 3)
    got = {m.key(): (m.value(), m.headers(), m.partition(), m.timestamp()[1]) for m in msgs}
    assert len(got) == len(RECORDS)
    for k, v, h in RECORDS:
        value, headers, part, ts = got[k]
        assert value == v and headers == h and ts == 1_700_000_000_000
        assert part == partition_for_key(k, 3)


@pytest.mark.parametrize("codec", ["none", "gzip", "snappy", "lz4", "zstd"])
def test_confluent_to_ours(bootstrap: str, new_topic, codec: str) -> None:  # type: ignore[no-untyped-def]
    topic = new_topic(3)
    p = ck.Producer({"bootstrap.servers": bootstrap, "compression.type": codec, "partitioner": "murmur2_random",
                     "linger.ms": 5})
    for k, v, h in RECORDS:
        p.produce(topic, v, k, headers=h, timestamp=1_700_000_000_000)
    assert p.flush(30) == 0
    by_p = consume(bootstrap, topic, len(RECORDS), partitions=3)
    want = {k: (v, h) for k, v, h in RECORDS}
    n = 0
    for part, recs in by_p.items():
        for r in recs:
            assert (r.value, r.headers) == want[r.key]
            assert r.timestamp == 1_700_000_000_000
            assert part == partition_for_key(r.key, 3), "murmur2_random must agree with our murmur2"
            n += 1
    assert n == len(RECORDS)


def test_null_key_and_value_roundtrip(bootstrap: str, new_topic) -> None:  # type: ignore[no-untyped-def]
    topic = new_topic()
    with Producer(bootstrap) as p:
        p.send(topic, None, key=None).result(30)
        p.send(topic, b"", key=b"").result(30)
    msgs = _ck_consume(bootstrap, topic, 2)
    assert [(m.key(), m.value()) for m in msgs] == [(None, None), (b"", b"")]


@pytest.fixture(scope="module")
def java_ok() -> None:
    try:
        ak.ensure_jars()
        ak.java()
    except Exception as exc:  # pragma: no cover
        pytest.skip(f"no Java tools: {exc}")


@pytest.mark.slow
def test_java_console_producer_to_ours(java_ok, bootstrap: str, new_topic) -> None:  # type: ignore[no-untyped-def]
    topic = new_topic(4)
    lines = b"".join(b"k%d\tvalue-%d\n" % (i, i) for i in range(50))
    ak.java_main(ak.CONSOLE_PRODUCER, ["--bootstrap-server", bootstrap, "--topic", topic,
                                       "--property", "parse.key=true", "--property", "key.separator=\t",
                                       "--compression-codec", "lz4"], input=lines, timeout=120)
    by_p = consume(bootstrap, topic, 50, partitions=4)
    recs = flat(by_p)
    assert sorted(r.value for r in recs) == sorted(b"value-%d" % i for i in range(50))
    for part, rs in by_p.items():
        for r in rs:
            assert partition_for_key(r.key, 4) == part, "Java's partitioner and ours must agree"


@pytest.mark.slow
def test_ours_to_java_console_consumer(java_ok, bootstrap: str, new_topic) -> None:  # type: ignore[no-untyped-def]
    topic = new_topic()
    with Producer(bootstrap, compression_type="snappy") as p:
        for i in range(30):
            p.send(topic, b"value-%d" % i, key=b"k%d" % i)
        p.flush()
    out = ak.java_main(ak.CONSOLE_CONSUMER, ["--bootstrap-server", bootstrap, "--topic", topic,
                                             "--partition", "0", "--offset", "earliest", "--max-messages", "30",
                                             "--property", "print.key=true", "--timeout-ms", "30000"],
                       timeout=120)
    lines = out.stdout.decode().strip().splitlines()
    assert lines == [f"k{i}\tvalue-{i}" for i in range(30)]
