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


@pytest.fixture
def small_disk(tmp_path):  # type: ignore[no-untyped-def]
    """A 4 MiB tmpfs (the suite runs as root, as CI does)."""
    import subprocess

    d = tmp_path / "small"
    d.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(d)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")
    yield d
    subprocess.run(["umount", "-l", str(d)], check=False)


def test_a_full_disk_answers_storage_errors_and_is_logged(tmp_path, small_disk) -> None:  # type: ignore[no-untyped-def]
    """issue 16: appends to a full log dir answer KAFKA_STORAGE_ERROR, the failure is logged (it was
    not), what was acknowledged before stays readable, and the broker stays up."""
    from .conftest import create_topic, fetch_req, make_batch, produce_req

    (tmp_path / "b").mkdir()
    with KafkaCoreBroker(data_dir=tmp_path / "b", settings={"log.dirs": str(small_disk / "logs"),
                                                           "log.segment.bytes": "1048576"}) as b:
        with RawClient(b.port) as c:
            create_topic(c, "full")
            acked = 0
            code = 0
            for _ in range(400):
                pr = c.call(produce_req("full", 0, make_batch([b"x" * 50_000])), 9).responses[0].partition_responses[0]
                code = pr.error_code
                if code:
                    break
                acked += 1
            assert acked > 0 and code == 56, (acked, code)       # KAFKA_STORAGE_ERROR
            # everything acknowledged is still served
            got, off = 0, 0
            while off < acked:
                pd = c.call(fetch_req("full", 0, off, max_bytes=1 << 20), 12).responses[0].partitions[0]
                assert pd.error_code == 0, pd
                from kafka_core import scan_batches
                infos, _ = scan_batches(bytes(pd.records or b""), allow_partial=True)
                assert infos
                off = infos[-1].last_offset + 1
                got += sum(i.record_count for i in infos)
            assert got >= acked
        assert "append to full-0 failed" in b.log_text() and "No space left" in b.log_text()
