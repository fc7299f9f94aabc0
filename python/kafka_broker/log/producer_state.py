"""Idempotent-producer state of one partition (Kafka's ProducerStateManager, in brief).

For each producer id the last ``PRODUCER_WINDOW`` batches appended (sequence range, offsets,
timestamp): a retried batch is answered with its first offset instead of appended twice, a
sequence gap is OUT_OF_ORDER_SEQUENCE_NUMBER, an older epoch is INVALID_PRODUCER_EPOCH. The loop
thread owns it; ``Storage`` snapshots it to ``kc-producer-state.json`` and rebuilds it on start.

Transaction verification (KIP-890): a transactional batch that would open its producer's
transaction here is first checked with (TV1) or added to (TV2) the transaction by the
coordinator (produce.py).  ``start_verification`` hands out a guard before that round trip and a
marker of the producer drops it, so a batch verified for a transaction that ended meanwhile is
refused instead of opening a transaction nobody will end (Kafka's VerificationGuard).  Guards are
in memory only: a restart loses nothing but the verifications in flight.
"""

from __future__ import annotations

import json
import os
from collections import deque
from collections.abc import Iterable
from typing import Any, Protocol

from kafka_protocol.errors import ErrorCode as E

PRODUCER_SNAPSHOT = "kc-producer-state.json"   # in the partition directory
PRODUCER_WINDOW = 5        # batches remembered per producer (ProducerStateEntry.NUM_BATCHES_TO_RETAIN)
SEQ_MOD = 1 << 31


class DuplicateBatch(Exception):
    def __init__(self, first_offset: int, last_offset: int, timestamp: int) -> None:
        self.first_offset = first_offset
        self.last_offset = last_offset
        self.timestamp = timestamp


class ProducerEntry:
    """Last batches of one producer on one partition (ProducerStateEntry.java), the coordinator
    epoch of its last marker, and its last timestamp (DescribeProducers)."""

    __slots__ = ("epoch", "batches", "coordinator_epoch")

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch
        # (first_seq, last_seq, first_offset, last_offset, timestamp), oldest first
        self.batches: deque[tuple[int, int, int, int, int]] = deque(maxlen=PRODUCER_WINDOW)
        self.coordinator_epoch = -1


class ProducerState:
    """Idempotent-producer and transaction bookkeeping for one partition (``txn.py`` says how
    transactions are tracked)."""

    __slots__ = ("entries", "changes", "ongoing", "verifying")

    def __init__(self) -> None:
        self.entries: dict[int, ProducerEntry] = {}
        self.changes = 0          # bumped on every update: snapshots are skipped when unchanged
        self.ongoing: dict[int, int] = {}     # producer id -> first offset of its open transaction
        self.verifying: dict[int, object] = {}   # producer id -> its verification guard

    # -- transactions -------------------------------------------------------------------

    def first_unstable(self) -> int:
        """The first offset of the oldest open transaction; -1 when none is open."""
        return min(self.ongoing.values()) if self.ongoing else -1

    def check_txn(self, pid: int, transactional: bool) -> E:
        """Before a data batch: a plain batch of a producer whose transaction is open is
        INVALID_TXN_STATE (Kafka's ``checkProducerEpoch``/``maybeValidateAppend``)."""
        if not transactional and pid in self.ongoing:
            return E.INVALID_TXN_STATE
        return E.NONE

    def needs_verification(self, pid: int, epoch: int) -> bool:
        """A transactional batch of ``pid`` at ``epoch`` opens a transaction here (none is open at
        that epoch: Kafka's ``hasOngoingTransaction``), so the coordinator must vouch for it."""
        e = self.entries.get(pid)
        return pid not in self.ongoing or e is None or e.epoch != epoch

    def start_verification(self, pid: int) -> object:
        guard = self.verifying.get(pid)
        if guard is None:
            guard = self.verifying[pid] = object()
        return guard

    def verified(self, pid: int, guard: object) -> bool:
        """Still the guard handed out before the coordinator was asked (no marker since)."""
        return self.verifying.get(pid) is guard

    def begin(self, pid: int, first_offset: int) -> None:
        if pid not in self.ongoing:
            self.ongoing[pid] = first_offset
            self.changes += 1

    def check_marker(self, pid: int, epoch: int, coordinator_epoch: int) -> E:
        e = self.entries.get(pid)
        if e is not None and epoch < e.epoch:
            return E.INVALID_PRODUCER_EPOCH
        if e is not None and coordinator_epoch < e.coordinator_epoch:
            return E.TRANSACTION_COORDINATOR_FENCED
        return E.NONE

    def end(self, pid: int, epoch: int, coordinator_epoch: int) -> int:
        """A marker of ``pid`` is in the log: its transaction is over (its first offset, -1 if
        none was open); a marker with a newer epoch fences the older producer (sequences
        start again at 0 for the new epoch)."""
        first = self.ongoing.pop(pid, -1)
        self.verifying.pop(pid, None)
        e = self.entries.get(pid)
        if e is None or epoch > e.epoch:
            e = self.entries[pid] = ProducerEntry(epoch)
        e.coordinator_epoch = max(e.coordinator_epoch, coordinator_epoch)
        self.changes += 1
        return first

    def check(self, pid: int, epoch: int, first_seq: int, last_seq: int) -> E:
        """Before an append: NONE, or the error; raises DuplicateBatch for a retry."""
        e = self.entries.get(pid)
        if e is None:
            return E.NONE if first_seq == 0 else E.UNKNOWN_PRODUCER_ID
        if epoch < e.epoch:
            return E.INVALID_PRODUCER_EPOCH
        if epoch > e.epoch:
            return E.NONE if first_seq == 0 else E.OUT_OF_ORDER_SEQUENCE_NUMBER
        for b in e.batches:
            if b[0] == first_seq and b[1] == last_seq:
                raise DuplicateBatch(b[2], b[3], b[4])
        if not e.batches:
            return E.NONE
        last = e.batches[-1][1]
        if first_seq == (last + 1) % SEQ_MOD:
            return E.NONE
        return E.OUT_OF_ORDER_SEQUENCE_NUMBER

    def update(self, pid: int, epoch: int, first_seq: int, last_seq: int,
               first_offset: int, last_offset: int, timestamp: int) -> None:
        e = self.entries.get(pid)
        if e is None or e.epoch != epoch:
            e = self.entries[pid] = ProducerEntry(epoch)
        e.batches.append((first_seq, last_seq, first_offset, last_offset, timestamp))
        self.changes += 1

    def to_json(self) -> dict[str, Any]:
        """pid -> [epoch, batches, coordinator epoch, open transaction's first offset or -1]."""
        return {str(pid): [e.epoch, [list(b) for b in e.batches], e.coordinator_epoch, self.ongoing.get(pid, -1)]
                for pid, e in self.entries.items()}

    def load_json(self, data: dict[str, Any]) -> None:
        for pid, row in data.items():
            e = ProducerEntry(int(row[0]))
            for b in row[1]:
                e.batches.append(tuple(int(x) for x in b))  # type: ignore[arg-type]
            if len(row) >= 4:       # snapshots written before transactions have two fields
                e.coordinator_epoch = int(row[2])
                if int(row[3]) >= 0:
                    self.ongoing[int(pid)] = int(row[3])
            self.entries[int(pid)] = e

    def apply_batches(self, infos: Iterable[BatchHeader], from_offset: int, buf: Any = None,
                      base: int = 0) -> tuple[int, list[tuple[int, int, int]]]:
        """Replay batch headers already in the log (start-up, truncation, a follower's append):
        every idempotent or transactional batch ending at or after ``from_offset``; ``buf`` holds
        the batches (``position`` relative to ``base``) so control batches can be read.  Returns
        the largest producer id seen (-1: none) and the aborted transactions it ended, as
        (producer id, first offset, marker offset)."""
        from .txn import ABORT, control_record

        max_pid = -1
        aborted: list[tuple[int, int, int]] = []
        for b in infos:
            if b.last_offset < from_offset or b.producer_id < 0:
                continue
            if b.producer_id > max_pid:
                max_pid = b.producer_id
            if b.is_control:
                kind, coord_epoch = control_record(buf, b.position - base) if buf is not None else (-1, -1)
                first = self.end(b.producer_id, b.producer_epoch, coord_epoch)
                if kind == ABORT and first >= 0:
                    aborted.append((b.producer_id, first, b.base_offset))
                continue
            if b.is_transactional:
                self.begin(b.producer_id, b.base_offset)
            if b.base_sequence < 0:      # a coordinator's transactional batch (TxnOffsetCommit)
                continue
            last_seq = (b.base_sequence + b.last_offset_delta) % SEQ_MOD
            self.update(b.producer_id, b.producer_epoch, b.base_sequence, last_seq,
                        b.base_offset, b.last_offset, b.max_timestamp)
        return max_pid, aborted


class BatchHeader(Protocol):
    """The fields of ``kafka_core.scan_batches``' BatchInfo that producer state replays."""

    @property
    def base_offset(self) -> int: ...
    @property
    def last_offset(self) -> int: ...
    @property
    def last_offset_delta(self) -> int: ...
    @property
    def max_timestamp(self) -> int: ...
    @property
    def producer_id(self) -> int: ...
    @property
    def producer_epoch(self) -> int: ...
    @property
    def base_sequence(self) -> int: ...
    @property
    def is_control(self) -> bool: ...
    @property
    def is_transactional(self) -> bool: ...
    @property
    def position(self) -> int: ...


def read_snapshot(path: str) -> tuple[int, dict[str, Any]] | None:
    """(offset, producers) of the partition directory's snapshot; None when absent or unreadable."""
    try:
        with open(os.path.join(path, PRODUCER_SNAPSHOT), encoding="utf-8") as f:
            snap = json.load(f)
        return int(snap["offset"]), snap["producers"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
