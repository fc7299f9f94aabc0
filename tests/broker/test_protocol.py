"""ApiVersions, Metadata, idempotent producers and bad input over a raw socket."""

from __future__ import annotations

import os
import struct
import time
import uuid

import pytest
from kafka_protocol import encode_request
from kafka_protocol.messages import REQUESTS, RESPONSES

from .conftest import RawClient, create_topic, fetch_req, make_batch, produce_req

ApiVersions = REQUESTS[18]
Metadata = REQUESTS[3]
InitProducerId = REQUESTS[22]
ListOffsets = REQUESTS[2]


def latest(client, topic):
    req = ListOffsets(replica_id=-1, topics=[ListOffsets.ListOffsetsTopic(
        name=topic, partitions=[ListOffsets.ListOffsetsPartition(partition_index=0, timestamp=-1)])])
    return client.call(req, 7).topics[0].partitions[0].offset


# -- ApiVersions ---------------------------------------------------------------

@pytest.mark.parametrize("version", [0, 1, 2, 3, 4])
def test_api_versions_every_version(client, version):
    req = ApiVersions(client_software_name="kc-test", client_software_version="1.0")
    resp = client.call(req, version)
    assert resp.error_code == 0
    keys = {k.api_key: (k.min_version, k.max_version) for k in resp.api_keys}
    assert keys[18] == (0, 4)
    assert keys[0] == (0, 12) and keys[1] == (4, 17) and keys[2] == (1, 10) and keys[3] == (0, 13)
    # the group APIs, with Apache Kafka 4.0's ranges (kafka_broker/groups/__init__.py)
    assert keys[8] == (2, 9) and keys[9] == (1, 9) and keys[10] == (0, 6) and keys[11] == (0, 9)
    assert keys[12] == (0, 4) and keys[13] == (0, 5) and keys[14] == (0, 5) and keys[15] == (0, 6)
    assert keys[16] == (0, 5) and keys[42] == (0, 2) and keys[47] == (0, 0)
    assert keys[68] == (0, 1) and keys[69] == (0, 0)


def test_api_versions_unsupported_version_gets_v0_error(client):
    corr = 77
    frame = struct.pack(">hhih", 18, 99, corr, 4) + b"test" + b"\x00"
    client.send_raw(struct.pack(">i", len(frame)) + frame)
    resp = client.recv_frame()
    assert struct.unpack_from(">i", resp, 0)[0] == corr
    body, _ = RESPONSES[18].decode(resp, 0, 4)
    assert body.error_code == 35
    assert [(k.api_key, k.min_version, k.max_version) for k in body.api_keys] == [(18, 0, 4)]
    # the connection stays usable
    assert client.call(ApiVersions(), 0).error_code == 0


def test_api_versions_bad_software_name(client):
    resp = client.call(ApiVersions(client_software_name="bad name!", client_software_version="1"), 3)
    assert resp.error_code == 42


# -- Metadata ------------------------------------------------------------------

def test_metadata_null_all_empty_none(client, topic):
    all_ = client.call(Metadata(topics=None), 12)
    names = {t.name for t in all_.topics}
    assert topic in names
    assert all_.cluster_id and all_.controller_id == 0 and all_.brokers[0].node_id == 0
    none = client.call(Metadata(topics=[]), 12)
    assert none.topics == []
    v0 = client.call(Metadata(topics=[]), 0)       # v0: empty list means all
    assert topic in {t.name for t in v0.topics}


@pytest.mark.parametrize("version", [0, 1, 4, 7, 9, 10, 12, 13])
def test_metadata_versions(client, topic, version):
    resp = client.call(Metadata(topics=[Metadata.MetadataRequestTopic(name=topic)]), version)
    t = resp.topics[0]
    assert t.error_code == 0 and t.name == topic
    p = t.partitions[0]
    assert (p.partition_index, p.leader_id, p.replica_nodes, p.isr_nodes) == (0, 0, [0], [0])
    if version >= 7:
        assert p.leader_epoch == 0
    if version >= 10:
        assert t.topic_id.int != 0


def test_metadata_auto_create_and_errors(client):
    name = f"auto-{uuid.uuid4().hex[:8]}"
    resp = client.call(Metadata(topics=[Metadata.MetadataRequestTopic(name=name)], allow_auto_topic_creation=False),
                       12)
    assert resp.topics[0].error_code == 3
    resp = client.call(Metadata(topics=[Metadata.MetadataRequestTopic(name=name)], allow_auto_topic_creation=True),
                       12)
    assert resp.topics[0].error_code == 0 and len(resp.topics[0].partitions) == 1
    bad = client.call(Metadata(topics=[Metadata.MetadataRequestTopic(name="bad/name")]), 12)
    assert bad.topics[0].error_code == 17
    by_id = client.call(Metadata(topics=[Metadata.MetadataRequestTopic(name=None, topic_id=uuid.uuid4())]), 12)
    assert by_id.topics[0].error_code == 100


# -- idempotent producer ---------------------------------------------------------

def test_idempotent_producer(client, topic):
    ip = client.call(InitProducerId(transactional_id=None, transaction_timeout_ms=60000), 4)
    assert ip.error_code == 0 and ip.producer_id >= 0 and ip.producer_epoch == 0
    pid = ip.producer_id
    b0 = make_batch([b"a", b"b"], producer_id=pid, producer_epoch=0, base_sequence=0)
    pr = client.call(produce_req(topic, 0, bytearray(b0)), 9).responses[0].partition_responses[0]
    assert (pr.error_code, pr.base_offset) == (0, 0)
    b1 = make_batch([b"c"], producer_id=pid, producer_epoch=0, base_sequence=2)
    pr = client.call(produce_req(topic, 0, bytearray(b1)), 9).responses[0].partition_responses[0]
    assert (pr.error_code, pr.base_offset) == (0, 2)
    # a retry of either batch is acknowledged with its original offset and not written again
    pr = client.call(produce_req(topic, 0, bytearray(b0)), 9).responses[0].partition_responses[0]
    assert (pr.error_code, pr.base_offset) == (0, 0)
    pr = client.call(produce_req(topic, 0, bytearray(b1)), 9).responses[0].partition_responses[0]
    assert (pr.error_code, pr.base_offset) == (0, 2)
    assert latest(client, topic) == 3
    # a gap in the sequence
    gap = make_batch([b"d"], producer_id=pid, producer_epoch=0, base_sequence=5)
    pr = client.call(produce_req(topic, 0, gap), 9).responses[0].partition_responses[0]
    assert pr.error_code == 45
    # unknown producer starting mid-sequence
    other = make_batch([b"e"], producer_id=pid + 1000, producer_epoch=0, base_sequence=4)
    pr = client.call(produce_req(topic, 0, other), 9).responses[0].partition_responses[0]
    assert pr.error_code == 59
    # epoch bump resets the sequence; the old epoch is fenced
    bumped = make_batch([b"f"], producer_id=pid, producer_epoch=1, base_sequence=0)
    pr = client.call(produce_req(topic, 0, bumped), 9).responses[0].partition_responses[0]
    assert (pr.error_code, pr.base_offset) == (0, 3)
    stale = make_batch([b"g"], producer_id=pid, producer_epoch=0, base_sequence=3)
    pr = client.call(produce_req(topic, 0, stale), 9).responses[0].partition_responses[0]
    assert pr.error_code == 47
    assert latest(client, topic) == 4


def test_init_producer_id_gives_distinct_ids(client):
    ids = {client.call(InitProducerId(transactional_id=None, transaction_timeout_ms=1000), v).producer_id
           for v in (0, 2, 4, 5)}
    assert len(ids) == 4


# -- bad input -----------------------------------------------------------------

def _still_serves(port):
    with RawClient(port) as c:
        assert c.call(ApiVersions(), 0).error_code == 0


def test_garbage_frame_closes_only_that_connection(broker):
    with RawClient(broker.port) as bystander:
        with RawClient(broker.port) as c:
            garbage = os.urandom(3)
            c.send_raw(struct.pack(">i", len(garbage)) + garbage)
            assert c.is_closed_by_peer()
        assert bystander.call(ApiVersions(), 0).error_code == 0


def test_unknown_api_key_and_version_close(broker):
    with RawClient(broker.port) as c:
        frame = struct.pack(">hhih", 999, 0, 1, -1)
        c.send_raw(struct.pack(">i", len(frame)) + frame)
        assert c.is_closed_by_peer()
    with RawClient(broker.port) as c:
        frame = struct.pack(">hhih", 3, 99, 1, -1) + b"\x00"
        c.send_raw(struct.pack(">i", len(frame)) + frame)
        assert c.is_closed_by_peer()
    with RawClient(broker.port) as c:   # Produce v2: removed in Kafka 4 (KIP-896)
        c.send_raw(encode_request(0, 3, 1, "x", produce_req("t", 0, b""))[:6] + b"\x00\x02" +
                   encode_request(0, 3, 1, "x", produce_req("t", 0, b""))[8:])
        assert c.is_closed_by_peer()
    _still_serves(broker.port)


def test_truncated_body_of_known_api_closes(broker):
    with RawClient(broker.port) as c:
        full = encode_request(3, 12, 1, "x", Metadata(topics=[Metadata.MetadataRequestTopic(name="abc")]))
        cut = full[4:-3]
        c.send_raw(struct.pack(">i", len(cut)) + cut)
        assert c.is_closed_by_peer()
    _still_serves(broker.port)


def _log_has(broker, text, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in broker.log_text():
            return True
        time.sleep(0.05)
    return False


def test_refused_requests_log_the_error_code(broker):
    """Every close names the Kafka error the request earned (h11's habit: a protocol error carries
    the code to answer with), instead of a silent hang-up."""
    with RawClient(broker.port, client_id="kc-code-unknown-key") as c:
        frame = struct.pack(">hhih", 999, 0, 1, -1)
        c.send_raw(struct.pack(">i", len(frame)) + frame)
        assert c.is_closed_by_peer()
    assert _log_has(broker, "api key 999 v0, client None): unknown or unsupported api key 999 [INVALID_REQUEST]")
    with RawClient(broker.port) as c:
        frame = struct.pack(">hhih", 3, 99, 1, -1) + b"\x00"
        c.send_raw(struct.pack(">i", len(frame)) + frame)
        assert c.is_closed_by_peer()
    assert _log_has(broker, "unsupported version 99 of api key 3 (supported 0-13) [UNSUPPORTED_VERSION]")
    with RawClient(broker.port) as c:
        full = encode_request(3, 12, 1, "kc-code-cut", Metadata(topics=[Metadata.MetadataRequestTopic(name="abc")]))
        cut = full[4:-3]
        c.send_raw(struct.pack(">i", len(cut)) + cut)
        assert c.is_closed_by_peer()
    assert _log_has(broker, "client kc-code-cut): cannot parse MetadataRequest v12")
    assert "[INVALID_REQUEST]" in broker.log_text().split("client kc-code-cut)")[1].splitlines()[0]


def test_client_id_that_is_not_utf8_is_served(broker):
    """Kafka decodes the client id with new String(bytes, UTF_8): bad bytes are replaced, the
    request is served."""
    with RawClient(broker.port) as c:
        raw = encode_request(18, 0, 7, "abcd", ApiVersions())
        bad = raw[:14] + b"\xff\xfe" + raw[16:]    # size(4) api(2) ver(2) corr(4) len(2) then "ab"
        c.send_raw(bad)
        c.pending[7] = (18, 0)
        assert c.recv(7).error_code == 0


def test_truncated_frame_then_disconnect(broker):
    with RawClient(broker.port) as c:
        c.send_raw(struct.pack(">i", 1000) + b"\x00" * 10)
    _still_serves(broker.port)


def test_oversized_and_negative_frames_close(broker):
    for size in (200 * 1024 * 1024, -5):
        with RawClient(broker.port) as c:
            c.send_raw(struct.pack(">i", size) + b"\x00" * 16)
            assert c.is_closed_by_peer()
    _still_serves(broker.port)


def test_corrupt_batch_in_pipelined_requests(broker, client, topic):
    good = make_batch([b"good"])
    bad = make_batch([b"bad"])
    bad[70] ^= 0x01
    c1 = client.send(produce_req(topic, 0, good), 9)
    c2 = client.send(produce_req(topic, 0, bad), 9)
    c3 = client.send(produce_req(topic, 0, make_batch([b"good2"])), 9)
    assert client.recv(c1).responses[0].partition_responses[0].base_offset == 0
    assert client.recv(c2).responses[0].partition_responses[0].error_code == 2
    assert client.recv(c3).responses[0].partition_responses[0].base_offset == 1
    got = bytes(client.call(fetch_req(topic, 0, 0), 12).responses[0].partitions[0].records)
    assert b"good" in got and b"good2" in got and b"bad" not in got


def test_many_pipelined_requests(client, topic):
    corrs = [client.send(produce_req(topic, 0, make_batch([b"%d" % i])), 9) for i in range(300)]
    for i, corr in enumerate(corrs):
        assert client.recv(corr).responses[0].partition_responses[0].base_offset == i


def test_large_produce_split_across_reads(client):
    name = f"big-{uuid.uuid4().hex[:8]}"
    create_topic(client, name, configs={"max.message.bytes": str(8 << 20)})
    values = [os.urandom(100_000) for _ in range(40)]
    batch = make_batch(values)
    pr = client.call(produce_req(name, 0, batch), 9).responses[0].partition_responses[0]
    assert pr.error_code == 0
    got = bytes(client.call(fetch_req(name, 0, 0, max_bytes=16 << 20), 12).responses[0].partitions[0].records)
    assert got[16:] == bytes(batch[16:])


def test_frames_split_at_arbitrary_points(client, topic):
    import random

    rnd = random.Random(7)
    blobs, corrs = [], []
    for i in range(60):
        if i % 3 == 0:
            req, v = produce_req(topic, 0, make_batch([os.urandom(rnd.randint(0, 70_000))])), 9
        elif i % 3 == 1:
            req, v = Metadata(topics=[Metadata.MetadataRequestTopic(name=topic)]), 12
        else:
            req, v = ApiVersions(), 0
        corr = 1000 + i
        client.pending[corr] = (req.API_KEY, v)
        corrs.append(corr)
        blobs.append(encode_request(req.API_KEY, v, corr, "split", req))
    stream = b"".join(blobs)
    pos = 0
    while pos < len(stream):
        n = rnd.choice([1, 3, 4, 5, 100, 4096, 65536, 200_000])
        client.send_raw(stream[pos:pos + n])
        pos += n
    offsets = []
    for corr in corrs:
        resp = client.recv(corr)
        if corr % 3 == 1000 % 3:
            offsets.append(resp.responses[0].partition_responses[0].base_offset)
    assert offsets == list(range(20))
