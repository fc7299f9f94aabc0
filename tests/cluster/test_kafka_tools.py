"""Apache Kafka 4.x's own ``kafka-topics`` (``TopicCommand``, run from the Maven jars) against the
three-broker kafka-core cluster: it creates a 6-partition RF=3 topic, and ``--describe`` shows
each partition with a leader among the brokers, three replicas and a full ISR; with one broker
killed, ``--under-replicated-partitions`` lists every partition and no leader names that broker."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator

import pytest
from kafka_bench import apache_kafka as ak
from kafka_bench.kafka_core_cluster import KafkaCoreCluster

from .faultkit import FAULT_SETTINGS
from .test_apache_zk import _PARTITION

pytestmark = [pytest.mark.interop,
              pytest.mark.skipif(shutil.which("java") is None, reason="java is installed by ./dev test")]

TOPIC = "tools"


@pytest.fixture
def cluster(zk_chroot: str) -> Iterator[KafkaCoreCluster]:
    with KafkaCoreCluster(3, zk_chroot, settings=FAULT_SETTINGS) as c:
        c.wait_registered()
        yield c


def topics_tool(bootstrap: str, *args: str) -> str:
    r = ak.java_main(ak.TOPICS, ["--bootstrap-server", bootstrap, *args], timeout=60, check=False)
    out = r.stdout.decode(errors="replace")
    assert r.returncode == 0, out + r.stderr.decode(errors="replace")[-3000:]
    return out


def describe(bootstrap: str, *extra: str) -> tuple[str, dict[int, tuple[int, list[int], list[int]]]]:
    out = topics_tool(bootstrap, "--describe", "--topic", TOPIC, *extra)
    return out, {int(p): (int(leader), [int(x) for x in reps.split(",")], [int(x) for x in isr.split(",") if x])
                 for p, leader, reps, isr in _PARTITION.findall(out)}


def test_kafka_topics_describe_shows_leaders_replicas_and_isr(cluster: KafkaCoreCluster) -> None:
    out = topics_tool(cluster.bootstrap, "--create", "--topic", TOPIC, "--partitions", "6",
                      "--replication-factor", "3", "--config", "min.insync.replicas=2")
    assert f"Created topic {TOPIC}" in out
    deadline = time.monotonic() + 30
    while True:
        out, parts = describe(cluster.bootstrap)
        if len(parts) == 6 and all(len(isr) == 3 for _l, _r, isr in parts.values()):
            break
        assert time.monotonic() < deadline, out
        time.sleep(0.5)
    assert "PartitionCount: 6" in out and "ReplicationFactor: 3" in out, out
    assert "min.insync.replicas=2" in out, out
    assert sorted(parts) == list(range(6))
    for p, (leader, reps, isr) in parts.items():
        assert leader in (1, 2, 3), (p, out)
        assert sorted(reps) == [1, 2, 3] and sorted(isr) == [1, 2, 3], (p, out)
        assert reps[0] == leader, f"partition {p}: the preferred replica {reps[0]} should lead: {out}"
    assert sorted(leader for leader, _r, _i in parts.values()) == [1, 1, 2, 2, 3, 3], out
    assert not _PARTITION.findall(topics_tool(cluster.bootstrap, "--describe", "--under-replicated-partitions"))

    # One broker down: the others lead everything, with an ISR of two.
    victim = parts[0][0]
    cluster.kill(victim)
    live = ",".join(b.bootstrap for i, b in cluster.brokers.items() if i != victim)
    deadline = time.monotonic() + 30
    while True:
        out, parts = describe(live)
        if len(parts) == 6 and all(leader not in (victim, -1) and victim not in isr
                                   for leader, _r, isr in parts.values()):
            break
        assert time.monotonic() < deadline, out
        time.sleep(0.5)
    assert all(len(isr) == 2 and len(reps) == 3 for _l, reps, isr in parts.values()), out
    _out, under = describe(live, "--under-replicated-partitions")
    assert sorted(under) == list(range(6)), _out
