"""Record batches on the client side: build (producer) and decode (consumer).

All per-record byte work is in kafka_core (C): ``BatchBuilder`` appends
records as varints into one C-owned buffer and fills in the header and
CRC-32C at ``finish``; ``scan_batches`` + ``iter_records`` parse fetched
data.  Python here works per batch, never per byte.
"""

from __future__ import annotations

import struct
from typing import Any

from kafka_core import BatchBuilder, Record, crc32c, iter_records, scan_batches
from kafka_core.compression import compress, decompress

__all__ = ["BatchBuilder", "Record", "HEADER_SIZE", "close_batch", "restamp", "decode_records",
           "record_size_upper_bound"]

HEADER_SIZE = 61
_RESTAMP = struct.Struct(">qhi")  # producerId 43:8, producerEpoch 51:2, baseSequence 53:4


def record_size_upper_bound(key: Any, value: Any, headers: Any) -> int:
    """Bytes a record can take in a batch, at most (varint overheads rounded up)."""
    n = 32 + (len(key) if key is not None else 0) + (len(value) if value is not None else 0)
    if headers:
        for hk, hv in headers:
            n += 10 + len(hk) + (len(hv) if hv is not None else 0)
    return n


def close_batch(builder: BatchBuilder, codec: int) -> memoryview:
    """Finish a batch: compress its records section with ``codec`` unless that makes it larger."""
    if codec:
        section = builder.records_view()
        data = compress(codec, section)
        if len(data) < len(section):
            return builder.finish_compressed(codec, data)
    return builder.finish()


def restamp(batch: Any, producer_id: int, producer_epoch: int, base_sequence: int) -> bytearray:
    """A copy of a finished batch with new producer id/epoch/base sequence and its CRC recomputed
    (used when an idempotent producer bumps its epoch and re-sequences pending batches)."""
    buf = bytearray(batch)
    _RESTAMP.pack_into(buf, 43, producer_id, producer_epoch, base_sequence)
    struct.pack_into(">I", buf, 17, crc32c(memoryview(buf)[21:]))
    return buf


def _is_abort_marker(mv: memoryview, info: Any) -> bool:
    """A control batch's record key is (version int16, type int16): type 0 is ABORT, 1 COMMIT."""
    pos = info.position
    if info.codec:
        section = decompress(info.codec, mv[pos + HEADER_SIZE:pos + info.size])
        recs = iter_records(section, info.base_offset, info.base_timestamp)
    else:
        recs = iter_records(mv[pos:pos + info.size])
    if not recs or recs[0].key is None or len(recs[0].key) < 4:
        return False
    return struct.unpack_from(">h", recs[0].key, 2)[0] == 0


def decode_records(buf: Any, fetch_offset: int, *, check_crcs: bool = True,
                   aborted: Any = None, topic: str | None = None, partition: int = -1) -> tuple[list[Record], int]:
    """Records at or after ``fetch_offset`` in fetched data (whole batches; a truncated last batch
    is ignored), and the offset to fetch next.  Control batches are never returned.

    ``aborted`` (read_committed): the fetch response's aborted transactions, as
    ``(producer_id, first_offset)`` pairs or objects with those attributes.  As in the Java
    client, a producer's transactional batches are dropped from the first offset of one of its
    aborted transactions up to that transaction's ABORT marker; committed transactions of the
    same producer before or after are kept."""
    # a compacted topic's batches hold fewer records than offsets (the cleaner keeps offsets)
    infos, _valid = scan_batches(buf, verify_crc=check_crcs, allow_partial=True, allow_compacted=True)
    out: list[Record] = []
    next_offset = fetch_offset
    mv = memoryview(buf)
    pending: list[tuple[int, int]] = []
    if aborted is not None:
        pending = sorted(((a[1], a[0]) if isinstance(a, tuple) else (a.first_offset, a.producer_id)
                          for a in aborted), reverse=True)  # popped from the end, lowest offset first
    active: set[int] = set()
    for info in infos:
        last = info.last_offset
        if aborted is not None and info.producer_id >= 0:
            while pending and pending[-1][0] <= last:
                active.add(pending.pop()[1])
            if info.is_control:
                if info.producer_id in active and _is_abort_marker(mv, info):
                    active.discard(info.producer_id)
            elif info.is_transactional and info.producer_id in active:
                if last >= fetch_offset:
                    next_offset = last + 1
                continue
        if last < fetch_offset:
            continue
        next_offset = last + 1
        if info.is_control:
            continue
        lat = info.max_timestamp if info.timestamp_type == 1 else -1
        pos = info.position
        if info.codec:
            section = decompress(info.codec, mv[pos + HEADER_SIZE:pos + info.size])
            recs = iter_records(section, info.base_offset, info.base_timestamp, log_append_time=lat, topic=topic,
                                partition=partition)
        else:
            recs = iter_records(mv[pos:pos + info.size], log_append_time=lat, topic=topic, partition=partition)
        if info.base_offset < fetch_offset:
            recs = [r for r in recs if r.offset >= fetch_offset]
        out += recs
    return out, next_offset
