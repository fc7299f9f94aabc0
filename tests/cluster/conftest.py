"""ZooKeeper-mode cluster suite: one ZooKeeper for the whole session, a fresh chroot per test.

Fixtures:
- ``zookeeper`` (session): a running ``kafka_bench.zookeeper.ZooKeeper`` (``.connect`` is
  ``"127.0.0.1:PORT"``, ``.port``, ``.stop()``).
- ``zk_chroot``: ``"127.0.0.1:PORT/test-<hex>"``, a connect string whose chroot exists and no
  other test uses; removed after the test.  Give it as ``zookeeper.connect`` to every broker of
  one cluster.
- ``zk_client``: a started ``KazooClient`` on ``zk_chroot`` (paths are relative to the chroot).
- ``apache_zk_cluster``: three Apache Kafka 3.9 brokers in ZooKeeper mode on ``zk_chroot``
  (``kafka_bench.apache_kafka_zk.ApacheKafkaZkCluster``); a test that takes it is an interop
  test (tests/conftest.py marks it).  Other sizes: ``ApacheKafkaZkCluster(n, zk_chroot)``.
- ``cluster``: three kafka-core brokers on ``zk_chroot`` with ``faultkit.CLUSTER_SETTINGS``,
  registered (``kafka_bench.kafka_core_cluster.KafkaCoreCluster``).
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator

import pytest
from kafka_bench.apache_kafka_zk import ApacheKafkaZkCluster, split_chroot
from kafka_bench.kafka_core_cluster import KafkaCoreCluster
from kafka_bench.zookeeper import ZooKeeper
from kazoo.client import KazooClient
from kazoo.exceptions import KazooException


@pytest.fixture(scope="session")
def zookeeper() -> Iterator[ZooKeeper]:
    with ZooKeeper() as zk:
        yield zk


@pytest.fixture
def zk_chroot(zookeeper: ZooKeeper) -> Iterator[str]:
    chroot = f"/test-{uuid.uuid4().hex[:12]}"
    admin = KazooClient(zookeeper.connect, timeout=5)
    admin.start(timeout=10)
    try:
        admin.ensure_path(chroot)   # a client on a missing chroot works but warns
        yield zookeeper.connect + chroot
        with contextlib.suppress(KazooException):   # best effort: the next test has its own chroot
            admin.delete(chroot, recursive=True)
    finally:
        admin.stop()
        admin.close()


@pytest.fixture
def zk_client(zk_chroot: str) -> Iterator[KazooClient]:
    client = KazooClient(zk_chroot, timeout=5)
    client.start(timeout=10)
    yield client
    client.stop()
    client.close()


@pytest.fixture
def apache_zk_cluster(zk_chroot: str) -> Iterator[ApacheKafkaZkCluster]:
    assert split_chroot(zk_chroot)[1]
    with ApacheKafkaZkCluster(3, zk_chroot) as cluster:
        yield cluster


@pytest.fixture
def cluster(zk_chroot: str) -> Iterator[KafkaCoreCluster]:
    from .faultkit import CLUSTER_SETTINGS

    with KafkaCoreCluster(3, zk_chroot, settings=CLUSTER_SETTINGS) as c:
        c.wait_registered()
        yield c
