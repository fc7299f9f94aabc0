"""Transactions in one partition's log (Kafka's ProducerStateManager and TransactionIndex, in brief).

- A transactional batch (attribute 0x10, producer id >= 0) opens its producer's transaction on the
  partition at the batch's first offset; a control batch (a COMMIT or ABORT marker, written by the
  transaction coordinator through WriteTxnMarkers) ends it.  The smallest first offset of the open
  transactions is the partition's **first unstable offset**; the **last stable offset** (LSO) is
  min(first unstable offset, high watermark): a read_committed consumer reads below it.
- An ABORT marker adds (producer id, first offset, last offset = the marker's offset, LSO then) to
  the transaction index of the segment holding the marker, ``<base offset>.txnindex`` beside its
  ``.log``, in Kafka's TransactionIndex format (entries of version int16 0, producerId int64,
  firstOffset int64, lastOffset int64, lastStableOffset int64: 34 bytes, no header, no checksum),
  appended and fsynced on each abort.  A read_committed fetch answers with the aborted
  transactions overlapping what it returns (Kafka's ``collectAbortedTransactions``: marker at or
  after the fetch offset, first offset before the end of what is returned), found by bisection,
  so the client drops their records.
- The files follow their segments: the C core removes a segment's ``.txnindex`` with the segment
  (retention, truncation, a compaction group merged into its first segment), and the cleaner
  writes the cleaned group's, swapped in with its ``.log`` (csrc/kc_compact_txn.h); a follower's
  truncation rewrites the entries at or past the truncation point out of the one segment it cuts.
  The entries of all segments are held in memory (a list per partition, one entry per aborted
  transaction still in the log: read on open, reloaded after a cleaning pass), so a fetch never
  reads the files.  On start-up the replay after the producer snapshot
  (``Partition.load_producers``, Kafka's recoverSegment) adds any entry a crash lost.
- A data directory written before per-segment indexes has one ``kc-aborted.txnindex`` per
  partition (same entry format): on open its entries go to the files of the segments holding their
  markers, and it is removed.
- The marker of a control batch is the key of its one record: version int16, type int16 (0 ABORT,
  1 COMMIT); its value: version int16, coordinator epoch int32.  Only control batches are parsed
  here, one record each: Python work per marker, never per record.
"""

from __future__ import annotations

import bisect
import contextlib
import os
import struct
import threading
from collections.abc import Callable
from typing import NamedTuple

from .checkpoint import atomic_write

TXN_SUFFIX = ".txnindex"
LEGACY_TXN_INDEX = "kc-aborted.txnindex"      # one per partition, before per-segment indexes
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
        if struct.unpack_from(">i", buf, batch_pos + 57)[0] < 1:
            return -1, -1                          # a marker the cleaner emptied
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
    """The aborted transactions of a partition, by last offset (the marker's), kept in the
    ``.txnindex`` of the segment holding each marker.

    The loop thread adds and reads; the cleaner thread reloads after a pass; retention and
    truncation drop.  ``lock`` orders the writers; a reader takes the one ``_state`` tuple, which
    every change replaces whole, so it needs no lock."""

    __slots__ = ("dir", "lock", "_state")

    def __init__(self, dirpath: str, segment_bases: Callable[[], list[int]], log_start: int = 0,
                 load: bool = True) -> None:
        """``segment_bases``: the log's segment base offsets, ascending (called only to migrate
        a legacy per-partition index).  ``load`` False: a new partition's, with no files yet."""
        self.dir = dirpath
        self.lock = threading.Lock()
        self._state: tuple[list[Aborted], list[int], list[int]] = ([], [], [])
        if not load:
            return
        legacy = os.path.join(dirpath, LEGACY_TXN_INDEX)
        if os.path.exists(legacy):
            self._migrate(legacy, segment_bases())
        self.reload(log_start)

    @property
    def entries(self) -> list[Aborted]:
        return self._state[0]

    def _file(self, base: int) -> str:
        return os.path.join(self.dir, f"{base:020d}{TXN_SUFFIX}")

    def reload(self, log_start: int = 0) -> None:
        """Read every segment's ``.txnindex`` (on open; after a cleaning pass rewrote some).
        A torn last entry (a crash mid-append) is ignored; entries whose markers are below the log
        start (DeleteRecords moved it inside their segment) are not needed by any fetch."""
        with self.lock:
            files = []
            with contextlib.suppress(FileNotFoundError), os.scandir(self.dir) as it:
                for e in it:
                    n = e.name
                    if n.endswith(TXN_SUFFIX) and len(n) == 20 + len(TXN_SUFFIX) and n[:20].isdigit():
                        files.append(int(n[:20]))
            files.sort()
            entries: list[Aborted] = []
            last: list[int] = []
            segs: list[int] = []
            for base in files:
                for a in read_txnindex(self._file(base)):
                    if a.last_offset >= log_start and (not last or a.last_offset > last[-1]):
                        entries.append(a)
                        last.append(a.last_offset)
                        segs.append(base)
            self._state = (entries, last, segs)

    def _migrate(self, legacy: str, bases: list[int]) -> None:
        """Spread a per-partition index (before per-segment files) over the segments holding its
        markers; entries of segments that are gone are dropped.  The new files are fsynced before
        the old one goes, so a crash in between only migrates again (``add`` skips what is there)."""
        per: dict[int, list[Aborted]] = {}
        for a in read_txnindex(legacy):
            i = bisect.bisect_right(bases, a.last_offset) - 1
            if i >= 0:
                per.setdefault(bases[i], []).append(a)
        for base, items in per.items():
            have = {x.last_offset for x in read_txnindex(self._file(base))}
            with open(self._file(base), "ab") as f:
                f.write(b"".join(ENTRY.pack(0, *a) for a in items if a.last_offset not in have))
                f.flush()
                os.fsync(f.fileno())
        fd = os.open(self.dir, os.O_RDONLY)   # the new files' names are durable before the old goes
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.unlink(legacy)

    def add(self, a: Aborted, segment_base: int, sync: bool = True) -> None:
        """One more abort, its marker at ``a.last_offset`` (after every earlier one) in the
        segment based at ``segment_base``."""
        with self.lock:
            entries, last, segs = self._state
            if last and a.last_offset <= last[-1]:
                return          # already there (a replay after a crash)
            with open(self._file(segment_base), "ab") as f:
                f.write(ENTRY.pack(0, *a))
                if sync:
                    f.flush()
                    os.fsync(f.fileno())
            self._state = (entries + [a], last + [a.last_offset], segs + [segment_base])

    def between(self, start: int, end: int) -> list[Aborted]:
        """Aborted transactions with records in [start, end): their markers are at or after
        ``start`` and they began before ``end`` (Kafka's ``collectAbortedTransactions``)."""
        entries, last, _ = self._state
        i = bisect.bisect_left(last, start)
        return [a for a in entries[i:] if a.first_offset < end]

    def truncate_from(self, offset: int) -> None:
        """A truncation at ``offset``: markers at or after it are gone (Kafka's
        ``TransactionIndex.truncateTo``).  The core removed the segments past it with their
        files; the segment it cut keeps the entries below ``offset``."""
        with self.lock:
            entries, last, segs = self._state
            i = bisect.bisect_left(last, offset)
            if i == len(entries):
                return
            for base in sorted(set(segs[i:])):
                path = self._file(base)
                keep = [a for a in read_txnindex(path) if a.last_offset < offset]
                if keep:
                    atomic_write(path, b"".join(ENTRY.pack(0, *a) for a in keep))
                else:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(path)
            self._state = (entries[:i], last[:i], segs[:i])

    def drop_before(self, log_start: int) -> None:
        """Retention or DeleteRecords moved the log start: aborts whose markers are below it are
        forgotten (the core deleted the files of the segments it removed)."""
        with self.lock:
            entries, last, segs = self._state
            i = bisect.bisect_left(last, log_start)
            if i:
                self._state = (entries[i:], last[i:], segs[i:])

    def clear(self) -> None:
        """The whole log went (the core removed every segment's files)."""
        with self.lock:
            self._state = ([], [], [])


def read_txnindex(path: str) -> list[Aborted]:
    """The entries of one ``.txnindex`` file (Kafka's format; a torn last entry is ignored, an
    entry of another version skipped as Kafka's AbortedTxn reader refuses it)."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return []
    out = []
    for i in range(0, len(data) - ENTRY.size + 1, ENTRY.size):
        ver, pid, first, last, lso = ENTRY.unpack_from(data, i)
        if ver == 0:
            out.append(Aborted(pid, first, last, lso))
    return out
