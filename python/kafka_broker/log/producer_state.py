"""Idempotent-producer state of one partition (Kafka's ProducerStateManager, in brief).

For each producer id the last ``PRODUCER_WINDOW`` batches appended (sequence range, offsets,
timestamp): a retried batch is answered with its first offset instead of appended twice, a
sequence gap is OUT_OF_ORDER_SEQUENCE_NUMBER, an older epoch is INVALID_PRODUCER_EPOCH. The loop
thread owns it; ``Storage`` snapshots it to ``kc-producer-state.json`` and rebuilds it on start.
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
    """Last batches of one producer on one partition (ProducerStateEntry.java)."""

    __slots__ = ("epoch", "batches")

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch
        # (first_seq, last_seq, first_offset, last_offset, timestamp), oldest first
        self.batches: deque[tuple[int, int, int, int, int]] = deque(maxlen=PRODUCER_WINDOW)


class ProducerState:
    """Idempotent-producer bookkeeping for one partition."""

    __slots__ = ("entries", "changes")

    def __init__(self) -> None:
        self.entries: dict[int, ProducerEntry] = {}
        self.changes = 0          # bumped on every update: snapshots are skipped when unchanged

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
        return {str(pid): [e.epoch, [list(b) for b in e.batches]] for pid, e in self.entries.items()}

    def load_json(self, data: dict[str, Any]) -> None:
        for pid, (epoch, batches) in data.items():
            e = ProducerEntry(int(epoch))
            for b in batches:
                e.batches.append(tuple(int(x) for x in b))  # type: ignore[arg-type]
            self.entries[int(pid)] = e

    def apply_batches(self, infos: Iterable[BatchHeader], from_offset: int) -> int:
        """Replay batch headers already in the log (start-up, truncation, a follower's append):
        every idempotent batch ending at or after ``from_offset``.  Returns the largest producer id
        seen (-1: none)."""
        max_pid = -1
        for b in infos:
            if b.last_offset < from_offset or b.producer_id < 0:
                continue
            last_seq = (b.base_sequence + b.last_offset_delta) % SEQ_MOD
            self.update(b.producer_id, b.producer_epoch, b.base_sequence, last_seq,
                        b.base_offset, b.last_offset, b.max_timestamp)
            if b.producer_id > max_pid:
                max_pid = b.producer_id
        return max_pid


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


def read_snapshot(path: str) -> tuple[int, dict[str, Any]] | None:
    """(offset, producers) of the partition directory's snapshot; None when absent or unreadable."""
    try:
        with open(os.path.join(path, PRODUCER_SNAPSHOT), encoding="utf-8") as f:
            snap = json.load(f)
        return int(snap["offset"]), snap["producers"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
