"""Connection and request limits the broker honours (issue 16): ``max.connections`` and
``max.connections.per.ip`` (with its overrides) are enforced, the broker answers a fresh client
while thousands of idle, half-sent and parked connections are open, a client that never reads its
responses holds a bounded amount of them, and ``queued.max.requests`` (a broker-wide queue
kafka-core does not have) is refused unless at Kafka's default.  A full disk:
test_log_dir_failure.py."""

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


def _answered_client(port: int, req: object, timeout: float = 10) -> RawClient:
    """A connection the broker has accepted and answered (a connection it is still closing, such as
    the start-up probe's, may hold a slot for a moment)."""
    deadline = time.monotonic() + timeout
    while True:
        c = RawClient(port)
        try:
            assert c.call(req, 3).error_code == 0
            return c
        except OSError:
            c.close()
            assert time.monotonic() < deadline, "no slot became free"
            time.sleep(0.1)


def test_max_connections_is_enforced(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from kafka_protocol.messages import REQUESTS

    req = REQUESTS[API_VERSIONS](client_software_name="t", client_software_version="1")
    with KafkaCoreBroker(data_dir=tmp_path, settings={"max.connections": "3"}) as b:
        held = [_answered_client(b.port, req) for _ in range(3)]    # the broker holds these three
        extra = socket.create_connection(("127.0.0.1", b.port))
        assert _closed_by_peer(extra)            # the fourth is closed as it arrives
        extra.close()
        held.pop().close()
        _answered_client(b.port, req).close()   # a slot frees once the broker sees the close
        for c in held:
            c.close()
        assert "max.connections (3) are open" in b.log_text()


def _from(source: str, port: int) -> socket.socket:
    """A connection to the broker from the loopback address ``source`` (127.0.0.x)."""
    s = socket.socket()
    s.bind((source, 0))
    s.connect(("127.0.0.1", port))
    return s


def _accepted(s: socket.socket, req: object) -> bool:
    """Whether the broker answers an ApiVersions on ``s`` (False: it closed the connection)."""
    from kafka_protocol import encode_request

    try:
        s.sendall(encode_request(API_VERSIONS, 3, 1, "t", req))
        s.settimeout(5)
        return len(s.recv(4)) == 4
    except OSError:
        return False


def test_max_connections_per_ip_and_its_overrides(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from kafka_protocol.messages import REQUESTS

    req = REQUESTS[API_VERSIONS](client_software_name="t", client_software_version="1")
    settings = {"max.connections.per.ip": "2", "max.connections.per.ip.overrides": "127.0.0.2:4, localhost:3"}
    with KafkaCoreBroker(data_dir=tmp_path, settings=settings) as b:
        time.sleep(0.2)     # the start-up probe's connection is closed and counted out
        # localhost resolves to 127.0.0.1 (and ::1): its override replaces the default of 2
        ones = [_from("127.0.0.1", b.port) for _ in range(4)]
        assert [_accepted(s, req) for s in ones] == [True, True, True, False]
        twos = [_from("127.0.0.2", b.port) for _ in range(5)]
        assert [_accepted(s, req) for s in twos] == [True, True, True, True, False]
        threes = [_from("127.0.0.3", b.port) for _ in range(3)]        # no override: the default
        assert [_accepted(s, req) for s in threes] == [True, True, False]
        for s in ones[:2]:
            s.close()
        deadline = time.monotonic() + 10      # closed ones free their slots once the broker sees it
        while not _accepted(_from("127.0.0.1", b.port), req):
            assert time.monotonic() < deadline, "a closed connection's slot did not free"
            time.sleep(0.1)
        for s in ones + twos + threes:
            s.close()
        assert "max.connections.per.ip" in b.log_text()


@pytest.mark.parametrize("settings, message", [
    ({"max.connections.per.ip": "0"}, "can be set to zero only if max.connections.per.ip.overrides"),
    ({"max.connections.per.ip.overrides": "127.0.0.1"}, "is not host:count"),
    ({"max.connections.per.ip.overrides": "127.0.0.1:many"}, "is not host:count"),
    ({"max.connections.per.ip.overrides": "no-such-host.invalid:3"}, "does not resolve"),
    ({"max.connections.per.ip": "-1"}, "must be at least 0"),
])
def test_bad_per_ip_limits_are_refused(settings: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        BrokerConfig(settings)


def test_zero_per_ip_with_overrides_admits_only_the_named(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from kafka_protocol.messages import REQUESTS

    req = REQUESTS[API_VERSIONS](client_software_name="t", client_software_version="1")
    settings = {"max.connections.per.ip": "0", "max.connections.per.ip.overrides": "127.0.0.1:100"}
    with KafkaCoreBroker(data_dir=tmp_path, settings=settings) as b:
        assert _accepted(_from("127.0.0.1", b.port), req)
        assert not _accepted(_from("127.0.0.5", b.port), req)


def test_a_fresh_client_is_served_through_a_connection_flood(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """2,000 idle connections, 200 that sent half a frame and stopped, and 500 long-poll fetches
    parked on an empty partition: a new client still gets its metadata, every parked fetch is
    answered when its wait ends, and the broker's memory stays bounded."""
    from kafka_bench.procs import tree_stats
    from kafka_client import AdminClient, NewTopic
    from kafka_protocol import encode_request
    from kafka_protocol.messages import REQUESTS

    with KafkaCoreBroker(data_dir=tmp_path, settings={"num.partitions": "1"}) as b:
        with AdminClient(b.bootstrap) as admin:
            admin.create_topics([NewTopic("flood", 1)])
            tid = admin.describe_topics(["flood"])["flood"].topic_id
        assert b.proc is not None
        rss_before = tree_stats(b.proc.pid).rss_bytes
        idle = [socket.create_connection(("127.0.0.1", b.port)) for _ in range(2000)]
        half = []
        for _ in range(200):
            s = socket.create_connection(("127.0.0.1", b.port))
            s.sendall(b"\x00\x00\x10\x00" + b"\x00" * 10)     # a 4 KiB frame announced, 10 bytes sent
            half.append(s)
        F = REQUESTS[1]
        fetch = F(replica_id=-1, max_wait_ms=8000, min_bytes=1, max_bytes=1 << 20, isolation_level=0,
                  session_id=0, session_epoch=-1,
                  topics=[F.FetchTopic(topic_id=tid, partitions=[F.FetchPartition(
                      partition=0, current_leader_epoch=-1, fetch_offset=0, last_fetched_epoch=-1,
                      log_start_offset=-1, partition_max_bytes=1 << 20)])],
                  forgotten_topics_data=[], rack_id="")
        frame = encode_request(1, 13, 7, "flood", fetch)
        parked = []
        for _ in range(500):
            s = socket.create_connection(("127.0.0.1", b.port))
            s.sendall(frame)
            parked.append(s)
        sent_at = time.monotonic()
        with AdminClient(b.bootstrap) as admin:          # a fresh client, while all of them are open
            t0 = time.monotonic()
            assert "flood" in admin.list_topics()
            took = time.monotonic() - t0
        print(f"metadata for a fresh client took {took * 1000:.0f} ms with 2,700 connections open")
        for s in parked:                          # every parked fetch is answered at its deadline
            s.settimeout(max(1.0, sent_at + 30 - time.monotonic()))
            assert len(s.recv(4)) == 4
        rss_peak = tree_stats(b.proc.pid).rss_bytes
        print(f"broker RSS {rss_before / 2**20:.0f} MiB before, {rss_peak / 2**20:.0f} MiB with the flood")
        assert rss_peak - rss_before < 120 * 2**20      # 176 MiB when each connection held a 64 KiB buffer
        for s in idle + half + parked:
            s.close()
        with AdminClient(b.bootstrap) as admin:
            assert "flood" in admin.list_topics()


def test_queued_max_requests_only_at_kafkas_default() -> None:
    assert BrokerConfig({"queued.max.requests": "500"}).inert == {"queued.max.requests": "500"}
    with pytest.raises(ConfigError, match="queued.max.requests"):
        BrokerConfig({"queued.max.requests": "10"})


def test_size_prefixes_alone_do_not_allocate_their_size(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """issue 16: ten connections each sending a 100 MB size prefix and 24 bytes took the broker's RSS
    to 1 GB (the whole frame was allocated when the prefix arrived); now memory follows the bytes."""
    import struct

    from kafka_bench.procs import tree_stats

    with KafkaCoreBroker(data_dir=tmp_path) as b:
        assert b.proc is not None
        before = tree_stats(b.proc.pid).rss_bytes
        socks = []
        for _ in range(10):
            s = socket.create_connection(("127.0.0.1", b.port))
            s.sendall(struct.pack(">i", 100 << 20) + bytes(24))
            socks.append(s)
        time.sleep(1.0)
        grown = tree_stats(b.proc.pid).rss_bytes - before
        for s in socks:
            s.close()
        assert grown < 50 << 20, f"RSS grew by {grown >> 20} MiB"
        with RawClient(b.port) as c:     # and it still serves
            from kafka_protocol.messages import REQUESTS

            assert c.call(REQUESTS[API_VERSIONS](client_software_name="t", client_software_version="1"),
                          3).error_code == 0


def test_a_client_that_never_reads_its_fetch_responses_is_bounded(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """issue 16: 2,000 pipelined 1 MiB Fetch requests on one connection whose client never reads:
    the broker stops reading that connection once its unsent responses pass the bound (Kafka mutes
    a channel until its response is sent), so its RSS stays flat; a fresh client gets its metadata
    meanwhile; and when the client reads at last, every response it gets is correct and in order."""
    import struct

    from kafka_bench.apache_kafka import free_port
    from kafka_bench.procs import tree_stats
    from kafka_protocol import decode_response_header, encode_request
    from kafka_protocol.messages import REQUESTS, RESPONSES

    from .conftest import create_topic, fetch_req, make_batch, produce_req
    from .test_metrics import scrape

    n_req, value = 2000, 100_000
    mport = free_port()
    with KafkaCoreBroker(data_dir=tmp_path, settings={"log.segment.bytes": str(64 << 20),
                                                      "metrics.listener": f"http://127.0.0.1:{mport}"}) as b:
        with RawClient(b.port) as c:
            create_topic(c, "nr")
            for _ in range(24):        # 2.4 MB: every fetch from 0 returns its 1 MiB limit
                assert c.call(produce_req("nr", 0, make_batch([b"v" * value] * 1)), 9).responses[0] \
                    .partition_responses[0].error_code == 0
        assert b.proc is not None
        rss_before = tree_stats(b.proc.pid).rss_bytes
        frames = b"".join(encode_request(1, 12, corr, "nr", fetch_req("nr", 0, 0, max_bytes=1 << 20))
                          for corr in range(1, n_req + 1))
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 << 10)    # a small window: it fills at once
        s.connect(("127.0.0.1", b.port))
        s.setblocking(False)
        sent, deadline = 0, time.monotonic() + 5
        while sent < len(frames) and time.monotonic() < deadline:   # as much as the broker takes in 5 s
            try:
                sent += s.send(frames[sent:])
            except BlockingIOError:
                time.sleep(0.05)
        time.sleep(1.0)
        rss_peak = tree_stats(b.proc.pid).rss_bytes
        # the fetches the broker took from that connection: about MAX_UNSENT (4 MiB) of responses,
        # not every request its receive buffer holds (640 of them came in the first 64 KiB read)
        handled = scrape(mport)[("kafka_server_brokertopicmetrics_totalfetchrequests_total", (("topic", "nr"),))]
        with RawClient(b.port) as fresh:           # served while that connection is stuck
            t0 = time.monotonic()
            M = REQUESTS[3]
            md = fresh.call(M(topics=[M.MetadataRequestTopic(name="nr")], allow_auto_topic_creation=False), 12)
            took = time.monotonic() - t0
        assert md.topics[0].error_code == 0
        print(f"sent {sent} of {len(frames)} request bytes; broker RSS {rss_before / 2**20:.0f} MiB before, "
              f"{rss_peak / 2**20:.0f} MiB with the unread responses; fresh metadata in {took * 1000:.0f} ms")
        print(f"fetch requests taken while the client did not read: {handled:.0f}")
        assert handled <= 16     # what the socket buffers took, and MAX_UNSENT of responses
        assert rss_peak - rss_before < 64 << 20
        assert took < 1.0
        # now read: every response, in order, each the 1 MiB of records asked for
        s.setblocking(True)
        s.settimeout(30)
        buf = bytearray()
        got = 0
        while sent < len(frames) or got < n_req:
            if sent < len(frames):
                sent += s.send(frames[sent:sent + (1 << 16)])
            chunk = s.recv(1 << 20)
            assert chunk, f"closed after {got} responses"
            buf += chunk
            while len(buf) >= 4:
                (size,) = struct.unpack_from(">i", buf)
                if len(buf) < 4 + size:
                    break
                frame = bytes(buf[4:4 + size])
                del buf[:4 + size]
                got += 1
                (corr,) = struct.unpack_from(">i", frame)
                assert corr == got
                _, off = decode_response_header(frame, 1, 12)
                resp, _ = RESPONSES[1].decode(frame, 12, off)
                pd = resp.responses[0].partitions[0]
                assert pd.error_code == 0 and len(pd.records) > 900_000, (got, pd.error_code)
        s.close()
