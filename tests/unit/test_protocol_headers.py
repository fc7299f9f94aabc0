"""Request/response headers (v0/v1/v2), ApiVersions quirks, the framing helper."""

from __future__ import annotations

import random
import struct
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "python"))

import kafka_protocol as kp  # noqa: E402
from kafka_protocol import FrameReader  # noqa: E402


def test_header_versions() -> None:
    assert kp.request_header_version(0, 8) == 1 and kp.request_header_version(0, 9) == 2
    assert kp.response_header_version(0, 8) == 0 and kp.response_header_version(0, 9) == 1
    # ApiVersions: request header follows flexibility, the response is always header v0
    assert kp.request_header_version(18, 3) == 2 and kp.request_header_version(18, 2) == 1
    assert all(kp.response_header_version(18, v) == 0 for v in range(0, 10))
    assert kp.request_header_version(18, 7) == 2  # above max, still flexible ("3+")
    assert kp.request_header_version(9999, 0) == 1 and kp.response_header_version(9999, 0) == 0
    for key, cls in kp.REQUESTS.items():
        for v in range(cls.MIN_VERSION, cls.MAX_VERSION + 1):
            assert kp.request_header_version(key, v) == (2 if cls.is_flexible(v) else 1)


@pytest.mark.parametrize("client_id", [None, "", "client-é"])
@pytest.mark.parametrize("api_key,version", [(3, 1), (3, 12), (18, 0), (18, 4), (0, 9)])
def test_request_header_roundtrip(client_id: str | None, api_key: int, version: int) -> None:
    body = kp.REQUESTS[api_key]()
    frame = kp.encode_request(api_key, version, 77, client_id, body)
    (size,) = struct.unpack_from(">i", frame)
    assert size == len(frame) - 4
    hdr = kp.decode_request_header(frame[4:])
    assert hdr.api_key == api_key and hdr.api_version == version and hdr.correlation_id == 77
    assert hdr.client_id == client_id and hdr.known
    hv = kp.request_header_version(api_key, version)
    assert hdr.header_version == hv
    cid_len = 2 + (len(client_id.encode()) if client_id is not None else 0)
    assert hdr.body_offset == 8 + cid_len + (1 if hv == 2 else 0)
    got, end = kp.REQUESTS[api_key].decode(frame, version, 4 + hdr.body_offset)
    assert got == body and end == len(frame)
    # the generated header schema class agrees with the hand-written fast path
    data, _ = kp.RequestHeaderData.decode(frame, hv, 4)
    assert (data.request_api_key, data.request_api_version, data.client_id) == (api_key, version, client_id)
    assert data.encode(hv) == frame[4:4 + hdr.body_offset]


def test_header_v2_null_client_id_with_tags() -> None:
    # redpanda #6585: null client_id followed by a non-empty tag section
    raw = struct.pack(">hhih", 18, 3, 5, -1) + b"\x01" + b"\x03\x02xy" + b"\x01\x01\x00"
    hdr = kp.decode_request_header(raw)
    assert hdr.client_id is None and hdr.unknown_tagged_fields == [(3, b"xy")]
    assert hdr.body_offset == 8 + 2 + 5
    body, end = kp.ApiVersionsRequest.decode(raw, 3, hdr.body_offset)
    assert end == len(raw) and body.client_software_name == ""
    data, _ = kp.RequestHeaderData.decode(raw, 2)
    assert data.client_id is None and data.unknown_tagged_fields == [(3, b"xy")]
    assert data.encode(2) == raw[:hdr.body_offset]


def test_unknown_api_key_and_version_flagged() -> None:
    raw = struct.pack(">hhih", 4242, 1, 9, 3) + b"abc" + b"rest"
    hdr = kp.decode_request_header(raw)
    assert not hdr.known and hdr.api_key == 4242 and hdr.client_id == "abc" and hdr.body_offset == 13
    # a future ApiVersions version: header v2 (flexible range is open), flagged unknown
    raw = struct.pack(">hhih", 18, 99, 9, 1) + b"c" + b"\x00"
    hdr = kp.decode_request_header(raw)
    assert not hdr.known and hdr.header_version == 2 and hdr.client_id == "c" and hdr.body_offset == 12
    # truncated client id of an unknown api: what could be read, no exception
    hdr = kp.decode_request_header(struct.pack(">hhih", 4242, 0, 1, 50) + b"ab")
    assert not hdr.known and hdr.client_id is None
    # the same truncation for a known api is a decode error with INVALID_REQUEST
    with pytest.raises(kp.DecodeError) as ei:
        kp.decode_request_header(struct.pack(">hhih", 3, 1, 1, 50) + b"ab")
    assert ei.value.error_code == kp.ErrorCode.INVALID_REQUEST
    with pytest.raises(kp.DecodeError):
        kp.decode_request_header(b"\x00\x03\x00")


def test_api_versions_response_header_v0_and_unsupported_answer() -> None:
    R = kp.ApiVersionsResponse
    body = R(error_code=kp.ErrorCode.UNSUPPORTED_VERSION,
             api_keys=[R.ApiVersion(api_key=18, min_version=0, max_version=4)])
    frame = kp.encode_response(18, 0, 12, body)
    # size, correlation id, no tag byte even though... v0 body: error, array of (key, min, max)
    assert frame == struct.pack(">iih", 4 + 2 + 4 + 6, 12, 35) + struct.pack(">ihhh", 1, 18, 0, 4)
    frame3 = kp.encode_response(18, 3, 12, R(api_keys=body.api_keys))
    corr, off = kp.decode_response_header(frame3[4:], 18, 3)
    assert corr == 12 and off == 4  # header v0 even though v3 is flexible
    got, _ = R.decode(frame3[4:], 3, off)
    assert got.api_keys == body.api_keys


def test_response_header_v1_tags() -> None:
    body = kp.MetadataResponse(cluster_id="c")
    frame = kp.encode_response(3, 12, 99, body)
    assert frame[4:9] == struct.pack(">i", 99) + b"\x00"
    corr, off = kp.decode_response_header(frame[4:], 3, 12)
    assert (corr, off) == (99, 5)
    assert kp.MetadataResponse.decode(frame[4:], 12, off)[0] == body
    corr, off = kp.decode_response_header(frame[4:], 3, 8)
    assert off == 4


class FileSliceLike:
    """Stands in for kafka_core FileSlice: has a length, is not bytes-like."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n


def test_encode_response_parts_with_file_slices() -> None:
    F = kp.FetchResponse
    s1, s2 = FileSliceLike(1000), FileSliceLike(70000)
    resp = F(responses=[F.FetchableTopicResponse(topic="t", partitions=[
        F.PartitionData(partition_index=0, records=s1),
        F.PartitionData(partition_index=1, records=b"inline"),
        F.PartitionData(partition_index=2, records=s2)])])
    for version in (4, 11, 12, 16):
        parts = kp.encode_response_parts(1, version, 5, resp)
        expected = [bytes, FileSliceLike, bytes, FileSliceLike]
        if version >= 12:  # flexible: tag sections follow the last records
            expected.append(bytes)
        assert [type(p) for p in parts] == expected
        assert parts[1] is s1 and parts[3] is s2
        total = sum(len(p) for p in parts)
        assert struct.unpack_from(">i", parts[0])[0] == total - 4
        # the bytes before a slice end with its length prefix
        if version >= 12:
            assert parts[0].endswith(kp.uvarint_bytes(1001))
        else:
            assert parts[0].endswith(struct.pack(">i", 1000))
        # replace slices with real bytes: the result decodes
        wire = b"".join(p if isinstance(p, bytes) else b"\x01" * len(p) for p in parts)
        corr, off = kp.decode_response_header(wire[4:], 1, version)
        got, end = F.decode(wire[4:], version, off)
        assert end == len(wire) - 4
        assert [bytes(p.records) for p in got.responses[0].partitions] == [
            b"\x01" * 1000, b"inline", b"\x01" * 70000]
    with pytest.raises(kp.EncodeError):
        resp.encode(12)
    assert len(resp.encode_parts(12)) == 5
    assert len(F(responses=[]).encode_parts(12)) == 1


# ---------------------------------------------------------------------------- FrameReader


def frames_of(sizes: list[int]) -> tuple[bytes, list[bytes]]:
    rng = random.Random(len(sizes))
    bodies = [rng.randbytes(n) for n in sizes]
    return b"".join(struct.pack(">i", len(b)) + b for b in bodies), bodies


@pytest.mark.parametrize("split", [1, 2, 3, 5, 7, 64, 1000, 70000])
def test_frame_reader_any_split(split: int) -> None:
    stream, bodies = frames_of([0, 1, 3, 100, 5000, 70000, 2, 200000, 4])
    reader = FrameReader(max_frame_size=1 << 20, chunk_size=4096)
    got = []
    for i in range(0, len(stream), split):
        got += [bytes(f) for f in reader.feed(stream[i:i + split])]
    assert got == bodies and reader.pending == 0


def test_frame_reader_buffered_protocol_and_views_stay_valid() -> None:
    stream, bodies = frames_of([10, 20000, 30, 40, 100000])
    reader = FrameReader(chunk_size=1024)
    views = []
    pos = 0
    rng = random.Random(3)
    while pos < len(stream):
        buf = reader.get_buffer(rng.choice((-1, 10, 5000)))
        n = min(len(buf), len(stream) - pos, rng.randint(1, 9000))
        buf[:n] = stream[pos:pos + n]
        pos += n
        views += reader.buffer_updated(n)
    assert [bytes(v) for v in views] == bodies  # earlier frames not overwritten by later reads
    assert not views[1].readonly  # writable: offsets may be assigned in place


def test_frame_reader_grows_with_the_bytes_not_the_prefix() -> None:
    """A 1 MiB frame fed in pieces: the buffer grows with what arrived (twice it, up to the frame),
    so the copying stays O(n) with O(log n) moves, and the frame comes out whole."""
    reader = FrameReader(chunk_size=64)
    body = bytes(range(256)) * 4096
    data = struct.pack(">i", len(body)) + body
    out = []
    for i in range(0, 100):
        out += reader.feed(data[i:i + 1])
    assert len(reader.get_buffer()) <= 200        # not the 1 MiB the prefix claims
    bufs = set()
    for i in range(100, len(data), 4096):
        out += reader.feed(data[i:i + 4096])
        bufs.add(id(reader._buf))
    assert len(out) == 1 and out[0] == body
    assert len(bufs) <= 20                        # doublings, not one move per piece


def test_a_size_prefix_alone_allocates_one_chunk() -> None:
    """issue 16: ten connections that each sent a 100 MB prefix and 24 bytes took the broker to 1 GB."""
    reader = FrameReader(max_frame_size=100 << 20)
    assert reader.feed(struct.pack(">i", 100 << 20) + bytes(24)) == []
    reader.get_buffer()
    assert len(reader._buf) <= 65536


def test_frame_reader_limits() -> None:
    reader = FrameReader(max_frame_size=100)
    with pytest.raises(kp.FrameTooLargeError, match="101 bytes exceeds the limit of 100"):
        reader.feed(struct.pack(">i", 101))
    with pytest.raises(kp.FrameTooLargeError, match="negative"):
        FrameReader().feed(b"\xff\xff\xff\xfe")
    assert FrameReader(max_frame_size=100).feed(struct.pack(">i", 100) + bytes(100))[0] == bytes(100)
    e = kp.FrameTooLargeError("x")
    assert isinstance(e, kp.ProtocolError) and isinstance(e, ValueError)
    with pytest.raises(ValueError):
        FrameReader().buffer_updated(1 << 30)
