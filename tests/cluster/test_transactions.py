"""Transactions on the three-broker cluster (ZooKeeper): the coordinator of a transactional id
is the leader of its ``__transaction_state`` partition (replicated, RF=3, min ISR 2); a
transaction over partitions led by all three brokers commits, its markers written by the
other brokers' WriteTxnMarkers over the inter-broker channel; and when the coordinator's broker
is killed mid-transaction, the new leader of that partition loads the id and a new producer
with it aborts the old transaction and carries on.  The Java 4.x producer runs transaction
version 2 over the three leaders (partitions added by the leaders, the epoch bumped per
transaction)."""

from __future__ import annotations

import shutil
import time
import uuid
from collections.abc import Iterator
from typing import Any

import confluent_kafka as ck
import pytest
from broker.conftest import RawClient  # tests/ is on sys.path (rootdir-relative packages)
from confluent_kafka.admin import AdminClient, NewTopic
from kafka_bench.kafka_core_cluster import KafkaCoreCluster
from kafka_protocol.messages import DescribeTransactionsRequest, FindCoordinatorRequest

from .faultkit import FAULT_SETTINGS, wait_for

pytestmark = pytest.mark.interop


@pytest.fixture
def cluster(zk_chroot: str) -> Iterator[KafkaCoreCluster]:
    with KafkaCoreCluster(3, zk_chroot, settings={**FAULT_SETTINGS,
                                                  "transaction.state.log.num.partitions": "3"}) as c:
        c.wait_registered()
        yield c


def coordinator(c: KafkaCoreCluster, tid: str) -> tuple[int, int]:
    """(broker id, port) of the transaction coordinator of ``tid``, as FindCoordinator says."""
    def ask() -> tuple[int, int] | None:
        for b in c.brokers.values():
            if b.proc is None or b.proc.poll() is not None:
                continue
            with RawClient(b.port) as rc:
                r = rc.call(FindCoordinatorRequest(key=tid, key_type=1), 3)
            if r.error_code == 0:
                return r.node_id, r.port
        return None
    return wait_for(ask, 30, "a transaction coordinator")


def describe(port: int, tid: str) -> Any:
    with RawClient(port) as rc:
        return rc.call(DescribeTransactionsRequest(transactional_ids=[tid]), 0).transaction_states[0]


def committed(c: KafkaCoreCluster, topic: str, n: int, expect: int | None) -> list[bytes]:
    cons = ck.Consumer({"bootstrap.servers": c.bootstrap, "group.id": f"g-{uuid.uuid4().hex[:6]}",
                        "isolation.level": "read_committed", "enable.auto.commit": False})
    cons.assign([ck.TopicPartition(topic, p, 0) for p in range(n)])
    out: list[bytes] = []
    deadline = time.monotonic() + (30 if expect else 4)
    try:
        while time.monotonic() < deadline and (expect is None or len(out) < expect):
            m = cons.poll(0.2)
            if m is not None and not m.error():
                out.append(m.value())
    finally:
        cons.close()
    return sorted(out)


def make_topic(c: KafkaCoreCluster, name: str) -> None:
    a = AdminClient({"bootstrap.servers": c.bootstrap})
    a.create_topics([NewTopic(name, 3, 3)])[name].result(30)


def test_transaction_over_three_leaders_commits(cluster: KafkaCoreCluster) -> None:
    make_topic(cluster, "spread")
    tid = "spread-tx"
    p = ck.Producer({"bootstrap.servers": cluster.bootstrap, "transactional.id": tid})
    p.init_transactions(60)
    p.begin_transaction()
    for i in range(9):
        p.produce("spread", f"v{i}".encode(), partition=i % 3)
    p.commit_transaction(60)
    _, port = coordinator(cluster, tid)
    wait_for(lambda: describe(port, tid).transaction_state == "CompleteCommit", 30, "CompleteCommit")
    assert committed(cluster, "spread", 3, 9) == sorted(f"v{i}".encode() for i in range(9))


def test_coordinator_killed_mid_transaction(cluster: KafkaCoreCluster) -> None:
    make_topic(cluster, "orphan")
    tid = "orphan-tx"
    p = ck.Producer({"bootstrap.servers": cluster.bootstrap, "transactional.id": tid})
    p.init_transactions(60)
    p.begin_transaction()
    for i in range(6):
        p.produce("orphan", f"lost{i}".encode(), partition=i % 3)
    p.flush(30)
    old, _ = coordinator(cluster, tid)
    cluster.kill(old)
    new, port = wait_for(lambda: (got := coordinator(cluster, tid))[0] != old and got, 60, "a new coordinator")
    p2 = ck.Producer({"bootstrap.servers": cluster.bootstrap, "transactional.id": tid})
    p2.init_transactions(60)            # the new coordinator aborts the old transaction first
    st = describe(port, tid)
    assert st.transaction_state == "Empty" and st.producer_epoch == 2      # aborted (epoch 1), then bumped
    p2.begin_transaction()
    p2.produce("orphan", b"after", partition=0)
    p2.commit_transaction(60)
    assert committed(cluster, "orphan", 3, 1) == [b"after"]


def test_coordinator_is_the_leader_of_the_id_partition_and_moves_with_it(cluster: KafkaCoreCluster) -> None:
    """FindCoordinator names the leader of the id's ``__transaction_state`` partition (created on
    first use with RF=3); the other brokers answer NOT_COORDINATOR; after that broker is killed the
    new leader loads the partition and serves the id with the state it had."""
    tid = "moving-tx"
    p = ck.Producer({"bootstrap.servers": cluster.bootstrap, "transactional.id": tid})
    p.init_transactions(60)
    old, port = coordinator(cluster, tid)
    st = describe(port, tid)
    assert (st.error_code, st.transaction_state, st.producer_epoch) == (0, "Empty", 0)
    others = [b.port for i, b in cluster.brokers.items() if i != old]
    assert [describe(o, tid).error_code for o in others] == [16, 16]        # NOT_COORDINATOR
    cluster.kill(old)
    new, port2 = wait_for(lambda: (got := coordinator(cluster, tid))[0] != old and got, 60, "a new coordinator")
    st2 = wait_for(lambda: (d := describe(port2, tid)).error_code == 0 and d, 30, "the id loaded")
    assert (st2.transaction_state, st2.producer_id, st2.producer_epoch) == ("Empty", st.producer_id, 0)
    p2 = ck.Producer({"bootstrap.servers": cluster.bootstrap, "transactional.id": tid})
    p2.init_transactions(60)
    assert describe(port2, tid).producer_epoch == 1



@pytest.mark.skipif(shutil.which("javac") is None, reason="a JDK is installed by ./dev test")
def test_java_tv2_producer_over_three_leaders(cluster: KafkaCoreCluster) -> None:
    """The Java 4.x producer on transaction version 2 (KIP-890 part 2): its partitions are added
    by their leaders through AddPartitionsToTxn v5 to the coordinator on another broker, every
    EndTxn bumps the epoch, and read_committed sees exactly the committed records."""
    from kafka_bench import streams

    make_topic(cluster, "tv2")
    tid = "tv2-tx"
    r = streams.txn_producer(cluster.bootstrap, tid, "tv2", ["commit:40", "abort:15", "commit:25"])
    assert r.returncode == 0 and b"DONE" in r.stdout, r.stdout.decode() + r.stderr.decode()[-3000:]
    _, port = coordinator(cluster, tid)
    st = wait_for(lambda: (d := describe(port, tid)).transaction_state == "CompleteCommit" and d, 30,
                  "CompleteCommit")
    assert st.producer_epoch == 3              # epoch 0 at init, one bump per ended transaction
    assert committed(cluster, "tv2", 3, 65) == sorted(
        [f"commit-3-{i}".encode() for i in range(40)] + [f"commit-5-{i}".encode() for i in range(25)])
