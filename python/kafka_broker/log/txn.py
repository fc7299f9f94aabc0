"""Transactions in one partition's log (Kafka's ProducerStateManager and TransactionIndex, in brief).

- A transactional batch (attribute 0x10, producer id >= 0) opens its producer's transaction on the
  partition at the batch's first offset; a control batch (a COMMIT or ABORT marker, written by the
  transaction coordinator through WriteTxnMarkers) ends it.  The smallest first offset of the open
  transactions is the partition's **first unstable offset**; the **last stable offset** (LSO) is
  min(first unstable offset, high watermark): a read_committed consumer reads below it.
- An ABORT marker adds (producer id, first offset, last offset = the marker's offset, LSO then) to
  the aborted-transaction index, Kafka's TransactionIndex entry (version int16 0, producerId int64,
  firstOffset int64, lastOffset int64, lastStableOffset int64: 34 bytes).  A read_committed fetch
  answers with the aborted transactions overlapping what it returns, found by bisection, so the
  client drops their records.  The index is ``kc-aborted.txnindex`` in the partition directory
  (one file per partition, not one per segment: entries below the log start are dropped when
  retention or DeleteRecords moves it, entries at or past a truncation point when a follower
  truncates), appended and fsynced on each abort, and checked against the log on start-up: the
  replay after the producer snapshot (``Partition.load_producers``) adds any entry a crash lost.
- The marker of a control batch is the key of its one record: version int16, type int16 (0 ABORT,
  1 COMMIT); its value: version int16, coordinator epoch int32.  Only control batches are parsed
  here, one record each: Python work per marker, never per record.
"""

from __future__ import annotations

import bisect
import contextlib
import os
import struct
from typing import NamedTuple

TXN_INDEX = "kc-aborted.txnindex"
ENTRY = struct.Struct(">hqqqq")          # version, producerId, firstOffset, lastOffset, lastStableOffset
ATTR_TRANSACTIONAL = 0x10
ATTR_CONTROL = 0x20
ABORT, COMMIT = 0, 1
BATCH_HEADER = 61


class Aborted(NamedTuple):
    producer_id: int
    first_offset: int
    last_offset: int
    last_stable_offset: int


def _varint(buf: bytes | memoryview, pos: int) -> tuple[int, int]:
    """A zigzag varint at ``pos``: (value, next position)."""
    shift = result = 0
    while True:
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            break
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")
    return (result >> 1) ^ -(result & 1), pos


def control_record(buf: bytes | memoryview, batch_pos: int) -> tuple[int, int]:
    """(marker type, coordinator epoch) of the control batch at ``batch_pos`` of ``buf``; (-1, -1)
    for a control batch this broker does not know (Kafka skips those too)."""
    try:
        pos = batch_pos + BATCH_HEADER
        _length, pos = _varint(buf, pos)
        pos += 1                                   # attributes
        _ts, pos = _varint(buf, pos)
        _od, pos = _varint(buf, pos)
        klen, pos = _varint(buf, pos)
        if klen < 4:
            return -1, -1
        _kver, kind = struct.unpack_from(">hh", buf, pos)
        pos += klen
        vlen, pos = _varint(buf, pos)
        epoch = struct.unpack_from(">i", buf, pos + 2)[0] if vlen >= 6 else -1
        return kind, epoch
    except (IndexError, struct.error, ValueError):
        return -1, -1


class AbortedIndex:
    """The aborted transactions of a partition, by last offset (the marker's)."""

    __slots__ = ("path", "entries", "_last")

    def __init__(self, dirpath: str) -> None:
        self.path = os.path.join(dirpath, TXN_INDEX)
        self.entries: list[Aborted] = []
        self._last: list[int] = []      # last offsets, for bisection
        try:
            with open(self.path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            data = b""
        for i in range(0, len(data) - ENTRY.size + 1, ENTRY.size):   # a torn last entry is dropped
            ver, pid, first, last, lso = ENTRY.unpack_from(data, i)
            if ver == 0 and (not self._last or last > self._last[-1]):
                self.entries.append(Aborted(pid, first, last, lso))
                self._last.append(last)

    def add(self, a: Aborted, sync: bool = True) -> None:
        """One more abort (its marker is at ``a.last_offset``, after every earlier one)."""
        if self._last and a.last_offset <= self._last[-1]:
            return          # already there (a replay after a crash)
        self.entries.append(a)
        self._last.append(a.last_offset)
        with open(self.path, "ab") as f:
            f.write(ENTRY.pack(0, *a))
            if sync:
                f.flush()
                os.fsync(f.fileno())

    def between(self, start: int, end: int) -> list[Aborted]:
        """Aborted transactions with records in [start, end): their markers are at or after
        ``start`` and they began before ``end`` (Kafka's ``collectAbortedTransactions``)."""
        i = bisect.bisect_left(self._last, start)
        return [a for a in self.entries[i:] if a.first_offset < end]

    def _rewrite(self, keep: list[Aborted]) -> None:
        tmp = self.path + ".tmp"
        with open(tmp, "wb") as f:
            for a in keep:
                f.write(ENTRY.pack(0, *a))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        self.entries = keep
        self._last = [a.last_offset for a in keep]

    def truncate_from(self, offset: int) -> None:
        """A truncation at ``offset``: markers at or after it are gone."""
        i = bisect.bisect_left(self._last, offset)
        if i < len(self.entries):
            self._rewrite(self.entries[:i])

    def drop_before(self, log_start: int) -> None:
        """Retention moved the log start: aborts whose markers are below it are gone."""
        i = bisect.bisect_left(self._last, log_start)
        if i:
            self._rewrite(self.entries[i:])

    def clear(self) -> None:
        self.entries, self._last = [], []
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
