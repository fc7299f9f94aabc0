"""Interop suite: real third-party Kafka clients against a kafka-core broker
started for the session (free port, temporary data folder)."""

from __future__ import annotations

import uuid

import pytest
from kafka_bench.kafka_core_broker import KafkaCoreBroker


@pytest.fixture(scope="session")
def broker():
    with KafkaCoreBroker(settings={"num.partitions": "1", "auto.create.topics.enable": "true"}) as b:
        yield b


@pytest.fixture
def topic_name(request) -> str:
    base = request.node.name.replace("[", "-").replace("]", "").replace("_", "-")[:60]
    return f"{base}-{uuid.uuid4().hex[:6]}"


def create_topic(bootstrap: str, name: str, partitions: int = 1, config: dict[str, str] | None = None) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    fut = admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1,
                                        config=config or {})], operation_timeout=10)
    fut[name].result(timeout=15)


@pytest.fixture
def topic(broker, topic_name) -> str:
    create_topic(broker.bootstrap, topic_name, 1)
    return topic_name


@pytest.fixture
def topic3(broker, topic_name) -> str:
    create_topic(broker.bootstrap, topic_name, 3)
    return topic_name
