"""Produce, Fetch (long poll, sessions, limits) and ListOffsets over a raw socket."""

from __future__ import annotations

import struct
import time
import uuid

import pytest
from kafka_protocol.messages import REQUESTS

from .conftest import RawClient, create_topic, fetch_req, make_batch, produce_req

ListOffsets = REQUESTS[2]
Fetch = REQUESTS[1]


def fetched_records(resp, topic_index: int = 0, part_index: int = 0) -> bytes:
    assert resp.error_code == 0
    pd = resp.responses[topic_index].partitions[part_index]
    assert pd.error_code == 0, pd
    return bytes(pd.records or b"")


def test_produce_fetch_round_trip_is_byte_exact(client, topic):
    sent = []
    for n in range(3):
        batch = make_batch([f"value-{n}-{i}".encode() * (i + 1) for i in range(5)], keys=[b"k"] * 5)
        resp = client.call(produce_req(topic, 0, batch), 9)
        pr = resp.responses[0].partition_responses[0]
        assert pr.error_code == 0
        assert pr.base_offset == n * 5
        sent.append(bytes(batch))
    for version in (4, 11, 12):
        resp = client.call(fetch_req(topic, 0, 0), version)
        got = fetched_records(resp)
        pd = resp.responses[0].partitions[0]
        assert pd.high_watermark == 15
        pos = 0
        for n, batch in enumerate(sent):
            size = struct.unpack_from(">i", got, pos + 8)[0] + 12
            stored = got[pos:pos + size]
            assert struct.unpack_from(">q", stored, 0)[0] == n * 5          # offset assigned
            assert struct.unpack_from(">i", stored, 12)[0] == 0             # leader epoch
            assert stored[8:12] == batch[8:12] and stored[16:] == batch[16:]  # CRC-covered bytes untouched
            pos += size
        assert pos == len(got)


def test_fetch_by_topic_id(client, topic):
    M = REQUESTS[3]
    md = client.call(M(topics=[M.MetadataRequestTopic(name=topic)]), 12)
    tid = md.topics[0].topic_id
    assert tid.int != 0
    client.call(produce_req(topic, 0, make_batch([b"a", b"b"])), 9)
    resp = client.call(fetch_req("", 0, 0, topic_id=tid), 13)
    assert resp.responses[0].topic_id == tid
    assert resp.responses[0].partitions[0].high_watermark == 2
    assert len(resp.responses[0].partitions[0].records) > 61
    resp = client.call(fetch_req("", 0, 0, topic_id=uuid.uuid4()), 13)
    assert resp.responses[0].partitions[0].error_code == 100   # UNKNOWN_TOPIC_ID


def test_fetch_offset_out_of_range_and_unknown(client, topic):
    client.call(produce_req(topic, 0, make_batch([b"x"])), 9)
    pd = client.call(fetch_req(topic, 0, 5), 12).responses[0].partitions[0]
    assert pd.error_code == 1 and pd.high_watermark == 1
    pd = client.call(fetch_req(topic, 3, 0), 12).responses[0].partitions[0]
    assert pd.error_code == 3
    pd = client.call(fetch_req("no-such-topic-xyz", 0, 0), 12).responses[0].partitions[0]
    assert pd.error_code == 3


def test_fetch_at_end_is_empty_and_mid_batch_offset_returns_whole_batch(client, topic):
    client.call(produce_req(topic, 0, make_batch([b"a", b"b", b"c"])), 9)
    pd = client.call(fetch_req(topic, 0, 3), 12).responses[0].partitions[0]
    assert pd.error_code == 0 and len(pd.records) == 0
    got = fetched_records(client.call(fetch_req(topic, 0, 1), 12))
    assert struct.unpack_from(">q", got, 0)[0] == 0   # the batch holding offset 1 starts at 0


def test_long_poll_wakes_on_produce(broker, client, topic):
    with RawClient(broker.port) as other:
        corr = client.send(fetch_req(topic, 0, 0, max_wait_ms=20000, min_bytes=1), 12)
        time.sleep(0.2)
        assert other.call(produce_req(topic, 0, make_batch([b"wake up"])), 9) \
            .responses[0].partition_responses[0].error_code == 0
        resp = client.recv(corr)
        assert b"wake up" in fetched_records(resp)


def test_long_poll_honours_max_wait(client, topic):
    t0 = time.monotonic()
    resp = client.call(fetch_req(topic, 0, 0, max_wait_ms=400, min_bytes=1), 12)
    assert time.monotonic() - t0 >= 0.35   # it waited (lower bound only)
    pd = resp.responses[0].partitions[0]
    assert pd.error_code == 0 and len(pd.records) == 0


def test_long_poll_does_not_block_other_connections(broker, client, topic):
    corr = client.send(fetch_req(topic, 0, 0, max_wait_ms=1000, min_bytes=1), 12)
    with RawClient(broker.port) as other:
        M = REQUESTS[3]
        assert other.call(M(topics=None), 12).topics is not None
    resp = client.recv(corr)
    assert resp.responses[0].partitions[0].error_code == 0


def test_responses_keep_request_order(client, topic):
    # A long-poll fetch then a metadata request on the same connection: answers come in order.
    M = REQUESTS[3]
    c1 = client.send(fetch_req(topic, 0, 0, max_wait_ms=500, min_bytes=1), 12)
    c2 = client.send(M(topics=None), 12)
    client.recv(c1)
    client.recv(c2)


def test_fetch_max_bytes_returns_at_least_one_batch(client, topic):
    for i in range(4):
        client.call(produce_req(topic, 0, make_batch([bytes([i]) * 1000])), 9)
    got = fetched_records(client.call(fetch_req(topic, 0, 0, max_bytes=10), 12))
    size = struct.unpack_from(">i", got, 8)[0] + 12
    assert len(got) == size   # exactly one batch, although larger than max_bytes (KIP-74)
    got = fetched_records(client.call(fetch_req(topic, 0, 0, max_bytes=2 * size + 10), 12))
    assert len(got) == 2 * size


def _inc(client, sid, epoch, topic=None, offset=None, forget=None):
    topics = [] if topic is None else [Fetch.FetchTopic(topic=topic, partitions=[
        Fetch.FetchPartition(partition=0, fetch_offset=offset, partition_max_bytes=1 << 20)])]
    forgotten = [] if forget is None else [Fetch.ForgottenTopic(topic=forget, partitions=[0])]
    return client.call(Fetch(max_wait_ms=0, min_bytes=1, max_bytes=1 << 20, session_id=sid, session_epoch=epoch,
                             topics=topics, forgotten_topics_data=forgotten), 12)


def test_fetch_sessions(client, topic):
    client.call(produce_req(topic, 0, make_batch([b"one"])), 9)
    full = client.call(fetch_req(topic, 0, 0, session_id=0, session_epoch=0), 12)
    sid = full.session_id
    assert sid != 0 and len(full.responses) == 1 and b"one" in bytes(full.responses[0].partitions[0].records)
    # incremental: the client moved to offset 1; nothing new, same high watermark -> no partitions
    inc = _inc(client, sid, 1, topic, 1)
    assert inc.error_code == 0 and inc.session_id == sid and inc.responses == []
    inc = _inc(client, sid, 2)
    assert inc.error_code == 0 and inc.responses == []
    # new data: the partition shows up, read from the offset the session remembers
    client.call(produce_req(topic, 0, make_batch([b"two"])), 9)
    inc = _inc(client, sid, 3)
    assert len(inc.responses) == 1 and inc.responses[0].partitions[0].high_watermark == 2
    recs = bytes(inc.responses[0].partitions[0].records)
    assert b"two" in recs and b"one" not in recs
    # wrong epoch, then unknown session
    assert _inc(client, sid, 9).error_code == 71
    assert _inc(client, sid ^ 0x5A5A5A, 1).error_code == 70
    # forget the partition: nothing to report any more even with new data
    client.call(produce_req(topic, 0, make_batch([b"three"])), 9)
    inc = _inc(client, sid, 4, forget=topic)
    assert inc.error_code == 0 and inc.responses == []
    # close the session (epoch -1): a sessionless full fetch; the id is gone afterwards
    fin = client.call(fetch_req(topic, 0, 0, session_id=sid, session_epoch=-1), 12)
    assert fin.session_id == 0 and len(fin.responses) == 1
    assert _inc(client, sid, 5).error_code == 70


def test_incremental_fetch_long_polls(broker, client, topic):
    full = client.call(fetch_req(topic, 0, 0, session_id=0, session_epoch=0), 12)
    sid = full.session_id
    corr = client.send(Fetch(max_wait_ms=20000, min_bytes=1, max_bytes=1 << 20, session_id=sid, session_epoch=1,
                             topics=[]), 12)
    time.sleep(0.2)
    with RawClient(broker.port) as other:
        other.call(produce_req(topic, 0, make_batch([b"late"])), 9)
    inc = client.recv(corr)
    assert b"late" in bytes(inc.responses[0].partitions[0].records)


def _list_offsets(client, topic, ts, version=7):
    req = ListOffsets(replica_id=-1, isolation_level=0, topics=[ListOffsets.ListOffsetsTopic(
        name=topic, partitions=[ListOffsets.ListOffsetsPartition(partition_index=0, timestamp=ts)])])
    return client.call(req, version).topics[0].partitions[0]


def test_list_offsets(client, topic):
    base = 1_700_000_000_000
    now = int(time.time() * 1000)
    client.call(produce_req(topic, 0, make_batch([b"a", b"b"], ts=now - 10_000)), 9)   # offsets 0-1
    client.call(produce_req(topic, 0, make_batch([b"c", b"d"], ts=now - 5_000)), 9)    # offsets 2-3
    e = _list_offsets(client, topic, -2)
    assert (e.error_code, e.offset, e.leader_epoch) == (0, 0, 0)
    latest = _list_offsets(client, topic, -1)
    assert (latest.offset, latest.leader_epoch) == (4, 0)
    mx = _list_offsets(client, topic, -3)
    assert mx.timestamp == now - 5_000 + 1
    by_ts = _list_offsets(client, topic, now - 6_000)
    assert by_ts.offset == 2 and by_ts.timestamp == now - 5_000
    none = _list_offsets(client, topic, now + 3_600_000)
    assert none.offset == -1
    old = _list_offsets(client, topic, -1, version=1)
    assert old.offset == 4
    assert base  # keeps a fixed reference for readers


def test_produce_errors(client, topic):
    # unknown topic / partition
    pr = client.call(produce_req("no-such-topic-abc", 0, make_batch([b"x"])), 9).responses[0].partition_responses[0]
    assert pr.error_code == 3
    pr = client.call(produce_req(topic, 7, make_batch([b"x"])), 9).responses[0].partition_responses[0]
    assert pr.error_code == 3
    # two batches in one partition
    two = make_batch([b"x"]) + make_batch([b"y"])
    pr = client.call(produce_req(topic, 0, two), 9).responses[0].partition_responses[0]
    assert pr.error_code == 87
    # corrupt CRC: CORRUPT_MESSAGE and nothing stored
    bad = make_batch([b"payload"])
    bad[-1] ^= 0xFF
    pr = client.call(produce_req(topic, 0, bad), 9).responses[0].partition_responses[0]
    assert pr.error_code == 2
    assert _list_offsets(client, topic, -1).offset == 0
    # too large for max.message.bytes
    big = make_batch([b"z" * 1_100_000])
    pr = client.call(produce_req(topic, 0, big), 9).responses[0].partition_responses[0]
    assert pr.error_code == 10
    # bad acks
    pr = client.call(produce_req(topic, 0, make_batch([b"x"]), acks=2), 9).responses[0].partition_responses[0]
    assert pr.error_code == 21
    # timestamp far in the future (message.timestamp.after.max.ms = 1 h)
    fut = make_batch([b"x"], ts=int(time.time() * 1000) + 7_200_000)
    pr = client.call(produce_req(topic, 0, fut), 9).responses[0].partition_responses[0]
    assert pr.error_code == 32
    assert _list_offsets(client, topic, -1).offset == 0


def test_acks0_gets_no_response(client, topic):
    client.send(produce_req(topic, 0, make_batch([b"fire and forget"]), acks=0), 9)
    # the next response is for the next request
    assert _list_offsets(client, topic, -1).offset == 1


@pytest.mark.parametrize("version", [3, 7, 9])
def test_produce_versions(client, topic, version):
    pr = client.call(produce_req(topic, 0, make_batch([b"v"])), version).responses[0].partition_responses[0]
    assert pr.error_code == 0 and pr.base_offset == 0


def test_log_append_time_topic(client):
    name = f"lat-{uuid.uuid4().hex[:8]}"
    create_topic(client, name, configs={"message.timestamp.type": "LogAppendTime"})
    before = int(time.time() * 1000)
    pr = client.call(produce_req(name, 0, make_batch([b"x"], ts=1000)), 9).responses[0].partition_responses[0]
    assert pr.error_code == 0 and pr.log_append_time_ms >= before
    got = fetched_records(client.call(fetch_req(name, 0, 0), 12))
    attrs = struct.unpack_from(">h", got, 21)[0]
    assert attrs & 0x08
    assert struct.unpack_from(">q", got, 35)[0] == pr.log_append_time_ms


def test_fetch_budget_across_partitions_and_session_rotation(client):
    name = f"multi-{uuid.uuid4().hex[:8]}"
    create_topic(client, name, 3)
    sizes = []
    for p in range(3):
        for i in range(2):
            b = make_batch([bytes([p * 10 + i]) * 1000])
            sizes.append(len(b))
            client.call(produce_req(name, p, b), 9)
    one = sizes[0]
    F = Fetch
    req = F(max_wait_ms=0, min_bytes=1, max_bytes=2 * one + 100, session_id=0, session_epoch=0, topics=[
        F.FetchTopic(topic=name, partitions=[F.FetchPartition(partition=p, fetch_offset=0, partition_max_bytes=1 << 20)
                                             for p in range(3)])])
    resp = client.call(req, 12)
    got = [len(pd.records) for pd in resp.responses[0].partitions]
    assert got == [2 * one, 0, 0]     # the budget is spent on partition 0
    # next incremental fetch: partition 0 moved on (client sends its new offset) and went to the back
    inc = client.call(F(max_wait_ms=0, min_bytes=1, max_bytes=2 * one + 100, session_id=resp.session_id,
                        session_epoch=1, topics=[F.FetchTopic(topic=name, partitions=[
                            F.FetchPartition(partition=0, fetch_offset=2, partition_max_bytes=1 << 20)])]), 12)
    parts = [(pd.partition_index, len(pd.records)) for pd in inc.responses[0].partitions]
    assert parts == [(1, 2 * one), (2, 0)] or parts == [(1, 2 * one)]


def test_slow_reader_does_not_stall_others(broker, client):
    import os

    name = f"slow-{uuid.uuid4().hex[:8]}"
    create_topic(client, name, configs={"max.message.bytes": str(2 << 20)})
    total = 0
    for _ in range(8):
        b = make_batch([os.urandom(1 << 20)])
        total += len(b)
        assert client.call(produce_req(name, 0, b), 9).responses[0].partition_responses[0].error_code == 0
    with RawClient(broker.port, rcvbuf=65536) as slow:
        corr = slow.send(fetch_req(name, 0, 0, max_bytes=64 << 20), 12)
        time.sleep(0.3)   # the broker's socket buffer is full now; it must wait for writability
        with RawClient(broker.port) as other:
            for _ in range(3):
                pr = other.call(produce_req(name, 0, make_batch([b"meanwhile"])), 9)
                assert pr.responses[0].partition_responses[0].error_code == 0
        resp = slow.recv(corr)
        assert len(resp.responses[0].partitions[0].records) >= total


def test_min_insync_replicas_above_one_rejects_acks_all(client):
    name = f"isr-{uuid.uuid4().hex[:8]}"
    create_topic(client, name, configs={"min.insync.replicas": "2"})
    pr = client.call(produce_req(name, 0, make_batch([b"x"]), acks=-1), 9).responses[0].partition_responses[0]
    assert pr.error_code == 19
    pr = client.call(produce_req(name, 0, make_batch([b"x"]), acks=1), 9).responses[0].partition_responses[0]
    assert pr.error_code == 0


def test_request_errors_are_logged_once_per_client(broker, topic):
    """issue 15: a corrupt batch is logged at WARNING with the client id, once per client and error
    (a client that retries it does not flood the log); another client gets its own line."""
    import re

    def corrupt() -> bytearray:
        bad = make_batch([b"payload"])
        bad[-1] ^= 0xFF
        return bad

    for cid in ("bad-app", "bad-app", "bad-app", "other-app"):
        with RawClient(broker.port, client_id=cid) as c:
            pr = c.call(produce_req(topic, 0, corrupt()), 9).responses[0].partition_responses[0]
            assert pr.error_code == 2
    with RawClient(broker.port, client_id="bad-app") as c:
        big = make_batch([b"z" * 1_100_000])
        assert c.call(produce_req(topic, 0, big), 9).responses[0].partition_responses[0].error_code == 10
    log = broker.log_text()
    corrupt_lines = [ln for ln in log.splitlines() if "CORRUPT_MESSAGE" in ln and f"{topic}-0" in ln]
    assert len([ln for ln in corrupt_lines if "'bad-app'" in ln]) == 1, corrupt_lines
    assert len([ln for ln in corrupt_lines if "'other-app'" in ln]) == 1, corrupt_lines
    assert all(" WARNING " in ln and re.search(r"Produce from client '\w+-app' at 127\.0\.0\.1:\d+", ln)
               for ln in corrupt_lines), corrupt_lines
    assert len([ln for ln in log.splitlines() if "MESSAGE_TOO_LARGE" in ln and "'bad-app'" in ln]) == 1
