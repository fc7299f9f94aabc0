"""The controller in process against a fake ZooKeeper: an election whose conditional state write
meets a newer znode version (the leader changed the ISR since the controller read it).

The controller rereads the state and must decide again from it (Kafka's controller retries the
partitions whose ZooKeeper update failed); before, it gave up, and a partition whose leader had
just died stayed led by the dead broker until some other event touched it."""

from __future__ import annotations

import asyncio
import uuid
from types import SimpleNamespace
from typing import Any

from kafka_broker.cluster import zk as Z
from kafka_broker.cluster.controller import Controller, TopicState
from kazoo.exceptions import BadVersionError

KEY = ("t", 0)


class FakeZk:
    """One partition state znode with a version; conditional sets check it."""

    def __init__(self, state: Z.LeaderIsr, version: int) -> None:
        self.data, self.version = state.encode(), version
        self.writes: list[Z.LeaderIsr] = []

    async def set(self, path: str, data: bytes, version: int = -1) -> Any:
        assert path == Z.partition_state_path(*KEY)
        if version not in (-1, self.version):
            raise BadVersionError()
        self.data, self.version = data, self.version + 1
        self.writes.append(Z.LeaderIsr.decode(data, self.version))
        return SimpleNamespace(version=self.version)

    async def get_or_none(self, path: str, watch: Any = None) -> Any:
        return self.data, SimpleNamespace(version=self.version)


def controller(zk: FakeZk, cached: Z.LeaderIsr, live: list[int]) -> Controller:
    ctl = Controller(zk, 2, "PLAINTEXT", {"unclean.leader.election.enable": False}, lambda _c: None)  # type: ignore[arg-type]
    ctl.active, ctl.epoch = True, 4
    ctl.topics = {"t": TopicState(uuid.uuid4(), {0: [1, 2, 3]})}
    ctl.brokers = {b: Z.BrokerInfo(b, {"PLAINTEXT": ("127.0.0.1", 9000 + b)}, {"PLAINTEXT": "PLAINTEXT"})
                   for b in live}
    ctl.states = {KEY: cached}
    return ctl


def test_a_leader_that_died_after_shrinking_the_isr_is_replaced() -> None:
    # Leader 1 shrank the ISR to [1, 2] (version 8) and was killed; the controller still holds version 7.
    zk = FakeZk(Z.LeaderIsr(1, 5, [1, 2], 3), version=8)
    cached = Z.LeaderIsr(1, 5, [1, 2, 3], 3)
    cached.zk_version = 7
    ctl = controller(zk, cached, live=[2, 3])
    asyncio.run(ctl._on_brokers_failed({1}))
    st = ctl.states[KEY]
    assert (st.leader, st.leader_epoch, st.isr) == (2, 6, [2]), f"partition still led by {st.leader}: {st}"
    assert zk.writes and zk.writes[-1].leader == 2


def test_an_offline_election_retries_after_a_conflict() -> None:
    zk = FakeZk(Z.LeaderIsr(3, 5, [3, 2], 3), version=8)
    cached = Z.LeaderIsr(3, 5, [3, 2, 1], 3)
    cached.zk_version = 7
    ctl = controller(zk, cached, live=[1, 2])
    changed = asyncio.run(ctl._elect_offline({KEY}))
    assert changed == [KEY]
    st = ctl.states[KEY]
    assert (st.leader, st.isr) == (2, [2]), st


def test_failover_drops_unregistered_brokers_from_the_isr() -> None:
    # The old controller (broker 1) died; leader 3 had not dropped it for lag yet.
    zk = FakeZk(Z.LeaderIsr(3, 2, [1, 3, 2], 1), version=4)
    cached = Z.LeaderIsr(3, 2, [1, 3, 2], 1)
    cached.zk_version = 4
    ctl = controller(zk, cached, live=[2, 3])
    asyncio.run(ctl._drop_dead_replicas())
    st = ctl.states[KEY]
    assert (st.leader, st.leader_epoch, st.isr) == (3, 3, [3, 2]), st
