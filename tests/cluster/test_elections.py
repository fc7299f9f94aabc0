"""Leader elections an operator asks for or allows: unclean election (per topic
unclean.leader.election.enable) and Apache Kafka's kafka-leader-election tool."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator

import pytest
from kafka_bench.kafka_core_cluster import KafkaCoreCluster

from .faultkit import wait_for as _wait

ck = pytest.importorskip("confluent_kafka")
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402

pytestmark = pytest.mark.interop

FAST = {"replica.lag.time.max.ms": "2000", "zookeeper.session.timeout.ms": "4000",
        "auto.leader.rebalance.enable": "false"}


@pytest.fixture
def cluster(zk_chroot: str) -> Iterator[KafkaCoreCluster]:
    with KafkaCoreCluster(3, zk_chroot, settings=FAST) as c:
        c.wait_registered()
        yield c


def _part0(bootstrap: str, topic: str) -> tuple[int, list[int]]:
    t = AdminClient({"bootstrap.servers": bootstrap}).list_topics(topic, timeout=10).topics[topic]
    p = t.partitions[0]
    return p.leader, sorted(p.isrs)




def test_unclean_election_only_where_allowed(cluster: KafkaCoreCluster) -> None:
    """Replicas [1, 2]; broker 2 drops out of the ISR, then broker 1 dies.  When 2 returns alone,
    the topic that allows unclean election gets it as leader; the other stays offline (leader -1)
    rather than lose what only broker 1 had, until broker 1 returns."""
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap})
    fs = admin.create_topics([
        NewTopic("unclean", 1, replica_assignment=[[1, 2]], config={"unclean.leader.election.enable": "true"}),
        NewTopic("clean", 1, replica_assignment=[[1, 2]])])
    for f in fs.values():
        f.result(30)
    for t in ("unclean", "clean"):
        _wait(lambda t=t: _part0(cluster.bootstrap, t) == (1, [1, 2]), what=f"{t}: leader 1, ISR [1, 2]")
    cluster.kill(2)
    b13 = ",".join(cluster.brokers[i].bootstrap for i in (1, 3))
    for t in ("unclean", "clean"):
        _wait(lambda t=t: _part0(b13, t)[1] == [1], what=f"{t}: ISR shrunk to [1]")
    cluster.kill(1)
    b3 = cluster.brokers[3].bootstrap
    _wait(lambda: _part0(b3, "clean")[0] == -1, what="clean: offline")
    cluster.restart(2)
    b23 = ",".join(cluster.brokers[i].bootstrap for i in (2, 3))
    _wait(lambda: _part0(b23, "unclean") == (2, [2]), what="unclean: broker 2 elected")
    time.sleep(2)
    assert _part0(b23, "clean")[0] == -1          # still offline: no clean leader
    cluster.restart(1)
    _wait(lambda: _part0(cluster.bootstrap, "clean")[0] == 1, what="clean: broker 1 back as leader")


@pytest.mark.skipif(shutil.which("java") is None, reason="java is installed by ./dev test")
def test_kafka_leader_election_tool(cluster: KafkaCoreCluster) -> None:
    from kafka_bench.apache_kafka import java_main

    admin = AdminClient({"bootstrap.servers": cluster.bootstrap})
    admin.create_topics([NewTopic("el", 1, replica_assignment=[[1, 2, 3]])])["el"].result(30)
    _wait(lambda: _part0(cluster.bootstrap, "el") == (1, [1, 2, 3]), what="leader 1, full ISR")
    cluster.kill(1)
    b23 = ",".join(cluster.brokers[i].bootstrap for i in (2, 3))
    _wait(lambda: _part0(b23, "el")[0] in (2, 3), what="a new leader")
    cluster.restart(1)
    _wait(lambda: _part0(cluster.bootstrap, "el")[1] == [1, 2, 3], timeout=60, what="1 back in the ISR")
    r = java_main("org.apache.kafka.tools.LeaderElectionCommand",
                  ["--bootstrap-server", cluster.bootstrap, "--election-type", "preferred", "--topic", "el",
                   "--partition", "0"], timeout=120, check=False)
    out = r.stdout.decode() + r.stderr.decode()
    assert r.returncode == 0 and "Successfully completed leader election (PREFERRED) for partitions el-0" in out, out
    _wait(lambda: _part0(cluster.bootstrap, "el")[0] == 1, what="preferred leader 1 again")
