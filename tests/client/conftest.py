"""kafka_client suite: every broker-facing test runs against Apache Kafka 4.x
(jars from Maven, started once per session) and against kafka-core's broker
(also once per session), through the parametrized ``kafka`` fixture."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from kafka_bench.apache_kafka import ApacheKafka, ensure_jars
from kafka_bench.kafka_core_broker import KafkaCoreBroker

# The Apache Kafka half of every parametrized test is an interop test (`-m "not interop"` leaves
# it out); the kafka-core half stays in the fast loop.
BROKERS = [pytest.param("apache", marks=pytest.mark.interop), "kafka-core"]


class BrokerHandle:
    """What the tests need of a broker: its address, a restart, and which APIs it answers."""

    def __init__(self, kind: str, server: Any) -> None:
        self.kind = kind
        self.server = server
        self.versions: dict[int, tuple[int, int]] = {}

    @property
    def bootstrap(self) -> str:
        return self.server.bootstrap  # type: ignore[no-any-return]

    def restart(self) -> None:
        if self.kind == "apache":
            self.server.stop()
            self.server.start()
        else:
            self.server.restart()

    def supports(self, api_key: int) -> bool:
        return api_key in self.versions


def _probe(handle: BrokerHandle) -> None:
    import asyncio

    from kafka_client.conn import BrokerConnection

    async def go() -> None:
        host, port = handle.bootstrap.split(":")
        c = BrokerConnection(host, int(port))
        await c.connect()
        handle.versions = dict(c.broker_versions)
        c.close()

    asyncio.run(go())


@pytest.fixture(scope="session")
def apache_kafka() -> Iterator[BrokerHandle]:
    ensure_jars()  # ./dev test installs a JDK and Maven: a failure here is a real error
    k = ApacheKafka(heap="512m", extra={"num.partitions": "1", "auto.create.topics.enable": "true"})
    k.start()
    h = BrokerHandle("apache", k)
    _probe(h)
    yield h
    k.cleanup()


@pytest.fixture(scope="session")
def core_broker() -> Iterator[BrokerHandle]:
    # no initial rebalance delay (as Kafka's own test configs): groups form as soon as members join
    b = KafkaCoreBroker(settings={"num.partitions": "1", "auto.create.topics.enable": "true",
                                  "group.initial.rebalance.delay.ms": "0"})
    b.start()  # our own broker not starting is a failure, never a skip
    h = BrokerHandle("kafka-core", b)
    _probe(h)
    yield h
    b.cleanup()


@pytest.fixture(scope="session", params=BROKERS)
def kafka(request: pytest.FixtureRequest) -> BrokerHandle:
    return request.getfixturevalue("apache_kafka" if request.param == "apache" else "core_broker")  # type: ignore[no-any-return]


@pytest.fixture
def bootstrap(kafka: BrokerHandle) -> str:
    return kafka.bootstrap


def require_api(kafka: BrokerHandle, api_key: int, what: str) -> None:
    if not kafka.supports(api_key):
        pytest.skip(f"{kafka.kind} broker does not advertise {what} (api {api_key}) yet")


def make_topic(bootstrap: str, name: str | None = None, partitions: int = 1,
               config: dict[str, str] | None = None) -> str:
    from kafka_client import AdminClient, NewTopic

    name = name or f"t-{uuid.uuid4().hex[:10]}"
    with AdminClient(bootstrap) as admin:
        admin.create_topics([NewTopic(name, partitions, 1, config or {})], raise_on_error=True)
        # Apache Kafka's brokers learn new topics asynchronously: wait until every
        # partition has a leader, as a careful client would
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            meta = admin.describe_topics([name]).get(name)
            if meta is not None and meta.num_partitions == partitions and all(
                    p.leader >= 0 for p in meta.partitions.values()):
                break
            time.sleep(0.1)
    return name


@pytest.fixture
def new_topic(bootstrap: str, request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    """Factory: new_topic(partitions=1, config=None) -> a fresh topic name."""
    base = request.node.name.replace("[", "-").replace("]", "").replace("_", "-")[:40]

    def make(partitions: int = 1, config: dict[str, str] | None = None) -> str:
        return make_topic(bootstrap, f"{base}-{uuid.uuid4().hex[:6]}", partitions, config)

    return make
