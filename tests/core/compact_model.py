"""Shared by tests/core/test_compact.py and tests/property/test_compact_props.py: batches to append,
a compacted log read back through read() slices, and the model of what compaction must leave."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from kafka_core import compression
from kafka_core._batch import BatchBuilder, iter_records, scan_batches
from kafka_core._log import Log

KeyVal = tuple[bytes | None, bytes | None]
Row = tuple[int, bytes | None, bytes | None]


def make(records: list[KeyVal], ts: int = 1000, codec: int = 0) -> bytearray:
    """One batch of records, all at timestamp ts, compressed with codec (0: none)."""
    b = BatchBuilder(1 << 16, base_timestamp=ts)
    for k, v in records:
        assert b.append(ts, k, v)
    if codec == 0:
        return bytearray(b.finish())
    return bytearray(b.finish_compressed(codec, compression.compress(codec, bytes(b.records_view()))))


def log_slices(log: Log) -> Iterator[tuple[bytes, list[Any]]]:
    """(bytes, BatchInfos) of each read() slice from the log start to its end: every slice scans
    whole (compacted batches allowed, CRCs verified); the next read starts past its last batch."""
    off = log.start_offset
    while off < log.end_offset:
        with log.read(off, 1 << 20) as s:
            data = s.read_bytes()
        if not data:
            break
        infos, valid = scan_batches(data, allow_compacted=True)
        assert valid == len(data) and infos
        yield data, infos
        off = infos[-1].base_offset + infos[-1].last_offset_delta + 1


def read_log(log: Log) -> tuple[list[Row], list[tuple[int, int]]]:
    """Records (offset, key, value) and batch offset ranges (first, last), in log order.

    Every slice scans whole (compacted batches allowed), uncompressed batches verify their CRC,
    a batch holds no more records than offsets and only offsets in its range, offsets rise."""
    recs: list[Row] = []
    batches: list[tuple[int, int]] = []
    for data, infos in log_slices(log):
        for bi in infos:
            raw = data[bi.position:bi.position + bi.size]
            if bi.codec:
                rs = iter_records(compression.decompress(bi.codec, raw[61:]), bi.base_offset, bi.base_timestamp)
            else:
                rs = iter_records(raw, verify_crc=True)
            last = bi.base_offset + bi.last_offset_delta
            assert len(rs) == bi.record_count <= bi.last_offset_delta + 1
            assert all(bi.base_offset <= r.offset <= last for r in rs)
            recs += [(r.offset, r.key, r.value) for r in rs]
            batches.append((bi.base_offset, last))
    offsets = [o for o, _, _ in recs]
    assert offsets == sorted(set(offsets))
    return recs, batches


def expected(model: list[Row], end: int, drop_tombstones: bool) -> list[Row]:
    """What a log cleaned up to end holds: below end the latest record of
    each key (tombstones gone when expired) and every keyless record."""
    latest = {k: o for o, k, _ in model if o < end and k is not None}
    return [(o, k, v) for o, k, v in model
            if not (o < end and k is not None and (latest[k] != o or (v is None and drop_tombstones)))]
