"""Hypothesis: the C batch code agrees with the pure-Python oracle
(kafka_protocol._pyrecords) both ways, and every corruption or truncation
is reported as such."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kafka_protocol import _pyrecords as py

from kafka_core import _errors as E
from kafka_core import compression
from kafka_core._batch import (
    BatchBuilder,
    assign_offsets,
    check_records,
    iter_records,
    recompress_batch,
    scan_batches,
    validate_batches,
)
from kafka_core._crc32c import crc32c, crc32c_portable

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

blobs = st.one_of(st.none(), st.binary(max_size=40))
header_keys = st.text(max_size=8)
headers = st.lists(st.tuples(header_keys, blobs), max_size=3)
timestamps = st.integers(min_value=-1, max_value=2**41)
records = st.lists(st.tuples(timestamps, blobs, blobs, headers), min_size=1, max_size=12)
batch_params = st.fixed_dictionaries({
    "base_timestamp": st.integers(min_value=0, max_value=2**41),
    "producer_id": st.integers(min_value=-1, max_value=2**62),
    "producer_epoch": st.integers(min_value=-1, max_value=2**15 - 1),
    "base_sequence": st.integers(min_value=-1, max_value=2**31 - 1),
    "attributes": st.sampled_from([0, 0x10]),
})


def oracle_batch(recs, params) -> bytes:
    return py.make_batch([(ts, k, v, [(hk.encode("utf-8", "surrogateescape"), hv) for hk, hv in h])
                          for ts, k, v, h in recs], **params)


@SETTINGS
@given(st.binary(max_size=3000), st.integers(min_value=0, max_value=2**32 - 1))
def test_crc32c_matches_oracle(data: bytes, seed: int) -> None:
    want = py.crc32c(data, seed)
    assert crc32c(data, seed) == want
    assert crc32c_portable(data, seed) == want


@SETTINGS
@given(records, batch_params)
def test_oracle_batches_decode_in_c(recs, params) -> None:
    raw = oracle_batch(recs, params)
    infos, valid = scan_batches(raw)
    assert valid == len(raw) and len(infos) == 1
    bi = infos[0]
    assert bi.record_count == len(recs) and bi.producer_id == params["producer_id"]
    assert bi.max_timestamp == max(max(ts for ts, _, _, _ in recs), -1)
    got = iter_records(raw, verify_crc=True)
    assert [(r.offset, r.timestamp, r.key, r.value, r.headers) for r in got] == [
        (i, ts, k, v, h) for i, (ts, k, v, h) in enumerate(recs)]


@SETTINGS
@given(records, batch_params)
def test_c_builder_decodes_identically_in_oracle(recs, params) -> None:
    b = BatchBuilder(1 << 16, **params)
    for ts, k, v, h in recs:
        assert b.append(ts, k, v, h)
    raw = bytes(b.finish())
    assert raw == oracle_batch(recs, params)
    pb = py.decode_batch(raw)
    assert [(r.offset_delta, r.timestamp_delta + pb.base_timestamp, r.key, r.value) for r in pb.records] == [
        (i, ts, k, v) for i, (ts, k, v, _) in enumerate(recs)]


@SETTINGS
@given(st.lists(st.tuples(records, batch_params), min_size=1, max_size=4),
       st.integers(min_value=0, max_value=2**40), st.integers(min_value=-1, max_value=2**31 - 1))
def test_multi_batch_summary_and_offsets(batches, base, epoch) -> None:
    raws = [oracle_batch(r, p) for r, p in batches]
    buf = bytearray(b"".join(raws))
    s = validate_batches(buf)
    counts = [len(r) for r, _ in batches]
    maxes = [max(max(ts for ts, _, _, _ in r), -1) for r, _ in batches]
    assert s.batches == len(raws) and s.records == sum(counts) == s.offsets
    assert s.max_timestamp == max(maxes)
    if s.max_timestamp > -1:
        k = maxes.index(s.max_timestamp)
        assert s.offset_delta_of_max_ts == sum(counts[:k + 1]) - 1
    assert assign_offsets(buf, base, epoch) == base + sum(counts)
    for pb, want_base in zip(py.decode_batches(bytes(buf)), [base + sum(counts[:i]) for i in range(len(counts))],
                             strict=True):
        assert pb.base_offset == want_base and pb.partition_leader_epoch == epoch


@SETTINGS
@given(records, batch_params, st.data())
def test_single_byte_corruption_in_crc_region_is_detected(recs, params, data) -> None:
    raw = bytearray(oracle_batch(recs, params))
    i = data.draw(st.integers(min_value=21, max_value=len(raw) - 1))
    x = data.draw(st.integers(min_value=1, max_value=255))
    raw[i] ^= x
    try:
        scan_batches(raw)
    except E.CorruptRecordError:
        pass
    else:
        raise AssertionError(f"corruption at byte {i} (xor {x:#x}) not detected")


@SETTINGS
@given(records, batch_params)
def test_every_truncation_is_truncated(recs, params) -> None:
    raw = oracle_batch(recs, params)
    for cut in range(len(raw)):
        try:
            scan_batches(raw[:cut])
        except E.TruncatedBatchError as e:
            assert e.valid_len == 0
        else:
            assert cut == 0, cut  # only the empty buffer is a valid (empty) scan
        infos, valid = scan_batches(raw + raw[:cut], allow_partial=True)
        assert len(infos) == 1 and valid == len(raw)


@SETTINGS
@given(st.binary(max_size=300))
def test_garbage_never_crashes(data: bytes) -> None:
    try:
        infos, _ = scan_batches(data, verify_crc=False)
    except E.CorruptRecordError:
        return
    for bi in infos:
        try:
            iter_records(data[bi.position:bi.position + bi.size])
        except (E.CorruptRecordError, E.UnsupportedError):
            pass


# ---------------------------------------------------------------- check_records / recompress_batch

raw_records = st.lists(st.tuples(st.integers(min_value=-3, max_value=12), blobs), min_size=0, max_size=10)


def oracle_check(deltas: list[int], keys: list[bytes | None], last: int, require_keys: bool) -> int | None:
    """Index of the first record Kafka's LogValidator rejects, or None."""
    prev = -1
    for i, (d, k) in enumerate(zip(deltas, keys, strict=True)):
        if d < 0 or d <= prev or d > last:
            return i
        if require_keys and k is None:
            return i
        prev = d
    return None


@SETTINGS
@given(raw_records, st.integers(min_value=0, max_value=3), st.booleans(), st.booleans())
def test_check_records_matches_oracle(recs, slack, require_keys, compressed) -> None:
    deltas = [d for d, _ in recs]
    keys = [k for _, k in recs]
    last = max([0, len(recs) - 1, *deltas]) + slack     # compacted shape: lastOffsetDelta >= count - 1
    section = b"".join(py.encode_record(py.PyRecord(d, 0, k, b"value", [])) for d, k in recs)
    payload = compression.compress(4, section) if compressed else section
    raw = py.encode_batch(py.PyBatch(last_offset_delta=last, attributes=4 if compressed else 0),
                          records_section=payload, record_count=len(recs))
    bad = oracle_check(deltas, keys, last, require_keys)
    try:
        n = check_records(raw, section if compressed else None, require_keys=require_keys, verify_crc=True,
                          allow_compacted=True)
    except E.CorruptRecordError as e:
        assert bad is not None, e
        assert e.record_index == bad
        want = E.MissingKeyError if (keys[bad] is None and require_keys and not (
            deltas[bad] < 0 or deltas[bad] > last or (bad and deltas[bad] <= deltas[bad - 1]))) else None
        assert type(e) is (want or E.InvalidRecordError)
    else:
        assert bad is None and n == len(recs)


@SETTINGS
@given(records, batch_params, st.integers(min_value=0, max_value=4), st.integers(min_value=0, max_value=4))
def test_recompress_round_trip_against_oracle(recs, params, src, dst) -> None:
    plain = oracle_batch(recs, params)
    batch = recompress_batch(plain, src) if src else plain
    out = recompress_batch(batch, dst)
    pb = py.decode_batch(bytes(out), decode_records=False)       # the oracle checks the CRC
    want = py.decode_batch(plain)
    assert pb.attributes == want.attributes | dst and pb.size == len(out)
    assert (pb.base_offset, pb.partition_leader_epoch, pb.last_offset_delta, pb.base_timestamp, pb.max_timestamp,
            pb.producer_id, pb.producer_epoch, pb.base_sequence) == (
            want.base_offset, want.partition_leader_epoch, want.last_offset_delta, want.base_timestamp,
            want.max_timestamp, want.producer_id, want.producer_epoch, want.base_sequence)
    body = compression.decompress(dst, memoryview(out)[61:]) if dst else bytes(out[61:])
    assert body == plain[61:]
    pos, got = 0, []
    while pos < len(body):
        r, pos = py.decode_record(body, pos)
        got.append(r)
    assert got == want.records
    if dst == 0:
        assert bytes(out) == plain


@SETTINGS
@given(records, batch_params)
def test_every_section_truncation_is_rejected(recs, params) -> None:
    raw = oracle_batch(recs, params)
    section = raw[61:]
    assert check_records(raw, section) == len(recs)
    for cut in range(len(section)):
        try:
            check_records(raw, section[:cut])
        except E.CorruptRecordError:
            pass
        else:
            raise AssertionError(f"records section cut at {cut} of {len(section)} accepted")
