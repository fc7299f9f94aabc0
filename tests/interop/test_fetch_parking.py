"""Issue 11: a fetch never parks while a record it asked for is readable.  The broker counts long
polls that parked with a record readable below the high watermark (min_bytes 1, every client's
default) and logs the count at shutdown; drains of 1, 3, 6 and 50 partitions with librdkafka,
kafka-python, aiokafka and kafka_client consumers must leave it at 0.  (The count does not depend
on timing: it is taken at the moment a fetch decides to wait.)"""

from __future__ import annotations

import asyncio
import re
import time

import pytest
from kafka_bench.kafka_core_broker import KafkaCoreBroker

N = 6000
PARTITIONS = (1, 3, 6, 50)
CLIENTS = ("confluent", "kafka-python", "aiokafka", "kafka_client")


def _produce(bootstrap: str, topic: str, partitions: int) -> None:
    import confluent_kafka as ck
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, partitions, 1)])[topic].result(30)
    p = ck.Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    for i in range(N):
        p.produce(topic, b"x" * 200, partition=i % partitions)
        if i % 1000 == 0:
            p.poll(0)
    assert p.flush(30) == 0


def _drain(client: str, bootstrap: str, topic: str, partitions: int) -> int:
    deadline = time.monotonic() + 60
    if client == "confluent":
        import confluent_kafka as ck
        c = ck.Consumer({"bootstrap.servers": bootstrap, "group.id": "d", "enable.auto.commit": False,
                         "fetch.max.bytes": 52428800})
        c.assign([ck.TopicPartition(topic, p, 0) for p in range(partitions)])
        n = 0
        while n < N and time.monotonic() < deadline:
            n += sum(1 for m in c.consume(10000, 1.0) if m.error() is None)
        c.close()
        return n
    if client == "kafka-python":
        from kafka import KafkaConsumer, TopicPartition
        kc = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        kc.assign(tps)
        for tp in tps:
            kc.seek(tp, 0)
        n = 0
        while n < N and time.monotonic() < deadline:
            n += sum(len(v) for v in kc.poll(1000, max_records=10000).values())
        kc.close()
        return n

    async def aio() -> int:
        if client == "aiokafka":
            from aiokafka import AIOKafkaConsumer
            from aiokafka import TopicPartition as ATP
            ac = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
            await ac.start()
            tps = [ATP(topic, p) for p in range(partitions)]
            ac.assign(tps)
            for tp in tps:
                ac.seek(tp, 0)
        else:
            from kafka_client import AIOConsumer
            ac = AIOConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest")
            await ac.start()
            ac.assign([(topic, p) for p in range(partitions)])
        n = 0
        try:
            while n < N and time.monotonic() < deadline:
                got = await ac.getmany(timeout_ms=1000, max_records=10000)
                n += sum(len(v) for v in got.values())
        finally:
            await (ac.stop() if client == "aiokafka" else ac.close())
        return n
    return asyncio.run(aio())


@pytest.mark.parametrize("client", CLIENTS)
def test_no_fetch_parks_with_a_record_readable(client: str) -> None:
    pytest.importorskip({"confluent": "confluent_kafka", "kafka-python": "kafka", "aiokafka": "aiokafka",
                         "kafka_client": "kafka_client"}[client])
    b = KafkaCoreBroker(settings={"group.initial.rebalance.delay.ms": "0"})
    with b:
        for parts in PARTITIONS:
            topic = f"drain-{parts}"
            _produce(b.bootstrap, topic, parts)
            assert _drain(client, b.bootstrap, topic, parts) == N, (client, parts)
        b.stop()
        m = re.findall(r"fetch: (\d+) long poll\(s\) parked, (\d+) of them with a record readable", b.log_text())
    assert m, b.log_text()[-2000:]
    parked, with_data = map(int, m[-1])
    assert with_data == 0, f"{client}: {with_data} of {parked} parked fetches had a record readable"
