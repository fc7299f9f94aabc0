"""One partition: its log, its producer state, its waiting fetchers, and the append.

``Partition.append`` is the one way bytes enter a partition's log (produce requests, the group
coordinator's ``__consumer_offsets`` records; replication will be the next origin).  In order:
validate (client batches only: ``validate.py``) -> producer-state check (a retried batch is
answered with its first offset, not appended twice) -> ``Log.append`` in C (CRC32C, offsets
assigned in place, one write, GIL released) -> producer-state update -> wake long-poll fetchers ->
flush policy (``flush.messages`` reached: the flush thread's next group commit, which the caller
may await before answering, as Kafka's append path flushes before it answers).

The loop thread owns everything here except what ``lock`` and ``clean_lock`` guard (see
``storage.py``).
"""

from __future__ import annotations

import asyncio
import enum
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

from kafka_protocol.errors import ErrorCode as E
from kafka_protocol.errors import error_code_for

from . import validate
from .clock import now_ms
from .producer_state import SEQ_MOD, DuplicateBatch, ProducerState
from .validate import AppendError

if TYPE_CHECKING:
    from .flusher import Flusher
    from .topics import Topic


class AppendOrigin(enum.Enum):
    """Who appends (Kafka's AppendOrigin): client batches are validated; the coordinators'
    own batches are built by the broker and go straight to the log."""

    CLIENT = "client"
    COORDINATOR = "coordinator"


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
                 "checkpoint_rp")

    def __init__(self, topic: Topic, index: int, path: str, log_: Any, flusher: Flusher) -> None:
        self.topic = topic
        self.index = index
        self.path = path
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

    @property
    def name(self) -> str:
        return f"{self.topic.name}-{self.index}"

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
        now = now_ms() if now is None else now
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
                err, section = validate.check_keys(records, h.attributes, self.name)
                if err is not None:
                    return err
            pid = h.producer_id
            if pid >= 0:
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
        try:
            info = lg.append(records, leader_epoch=self.leader_epoch, log_append_time=log_append_time,
                             now_ms=now)
        except Exception as e:  # noqa: BLE001 - every core error maps to a Kafka error code
            return AppendError(error_code_for(e), str(e))
        if pid >= 0:
            self.producers.update(pid, epoch, base_seq, last_seq, info.first_offset, info.last_offset,
                                  info.log_append_time if log_append_time >= 0 else info.max_timestamp)
        if self.waiters:
            self.notify(len(records))
        flushed: asyncio.Future[None] | None = None
        if info.flush_due:    # the log counts unflushed messages against the topic's flush.messages
            if wait_flush:
                flushed = self.flusher.loop.create_future()
            self.flusher.request(self, flushed)
        return AppendResult(info.first_offset, info.last_offset,
                            info.log_append_time if log_append_time >= 0 else -1, lg.start_offset, flushed)
