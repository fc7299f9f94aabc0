"""One partition: its log, its producer state, its waiting fetchers, and the append.

``Partition.append`` is the one way bytes enter a partition's log (produce requests, the group
coordinator's ``__consumer_offsets`` records, a follower's batches fetched from its leader).  In
order: validate (client batches only: ``validate.py``) -> producer-state check (a retried batch is
answered with its first offset, not appended twice) -> ``Log.append`` in C (CRC32C, offsets
assigned in place, one write, GIL released) -> producer-state update -> leader-epoch cache (a new
epoch's first offset) -> high watermark (single node: the log end) -> wake long-poll fetchers ->
flush policy (``flush.messages`` reached: the flush thread's next group commit, which the caller
may await before answering, as Kafka's append path flushes before it answers).

Transactions (``txn.py``): a transactional batch opens its producer's transaction at its first
offset (a client's, or a coordinator's TxnOffsetCommit batch on ``__consumer_offsets``);
``append_marker`` writes a COMMIT / ABORT control batch through the same append and ends it, an
abort going to the ``.txnindex`` of the segment holding its marker; ``last_stable_offset`` is what read_committed
consumers read below, and ``maintenance_bound`` keeps the cleaner below open transactions.

A follower's append (``AppendOrigin.REPLICATION``) keeps the leader's offsets and epochs, replays
the batch headers into producer state and the epoch cache (one header scan per append: the only
per-batch Python work), and leaves the high watermark to the follower, which learns it from the
leader.  ``truncate_to`` removes a divergent tail from the log, the epochs and producer state.

The loop thread owns everything here except what ``lock`` and ``clean_lock`` guard (see
``storage.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import os
import struct
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

from kafka_protocol.errors import ErrorCode as E
from kafka_protocol.errors import error_code_for

import kafka_core
from kafka_core._errors import CorruptIndexError, CorruptRecordError

from . import validate
from .clock import now_ms
from .dir_failure import LogDir
from .leader_epoch import LeaderEpochCache
from .producer_state import PRODUCER_SNAPSHOT, SEQ_MOD, DuplicateBatch, ProducerState, read_snapshot
from .txn import ABORT, ATTR_CONTROL, ATTR_TRANSACTIONAL, COMMIT, Aborted, AbortedIndex, control_record
from .validate import AppendError

log = logging.getLogger("kafka_broker.log")

if TYPE_CHECKING:
    from .flusher import Flusher
    from .topics import Topic


class AppendOrigin(enum.Enum):
    """Who appends (Kafka's AppendOrigin): client batches are validated; the coordinators'
    own batches are built by the broker and go straight to the log; a follower's batches come
    from its leader's log with their offsets and epochs, and are written as they are."""

    CLIENT = "client"
    COORDINATOR = "coordinator"
    REPLICATION = "replication"


class AppendResult(NamedTuple):
    first_offset: int
    last_offset: int
    log_append_time: int          # the stamped time under LogAppendTime, else -1
    log_start_offset: int
    # Set when the flush policy wants an fsync before the append is acknowledged (and the caller
    # asked to wait): resolves after the flush thread's group commit, or fails with its error.
    flushed: asyncio.Future[None] | None = None


class Partition:
    __slots__ = ("topic", "index", "path", "log", "flusher", "lock", "clean_lock", "closed", "waiters",
                 "producers", "leader_epoch", "last_flush_ms", "segment_base", "snapshot_changes",
                 "checkpoint_rp", "high_watermark", "replicated", "epochs", "replication", "failure_logged",
                 "read_failure_logged",
                 "aborted", "log_dir")

    def __init__(self, topic: Topic, index: int, path: str, log_: Any, flusher: Flusher, *,
                 replicated: bool = False, high_watermark: int | None = None,
                 log_dir: LogDir | None = None, new: bool = False) -> None:
        """``replicated``: a cluster member's replica, whose high watermark the replication code
        moves (from ``high_watermark``, clamped to the log); else it is always the log end.
        ``new``: its folder was just made, so there is no epoch checkpoint or .txnindex to read.
        ``log_dir``: the entry of ``log.dirs`` holding it, shared with its other partitions: a
        disk failure in any of them takes all of them offline (``dir_failure.py``)."""
        self.topic = topic
        self.index = index
        self.path = path
        self.log_dir = log_dir if log_dir is not None else LogDir(os.path.dirname(path))
        self.log = log_
        self.flusher = flusher
        self.lock = threading.Lock()
        # Held by the log cleaner for a whole compaction pass, and by whatever must not run
        # alongside one (close, delete, retention, delete-records).  The flush thread and the
        # loop never take it: appends, reads and fsyncs go on while a pass runs.
        self.clean_lock = threading.Lock()
        self.closed = False
        self.waiters: list[Callable[[Partition, int], None]] = []
        self.producers = ProducerState()
        self.leader_epoch = 0
        self.last_flush_ms = now_ms()
        self.segment_base = -1
        self.snapshot_changes = 0     # producers.changes at the last snapshot written
        self.checkpoint_rp = -1       # recovery point at the last checkpoint written
        self.replicated = replicated
        end = log_.end_offset
        # A plain attribute (fetch reads it per partition): single node, the log end after every
        # append and truncation; replicated, what the replication code sets, never past the end.
        self.high_watermark = end if high_watermark is None else max(min(high_watermark, end),
                                                                      log_.start_offset)
        self.epochs = LeaderEpochCache(path, read=not new)
        if not new:
            # a stale checkpoint (a crash before its truncation was flushed) may run past the log
            self.epochs.truncate_from_end(end)
            self.epochs.truncate_from_start(log_.start_offset)
            self.epochs.flush()
        self.replication: Any = None  # owned by the cluster package; the log layer never reads it
        self.failure_logged = 0.0     # monotonic time an append failure was last logged
        self.read_failure_logged = 0.0  # and a read failure
        # aborted transactions (txn.py), from the segments' .txnindex files
        self.aborted = AbortedIndex(path, lambda: [s.base_offset for s in log_.segments()], log_.start_offset,
                                    load=not new)
        if not new:
            self.aborted.truncate_from(end)       # a stale index may run past the log too

    @property
    def name(self) -> str:
        return f"{self.topic.name}-{self.index}"

    @property
    def offline(self) -> bool:
        """Its log dir failed (``dir_failure.py``): every request for it answers KAFKA_STORAGE_ERROR
        until the broker restarts."""
        return self.log_dir.offline is not None

    def offline_error(self) -> AppendError:
        return AppendError(E.KAFKA_STORAGE_ERROR, f"Log dir {self.log_dir.path} of {self.name} is offline")

    @property
    def last_stable_offset(self) -> int:
        """min(first offset of the oldest open transaction, high watermark): a read_committed
        consumer reads below it (txn.py)."""
        fu = self.producers.first_unstable()
        hw = self.high_watermark
        return hw if fu < 0 or fu > hw else fu

    def notify(self, nbytes: int) -> None:
        """Wake long-poll fetches waiting on this partition (loop thread)."""
        if self.waiters:
            waiters, self.waiters = self.waiters, []
            for w in waiters:
                w(self, nbytes)

    def __repr__(self) -> str:
        return f"<Partition {self.name}>"

    # -- the append ----------------------------------------------------------------

    def append(self, records: Any, origin: AppendOrigin, *, produce_version: int = -1,
               wait_flush: bool = True, now: int | None = None) -> AppendResult | AppendError:
        """Append ``records`` (one batch for a client, whole batches for a coordinator).

        ``produce_version``: the Produce request version (client batches: zstd needs v7+).
        ``wait_flush``: when the flush policy asks for an fsync, return its future in
        ``flushed`` (False: acks=0, nobody waits; the flush is still requested)."""
        if self.closed:   # its topic is being deleted (or the broker is stopping)
            return AppendError(E.UNKNOWN_TOPIC_OR_PARTITION, f"{self.name} is closed")
        if self.log_dir.offline is not None:
            return self.offline_error()
        now = now_ms() if now is None else now
        if origin is AppendOrigin.REPLICATION:
            return self._append_replica(records, now)
        eff = self.topic.effective
        lg = self.log
        pid = -1
        log_append_time = -1
        if origin is AppendOrigin.CLIENT:
            h = validate.read_client_batch(records, produce_version, eff["max.message.bytes"])
            if isinstance(h, AppendError):
                return h
            if eff["message.timestamp.type"] == "LogAppendTime":
                log_append_time = now
            else:
                err = validate.check_timestamps(h, now, eff)
                if err is not None:
                    return err
            section = None
            if "compact" in eff["cleanup.policy"]:
                err, section = validate.check_keys(records, h.attributes, self.name, eff["max.message.bytes"])
                if err is not None:
                    return err
            pid = h.producer_id
            transactional = bool(h.attributes & ATTR_TRANSACTIONAL)
            if transactional and pid < 0:
                return AppendError(E.INVALID_RECORD, "A transactional batch needs a producer id")
            if pid >= 0:
                code = self.producers.check_txn(pid, transactional)
                if code:
                    return AppendError(code, "a non-transactional batch from a producer with an open transaction",
                                       lg.start_offset)
                epoch, base_seq = h.producer_epoch, h.base_sequence
                if base_seq < 0:
                    return AppendError(E.INVALID_RECORD, "Idempotent batches need a base sequence")
                last_seq = (base_seq + h.last_offset_delta) % SEQ_MOD
                try:
                    code = self.producers.check(pid, epoch, base_seq, last_seq)
                except DuplicateBatch as d:
                    return AppendResult(d.first_offset, d.last_offset,
                                        d.timestamp if log_append_time >= 0 else -1, lg.start_offset)
                if code:
                    return AppendError(code, None, lg.start_offset)
            target = validate.TARGET_CODEC.get(eff["compression.type"], -1)
            if target >= 0 and target != h.attributes & validate.ATTR_CODEC:
                rewritten = validate.recompress(records, target, eff, section)
                if isinstance(rewritten, AppendError):
                    return rewritten
                records = rewritten
        coord_txn = None
        if origin is AppendOrigin.COORDINATOR:
            # a coordinator's transactional batch (TxnOffsetCommit) or a transaction marker: the
            # header tells which (one unpack, no scan)
            attrs = struct.unpack_from(">h", records, 21)[0]
            if attrs & (ATTR_TRANSACTIONAL | ATTR_CONTROL):
                coord_txn = (attrs, struct.unpack_from(">qh", records, 43))
        try:
            info = lg.append(records, leader_epoch=self.leader_epoch, log_append_time=log_append_time,
                             now_ms=now)
        except Exception as e:  # noqa: BLE001 - every core error maps to a Kafka error code
            return self._append_failed(e)
        if pid >= 0:
            self.producers.update(pid, epoch, base_seq, last_seq, info.first_offset, info.last_offset,
                                  info.log_append_time if log_append_time >= 0 else info.max_timestamp)
            if transactional:
                self.producers.begin(pid, info.first_offset)
        elif coord_txn is not None:
            attrs, (cpid, cepoch) = coord_txn
            if attrs & ATTR_CONTROL:
                kind, coord_epoch = control_record(records, 0)
                self._txn_ended(cpid, cepoch, coord_epoch, kind, info.first_offset, info.segment_base)
            else:
                self.producers.begin(cpid, info.first_offset)
        if self.leader_epoch > self.epochs.latest:   # the first append of a new leader epoch
            try:
                self.epochs.assign(self.leader_epoch, info.first_offset)
            except OSError as e:
                # in the log but not acknowledged: the dir goes offline, as Kafka's append fails
                # when its leader-epoch checkpoint cannot be written
                return self._append_failed(e)
        if not self.replicated:
            self.high_watermark = info.last_offset + 1
        if origin is AppendOrigin.CLIENT:
            st = self.topic.stats
            st.messages_in += info.records
            st.bytes_in += len(records)
        if self.waiters:
            self.notify(len(records))
        flushed: asyncio.Future[None] | None = None
        if info.flush_due:    # the log counts unflushed messages against the topic's flush.messages
            if wait_flush:
                flushed = self.flusher.loop.create_future()
            self.flusher.request(self, flushed)
        return AppendResult(info.first_offset, info.last_offset,
                            info.log_append_time if log_append_time >= 0 else -1, lg.start_offset, flushed)

    def append_marker(self, producer_id: int, producer_epoch: int, commit: bool, coordinator_epoch: int,
                      *, wait_flush: bool = True) -> AppendResult | AppendError:
        """A transaction's COMMIT or ABORT marker (WriteTxnMarkers): a control batch as Kafka
        writes it, appended like any coordinator batch; it ends the producer's transaction here.
        An older producer epoch is INVALID_PRODUCER_EPOCH, an older coordinator epoch than the
        last marker's TRANSACTION_COORDINATOR_FENCED (Kafka's ``checkCoordinatorEpoch``)."""
        code = self.producers.check_marker(producer_id, producer_epoch, coordinator_epoch)
        if code:
            return AppendError(code, None, self.log.start_offset)
        now = now_ms()
        b = kafka_core.BatchBuilder(128, base_timestamp=now, producer_id=producer_id, producer_epoch=producer_epoch,
                                    base_sequence=-1, attributes=ATTR_TRANSACTIONAL | ATTR_CONTROL)
        if not b.append(now, struct.pack(">hh", 0, COMMIT if commit else ABORT),
                        struct.pack(">hi", 0, coordinator_epoch)):
            raise RuntimeError("marker batch builder ran out of room")
        return self.append(bytearray(b.finish()), AppendOrigin.COORDINATOR, wait_flush=wait_flush, now=now)

    def _txn_ended(self, pid: int, epoch: int, coordinator_epoch: int, kind: int, marker_offset: int,
                   segment_base: int) -> None:
        first = self.producers.end(pid, epoch, coordinator_epoch)
        if kind == ABORT and first >= 0:
            self.aborted.add(Aborted(pid, first, marker_offset, _lso_after(self.producers, marker_offset)),
                             segment_base)

    def _segment_of(self, offset: int) -> int:
        """Base offset of the segment holding ``offset`` (per abort marker replayed: an index
        lookup in C)."""
        return int(self.log.lookup(offset).segment_base)

    def _append_failed(self, e: BaseException) -> AppendError:
        """The error an append failure answers.  A disk failure (a full disk, an I/O error) takes
        the log dir offline (logged once, by ``dir_failure.py``); any other storage failure is
        logged at most every 10 s per partition (the batch was the client's, the failure is the
        operator's)."""
        code = error_code_for(e)
        if self.log_dir.failed(f"appending to {self.name}", e):
            return AppendError(E.KAFKA_STORAGE_ERROR, str(e))
        if code in (E.KAFKA_STORAGE_ERROR, E.UNKNOWN_SERVER_ERROR):
            t = time.monotonic()
            if t - self.failure_logged > 10:
                self.failure_logged = t
                log.error("append to %s failed: %s (answered %s)", self.name, e, code.name)
        return AppendError(code, str(e))

    def read_failed(self, offset: int, e: BaseException) -> int:
        """The error code a failed read of the log answers, logged at most every 10 s per
        partition (clients retry the fetch).  Bytes damaged on disk (the C core validates the
        first batch of every read) answer CORRUPT_MESSAGE at ERROR naming the segment and
        position, as Kafka answers a CorruptRecordException: librdkafka surfaces that error to
        the application where a slice it cannot parse made it fetch the same offset forever.
        Anything else (the log closed or deleted meanwhile, an I/O error) is KAFKA_STORAGE_ERROR;
        an I/O error also takes the log dir offline (``dir_failure.py``)."""
        corrupt = isinstance(e, CorruptRecordError | CorruptIndexError)
        if not corrupt and self.log_dir.failed(f"reading {self.name} at offset {offset}", e):
            return E.KAFKA_STORAGE_ERROR
        t = time.monotonic()
        if t - self.read_failure_logged > 10:
            self.read_failure_logged = t
            if corrupt:
                log.error("read of %s at offset %d: %s (answered CORRUPT_MESSAGE)", self.name, offset, e)
            else:
                log.warning("read of %s at %d: %s", self.name, offset, e)
        return E.CORRUPT_MESSAGE if corrupt else E.KAFKA_STORAGE_ERROR

    def _append_replica(self, records: Any, now: int) -> AppendResult | AppendError:
        """A follower's append: whole batches fetched from the leader, offsets and partition
        leader epochs kept (``records`` may be a read-only memoryview into the fetch response)."""
        lg = self.log
        try:
            info = lg.append(records, assign_offsets=False, now_ms=now)
        except Exception as e:  # noqa: BLE001 - every core error maps to a Kafka error code
            return self._append_failed(e)
        # the append validated every batch: read the headers back without the CRC
        infos, _ = kafka_core.scan_batches(records, verify_crc=False, allow_compacted=True)
        _pid, aborted = self.producers.apply_batches(infos, info.first_offset, records)
        for pid, first, last in aborted:
            self.aborted.add(Aborted(pid, first, last, _lso_after(self.producers, last)), self._segment_of(last))
        epochs = self.epochs
        for b in infos:
            ple = b.partition_leader_epoch
            if ple != epochs.latest and ple >= 0:
                epochs.assign(ple, b.base_offset)
        self.topic.stats.replication_bytes_in += len(records)
        if self.waiters:
            self.notify(len(records))
        if info.flush_due:
            self.flusher.request(self, None)
        return AppendResult(info.first_offset, info.last_offset, -1, lg.start_offset)

    # -- truncation and recovery -----------------------------------------------------

    def load_producers(self) -> int:
        """Rebuild producer state from nothing: the snapshot when it lies within the log, then
        the batch headers after it (from the log start without one).  Returns the largest
        producer id seen.  Start-up (recovery threads) and truncation."""
        lg = self.log
        start, end = lg.start_offset, lg.end_offset
        state = ProducerState()
        off = start
        snap = read_snapshot(self.path)
        if snap is not None and start <= snap[0] <= end:
            state.load_json(snap[1])
            off = snap[0]
        max_pid = max(state.entries, default=-1)
        while off < end:
            sl = lg.read(off, 8 << 20)
            n = len(sl)
            if n == 0:
                break
            try:
                data = os.pread(sl.fd, n, sl.position)
            finally:
                sl.release()
            infos, _valid = kafka_core.scan_batches(data, verify_crc=False, allow_partial=True,
                                                    allow_compacted=True)
            if not infos:
                break
            top, aborted = state.apply_batches(infos, off, data)
            max_pid = max(max_pid, top)
            for pid, first, last in aborted:      # a crash may have lost the index entry
                # (the LSO as far as this chunk of the replay tells: state is past its end)
                self.aborted.add(Aborted(pid, first, last, _lso_after(state, last)), self._segment_of(last))
            off = infos[-1].last_offset + 1
        self.producers = state
        return max_pid

    def truncate_to(self, offset: int) -> None:
        """Remove everything at or after ``offset`` (a follower's divergent tail; a batch holding
        ``offset`` goes whole, as ``Log.truncate_to`` does): from the log, the epoch cache and
        producer state (rebuilt); the high watermark is clamped to the new end."""
        lg = self.log
        if offset >= lg.end_offset:
            return
        lg.truncate_to(offset)
        end = lg.end_offset
        self.aborted.truncate_from(end)
        self.epochs.truncate_from_end(end)
        self.epochs.flush()
        snap = read_snapshot(self.path)
        if snap is not None and snap[0] > end:
            # a snapshot past the new end describes batches that are gone
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(self.path, PRODUCER_SNAPSHOT))
        self.load_producers()
        self.snapshot_changes = -1    # the next checkpoint writes the rebuilt state's snapshot
        self.high_watermark = min(self.high_watermark, end) if self.replicated else end

    def truncate_fully_and_start_at(self, offset: int) -> None:
        """Drop the whole log and start over, empty, at ``offset`` (a follower whose log ends
        before its leader's log start: Kafka's ``truncateFullyAndStartAt``)."""
        self.log.truncate_fully(offset)
        self.aborted.clear()
        self.epochs.clear()
        self.epochs.flush()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(self.path, PRODUCER_SNAPSHOT))
        self.load_producers()
        self.snapshot_changes = -1
        self.high_watermark = offset

    @property
    def maintenance_bound(self) -> int:
        """Retention and compaction touch no offset at or above this (-1: none): a replica's
        high watermark, so nothing an in-sync replica may still lack is deleted or rewritten
        (Kafka's ``deletableSegments`` and the cleaner's first uncleanable offset)."""
        hw = self.high_watermark if self.replicated else -1
        fu = self.producers.first_unstable()   # nor anything an open transaction may still abort
        if fu < 0:
            return hw
        return fu if hw < 0 else min(fu, hw)

    def log_start_moved(self) -> None:
        """After retention or DeleteRecords moved the log start: epochs and aborted transactions
        below it go (any thread holding ``lock``: the epoch cache has its own lock)."""
        self.epochs.truncate_from_start(self.log.start_offset)
        self.epochs.flush()
        self.aborted.drop_before(self.log.start_offset)


def _lso_after(producers: ProducerState, marker_offset: int) -> int:
    """The last stable offset an index entry records for the abort whose marker is at
    ``marker_offset`` (Kafka's ``ProducerStateManager.lastStableOffset(completedTxn)``): the first
    offset of the oldest transaction still open, else the offset after the marker."""
    fu = producers.first_unstable()
    return fu if 0 <= fu <= marker_offset else marker_offset + 1
