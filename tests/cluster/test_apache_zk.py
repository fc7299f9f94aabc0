"""Apache Kafka 3.9 in ZooKeeper mode, three brokers on the session's ZooKeeper: the cluster
the kafka-core ZooKeeper-mode cluster is compared with.  Its 3.9 tools create and describe a
replicated topic; a confluent-kafka producer with acks=all and a consumer use it."""

from __future__ import annotations

import re
import time
import uuid

from kafka_bench.apache_kafka_zk import TOPICS, ApacheKafkaZkCluster, run_tool_39
from kazoo.client import KazooClient

_PARTITION = re.compile(r"Partition: (\d+)\s+Leader: (-?\d+)\s+Replicas: ([\d,]+)\s+Isr: ([\d,]*)")


def describe(cluster: ApacheKafkaZkCluster, topic: str) -> dict[int, tuple[int, list[int], list[int]]]:
    """partition -> (leader, replicas, isr), from ``kafka-topics --describe``."""
    out = run_tool_39(TOPICS, ["--bootstrap-server", cluster.bootstrap, "--describe", "--topic", topic]).stdout
    return {int(p): (int(leader), [int(x) for x in replicas.split(",")], [int(x) for x in isr.split(",") if x])
            for p, leader, replicas, isr in _PARTITION.findall(out)}


def wait_fully_replicated(cluster: ApacheKafkaZkCluster, topic: str, partitions: int, rf: int,
                          timeout: float = 30) -> dict[int, tuple[int, list[int], list[int]]]:
    deadline = time.monotonic() + timeout
    while True:
        parts = describe(cluster, topic)
        if len(parts) == partitions and all(len(isr) == rf and leader > 0 for leader, _, isr in parts.values()):
            return parts
        assert time.monotonic() < deadline, parts
        time.sleep(0.5)


def test_brokers_register_under_the_chroot(apache_zk_cluster: ApacheKafkaZkCluster, zk_client: KazooClient) -> None:
    assert apache_zk_cluster.zk_connect.endswith(apache_zk_cluster.chroot)
    assert sorted(zk_client.get_children("/brokers/ids")) == ["1", "2", "3"]
    assert zk_client.exists("/controller")


def test_topic_tool_and_confluent_clients(apache_zk_cluster: ApacheKafkaZkCluster) -> None:
    from confluent_kafka import Consumer, Producer

    cluster, topic = apache_zk_cluster, f"zk-{uuid.uuid4().hex[:8]}"
    r = run_tool_39(TOPICS, ["--bootstrap-server", cluster.bootstrap, "--create", "--topic", topic,
                             "--partitions", "6", "--replication-factor", "3"])
    assert f"Created topic {topic}" in r.stdout
    parts = wait_fully_replicated(cluster, topic, 6, 3)
    assert sorted(parts) == list(range(6))
    for leader, replicas, isr in parts.values():
        assert sorted(replicas) == [1, 2, 3] and sorted(isr) == [1, 2, 3] and leader in replicas

    producer = Producer({"bootstrap.servers": cluster.bootstrap, "acks": "all", "enable.idempotence": True})
    errors: list[object] = []
    sent = [f"v{i}".encode() for i in range(60)]
    for i, v in enumerate(sent):
        producer.produce(topic, v, key=str(i).encode(), on_delivery=lambda err, _m: err and errors.append(err))
    assert producer.flush(30) == 0 and not errors, errors

    consumer = Consumer({"bootstrap.servers": cluster.bootstrap, "group.id": f"g-{topic}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    consumer.subscribe([topic])
    got: list[bytes] = []
    deadline = time.monotonic() + 60
    try:
        while len(got) < len(sent) and time.monotonic() < deadline:
            m = consumer.poll(0.5)
            if m is not None and not m.error():
                got.append(m.value())
    finally:
        consumer.close()
    assert sorted(got) == sorted(sent)


def test_kill_and_restart_a_broker(apache_zk_cluster: ApacheKafkaZkCluster) -> None:
    cluster = apache_zk_cluster
    cluster.kill(2)
    assert 2 not in cluster.procs
    cluster.restart(2)   # waits for the dead session's node to expire, then for the new one
    assert cluster.registered_ids() == [1, 2, 3]
    cluster.restart(3)   # a controlled shutdown first
    assert cluster.registered_ids() == [1, 2, 3]
