"""Records of the internal topic ``__transaction_state``, in Apache Kafka's formats.

Kafka's ``transaction-coordinator/src/main/resources/common/message``
schemas, byte for byte, so Kafka's own tools read our topic (and we read
Kafka's):

- TransactionLogKey: int16 version 0, then TransactionalId as an
  int16-length string.
- TransactionLogValue: int16 version, then
  - v0 (not flexible): ProducerId i64, ProducerEpoch i16,
    TransactionTimeoutMs i32, TransactionStatus i8, TransactionPartitions
    (nullable int32-count array of Topic string + PartitionIds int32-count
    array of i32), TransactionLastUpdateTimestampMs i64,
    TransactionStartTimestampMs i64;
  - v1 (flexible): the same fields with compact strings/arrays (uvarint
    length + 1, 0 = null) and a tagged-field section per struct and at the
    end; top-level tags 0 PreviousProducerId i64, 1 NextProducerId i64,
    2 ClientTransactionVersion i16 (KIP-890, written only when not at their
    defaults -1, -1, 0).

Kafka writes v1 only once ``transaction.version`` >= 1 is finalized, v0
before; the coordinator does the same (``encode_value``'s version) and reads
both.  A null value is a tombstone: the transactional id expired.
An Empty transaction is written with a null partition list, as Kafka does.

The partition of a transactional id is ``abs(String.hashCode(id)) % n``,
the same function as ``__consumer_offsets`` (``groups.records.partition_for``).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from kafka_protocol import uvarint_bytes

from ..groups.records import RecordFormatError, _FlexReader, _Reader, _str, partition_for

__all__ = ["KEY_VERSION", "VALUE_VERSION", "RecordFormatError", "TxnLogValue", "decode_key", "decode_value",
           "encode_key", "encode_value", "partition_for"]

KEY_VERSION = 0
VALUE_VERSION = 0      # the default; the coordinator writes 1 once transaction.version >= 1 is finalized

_h = struct.Struct(">h")
_i = struct.Struct(">i")
_q = struct.Struct(">q")
_b = struct.Struct(">b")


@dataclass(slots=True)
class TxnLogValue:
    """One TransactionLogValue: the state of a transactional id as of one transition."""

    producer_id: int
    producer_epoch: int
    timeout_ms: int
    status: int                     # TxnState id (state.py)
    partitions: dict[str, list[int]] = field(default_factory=dict)
    last_update_ms: int = -1
    start_ms: int = -1
    previous_producer_id: int = -1  # v1 tagged fields (KIP-890); kept when read, written in v1 only
    next_producer_id: int = -1
    client_transaction_version: int = 0


def encode_key(transactional_id: str) -> bytes:
    return _h.pack(KEY_VERSION) + _str(transactional_id)


def decode_key(buf: bytes) -> str | None:
    """The transactional id of a TransactionLogKey; None for a key of another version (Kafka
    skips those: ``readTxnRecordKey`` answers the version)."""
    r = _Reader(buf)
    if r.i16() != KEY_VERSION:
        return None
    tid = r.string()
    assert tid is not None
    return tid


def _cstr(s: str) -> bytes:
    b = s.encode()
    return uvarint_bytes(len(b) + 1) + b


def encode_value(v: TxnLogValue, version: int = VALUE_VERSION) -> bytes:
    parts = None if not v.partitions else sorted(v.partitions.items())
    if version == 0:
        out = [_h.pack(0), _q.pack(v.producer_id), _h.pack(v.producer_epoch), _i.pack(v.timeout_ms),
               _b.pack(v.status)]
        if parts is None:
            out.append(_i.pack(-1))
        else:
            out.append(_i.pack(len(parts)))
            for topic, ps in parts:
                out += [_str(topic), _i.pack(len(ps)), *(_i.pack(p) for p in ps)]
        out += [_q.pack(v.last_update_ms), _q.pack(v.start_ms)]
        return b"".join(out)
    if version != 1:
        raise ValueError(f"TransactionLogValue version {version} does not exist")
    out = [_h.pack(1), _q.pack(v.producer_id), _h.pack(v.producer_epoch), _i.pack(v.timeout_ms),
           _b.pack(v.status)]
    if parts is None:
        out.append(b"\x00")
    else:
        out.append(uvarint_bytes(len(parts) + 1))
        for topic, ps in parts:
            out += [_cstr(topic), uvarint_bytes(len(ps) + 1), *(_i.pack(p) for p in ps), b"\x00"]
    out += [_q.pack(v.last_update_ms), _q.pack(v.start_ms)]
    tags = []
    if v.previous_producer_id != -1:
        tags.append((0, _q.pack(v.previous_producer_id)))
    if v.next_producer_id != -1:
        tags.append((1, _q.pack(v.next_producer_id)))
    if v.client_transaction_version != 0:
        tags.append((2, _h.pack(v.client_transaction_version)))
    out.append(uvarint_bytes(len(tags)))
    for tag, data in tags:
        out += [uvarint_bytes(tag), uvarint_bytes(len(data)), data]
    return b"".join(out)


def decode_value(buf: bytes) -> TxnLogValue:
    r = _FlexReader(buf)
    ver = r.i16()
    if ver not in (0, 1):
        raise RecordFormatError(f"unknown TransactionLogValue version {ver}")
    v = TxnLogValue(r.i64(), r.i16(), r.i32(), r.i8())
    if ver == 0:
        n = r.i32()
        if n > len(buf):
            raise RecordFormatError(f"bad partition list count {n}")
        for _ in range(max(n, 0)):
            topic = r.string() or ""
            m = r.i32()
            if m < 0 or 4 * m > len(buf) - r.pos:
                raise RecordFormatError(f"bad partition count {m} at {r.pos}")
            v.partitions.setdefault(topic, []).extend(r.i32() for _ in range(m))
        v.last_update_ms, v.start_ms = r.i64(), r.i64()
        return v
    for _ in range(max(r.count(), 0)):
        topic = r.cstr() or ""
        v.partitions.setdefault(topic, []).extend(r.i32() for _ in range(max(r.count(), 0)))
        r.tags()
    v.last_update_ms, v.start_ms = r.i64(), r.i64()
    for _ in range(r.uvarint()):
        tag, size = r.uvarint(), r.uvarint()
        data = _Reader(r._take(size, "tagged field"))
        if tag == 0:
            v.previous_producer_id = data.i64()
        elif tag == 1:
            v.next_producer_id = data.i64()
        elif tag == 2:
            v.client_transaction_version = data.i16()
    return v
