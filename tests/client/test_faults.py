"""Failure handling: request timeout, reset mid-response, bad frames (through a fault
proxy), and a broker restart during produce (no loss, no duplicates)."""

from __future__ import annotations

import asyncio
import threading
import time

import kafka_protocol as kp
import pytest
from kafka_bench.kafka_core_broker import KafkaCoreBroker
from kafka_client import AIOProducer, Producer
from kafka_client.conn import BrokerConnection
from kafka_client.errors import BadResponseError, KafkaConnectionError, KafkaTimeoutError

from .helpers import consume, flat
from .proxy import FaultProxy


@pytest.fixture
def proxy(bootstrap: str):  # type: ignore[no-untyped-def]
    host, port = bootstrap.split(":")
    with FaultProxy(host, int(port)) as p:
        yield p


def _metadata() -> kp.MetadataRequest:
    return kp.MetadataRequest(topics=[], allow_auto_topic_creation=False)


async def _connect(proxy: FaultProxy, timeout_ms: int = 30000) -> BrokerConnection:
    c = BrokerConnection("127.0.0.1", proxy.port, request_timeout_ms=timeout_ms)
    return await c.connect()


def test_negotiates_versions_and_pipelines(proxy: FaultProxy) -> None:
    async def go() -> None:
        c = await _connect(proxy)
        assert 1 <= c.version(kp.MetadataRequest.API_KEY) <= 12
        resps = await asyncio.gather(*[c.send(_metadata()) for _ in range(50)])
        assert len(resps) == 50 and all(r.brokers for r in resps)
        c.close()

    asyncio.run(go())


def test_request_timeout_closes_connection(proxy: FaultProxy) -> None:
    async def go() -> None:
        c = await _connect(proxy, timeout_ms=300)
        proxy.mode = "stall"
        futs = [c.send_nowait(_metadata()) for _ in range(3)]
        t0 = time.monotonic()
        with pytest.raises(KafkaTimeoutError):
            await futs[0]
        assert time.monotonic() - t0 < 5
        for f in futs[1:]:  # everything else in flight fails too (retriable)
            with pytest.raises(KafkaTimeoutError):
                await f
        assert c.closed
        proxy.mode = "pass"
        c2 = await _connect(proxy)
        assert (await c2.send(_metadata())).brokers
        c2.close()

    asyncio.run(go())


def test_reset_mid_response(proxy: FaultProxy) -> None:
    async def go() -> None:
        c = await _connect(proxy)
        proxy.reset_after = 9
        proxy.mode = "reset"
        with pytest.raises(KafkaConnectionError) as ei:
            await c.send(_metadata())
        assert ei.value.retriable and c.closed

    asyncio.run(go())


@pytest.mark.parametrize("mode", ["corrupt", "bad_cid"])
def test_bad_response_frame(proxy: FaultProxy, mode: str) -> None:
    async def go() -> None:
        c = await _connect(proxy)
        proxy.mode = mode
        with pytest.raises(BadResponseError):
            await c.send(_metadata())
        assert c.closed
        with pytest.raises(KafkaConnectionError):
            await c.send(_metadata())  # the connection is unusable afterwards

    asyncio.run(go())


def test_bootstrap_skips_dead_servers(bootstrap: str) -> None:
    async def go() -> None:
        async with AIOProducer(f"127.0.0.1:1,{bootstrap}", connect_timeout_ms=500) as p:
            assert p.engine.cluster.brokers

    asyncio.run(go())


@pytest.fixture
def proxied_core_broker():  # type: ignore[no-untyped-def]
    """A kafka-core broker whose advertised address is a fault proxy in front of it, so that
    every connection of the client goes through the proxy."""
    b = KafkaCoreBroker(settings={"num.partitions": "1"})
    proxy = FaultProxy("127.0.0.1", b.port)
    b.settings["advertised.listeners"] = f"PLAINTEXT://127.0.0.1:{proxy.port}"
    try:
        b.start()   # our own broker not starting is a failure, never a skip (as in conftest.py)
    except BaseException:
        proxy.close()
        raise
    yield b, proxy
    proxy.close()
    b.cleanup()


def test_producer_retries_through_connection_resets(proxied_core_broker) -> None:  # type: ignore[no-untyped-def]
    b, proxy = proxied_core_broker
    topic = "resets"
    n = 300
    with Producer(proxy.address, linger_ms=2, batch_size=512, request_timeout_ms=3000,
                  retry_backoff_ms=20) as p:
        p.send(topic, b"warmup").result(30)
        futs = []
        for i in range(n):
            futs.append(p.send(topic, b"%d" % i))
            if i % 60 == 30:
                proxy.reset_after = 20  # cut a produce response: the request may or may not be written
                proxy.mode = "reset"
                time.sleep(0.05)
        p.flush()
        offsets = [f.result(30).offset for f in futs]
    assert len(set(offsets)) == n
    values = [r.value for r in flat(consume(proxy.address, topic, n + 1, timeout=20))]
    # Idempotence: each record exactly once, in order.
    assert values == [b"warmup"] + [b"%d" % i for i in range(n)]


def test_broker_restart_during_produce(kafka, new_topic) -> None:  # type: ignore[no-untyped-def]
    topic = new_topic()
    n = 2000
    errors: list = []
    with Producer(kafka.bootstrap, acks="all", linger_ms=2, request_timeout_ms=5000, retry_backoff_ms=100,
                  delivery_timeout_ms=120000, max_block_ms=120000) as p:
        futs = []

        def restart() -> None:
            time.sleep(0.3)
            kafka.restart()

        t = threading.Thread(target=restart)
        t.start()
        for i in range(n):
            futs.append(p.send(topic, b"%d" % i))
            if i % 100 == 0:
                time.sleep(0.05)
        t.join()
        p.flush()
        for f in futs:
            try:
                f.result(60)
            except Exception as exc:  # pragma: no cover - reported below
                errors.append(exc)
    assert not errors, errors[:3]
    values = [int(r.value) for r in flat(consume(kafka.bootstrap, topic, n, timeout=60))]
    assert sorted(values) == list(range(n)), "acks=all: nothing lost, idempotence: nothing twice"
    assert values == sorted(values), "max 5 in flight with idempotence keeps order"
