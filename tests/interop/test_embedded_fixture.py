"""The ``kafka_core_broker`` pytest fixture (kafka_broker.testing, issue 15) as an application's
tests would use it, with each client: a fresh broker per test, a record produced and read back."""

from __future__ import annotations

import asyncio

import pytest

pytestmark = pytest.mark.interop


def test_confluent_kafka(kafka_core_broker) -> None:  # type: ignore[no-untyped-def]
    import confluent_kafka as ck

    p = ck.Producer({"bootstrap.servers": kafka_core_broker.bootstrap})
    p.produce("orders", b"one")
    assert p.flush(10) == 0
    c = ck.Consumer({"bootstrap.servers": kafka_core_broker.bootstrap, "group.id": "app",
                     "auto.offset.reset": "earliest"})
    c.subscribe(["orders"])
    m = None
    for _ in range(40):
        m = c.poll(0.5)
        if m is not None and m.error() is None:
            break
    c.close()
    assert m is not None and m.value() == b"one"


def test_kafka_python(kafka_core_broker) -> None:  # type: ignore[no-untyped-def]
    import kafka

    p = kafka.KafkaProducer(bootstrap_servers=kafka_core_broker.bootstrap)
    p.send("orders", b"two").get(10)
    p.close()
    c = kafka.KafkaConsumer("orders", bootstrap_servers=kafka_core_broker.bootstrap, group_id="app",
                            auto_offset_reset="earliest", consumer_timeout_ms=10000)
    got = [m.value for m in c]
    c.close()
    assert got == [b"two"]


def test_aiokafka(kafka_core_broker) -> None:  # type: ignore[no-untyped-def]
    import aiokafka

    async def go() -> bytes:
        p = aiokafka.AIOKafkaProducer(bootstrap_servers=kafka_core_broker.bootstrap)
        await p.start()
        await p.send_and_wait("orders", b"three")
        await p.stop()
        c = aiokafka.AIOKafkaConsumer("orders", bootstrap_servers=kafka_core_broker.bootstrap, group_id="app",
                                      auto_offset_reset="earliest")
        await c.start()
        try:
            m = await asyncio.wait_for(c.getone(), 20)
        finally:
            await c.stop()
        return m.value
    assert asyncio.run(go()) == b"three"


def test_kafka_client(kafka_core_broker) -> None:  # type: ignore[no-untyped-def]
    from kafka_client import Consumer, Producer

    with Producer(kafka_core_broker.bootstrap) as p:
        p.send("orders", b"four").result(10)
    with Consumer("orders", bootstrap_servers=kafka_core_broker.bootstrap, group_id="app",
                  auto_offset_reset="earliest") as c:
        got: list[bytes] = []
        for _ in range(20):
            for recs in c.poll(1.0).values():
                got += [r.value for r in recs]
            if got:
                break
    assert got == [b"four"]


def test_each_test_gets_a_fresh_broker(kafka_core_broker) -> None:  # type: ignore[no-untyped-def]
    from kafka_client import AdminClient

    with AdminClient(kafka_core_broker.bootstrap) as a:
        assert "orders" not in a.list_topics()
