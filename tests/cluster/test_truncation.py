"""A leader that wrote what its followers never fetched, then died: when it returns it drops that
divergent tail (OffsetForLeaderEpoch truncation) and takes the new leader's records instead, so no
offset ever holds two different records (KIP-101/279)."""

from __future__ import annotations

import os
import signal
import time

import pytest
from kafka_bench.kafka_core_cluster import KafkaCoreCluster

from .faultkit import wait_for as _wait

ck = pytest.importorskip("confluent_kafka")
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402

pytestmark = pytest.mark.interop


def _leader_isr(bootstrap: str) -> tuple[int, list[int]]:
    """Leader and ISR of div-0 as the brokers' metadata caches say.  Each call may ask another
    broker, and one that has not applied the controller's UpdateMetadata yet answers without the
    partition (as in Kafka, whose caches are updated the same way): ask again."""
    deadline = time.monotonic() + 30
    while True:
        t = AdminClient({"bootstrap.servers": bootstrap}).list_topics("div", timeout=10).topics["div"]
        p = t.partitions.get(0)
        if p is not None:
            return p.leader, sorted(p.isrs)
        if time.monotonic() > deadline:
            raise AssertionError(f"no broker lists div-0: {t.error}")
        time.sleep(0.2)




def _read_all(bootstrap: str, expect: int) -> dict[int, bytes]:
    c = ck.Consumer({"bootstrap.servers": bootstrap, "group.id": "r", "enable.auto.commit": False})
    c.assign([ck.TopicPartition("div", 0, 0)])
    out: dict[int, bytes] = {}
    deadline = time.monotonic() + 30
    while len(out) < expect and time.monotonic() < deadline:
        for m in c.consume(500, 0.5):
            if m.error() is None:
                out[m.offset()] = m.value()
    c.close()
    return out


def test_returning_leader_truncates_its_divergent_tail(zk_chroot: str) -> None:
    settings = {"replica.lag.time.max.ms": "60000", "zookeeper.session.timeout.ms": "4000",
                "auto.leader.rebalance.enable": "false", "replica.fetch.backoff.ms": "200"}
    with KafkaCoreCluster(3, zk_chroot, settings=settings) as c:
        c.wait_registered()
        admin = AdminClient({"bootstrap.servers": c.bootstrap})
        admin.create_topics([NewTopic("div", 1, 3, config={"min.insync.replicas": "1"})])["div"].result(30)
        _wait(lambda: _leader_isr(c.bootstrap)[1] == [1, 2, 3], what="full ISR")
        old, _ = _leader_isr(c.bootstrap)
        p = ck.Producer({"bootstrap.servers": c.bootstrap, "acks": "all"})
        for i in range(100):
            p.produce("div", f"a{i}".encode(), partition=0)
        p.flush(30)
        followers = [i for i in c.brokers if i != old]
        # The followers stop fetching (still in the ISR: replica.lag.time.max.ms is 60 s); the leader
        # takes acks=1 writes only it will ever have, then dies.
        for i in followers:
            os.kill(c.brokers[i].proc.pid, signal.SIGSTOP)   # type: ignore[union-attr]
        lone = ck.Producer({"bootstrap.servers": c.brokers[old].bootstrap, "acks": "1"})
        # A fetch each follower sent before it stopped may be parked at the leader: the first
        # append answers it (that record reaches them when they resume); none comes after it.
        lone.produce("div", b"answers-parked-fetches", partition=0)
        assert lone.flush(10) == 0
        time.sleep(0.5)
        for i in range(50):
            lone.produce("div", f"lost{i}".encode(), partition=0)
        assert lone.flush(10) == 0
        c.kill(old)
        for i in followers:
            os.kill(c.brokers[i].proc.pid, signal.SIGCONT)   # type: ignore[union-attr]
        live = ",".join(c.brokers[i].bootstrap for i in followers)
        _wait(lambda: _leader_isr(live)[0] in followers, what="a new leader")
        for i in range(80):
            p.produce("div", f"b{i}".encode(), partition=0)
        p.flush(30)
        on_new = _read_all(live, 181)
        assert sorted(on_new) == list(range(181)) and not any(v.startswith(b"lost") for v in on_new.values())
        # The old leader returns, truncates offsets 101..150 it alone had, and catches up.
        c.restart(old)
        _wait(lambda: _leader_isr(c.bootstrap)[1] == [1, 2, 3], timeout=60, what="the old leader back in sync")
        # Make it the leader and read everything from it: the same record at every offset.
        if _leader_isr(c.bootstrap)[0] != old:
            for i in followers:
                c.stop_broker(i)
            _wait(lambda: _leader_isr(c.brokers[old].bootstrap)[0] == old, what="the old broker leading")
        on_old = _read_all(c.brokers[old].bootstrap, 181)
        assert on_old == on_new
