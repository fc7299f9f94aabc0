"""AdminClient against both brokers."""

from __future__ import annotations

import time
import uuid

import pytest
from kafka_client import (
    AdminClient,
    AlterConfigOp,
    ConfigResource,
    ConfigResourceType,
    Consumer,
    NewTopic,
    Producer,
)
from kafka_client.errors import TopicAlreadyExistsError, UnknownTopicOrPartitionError  # type: ignore[attr-defined]

from .conftest import require_api


def test_topics_lifecycle(bootstrap: str) -> None:
    name = f"adm-{uuid.uuid4().hex[:8]}"
    with AdminClient(bootstrap) as a:
        assert a.create_topics([NewTopic(name, 3, 1)]) == {name: None}
        assert name in a.list_topics()
        res = a.create_topics([NewTopic(name, 3, 1)])
        assert isinstance(res[name], TopicAlreadyExistsError) and not res[name].retriable
        with pytest.raises(TopicAlreadyExistsError):
            a.create_topics([NewTopic(name, 3, 1)], raise_on_error=True)
        meta = a.describe_topics([name])[name]
        assert meta.num_partitions == 3 and all(p.leader >= 0 for p in meta.partitions.values())
        assert a.delete_topics([name]) == {name: None}
        assert name not in a.list_topics()
        assert isinstance(a.delete_topics([name], wait=False)[name], UnknownTopicOrPartitionError)


def test_create_partitions(kafka, bootstrap: str, new_topic) -> None:  # type: ignore[no-untyped-def]
    require_api(kafka, 37, "CreatePartitions")
    topic = new_topic(2)
    with AdminClient(bootstrap) as a:
        assert a.create_partitions({topic: 5}) == {topic: None}
        # Apache Kafka propagates metadata asynchronously: wait for it as clients do
        deadline = time.monotonic() + 15
        while a.describe_topics([topic])[topic].num_partitions != 5 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert a.describe_topics([topic])[topic].num_partitions == 5
        assert a.create_partitions({topic: 3})[topic] is not None  # cannot shrink


def _retention_once_settled(a, res, until, timeout: float = 10) -> str:  # type: ignore[no-untyped-def]
    """retention.ms as described once ``until`` holds (or the timeout passed): Apache Kafka's brokers
    apply a config change from the metadata log a moment after the AlterConfigs response;
    kafka-core applies it before answering, so there the first read settles."""
    deadline = time.monotonic() + timeout
    while True:
        value = a.describe_configs([res], keys=["retention.ms"])[res]["retention.ms"].value
        if until(value) or time.monotonic() > deadline:
            return value  # type: ignore[no-any-return]
        time.sleep(0.1)


def test_configs(kafka, bootstrap: str, new_topic) -> None:  # type: ignore[no-untyped-def]
    require_api(kafka, 32, "DescribeConfigs")
    topic = new_topic(1, {"retention.ms": "123456"})
    res = ConfigResource(ConfigResourceType.TOPIC, topic)
    with AdminClient(bootstrap) as a:
        cfg = a.describe_configs([res])[res]
        assert cfg["retention.ms"].value == "123456"
        if kafka.supports(44):
            assert a.incremental_alter_configs({res: [AlterConfigOp("retention.ms", "654321")]}) == {res: None}
            assert _retention_once_settled(a, res, until=lambda v: v == "654321") == "654321"
            a.incremental_alter_configs({res: [AlterConfigOp("retention.ms", op="delete")]}, raise_on_error=True)
            assert _retention_once_settled(a, res, until=lambda v: v != "654321") != "654321"


def test_describe_cluster(bootstrap: str) -> None:
    with AdminClient(bootstrap) as a:
        d = a.describe_cluster()
        assert d.brokers and d.brokers[0].port > 0
        assert f"{d.brokers[0].host}:{d.brokers[0].port}" == bootstrap


def test_groups_and_offsets(kafka, bootstrap: str, new_topic) -> None:  # type: ignore[no-untyped-def]
    require_api(kafka, 16, "ListGroups")
    require_api(kafka, 8, "OffsetCommit")
    topic = new_topic(2)
    group = f"g-{uuid.uuid4().hex[:8]}"
    with Producer(bootstrap) as p:
        for i in range(6):
            p.send(topic, b"x", partition=i % 2)
        p.flush()
    from kafka_client import TopicPartition

    tp0, tp1 = TopicPartition(topic, 0), TopicPartition(topic, 1)
    with Consumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False) as c:
        c.assign([tp0, tp1])
        c.commit({tp0: 2, tp1: 3})
    with AdminClient(bootstrap) as a:
        assert group in {g.group_id for g in a.list_groups()}
        offs = a.list_group_offsets(group)
        assert {tp: o.offset for tp, o in offs.items()} == {tp0: 2, tp1: 3}
        a.alter_group_offsets(group, {tp0: 1})
        assert a.list_group_offsets(group, [tp0])[tp0].offset == 1
        if kafka.supports(15):
            d = a.describe_groups([group])[group]
            assert d.group_id == group and d.members == []
        if kafka.supports(42):
            assert a.delete_groups([group]) == {group: None}
            assert group not in {g.group_id for g in a.list_groups()}
