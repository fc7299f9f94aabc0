"""Deleting a topic while a broker that holds replicas of it is down: clients stop seeing it at
once; the deletion completes (znodes gone, logs removed on every broker) when that broker returns
(Kafka's TopicDeletionManager)."""

from __future__ import annotations

import pytest
from kafka_bench.kafka_core_cluster import KafkaCoreCluster

from .faultkit import wait_for as _wait

ck = pytest.importorskip("confluent_kafka")
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402

pytestmark = pytest.mark.interop

FAST = {"replica.lag.time.max.ms": "3000", "zookeeper.session.timeout.ms": "4000"}




def test_delete_waits_for_a_broker_that_is_down(zk_chroot: str, zk_client) -> None:  # type: ignore[no-untyped-def]
    with KafkaCoreCluster(3, zk_chroot, settings=FAST) as c:
        c.wait_registered()
        admin = AdminClient({"bootstrap.servers": c.bootstrap})
        admin.create_topics([NewTopic("gone", 3, 3)])["gone"].result(30)
        p = ck.Producer({"bootstrap.servers": c.bootstrap, "acks": "all"})
        for i in range(30):
            p.produce("gone", b"x", partition=i % 3)
        assert p.flush(30) == 0
        c.kill(3)
        live = ",".join(c.brokers[i].bootstrap for i in (1, 2))
        a2 = AdminClient({"bootstrap.servers": live})
        _wait(lambda: 3 not in a2.list_topics(timeout=10).brokers, what="broker 3 gone")
        a2.delete_topics(["gone"], operation_timeout=30)["gone"].result(30)
        _wait(lambda: "gone" not in a2.list_topics(timeout=10).topics, what="the topic out of metadata")
        for i in (1, 2):
            _wait(lambda i=i: not any((c.brokers[i].data_dir / "logs").glob("gone-*")), what=f"logs on {i}")
        assert any((c.brokers[3].data_dir / "logs").glob("gone-*"))
        assert zk_client.exists("/admin/delete_topics/gone") and zk_client.exists("/brokers/topics/gone")
        c.restart(3)
        _wait(lambda: not any((c.brokers[3].data_dir / "logs").glob("gone-*")), timeout=60,
              what="broker 3 deleting its replicas when it returns")
        _wait(lambda: not zk_client.exists("/admin/delete_topics/gone") and
              not zk_client.exists("/brokers/topics/gone"), what="the deletion complete in ZooKeeper")
        # and the name can be used again
        admin.create_topics([NewTopic("gone", 1, 3)])["gone"].result(30)
