"""Produce: per partition, check the batch header, the producer's sequence, append via the core.

Record bytes are never decoded here: the 61-byte batch header is read with
one ``struct`` call, and ``Log.append`` validates (CRC32C, lengths, record
count), assigns offsets in place and writes, with the GIL released.
Produce v3+ carries exactly one magic-2 batch per partition
(``ProduceRequest.validateRecords``); anything else is INVALID_RECORD.

Topic ``compression.type`` (Kafka's LogValidator): ``producer`` stores the
batch as sent; any other value whose codec differs from the batch's gets
the batch rewritten first by the core's ``recompress_batch``: the records
section moves as one block (decompressed and/or compressed by cramjam, in
C, its records checked in C), the header keeps every field but the codec
bits, batchLength and CRC; offsets are then assigned by the normal append.
Compacted topics: ``check_records(require_keys=True)`` checks every key
in one C pass.

Durability: when the append leaves ``flush.messages`` or more unflushed
messages (``log.flush.interval.messages=1`` flushes every append), the
response waits for the flush thread's next group commit, as Kafka's
append path flushes before answering.
"""

from __future__ import annotations

import asyncio
import struct
from typing import TYPE_CHECKING, Any

from kafka_protocol.errors import ErrorCode as E
from kafka_protocol.errors import error_code_for as code_for_exception

from .config import LONG_MAX
from .group_apis import INTERNAL_TOPICS
from .server import CloseConnection, RequestContext
from .storage import SEQ_MOD, DuplicateBatch, now_ms

if TYPE_CHECKING:
    from .broker import Broker

# baseOffset, length, leaderEpoch, magic, crc, attributes, lastOffsetDelta, baseTimestamp,
# maxTimestamp, producerId, producerEpoch, baseSequence, recordCount
_BATCH = struct.Struct(">qiibIhiqqqhii")
HEADER = 61
ATTR_CODEC = 0x07
ATTR_LOG_APPEND_TIME = 0x08
ATTR_TRANSACTIONAL = 0x10
ATTR_CONTROL = 0x20
CODEC_ZSTD = 4
# compression.type -> attributes codec; "producer" (absent) keeps the batch's own
TARGET_CODEC = {"uncompressed": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}


_LEVEL_KEYS = {1: "compression.gzip.level", 3: "compression.lz4.level", 4: "compression.zstd.level"}


def _compress(codec: int, data: Any, eff: dict[str, Any]) -> Any:
    """Compress a records section with the topic's compression.<codec>.level."""
    from kafka_core.compression import compress

    key = _LEVEL_KEYS.get(codec)
    return compress(codec, data, eff.get(key) if key else None)


def handle_produce(b: Broker, ctx: RequestContext, req: Any) -> Any:
    from kafka_protocol.messages import ProduceResponse as R

    v = ctx.api_version
    acks = req.acks
    st = b.storage
    PR = R.PartitionProduceResponse
    now = now_ms()
    waits: list[tuple[asyncio.Future[None], Any]] = []
    responses = []
    any_error = False
    bad_acks = acks not in (0, 1, -1)
    if req.transactional_id is not None:
        bad_txn = True
    else:
        bad_txn = False
    for td in req.topic_data:
        topic = st.topics.get(td.name)
        presp = []
        for pd in td.partition_data:
            idx = pd.index
            if bad_acks:
                presp.append(PR(index=idx, error_code=E.INVALID_REQUIRED_ACKS, base_offset=-1))
                any_error = True
                continue
            if bad_txn:
                presp.append(PR(index=idx, error_code=E.INVALID_TXN_STATE, base_offset=-1,
                                error_message="transactions are not supported by this broker"))
                any_error = True
                continue
            if topic is None or idx < 0 or idx >= len(topic.partitions):
                presp.append(PR(index=idx, error_code=E.UNKNOWN_TOPIC_OR_PARTITION, base_offset=-1))
                any_error = True
                continue
            p = topic.partitions[idx]
            if topic.name in INTERNAL_TOPICS:
                presp.append(PR(index=idx, error_code=E.INVALID_TOPIC_EXCEPTION, base_offset=-1,
                                error_message=f"Cannot append to internal topic {topic.name}"))
                any_error = True
                continue
            if acks == -1 and topic.effective["min.insync.replicas"] > 1:
                # One broker is the whole ISR (Partition.appendRecordsToLeader).
                presp.append(PR(index=idx, error_code=E.NOT_ENOUGH_REPLICAS, base_offset=-1,
                                error_message=f"The size of the current ISR Set(0) is insufficient to satisfy "
                                              f"the min.isr requirement of {topic.effective['min.insync.replicas']}"
                                              f" for partition {p.name}"))
                any_error = True
                continue
            r = _append_one(b, p, topic.effective, pd.records, v, now, acks, waits)
            if r.error_code:
                any_error = True
            presp.append(r)
        responses.append(R.TopicProduceResponse(name=td.name, partition_responses=presp))
    if acks == 0:
        if any_error:
            # Kafka closes the connection so that an acks=0 producer notices (it gets no response).
            raise CloseConnection("acks=0 produce request failed")
        return None
    resp = R(responses=responses, throttle_time_ms=0)
    if not waits:
        return resp

    async def wait_durable() -> Any:
        futs = [f for f, _ in waits]
        timeout = max(req.timeout_ms, 0) / 1000 if req.timeout_ms > 0 else None
        await asyncio.wait(futs, timeout=timeout)
        for f, r in waits:
            if not f.done():
                r.error_code = E.REQUEST_TIMED_OUT
                f.cancel()
            elif f.exception() is not None:
                r.error_code = E.KAFKA_STORAGE_ERROR
                r.error_message = str(f.exception())
        return resp
    return wait_durable()


def _check_keys(recs: Any, attrs: int) -> tuple[bool | None, Any]:
    """Kafka's rule for compacted topics: every record needs a key.  Returns (None, section):
    all have one; (True, None): one has none; (False, None): the batch cannot be decoded.
    section is the decompressed records section (None when uncompressed), for reuse by
    the recompression.  One C pass over the records (``check_records``), one decompress."""
    from kafka_core._batch import check_records
    from kafka_core._errors import MissingKeyError

    codec = attrs & ATTR_CODEC
    section = None
    try:
        if codec:
            from kafka_core.compression import decompress
            section = decompress(codec, memoryview(recs).cast("B")[HEADER:])
        check_records(recs, section, require_keys=True)
    except MissingKeyError:
        return True, None
    except Exception:  # noqa: BLE001 - undecodable: CORRUPT_MESSAGE
        return False, None
    return None, section


def _recompress(recs: Any, target: int, eff: dict[str, Any], idx: int, section: Any = None) -> Any:
    """The batch rewritten for the topic's compression.type, or an error response.

    One core call (``recompress_batch``): CRC checked first (never re-sign a corrupt batch),
    records section decompressed once (or ``section``, already decompressed), records
    checked in C, compressed once at the topic's level, header re-signed in C."""
    from kafka_protocol.messages import ProduceResponse as R

    from kafka_core._batch import recompress_batch

    PR = R.PartitionProduceResponse
    try:
        out = recompress_batch(recs, target, compress=lambda d: _compress(target, d, eff), records=section)
    except Exception as e:  # noqa: BLE001 - every core or codec error maps to a Kafka error code
        return PR(index=idx, error_code=code_for_exception(e), base_offset=-1, error_message=str(e))
    if len(out) > eff["max.message.bytes"]:
        return PR(index=idx, error_code=E.MESSAGE_TOO_LARGE, base_offset=-1,
                  error_message=f"The record batch of {len(out)} bytes after recompression exceeds "
                                f"max.message.bytes ({eff['max.message.bytes']})")
    return out


def _append_one(b: Broker, p: Any, eff: dict[str, Any], recs: Any, v: int, now: int, acks: int,
                waits: list[tuple[asyncio.Future[None], Any]]) -> Any:
    from kafka_protocol.messages import ProduceResponse as R

    PR = R.PartitionProduceResponse
    idx = p.index
    n = 0 if recs is None else len(recs)
    if n < HEADER:
        return PR(index=idx, error_code=E.INVALID_RECORD if n < 17 else E.CORRUPT_MESSAGE, base_offset=-1,
                  error_message="Produce requests must have exactly one record batch per partition")
    (_, length, _, magic, _, attrs, last_delta, base_ts, max_ts, pid, epoch, base_seq,
     _count) = _BATCH.unpack_from(recs, 0)
    size = length + 12
    if magic != 2:
        return PR(index=idx, error_code=E.INVALID_RECORD, base_offset=-1,
                  error_message="Produce requests with version 3+ may only contain record batches "
                                "with magic version 2")
    if length < HEADER - 12:
        return PR(index=idx, error_code=E.CORRUPT_MESSAGE, base_offset=-1,
                  error_message=f"Record batch length {length} is below the batch header size")
    if size != n:
        return PR(index=idx, error_code=E.INVALID_RECORD if size < n else E.CORRUPT_MESSAGE, base_offset=-1,
                  error_message="Produce requests must have exactly one record batch per partition"
                  if size < n else f"Record batch of {size} bytes is truncated to {n}")
    if (attrs & ATTR_CODEC) == CODEC_ZSTD and v < 7:
        return PR(index=idx, error_code=E.UNSUPPORTED_COMPRESSION_TYPE, base_offset=-1)
    if n > eff["max.message.bytes"]:
        return PR(index=idx, error_code=E.MESSAGE_TOO_LARGE, base_offset=-1,
                  error_message=f"The record batch of {n} bytes exceeds max.message.bytes "
                                f"({eff['max.message.bytes']})")
    if attrs & ATTR_CONTROL:
        return PR(index=idx, error_code=E.INVALID_RECORD, base_offset=-1,
                  error_message="Produce requests may not contain control batches")
    if attrs & ATTR_TRANSACTIONAL:
        return PR(index=idx, error_code=E.INVALID_TXN_STATE, base_offset=-1,
                  error_message="transactional batches are not supported by this broker")
    log_append_time = -1
    if eff["message.timestamp.type"] == "LogAppendTime":
        log_append_time = now
    else:
        before, after = eff["message.timestamp.before.max.ms"], eff["message.timestamp.after.max.ms"]
        for ts in (base_ts, max_ts):
            if ts != -1 and (now - ts > before or ts - now > after):
                return PR(index=idx, error_code=E.INVALID_TIMESTAMP, base_offset=-1,
                          error_message=f"Timestamp {ts} of a record is out of range "
                                        f"(message.timestamp.before.max.ms={before}, "
                                        f"message.timestamp.after.max.ms={after})")
    section = None
    if "compact" in eff["cleanup.policy"]:
        err, section = _check_keys(recs, attrs)
        if err is not None:
            return PR(index=idx, error_code=E.INVALID_RECORD if err else E.CORRUPT_MESSAGE, base_offset=-1,
                      error_message=f"Compacted topic cannot accept message without key in topic partition "
                                    f"{p.name}." if err else "Cannot decode the record batch")
    lg = p.log
    if pid >= 0:
        if base_seq < 0:
            return PR(index=idx, error_code=E.INVALID_RECORD, base_offset=-1,
                      error_message="Idempotent batches need a base sequence")
        last_seq = (base_seq + last_delta) % SEQ_MOD
        try:
            err = p.producers.check(pid, epoch, base_seq, last_seq)
        except DuplicateBatch as d:
            return PR(index=idx, error_code=0, base_offset=d.first_offset,
                      log_append_time_ms=d.timestamp if log_append_time >= 0 else -1,
                      log_start_offset=lg.start_offset)
        if err:
            return PR(index=idx, error_code=err, base_offset=-1, log_start_offset=lg.start_offset)
    target = TARGET_CODEC.get(eff["compression.type"], -1)
    if target >= 0 and target != attrs & ATTR_CODEC:
        r = _recompress(recs, target, eff, idx, section)
        if not isinstance(r, bytearray):
            return r
        recs = r
    try:
        info = lg.append(recs, leader_epoch=p.leader_epoch, log_append_time=log_append_time, now_ms=now)
    except Exception as e:  # noqa: BLE001 - every core error maps to a Kafka error code
        return PR(index=idx, error_code=code_for_exception(e), base_offset=-1, error_message=str(e))
    if pid >= 0:
        p.producers.update(pid, epoch, base_seq, last_seq, info.first_offset, info.last_offset,
                           info.log_append_time if log_append_time >= 0 else info.max_timestamp)
    if p.waiters:
        p.notify(n)
    fm = eff["flush.messages"]
    if info.flush_due or (fm < LONG_MAX and lg.unflushed_messages >= fm):
        r = PR(index=idx, error_code=0, base_offset=info.first_offset,
               log_append_time_ms=info.log_append_time if log_append_time >= 0 else -1,
               log_start_offset=lg.start_offset)
        if acks != 0:
            fut: asyncio.Future[None] = b.loop.create_future()
            b.storage.flusher.request(p, fut)
            waits.append((fut, r))
        else:
            b.storage.flusher.request(p, None)
        return r
    return PR(index=idx, error_code=0, base_offset=info.first_offset,
              log_append_time_ms=info.log_append_time if log_append_time >= 0 else -1,
              log_start_offset=lg.start_offset)
