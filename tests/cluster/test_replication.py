"""Three kafka-core brokers on ZooKeeper: replicated topics, acks=all, failover (issue 10).

Every test starts its own ZooKeeper chroot and three broker processes on loopback and uses
confluent-kafka (librdkafka) as the client."""

from __future__ import annotations

import time
from collections import Counter

import pytest
from kafka_bench.kafka_core_cluster import KafkaCoreCluster

from .faultkit import CLUSTER_SETTINGS as FAST
from .faultkit import wait_for as _wait

ck = pytest.importorskip("confluent_kafka")
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402

pytestmark = pytest.mark.interop



def _admin(c: KafkaCoreCluster) -> AdminClient:
    return AdminClient({"bootstrap.servers": c.bootstrap})


def _create(c: KafkaCoreCluster, name: str, partitions: int = 6, rf: int = 3, **configs: str) -> None:
    admin = _admin(c)     # held until the result: a destroyed client fails its futures
    fs = admin.create_topics([NewTopic(name, partitions, rf, config=configs)], operation_timeout=30)
    fs[name].result(30)


def _describe(bootstrap: str, name: str) -> dict[int, tuple[int, list[int], list[int]]]:
    """Partition -> (leader, replicas, ISR).  A broker learns of a new topic from the controller
    a moment after the broker that created it (as in Kafka): retry while it does not know it."""
    deadline = time.monotonic() + 10
    while True:
        md = AdminClient({"bootstrap.servers": bootstrap}).list_topics(name, timeout=10)
        t = md.topics[name]
        if t.error is None or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert t.error is None, t.error
    return {p.id: (p.leader, sorted(p.replicas), sorted(p.isrs)) for p in t.partitions.values()}




def test_replicas_spread_and_every_broker_returns_the_same_metadata(cluster: KafkaCoreCluster) -> None:
    _create(cluster, "spread")
    views = [_wait(lambda b=b: (d := _describe(b.bootstrap, "spread")) and
                   all(len(isr) == 3 for _l, _r, isr in d.values()) and d, what="full ISR")
             for b in cluster.brokers.values()]
    assert views[0] == views[1] == views[2]
    d = views[0]
    assert sorted(d) == list(range(6))
    assert all(reps == [1, 2, 3] for _l, reps, _i in d.values())
    assert Counter(leader for leader, _r, _i in d.values()) == Counter({1: 2, 2: 2, 3: 2})
    md = _admin(cluster).list_topics(timeout=10)
    assert sorted(md.brokers) == [1, 2, 3]


def _produce(bootstrap: str, topic: str, n: int, acks: str = "all", partitions: int = 6,
             **extra: object) -> list[tuple[int, int, bytes]]:
    acked: list[tuple[int, int, bytes]] = []
    errors: list[object] = []

    def cb(err: object, msg: object) -> None:
        if err is not None:
            errors.append(err)
        else:
            acked.append((msg.partition(), msg.offset(), msg.value()))  # type: ignore[attr-defined]
    p = ck.Producer({"bootstrap.servers": bootstrap, "acks": acks, "linger.ms": 5, **extra})
    for i in range(n):
        p.produce(topic, f"v{i}".encode(), partition=i % partitions, on_delivery=cb)
        p.poll(0)
    p.flush(60)
    assert not errors, errors[:5]
    return acked


def _consume_all(bootstrap: str, topic: str, partitions: int, expect: int, timeout: float = 60) -> list:
    c = ck.Consumer({"bootstrap.servers": bootstrap, "group.id": "g-unused", "enable.auto.commit": False})
    c.assign([ck.TopicPartition(topic, p, 0) for p in range(partitions)])
    out = []
    deadline = time.monotonic() + timeout
    while len(out) < expect and time.monotonic() < deadline:
        for m in c.consume(1000, 1.0):
            if m.error() is None:
                out.append((m.partition(), m.offset(), m.value()))
    c.close()
    return out


def test_acks_all_replicates_and_a_consumer_reads_it_back(cluster: KafkaCoreCluster) -> None:
    _create(cluster, "rep")
    acked = _produce(cluster.bootstrap, "rep", 3000)
    got = _consume_all(cluster.bootstrap, "rep", 6, 3000)
    assert sorted(got) == sorted(acked)


def test_kill_the_leader_loses_no_acknowledged_record(cluster: KafkaCoreCluster) -> None:
    _create(cluster, "fail", **{"min.insync.replicas": "2"})
    first = _produce(cluster.bootstrap, "fail", 2000, **{"enable.idempotence": True})
    d = _describe(cluster.bootstrap, "fail")
    victim = d[0][0]
    cluster.kill(victim)
    live = ",".join(b.bootstrap for i, b in cluster.brokers.items() if i != victim)
    _wait(lambda: all(leader not in (victim, -1) for leader, _r, _i in _describe(live, "fail").values()),
          what="new leaders")
    second = _produce(live, "fail", 2000, **{"enable.idempotence": True})
    got = _consume_all(live, "fail", 6, len(first) + len(second))
    assert sorted(got) == sorted(first + second)
    per_part: dict[int, list[int]] = {}
    for p, off, _v in got:
        per_part.setdefault(p, []).append(off)
    assert all(offs == sorted(set(offs)) for offs in per_part.values())
    # The killed broker comes back and rejoins every ISR
    cluster.restart(victim)
    _wait(lambda: all(len(isr) == 3 for _l, _r, isr in _describe(cluster.bootstrap, "fail").values()),
          timeout=60, what="ISR regrown")


def test_min_insync_replicas_refuses_acks_all_with_two_brokers_down(cluster: KafkaCoreCluster) -> None:
    _create(cluster, "misr", partitions=1, **{"min.insync.replicas": "2"})
    d = _describe(cluster.bootstrap, "misr")
    leader = d[0][0]
    others = [i for i in cluster.brokers if i != leader]
    for i in others:
        cluster.kill(i)
    lb = cluster.brokers[leader].bootstrap
    _wait(lambda: _describe(lb, "misr")[0][2] == [leader], what="ISR shrunk to the leader")
    p = ck.Producer({"bootstrap.servers": lb, "acks": "all", "message.timeout.ms": 5000, "retries": 0})
    errs: list[object] = []
    p.produce("misr", b"x", partition=0, on_delivery=lambda e, m: errs.append(e))
    p.flush(20)
    assert errs and errs[0] is not None and errs[0].code() == ck.KafkaError.NOT_ENOUGH_REPLICAS, errs
    ok = _produce(lb, "misr", 10, acks="1", partitions=1)
    assert len(ok) == 10
    for i in others:
        cluster.restart(i)
    _wait(lambda: len(_describe(cluster.bootstrap, "misr")[0][2]) == 3, timeout=60, what="ISR regrown")
    assert len(_produce(cluster.bootstrap, "misr", 10, partitions=1)) == 10


def test_controller_failover(cluster: KafkaCoreCluster) -> None:
    from kazoo.client import KazooClient

    zk = KazooClient(hosts=cluster.zk_connect)
    zk.start(10)
    try:
        import json
        first = json.loads(zk.get("/controller")[0])["brokerid"]
        cluster.kill(first)
        from kazoo.exceptions import NoNodeError

        def other() -> int | None:
            try:   # (the znode may go between an exists() and a get(): read it once)
                cid = json.loads(zk.get("/controller")[0])["brokerid"]
            except NoNodeError:
                return None
            return cid if cid != first else None
        # the dead controller's znode goes when its session expires (zookeeper.session.timeout.ms)
        new = _wait(other, what="a new controller")
        assert new in cluster.brokers and new != first
        # and the new controller acts: a topic created now gets leaders
        live = ",".join(b.bootstrap for i, b in cluster.brokers.items() if i != first)
        admin = AdminClient({"bootstrap.servers": live})
        admin.create_topics([NewTopic("after", 2, 2)])["after"].result(30)
        d = _wait(lambda: (x := _describe(live, "after")) and all(v[0] > 0 for v in x.values()) and x,
                  what="leaders of a topic made after failover")
        assert all(leader != first for leader, _r, _i in d.values())
    finally:
        zk.stop()
        zk.close()


def _group_consume(bootstrap: str, topic: str, group: str, expect: int, timeout: float = 60) -> list:
    c = ck.Consumer({"bootstrap.servers": bootstrap, "group.id": group, "auto.offset.reset": "earliest",
                     "enable.auto.commit": False, "session.timeout.ms": 6000, "heartbeat.interval.ms": 500})
    c.subscribe([topic])
    out = []
    deadline = time.monotonic() + timeout
    try:
        while len(out) < expect and time.monotonic() < deadline:
            for m in c.consume(500, 1.0):
                if m.error() is None:
                    out.append((m.partition(), m.offset(), m.value()))
            if out:
                c.commit(asynchronous=False)
    finally:
        c.close()
    return out


def test_group_coordinator_is_the_offsets_partition_leader_and_survives_its_death(
        cluster: KafkaCoreCluster) -> None:
    """A consumer group in the cluster: its coordinator is the leader of its __consumer_offsets
    partition; kill -9 that broker and the group carries on from the committed offsets."""
    import zlib  # noqa: F401 - the partition of a group is Java's String.hashCode, computed below

    _create(cluster, "grp")
    acked = _produce(cluster.bootstrap, "grp", 600)
    first = _group_consume(cluster.bootstrap, "grp", "g1", 300, timeout=60)
    assert len(first) >= 300
    # The coordinator: FindCoordinator through any broker names the same broker, the leader of
    # the group's offsets partition.
    admin = _admin(cluster)
    coord = admin.describe_consumer_groups(["g1"])["g1"].result(30).coordinator.id
    h = 0
    for ch in "g1":
        h = (31 * h + ord(ch)) & 0xFFFFFFFF
    h = h - (1 << 32) if h >= 1 << 31 else h
    part = (h & 0x7FFFFFFF) % 50 if h != -(1 << 31) else 0
    assert _describe(cluster.bootstrap, "__consumer_offsets")[part][0] == coord
    cluster.kill(coord)
    live = ",".join(b.bootstrap for i, b in cluster.brokers.items() if i != coord)
    rest = _group_consume(live, "grp", "g1", len(acked) - len(first), timeout=90)
    # At least once: nothing acknowledged is skipped; what was committed is not read again
    # except what the first consumer read after its last commit.
    seen = {(p, o) for p, o, _ in first + rest}
    assert seen == {(p, o) for p, o, _ in acked}
    live_admin = AdminClient({"bootstrap.servers": live})
    desc = live_admin.describe_consumer_groups(["g1"], request_timeout=20)["g1"].result(30)
    assert desc.coordinator.id != coord


def test_topic_configs_through_any_broker(cluster: KafkaCoreCluster) -> None:
    """AlterConfigs on one broker: every broker describes the new value, and the replicas use it."""
    from confluent_kafka.admin import ConfigResource

    _create(cluster, "conf", partitions=1, rf=2, **{"retention.ms": "3600000"})
    b1, b2, b3 = (cluster.brokers[i].bootstrap for i in (1, 2, 3))
    a1 = AdminClient({"bootstrap.servers": b1})
    res = ConfigResource("topic", "conf", set_config={"retention.ms": "7200000", "segment.bytes": "1048576"})
    a1.alter_configs([res])[res].result(30)

    def described(bootstrap: str) -> dict[str, str]:
        # DescribeConfigs goes to the broker itself (librdkafka picks any broker: pin it)
        a = AdminClient({"bootstrap.servers": bootstrap})
        r = ConfigResource("topic", "conf")
        try:
            got = a.describe_configs([r], request_timeout=5)[r].result(10)
        except ck.KafkaException:
            return {}       # a broker restarted a moment ago knows no controller yet
        return {k: v.value for k, v in got.items()}
    for b in (b1, b2, b3):
        _wait(lambda b=b: described(b).get("retention.ms") == "7200000", what=f"the new config on {b}")
        assert described(b)["segment.bytes"] == "1048576"
    # a broker that was down meanwhile picks the change up when it returns (not the controller:
    # librdkafka sends AlterConfigs to the controller and would wait for its metadata refresh)
    leader = _describe(b1, "conf")[0][0]
    controller = a1.list_topics(timeout=10).controller_id
    others = [i for i in cluster.brokers if i not in (leader, controller)]
    cluster.kill(others[0])
    res = ConfigResource("topic", "conf", set_config={"retention.ms": "60000"})
    a_leader = AdminClient({"bootstrap.servers": cluster.brokers[leader].bootstrap})
    a_leader.alter_configs([res])[res].result(30)
    cluster.restart(others[0])
    _wait(lambda: described(cluster.brokers[others[0]].bootstrap).get("retention.ms") == "60000",
          what="the change on the restarted broker")


def _leaders(bootstrap: str, topic: str) -> dict[int, int]:
    return {p: v[0] for p, v in _describe(bootstrap, topic).items()}


def _bounce_preferred_leader(cluster: KafkaCoreCluster, topic: str) -> int:
    """Kill the preferred (first) replica of partition 0, let it return and rejoin every ISR;
    returns it.  Afterwards it leads nothing until a preferred election moves leadership back."""
    victim = _leaders(cluster.bootstrap, topic)[0]
    cluster.kill(victim)
    live = ",".join(b.bootstrap for i, b in cluster.brokers.items() if i != victim)
    _wait(lambda: victim not in _leaders(live, topic).values(), what="leadership moved off the victim")
    cluster.restart(victim)
    _wait(lambda: all(len(isr) == 3 for _l, _r, isr in _describe(cluster.bootstrap, topic).values()),
          timeout=60, what="the victim back in every ISR")
    return victim


@pytest.mark.parametrize("cluster_settings", [{"auto.leader.rebalance.enable": "false"}])
def test_preferred_leader_election(zk_chroot: str, cluster_settings: dict[str, str]) -> None:
    """ElectLeaders (PREFERRED) moves leadership back to the first replica of each partition."""
    from confluent_kafka import ElectionType

    with KafkaCoreCluster(3, zk_chroot, settings={**FAST, **cluster_settings}) as c:
        c.wait_registered()
        _create(c, "pref", partitions=3)
        before = _leaders(c.bootstrap, "pref")
        victim = _bounce_preferred_leader(c, "pref")
        assert victim not in _leaders(c.bootstrap, "pref").values()
        admin = _admin(c)
        admin.elect_leaders(ElectionType.PREFERRED, None).result(30)
        _wait(lambda: _leaders(c.bootstrap, "pref") == before, what="preferred leaders back")


def test_auto_leader_rebalance(zk_chroot: str) -> None:
    """auto.leader.rebalance.enable (Kafka's default, true): the controller moves leadership back
    by itself after leader.imbalance.check.interval.seconds."""
    with KafkaCoreCluster(3, zk_chroot, settings={**FAST, "leader.imbalance.check.interval.seconds": "2"}) as c:
        c.wait_registered()
        _create(c, "auto", partitions=3)
        before = _leaders(c.bootstrap, "auto")
        _bounce_preferred_leader(c, "auto")
        _wait(lambda: _leaders(c.bootstrap, "auto") == before, timeout=30, what="rebalanced leaders")


def test_a_dead_controller_leaves_every_isr_at_once(zk_chroot: str) -> None:
    """The controller dies: the new one takes it out of the ISRs of partitions other brokers lead
    when it takes over, so acks=all there resumes after the session timeout, not after
    replica.lag.time.max.ms (30 s here)."""
    import json

    from kazoo.client import KazooClient

    with KafkaCoreCluster(3, zk_chroot, settings={**FAST, "replica.lag.time.max.ms": "30000"}) as c:
        c.wait_registered()
        _create(c, "dc", partitions=6, **{"min.insync.replicas": "2"})
        zk = KazooClient(hosts=c.zk_connect)
        zk.start(10)
        try:
            ctl = json.loads(zk.get("/controller")[0])["brokerid"]
        finally:
            zk.stop()
            zk.close()
        survivors = [p for p, (leader, _r, _i) in _describe(c.bootstrap, "dc").items() if leader != ctl]
        c.kill(ctl)
        live = ",".join(b.bootstrap for i, b in c.brokers.items() if i != ctl)
        t0 = time.monotonic()
        _wait(lambda: all(ctl not in isr for _l, _r, isr in _describe(live, "dc").values()), timeout=20,
              what="the dead controller out of every ISR")
        assert time.monotonic() - t0 < 20
        p = ck.Producer({"bootstrap.servers": live, "acks": "all", "message.timeout.ms": 20000})
        errs: list[object] = []
        for part in survivors:
            p.produce("dc", b"x", partition=part, on_delivery=lambda e, m: errs.append(e))
        p.flush(25)
        assert errs == [None] * len(survivors)


def test_kafka_reassign_partitions_moves_a_replica(cluster: KafkaCoreCluster, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Apache Kafka's kafka-reassign-partitions --execute/--verify: the partition moves from
    brokers [1, 2] to [2, 3] with its data, and broker 1 deletes its copy."""
    import json

    from kafka_bench.apache_kafka import java_main

    admin = _admin(cluster)
    admin.create_topics([NewTopic("mv", 1, replica_assignment=[[1, 2]])])["mv"].result(30)
    acked = _produce(cluster.bootstrap, "mv", 300, partitions=1)
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"version": 1, "partitions": [{"topic": "mv", "partition": 0, "replicas": [2, 3]}]}))
    tool = "org.apache.kafka.tools.reassign.ReassignPartitionsCommand"
    out = java_main(tool, ["--bootstrap-server", cluster.bootstrap, "--reassignment-json-file", str(plan),
                           "--execute"], timeout=120).stdout.decode()
    assert "Successfully started partition reassignment" in out, out
    _wait(lambda: _describe(cluster.bootstrap, "mv")[0][1:] == ([2, 3], [2, 3]), timeout=60,
          what="replicas [2, 3] in sync")

    def verified() -> bool:
        res = java_main(tool, ["--bootstrap-server", cluster.bootstrap, "--reassignment-json-file", str(plan),
                               "--verify"], timeout=120, check=False)
        return b"Reassignment of partition mv-0 is completed" in res.stdout
    _wait(verified, timeout=60, what="--verify says complete")
    got = _consume_all(",".join(cluster.brokers[i].bootstrap for i in (2, 3)), "mv", 1, len(acked))
    assert sorted(got) == sorted(acked)
    gone = cluster.brokers[1].data_dir / "logs" / "mv-0"
    _wait(lambda: not gone.exists(), timeout=30, what="broker 1 deleting its replica")


def test_topic_admin_through_any_broker(cluster: KafkaCoreCluster) -> None:
    """CreatePartitions, DeleteRecords and DeleteTopics sent to one broker act on the whole
    cluster: the new partitions get leaders everywhere, the log start moves on every replica,
    the deleted topic's logs go from every broker."""
    from confluent_kafka import TopicPartition
    from confluent_kafka.admin import NewPartitions

    _create(cluster, "adm", partitions=2)
    acked = _produce(cluster.bootstrap, "adm", 400, partitions=2)
    a1 = AdminClient({"bootstrap.servers": cluster.brokers[1].bootstrap})
    a1.create_partitions([NewPartitions("adm", 5)])["adm"].result(30)
    for b in cluster.brokers.values():
        _wait(lambda b=b: len(_describe(b.bootstrap, "adm")) == 5 and
              all(v[0] > 0 and len(v[2]) == 3 for v in _describe(b.bootstrap, "adm").values()),
              what=f"5 partitions with leaders on broker {b.bootstrap}")
    assert len(_produce(cluster.bootstrap, "adm", 50, partitions=5)) == 50
    # DeleteRecords: every replica's log start follows the leader's (seen after the leader dies)
    upto = max(o for p, o, _v in acked if p == 0) // 2
    tp = TopicPartition("adm", 0, upto)
    # answered once every live replica's log start is there (test_log_maintenance checks each)
    assert a1.delete_records([tp])[tp].result(30).low_watermark == upto
    leader = _describe(cluster.bootstrap, "adm")[0][0]
    cluster.kill(leader)
    live = ",".join(b.bootstrap for i, b in cluster.brokers.items() if i != leader)
    _wait(lambda: _describe(live, "adm")[0][0] not in (leader, -1), what="a new leader of adm-0")
    c = ck.Consumer({"bootstrap.servers": live, "group.id": "lo", "enable.auto.commit": False})
    lo, _hi = c.get_watermark_offsets(TopicPartition("adm", 0), timeout=10, cached=False)
    c.close()
    assert lo == upto
    cluster.restart(leader)
    # DeleteTopics: gone from metadata and from every broker's disk
    a1.delete_topics(["adm"], operation_timeout=30)["adm"].result(30)
    for b in cluster.brokers.values():
        _wait(lambda b=b: not any((b.data_dir / "logs").glob("adm-*")), timeout=30,
              what=f"the topic's logs gone from {b.data_dir}")
    md = _admin(cluster).list_topics(timeout=10)
    assert "adm" not in md.topics
