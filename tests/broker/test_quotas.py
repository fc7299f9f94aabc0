"""Client quotas (issue 14): producer_byte_rate / consumer_byte_rate / request_percentage per user
and client id with Kafka's precedence, connection_creation_rate per ip, set and read through
AlterClientQuotas / DescribeClientQuotas (Apache Kafka's ``kafka-configs``), kept across restarts,
enforced as KIP-219 does (throttle_time_ms and a muted connection): a confluent-kafka producer is
held to its byte rate, measured over 10 s, within 20%; a client over its request_percentage is
throttled and slowed while another is not; an address over its connection rate has the excess
connections closed unserved while another address is not limited."""

from __future__ import annotations

import shutil
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from kafka_broker.quotas import ConnectionRates, Quotas, Sensor
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
    bad = q.alter([((("client-id", "x"),), [("connection_creation_rate", 10.0)]),
                   ((("ip", "1.2.3.4"),), [("request_percentage", 10.0)]),
                   ((("ip", "1.2.3.4"), ("user", "alice")), [("connection_creation_rate", 10.0)]),
                   ((("ip", "not-an-ip"),), [("connection_creation_rate", 10.0)]),
                   ((("ip", "1.2.3.4"),), [("connection_creation_rate", 2.5)]),
                   ((("group", "g"),), [("producer_byte_rate", 1.0)]),
                   ((("client-id", "x"),), [("request_percentage", -1.0)])], False)
    assert [c for c, _ in bad] == [E.INVALID_REQUEST] * 7
    assert q.alter([((("client-id", "x"),), [("request_percentage", 25.0)]),
                    ((("ip", "1.2.3.4"),), [("connection_creation_rate", 5.0)])], False) == [(0, None)] * 2
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


def test_request_time_and_connection_rate_throttles(tmp_path: Path) -> None:
    q = Quotas(str(tmp_path / "q.json"), samples=2, window_s=1.0)
    assert not q.request_quotas and not q.active
    q.alter([((("user", None),), [("request_percentage", 10.0)]),
             ((("ip", "10.0.0.1"),), [("connection_creation_rate", 5.0)]),
             ((("ip", None),), [("connection_creation_rate", 100.0)])], False)
    assert q.request_quotas and q.active
    # 50 ms of handling at t=10: 5 percent-seconds over the 1 s window: within 10%
    assert q.record_request("bob", "c", 0.05, now=10.0) == 0
    # 250 ms more at 10.5: 30 percent-seconds over 1.5 s = 20% against 10%: (20-10)/10 * 1.5 s,
    # capped at one window (ClientRequestQuotaManager's bound)
    assert q.record_request("bob", "c", 0.25, now=10.5) == 1000
    assert q.record_request("other", "c", 0.01, now=10.5) == 0      # its own sensor
    # connections: the first five in the window accepted, the sixth over 5/s is throttled and
    # not counted (so after it is refused the count stays 5)
    assert [q.record_connection("10.0.0.1", now=20.0 + i / 100) for i in range(5)] == [0] * 5
    ms = q.record_connection("10.0.0.1", now=20.05)
    assert 0 < ms <= 1000
    assert sum(x[1] for x in q.ip_sensors["10.0.0.1"].buckets) == 5
    assert q.record_connection("10.0.0.9", now=20.05) == 0       # <default>: 100/s
    assert q.connection_rate("10.0.0.9") == 100 and q.connection_rate("10.0.0.1") == 5
    # an address whose rate is back under the quota is accepted again
    assert q.record_connection("10.0.0.1", now=23.0) == 0


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[EmbeddedBroker]:
    b = EmbeddedBroker(data_dir=tmp_path / "b", settings={"quota.window.num": "2", "quota.window.size.seconds": "1"})
    b.start()
    yield b
    b.cleanup()


def alter(c: RawClient, client_id: str, key: str, value: float | None, entity_type: str = "client-id") -> int:
    A = REQUESTS[49]
    r = c.call(A(entries=[A.EntryData(entity=[A.EntityData(entity_type=entity_type, entity_name=client_id)],
                                      ops=[A.OpData(key=key, value=value or 0.0, remove=value is None)])],
                 validate_only=False), 1)
    return int(r.entries[0].error_code)


def test_alter_and_describe_over_the_wire_survive_a_restart(broker: EmbeddedBroker) -> None:
    D = REQUESTS[48]
    with RawClient(broker.port) as c:
        assert alter(c, "app", "producer_byte_rate", 1024) == 0
        assert alter(c, "app", "request_percentage", 50) == 0
        assert alter(c, "app", "connection_creation_rate", 5) == E.INVALID_REQUEST
    broker.restart()
    with RawClient(broker.port) as c:
        r = c.call(D(components=[D.ComponentData(entity_type="client-id", match_type=0, match="app")], strict=False), 1)
        assert [(e.entity[0].entity_name, [(v.key, v.value) for v in e.values]) for e in r.entries] == \
            [("app", [("producer_byte_rate", 1024.0), ("request_percentage", 50.0)])]
        assert alter(c, "app", "producer_byte_rate", None) == 0
        assert alter(c, "app", "request_percentage", None) == 0
        r = c.call(D(components=[], strict=False), 1)
        assert r.entries == []


Metadata = REQUESTS[3]


def _hammer(port: int, client_id: str, seconds: float, out: dict[str, list[int]]) -> None:
    """Metadata requests one after another for ``seconds``: each response's throttle_time_ms."""
    got: list[int] = []
    with RawClient(port, client_id=client_id) as c:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            got.append(c.call(Metadata(topics=[]), 12).throttle_time_ms)
    out[client_id] = got


def _run_both(port: int, seconds: float) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    ts = [threading.Thread(target=_hammer, args=(port, cid, seconds, out)) for cid in ("busy", "calm")]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return out


def test_request_percentage_throttles_only_the_client_over_it(broker: EmbeddedBroker) -> None:
    before = _run_both(broker.port, 1.5)
    assert all(ms == 0 for v in before.values() for ms in v)
    with RawClient(broker.port) as c:
        assert alter(c, "busy", "request_percentage", 1) == 0     # 10 ms of one thread per second
    after = _run_both(broker.port, 3.0)
    busy, calm = after["busy"], after["calm"]
    rate0, rate1, calm1 = len(before["busy"]) / 1.5, len(busy) / 3.0, len(calm) / 3.0
    assert any(ms > 0 for ms in busy), "the client over its request quota never saw throttle_time_ms"
    assert max(busy) <= 1000                      # at most one quota window
    assert all(ms == 0 for ms in calm)
    assert rate1 < rate0 / 3, f"busy: {rate0:.0f} req/s before its quota, {rate1:.0f} req/s after"
    assert calm1 > 3 * rate1, f"calm {calm1:.0f} req/s, busy {rate1:.0f} req/s"


def _connect_loop(port: int, source: str, seconds: float, served: list[int], refused: list[int]) -> None:
    """Connect from ``source`` and ask for ApiVersions, again and again: served counts the
    connections answered, refused those closed unanswered."""
    A = REQUESTS[18]
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            with RawClient(port, client_id="conn", timeout=5, source=source) as c:
                c.call(A(client_software_name="t", client_software_version="1"), 3)
            served.append(1)
        except (ConnectionError, OSError):
            refused.append(1)


def test_connection_creation_rate_limits_one_address(broker: EmbeddedBroker) -> None:
    with RawClient(broker.port) as c:
        assert alter(c, "127.0.0.2", "connection_creation_rate", 5, entity_type="ip") == 0
    seconds = 4.0
    res: dict[str, tuple[list[int], list[int]]] = {"127.0.0.2": ([], []), "127.0.0.3": ([], [])}
    ts = [threading.Thread(target=_connect_loop, args=(broker.port, src, seconds, *res[src]))
          for src in ("127.0.0.2",) * 4 + ("127.0.0.3",)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    served2, refused2 = len(res["127.0.0.2"][0]), len(res["127.0.0.2"][1])
    served3, refused3 = len(res["127.0.0.3"][0]), len(res["127.0.0.3"][1])
    # 5/s over 4 s, plus the window's worth the rate allows at the start (the rate is measured
    # over at least quota.window.num - 1 = 1 window)
    assert 5 <= served2 <= 5 * seconds + 5 + 2, (served2, refused2)
    assert refused2 > 0
    assert refused3 == 0 and served3 > served2 / 4, (served3, served2)


def test_connection_creation_rate_of_the_broker_and_a_listener() -> None:
    r = ConnectionRates(2, 1.0, 4, {"EXTERNAL": 2}, protected="INTERNAL")
    assert [r.record("INTERNAL", now=10.0) for _ in range(10)] == [0] * 10     # the inter-broker listener
    assert [r.record("PLAIN", now=10.0) for _ in range(4)] == [0] * 4
    assert r.record("PLAIN", now=10.0) == 250       # 5 over the 1 s window against 4/s: (5-4)/4 * 1 s
    r = ConnectionRates(2, 1.0, None, {"EXTERNAL": 2}, protected=None)
    assert [r.record("EXTERNAL", now=10.0) for _ in range(3)] == [0, 0, 500]
    assert r.record("OTHER", now=10.0) == 0


def test_a_listener_over_its_max_connection_creation_rate_serves_connections_late(tmp_path: Path) -> None:
    b = EmbeddedBroker(data_dir=tmp_path / "b", settings={
        "quota.window.num": "2", "quota.window.size.seconds": "1",
        "listener.name.plaintext.max.connection.creation.rate": "4"})
    b.start()
    try:
        A = REQUESTS[18]
        t0 = time.monotonic()
        for _ in range(12):     # all served (Kafka's acceptor waits, it does not refuse), at ~4/s
            with RawClient(b.port, client_id="conn", timeout=10) as c:
                assert c.call(A(client_software_name="t", client_software_version="1"), 3).error_code == 0
        took = time.monotonic() - t0
    finally:
        b.cleanup()
    assert took >= 1.5, f"12 connections at 4/s in {took:.2f} s"


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


@pytest.mark.interop
@pytest.mark.skipif(shutil.which("java") is None, reason="java is installed by ./dev test")
def test_kafka_configs_sets_request_percentage_and_connection_rate(broker: EmbeddedBroker) -> None:
    from kafka_bench import apache_kafka as ak

    def configs(*args: str) -> str:
        r = ak.java_main(ak.CONFIGS, ["--bootstrap-server", broker.bootstrap, *args], timeout=90, check=False)
        assert r.returncode == 0, (r.stdout + r.stderr).decode()[-3000:]
        return str(r.stdout.decode())
    configs("--alter", "--entity-type", "users", "--entity-name", "alice", "--add-config", "request_percentage=25")
    configs("--alter", "--entity-type", "ips", "--entity-name", "127.0.0.2", "--add-config",
            "connection_creation_rate=5")
    configs("--alter", "--entity-type", "ips", "--entity-default", "--add-config", "connection_creation_rate=50")
    assert "request_percentage=25.0" in configs("--describe", "--entity-type", "users", "--entity-name", "alice")
    assert "connection_creation_rate=5" in configs("--describe", "--entity-type", "ips", "--entity-name", "127.0.0.2")
    assert "connection_creation_rate=50" in configs("--describe", "--entity-type", "ips", "--entity-default")
    with RawClient(broker.port) as c:      # what the tool set is what the broker enforces
        D = REQUESTS[48]
        r = c.call(D(components=[D.ComponentData(entity_type="ip", match_type=2, match=None)], strict=False), 1)
        assert sorted((e.entity[0].entity_name, [(v.key, v.value) for v in e.values]) for e in r.entries
                      if e.entity[0].entity_name is not None) == [("127.0.0.2", [("connection_creation_rate", 5.0)])]
