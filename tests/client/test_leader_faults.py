"""Leader changes and retriable errors, as the Java client handles them: a fault proxy in
front of the broker rewrites Produce, Fetch and Metadata responses (NOT_LEADER_OR_FOLLOWER,
LEADER_NOT_AVAILABLE, leader -1, ...) and the client must refresh metadata, retry with
backoff and deliver every record once, in order; non-retriable errors fail fast; a leader
that never returns is bounded by delivery.timeout.ms."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import pytest
from kafka_client import AIOConsumer, Producer, TopicPartition
from kafka_client.errors import (
    InvalidTopicExceptionError,
    KafkaTimeoutError,
    TopicAuthorizationFailedError,
)

from .helpers import consume, flat
from .proxy import FETCH, METADATA, PRODUCE, FaultProxy

NOT_LEADER, LEADER_NOT_AVAILABLE, UNKNOWN_TOPIC_OR_PARTITION = 6, 5, 3
NOT_ENOUGH_REPLICAS, OFFSET_NOT_AVAILABLE = 19, 78


@pytest.fixture
def proxy(bootstrap: str) -> Iterator[FaultProxy]:
    """A proxy that also points the metadata's broker addresses at itself: every connection of
    a client bootstrapped from ``proxy.address`` goes through it."""
    host, port = bootstrap.split(":")
    with FaultProxy(host, int(port)) as p:
        p.redirect = True
        yield p


def _wait_for(cond: Any, timeout: float = 20, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def _producer(proxy: FaultProxy, idempotent: bool, **kw: Any) -> Producer:
    cfg: dict[str, Any] = dict(linger_ms=2, batch_size=600, retry_backoff_ms=30, request_timeout_ms=5000)
    if not idempotent:
        # Without idempotence only one request in flight keeps order across retries (as in Java).
        cfg.update(enable_idempotence=False, max_in_flight_requests_per_connection=1)
    cfg.update(kw)
    return Producer(proxy.address, **cfg)


@pytest.mark.parametrize("idempotent", [True, False], ids=["idempotent", "plain"])
@pytest.mark.parametrize("code", [NOT_LEADER, LEADER_NOT_AVAILABLE, UNKNOWN_TOPIC_OR_PARTITION,
                                  NOT_ENOUGH_REPLICAS])
def test_producer_retries_retriable_errors(kafka, new_topic, proxy: FaultProxy, idempotent: bool,  # type: ignore[no-untyped-def]
                                           code: int) -> None:
    topic = new_topic()
    n = 200
    with _producer(proxy, idempotent) as p:
        p.send(topic, b"warmup").result(30)
        meta_before = proxy.requests(METADATA)
        inj = proxy.inject(PRODUCE, code, topic=topic, count=4)
        futs = [p.send(topic, b"%d" % i) for i in range(n)]
        p.flush(60)
        offsets = [f.result(0).offset for f in futs]
    assert inj.hits == 4
    assert offsets == sorted(offsets) and len(set(offsets)) == n
    if code != NOT_ENOUGH_REPLICAS:  # not a metadata error: Java retries without a refresh
        assert proxy.requests(METADATA) > meta_before
        assert proxy.requests_after_error(PRODUCE, METADATA) >= 1
    values = [r.value for r in flat(consume(kafka.bootstrap, topic, n + 1, timeout=30))]
    assert values == [b"warmup"] + [b"%d" % i for i in range(n)], "each record once, in order"


@pytest.mark.parametrize("code,exc", [(29, TopicAuthorizationFailedError), (17, InvalidTopicExceptionError)],
                         ids=["TOPIC_AUTHORIZATION_FAILED", "INVALID_TOPIC_EXCEPTION"])
def test_producer_non_retriable_error_fails_batch(kafka, new_topic, proxy: FaultProxy, code: int,  # type: ignore[no-untyped-def]
                                                  exc: type[Exception]) -> None:
    topic = new_topic()
    with _producer(proxy, True, delivery_timeout_ms=120000) as p:
        p.send(topic, b"warmup").result(30)
        inj = proxy.inject(PRODUCE, code, topic=topic, count=None)
        produced = proxy.requests(PRODUCE)
        futs = [p.send(topic, b"x%d" % i) for i in range(5)]
        for f in futs:
            with pytest.raises(exc):
                f.result(20)  # far below delivery_timeout_ms: no retries
        assert inj.hits == 1 and proxy.requests(PRODUCE) == produced + 1, "failed without a retry"
        inj.stop()
        assert p.send(topic, b"after").result(30).offset >= 1  # the producer goes on
    values = [r.value for r in flat(consume(kafka.bootstrap, topic, 2, timeout=30))]
    assert values == [b"warmup", b"after"]


@pytest.mark.parametrize("idempotent", [True, False], ids=["idempotent", "plain"])
def test_producer_waits_while_leader_unknown(kafka, new_topic, proxy: FaultProxy, idempotent: bool) -> None:  # type: ignore[no-untyped-def]
    topic = new_topic()
    n = 50
    with _producer(proxy, idempotent) as p:
        p.send(topic, b"warmup").result(30)
        # The leader moves away: the old one says NOT_LEADER, and metadata shows no leader.
        no_leader = proxy.inject(METADATA, LEADER_NOT_AVAILABLE, topic=topic, count=None, leader=-1)
        proxy.inject(PRODUCE, NOT_LEADER, topic=topic, count=1)
        futs = [p.send(topic, b"%d" % i) for i in range(n)]
        # The producer keeps asking for metadata while it knows no leader ...
        _wait_for(lambda: no_leader.hits >= 4, what="metadata refreshes while the leader is unknown")
        assert not futs[0].done(), "nothing can be delivered without a leader"
        # ... and sends as soon as the leader is back.
        no_leader.stop()
        offsets = [f.result(30).offset for f in futs]
    assert offsets == sorted(offsets) and len(set(offsets)) == n
    values = [r.value for r in flat(consume(kafka.bootstrap, topic, n + 1, timeout=30))]
    assert values == [b"warmup"] + [b"%d" % i for i in range(n)]


def test_producer_new_partition_without_leader(kafka, new_topic, proxy: FaultProxy) -> None:  # type: ignore[no-untyped-def]
    """Leader -1 from the first metadata on: records wait in the accumulator, then go."""
    topic = new_topic()
    no_leader = proxy.inject(METADATA, LEADER_NOT_AVAILABLE, topic=topic, count=None, leader=-1)
    with _producer(proxy, True) as p:
        futs = [p.send(topic, b"%d" % i) for i in range(20)]
        _wait_for(lambda: no_leader.hits >= 3, what="metadata refreshes while the leader is unknown")
        assert not any(f.done() for f in futs)
        no_leader.stop()
        assert [f.result(30).offset for f in futs] == list(range(20))


def test_delivery_timeout_when_leader_never_returns(kafka, new_topic, proxy: FaultProxy) -> None:  # type: ignore[no-untyped-def]
    topic = new_topic()
    with _producer(proxy, True, delivery_timeout_ms=1500) as p:
        p.send(topic, b"warmup").result(30)
        proxy.inject(METADATA, LEADER_NOT_AVAILABLE, topic=topic, count=None, leader=-1)
        proxy.inject(PRODUCE, NOT_LEADER, topic=topic, count=None)
        futs = [p.send(topic, b"%d" % i) for i in range(10)]
        for f in futs:
            with pytest.raises(KafkaTimeoutError) as ei:
                f.result(30)
            assert f"{topic}-0" in str(ei.value)
        proxy.clear()
        assert p.send(topic, b"after").result(30).offset >= 1  # the leader is back: delivered again
    values = [r.value for r in flat(consume(kafka.bootstrap, topic, 2, timeout=30))]
    assert values == [b"warmup", b"after"]


async def _consume_with_faults(proxy: FaultProxy, topic: str, n: int, inject: Any) -> list[Any]:
    c = AIOConsumer(bootstrap_servers=proxy.address, auto_offset_reset="earliest", max_partition_fetch_bytes=512,
                    retry_backoff_ms=30, fetch_max_wait_ms=100)
    await c.start()
    out: list[Any] = []
    try:
        c.assign([TopicPartition(topic, 0)])
        deadline = time.monotonic() + 60
        injected = False
        while len(out) < n and time.monotonic() < deadline:
            for recs in (await c.getmany(timeout_ms=200)).values():
                out += recs
            if not injected and out:
                inject()  # mid-stream: the next fetches fail
                injected = True
        await asyncio.sleep(0.3)  # anything duplicated would arrive now
        for recs in (await c.getmany(timeout_ms=100)).values():
            out += recs
    finally:
        await c.close()
    return out


def _fetch_through_faults(kafka: Any, proxy: FaultProxy, topic: str, n: int,
                          *faults: tuple[int, int, dict[str, Any]]) -> tuple[list[Any], list[Any]]:
    """Produce b"0" .. b"<n-1>" straight to the broker, then consume them through the proxy, which
    injects each fault (api, error code, proxy.inject keywords) on topic once the first records
    are in. The records consumed, and the injections."""
    with Producer(kafka.bootstrap, linger_ms=2, batch_size=400) as p:
        for i in range(n):
            p.send(topic, b"%d" % i)
        p.flush(30)
    injections: list[Any] = []

    def inject() -> None:
        injections.extend(proxy.inject(api, code, topic=topic, **kw) for api, code, kw in faults)

    return asyncio.run(_consume_with_faults(proxy, topic, n, inject)), injections


@pytest.mark.parametrize("code", [NOT_LEADER, OFFSET_NOT_AVAILABLE, UNKNOWN_TOPIC_OR_PARTITION,
                                  LEADER_NOT_AVAILABLE])
def test_consumer_recovers_from_fetch_errors(kafka, new_topic, proxy: FaultProxy, code: int) -> None:  # type: ignore[no-untyped-def]
    topic = new_topic()
    n = 300
    out, injections = _fetch_through_faults(kafka, proxy, topic, n, (FETCH, code, {"count": 3}))
    assert injections and injections[0].hits == 3
    assert [r.offset for r in out] == list(range(n)), "no record skipped or duplicated"
    assert [r.value for r in out] == [b"%d" % i for i in range(n)]
    if code != OFFSET_NOT_AVAILABLE:
        assert proxy.requests_after_error(FETCH, METADATA) >= 1


def test_consumer_waits_while_leader_unknown(kafka, new_topic, proxy: FaultProxy) -> None:  # type: ignore[no-untyped-def]
    topic = new_topic()
    n = 200
    out, injections = _fetch_through_faults(kafka, proxy, topic, n,
                                            (METADATA, LEADER_NOT_AVAILABLE, {"count": 4, "leader": -1}),
                                            (FETCH, NOT_LEADER, {"count": 1}))
    assert [i.hits for i in injections] == [4, 1]
    assert [r.offset for r in out] == list(range(n))
