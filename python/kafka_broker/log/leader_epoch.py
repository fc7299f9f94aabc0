"""The leader-epoch cache of one partition (Kafka's ``LeaderEpochFileCache``).

Which offset each leader epoch started at: ``(epoch, start_offset)`` entries, both strictly
increasing.  A follower asks the leader for the end offset of its latest epoch
(OffsetForLeaderEpoch, answered by ``end_offset_for``) and truncates its log to it: that is
how divergent tails are removed after a leader change without trusting the high watermark.

Persisted as ``leader-epoch-checkpoint`` in the partition directory (Kafka's checkpoint format,
``checkpoint.py``: version ``0``, the count, then ``epoch startOffset`` lines).  ``assign``
writes the file before returning, as Kafka does, so the file never misses an entry; the
truncations only mark it dirty and ``flush`` writes it (a stale file holds entries past the
log end or below its start, which the next open's truncation removes again).

Threads: the loop assigns (appends) and truncates from the end; the storage worker truncates
from the start (retention, DeleteRecords).  ``_lock`` serialises them; ``latest`` is a plain
attribute the append path reads without the lock (an int store is atomic under the GIL).
"""

from __future__ import annotations

import logging
import os
import threading

from .checkpoint import CheckpointError, read_checkpoint, write_checkpoint

log = logging.getLogger("kafka_broker.log.leader_epoch")

LEADER_EPOCH_CHECKPOINT = "leader-epoch-checkpoint"
UNDEFINED_EPOCH = -1
UNDEFINED_EPOCH_OFFSET = -1


class LeaderEpochCache:
    __slots__ = ("path", "_entries", "latest", "_dirty", "_lock")

    def __init__(self, path: str, read: bool = True) -> None:
        """``path``: the partition directory; the file is read now (absent: empty; ``read``
        False: a new partition's, known absent, so not looked for)."""
        self.path = os.path.join(path, LEADER_EPOCH_CHECKPOINT)
        self._entries: list[tuple[int, int]] = []   # (epoch, start_offset), both increasing
        self.latest = UNDEFINED_EPOCH                 # the last entry's epoch, -1 when empty
        self._dirty = False
        self._lock = threading.Lock()
        if not read:
            return
        try:
            rows = read_checkpoint(self.path, 2) or []
            for epoch, start in ((int(a), int(b)) for a, b in rows):
                self._assign(epoch, start)
        except (CheckpointError, ValueError) as e:
            # a follower re-learns its epochs from the batches it fetches; the leader from its appends
            log.warning("%s: %s; starting with no epochs", self.path, e)
            self._entries = []
            self.latest = UNDEFINED_EPOCH

    def __repr__(self) -> str:
        return f"<LeaderEpochCache {self._entries}>"

    # -- updates -----------------------------------------------------------------------------

    def assign(self, epoch: int, start_offset: int) -> bool:
        """Epoch ``epoch`` starts at ``start_offset``; True when that changed the cache (then
        the file is written before returning).  Kafka's rule: nothing to do when ``epoch`` is the
        latest one and ``start_offset`` is not below its start; otherwise every entry from the
        end with an epoch >= ``epoch`` or a start >= ``start_offset`` goes first, so both columns
        stay increasing."""
        if epoch < 0 or start_offset < 0:
            raise ValueError(f"invalid leader epoch entry ({epoch}, {start_offset})")
        with self._lock:
            if not self._assign(epoch, start_offset):
                return False
            self._write()
        return True

    def _assign(self, epoch: int, start_offset: int) -> bool:
        e = self._entries
        if e and e[-1][0] == epoch and start_offset >= e[-1][1]:
            return False
        removed = []
        while e and (e[-1][0] >= epoch or e[-1][1] >= start_offset):
            removed.append(e.pop())
        if len(removed) > 1 or (removed and removed[0][1] != start_offset):
            log.warning("%s: epoch %d at %d removed conflicting entries %s", self.path, epoch, start_offset,
                        removed[::-1])
        e.append((epoch, start_offset))
        self.latest = epoch
        return True

    def truncate_from_end(self, end_offset: int) -> None:
        """Drop the entries starting at or after ``end_offset`` (the log was truncated to it)."""
        with self._lock:
            e = self._entries
            if end_offset < 0 or not e or e[-1][1] < end_offset:
                return
            while e and e[-1][1] >= end_offset:
                e.pop()
            self.latest = e[-1][0] if e else UNDEFINED_EPOCH
            self._dirty = True

    def truncate_from_start(self, start_offset: int) -> None:
        """The log now starts at ``start_offset``: the entries starting at or below it go, but the
        last of them stays, moved to ``start_offset`` (it holds the first offset kept)."""
        with self._lock:
            e = self._entries
            n = 0
            while n < len(e) and e[n][1] <= start_offset:
                n += 1
            if n == 0:
                return
            first = (e[n - 1][0], start_offset)
            if n == 1 and e[0] == first:
                return
            del e[:n]
            e.insert(0, first)
            self._dirty = True

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self.latest = UNDEFINED_EPOCH
            self._dirty = True

    def flush(self) -> None:
        """Write the file if a truncation changed the cache since it was last written."""
        with self._lock:
            if self._dirty:
                self._write()

    def _write(self) -> None:
        write_checkpoint(self.path, self._entries)
        self._dirty = False

    # -- queries ----------------------------------------------------------------------------

    def latest_epoch(self) -> int:
        return self.latest

    def entries(self) -> list[tuple[int, int]]:
        """(epoch, start_offset) pairs, oldest first."""
        with self._lock:
            return list(self._entries)

    def end_offset_for(self, requested_epoch: int, log_end_offset: int) -> tuple[int, int]:
        """(epoch, end offset) for OffsetForLeaderEpoch, Kafka's ``endOffsetFor``: the largest
        epoch <= ``requested_epoch`` and the start of the first epoch above it, or
        ``log_end_offset`` for the latest epoch.  A requested epoch below every entry gets itself
        and the first entry's start (that data is gone from the log); UNDEFINED (-1, -1) for an
        undefined request or one above every epoch known."""
        with self._lock:
            e = self._entries
            if requested_epoch == UNDEFINED_EPOCH:
                return UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET
            if e and e[-1][0] == requested_epoch:
                return requested_epoch, log_end_offset
            higher = next((i for i, (ep, _) in enumerate(e) if ep > requested_epoch), None)
            if higher is None:
                return UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET
            if higher == 0:
                return requested_epoch, e[0][1]
            return e[higher - 1][0], e[higher][1]
