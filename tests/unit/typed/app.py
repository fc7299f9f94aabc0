"""A small application written against kafka_client's public API, type-checked by
tests/unit/test_types.py with ``mypy --strict`` (the package ships py.typed)."""

from __future__ import annotations

import asyncio

from kafka_client import AdminClient, AIOConsumer, AIOProducer, Consumer, NewTopic, Producer, TopicPartition


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


if __name__ == "__main__":
    print(produce_and_read("localhost:9092", "typed-app"), asyncio.run(produce_and_read_async("localhost:9092", "typed-app")))
