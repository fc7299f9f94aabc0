"""The transaction coordinator: Kafka 4.x's TransactionCoordinator and TransactionStateManager
with TV1 (KIP-98/KIP-447) and TV2 (KIP-890 part 2) semantics.

Which version a request is decides how it ends: EndTxn v5 (a client that saw
``transaction.version`` 2 finalized) bumps the epoch at PrepareCommit/PrepareAbort
and answers the epoch to go on with (``_end_txn_v2``; at an exhausted epoch a new
producer id, written as NextProducerId and taken over at Complete*), EndTxn v0-4
keeps it; AddPartitionsToTxn v4+ without ``verify_only`` is a partition leader
adding a TV2 producer's partition (Produce v12, TxnOffsetCommit v5).  Values are
written as TransactionLogValue v1 once ``transaction.version`` >= 1.

It owns the transactional ids of the ``__transaction_state`` partitions this broker
leads (all of them on a single node): ``load_partition`` reads one and makes it
served, ``unload_partition`` forgets it.  Requests for an id of a partition being
loaded answer COORDINATOR_LOAD_IN_PROGRESS, of a partition not led here
NOT_COORDINATOR.

Every transition (``state.py``) is appended as one record and applied once the
``append`` callable returned (the wiring waits for the flush policy and, in a
cluster, for the ISR: acks=all).  EndTxn answers once PrepareCommit/PrepareAbort
is written, as Kafka does; the markers then go out through ``markers``
(``markers.py``) and CompleteCommit/CompleteAbort is written after the last one
was acknowledged.  Until then the id answers CONCURRENT_TRANSACTIONS to
InitProducerId, AddPartitionsToTxn and EndTxn: clients retry.  A loaded
PrepareCommit/PrepareAbort (a restart, a failover) resumes its markers.

Two timers (``call_later``, re-armed after each run): every
``transaction.abort.timed.out.transaction.cleanup.interval.ms`` the transactions
open longer than their timeout are aborted with a bumped epoch (the producer that
went away is fenced); every ``transaction.remove.expired.transaction.cleanup.interval.ms``
the ids idle for ``transactional.id.expiration.ms`` are tombstoned.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from kafka_protocol.errors import ErrorCode as E

from ..groups.offsets_store import build_batch, decode_records
from ..log import AppendFailed
from . import records as R
from .markers import MarkersAbandoned, MarkerSender
from .state import (
    COMPLETE_ABORT,
    COMPLETE_COMMIT,
    DEAD,
    EMPTY,
    EXPIRATION_ALLOWED,
    MAX_EPOCH,
    NO_PRODUCER_EPOCH,
    NO_PRODUCER_ID,
    ONGOING,
    PREPARE_ABORT,
    PREPARE_COMMIT,
    PREPARE_EPOCH_FENCE,
    STATE_BY_NAME,
    STATE_NAMES,
    TV0,
    TV2,
    Transit,
    TxnMetadata,
    is_epoch_exhausted,
)

log = logging.getLogger("kafka_broker.txn")
TOPIC = "__transaction_state"

_DEFAULTS = {
    "transaction.state.log.num.partitions": 50,
    "transaction.max.timeout.ms": 900000,
    "transaction.abort.timed.out.transaction.cleanup.interval.ms": 10000,
    "transaction.remove.expired.transaction.cleanup.interval.ms": 3600000,
    "transactional.id.expiration.ms": 604800000,
    "transaction.version": 0,
}

# TransactionStateManager.appendTransactionToLog: what a failed append tells the client.
_APPEND_ERRORS: dict[int, int] = {
    E.UNKNOWN_TOPIC_OR_PARTITION: E.COORDINATOR_NOT_AVAILABLE, E.NOT_ENOUGH_REPLICAS: E.COORDINATOR_NOT_AVAILABLE,
    E.NOT_ENOUGH_REPLICAS_AFTER_APPEND: E.COORDINATOR_NOT_AVAILABLE, E.REQUEST_TIMED_OUT: E.COORDINATOR_NOT_AVAILABLE,
    E.NOT_LEADER_OR_FOLLOWER: E.NOT_COORDINATOR, E.KAFKA_STORAGE_ERROR: E.NOT_COORDINATOR,
}


@dataclass(frozen=True, slots=True)
class EndResult:
    """EndTxn's answer: the error, and the producer id and epoch the client continues with."""

    error: int
    producer_id: int = NO_PRODUCER_ID
    producer_epoch: int = NO_PRODUCER_EPOCH


@dataclass(frozen=True, slots=True)
class InitResult:
    error: int
    producer_id: int = NO_PRODUCER_ID
    producer_epoch: int = NO_PRODUCER_EPOCH


class TxnCoordinator:
    """``append(partition, batch)``: write to ``__transaction_state`` (raises ``AppendFailed``);
    ``read(partition)``: its raw log from the start, whole batches (``LogBackend.read``);
    ``allocate_producer_id()``: a fresh producer id; ``markers``: the marker sender;
    ``config``: ``get(key)``; ``clock`` in seconds, ``scheduler`` with ``call_later``.
    """

    def __init__(self, *, config: Any, num_partitions: int,
                 append: Callable[[int, bytearray], Awaitable[None]],
                 read: Callable[[int], Iterator[bytes]],
                 allocate_producer_id: Callable[[], Awaitable[int]],
                 markers: MarkerSender,
                 clock: Callable[[], float] = time.time, scheduler: Any = None) -> None:
        self.config = config
        self.num_partitions = num_partitions
        self._append = append
        self._read = read
        self._allocate = allocate_producer_id
        self.markers = markers
        self._clock = clock
        self._scheduler = scheduler
        self.txns: dict[str, TxnMetadata] = {}
        self.epochs: dict[int, int] = {}         # served partition -> coordinator epoch
        self.loading: dict[int, int] = {}        # partition being loaded -> its coordinator epoch
        self._tasks: set[asyncio.Task[Any]] = set()
        self._timers: list[Any] = []
        self._completing: dict[str, asyncio.Task[Any]] = {}    # id -> its markers and Complete* write
        self.active = False

    # -- plumbing -------------------------------------------------------------------------

    def cfg(self, key: str) -> int:
        v = self.config.get(key) if self.config is not None else None
        return int(v) if v is not None else _DEFAULTS[key]

    @property
    def transaction_version(self) -> int:
        """The finalized ``transaction.version`` (features.py): what values are written as and
        how the coordinator's own aborts (timeouts) end."""
        return self.cfg("transaction.version")

    def now_ms(self) -> int:
        return int(self._clock() * 1000)

    def partition_for(self, transactional_id: str) -> int:
        return R.partition_for(transactional_id, self.num_partitions)

    def spawn(self, coro: Awaitable[Any]) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("transaction coordinator background task failed", exc_info=task.exception())

    def start(self) -> None:
        self.active = True
        self._arm(self.cfg("transaction.abort.timed.out.transaction.cleanup.interval.ms"), self.abort_timed_out)
        self._arm(self.cfg("transaction.remove.expired.transaction.cleanup.interval.ms"), self.expire_ids)

    def _arm(self, interval_ms: int, job: Callable[[], Awaitable[Any]]) -> None:
        sched = self._scheduler or asyncio.get_running_loop()
        slot = len(self._timers)
        self._timers.append(None)

        def fire() -> None:
            async def run() -> None:
                try:
                    await job()
                finally:
                    if self.active:
                        self._timers[slot] = sched.call_later(interval_ms / 1000, fire)
            self.spawn(run())
        self._timers[slot] = sched.call_later(interval_ms / 1000, fire)

    def close(self) -> None:
        self.active = False
        for h in self._timers:
            if h is not None:
                h.cancel()
        for t in list(self._tasks):
            t.cancel()

    # -- ownership: the partitions of __transaction_state led here --------------------------

    def unavailable(self, transactional_id: str) -> int:
        p = self.partition_for(transactional_id)
        if p in self.loading:
            return E.COORDINATOR_LOAD_IN_PROGRESS
        if p not in self.epochs or not self.active:
            return E.NOT_COORDINATOR
        return E.NONE

    def read_partition(self, partition: int) -> dict[str, TxnMetadata]:
        """The last value of every transactional id of one partition (tombstones remove it).
        Blocking: the caller runs it in a worker thread."""
        out: dict[str, TxnMetadata] = {}
        bad = 0
        for chunk in self._read(partition):
            for key, value in decode_records(chunk):
                if key is None:
                    continue
                try:
                    tid = R.decode_key(bytes(key))
                    if tid is None:
                        continue
                    if value is None:
                        out.pop(tid, None)
                    else:
                        out[tid] = TxnMetadata.from_log(tid, R.decode_value(bytes(value)))
                except (R.RecordFormatError, ValueError) as e:
                    bad += 1
                    log.warning("%s-%d: skipping a record: %s", TOPIC, partition, e)
        if bad:
            log.warning("%s-%d: %d undecodable record(s) skipped", TOPIC, partition, bad)
        return out

    async def load_partition(self, partition: int, coordinator_epoch: int) -> int:
        """Become the coordinator of one partition: read it, serve its ids, and resume the
        markers of every transaction that was left in PrepareCommit/PrepareAbort."""
        self.unload_partition(partition)
        self.loading[partition] = coordinator_epoch
        try:
            loaded = await asyncio.get_running_loop().run_in_executor(None, self.read_partition, partition)
        except BaseException:
            self.loading.pop(partition, None)
            raise
        if self.loading.get(partition) != coordinator_epoch:
            return 0        # unloaded (or loaded again) meanwhile
        del self.loading[partition]
        self.txns.update(loaded)
        self.epochs[partition] = coordinator_epoch
        for md in loaded.values():
            if md.state in (PREPARE_COMMIT, PREPARE_ABORT):
                log.info("transactional id %s: resuming the %s markers of producer %d epoch %d",
                         md.transactional_id, "commit" if md.state == PREPARE_COMMIT else "abort",
                         md.producer_id, md.producer_epoch)
                self._send_markers(md, coordinator_epoch)
        return len(loaded)

    def unload_partition(self, partition: int) -> list[str]:
        self.loading.pop(partition, None)
        self.epochs.pop(partition, None)
        gone = [tid for tid in self.txns if self.partition_for(tid) == partition]
        for tid in gone:
            del self.txns[tid]
        for tid in gone:
            task = self._completing.pop(tid, None)
            if task is not None:
                task.cancel()    # the next coordinator of the partition resumes these markers
        return gone

    # -- writing a transition ---------------------------------------------------------------

    async def _write(self, md: TxnMetadata, t: Transit, coordinator_epoch: int) -> int:
        """Append ``t`` and apply it; the client's error code (Kafka's appendTransactionToLog)."""
        tid = md.transactional_id
        p = self.partition_for(tid)
        # Kafka writes TransactionLogValue v1 (with the KIP-890 tagged fields) once
        # transaction.version >= 1 is finalized, v0 before (TransactionVersion.transactionLogValueVersion)
        value = None if t.state == DEAD else R.encode_value(t.log_value(), 1 if self.transaction_version >= 1 else 0)
        batch = build_batch([(R.encode_key(tid), value)], self.now_ms())
        try:
            await self._append(p, batch)
        except AppendFailed as e:
            md.abandon()
            code = _APPEND_ERRORS.get(e.error_code, E.UNKNOWN_SERVER_ERROR)
            log.info("transactional id %s: writing %s failed (%s): answering %s", tid, STATE_NAMES[t.state], e,
                     E.get(code).name)
            return code
        except Exception as e:  # noqa: BLE001 - an append that fails in another way is not a coordinator
            md.abandon()
            log.warning("transactional id %s: writing %s failed: %s", tid, STATE_NAMES[t.state], e)
            return E.COORDINATOR_NOT_AVAILABLE
        if self.epochs.get(p) != coordinator_epoch or self.txns.get(tid) is not md:
            md.abandon()
            return E.NOT_COORDINATOR     # the partition moved away while the append was in flight
        if t.state == DEAD:
            del self.txns[tid]
            md.pending = None
            return E.NONE
        md.complete(t)
        return E.NONE

    # -- InitProducerId (22) ------------------------------------------------------------------

    async def init_producer_id(self, tid: str, timeout_ms: int,
                               expected: tuple[int, int] | None = None) -> InitResult:
        if not tid:
            return InitResult(E.INVALID_REQUEST)
        if not 0 < timeout_ms <= self.cfg("transaction.max.timeout.ms"):
            return InitResult(E.INVALID_TRANSACTION_TIMEOUT)
        if err := self.unavailable(tid):
            return InitResult(err)
        md = self.txns.get(tid)
        if md is None:
            pid = await self._allocate()
            if err := self.unavailable(tid):
                return InitResult(err)
            md = self.txns.setdefault(tid, TxnMetadata(tid, pid, timeout_ms=timeout_ms, state=EMPTY,
                                                       last_update_ms=self.now_ms()))
        coordinator_epoch = self.epochs[self.partition_for(tid)]
        new_pid: int | None = None
        if (md.pending is None and md.state in (EMPTY, COMPLETE_COMMIT, COMPLETE_ABORT)
                and is_epoch_exhausted(md.producer_epoch)
                and (expected is None or expected[1] == md.producer_epoch)):
            new_pid = await self._allocate()
            if (err := self.unavailable(tid)) or self.txns.get(tid) is not md:
                return InitResult(err or E.NOT_COORDINATOR)
        got = self._prepare_init(md, timeout_ms, expected, new_pid)
        if isinstance(got, int):
            return InitResult(got)
        if got.state == PREPARE_EPOCH_FENCE:
            # Abort the ongoing transaction first (with the bumped epoch, so its producer is
            # fenced); the client is told to retry, and its retry bumps the epoch again.
            err = (await self.end_txn(tid, got.producer_id, got.producer_epoch, commit=False, from_client=False,
                                      client_tv=md.client_tv)).error
            if md.pending == PREPARE_EPOCH_FENCE:
                md.abandon()         # refused before the abort began: nothing is pending any more
            return InitResult(err or E.CONCURRENT_TRANSACTIONS)
        err = await self._write(md, got, coordinator_epoch)
        if err:
            return InitResult(err)
        log.info("initialized transactional id %s with producer id %d epoch %d on %s-%d", tid, md.producer_id,
                 md.producer_epoch, TOPIC, self.partition_for(tid))
        return InitResult(E.NONE, md.producer_id, md.producer_epoch)

    def _prepare_init(self, md: TxnMetadata, timeout_ms: int, expected: tuple[int, int] | None,
                      new_pid: int | None) -> Transit | int:
        """Kafka's prepareInitProducerIdTransit."""
        if md.pending is not None:
            return E.CONCURRENT_TRANSACTIONS
        if expected is not None and not (
                md.producer_epoch == NO_PRODUCER_EPOCH or expected[0] == md.producer_id
                or (expected[0] == md.last_producer_id and is_epoch_exhausted(expected[1]))):
            return E.PRODUCER_FENCED
        if md.state in (PREPARE_ABORT, PREPARE_COMMIT):
            return E.CONCURRENT_TRANSACTIONS
        if md.state in (COMPLETE_ABORT, COMPLETE_COMMIT, EMPTY):
            if new_pid is not None:
                return md.prepare_producer_id_rotation(new_pid, timeout_ms, self.now_ms(), expected is not None)
            return md.prepare_increment_epoch(timeout_ms, None if expected is None else expected[1], self.now_ms())
        if md.state == ONGOING:
            return md.prepare_fence_epoch()
        raise RuntimeError(f"transactional id {md.transactional_id} found in state {md.state_name}")

    # -- AddPartitionsToTxn (24) / AddOffsetsToTxn (25) ----------------------------------------

    def _lookup(self, tid: str, producer_id: int, allow_previous: bool = False) -> TxnMetadata | int:
        """The id's metadata if this coordinator serves it and ``producer_id`` owns it (or, with
        ``allow_previous``, owned it before the epochs ran out: a TV2 EndTxn retry), else the error."""
        if not tid:
            return E.INVALID_REQUEST
        if err := self.unavailable(tid):
            return err
        md = self.txns.get(tid)
        if md is None or (md.producer_id != producer_id
                          and not (allow_previous and md.last_producer_id == producer_id)):
            return E.INVALID_PRODUCER_ID_MAPPING
        return md

    async def add_partitions(self, tid: str, producer_id: int, epoch: int, partitions: set[tuple[str, int]],
                             client_tv: int = TV0) -> int:
        """AddPartitionsToTxn v0-3 and AddOffsetsToTxn from clients (TV0/TV1), and v4+ without
        ``verify_only`` from a partition leader adding a TV2 producer's partition implicitly."""
        md = self._lookup(tid, producer_id)
        if isinstance(md, int):
            return md
        if md.producer_epoch != epoch:
            log.info("transactional id %s: partitions added by producer %d epoch %d, the current epoch is %d (%s): "
                     "fenced", tid, producer_id, epoch, md.producer_epoch, md.state_name)
            return E.PRODUCER_FENCED
        if md.pending is not None or md.state in (PREPARE_COMMIT, PREPARE_ABORT):
            return E.CONCURRENT_TRANSACTIONS
        if md.state == ONGOING and partitions <= md.partitions:
            return E.NONE
        coordinator_epoch = self.epochs[self.partition_for(tid)]
        return await self._write(md, md.prepare_add_partitions(partitions, self.now_ms(), client_tv),
                                 coordinator_epoch)

    def verify_partitions(self, tid: str, producer_id: int, epoch: int,
                          partitions: Iterable[tuple[str, int]]) -> dict[tuple[str, int], int]:
        """AddPartitionsToTxn v4+ ``verify_only`` (KIP-890 part 1, asked by partition leaders
        before a transactional append): is each partition in the ongoing transaction?"""
        parts = list(partitions)
        md = self._lookup(tid, producer_id)
        if isinstance(md, int):
            err = md
        elif md.producer_epoch != epoch:
            err = E.PRODUCER_FENCED
        elif md.state in (PREPARE_COMMIT, PREPARE_ABORT):
            err = E.CONCURRENT_TRANSACTIONS
        else:
            return {tp: E.NONE if tp in md.partitions else E.TRANSACTION_ABORTABLE for tp in parts}
        return dict.fromkeys(parts, err)

    # -- EndTxn (26) ------------------------------------------------------------------------------

    async def end_txn(self, tid: str, producer_id: int, epoch: int, commit: bool, from_client: bool = True,
                      client_tv: int = TV0) -> EndResult:
        """Kafka's endTransaction: write PrepareCommit/PrepareAbort, answer, send the markers.
        The answer carries the producer id and epoch the client goes on with (EndTxn v5): with
        TV2 the bumped ones (or, at an exhausted epoch, the next producer id at 0)."""
        md = self._lookup(tid, producer_id, allow_previous=client_tv >= TV2)
        if isinstance(md, int):
            return EndResult(md)
        if client_tv >= TV2 or (not from_client and md.client_tv >= TV2):
            return await self._end_txn_v2(md, producer_id, epoch, commit, from_client)
        if (from_client and epoch != md.producer_epoch) or epoch < md.producer_epoch:
            return EndResult(E.PRODUCER_FENCED)
        if md.pending is not None and md.pending != PREPARE_EPOCH_FENCE:
            return EndResult(E.CONCURRENT_TRANSACTIONS)
        wanted = PREPARE_COMMIT if commit else PREPARE_ABORT
        done = COMPLETE_COMMIT if commit else COMPLETE_ABORT
        if md.state != ONGOING:
            if md.state == done:
                return self._current(md)          # a retry of an EndTxn that completed
            if md.state == wanted:
                return EndResult(E.CONCURRENT_TRANSACTIONS)
            log.info("transactional id %s is %s: cannot %s", tid, md.state_name, "commit" if commit else "abort")
            return EndResult(E.INVALID_TXN_STATE)
        fence = False
        if not commit and md.pending == PREPARE_EPOCH_FENCE:
            fence = True
            md.pending = None
            md.producer_epoch = epoch
            md.last_producer_epoch = NO_PRODUCER_EPOCH
        return await self._write_prepare(md, md.prepare_abort_or_commit(wanted, self.now_ms(), TV0), fence, epoch)

    async def _end_txn_v2(self, md: TxnMetadata, producer_id: int, epoch: int, commit: bool,
                          from_client: bool) -> EndResult:
        """Kafka's endTransaction with transaction version 2: the epoch is bumped at every end, so
        a retry is recognised by the epoch one below (or, after the producer id moved on, by the
        old id at the exhausted epoch)."""
        tid = md.transactional_id
        fence = md.pending == PREPARE_EPOCH_FENCE
        retry_on_overflow = (not fence and md.last_producer_id == producer_id and epoch == MAX_EPOCH - 1
                             and md.producer_epoch == 0)
        retry_on_bump = not fence and md.producer_epoch == epoch + 1
        if fence:
            valid = (not from_client or epoch == md.producer_epoch) and epoch >= md.producer_epoch
        elif md.state in (PREPARE_COMMIT, PREPARE_ABORT):
            valid = retry_on_bump
        elif md.state in (COMPLETE_COMMIT, COMPLETE_ABORT):
            valid = retry_on_bump or retry_on_overflow or epoch == md.producer_epoch
        else:
            valid = epoch == md.producer_epoch
        if md.producer_id != producer_id and not retry_on_overflow:
            return EndResult(E.INVALID_PRODUCER_ID_MAPPING)
        if not valid:
            return EndResult(E.PRODUCER_FENCED)
        if md.pending is not None and not fence:
            return EndResult(E.CONCURRENT_TRANSACTIONS)
        retry = retry_on_bump or retry_on_overflow
        action = "commit" if commit else "abort"
        if md.state == ONGOING:
            wanted = PREPARE_COMMIT if commit else PREPARE_ABORT
        elif md.state == COMPLETE_COMMIT and commit and retry:
            return self._current(md)
        elif md.state == COMPLETE_ABORT and not commit and retry:
            return self._current(md)
        elif md.state in (EMPTY, COMPLETE_COMMIT, COMPLETE_ABORT) and not commit and not retry:
            wanted = PREPARE_ABORT          # an abort with nothing added: markers for no partition
        elif md.state in (PREPARE_COMMIT, PREPARE_ABORT) and commit == (md.state == PREPARE_COMMIT):
            return EndResult(E.CONCURRENT_TRANSACTIONS)
        else:
            log.info("transactional id %s is %s: cannot %s", tid, md.state_name, action)
            return EndResult(E.INVALID_TXN_STATE)
        next_pid = NO_PRODUCER_ID
        if not fence and is_epoch_exhausted(md.producer_epoch):
            next_pid = await self._allocate()
            if (err := self.unavailable(tid)) or self.txns.get(tid) is not md:
                return EndResult(err or E.NOT_COORDINATOR)
            if md.pending is not None:
                return EndResult(E.CONCURRENT_TRANSACTIONS)
        if fence:
            md.pending = None
            md.producer_epoch = epoch
            md.last_producer_epoch = NO_PRODUCER_EPOCH
        t = md.prepare_abort_or_commit(wanted, self.now_ms(), TV2, next_pid)
        return await self._write_prepare(md, t, fence, epoch)

    async def _write_prepare(self, md: TxnMetadata, t: Transit, fence: bool, epoch: int) -> EndResult:
        tid = md.transactional_id
        coordinator_epoch = self.epochs[self.partition_for(tid)]
        err = await self._write(md, t, coordinator_epoch)
        if err:
            if fence and self.txns.get(tid) is md:
                md.failed_epoch_fence = True
                log.warning("transactional id %s: the epoch fence was not written (%s); epoch %d was not handed out",
                            tid, E.get(err).name, epoch)
            return EndResult(err)
        complete = self._send_markers(md, coordinator_epoch)
        return EndResult(E.NONE, complete.producer_id, complete.producer_epoch)

    @staticmethod
    def _current(md: TxnMetadata) -> EndResult:
        return EndResult(E.NONE, md.producer_id, md.producer_epoch)

    def _send_markers(self, md: TxnMetadata, coordinator_epoch: int) -> Transit:
        """Markers for the Prepare* state ``md`` is in, then Complete* (returned); ``md`` stays
        pending (CONCURRENT_TRANSACTIONS to its requests) until that is written."""
        complete = md.prepare_complete(self.now_ms())
        commit = md.state == PREPARE_COMMIT
        tid = md.transactional_id
        task = self.spawn(self._complete(md, complete, commit, coordinator_epoch))
        self._completing[tid] = task

        def done(t: asyncio.Task[Any]) -> None:
            if self._completing.get(tid) is t:
                del self._completing[tid]
        task.add_done_callback(done)
        return complete

    async def _complete(self, md: TxnMetadata, complete: Transit, commit: bool, coordinator_epoch: int) -> None:
        tid = md.transactional_id
        try:
            await self.markers.write(tid, md.producer_id, md.producer_epoch, commit, coordinator_epoch,
                                     set(md.partitions))
        except MarkersAbandoned as e:
            log.warning("transactional id %s: markers abandoned: %s", tid, e)
            if self.txns.get(tid) is md:
                md.abandon()
            return
        backoff = 0.1
        while self.txns.get(tid) is md and self.epochs.get(self.partition_for(tid)) == coordinator_epoch:
            err = await self._write(md, complete, coordinator_epoch)
            if not err:
                log.debug("transactional id %s: %s", tid, md.state_name)
                return
            if err in (E.NOT_COORDINATOR, E.COORDINATOR_LOAD_IN_PROGRESS):
                return          # the new coordinator loads PrepareX and completes it
            md.pending = complete.state       # _write abandoned it: keep the id busy and retry
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 2.0)

    # -- timers ----------------------------------------------------------------------------------

    async def abort_timed_out(self) -> None:
        """Abort, with a bumped epoch, every transaction open longer than its timeout."""
        now = self.now_ms()
        expired = [md for md in self.txns.values()
                   if md.state == ONGOING and md.pending is None and md.start_ms + md.timeout_ms < now]
        for md in expired:
            tid = md.transactional_id
            if self.txns.get(tid) is not md or md.pending is not None or md.state != ONGOING:
                continue
            fence = md.prepare_fence_epoch()
            log.info("transactional id %s: aborting the transaction of producer %d open for %d ms (timeout %d ms)",
                     tid, md.producer_id, now - md.start_ms, md.timeout_ms)
            err = (await self.end_txn(tid, fence.producer_id, fence.producer_epoch, commit=False, from_client=False,
                                      client_tv=self.transaction_version)).error
            if err and self.txns.get(tid) is md and md.pending == PREPARE_EPOCH_FENCE:
                md.abandon()
            if err not in (E.NONE, E.INVALID_PRODUCER_ID_MAPPING, E.PRODUCER_FENCED, E.CONCURRENT_TRANSACTIONS):
                log.warning("transactional id %s: rollback of the timed out transaction failed: %s", tid,
                            E.get(err).name)

    async def expire_ids(self) -> None:
        """Tombstone the ids whose last transaction ended ``transactional.id.expiration.ms`` ago."""
        cutoff = self.now_ms() - self.cfg("transactional.id.expiration.ms")
        for md in [m for m in self.txns.values()
                   if m.pending is None and m.state in EXPIRATION_ALLOWED and m.last_update_ms <= cutoff]:
            p = self.partition_for(md.transactional_id)
            if p not in self.epochs or md.pending is not None:
                continue
            if not await self._write(md, md.prepare_dead(), self.epochs[p]):
                log.info("transactional id %s expired (idle since %d)", md.transactional_id, md.last_update_ms)

    # -- DescribeTransactions (65) / ListTransactions (66) ------------------------------------

    def describe(self, tid: str) -> tuple[int, TxnMetadata | None]:
        if not self.active:
            return E.COORDINATOR_NOT_AVAILABLE, None
        if not tid:
            return E.INVALID_REQUEST, None
        if err := self.unavailable(tid):
            return err, None
        md = self.txns.get(tid)
        if md is None or md.state == DEAD:
            return E.TRANSACTIONAL_ID_NOT_FOUND, None
        return E.NONE, md

    def list(self, states: Iterable[str], producer_ids: Iterable[int],
             duration_ms: int = -1) -> tuple[int, list[str], list[TxnMetadata]]:
        """(error, unknown state filters, matching transactions) as Kafka's listTransactionStates."""
        if not self.active:
            return E.COORDINATOR_NOT_AVAILABLE, [], []
        if self.loading:
            return E.COORDINATOR_LOAD_IN_PROGRESS, [], []
        names = list(states)
        unknown = [n for n in names if n not in STATE_BY_NAME]
        wanted = {STATE_BY_NAME[n] for n in names if n in STATE_BY_NAME}
        pids = set(producer_ids)
        now = self.now_ms()
        out = [md for md in self.txns.values()
               if md.state != DEAD and (not pids or md.producer_id in pids) and (not names or md.state in wanted)
               and (duration_ms < 0 or now - md.start_ms > duration_ms)]
        return E.NONE, unknown, out
