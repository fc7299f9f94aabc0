"""Three kafka-core brokers on ZooKeeper: replicated topics, acks=all, failover (issue 10).

Every test starts its own ZooKeeper chroot and three broker processes on loopback and uses
confluent-kafka (librdkafka) as the client."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator

import pytest
from kafka_bench.kafka_core_cluster import KafkaCoreCluster

ck = pytest.importorskip("confluent_kafka")
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402

pytestmark = pytest.mark.interop

FAST = {"replica.lag.time.max.ms": "3000", "zookeeper.session.timeout.ms": "4000",
        "controlled.shutdown.retry.backoff.ms": "200", "replica.fetch.backoff.ms": "200"}


@pytest.fixture
def cluster(zk_chroot: str) -> Iterator[KafkaCoreCluster]:
    with KafkaCoreCluster(3, zk_chroot, settings=FAST) as c:
        c.wait_registered()
        yield c


def _admin(c: KafkaCoreCluster) -> AdminClient:
    return AdminClient({"bootstrap.servers": c.bootstrap})


def _create(c: KafkaCoreCluster, name: str, partitions: int = 6, rf: int = 3, **configs: str) -> None:
    admin = _admin(c)     # held until the result: a destroyed client fails its futures
    fs = admin.create_topics([NewTopic(name, partitions, rf, config=configs)], operation_timeout=30)
    fs[name].result(30)


def _describe(bootstrap: str, name: str) -> dict[int, tuple[int, list[int], list[int]]]:
    md = AdminClient({"bootstrap.servers": bootstrap}).list_topics(name, timeout=10)
    t = md.topics[name]
    assert t.error is None, t.error
    return {p.id: (p.leader, sorted(p.replicas), sorted(p.isrs)) for p in t.partitions.values()}


def _wait(cond, timeout: float = 30, what: str = "condition"):  # type: ignore[no-untyped-def]
    """Until ``cond()`` is truthy.  A condition that fails an assertion (``_describe`` of a topic a
    broker does not know yet: UpdateMetadata reaches each broker on its own time) is tried again."""
    deadline = time.monotonic() + timeout
    last: AssertionError | None = None
    while time.monotonic() < deadline:
        try:
            got = cond()
        except AssertionError as e:
            got, last = None, e
        if got:
            return got
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}" + (f" (last: {last})" if last else ""))


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
        def other() -> int | None:
            if not zk.exists("/controller"):
                return None
            cid = json.loads(zk.get("/controller")[0])["brokerid"]
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
