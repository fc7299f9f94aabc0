"""connections.max.idle.ms: the broker closes connections without traffic for that long."""

from __future__ import annotations

import time

import pytest
from kafka_bench.kafka_core_broker import KafkaCoreBroker
from kafka_protocol.messages import REQUESTS

from .conftest import RawClient, create_topic, fetch_req

ApiVersions = REQUESTS[18]
IDLE_MS = 1000


@pytest.fixture(scope="module")
def idle_broker():
    b = KafkaCoreBroker(settings={"num.partitions": "1", "connections.max.idle.ms": str(IDLE_MS)})
    b.start()
    yield b
    b.cleanup()


def _ping(c: RawClient) -> None:
    r = c.call(ApiVersions(client_software_name="t", client_software_version="1"), 3)
    assert r.error_code == 0


def test_idle_connection_is_closed(idle_broker):
    with RawClient(idle_broker.port) as c:
        _ping(c)
        assert c.is_closed_by_peer(timeout=20)
    with RawClient(idle_broker.port) as never_spoke:   # no request at all
        assert never_spoke.is_closed_by_peer(timeout=20)
    assert "idle for more than connections.max.idle.ms" in idle_broker.log_text()


def test_active_connection_stays_open(idle_broker):
    with RawClient(idle_broker.port) as c:
        # a request every 0.1 s for about 3 idle periods: never idle for IDLE_MS
        for _ in range(30):
            _ping(c)
            time.sleep(0.1)
        _ping(c)


def test_long_poll_in_flight_is_not_idle(idle_broker):
    with RawClient(idle_broker.port) as c:
        create_topic(c, "idle-long-poll")
        # a fetch that waits 3 idle periods for data that never comes: the request is in flight
        resp = c.call(fetch_req("idle-long-poll", 0, 0, max_wait_ms=3 * IDLE_MS, min_bytes=1), 12)
        assert resp.error_code == 0 and resp.responses[0].partitions[0].error_code == 0
        _ping(c)
