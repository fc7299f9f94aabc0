"""aiokafka (non-flexible protocol versions only) against kafka-core."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from .records import CODECS, make_records


async def _round_trip(bootstrap: str, topic: str, codec: str, records) -> tuple[list[int], list]:
    p = AIOKafkaProducer(bootstrap_servers=bootstrap, compression_type=None if codec == "none" else codec,
                         linger_ms=5)
    await p.start()
    try:
        futs = [await p.send(topic, value=v, key=k, headers=h, partition=0) for k, v, h in records]
        offsets = [(await f).offset for f in futs]
    finally:
        await p.stop()
    c = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                         auto_offset_reset="earliest")
    await c.start()
    got = []
    try:
        tp = TopicPartition(topic, 0)
        c.assign([tp])
        await c.seek_to_beginning(tp)
        async def drain():
            while len(got) < len(records):
                batch = await c.getmany(tp, timeout_ms=500)
                for msgs in batch.values():
                    got.extend(msgs)
        await asyncio.wait_for(drain(), 30)
    finally:
        await c.stop()
    return offsets, got


@pytest.mark.parametrize("codec", CODECS)
def test_round_trip_every_codec(broker, topic, codec):
    records = make_records(150, seed=3)
    offsets, got = asyncio.run(_round_trip(broker.bootstrap, topic, codec, records))
    assert offsets == list(range(150))
    assert [(m.key, m.value, list(m.headers)) for m in got] == [(k, v, h) for k, v, h in records]


def test_idempotent_producer(broker, topic):
    async def run():
        p = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, enable_idempotence=True)
        await p.start()
        try:
            res = [await (await p.send(topic, value=b"x%d" % i, partition=0)) for i in range(50)]
        finally:
            await p.stop()
        return [r.offset for r in res]

    assert asyncio.run(run()) == list(range(50))
