"""Slow pure-Python reference for CRC-32C, zigzag varints and RecordBatch v2.

This is the oracle the property tests check the C core (kafka_core._crc32c,
kafka_core._batch) against, so it is written for obviousness, not speed,
and shares no code with it.  Self-contained: standard library only.

RecordBatch v2 layout (offset:size, big-endian), as in csrc/kc_batch.h:
  baseOffset 0:8  batchLength 8:4  partitionLeaderEpoch 12:4  magic 16:1
  crc 17:4  attributes 21:2  lastOffsetDelta 23:4  baseTimestamp 27:8
  maxTimestamp 35:8  producerId 43:8  producerEpoch 51:2  baseSequence 53:4
  recordCount 57:4  records 61..
CRC-32C covers byte 21 to the end of the batch.
Record: length, attributes i8, timestampDelta (varlong), offsetDelta (varint),
keyLength (-1 = null), key, valueLength (-1 = null), value, headerCount,
headers (keyLength, key, valueLength (-1 = null), value); all zigzag varints.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from ._runtime import uvarint_bytes

__all__ = [
    "HEADER_SIZE", "PyRecord", "PyBatch", "crc32c", "encode_varint", "decode_varint",
    "encode_record", "decode_record", "encode_batch", "decode_batch", "decode_batches",
    "RecordsFormatError",
]

HEADER_SIZE = 61
CRC_START = 21
_POLY = 0x82F63B78


def _make_table() -> list[int]:
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ _POLY if c & 1 else c >> 1
        table.append(c)
    return table


_TABLE = _make_table()


def crc32c(data: bytes | bytearray | memoryview, crc: int = 0) -> int:
    """CRC-32C of ``data`` continuing from ``crc`` (0 to start), byte at a time."""
    c = crc ^ 0xFFFFFFFF
    for b in bytes(data):
        c = _TABLE[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


class RecordsFormatError(ValueError):
    """The oracle could not decode the bytes; ``reason`` is a short tag."""

    def __init__(self, reason: str, msg: str = "") -> None:
        super().__init__(f"{reason}: {msg}" if msg else reason)
        self.reason = reason


def encode_varint(v: int) -> bytes:
    """Zigzag varint (varlong) of a signed 64-bit value."""
    if not -(1 << 63) <= v < (1 << 63):
        raise OverflowError(v)
    return uvarint_bytes(((v << 1) ^ (v >> 63)) & 0xFFFFFFFFFFFFFFFF)


def decode_varint(buf: bytes, pos: int, max_bytes: int = 10) -> tuple[int, int]:
    """Decode a zigzag varint at ``pos``; returns (value, new_pos).

    ``max_bytes`` is 5 for int32 fields, 10 for int64 ones.
    """
    u = 0
    for i in range(max_bytes):
        if pos + i >= len(buf):
            raise RecordsFormatError("varint_underflow", f"at byte {pos}")
        b = buf[pos + i]
        u |= (b & 0x7F) << (7 * i)
        if not b & 0x80:
            bits = 32 if max_bytes == 5 else 64
            u &= (1 << bits) - 1
            return (u >> 1) ^ -(u & 1), pos + i + 1
    raise RecordsFormatError("varint_overflow", f"at byte {pos}")


@dataclass
class PyRecord:
    offset_delta: int
    timestamp_delta: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[bytes, bytes | None]] = field(default_factory=list)
    attributes: int = 0


@dataclass
class PyBatch:
    base_offset: int = 0
    partition_leader_epoch: int = -1
    magic: int = 2
    crc: int = 0
    attributes: int = 0
    last_offset_delta: int = -1
    base_timestamp: int = 0
    max_timestamp: int = -1
    producer_id: int = -1
    producer_epoch: int = -1
    base_sequence: int = -1
    records: list[PyRecord] = field(default_factory=list)
    size: int = 0


def _bytes_field(b: bytes | None) -> bytes:
    if b is None:
        return encode_varint(-1)
    return encode_varint(len(b)) + bytes(b)


def encode_record(r: PyRecord) -> bytes:
    body = bytes([r.attributes & 0xFF]) + encode_varint(r.timestamp_delta) + encode_varint(r.offset_delta)
    body += _bytes_field(r.key) + _bytes_field(r.value) + encode_varint(len(r.headers))
    for hk, hv in r.headers:
        body += encode_varint(len(hk)) + bytes(hk) + _bytes_field(hv)
    return encode_varint(len(body)) + body


def decode_record(buf: bytes, pos: int) -> tuple[PyRecord, int]:
    length, pos = decode_varint(buf, pos, 5)
    if length < 0:
        raise RecordsFormatError("bad_record", "negative record length")
    end = pos + length
    if end > len(buf):
        raise RecordsFormatError("truncated", "record runs past the buffer")
    body = buf[:end]   # fields are decoded against the record's own end
    if pos >= end:
        raise RecordsFormatError("bad_record", "empty record")
    attributes = body[pos]
    pos += 1
    ts_delta, pos = decode_varint(body, pos, 10)
    off_delta, pos = decode_varint(body, pos, 5)

    def blob(p: int, nullable: bool) -> tuple[bytes | None, int]:
        n, p = decode_varint(body, p, 5)
        if n < -1 or (n == -1 and not nullable) or p + max(n, 0) > end:
            raise RecordsFormatError("bad_record", "bad length")
        if n == -1:
            return None, p
        return bytes(body[p:p + n]), p + n

    key, pos = blob(pos, True)
    value, pos = blob(pos, True)
    count, pos = decode_varint(body, pos, 5)
    if count < 0:
        raise RecordsFormatError("bad_record", "negative header count")
    headers = []
    for _ in range(count):
        hk, pos = blob(pos, False)
        hv, pos = blob(pos, True)
        assert hk is not None
        headers.append((hk, hv))
    if pos != end:
        raise RecordsFormatError("bad_record", "record shorter than its declared length")
    return PyRecord(off_delta, ts_delta, key, value, headers, attributes), end


def encode_batch(b: PyBatch, records_section: bytes | None = None, record_count: int | None = None) -> bytes:
    """Encode ``b``; lastOffsetDelta/maxTimestamp are taken from ``b`` as given.

    ``records_section`` replaces the encoded records (a compressed payload);
    ``record_count`` then gives recordCount (default: lastOffsetDelta + 1).
    """
    recs = records_section if records_section is not None else b"".join(encode_record(r) for r in b.records)
    if record_count is not None:
        count = record_count
    elif records_section is not None:
        count = b.last_offset_delta + 1
    else:
        count = len(b.records)
    after_crc = struct.pack(
        ">hiqqqhii", b.attributes, b.last_offset_delta, b.base_timestamp, b.max_timestamp,
        b.producer_id, b.producer_epoch, b.base_sequence, count,
    ) + recs
    crc = crc32c(after_crc)
    length = 4 + 1 + 4 + len(after_crc)   # epoch + magic + crc + rest
    return struct.pack(">qiibI", b.base_offset, length, b.partition_leader_epoch, b.magic, crc) + after_crc


def make_batch(
    records: list[tuple[int, bytes | None, bytes | None, list[tuple[bytes, bytes | None]]]],
    *, base_timestamp: int, producer_id: int = -1, producer_epoch: int = -1, base_sequence: int = -1,
    attributes: int = 0, base_offset: int = 0, partition_leader_epoch: int = -1,
) -> bytes:
    """Encode records given as (timestamp, key, value, headers) the way a producer does."""
    recs = [PyRecord(i, ts - base_timestamp, k, v, list(h)) for i, (ts, k, v, h) in enumerate(records)]
    max_ts = max((ts for ts, _, _, _ in records), default=-1)
    return encode_batch(PyBatch(
        base_offset=base_offset, partition_leader_epoch=partition_leader_epoch, attributes=attributes,
        last_offset_delta=len(records) - 1, base_timestamp=base_timestamp, max_timestamp=max(max_ts, -1),
        producer_id=producer_id, producer_epoch=producer_epoch, base_sequence=base_sequence, records=recs,
    ))


def decode_batch(buf: bytes, *, verify_crc: bool = True, decode_records: bool = True) -> PyBatch:
    """Decode the one batch at the start of ``buf`` (bytes after it are ignored)."""
    buf = bytes(buf)
    if len(buf) < 17:
        raise RecordsFormatError("truncated", "header")
    base_offset, length, epoch, magic = struct.unpack_from(">qiib", buf, 0)
    if magic in (0, 1):
        raise RecordsFormatError("legacy_magic")
    if magic != 2:
        raise RecordsFormatError("bad_magic")
    if length < HEADER_SIZE - 12:
        raise RecordsFormatError("bad_length")
    size = length + 12
    if size > len(buf):
        raise RecordsFormatError("truncated", "batch")
    (crc, attributes, last_offset_delta, base_ts, max_ts, pid, pepoch, seq, count) = struct.unpack_from(
        ">Ihiqqqhii", buf, 17)
    if count < 0 or count != last_offset_delta + 1:
        raise RecordsFormatError("bad_count")
    if attributes & 7 == 0 and count * 7 > size - HEADER_SIZE:
        raise RecordsFormatError("bad_count")
    if verify_crc and crc32c(buf[CRC_START:size]) != crc:
        raise RecordsFormatError("corrupt_crc")
    b = PyBatch(base_offset, epoch, magic, crc, attributes, last_offset_delta, base_ts, max_ts, pid, pepoch,
                seq, [], size)
    if decode_records and attributes & 7 == 0:
        pos = HEADER_SIZE
        section = buf[:size]
        while pos < size:
            r, pos = decode_record(section, pos)
            b.records.append(r)
        if len(b.records) != count:
            raise RecordsFormatError("bad_count", "records decoded != recordCount")
    return b


def decode_batches(buf: bytes, *, verify_crc: bool = True) -> list[PyBatch]:
    """Decode consecutive batches covering all of ``buf``."""
    buf = bytes(buf)
    out = []
    pos = 0
    while pos < len(buf):
        b = decode_batch(buf[pos:], verify_crc=verify_crc)
        out.append(b)
        pos += b.size
    return out
