"""kafka_core._batch: scan/validate errors, offsets, records, builder."""

from __future__ import annotations

import struct

import pytest
from kafka_protocol import _pyrecords as py

from kafka_core import _errors as E
from kafka_core._batch import (
    BatchBuilder,
    Record,
    assign_offsets,
    check_records,
    iter_records,
    recompress_batch,
    scan_batches,
    validate_batches,
)
from kafka_core._crc32c import crc32c


def build(n: int = 3, ts0: int = 1000, **kw) -> bytes:
    b = BatchBuilder(4096, base_timestamp=ts0, **kw)
    for i in range(n):
        assert b.append(ts0 + i, f"k{i}".encode(), b"v" * i, [("h", b"x")] if i % 2 else [])
    return bytes(b.finish())


def test_builder_output_matches_oracle() -> None:
    raw = build(4, producer_id=9, producer_epoch=2, base_sequence=5)
    pb = py.decode_batch(raw)
    assert pb.size == len(raw)
    assert (pb.producer_id, pb.producer_epoch, pb.base_sequence) == (9, 2, 5)
    assert pb.last_offset_delta == 3 and pb.max_timestamp == 1003 and pb.base_timestamp == 1000
    assert [r.key for r in pb.records] == [b"k0", b"k1", b"k2", b"k3"]
    assert pb.records[1].headers == [(b"h", b"x")]
    want = py.make_batch([(1000 + i, f"k{i}".encode(), b"v" * i, [(b"h", b"x")] if i % 2 else [])
                          for i in range(4)], base_timestamp=1000, producer_id=9, producer_epoch=2,
                         base_sequence=5)
    assert raw == want


def test_scan_and_batchinfo() -> None:
    a, b = build(3), build(2, ts0=5000)
    infos, valid = scan_batches(a + b)
    assert valid == len(a) + len(b)
    assert [i.position for i in infos] == [0, len(a)]
    i0 = infos[0]
    assert (i0.magic, i0.record_count, i0.last_offset_delta, i0.size) == (2, 3, 2, len(a))
    assert i0.batch_length == len(a) - 12 and i0.crc == crc32c(a[21:])
    assert i0.codec == 0 and not i0.is_control and not i0.is_transactional and i0.timestamp_type == 0
    assert infos[1].last_offset == 1 and infos[1].max_timestamp == 5001


def test_scan_many_batches_heap_path() -> None:
    one = build(1)
    infos, valid = scan_batches(one * 20)
    assert len(infos) == 20 and valid == len(one) * 20
    bad = bytearray(one * 20)
    bad[len(one) * 15 + 30] ^= 1
    with pytest.raises(E.CrcMismatchError) as ei:
        scan_batches(bad)
    assert ei.value.valid_len == len(one) * 15 and len(ei.value.batches) == 15
    assert "batch 15" in str(ei.value)


def test_truncated_and_partial() -> None:
    a = build(3)
    for cut in (1, 16, 17, 60, len(a) - 1):
        with pytest.raises(E.TruncatedBatchError) as ei:
            scan_batches(a + a[:cut])
        assert ei.value.valid_len == len(a)
        assert "remain" in str(ei.value)
        infos, valid = scan_batches(a + a[:cut], allow_partial=True)
        assert len(infos) == 1 and valid == len(a)


def test_each_bad_input_has_its_own_exception() -> None:
    a = bytearray(build(3))

    def mutated(off: int, fmt: str, v: int) -> bytes:
        m = bytearray(a)
        struct.pack_into(fmt, m, off, v)
        return bytes(m)

    cases = [
        (mutated(30, ">B", a[30] ^ 0xFF), E.CrcMismatchError, "crc"),
        (mutated(16, ">b", 5), E.InvalidMagicError, "magic"),
        (mutated(16, ">b", 0), E.LegacyFormatError, "magic"),
        (mutated(16, ">b", 1), E.LegacyFormatError, "magic"),
        (mutated(8, ">i", 10), E.InvalidBatchLengthError, "batchLength"),
        (mutated(8, ">i", -7), E.InvalidBatchLengthError, "batchLength"),
        (mutated(8, ">i", 0x7FFFFFF0), E.TruncatedBatchError, "batchLength"),
        (mutated(57, ">i", -1), E.InvalidRecordCountError, "recordCount"),
        (mutated(57, ">i", 7), E.InvalidRecordCountError, "recordCount"),
        (bytes(a[:10]), E.TruncatedBatchError, "17 bytes"),
    ]
    seen = set()
    for data, exc, word in cases:
        with pytest.raises(exc) as ei:
            scan_batches(data)
        assert word in str(ei.value), str(ei.value)
        assert type(ei.value) is exc
        assert isinstance(ei.value, ValueError)
        seen.add(exc)
    assert len(seen) == 6
    with pytest.raises(E.InvalidBatchLengthError, match="max_batch_size"):
        scan_batches(a, max_batch_size=len(a) - 1)
    absurd = mutated(57, ">i", 0x7FFFFFFF)
    absurd = bytes(py_set(absurd, 23, ">i", 0x7FFFFFFE))
    with pytest.raises(E.InvalidRecordCountError, match="fit"):
        scan_batches(absurd, verify_crc=False)


def py_set(b: bytes, off: int, fmt: str, v: int) -> bytearray:
    m = bytearray(b)
    struct.pack_into(fmt, m, off, v)
    return m


def test_crc_only_when_asked() -> None:
    a = bytearray(build(2))
    a[-1] ^= 1
    infos, _ = scan_batches(a, verify_crc=False)
    assert len(infos) == 1
    with pytest.raises(E.CrcMismatchError, match="computed"):
        scan_batches(a)


def test_control_batches() -> None:
    b = BatchBuilder(200, base_timestamp=0, attributes=0x30, producer_id=4, producer_epoch=0)
    b.append(0, b"\x00\x00\x00\x00", b"\x00\x00\x00\x00\x00\x00")
    ctl = bytes(b.finish())
    infos, _ = scan_batches(ctl)
    assert infos[0].is_control and infos[0].is_transactional
    with pytest.raises(E.ControlBatchError):
        scan_batches(ctl, reject_control=True)
    with pytest.raises(E.ControlBatchError):
        validate_batches(ctl)
    assert validate_batches(ctl, reject_control=False).records == 1


def test_validate_summary() -> None:
    a, b, c = build(3, ts0=100), build(2, ts0=500), build(4, ts0=200)
    s = validate_batches(a + b + c)
    assert (s.batches, s.records, s.offsets) == (3, 9, 9)
    assert s.max_timestamp == 501 and s.offset_delta_of_max_ts == 4
    assert s.first_timestamp == 100 and s.first.record_count == 3
    empty = bytes(BatchBuilder(100, base_timestamp=0).finish())
    with pytest.raises(E.InvalidRecordCountError, match="empty"):
        validate_batches(empty)
    with pytest.raises(E.TruncatedBatchError):
        validate_batches(b"")


def test_assign_offsets_in_place() -> None:
    a, b = build(3), build(2)
    buf = bytearray(a + b)
    crc_before = scan_batches(buf)[0][0].crc
    assert assign_offsets(buf, 100, 7) == 105
    infos, _ = scan_batches(buf)
    assert [i.base_offset for i in infos] == [100, 103]
    assert infos[0].partition_leader_epoch == 7 and infos[0].crc == crc_before
    assert [r.offset for r in iter_records(memoryview(buf)[len(a):])] == [103, 104]
    assert assign_offsets(buf, 0, 1, log_append_time=4242) == 5
    infos, _ = scan_batches(buf)
    assert all(i.timestamp_type == 1 and i.max_timestamp == 4242 for i in infos)
    assert [r.timestamp for r in iter_records(memoryview(buf)[:len(a)])] == [4242] * 3
    with pytest.raises(BufferError):
        assign_offsets(bytes(buf), 0)
    bad = bytearray(buf)
    bad[len(a) + 16] = 9
    snapshot = bytes(bad)
    with pytest.raises(E.InvalidMagicError, match=f"byte {len(a)}"):
        assign_offsets(bad, 0)
    assert bytes(bad) == snapshot


def test_iter_records_values() -> None:
    b = BatchBuilder(1000, base_timestamp=50)
    b.append(49, None, None, [("k1", None), ("ключ", b"v")])
    b.append(60, b"", b"")
    recs = iter_records(b.finish())
    assert recs == [Record(0, 49, None, None, [("k1", None), ("ключ", b"v")]), Record(1, 60, b"", b"", [])]
    assert "Record(offset=1" in repr(recs[1])


def test_iter_records_section_and_errors() -> None:
    raw = build(3)
    section = raw[61:]
    recs = iter_records(section, 10, 2000)
    assert [r.offset for r in recs] == [10, 11, 12] and recs[0].timestamp == 2000
    with pytest.raises(TypeError):
        iter_records(section, 10)
    with pytest.raises(E.InvalidArgumentError, match="one batch"):
        iter_records(raw + raw)
    # a record claiming more bytes than remain
    with pytest.raises(E.TruncatedBatchError, match="record 0"):
        iter_records(py.encode_varint(1000) + section, 0, 0)
    # record with a trailing byte inside its declared length
    body = bytes([0, 0, 0, 1, 2]) + b"x" + bytes([0, 0])
    with pytest.raises(E.InvalidRecordError):
        iter_records(py.encode_varint(len(body)) + body, 0, 0)
    # varint running past the declared end vs too long
    body = bytes([0, 0, 0, 1, 2]) + b"x"
    with pytest.raises(E.VarintUnderflowError):
        iter_records(py.encode_varint(len(body)) + body, 0, 0)
    body = bytes([0]) + b"\xff" * 10 + b"\x01" + bytes([0, 1, 1, 0])
    with pytest.raises(E.VarintOverflowError):
        iter_records(py.encode_varint(len(body)) + body, 0, 0)
    # count mismatch: recordCount says 3, section holds 2
    two = build(2)
    forged = py.encode_batch(py.PyBatch(last_offset_delta=2, max_timestamp=0), records_section=two[61:])
    with pytest.raises(E.InvalidRecordCountError, match="2 records decoded"):
        iter_records(forged)


def test_iter_records_compressed_refused() -> None:
    b = BatchBuilder(1000, base_timestamp=0)
    b.append(0, b"k", b"v")
    comp = bytes(b.finish_compressed(4, b"\x28\xb5\x2f\xfd"))
    assert scan_batches(comp)[0][0].codec == 4
    with pytest.raises(E.UnsupportedError, match="decompress"):
        iter_records(comp)


def test_builder_limits_and_views() -> None:
    b = BatchBuilder(100, base_timestamp=0)
    assert len(b) == 61 and b.count == 0
    assert b.append(1, b"k", b"v" * 20)
    size = len(b)
    assert bytes(b.records_view()) == py.encode_record(py.PyRecord(0, 1, b"k", b"v" * 20))
    assert not b.append(2, b"k", b"v" * 20)       # full: unchanged
    assert len(b) == size and b.count == 1
    with pytest.raises(E.TooLargeError):
        BatchBuilder(100, base_timestamp=0).append(0, None, b"x" * 100)
    with pytest.raises(E.TooLargeError):
        BatchBuilder(10, base_timestamp=0)
    with pytest.raises(E.InvalidArgumentError, match="codec"):
        BatchBuilder(100, base_timestamp=0, attributes=1)
    mv = b.finish()
    assert len(mv) == size and len(b) == size
    with pytest.raises(E.InvalidArgumentError, match="after finish"):
        b.append(3, None, b"")
    b2 = BatchBuilder(200, base_timestamp=0)
    b2.append(0, bytearray(b"key"), memoryview(b"value"), [(b"bk", bytearray(b"bv"))])
    assert iter_records(b2.finish())[0] == Record(0, 0, b"key", b"value", [("bk", b"bv")])
    b3 = BatchBuilder(200, base_timestamp=0)
    with pytest.raises(E.InvalidArgumentError):
        b3.finish_compressed(7, b"x")
    with pytest.raises(E.TooLargeError):
        b3.finish_compressed(1, b"x" * 200)
    many = [(f"h{i}", b"v") for i in range(20)]
    b4 = BatchBuilder(1000, base_timestamp=0)
    assert b4.append(0, None, None, many)
    assert iter_records(b4.finish())[0].headers == many


# ---------------------------------------------------------------- check_records / recompress_batch

def _raw(deltas: list[int], keys: list[bytes | None], *, last: int | None = None, count: int | None = None,
         attributes: int = 0, section: bytes | None = None) -> bytes:
    """An oracle-encoded batch with arbitrary offset deltas / keys / header counts."""
    recs = [py.PyRecord(d, 0, k, b"v", []) for d, k in zip(deltas, keys, strict=True)]
    lod = len(deltas) - 1 if last is None else last
    return py.encode_batch(py.PyBatch(last_offset_delta=lod, base_timestamp=5, max_timestamp=5, records=recs,
                                      attributes=attributes), records_section=section,
                           record_count=len(deltas) if count is None else count)


def test_check_records_ok_and_missing_key() -> None:
    raw = build(4)
    assert check_records(raw) == 4
    assert check_records(raw, require_keys=True, verify_crc=True) == 4
    nokey = _raw([0, 1, 2], [b"a", None, b""])
    assert check_records(nokey) == 3
    with pytest.raises(E.MissingKeyError) as ei:
        check_records(nokey, require_keys=True)
    assert ei.value.kafka_error == "INVALID_RECORD" and ei.value.code == -12
    assert ei.value.record_index == 1
    assert ei.value.position == 61 + len(py.encode_record(py.PyRecord(0, 0, b"a", b"v")))
    assert isinstance(ei.value, E.InvalidRecordError)


@pytest.mark.parametrize(("deltas", "index"), [([0, 0, 1], 1), ([1, 0, 2], 1), ([-1, 0, 1], 0), ([0, 1, 3], 2)])
def test_check_records_offset_deltas(deltas: list[int], index: int) -> None:
    raw = _raw(deltas, [b"k"] * 3, last=2)
    with pytest.raises(E.InvalidRecordError) as ei:
        check_records(raw)
    assert ei.value.code == -7 and ei.value.record_index == index


def test_check_records_compacted_gaps() -> None:
    raw = _raw([1, 4], [b"k", b"k"], last=5)
    with pytest.raises(E.InvalidRecordCountError):
        check_records(raw)                      # header: count != lastOffsetDelta + 1
    assert check_records(raw, allow_compacted=True) == 2


def test_check_records_count_mismatch() -> None:
    recs = b"".join(py.encode_record(py.PyRecord(i, 0, b"k", b"v" * 9)) for i in range(3))   # > 4 * 7 bytes
    fewer = py.encode_batch(py.PyBatch(last_offset_delta=3), records_section=recs, record_count=4)
    with pytest.raises(E.InvalidRecordCountError) as ei:
        check_records(fewer)
    assert ei.value.record_index == 3 and "ends after 3 records" in str(ei.value)
    more = py.encode_batch(py.PyBatch(last_offset_delta=1), records_section=recs, record_count=2)
    with pytest.raises(E.InvalidRecordCountError, match="bytes remain"):
        check_records(more)


def test_check_records_decode_errors_and_args() -> None:
    raw = bytearray(build(3))
    raw[61] = 0x7E                              # record 0 length 63: past the batch
    with pytest.raises(E.TruncatedBatchError):
        check_records(bytes(raw))
    raw[61] = 0x01                              # length -1
    with pytest.raises(E.InvalidRecordError):
        check_records(bytes(raw))
    with pytest.raises(E.CrcMismatchError):
        check_records(bytes(raw), verify_crc=True)
    with pytest.raises(E.InvalidArgumentError):
        check_records(build(2) + b"\0")          # not exactly one batch
    with pytest.raises(E.TruncatedBatchError):
        check_records(build(2)[:-1])


def test_check_records_compressed_needs_section() -> None:
    from kafka_core import compression

    plain = build(5)
    for codec in (1, 2, 3, 4):
        z = recompress_batch(plain, codec)
        with pytest.raises(E.UnsupportedError):
            check_records(z)
        section = compression.decompress(codec, memoryview(z)[61:])
        assert check_records(z, section, require_keys=True, verify_crc=True) == 5
        with pytest.raises(E.InvalidRecordCountError):
            check_records(z, section + b"\0")


def test_recompress_round_trip_all_codecs() -> None:
    from kafka_core import compression

    plain = build(6, producer_id=3, producer_epoch=1, base_sequence=7)
    want = [(r.offset, r.timestamp, r.key, r.value, r.headers) for r in iter_records(plain)]
    for src in range(5):
        batch = recompress_batch(plain, src) if src else plain
        for dst in range(5):
            out = recompress_batch(memoryview(batch), dst)
            assert isinstance(out, bytearray)
            (info,), valid = scan_batches(out)
            assert valid == len(out) and info.codec == dst and info.record_count == 6
            assert (info.producer_id, info.producer_epoch, info.base_sequence) == (3, 1, 7)
            assert bytes(out[:8]) == plain[:8] and bytes(out[12:17]) == plain[12:17]
            body = compression.decompress(dst, memoryview(out)[61:]) if dst else bytes(out[61:])
            assert body == plain[61:]
            if dst == 0:
                assert bytes(out) == plain
                got = iter_records(out)
            else:
                got = iter_records(_plain(out, body))
            assert [(r.offset, r.timestamp, r.key, r.value, r.headers) for r in got] == want


def _plain(batch: bytearray, body: bytes) -> bytes:
    pb = py.decode_batch(bytes(batch), decode_records=False)
    pb.attributes &= ~7
    return py.encode_batch(pb, records_section=body)


def test_recompress_errors() -> None:
    plain = build(3)
    bad = bytearray(plain)
    bad[-2] ^= 1                                # a value byte of the last record: still decodes
    with pytest.raises(E.CrcMismatchError):
        recompress_batch(bytes(bad), 1)
    assert isinstance(recompress_batch(bytes(bad), 1, verify_crc=False), bytearray)
    with pytest.raises(E.InvalidArgumentError):
        recompress_batch(plain, 5)
    with pytest.raises(E.MissingKeyError):
        recompress_batch(_raw([0, 1], [b"k", None]), 4, require_keys=True)
    with pytest.raises(E.InvalidRecordError):
        recompress_batch(_raw([0, 0], [b"k", b"k"]), 4)      # deltas not increasing
    garbage = py.encode_batch(py.PyBatch(last_offset_delta=0, attributes=4), records_section=b"not zstd")
    with pytest.raises(E.CorruptRecordError, match="cannot decompress") as ei:
        recompress_batch(garbage, 0)
    assert ei.value.kafka_error == "CORRUPT_MESSAGE"


def test_recompress_compress_hook_and_records() -> None:
    from kafka_core import compression

    plain = build(4)
    seen = []

    def comp(data: object) -> bytes:
        seen.append(bytes(data))  # type: ignore[call-overload]
        return compression.compress(4, data)

    out = recompress_batch(plain, 4, compress=comp)
    assert seen == [plain[61:]]
    z = recompress_batch(plain, 1)
    section = compression.decompress(1, memoryview(z)[61:])
    assert bytes(recompress_batch(z, 0, records=section)) == plain
    with pytest.raises(E.InvalidRecordCountError):
        recompress_batch(z, 0, records=section + b"\0")
    assert scan_batches(out)[0][0].codec == 4
