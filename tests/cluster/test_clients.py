"""The other real clients against three kafka-core brokers on ZooKeeper: kafka-python and
aiokafka (acks=all producers, consumer groups with commits), Apache Kafka's Java console
producer and consumer, and librdkafka with the KIP-848 consumer group protocol."""

from __future__ import annotations

import asyncio
import shutil
import time

import pytest
from kafka_bench.kafka_core_cluster import KafkaCoreCluster

pytestmark = pytest.mark.interop



def _create(c: KafkaCoreCluster, name: str, partitions: int = 3) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": c.bootstrap})
    admin.create_topics([NewTopic(name, partitions, 3)])[name].result(30)
    deadline = time.monotonic() + 10      # every broker learns the topic from the controller
    while time.monotonic() < deadline:
        md = [AdminClient({"bootstrap.servers": b.bootstrap}).list_topics(name, timeout=10).topics[name]
              for b in c.brokers.values()]
        if all(t.error is None and len(t.partitions) == partitions for t in md):
            return
        time.sleep(0.1)
    raise AssertionError(f"topic {name} not on every broker")


def test_kafka_python_producer_and_group(cluster: KafkaCoreCluster) -> None:
    from kafka import KafkaConsumer, KafkaProducer

    _create(cluster, "kp")
    p = KafkaProducer(bootstrap_servers=cluster.bootstrap.split(","), acks="all")
    futs = [p.send("kp", f"m{i}".encode()) for i in range(300)]
    p.flush(30)
    acked = {(f.get(10).partition, f.get(10).offset) for f in futs}
    p.close()
    c = KafkaConsumer("kp", bootstrap_servers=cluster.bootstrap.split(","), group_id="kpg",
                      auto_offset_reset="earliest", enable_auto_commit=False, consumer_timeout_ms=15000)
    seen = set()
    for m in c:
        seen.add((m.partition, m.offset))
        if len(seen) >= len(acked):
            break
    c.commit()
    committed = {tp.partition: c.committed(tp) for tp in c.assignment()}
    c.close()
    assert seen == acked
    assert sum(committed.values()) == len(acked)


def test_aiokafka_producer_and_group(cluster: KafkaCoreCluster) -> None:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    _create(cluster, "aio")

    async def run() -> tuple[set[tuple[int, int]], set[tuple[int, int]]]:
        p = AIOKafkaProducer(bootstrap_servers=cluster.bootstrap, acks="all")
        await p.start()
        try:
            acked = set()
            for i in range(200):
                md = await p.send_and_wait("aio", f"a{i}".encode())
                acked.add((md.partition, md.offset))
        finally:
            await p.stop()
        c = AIOKafkaConsumer("aio", bootstrap_servers=cluster.bootstrap, group_id="aiog",
                             auto_offset_reset="earliest", enable_auto_commit=False)
        await c.start()
        seen: set[tuple[int, int]] = set()
        try:
            async def drain() -> None:
                async for m in c:
                    seen.add((m.partition, m.offset))
                    if len(seen) >= len(acked):
                        await c.commit()
                        return
            await asyncio.wait_for(drain(), 30)
        finally:
            await c.stop()
        return acked, seen
    acked, seen = asyncio.run(run())
    assert seen == acked


@pytest.mark.skipif(shutil.which("java") is None, reason="java is installed by ./dev test")
def test_java_console_producer_and_consumer(cluster: KafkaCoreCluster) -> None:
    from kafka_bench import apache_kafka as ak

    _create(cluster, "java", partitions=1)
    lines = [f"line-{i}" for i in range(50)]
    r = ak.java_main(ak.CONSOLE_PRODUCER, ["--bootstrap-server", cluster.bootstrap, "--topic", "java",
                                           "--producer-property", "acks=all"],
                     input="\n".join(lines).encode() + b"\n", timeout=120, check=False)
    assert r.returncode == 0, r.stderr.decode()[-2000:]
    r = ak.java_main(ak.CONSOLE_CONSUMER, ["--bootstrap-server", cluster.bootstrap, "--topic", "java",
                                           "--from-beginning", "--group", "javag", "--max-messages", "50",
                                           "--timeout-ms", "30000"], timeout=120, check=False)
    assert r.stdout.decode().split() == lines, r.stderr.decode()[-2000:]


def test_librdkafka_kip848_group(cluster: KafkaCoreCluster) -> None:
    """group.protocol=consumer (ConsumerGroupHeartbeat) in the cluster: two members share the
    partitions, coordinated by the leader of the group's __consumer_offsets partition."""
    import confluent_kafka as ck

    _create(cluster, "k848", partitions=4)
    p = ck.Producer({"bootstrap.servers": cluster.bootstrap, "acks": "all"})
    for i in range(400):
        p.produce("k848", f"v{i}".encode(), partition=i % 4)
    p.flush(30)
    conf = {"bootstrap.servers": cluster.bootstrap, "group.id": "g848", "group.protocol": "consumer",
            "auto.offset.reset": "earliest", "enable.auto.commit": False}
    consumers = [ck.Consumer(conf), ck.Consumer(conf)]
    for c in consumers:
        c.subscribe(["k848"])
    seen: set[tuple[int, int]] = set()
    deadline = time.monotonic() + 60
    owned: list[set[int]] = [set(), set()]
    # until everything is read and the two members share the partitions (the second may join
    # after the first has read it all: the coordinator then moves partitions over)
    while (len(seen) < 400 or not all(owned)) and time.monotonic() < deadline:
        for c in consumers:
            for m in c.consume(200, 0.5):
                if m.error() is None:
                    seen.add((m.partition(), m.offset()))
        owned = [{tp.partition for tp in c.assignment()} for c in consumers]
    for c in consumers:
        c.close()
    assert len(seen) == 400
    assert owned[0] | owned[1] == {0, 1, 2, 3} and not owned[0] & owned[1] and all(owned)
