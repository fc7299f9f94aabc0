"""The client's compiled one-partition Produce fast path (kafka_core._client, csrc/kc_client.c)
against the generated codecs, which stay the one definition of the layouts.

- Requests: byte-identical frames (size prefix, header, body) at every version the fast path
  takes, null and non-null transactional ids, client ids, empty / null / large records.
- Responses: the same decoded fields as the generated ProduceResponse at every version; every
  shape outside the fast path (two partitions, another topic, record errors, tagged fields,
  trailing bytes, every truncation) returns None, so the generated codec decodes it and raises
  what it always raised.
- The schema fields the C code relies on, checked against the generated classes' FIELDS.
"""

from __future__ import annotations

import kafka_protocol as kp
import pytest
from kafka_client import conn as conn_mod

from kafka_core import _client as fast

VERSIONS = range(fast.PRODUCE_MIN_VERSION, fast.PRODUCE_MAX_VERSION + 1)


def _slow_frame(version, cid, client_id, txn, acks, timeout_ms, topic, partition, records):
    req = kp.ProduceRequest(transactional_id=txn, acks=acks, timeout_ms=timeout_ms, topic_data=[
        kp.ProduceRequest.TopicProduceData(name=topic, partition_data=[
            kp.ProduceRequest.PartitionProduceData(index=partition, records=records)])])
    return kp.encode_request(0, version, cid, client_id, req)


def test_versions_cover_what_the_client_speaks():
    lo, hi = conn_mod.CLIENT_VERSIONS[conn_mod.ApiKey.PRODUCE]
    assert fast.PRODUCE_MIN_VERSION <= lo and hi <= fast.PRODUCE_MAX_VERSION
    assert fast.PRODUCE_FLEX_MIN == kp.ProduceRequest.FLEXIBLE_MIN == kp.ProduceResponse.FLEXIBLE_MIN


def test_schema_layout_is_the_one_the_fast_path_assumes():
    # Raises (here and at import of kafka_client.conn) if a regenerated schema moved a field.
    conn_mod.check_produce_fast_path_layout()


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("txn", [None, "", "tx-1", "é" * 40])
@pytest.mark.parametrize("records", [None, b"", b"r" * 100, bytes(range(256)) * 70])
def test_request_frame_is_byte_identical(version, txn, records):
    for client_id in ("kafka-core-python", None, ""):
        for topic, partition, cid, acks in (("t", 0, 1, -1), ("topic.with-üñí", 2**31 - 1, 2**31 - 1, 1),
                                            ("x" * 300, 7, 0, 0)):
            want = _slow_frame(version, cid, client_id, txn, acks, 30000, topic, partition, records)
            got = fast.produce_frame(version, cid, None if client_id is None else client_id.encode(),
                                     None if txn is None else txn.encode(), acks, 30000, topic.encode(),
                                     partition, None if records is None else memoryview(records))
            assert got == want


def test_request_frame_refuses_what_it_cannot_encode():
    args = (b"c", None, -1, 1000, b"t", 0, b"x")
    assert fast.produce_frame(13, 1, *args) is None
    assert fast.produce_frame(2, 1, *args) is None
    assert fast.produce_frame(9, 1, b"c", None, 40000, 1000, b"t", 0, b"x") is None
    assert fast.produce_frame(9, 1, b"c", b"t" * 40000, -1, 1000, b"t", 0, b"x") is None


def _response(version, parts, *, throttle=0, record_errors=(), message=None, leader=None, topic="t"):
    P = kp.ProduceResponse.PartitionProduceResponse
    prs = []
    for index, code, base, lat, lso in parts:
        pr = P(index=index, error_code=code, base_offset=base, log_append_time_ms=lat, log_start_offset=lso,
               error_message=message, record_errors=[kp.ProduceResponse.BatchIndexAndErrorMessage(
                   batch_index=i, batch_index_error_message=m) for i, m in record_errors])
        if leader is not None:
            pr.current_leader = kp.ProduceResponse.LeaderIdAndEpoch(leader_id=leader[0], leader_epoch=leader[1])
        prs.append(pr)
    body = kp.ProduceResponse(responses=[kp.ProduceResponse.TopicProduceResponse(name=topic, partition_responses=prs)],
                              throttle_time_ms=throttle)
    return memoryview(kp.encode_response(0, version, 77, body))[4:]


def _slow(frame, version):
    cid, pos = kp.decode_response_header(frame, 0, version)
    body, _ = kp.ProduceResponse.decode(frame, version, pos)
    return cid, body


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("code,message", [(0, None), (6, "not leader"), (10, ""), (47, "épöch")])
def test_response_fields_match_the_generated_codec(version, code, message):
    msg = message if version >= 8 else None
    frame = _response(version, [(3, code, 12345678901, 1700000000000, 5)], throttle=9, message=msg,
                      topic="tôpic")
    got = fast.parse_produce_response(frame, version, "tôpic".encode(), 3)
    cid, body = _slow(frame, version)
    want = body.responses[0].partition_responses[0]
    assert got is not None
    assert got.correlation_id == cid == 77
    for name in ("error_code", "base_offset", "log_append_time_ms", "log_start_offset", "error_message",
                 "record_errors"):
        assert getattr(got, name) == getattr(want, name), name
    assert got.throttle_time_ms == body.throttle_time_ms


@pytest.mark.parametrize("version", VERSIONS)
def test_other_shapes_fall_back(version):
    one = [(0, 0, 1, -1, 0)]
    assert fast.parse_produce_response(_response(version, one), version, b"t", 0) is not None
    assert fast.parse_produce_response(_response(version, one), version, b"u", 0) is None
    assert fast.parse_produce_response(_response(version, one), version, b"t", 1) is None
    two = [(0, 0, 1, -1, 0), (1, 0, 1, -1, 0)]
    assert fast.parse_produce_response(_response(version, two), version, b"t", 0) is None
    frame = bytes(_response(version, one))
    assert fast.parse_produce_response(frame + b"\x00", version, b"t", 0) is None
    for n in range(len(frame)):
        assert fast.parse_produce_response(frame[:n], version, b"t", 0) is None
        with pytest.raises(kp.ProtocolError):
            _slow(memoryview(frame[:n]), version)
    if version >= 8:
        errs = _response(version, one, record_errors=[(0, "bad record")], message="x")
        assert fast.parse_produce_response(errs, version, b"t", 0) is None
        assert _slow(errs, version)[1].responses[0].partition_responses[0].record_errors
    if version >= 10:
        tagged = _response(version, [(0, 6, -1, -1, -1)], leader=(2, 5))
        assert fast.parse_produce_response(tagged, version, b"t", 0) is None
        assert _slow(tagged, version)[1].responses[0].partition_responses[0].current_leader.leader_id == 2


@pytest.mark.parametrize("version", [v for v in VERSIONS if v >= 8])
def test_bad_utf8_error_message_falls_back(version):
    frame = bytearray(_response(version, [(0, 6, -1, -1, -1)], message="abc"))
    i = frame.find(b"abc")
    frame[i] = 0xFF
    assert fast.parse_produce_response(bytes(frame), version, b"t", 0) is None
    with pytest.raises(kp.ProtocolError):
        _slow(memoryview(bytes(frame)), version)
