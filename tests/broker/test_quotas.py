"""Client quotas (issue 14): producer_byte_rate / consumer_byte_rate per user and client id with
Kafka's precedence, set and read through AlterClientQuotas / DescribeClientQuotas (Apache Kafka's
``kafka-configs``), kept across restarts, enforced as KIP-219 does (throttle_time_ms and a muted
connection): a confluent-kafka producer is held to its rate, measured over 10 s, within 20%."""

from __future__ import annotations

import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from kafka_broker.quotas import Quotas, Sensor
from kafka_broker.testing import EmbeddedBroker
from kafka_protocol.errors import ErrorCode as E
from kafka_protocol.messages import REQUESTS

from .conftest import RawClient


def test_precedence_and_rate(tmp_path: Path) -> None:
    q = Quotas(str(tmp_path / "q.json"))
    res = q.alter([((("client-id", None),), [("producer_byte_rate", 100.0)]),
                   ((("client-id", "app"),), [("producer_byte_rate", 200.0)]),
                   ((("user", "alice"),), [("producer_byte_rate", 300.0)]),
                   ((("client-id", "app"), ("user", "alice")), [("producer_byte_rate", 400.0)]),
                   ((("user", None),), [("consumer_byte_rate", 50.0)])], False)
    assert [c for c, _ in res] == [0] * 5
    assert q.quota("producer_byte_rate", "alice", "app") == 400
    assert q.quota("producer_byte_rate", "alice", "other") == 300
    assert q.quota("producer_byte_rate", "bob", "app") == 200
    assert q.quota("producer_byte_rate", "bob", "other") == 100
    assert q.quota("consumer_byte_rate", "bob", "x") == 50
    bad = q.alter([((("client-id", "x"),), [("request_percentage", 10.0)]), ((("ip", "1.2.3.4"),), [])], False)
    assert [c for c, _ in bad] == [E.INVALID_REQUEST, E.INVALID_REQUEST]
    assert Quotas(str(tmp_path / "q.json")).quota("producer_byte_rate", "alice", "app") == 400   # durable
    s = Sensor(11, 1.0)
    s.record(1000, 100.0)
    assert s.rate(100.5) == pytest.approx(1000 / 10.5)      # at least samples - 1 windows before
    # throttle: (rate - quota) / quota * window
    q2 = Quotas(str(tmp_path / "q2.json"), samples=2, window_s=1.0)
    q2.alter([((("client-id", "c"),), [("producer_byte_rate", 1000.0)])], False)
    assert q2.record("producer_byte_rate", "u", "c", 500, now=10.0) == 0
    # 3000 B over the 1.5 s window Kafka measures (0.5 s elapsed, at least one whole window
    # before): 2000 B/s, twice the quota, so a throttle of one window size: 1.5 s
    assert q2.record("producer_byte_rate", "u", "c", 2500, now=10.5) == pytest.approx(1500, abs=1)


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[EmbeddedBroker]:
    b = EmbeddedBroker(data_dir=tmp_path / "b", settings={"quota.window.num": "2", "quota.window.size.seconds": "1"})
    b.start()
    yield b
    b.cleanup()


def alter(c: RawClient, client_id: str, key: str, value: float | None) -> int:
    A = REQUESTS[49]
    r = c.call(A(entries=[A.EntryData(entity=[A.EntityData(entity_type="client-id", entity_name=client_id)],
                                      ops=[A.OpData(key=key, value=value or 0.0, remove=value is None)])],
                 validate_only=False), 1)
    return int(r.entries[0].error_code)


def test_alter_and_describe_over_the_wire_survive_a_restart(broker: EmbeddedBroker) -> None:
    D = REQUESTS[48]
    with RawClient(broker.port) as c:
        assert alter(c, "app", "producer_byte_rate", 1024) == 0
        assert alter(c, "app", "request_percentage", 50) == E.INVALID_REQUEST
    broker.restart()
    with RawClient(broker.port) as c:
        r = c.call(D(components=[D.ComponentData(entity_type="client-id", match_type=0, match="app")], strict=False), 1)
        assert [(e.entity[0].entity_name, [(v.key, v.value) for v in e.values]) for e in r.entries] == \
            [("app", [("producer_byte_rate", 1024.0)])]
        assert alter(c, "app", "producer_byte_rate", None) == 0
        r = c.call(D(components=[], strict=False), 1)
        assert r.entries == []


@pytest.mark.interop
def test_a_producer_is_held_to_its_byte_rate(broker: EmbeddedBroker) -> None:
    ck = pytest.importorskip("confluent_kafka")
    rate = 200_000
    with RawClient(broker.port) as c:
        assert alter(c, "throttled", "producer_byte_rate", rate) == 0
    topic = f"q-{uuid.uuid4().hex[:6]}"
    acked = [0]

    def on_delivery(err: object, m: object) -> None:
        if err is None:
            acked[0] += 1
    p = ck.Producer({"bootstrap.servers": broker.bootstrap, "client.id": "throttled", "linger.ms": 5,
                     "queue.buffering.max.messages": 100000})
    value = b"x" * 1000
    t_end = time.monotonic() + 2          # warm up: the burst the window allows
    while time.monotonic() < t_end:
        try:
            p.produce(topic, value, on_delivery=on_delivery)
        except BufferError:
            pass
        p.poll(0.001)
    start_count, t0 = acked[0], time.monotonic()
    while time.monotonic() - t0 < 10:
        try:
            p.produce(topic, value, on_delivery=on_delivery)
        except BufferError:
            pass
        p.poll(0.001)
    got = (acked[0] - start_count) * 1000 / (time.monotonic() - t0)
    p.purge()
    assert 0.8 * rate <= got <= 1.2 * rate, f"{got:.0f} B/s acknowledged, quota {rate} B/s"


@pytest.mark.interop
@pytest.mark.skipif(shutil.which("java") is None, reason="java is installed by ./dev test")
def test_kafka_configs_sets_and_describes_client_quotas(broker: EmbeddedBroker) -> None:
    from kafka_bench import apache_kafka as ak

    r = ak.java_main(ak.CONFIGS, ["--bootstrap-server", broker.bootstrap, "--alter", "--entity-type", "clients",
                                  "--entity-name", "etl", "--add-config",
                                  "producer_byte_rate=1048576,consumer_byte_rate=2097152"], timeout=90, check=False)
    assert r.returncode == 0, (r.stdout + r.stderr).decode()[-3000:]
    r = ak.java_main(ak.CONFIGS, ["--bootstrap-server", broker.bootstrap, "--describe", "--entity-type", "clients",
                                  "--entity-name", "etl"], timeout=90, check=False)
    out = r.stdout.decode()
    assert "producer_byte_rate=1048576.0" in out and "consumer_byte_rate=2097152.0" in out, \
        (r.stdout + r.stderr).decode()[-3000:]
