"""The ``kafka_core_cluster`` pytest fixture (kafka_broker.testing, issue 15) as an application's
tests would use it, with each client: three brokers on ZooKeeper, a topic replicated on all
three, records produced with acks=all, the partition's leader stopped or killed, every record
read back from the survivors.

ZooKeeper is found the two ways a user gives it: ``KAFKA_CORE_ZOOKEEPER`` (a running server,
each cluster in a chroot of its own; one server for this module) and
``KAFKA_CORE_ZOOKEEPER_CLASSPATH`` (the cluster starts its own from those jars)."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from typing import Any

import pytest
from kafka_bench import zookeeper as zkjars
from kafka_broker.testing import EmbeddedCluster
from kafka_broker.testing.cluster import CLASSPATH_ENV, ZOOKEEPER_ENV

# A hang fails the test with pytest-timeout's stack dump instead of stalling the suite.
pytestmark = [pytest.mark.interop, pytest.mark.timeout(300)]

N = 200


@pytest.fixture(scope="module")
def shared_zookeeper() -> Iterator[str]:
    with zkjars.ZooKeeper() as zk:
        yield zk.connect


@pytest.fixture(autouse=True)
def _zookeeper_env(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(CLASSPATH_ENV, raising=False)
    monkeypatch.delenv(ZOOKEEPER_ENV, raising=False)
    if request.node.name.startswith("test_cluster_starts_its_own_zookeeper"):
        monkeypatch.setenv(CLASSPATH_ENV, zkjars.classpath())
    else:
        monkeypatch.setenv(ZOOKEEPER_ENV, request.getfixturevalue("shared_zookeeper"))


def _replicated_topic(cluster: EmbeddedCluster, name: str) -> int:
    """Create ``name`` (1 partition, replication factor 3) and wait until every broker has it
    with all three replicas in sync; return the partition's leader."""
    from kafka_client import AdminClient, NewTopic
    from kafka_client.errors import UnknownTopicOrPartitionError

    with AdminClient(cluster.bootstrap) as admin:
        admin.create_topics([NewTopic(name, 1, replication_factor=3)])
    deadline = time.monotonic() + 20
    while True:
        leaders = set()
        for b in cluster.brokers.values():
            with AdminClient(b.bootstrap) as admin:
                try:
                    meta = admin.describe_topics([name])[name]
                except UnknownTopicOrPartitionError:     # this broker has not heard of it yet
                    continue
            p = meta.partitions.get(0)
            if p is not None and len(p.isr) == 3:
                leaders.add(p.leader)
        if len(leaders) == 1 and -1 not in leaders:
            return leaders.pop()
        assert time.monotonic() < deadline, f"topic {name} not replicated on every broker"
        time.sleep(0.2)


def _values() -> list[bytes]:
    return [f"record-{i}".encode() for i in range(N)]


def test_fixture_gives_a_registered_three_broker_cluster(kafka_core_cluster: EmbeddedCluster) -> None:
    from kafka_broker.testing.cluster import metadata_broker_ids

    assert sorted(kafka_core_cluster.brokers) == [1, 2, 3]
    assert kafka_core_cluster.zookeeper_server is None          # the shared server, a chroot of its own
    assert kafka_core_cluster.zk_connect.startswith(os.environ[ZOOKEEPER_ENV] + "/kafka-core-")
    for b in kafka_core_cluster.brokers.values():
        assert metadata_broker_ids(b.port) == {1, 2, 3}


def test_confluent_kafka(kafka_core_cluster: EmbeddedCluster) -> None:
    import confluent_kafka as ck

    leader = _replicated_topic(kafka_core_cluster, "orders")
    c = ck.Consumer({"bootstrap.servers": kafka_core_cluster.bootstrap, "group.id": "app",
                     "auto.offset.reset": "earliest"})
    c.subscribe(["orders"])
    deadline = time.monotonic() + 30
    while not c.assignment():               # in the group (its coordinator and offsets topic exist)
        assert time.monotonic() < deadline, "no assignment"
        c.poll(0.2)
    p = ck.Producer({"bootstrap.servers": kafka_core_cluster.bootstrap, "acks": "all"})
    for v in _values():
        p.produce("orders", v)
    assert p.flush(30) == 0
    kafka_core_cluster.stop_broker(leader)          # a controlled shutdown moves the leadership
    got: list[bytes] = []
    deadline = time.monotonic() + 60
    while len(got) < N and time.monotonic() < deadline:
        m = c.poll(0.5)
        if m is not None and m.error() is None:
            got.append(m.value())
    c.close()
    assert got == _values()


def test_kafka_python(kafka_core_cluster: EmbeddedCluster) -> None:
    import kafka

    leader = _replicated_topic(kafka_core_cluster, "orders")
    c = kafka.KafkaConsumer("orders", bootstrap_servers=kafka_core_cluster.bootstrap.split(","), group_id="app",
                            auto_offset_reset="earliest")
    deadline = time.monotonic() + 30
    while not c.assignment():
        assert time.monotonic() < deadline, "no assignment"
        c.poll(timeout_ms=200)
    p = kafka.KafkaProducer(bootstrap_servers=kafka_core_cluster.bootstrap.split(","), acks="all")
    futs = [p.send("orders", v) for v in _values()]
    p.flush(30)
    assert all(f.get(10).offset >= 0 for f in futs)
    p.close()
    kafka_core_cluster.stop_broker(leader)
    got: list[bytes] = []
    deadline = time.monotonic() + 60
    while len(got) < N and time.monotonic() < deadline:
        for recs in c.poll(timeout_ms=500).values():
            got += [r.value for r in recs]
    c.close()
    assert got == _values()


def test_aiokafka(kafka_core_cluster: EmbeddedCluster) -> None:
    import aiokafka

    leader = _replicated_topic(kafka_core_cluster, "orders")

    async def step(what: str, aw: Any, timeout: float = 60) -> Any:
        # Every await is bounded: a hang fails naming the step instead of stalling the suite.
        try:
            return await asyncio.wait_for(aw, timeout)
        except TimeoutError:
            raise AssertionError(f"aiokafka: {what} did not finish in {timeout} s") from None

    async def go() -> list[bytes]:
        c = aiokafka.AIOKafkaConsumer("orders", bootstrap_servers=kafka_core_cluster.bootstrap, group_id="app",
                                      auto_offset_reset="earliest")
        await step("consumer start", c.start())
        got: list[bytes] = []
        try:
            deadline = time.monotonic() + 30
            while not c.assignment():
                assert time.monotonic() < deadline, "no assignment"
                await asyncio.sleep(0.1)
            p = aiokafka.AIOKafkaProducer(bootstrap_servers=kafka_core_cluster.bootstrap, acks="all")
            await step("producer start", p.start())
            try:
                for v in _values():
                    await step("send", p.send("orders", v))
                await step("flush", p.flush())
            finally:
                await step("producer stop", p.stop())
            await step("stop leader", asyncio.get_running_loop().run_in_executor(
                None, kafka_core_cluster.stop_broker, leader), 120)
            while len(got) < N:
                m = await step(f"getone after {len(got)} records", c.getone())
                got.append(m.value)
            # The stopped broker may have been the group's coordinator too. aiokafka's stop() does
            # not look a dead coordinator up again (its lookup task is already stopped, as in
            # aiokafka#659 and KAFKA-19357), so its last auto-commit would retry forever. A commit
            # while running rediscovers the coordinator: that failover is part of what is shown.
            await step("commit after failover", c.commit())
        finally:
            await step("consumer stop", c.stop())
        return got

    assert asyncio.run(go()) == _values()


def test_kafka_client_leader_killed(kafka_core_cluster: EmbeddedCluster) -> None:
    """kill -9 of the leader: acks=all records survive on the in-sync followers; the killed
    broker restarts from its folder and rejoins."""
    from kafka_client import Consumer, Producer

    leader = _replicated_topic(kafka_core_cluster, "orders")
    with Consumer("orders", bootstrap_servers=kafka_core_cluster.bootstrap, group_id="app",
                  auto_offset_reset="earliest") as c:
        deadline = time.monotonic() + 30
        while not c.assignment():
            assert time.monotonic() < deadline, "no assignment"
            c.poll(0.2)
        with Producer(kafka_core_cluster.bootstrap, acks="all") as p:
            for f in [p.send("orders", v) for v in _values()]:
                f.result(30)
        kafka_core_cluster.kill(leader)
        got: list[bytes] = []
        deadline = time.monotonic() + 60
        while len(got) < N and time.monotonic() < deadline:
            for recs in c.poll(1.0).values():
                got += [r.value for r in recs if r.value is not None]
    assert got == _values()
    kafka_core_cluster.restart(leader)
    kafka_core_cluster.wait_registered()


def test_cluster_starts_its_own_zookeeper_from_the_classpath() -> None:
    from kafka_client import Consumer, Producer

    with EmbeddedCluster(3) as cluster:
        assert cluster.zookeeper_server is not None and cluster.zookeeper_server.proc is not None
        _replicated_topic(cluster, "orders")
        with Producer(cluster.bootstrap, acks="all") as p:
            p.send("orders", b"one").result(30)
        with Consumer("orders", bootstrap_servers=cluster.bootstrap, group_id="app",
                      auto_offset_reset="earliest") as c:
            got: list[bytes] = []
            deadline = time.monotonic() + 30
            while not got and time.monotonic() < deadline:
                for recs in c.poll(1.0).values():
                    got += [r.value for r in recs if r.value is not None]
        zk = cluster.zookeeper_server
        data_dir = cluster.data_dir
    assert got == [b"one"]
    assert zk.proc is None and not data_dir.exists()     # ZooKeeper stopped, the folder removed
