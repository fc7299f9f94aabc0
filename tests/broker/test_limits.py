"""Connection and request limits the broker honours (issue 16): ``max.connections`` is enforced,
and ``queued.max.requests`` (a broker-wide queue kafka-core does not have) is refused unless at
Kafka's default."""

from __future__ import annotations

import socket
import time

import pytest
from kafka_bench.kafka_core_broker import KafkaCoreBroker
from kafka_broker.config import BrokerConfig, ConfigError

from .conftest import RawClient

API_VERSIONS = 18


def _closed_by_peer(s: socket.socket, timeout: float = 5) -> bool:
    s.settimeout(timeout)
    try:
        return s.recv(1) == b""
    except (ConnectionResetError, BrokenPipeError):
        return True
    except TimeoutError:
        return False


def test_max_connections_is_enforced(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from kafka_protocol.messages import REQUESTS

    with KafkaCoreBroker(data_dir=tmp_path, settings={"max.connections": "3"}) as b:
        held = [socket.create_connection(("127.0.0.1", b.port)) for _ in range(3)]
        time.sleep(0.3)                          # the broker has accepted the three
        extra = socket.create_connection(("127.0.0.1", b.port))
        assert _closed_by_peer(extra)            # the fourth is closed as it arrives
        extra.close()
        held.pop().close()
        time.sleep(0.3)
        with RawClient(b.port) as c:             # a slot is free again: a request is answered
            req = REQUESTS[API_VERSIONS](client_software_name="t", client_software_version="1")
            assert c.call(req, 3).error_code == 0
        for s in held:
            s.close()
        assert "max.connections (3) are open" in b.log_text()


def test_queued_max_requests_only_at_kafkas_default() -> None:
    assert BrokerConfig({"queued.max.requests": "500"}).inert == {"queued.max.requests": "500"}
    with pytest.raises(ConfigError, match="queued.max.requests"):
        BrokerConfig({"queued.max.requests": "10"})
