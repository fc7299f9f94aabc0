"""A small application written against kafka_client's public API, type-checked by
tests/unit/test_types.py with ``mypy --strict`` (the package ships py.typed)."""

from __future__ import annotations

import asyncio

from kafka_client import (
    AdminClient,
    AIOConsumer,
    AIOProducer,
    Consumer,
    ConsumerGroupMetadata,
    ConsumerRecord,
    NewTopic,
    Producer,
    TopicPartition,
)


def produce_and_read(bootstrap: str, topic: str) -> list[bytes]:
    with AdminClient(bootstrap) as admin:
        admin.create_topics([NewTopic(topic, 1, 1, {})])
    with Producer(bootstrap, linger_ms=0) as p:
        md = p.send(topic, b"hello", key=b"k").result(10)
        assert md.partition == 0
    out: list[bytes] = []
    with Consumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest") as c:
        c.assign([TopicPartition(topic, 0)])
        for records in c.poll(5).values():
            out += [r.value for r in records if r.value is not None]
    return out


async def produce_and_read_async(bootstrap: str, topic: str) -> int:
    async with AIOProducer(bootstrap) as p:
        await p.send(topic, b"hello")
    async with AIOConsumer(topic, bootstrap_servers=bootstrap, group_id=f"{topic}-app",
                           auto_offset_reset="earliest") as c:
        rec = await c.getone()
        return rec.offset


def transform_in_transaction(bootstrap: str, src: str, dst: str) -> list[bytes]:
    """Consume-transform-produce: one record of ``src`` upper-cased into ``dst``, its offset
    committed in the same transaction; returns what a read_committed consumer sees in ``dst``."""
    with AdminClient(bootstrap) as admin:
        admin.create_topics([NewTopic(src, 1, 1, {}), NewTopic(dst, 1, 1, {})])
    with Producer(bootstrap, linger_ms=0) as p:
        p.send(src, b"hello").result(10)
    group = f"{src}-app"
    with Producer(bootstrap, transactional_id=f"{src}-txn", transaction_timeout_ms=30000) as tp, \
            Consumer(src, bootstrap_servers=bootstrap, group_id=group, auto_offset_reset="earliest",
                     enable_auto_commit=False, isolation_level="read_committed") as c:
        tp.init_transactions(30.0)
        records: list[ConsumerRecord] = []
        while not records:
            records = [r for rs in c.poll(1.0).values() for r in rs]
        meta: ConsumerGroupMetadata = c.group_metadata()
        tp.begin_transaction()
        for r in records:
            tp.send(dst, (r.value or b"").upper())
        tp.send_offsets_to_transaction({TopicPartition(src, 0): records[-1].offset + 1}, meta, 30.0)
        tp.commit_transaction(30.0)
        assert c.committed(TopicPartition(src, 0)) == records[-1].offset + 1
    out: list[bytes] = []
    with Consumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest", isolation_level="read_committed") as rc:
        rc.assign([TopicPartition(dst, 0)])
        while not out:
            for rs in rc.poll(1.0).values():
                out += [r.value for r in rs if r.value is not None]
    return out


if __name__ == "__main__":
    print(produce_and_read("localhost:9092", "typed-app"), asyncio.run(produce_and_read_async("localhost:9092", "typed-app")))
