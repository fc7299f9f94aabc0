"""Real kafka-core brokers for an application's tests: no Docker, a temporary folder.

::

    from kafka_broker.testing import EmbeddedBroker

    with EmbeddedBroker() as broker:          # started, on a free loopback port
        producer = confluent_kafka.Producer({"bootstrap.servers": broker.bootstrap})
        ...                                   # stopped, its folder removed

With pytest the ``kafka_core_broker`` fixture (this module is a pytest plugin, registered by
kafka-core's ``pytest11`` entry point) gives each test a fresh broker the same way;
``kafka_core_broker_session`` shares one broker across a session.

The broker is ``python -m kafka_broker`` in a child process: the same broker as in production,
speaking the Kafka protocol to any client, with settings that suit tests (``TEST_SETTINGS``:
topics auto-created with one partition, groups formed without the initial rebalance delay, one
``__consumer_offsets`` partition); ``settings=`` overrides or adds any broker key.  It starts in
a fraction of a second (``benches/system/bench_embedded_start.py`` measures it against Apache
Kafka's).  No JVM is involved.

``EmbeddedCluster(n)`` (and the ``kafka_core_cluster`` fixture: three brokers) is a replicated
cluster of such brokers on ZooKeeper, which is Java and not shipped: see testing/cluster.py for
where it finds one (``KAFKA_CORE_ZOOKEEPER``, ``KAFKA_CORE_ZOOKEEPER_CLASSPATH``).

Modules: broker.py (``EmbeddedBroker``), cluster.py (``EmbeddedCluster``), zookeeper.py
(``EmbeddedZooKeeper``), process.py.
"""

from __future__ import annotations

from collections.abc import Iterator

from .broker import TEST_SETTINGS, EmbeddedBroker, package_paths
from .cluster import EmbeddedCluster
from .process import free_port, wait_for_port
from .zookeeper import EmbeddedZooKeeper

__all__ = ["TEST_SETTINGS", "EmbeddedBroker", "EmbeddedCluster", "EmbeddedZooKeeper", "free_port",
           "package_paths", "wait_for_port"]


# -- the pytest plugin ------------------------------------------------------------------

try:
    import pytest
except ImportError:  # pragma: no cover - the plugin needs pytest; EmbeddedBroker does not
    pass
else:
    @pytest.fixture
    def kafka_core_broker() -> Iterator[EmbeddedBroker]:
        """A fresh kafka-core broker for this test (``.bootstrap`` is its address)."""
        with EmbeddedBroker() as b:
            yield b

    @pytest.fixture(scope="session")
    def kafka_core_broker_session() -> Iterator[EmbeddedBroker]:
        """One kafka-core broker shared by the whole session."""
        with EmbeddedBroker() as b:
            yield b

    @pytest.fixture
    def kafka_core_cluster() -> Iterator[EmbeddedCluster]:
        """Three kafka-core brokers on ZooKeeper for this test, every broker knowing the others
        (``.bootstrap`` lists them all; ``.kill(i)`` / ``.restart(i)`` for broker i)."""
        with EmbeddedCluster(3) as c:
            yield c
