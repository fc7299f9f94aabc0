"""Committed offsets and group metadata, durable in ``__consumer_offsets``.

Layout: ``offsets.topic.num.partitions`` (default 50) partitions, one
``kafka_core.Log`` each under ``<log dir>/__consumer_offsets-N``; a group
lives in partition ``records.partition_for(group_id, n)`` like in Kafka.
Records use Kafka's key/value formats (``records.py``), so the topic reads
the same as a Kafka broker's.

Durability: ``commit`` returns only after the backend's ``append`` returned;
the server's ``append`` callable awaits its group-commit fsync when the
flush policy asks for one, so an OffsetCommit answered with NONE survives a
kill -9.  The in-memory view is updated after the append, never before, so a
reader never sees an offset that may not be on disk.

KIP-848 groups: ``sync_consumer_group`` appends the changed records of a
group (key versions 3-8, ``records.py``); the view keeps their raw values
per key, and the coordinator decodes them at start-up.

Transactions (TxnOffsetCommit, KIP-98/447): ``txn_commit`` appends the offsets as
the producer's transactional batch; they stay pending (``pending`` is true, so
OffsetFetch with require_stable answers UNSTABLE_OFFSET_COMMIT) until the
broker reports the transaction's marker on the group's partition through
``complete_txn``: COMMIT makes them the committed offsets (unless a plain
commit of the same partition was written after them), ABORT drops them.

Start-up: ``load()`` scans every partition from its start, last value per key
wins, a null value (tombstone) deletes the key; a transactional batch's
records wait for their producer's marker in the log (COMMIT applies them,
ABORT drops them, none yet: pending).  Scanning reads whole batches
and decodes records in C (``kafka_core._batch``) when it is built, else with
the pure-Python reference decoder.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import Any, Protocol

import kafka_core

from . import records as R
from .records import GroupRecord, OffsetValue

log = logging.getLogger("kafka_broker.groups.offsets")

TOPIC = "__consumer_offsets"
_READ_CHUNK = 1 << 20


class OffsetsBackend(Protocol):
    num_partitions: int

    async def append(self, partition: int, batch: bytearray) -> None: ...

    def read(self, partition: int) -> Iterator[bytes]:
        """Raw log bytes of partition ``partition`` from its start, in chunks of whole batches."""
        ...


# -- record batches ------------------------------------------------------------

# Which record code builds and reads the offsets batches: kafka_core's C codecs, or the pure-Python
# twin (kafka_protocol._pyrecords) when KAFKA_CORE_NO_EXTENSIONS is set. Chosen once, never by an
# ImportError.
RECORDS_PATH = "python" if kafka_core.NO_EXTENSIONS else "c"


ATTR_TRANSACTIONAL = 0x10


def build_batch(items: list[tuple[bytes, bytes | None]], now_ms: int, *, producer_id: int = -1,
                producer_epoch: int = -1) -> bytearray:
    """One uncompressed v2 batch holding ``items`` (key, value); offsets are assigned by the log.

    With ``producer_id`` the batch is transactional (TxnOffsetCommit): the producer's id and epoch,
    no sequence (Kafka writes transactional offset commits with ``NO_SEQUENCE``)."""
    attrs = ATTR_TRANSACTIONAL if producer_id >= 0 else 0
    if RECORDS_PATH == "python":
        from kafka_protocol._pyrecords import make_batch
        return bytearray(make_batch([(now_ms, k, v, []) for k, v in items], base_timestamp=now_ms,
                                    producer_id=producer_id, producer_epoch=producer_epoch, attributes=attrs))
    from kafka_core import BatchBuilder
    capacity = 61 + sum(len(k) + (len(v) if v is not None else 0) + 48 for k, v in items)
    b = BatchBuilder(capacity, base_timestamp=now_ms, producer_id=producer_id, producer_epoch=producer_epoch,
                     attributes=attrs)
    for k, v in items:
        if not b.append(now_ms, k, v):
            raise RuntimeError("offsets batch builder ran out of room")
    return bytearray(b.finish())


# What ``decode_entries`` yields besides records: a transaction's end on this partition.
PLAIN, TXN, COMMIT, ABORT = 0, 1, 2, 3


def _marker(key: bytes | None) -> int:
    """COMMIT or ABORT for a control record's key (version int16, type int16: 0 abort, 1 commit)."""
    if key is None or len(key) < 4:
        return -1
    kind = int.from_bytes(key[2:4], "big", signed=True)
    return COMMIT if kind == 1 else ABORT if kind == 0 else -1


def decode_entries(buf: bytes) -> Iterator[tuple[int, int, bytes | None, bytes | None]]:
    """(kind, producer id, key, value) for every record of the whole batches in ``buf``: kind
    PLAIN or TXN (a transactional batch's record), or COMMIT / ABORT for a transaction marker
    (key and value None)."""
    if RECORDS_PATH == "python":
        from kafka_protocol._pyrecords import decode_batches
        for b in decode_batches(buf):
            if b.attributes & 0x20:     # control batch
                for r in b.records[:1]:
                    m = _marker(r.key)
                    if m >= 0:
                        yield m, b.producer_id, None, None
                continue
            kind = TXN if b.attributes & ATTR_TRANSACTIONAL and b.producer_id >= 0 else PLAIN
            for r in b.records:
                yield kind, b.producer_id, r.key, r.value
        return
    from kafka_core import iter_records, scan_batches
    mv = memoryview(buf)
    infos, _ = scan_batches(mv, allow_partial=True, allow_compacted=True)
    for info in infos:
        batch = mv[info.position:info.position + info.size]
        if info.is_control:
            for rec in iter_records(batch):
                m = _marker(None if rec.key is None else bytes(rec.key))
                if m >= 0:
                    yield m, info.producer_id, None, None
                break
            continue
        if info.codec != 0:
            log.warning("%s: skipping a compressed batch at offset %d", TOPIC, info.base_offset)
            continue
        kind = TXN if info.is_transactional and info.producer_id >= 0 else PLAIN
        for rec in iter_records(batch):
            yield kind, info.producer_id, rec.key, rec.value


def decode_records(buf: bytes) -> Iterator[tuple[bytes | None, bytes | None]]:
    """(key, value) of every record of the whole batches in ``buf`` (markers left out)."""
    for kind, _pid, key, value in decode_entries(buf):
        if kind <= TXN:
            yield key, value


# -- backends --------------------------------------------------------------------

class LogBackend:
    """``__consumer_offsets-N`` as ``kafka_core.Log`` objects.

    ``logs`` maps a partition to an open Log when the server's storage owns
    them; otherwise they are opened under ``log_dir`` on first use.  ``append``
    (async, ``(partition, batch)``) replaces the default append, so the
    server's group-commit flush applies; the default appends and, with
    ``fsync=True``, flushes in a worker thread before returning.
    """

    def __init__(self, log_dir: str | None, num_partitions: int = 50, *,
                 logs: Callable[[int], Any] | None = None,
                 append: Callable[[int, bytearray], Awaitable[Any]] | None = None,
                 fsync: bool = True, log_options: dict[str, Any] | None = None) -> None:
        self.log_dir = log_dir
        self.num_partitions = num_partitions
        self._get_log = logs
        self._append = append
        self._fsync = fsync
        self._opts = log_options or {}
        self._logs: dict[int, Any] = {}

    def path(self, partition: int) -> str:
        if self.log_dir is None:
            raise ValueError("LogBackend needs log_dir or logs")
        return os.path.join(self.log_dir, f"{TOPIC}-{partition}")

    def log(self, partition: int, create: bool = True) -> Any:
        if self._get_log is not None:
            return self._get_log(partition)
        lg = self._logs.get(partition)
        if lg is None:
            path = self.path(partition)
            if not create and not os.path.isdir(path):
                return None
            from kafka_core import Log
            os.makedirs(path, exist_ok=True)
            lg = self._logs[partition] = Log(path, **self._opts)
        return lg

    async def append(self, partition: int, batch: bytearray) -> None:
        if self._append is not None:
            await self._append(partition, batch)
            return
        lg = self.log(partition)
        lg.append(batch)
        if self._fsync:
            await asyncio.get_running_loop().run_in_executor(None, lg.flush)

    def read(self, partition: int) -> Iterator[bytes]:
        lg = self.log(partition, create=False)
        if lg is None:
            return
        offset = lg.start_offset
        while offset < lg.end_offset:
            sl = lg.read(offset, _READ_CHUNK)
            try:
                if len(sl) == 0:
                    return
                data = os.pread(sl.fd, sl.length, sl.position)
                last = sl.last_offset
            finally:
                sl.release()
            yield data
            offset = last + 1

    def close(self) -> None:
        for lg in self._logs.values():
            lg.close()
        self._logs.clear()


class MemoryBackend:
    """Batches kept in lists: for tests, and to model a crash (drop what was not "flushed")."""

    def __init__(self, num_partitions: int = 50) -> None:
        self.num_partitions = num_partitions
        self.batches: dict[int, list[bytes]] = {}
        self.fail: BaseException | None = None
        self.appends = 0

    async def append(self, partition: int, batch: bytearray) -> None:
        await asyncio.sleep(0)
        if self.fail is not None:
            raise self.fail
        self.batches.setdefault(partition, []).append(bytes(batch))
        self.appends += 1

    def read(self, partition: int) -> Iterator[bytes]:
        yield from self.batches.get(partition, [])


# -- the store ---------------------------------------------------------------------

class OffsetsStore:
    """In-memory view of ``__consumer_offsets``, written through ``backend``."""

    def __init__(self, backend: OffsetsBackend, *, wall_clock: Callable[[], float] = time.time) -> None:
        self.backend = backend
        self.num_partitions = backend.num_partitions
        self._wall = wall_clock
        self.offsets: dict[str, dict[tuple[str, int], OffsetValue]] = {}
        self.groups: dict[str, GroupRecord] = {}
        # KIP-848 groups: the last appended value of each key (versions 3-8), raw; the
        # coordinator diffs a group's current records against this to write only changes
        self.consumer: dict[str, dict[bytes, bytes]] = {}
        self.loaded = False
        self._inflight: dict[tuple[str, str, int], int] = {}
        # Offsets committed inside a transaction (TxnOffsetCommit): in the log at once, as the
        # producer's transactional batch, but the group's committed offsets only once the COMMIT
        # marker reaches the group's partition; ABORT drops them (Kafka's
        # pendingTransactionalOffsetCommits).  producer id -> group -> (topic, partition) ->
        # (write order, value).  A plain commit written after a transactional one of the same
        # partition wins over it when the transaction commits (Kafka compares record offsets;
        # appends happen in call order, so the write order here is the log order).
        self.txn_pending: dict[int, dict[str, dict[tuple[str, int], tuple[int, OffsetValue]]]] = {}
        self._writes = 0
        self._plain_order: dict[tuple[str, str, int], int] = {}   # only for partitions with pending txn offsets

    def now_ms(self) -> int:
        return int(self._wall() * 1000)

    def partition_for(self, group_id: str) -> int:
        return R.partition_for(group_id, self.num_partitions)

    # -- loading -------------------------------------------------------------
    def load_sync(self) -> None:
        self.load_partitions(range(self.num_partitions))

    def load_partitions(self, partitions: Iterable[int], replace: bool = True) -> None:
        """Read the state of the groups of ``partitions`` (all of them: ``replace`` swaps in the
        result; else it is added to what is loaded, as a cluster's coordinator does when it
        becomes leader of one more ``__consumer_offsets`` partition)."""
        offsets: dict[str, dict[tuple[str, int], OffsetValue]] = {}
        groups: dict[str, GroupRecord] = {}
        consumer: dict[str, dict[bytes, bytes]] = {}
        # transactional offset records waiting for their marker: producer id -> [(order, key, value)]
        open_txns: dict[int, list[tuple[int, bytes, bytes | None]]] = {}
        plain: dict[bytes, int] = {}      # offset key -> order of its last plain write, while txns are open
        bad = 0
        order = 0

        def apply(key: bytes, value: bytes | None) -> None:
            nonlocal bad
            try:
                self._apply(offsets, groups, consumer, key, value)
            except R.RecordFormatError as e:
                bad += 1
                log.warning("%s: skipping a record: %s", TOPIC, e)
        for p in partitions:
            for chunk in self.backend.read(p):
                for kind, pid, key, value in decode_entries(chunk):
                    order += 1
                    if kind == PLAIN:
                        if key is None:
                            continue
                        k = bytes(key)
                        if open_txns:
                            plain[k] = order
                        apply(k, None if value is None else bytes(value))
                    elif kind == TXN:
                        if key is not None:
                            open_txns.setdefault(pid, []).append((order, bytes(key),
                                                                  None if value is None else bytes(value)))
                    else:
                        done = open_txns.pop(pid, [])
                        if kind == COMMIT:
                            for o, k, v in done:
                                if plain.get(k, -1) < o:
                                    apply(k, v)
                        if not open_txns:
                            plain.clear()
        if bad:
            log.warning("%s: %d undecodable records skipped", TOPIC, bad)
        pending = self._decode_open_txns(open_txns)
        if replace:
            self.offsets, self.groups, self.consumer = offsets, groups, consumer
            self.txn_pending = pending
            self._plain_order.clear()
        else:
            self.offsets.update(offsets)
            self.groups.update(groups)
            self.consumer.update(consumer)
            for pid, by_group in pending.items():
                self.txn_pending.setdefault(pid, {}).update(by_group)
        self.loaded = True

    def _decode_open_txns(self, open_txns: dict[int, list[tuple[int, bytes, bytes | None]]],
                          ) -> dict[int, dict[str, dict[tuple[str, int], tuple[int, OffsetValue]]]]:
        """Transactions still open at the end of a load become pending offsets (their marker is
        still to come: the transaction coordinator resends it after a failover)."""
        out: dict[int, dict[str, dict[tuple[str, int], tuple[int, OffsetValue]]]] = {}
        for pid, entries in open_txns.items():
            for _o, key, value in entries:
                try:
                    kind, group, topic, partition = R.decode_key(key)
                except R.RecordFormatError:
                    continue
                if kind != "offset" or topic is None or value is None:
                    continue
                self._writes += 1
                out.setdefault(pid, {}).setdefault(group, {})[(topic, partition)] = (
                    self._writes, R.decode_offset_value(value))
        return out

    def unload_partition(self, partition: int) -> list[str]:
        """Forget the groups of ``partition`` (this broker no longer leads it); their ids."""
        gone = {g for d in (self.offsets, self.groups, self.consumer) for g in d
                if self.partition_for(g) == partition}
        for g in gone:
            self.offsets.pop(g, None)
            self.groups.pop(g, None)
            self.consumer.pop(g, None)
        for pid in list(self.txn_pending):
            by_group = self.txn_pending[pid]
            for g in [g for g in by_group if self.partition_for(g) == partition]:
                del by_group[g]
            if not by_group:
                del self.txn_pending[pid]
        for k in [k for k in self._plain_order if self.partition_for(k[0]) == partition]:
            del self._plain_order[k]
        return sorted(gone)

    async def load(self) -> None:
        await asyncio.get_running_loop().run_in_executor(None, self.load_sync)

    @staticmethod
    def _apply(offsets: dict[str, dict[tuple[str, int], OffsetValue]], groups: dict[str, GroupRecord],
               consumer: dict[str, dict[bytes, bytes]], key: bytes, value: bytes | None) -> None:
        kind, group, topic, partition = R.decode_key(key)
        if kind == "offset":
            assert topic is not None
            if value is None:
                g = offsets.get(group)
                if g is not None:
                    g.pop((topic, partition), None)
                    if not g:
                        del offsets[group]
            else:
                offsets.setdefault(group, {})[(topic, partition)] = R.decode_offset_value(value)
        elif kind == "group":
            if value is None:
                groups.pop(group, None)
            else:
                groups[group] = R.decode_group_value(value)
        elif kind == "consumer":
            if value is None:
                c = consumer.get(group)
                if c is not None:
                    c.pop(key, None)
                    if not c:
                        del consumer[group]
            else:
                consumer.setdefault(group, {})[key] = value

    # -- writing -------------------------------------------------------------
    async def _write(self, group_id: str, items: list[tuple[bytes, bytes | None]]) -> None:
        if not items:
            return
        batch = build_batch(items, self.now_ms())
        await self.backend.append(self.partition_for(group_id), batch)

    async def commit(self, group_id: str, entries: Iterable[tuple[str, int, OffsetValue]]) -> None:
        """Append the commits as one batch; the view changes once the append returned."""
        entries = list(entries)
        keys = [(group_id, t, p) for t, p, _ in entries]
        for k in keys:
            self._inflight[k] = self._inflight.get(k, 0) + 1
        try:
            await self._write(group_id, [(R.offset_key(group_id, t, p), R.offset_value(v)) for t, p, v in entries])
        finally:
            for k in keys:
                n = self._inflight[k] - 1
                if n:
                    self._inflight[k] = n
                else:
                    del self._inflight[k]
        g = self.offsets.setdefault(group_id, {})
        self._writes += 1
        txn = self.txn_pending and any(group_id in by_group for by_group in self.txn_pending.values())
        for t, p, v in entries:
            g[(t, p)] = v
            if txn:
                self._plain_order[(group_id, t, p)] = self._writes

    async def txn_commit(self, group_id: str, producer_id: int, producer_epoch: int,
                         entries: Iterable[tuple[str, int, OffsetValue]]) -> None:
        """TxnOffsetCommit: the offsets as one transactional batch of the producer; they are
        pending (OffsetFetch does not show them) until ``complete_txn``."""
        entries = list(entries)
        batch = build_batch([(R.offset_key(group_id, t, p), R.offset_value(v)) for t, p, v in entries],
                            self.now_ms(), producer_id=producer_id, producer_epoch=producer_epoch)
        await self.backend.append(self.partition_for(group_id), batch)
        self._writes += 1
        mine = self.txn_pending.setdefault(producer_id, {}).setdefault(group_id, {})
        for t, p, v in entries:
            mine[(t, p)] = (self._writes, v)

    def complete_txn(self, partition: int, producer_id: int, commit: bool) -> int:
        """The transaction marker of ``producer_id`` is in ``__consumer_offsets-<partition>``:
        its pending offsets for the groups of that partition become committed (COMMIT) or go
        (ABORT).  Returns how many offsets were settled."""
        by_group = self.txn_pending.get(producer_id)
        if not by_group:
            return 0
        n = 0
        for g in [g for g in by_group if self.partition_for(g) == partition]:
            pend = by_group.pop(g)
            n += len(pend)
            if commit:
                view = self.offsets.setdefault(g, {})
                for (t, p), (order, v) in pend.items():
                    if self._plain_order.get((g, t, p), -1) < order:
                        view[(t, p)] = v
            if not any(g in other for other in self.txn_pending.values()):
                for k in [k for k in self._plain_order if k[0] == g]:
                    del self._plain_order[k]
        if not by_group:
            del self.txn_pending[producer_id]
        return n

    def pending(self, group_id: str, topic: str, partition: int) -> bool:
        """A commit of this partition is being written, or is part of an open transaction
        (OffsetFetch require_stable answers UNSTABLE_OFFSET_COMMIT, KIP-447)."""
        if (group_id, topic, partition) in self._inflight:
            return True
        return any((topic, partition) in by_group.get(group_id, ()) for by_group in self.txn_pending.values())

    async def delete_offsets(self, group_id: str, keys: Iterable[tuple[str, int]]) -> None:
        keys = list(keys)
        await self._write(group_id, [(R.offset_key(group_id, t, p), None) for t, p in keys])
        g = self.offsets.get(group_id)
        if g is not None:
            for k in keys:
                g.pop(k, None)
            if not g:
                del self.offsets[group_id]

    async def store_group(self, group_id: str, record: GroupRecord) -> None:
        """Classic group metadata; tombstones any KIP-848 records the group had (it was converted)."""
        gone = list(self.consumer.get(group_id, {}))
        await self._write(group_id, [(k, None) for k in gone] + [(R.group_key(group_id), R.group_value(record))])
        self.groups[group_id] = record
        self._drop_consumer_keys(group_id, gone)

    async def sync_consumer_group(self, group_id: str, records: dict[bytes, bytes]) -> int:
        """Make the stored KIP-848 records of ``group_id`` equal ``records`` (key -> value).

        Appends, as one batch, the values that changed and tombstones for the keys
        that are gone (and for a classic group record the group replaced); returns
        the number of records written (0: nothing changed, nothing appended).  The
        view changes once the append returned.
        """
        have = self.consumer.get(group_id, {})
        changes: list[tuple[bytes, bytes | None]] = [(k, None) for k in have if k not in records]
        changes += [(k, v) for k, v in records.items() if have.get(k) != v]
        classic = group_id in self.groups
        items = changes + ([(R.group_key(group_id), None)] if classic else [])
        if not items:
            return 0
        await self._write(group_id, items)
        if classic:
            self.groups.pop(group_id, None)
        view = self.consumer.setdefault(group_id, {})
        for k, v in changes:
            if v is None:
                view.pop(k, None)
            else:
                view[k] = v
        if not view:
            del self.consumer[group_id]
        return len(items)

    def _drop_consumer_keys(self, group_id: str, keys: list[bytes]) -> None:
        c = self.consumer.get(group_id)
        if c is None:
            return
        for k in keys:
            c.pop(k, None)
        if not c:
            del self.consumer[group_id]

    async def delete_group(self, group_id: str) -> None:
        """Tombstones for the group's metadata and every offset it committed."""
        items: list[tuple[bytes, bytes | None]] = [(R.offset_key(group_id, t, p), None)
                                                   for t, p in self.offsets.get(group_id, {})]
        items.append((R.group_key(group_id), None))
        gone = list(self.consumer.get(group_id, {}))
        items += [(k, None) for k in gone]
        await self._write(group_id, items)
        self.offsets.pop(group_id, None)
        self.groups.pop(group_id, None)
        self._drop_consumer_keys(group_id, gone)

    # -- reading -------------------------------------------------------------
    def get(self, group_id: str, topic: str, partition: int) -> OffsetValue | None:
        g = self.offsets.get(group_id)
        return None if g is None else g.get((topic, partition))

    def committed(self, group_id: str) -> dict[tuple[str, int], OffsetValue]:
        return dict(self.offsets.get(group_id, {}))

    def group_ids(self) -> set[str]:
        return set(self.offsets) | set(self.groups) | set(self.consumer)
