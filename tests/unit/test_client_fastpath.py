"""The client's compiled one-partition Produce fast path (kafka_core._client, csrc/kc_client.c)
against the generated codecs, which stay the one definition of the layouts.

- Requests: byte-identical frames (size prefix, header, body) at every version the fast path
  takes, null and non-null transactional ids, client ids, empty / null / large records.
- Responses: the same decoded fields as the generated ProduceResponse at every version; every
  shape outside the fast path (two partitions, another topic, record errors, tagged fields,
  trailing bytes, every truncation) returns None, so the generated codec decodes it and raises
  what it always raised.
- The schema fields the C code relies on, checked against the generated classes' FIELDS.
- FrameSplitter (the compiled receive side) against kafka_protocol.FrameReader: the same frames
  for every way a stream can be cut (split, merged, short reads, every boundary), the same
  refusals of bad size prefixes.
- The producer's linger-0 shortcut (Engine.send_direct) keeps order and sequence numbers
  under retries; the sync producer's caller-thread write; KAFKA_CORE_NO_EXTENSIONS end to end.
"""

from __future__ import annotations

from typing import Any

import kafka_protocol as kp
import pytest
from kafka_client import conn as conn_mod

from kafka_core import _client as fast

VERSIONS = range(fast.PRODUCE_MIN_VERSION, fast.PRODUCE_MAX_VERSION + 1)


def _produce_layout(cls: Any, version: int) -> tuple[Any, ...]:
    """(name, type, nullable) of the untagged fields present at ``version``, nested structs
    expanded in place: the part of the schema csrc/kc_client.c encodes and parses."""
    out: list[Any] = []
    for f in cls.FIELDS:
        if version not in f.versions or version in f.tagged_versions:
            continue
        out.append((f.name, f.type, version in f.nullable_versions))
        if f.struct is not None:
            out.append(_produce_layout(f.struct, version))
    return tuple(out)


def _check_produce_fast_path_layout() -> None:
    """Assert that the generated Produce schema is the layout kc_client.h describes, at every
    version the fast path takes (a regenerated schema that moves a field fails this test rather
    than let the client mis-encode; it ran at every import of kafka_client.conn before, ~180 us)."""
    for v in range(fast.PRODUCE_MIN_VERSION, fast.PRODUCE_MAX_VERSION + 1):
        req = (("transactional_id", "string", True), ("acks", "int16", False), ("timeout_ms", "int32", False),
               ("topic_data", "[]TopicProduceData", False),
               (("name", "string", False), ("partition_data", "[]PartitionProduceData", False),
                (("index", "int32", False), ("records", "records", True))))
        part: list[Any] = [("index", "int32", False), ("error_code", "int16", False),
                           ("base_offset", "int64", False), ("log_append_time_ms", "int64", False)]
        if v >= 5:
            part.append(("log_start_offset", "int64", False))
        if v >= 8:
            part += [("record_errors", "[]BatchIndexAndErrorMessage", False),
                     (("batch_index", "int32", False), ("batch_index_error_message", "string", True)),
                     ("error_message", "string", True)]
        resp = (("responses", "[]TopicProduceResponse", False),
                (("name", "string", False), ("partition_responses", "[]PartitionProduceResponse", False),
                 tuple(part)),
                ("throttle_time_ms", "int32", False))
        if _produce_layout(kp.ProduceRequest, v) != req or _produce_layout(kp.ProduceResponse, v) != resp:
            raise AssertionError(f"Produce v{v}: the schema no longer matches csrc/kc_client.h's layout")
    if not (kp.ProduceRequest.FLEXIBLE_MIN == kp.ProduceResponse.FLEXIBLE_MIN == fast.PRODUCE_FLEX_MIN):
        raise AssertionError("Produce: flexible versions moved; csrc/kc_client.h assumes v9+")


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
    # Raises if a regenerated schema moved a field.
    _check_produce_fast_path_layout()


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


# ---- FrameSplitter (the compiled receive side) against kafka_protocol.FrameReader

def _stream(sizes):
    frames = [bytes((i + j) & 0xFF for j in range(n)) for i, n in enumerate(sizes)]
    return frames, b"".join(len(f).to_bytes(4, "big") + f for f in frames)


def _split_reads(data, cuts, max_frame_size=kp.DEFAULT_MAX_FRAME_SIZE, chunk_size=65536, stop_after=None):
    """Feed ``data`` to a FrameSplitter in reads ending at ``cuts`` (a read also ends where the
    buffer handed out ends, as a socket read would); returns (frames as handed out, errors)."""
    got: list[memoryview] = []
    errors: list[str] = []
    sp: Any = None

    def on_frame(f):
        got.append(f)
        if stop_after is not None and len(got) == stop_after:
            sp.stopped = True
    sp = fast.FrameSplitter(on_frame, errors.append, max_frame_size, chunk_size)
    pos = 0
    for cut in [*cuts, len(data)]:
        while pos < cut and not sp.stopped:
            view = sp.get_buffer(-1)
            n = min(len(view), cut - pos)
            view[:n] = data[pos:pos + n]
            pos += n
            sp.buffer_updated(n)
    return got, errors, sp


def _reader_frames(data, cuts, chunk_size=65536):
    r = kp.FrameReader(chunk_size=chunk_size)
    out: list[memoryview] = []
    pos = 0
    for cut in [*cuts, len(data)]:
        if cut > pos:
            out += r.feed(data[pos:cut])
            pos = cut
    return out


@pytest.mark.parametrize("chunk_size", [16, 100, 65536])
def test_splitter_every_single_cut(chunk_size):
    frames, data = _stream([0, 1, 3, 4, 5, 17, 100, 300, 0, 2])
    for cut in range(len(data) + 1):
        got, errors, sp = _split_reads(data, [cut], chunk_size=chunk_size)
        assert [bytes(f) for f in got] == frames, cut   # read after later reads: still intact
        assert errors == [] and sp.pending == 0
        assert [bytes(f) for f in _reader_frames(data, [cut], chunk_size)] == frames


@pytest.mark.parametrize("step", [1, 2, 3, 4, 5, 7, 64, 1000])
def test_splitter_short_and_merged_reads(step):
    frames, data = _stream([0, 9, 250, 1, 70000, 4, 131072, 3, 65532, 65536, 8])
    cuts = list(range(step, len(data), step)) if step < 64 else [i * i * step % len(data) for i in range(40)]
    got, errors, sp = _split_reads(data, sorted(set(cuts)), chunk_size=65536)
    assert [bytes(f) for f in got] == frames
    assert errors == [] and sp.pending == 0


def test_splitter_one_call_per_read_hands_every_frame():
    frames, data = _stream([5] * 50)
    got, errors, _ = _split_reads(data, [])        # all 50 in as few reads as the buffer allows
    assert [bytes(f) for f in got] == frames and not errors


@pytest.mark.parametrize("size", [-1, -(2**31), 1001, 2**31 - 1])
@pytest.mark.parametrize("whole", [True, False], ids=["prefix-in-one-read", "prefix-split"])
def test_splitter_refuses_bad_size_as_frame_reader_does(size, whole):
    good, _ = _stream([10])
    data = _stream([10])[1] + size.to_bytes(4, "big", signed=True) + b"x" * 20
    cuts = [] if whole else [len(data) - 22]
    got, errors, sp = _split_reads(data, cuts, max_frame_size=1000)
    with pytest.raises(kp.ProtocolError) as ei:
        kp.FrameReader(max_frame_size=1000).feed(data)
    assert [bytes(f) for f in got] == good
    assert errors == [str(ei.value)] and sp.stopped
    sp.buffer_updated(0)                              # nothing more is handed out or reported
    assert len(got) == 1 and len(errors) == 1


def test_splitter_stopped_by_the_consumer_hands_out_no_more():
    frames, data = _stream([3, 3, 3, 3])
    got, errors, sp = _split_reads(data, [], stop_after=2)
    assert [bytes(f) for f in got] == frames[:2] and not errors and sp.stopped


def test_splitter_rejects_nbytes_outside_the_buffer():
    sp = fast.FrameSplitter(lambda f: None, lambda m: None)
    view = sp.get_buffer(-1)
    with pytest.raises(ValueError):
        sp.buffer_updated(len(view) + 1)
    with pytest.raises(ValueError):
        sp.buffer_updated(-1)


# ---- KAFKA_CORE_NO_EXTENSIONS: the client takes the generated codec and FrameReader

_NO_EXT_CLIENT = r"""
import asyncio, sys
from kafka_client import AIOProducer, Consumer, Producer, TopicPartition, conn
bs, topic = sys.argv[1], sys.argv[2]
print("path", conn.FAST_PATH)
with Producer(bs, linger_ms=0) as p:
    offs = [p.send(topic, b"s%d" % i, partition=0).result(30).offset for i in range(20)]
async def aio():
    async with AIOProducer(bs, linger_ms=0) as p:
        c = p.engine.cluster.connection_if_ready(p.engine.cluster.leader_for(topic, 0))
        out = [(await p.send(topic, b"a%d" % i, partition=0)).offset for i in range(20)]
        c = p.engine.cluster.connection_if_ready(p.engine.cluster.leader_for(topic, 0))
        print("reader", type(c._protocol.reader).__module__, "direct", c._direct_fd >= 0)
        return out
offs += asyncio.run(aio())
print("offsets", offs == list(range(40)))
with Consumer(bootstrap_servers=bs, group_id=None, enable_auto_commit=False) as c:
    c.assign([TopicPartition(topic, 0)])
    c.seek(TopicPartition(topic, 0), 0)
    got = []
    while len(got) < 40:
        for recs in c.poll(5).values():
            got += [r.value for r in recs]
print("values", got == [b"s%d" % i for i in range(20)] + [b"a%d" % i for i in range(20)])
print("loaded", "kafka_core._client" in sys.modules)
"""


@pytest.mark.parametrize("no_ext", ["1", "0"])
def test_client_end_to_end_with_and_without_extensions(no_ext, tmp_path):
    import os
    import subprocess
    import sys

    from kafka_bench.kafka_core_broker import KafkaCoreBroker

    with KafkaCoreBroker(settings={"num.partitions": "1", "auto.create.topics.enable": "true"}) as b:
        env = dict(os.environ, KAFKA_CORE_NO_EXTENSIONS=no_ext)
        out = subprocess.run([sys.executable, "-c", _NO_EXT_CLIENT, b.bootstrap, "noext-" + no_ext],
                             env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    lines = dict(line.split(" ", 1) for line in out.stdout.splitlines())
    off = no_ext == "1"
    assert lines["path"] == ("python" if off else "c")
    assert lines["reader"] == ("kafka_protocol.framing direct False" if off else "kafka_core._client direct True")
    assert lines["offsets"] == "True" and lines["values"] == "True"
    assert lines["loaded"] == str(not off)
