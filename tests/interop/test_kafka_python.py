"""kafka-python against kafka-core: its version probe must land on a
modern broker (v2 batches, idempotence), round trips in every codec."""

from __future__ import annotations

import time

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic

from .records import CODECS, make_records


def consume(bootstrap: str, topic: str, n: int, partition: int = 0, timeout: float = 30) -> list:
    c = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                      auto_offset_reset="earliest")
    c.assign([TopicPartition(topic, partition)])
    c.seek_to_beginning()
    got = []
    deadline = time.monotonic() + timeout
    while len(got) < n and time.monotonic() < deadline:
        for msgs in c.poll(timeout_ms=500).values():
            got.extend(msgs)
    c.close()
    return got


def test_version_probe_sees_a_4x_broker(broker):
    p = KafkaProducer(bootstrap_servers=broker.bootstrap)
    version = p.config["api_version"]
    p.close()
    assert version >= (4, 0), version


@pytest.mark.parametrize("codec", CODECS)
def test_round_trip_every_codec(broker, topic, codec):
    records = make_records(200, seed=7)
    p = KafkaProducer(bootstrap_servers=broker.bootstrap,
                      compression_type=None if codec == "none" else codec, linger_ms=5)
    futures = [p.send(topic, value=v, key=k, headers=h, partition=0) for k, v, h in records]
    p.flush(30)
    offsets = [f.get(10).offset for f in futures]
    p.close()
    assert offsets == list(range(200))
    got = consume(broker.bootstrap, topic, 200)
    assert [(m.key, m.value, list(m.headers)) for m in got] == [(k, v, h) for k, v, h in records]


def test_admin_topics(broker, topic_name):
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    admin.create_topics([NewTopic(topic_name, num_partitions=2, replication_factor=1)])
    assert topic_name in admin.list_topics()
    desc = admin.describe_topics([topic_name])
    assert len(desc[0]["partitions"]) == 2
    admin.delete_topics([topic_name])
    deadline = time.monotonic() + 10
    while topic_name in admin.list_topics() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert topic_name not in admin.list_topics()
    admin.close()


def test_offsets_for_times(broker, topic):
    p = KafkaProducer(bootstrap_servers=broker.bootstrap)
    base = 1_600_000_000_000
    for i in range(10):
        p.send(topic, value=b"v%d" % i, timestamp_ms=base + i * 10, partition=0)
    p.flush(30)
    p.close()
    c = KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=None)
    tp = TopicPartition(topic, 0)
    res = c.offsets_for_times({tp: base + 35})
    assert res[tp].offset == 4 and res[tp].timestamp == base + 40
    assert c.beginning_offsets([tp])[tp] == 0
    assert c.end_offsets([tp])[tp] == 10
    c.close()
