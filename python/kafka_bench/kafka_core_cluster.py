"""N kafka-core brokers on one ZooKeeper, each ``python -m kafka_cli broker`` on its own
loopback port and data folder, for tests, benchmarks and ``kafka-core cluster up``:
kafka_broker.testing's ``EmbeddedCluster`` with the CLI's broker (``KafkaCoreBroker``) on a
ZooKeeper the caller started."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from kafka_broker.testing import EmbeddedBroker, EmbeddedCluster

from .kafka_core_broker import KafkaCoreBroker


class KafkaCoreCluster(EmbeddedCluster):
    """Brokers 1..n with ``zookeeper.connect=<zk_connect>``.  ``settings`` go to every broker.
    Unlike ``EmbeddedCluster``, ``with`` only starts the brokers: call ``wait_registered()``
    where a test needs every broker to know the others (a test of start-up itself does not)."""

    BROKER: ClassVar[type[EmbeddedBroker]] = KafkaCoreBroker

    def __init__(self, n: int, zk_connect: str, *, data_dir: str | Path | None = None,
                 settings: dict[str, str] | None = None, racks: list[str] | None = None) -> None:
        super().__init__(n, zk_connect, data_dir=data_dir, settings=settings, racks=racks)

    def __enter__(self) -> KafkaCoreCluster:
        try:
            self.start()
        except BaseException:
            self.cleanup()      # the brokers that did start must not outlive a failed start
            raise
        return self
