"""The replica manager in process (a real Storage, a fake ZooKeeper and node): a leader's
conditional ISR write racing LeaderAndIsr requests of the same leader epoch.

Found by test_history: the controller, just elected after the old one paused, resends the state
it read (ISR [3, 2, 1], znode version v) while the leader's shrink to [3, 2] (version v+1) is in
flight; the leader then took the stale ISR and version and dropped its own write's result, so
ZooKeeper said [3, 2] forever while the leader believed [3, 2, 1] and never expanded it again.
Kafka's ``Partition.makeLeader`` skips a request whose partition epoch (the znode version) is
older than its own."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import kafka_protocol as kp
import pytest
from kafka_broker.cluster.replicas import ReplicaManager
from kafka_broker.log import Partition
from kafka_protocol.errors import ErrorCode as E

from tests.log.conftest import StorageHarness

TOPIC = "r"
LEADER_EPOCH = 3


class FakeZk:
    """Conditional sets wait until the test answers them; creates succeed at once."""

    def __init__(self) -> None:
        self.sets: list[tuple[str, bytes, int, asyncio.Future[Any]]] = []
        self.created: list[str] = []

    def set(self, path: str, data: bytes, version: int = -1) -> asyncio.Future[Any]:
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.sets.append((path, data, version, fut))
        return fut

    async def get_or_none(self, path: str, watch: Any = None) -> Any:
        return None

    def create(self, path: str, value: bytes = b"", **kw: Any) -> asyncio.Future[Any]:
        self.created.append(path)
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        fut.set_result(path)
        return fut


class FakeFetchers:
    def __init__(self) -> None:
        self.following: set[tuple[str, int]] = set()

    def add(self, p: Partition, leader: int, ep: tuple[str, int]) -> None:
        self.following.add((p.topic.name, p.index))

    def remove(self, p: Partition) -> None:
        self.following.discard((p.topic.name, p.index))

    def has(self, p: Partition) -> bool:
        return (p.topic.name, p.index) in self.following


class Node:
    def __init__(self, storage: Any) -> None:
        self.broker_id = 1
        self.storage = storage
        self.config = storage.config
        self.zk = FakeZk()
        self.fetchers = FakeFetchers()

    def on_leadership(self, p: Partition, leader: bool) -> None:
        pass

    async def topic_overrides(self, topic: str) -> dict[str, str]:
        return {}

    def endpoint_of(self, broker: int) -> tuple[str, int]:
        return ("127.0.0.1", 9000 + broker)


@pytest.fixture
def h(tmp_path: Path) -> Iterator[StorageHarness]:
    h = StorageHarness(tmp_path / "logs", replicated=True)
    h.open()
    yield h
    h.close()
    h.loop.close()


TOPIC_ID = uuid.uuid4()


def leader_and_isr(isr: list[int], partition_epoch: int, leader_epoch: int = LEADER_EPOCH, leader: int = 1) -> Any:
    R = kp.LeaderAndIsrRequest
    ps = R.LeaderAndIsrPartitionState(partition_index=0, controller_epoch=1, leader=leader, leader_epoch=leader_epoch,
                                      isr=isr, partition_epoch=partition_epoch, replicas=[1, 2, 3], is_new=False)
    return R(controller_id=2, controller_epoch=1, broker_epoch=0,
             topic_states=[R.LeaderAndIsrTopicState(topic_name=TOPIC, topic_id=TOPIC_ID, partition_states=[ps])],
             live_leaders=[R.LeaderAndIsrLiveLeader(broker_id=leader, host_name="127.0.0.1", port=9000 + leader)])


async def _lead(rm: ReplicaManager) -> Partition:
    resp = await rm.leader_and_isr(leader_and_isr([1, 2, 3], partition_epoch=5), 6)
    assert resp.topics[0].partition_errors[0].error_code == 0
    p = rm.storage.topics[TOPIC].partitions[0]
    assert p is not None and p.replication is not None and p.replication.is_leader
    return p


async def _shrink(rm: ReplicaManager, p: Partition, zk: FakeZk) -> asyncio.Future[Any]:
    rm._change_isr(p, [1, 2])
    await asyncio.sleep(0)
    assert len(zk.sets) == 1 and zk.sets[0][2] == 5, zk.sets
    return zk.sets[0][3]


def test_a_stale_leader_and_isr_during_an_isr_write_does_not_undo_it(h: StorageHarness) -> None:
    node = Node(h.storage)
    rm = ReplicaManager(node)  # type: ignore[arg-type]

    async def scenario() -> None:
        p = await _lead(rm)
        written = await _shrink(rm, p, node.zk)
        # the new controller resends the state it read before the shrink landed
        resp = await rm.leader_and_isr(leader_and_isr([1, 2, 3], partition_epoch=5), 6)
        assert resp.topics[0].partition_errors[0].error_code in (0, E.STALE_CONTROLLER_EPOCH)
        written.set_result(SimpleNamespace(version=6))
        await asyncio.sleep(0.1)
        rep = p.replication
        assert rep is not None and rep.is_leader
        assert (rep.isr, rep.zk_version) == ([1, 2], 6), "the ISR write's result was lost"
        assert node.zk.created, "no ISR change notification for the controller"

    h.run(scenario())


def test_a_leader_and_isr_older_than_the_leaders_isr_write_is_ignored(h: StorageHarness) -> None:
    node = Node(h.storage)
    rm = ReplicaManager(node)  # type: ignore[arg-type]

    async def scenario() -> None:
        p = await _lead(rm)
        (await _shrink(rm, p, node.zk)).set_result(SimpleNamespace(version=6))
        await asyncio.sleep(0)
        assert p.replication is not None and (p.replication.isr, p.replication.zk_version) == ([1, 2], 6)
        resp = await rm.leader_and_isr(leader_and_isr([1, 2, 3], partition_epoch=5), 6)
        assert resp.topics[0].partition_errors[0].error_code == E.STALE_CONTROLLER_EPOCH
        assert (p.replication.isr, p.replication.zk_version) == ([1, 2], 6)
        # a newer partition epoch at the same leader epoch still applies
        await rm.leader_and_isr(leader_and_isr([1, 2, 3], partition_epoch=7), 6)
        assert (p.replication.isr, p.replication.zk_version) == ([1, 2, 3], 7)

    h.run(scenario())
