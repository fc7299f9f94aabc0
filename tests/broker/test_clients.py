"""Smoke tests with real clients (the full matrix lives in tests/interop)."""

from __future__ import annotations

import time
import uuid

import pytest

pytestmark = pytest.mark.interop


def test_confluent_idempotent_compressed_round_trip(broker):
    ck = pytest.importorskip("confluent_kafka")
    from confluent_kafka.admin import AdminClient, NewTopic

    topic = f"ck-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])[topic].result(15)
    sent = {}
    for codec in ("none", "gzip", "lz4", "zstd", "snappy"):
        p = ck.Producer({"bootstrap.servers": broker.bootstrap, "enable.idempotence": True,
                         "compression.type": codec, "linger.ms": 5})
        for i in range(300):
            key = f"{codec}-{i}".encode()
            sent[key] = (b"v" * (i % 50)) + key
            p.produce(topic, key=key, value=sent[key], partition=i % 3)
        assert p.flush(20) == 0
    c = ck.Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "unused", "enable.auto.commit": False})
    c.assign([ck.TopicPartition(topic, i, 0) for i in range(3)])
    got = {}
    deadline = time.monotonic() + 30
    while len(got) < len(sent) and time.monotonic() < deadline:
        for m in c.consume(1000, 0.5):
            assert m.error() is None, m.error()
            got[m.key()] = m.value()
    c.close()
    assert got == sent


def test_kafka_python_round_trip(broker):
    kafka = pytest.importorskip("kafka")
    topic = f"kp-{uuid.uuid4().hex[:8]}"
    p = kafka.KafkaProducer(bootstrap_servers=broker.bootstrap, compression_type="gzip")
    for i in range(200):
        p.send(topic, key=b"%d" % i, value=b"value-%d" % i)
    p.flush()
    p.close()
    c = kafka.KafkaConsumer(topic, bootstrap_servers=broker.bootstrap, auto_offset_reset="earliest",
                            consumer_timeout_ms=2000, group_id=None)
    values = [m.value for m in c]
    c.close()
    assert values == [b"value-%d" % i for i in range(200)]
