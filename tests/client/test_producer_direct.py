"""The producer's linger.ms=0 shortcut (``_Engine.send_direct``): a record that opens the only
batch to send, with nothing in flight to its leader, is sealed and sent at once -- from the
loop for AIOProducer, from the caller's thread (a plain socket write) for the sync Producer.

These check that the shortcut is taken, and that it keeps what the general drain keeps: order,
each record once, idempotence sequence numbers (the broker refuses a gap or a reorder) under
injected retriable errors, and that a connection it cannot write to directly (TLS, SASL, bytes
still queued) falls back to the loop."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import pytest
from kafka_client import AIOProducer, Producer
from kafka_client import producer as producer_mod

from .helpers import consume, flat
from .proxy import PRODUCE, FaultProxy

NOT_LEADER, NOT_ENOUGH_REPLICAS = 6, 19


@pytest.fixture
def proxy(bootstrap: str) -> Iterator[FaultProxy]:
    host, port = bootstrap.split(":")
    with FaultProxy(host, int(port)) as p:
        p.redirect = True
        yield p


@pytest.fixture
def direct_calls(monkeypatch: pytest.MonkeyPatch) -> dict[bool, int]:
    """How many sends took the shortcut, by ``threaded``."""
    counts = {True: 0, False: 0}
    real = producer_mod._Engine.send_direct

    def counting(self: Any, threaded: bool) -> bool:
        ok = real(self, threaded)
        counts[threaded] += ok
        return ok
    monkeypatch.setattr(producer_mod._Engine, "send_direct", counting)
    return counts


def _sequences_ok(engine: Any, topic: str, n: int) -> None:
    st = engine.parts[(topic, 0)]
    assert st.next_seq == n and st.last_acked == n - 1, "one sequence per record, none skipped"
    assert engine.producer_epoch == 0, "no epoch bump: nothing was out of order"


@pytest.mark.parametrize("code", [NOT_LEADER, NOT_ENOUGH_REPLICAS])
def test_sync_awaited_sends_take_the_caller_thread_write_and_survive_retries(
        kafka, new_topic, proxy: FaultProxy, direct_calls: dict[bool, int], code: int) -> None:  # type: ignore[no-untyped-def]
    topic = new_topic()
    n = 60
    with Producer(proxy.address, linger_ms=0, retry_backoff_ms=20, request_timeout_ms=5000) as p:
        p.send(topic, b"0", partition=0).result(30)
        inj = proxy.inject(PRODUCE, code, topic=topic, count=5)
        offsets = [p.send(topic, b"%d" % i, partition=0).result(30).offset for i in range(1, n)]
        assert inj.hits == 5
        _sequences_ok(p._engine, topic, n)
        assert p.metrics()["record-send-total"] == n
    assert offsets == list(range(1, n)), "awaited one at a time: consecutive offsets"
    assert direct_calls[True] >= n - 5, "all but the retried sends were written from the caller thread"
    values = [r.value for r in flat(consume(kafka.bootstrap, topic, n, timeout=30))]
    assert values == [b"%d" % i for i in range(n)]


def test_sync_pipelined_sends_keep_order_under_retries(kafka, new_topic, proxy: FaultProxy,  # type: ignore[no-untyped-def]
                                                       direct_calls: dict[bool, int]) -> None:
    topic = new_topic()
    n = 300
    with Producer(proxy.address, linger_ms=0, batch_size=400, retry_backoff_ms=20, request_timeout_ms=5000) as p:
        p.send(topic, b"w", partition=0).result(30)
        inj = proxy.inject(PRODUCE, NOT_LEADER, topic=topic, count=4)
        futs = [p.send(topic, b"%d" % i, partition=0) for i in range(n)]
        p.flush(60)
        offsets = [f.result(0).offset for f in futs]
        assert inj.hits == 4
        _sequences_ok(p._engine, topic, n + 1)
    assert offsets == sorted(offsets) and len(set(offsets)) == n
    assert direct_calls[True] >= 1
    values = [r.value for r in flat(consume(kafka.bootstrap, topic, n + 1, timeout=30))]
    assert values == [b"w"] + [b"%d" % i for i in range(n)], "each record once, in order"


def test_aio_shortcut_keeps_order_and_sequences_under_retries(kafka, new_topic, proxy: FaultProxy,  # type: ignore[no-untyped-def]
                                                              direct_calls: dict[bool, int]) -> None:
    topic = new_topic()
    n = 200

    async def go() -> list[int]:
        async with AIOProducer(proxy.address, linger_ms=0, retry_backoff_ms=20, request_timeout_ms=5000) as p:
            first = [(await p.send(topic, b"%d" % i, partition=0)).offset for i in range(20)]
            inj = proxy.inject(PRODUCE, NOT_LEADER, topic=topic, count=4)
            futs = [p.send_nowait(topic, b"%d" % i, partition=0) for i in range(20, n)]
            rest = [(await f).offset for f in futs]
            assert inj.hits == 4
            _sequences_ok(p.engine, topic, n)
            return first + rest
    offsets = asyncio.run(go())
    assert offsets == sorted(offsets) and len(set(offsets)) == n
    assert direct_calls[False] >= 20
    values = [r.value for r in flat(consume(kafka.bootstrap, topic, n, timeout=30))]
    assert values == [b"%d" % i for i in range(n)]


def test_no_caller_thread_write_without_a_plain_socket(kafka, new_topic, direct_calls: dict[bool, int]) -> None:  # type: ignore[no-untyped-def]
    """Bytes still queued in the transport: the direct write refuses and the loop sends."""
    topic = new_topic()
    with Producer(kafka.bootstrap, linger_ms=0) as p:
        p.send(topic, b"a", partition=0).result(30)
        cluster = p._engine.cluster
        conn = cluster.connection_if_ready(cluster.leader_for(topic, 0))
        assert conn._direct_fd >= 0
        real = conn._transport.get_write_buffer_size
        conn._transport = _BusyTransport(conn._transport)
        try:
            before = direct_calls[True]
            assert p.send(topic, b"b", partition=0).result(30).offset == 1
            assert direct_calls[True] == before, "not written directly while the transport holds bytes"
        finally:
            conn._transport = conn._transport.inner
        assert real() == 0
        conn._direct_fd = -1        # as on TLS / SASL connections
        before = direct_calls[True]
        assert p.send(topic, b"c", partition=0).result(30).offset == 2
        assert direct_calls[True] == before


def test_sync_direct_write_arms_the_request_timeout(kafka, new_topic, proxy: FaultProxy,  # type: ignore[no-untyped-def]
                                                    direct_calls: dict[bool, int]) -> None:
    """A request written from the caller's thread times out (closing the connection, then
    retried) exactly as one written on the loop: the direct write arms the connection's timer."""
    topic = new_topic()
    p = Producer(proxy.address, linger_ms=0, request_timeout_ms=300, retry_backoff_ms=20)
    try:
        p.send(topic, b"a", partition=0).result(30)
        cluster = p._engine.cluster
        conn = cluster.connection_if_ready(cluster.leader_for(topic, 0))

        async def disarm() -> None:      # as after a quiet spell: no timer armed
            if conn._timer is not None:
                conn._timer.cancel()
                conn._timer = None
        p._thread.run(disarm())
        proxy.mode = "stall"
        before = direct_calls[True]
        f = p.send(topic, b"b", partition=0)
        assert direct_calls[True] == before + 1
        deadline = time.monotonic() + 20
        while not conn.closed:           # 0.3 s + the producer's 5 s margin, then it closes
            assert time.monotonic() < deadline, "the direct write's request never timed out"
            time.sleep(0.05)
        assert "timed out" in str(conn.close_reason)
        proxy.mode = "pass"
        f.result(30)
    finally:
        proxy.mode = "pass"
        p.close(5)
    values = [r.value for r in flat(consume(kafka.bootstrap, topic, 2, timeout=30))]
    assert values == [b"a", b"b"], "the retry wrote it once"


class _BusyTransport:
    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def get_write_buffer_size(self) -> int:
        return 1

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)
