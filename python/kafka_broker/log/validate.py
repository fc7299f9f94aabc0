"""What a client's batch must pass before it is appended (Kafka's LogValidator, in brief).

Record bytes are never decoded here: the 61-byte batch header is read with one ``struct`` call
(work per partition, not per record); the core validates the rest on append (CRC32C, lengths,
record count) with the GIL released.  Produce v3+ carries exactly one magic-2 batch per
partition (``ProduceRequest.validateRecords``).

Topic ``compression.type``: ``producer`` stores the batch as sent; any other value whose codec
differs from the batch's gets the batch rewritten by the core's ``recompress_batch`` (the records
section moves as one block, decompressed and/or compressed in C, the header re-signed in C).
Compacted topics: ``check_records(require_keys=True)`` checks every key in one C pass.

Both need the records section inflated (``_section``), bounded by ``compression.section_limit``
(the header's record count times max.message.bytes, at most MAX_INFLATION batches): a
decompression bomb is CORRUPT_MESSAGE before its inflated size is allocated (issue 16).
"""

from __future__ import annotations

import struct
from typing import Any, NamedTuple

from kafka_protocol.errors import ErrorCode as E
from kafka_protocol.errors import error_code_for

# baseOffset, length, leaderEpoch, magic, crc, attributes, lastOffsetDelta, baseTimestamp,
# maxTimestamp, producerId, producerEpoch, baseSequence, recordCount
_BATCH = struct.Struct(">qiibIhiqqqhii")
HEADER = 61
ATTR_CODEC = 0x07
ATTR_TRANSACTIONAL = 0x10
ATTR_CONTROL = 0x20
CODEC_ZSTD = 4
# compression.type -> attributes codec; "producer" (absent) keeps the batch's own
TARGET_CODEC = {"uncompressed": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}
_LEVEL_KEYS = {1: "compression.gzip.level", 3: "compression.lz4.level", 4: "compression.zstd.level"}


class AppendError(NamedTuple):
    """Why an append was refused: the Kafka error code and the message the client gets."""

    error_code: int
    message: str | None = None
    log_start_offset: int = -1     # sent with producer-state errors, as Kafka does


class AppendFailed(Exception):
    """An ``AppendError`` raised, for callers that append from a coroutine (the coordinators);
    ``kafka_error`` names the code, as kafka_core's exceptions do (``error_code_for``)."""

    def __init__(self, partition: str, err: AppendError) -> None:
        name = E.get(err.error_code).name
        super().__init__(f"append to {partition} failed: {name}" + (f": {err.message}" if err.message else ""))
        self.error_code = err.error_code
        self.kafka_error = name


class BatchHeader(NamedTuple):
    """The fields of a client's batch header that the append decides on."""

    attributes: int
    last_offset_delta: int
    base_timestamp: int
    max_timestamp: int
    producer_id: int
    producer_epoch: int
    base_sequence: int


def read_client_batch(recs: Any, produce_version: int, max_message_bytes: int) -> BatchHeader | AppendError:
    """The header of the one batch a produce request carries for a partition, or why it is refused."""
    n = 0 if recs is None else len(recs)
    if n < HEADER:
        return AppendError(E.INVALID_RECORD if n < 17 else E.CORRUPT_MESSAGE,
                           "Produce requests must have exactly one record batch per partition")
    (_, length, _, magic, _, attrs, last_delta, base_ts, max_ts, pid, epoch, base_seq,
     _count) = _BATCH.unpack_from(recs, 0)
    size = length + 12
    if magic != 2:
        return AppendError(E.INVALID_RECORD, "Produce requests with version 3+ may only contain record "
                                             "batches with magic version 2")
    if length < HEADER - 12:
        return AppendError(E.CORRUPT_MESSAGE, f"Record batch length {length} is below the batch header size")
    if size != n:
        if size < n:
            return AppendError(E.INVALID_RECORD, "Produce requests must have exactly one record batch per "
                                                 "partition")
        return AppendError(E.CORRUPT_MESSAGE, f"Record batch of {size} bytes is truncated to {n}")
    if (attrs & ATTR_CODEC) == CODEC_ZSTD and produce_version < 7:
        return AppendError(E.UNSUPPORTED_COMPRESSION_TYPE)
    if n > max_message_bytes:
        return AppendError(E.MESSAGE_TOO_LARGE, f"The record batch of {n} bytes exceeds max.message.bytes "
                                                f"({max_message_bytes})")
    if attrs & ATTR_CONTROL:
        return AppendError(E.INVALID_RECORD, "Produce requests may not contain control batches")
    return BatchHeader(attrs, last_delta, base_ts, max_ts, pid, epoch, base_seq)


def check_timestamps(h: BatchHeader, now: int, eff: dict[str, Any]) -> AppendError | None:
    """CreateTime batches: both header timestamps within message.timestamp.before/after.max.ms."""
    before, after = eff["message.timestamp.before.max.ms"], eff["message.timestamp.after.max.ms"]
    for ts in (h.base_timestamp, h.max_timestamp):
        if ts != -1 and (now - ts > before or ts - now > after):
            return AppendError(E.INVALID_TIMESTAMP, f"Timestamp {ts} of a record is out of range "
                                                    f"(message.timestamp.before.max.ms={before}, "
                                                    f"message.timestamp.after.max.ms={after})")
    return None


def _section(recs: Any, codec: int, max_batch_bytes: int) -> bytes:
    """The batch's records section inflated, never past what its record count and
    max.message.bytes allow (DecompressionLimitError, a ValueError, past it)."""
    from kafka_core.compression import decompress, section_limit

    mv = memoryview(recs).cast("B")
    (count,) = struct.unpack_from(">i", mv, HEADER - 4)
    return decompress(codec, mv[HEADER:], limit=section_limit(count, max_batch_bytes))


def check_keys(recs: Any, attrs: int, partition_name: str,
               max_batch_bytes: int) -> tuple[AppendError | None, Any]:
    """Kafka's rule for compacted topics: every record needs a key.  Returns (error, section):
    section is the decompressed records section (None when uncompressed), for reuse by the
    recompression.  One C pass over the records (``check_records``), one bounded decompress."""
    from kafka_core._batch import check_records
    from kafka_core._errors import MissingKeyError

    codec = attrs & ATTR_CODEC
    section = None
    try:
        if codec:
            section = _section(recs, codec, max_batch_bytes)
        check_records(recs, section, require_keys=True)
    except MissingKeyError:
        return AppendError(E.INVALID_RECORD, f"Compacted topic cannot accept message without key in topic "
                                             f"partition {partition_name}."), None
    except Exception:  # noqa: BLE001 - undecodable: CORRUPT_MESSAGE
        return AppendError(E.CORRUPT_MESSAGE, "Cannot decode the record batch"), None
    return None, section


def _compress(codec: int, data: Any, eff: dict[str, Any]) -> Any:
    """Compress a records section with the topic's compression.<codec>.level."""
    from kafka_core.compression import compress

    key = _LEVEL_KEYS.get(codec)
    return compress(codec, data, eff.get(key) if key else None)


def recompress(recs: Any, target: int, eff: dict[str, Any], section: Any = None) -> Any:
    """The batch rewritten for the topic's compression.type (a bytearray), or an AppendError.

    One core call (``recompress_batch``): CRC checked first (never re-sign a corrupt batch),
    records section decompressed once here, bounded (or ``section``, already decompressed),
    records checked in C, compressed once at the topic's level, header re-signed in C."""
    from kafka_core._batch import recompress_batch

    # the CRC is still checked by recompress_batch before anything is re-signed
    codec = _BATCH.unpack_from(recs)[5] & ATTR_CODEC
    if section is None and codec:
        try:
            section = _section(recs, codec, eff["max.message.bytes"])
        except Exception as e:  # noqa: BLE001 - undecodable or a bomb: CORRUPT_MESSAGE
            return AppendError(E.CORRUPT_MESSAGE, f"Cannot decompress the record batch: {e}")
    try:
        out = recompress_batch(recs, target, compress=lambda d: _compress(target, d, eff), records=section)
    except Exception as e:  # noqa: BLE001 - every core or codec error maps to a Kafka error code
        return AppendError(error_code_for(e), str(e))
    if len(out) > eff["max.message.bytes"]:
        return AppendError(E.MESSAGE_TOO_LARGE, f"The record batch of {len(out)} bytes after recompression "
                                                f"exceeds max.message.bytes ({eff['max.message.bytes']})")
    return out
