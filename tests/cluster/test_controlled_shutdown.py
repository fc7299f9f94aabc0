"""Controlled shutdown under load (Kafka's ``controlled.shutdown.enable``): SIGTERM to a broker that
leads partitions of a 6-partition RF=3 topic while an idempotent acks=all producer writes to it.

Leadership must move before the broker leaves: the partition state znodes that name a new leader
are written before its registration znode goes (ZooKeeper's zxids order the two exactly), the
broker says it completed the controlled shutdown, the producer sees only successful deliveries
(NOT_LEADER_OR_FOLLOWER is retriable and retried), and every acknowledged record is read back at
its offset, in the order it was acknowledged, per partition."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator

import pytest
from kafka_bench.kafka_core_cluster import KafkaCoreCluster
from kafka_broker.cluster import zk as Z
from kazoo.client import KazooClient

pytest.importorskip("confluent_kafka")
from .faultkit import FAULT_SETTINGS, LoadProducer, isr_full, read_all, wait_for, zk_states  # noqa: E402
from .test_replication import _create, _describe  # noqa: E402

pytestmark = pytest.mark.interop

TOPIC, PARTITIONS = "shutdown", 6


@pytest.fixture
def cluster(zk_chroot: str) -> Iterator[KafkaCoreCluster]:
    with KafkaCoreCluster(3, zk_chroot, settings=FAULT_SETTINGS) as c:
        c.wait_registered()
        yield c


def test_sigterm_moves_leadership_away_before_the_broker_exits(cluster: KafkaCoreCluster,
                                                               zk_client: KazooClient) -> None:
    _create(cluster, TOPIC, PARTITIONS, 3, **{"min.insync.replicas": "2"})
    wait_for(lambda: isr_full(zk_client, TOPIC, PARTITIONS, 3), what="full ISR")
    before = zk_states(zk_client, TOPIC, PARTITIONS)
    victim = before[0][0].leader
    led = sorted(p for p, (st, _) in before.items() if st.leader == victim)
    others = [i for i in cluster.brokers if i != victim]
    live = ",".join(cluster.brokers[i].bootstrap for i in others)

    with LoadProducer(cluster.bootstrap, TOPIC, PARTITIONS, rate=300) as prod:
        wait_for(lambda: len(prod.acked) >= 300, what="300 acknowledged records before the shutdown")
        broker = cluster.brokers[victim]
        assert broker.proc is not None
        t0 = time.monotonic()
        broker.proc.send_signal(signal.SIGTERM)
        code = broker.proc.wait(30)
        took = time.monotonic() - t0
        broker.proc = None
        at_exit = len(prod.acked)
        # Keep writing to the new leaders for a while
        wait_for(lambda: len(prod.acked) >= at_exit + 300, what="300 more acknowledged records after the exit")
    assert code == 0, f"broker {victim} exited with {code}"
    log_text = broker.log_text()
    assert "controlled shutdown: leadership moved away" in log_text, log_text[-3000:]
    assert "controlled shutdown did not complete" not in log_text

    # The registration went when the session closed; every new state was written before that.
    assert str(victim) not in zk_client.get_children(Z.BROKER_IDS)
    deregistered = zk_client.get(Z.BROKER_IDS)[1].pzxid     # zxid of the last child change
    after = zk_states(zk_client, TOPIC, PARTITIONS)
    for p, (st, stat) in after.items():
        assert st.leader not in (victim, -1), f"partition {p}: leader {st.leader} after the shutdown"
        assert victim not in st.isr, f"partition {p}: ISR {st.isr} still names broker {victim}"
        if p in led:
            assert st.leader_epoch > before[p][0].leader_epoch
            assert stat.mzxid < deregistered, (f"partition {p}: new leader written at zxid {stat.mzxid}, after "
                                               f"broker {victim} deregistered at zxid {deregistered}")
    assert all(leader not in (victim, -1) for leader, _r, _i in _describe(live, TOPIC).values())

    assert prod.fatal is None, prod.fatal
    assert not prod.failed, f"{len(prod.failed)} failed deliveries, first {prod.failed[:5]}"
    got = read_all(live, TOPIC, PARTITIONS)
    for p in range(PARTITIONS):
        acked = [(a.offset, a.value) for a in prod.acked if a.partition == p]
        assert [o for o, _v in acked] == sorted({o for o, _v in acked}), f"partition {p}: acks out of order"
        # the log holds exactly what was acknowledged (nothing failed), in that order
        assert got[p] == acked, f"partition {p}: read {len(got[p])} records, acknowledged {len(acked)}"
    print(f"broker {victim} (leader of {led}) stopped in {took:.1f}s; {len(prod.acked)} records acknowledged")
