"""Transactions, producer side (KIP-98; KIP-447 for consume-transform-produce): the state
machine of the Java producer's TransactionManager and librdkafka's rdkafka_txnmgr.c.

States (Java's names)::

    UNINITIALIZED --init_transactions--> INITIALIZING --> READY
    READY --begin_transaction--> IN_TRANSACTION
    IN_TRANSACTION --commit_transaction--> COMMITTING_TRANSACTION --> READY
    IN_TRANSACTION | ABORTABLE_ERROR --abort_transaction--> ABORTING_TRANSACTION --> READY
    IN_TRANSACTION | COMMITTING_TRANSACTION --a record or an offset commit failed--> ABORTABLE_ERROR
    any --fenced, not authorized, refused timeout, ...--> FATAL_ERROR (close the producer)

Who talks to whom: the transaction coordinator (FindCoordinator key_type 1) gets
InitProducerId, AddPartitionsToTxn, AddOffsetsToTxn and EndTxn; the *group* coordinator
gets TxnOffsetCommit with the consumer's generation and member id, so a consumer that lost
its partitions in a rebalance cannot commit offsets for them (KIP-447).  Coordinator moves
(NOT_COORDINATOR, COORDINATOR_NOT_AVAILABLE) make the coordinator be looked up again;
CONCURRENT_TRANSACTIONS (the previous transaction's markers are still being written) is
retried after 20 ms, as Java does, instead of the usual retry.backoff.ms.

The engine's sender asks ``partitions_ready`` before it sends a partition's first batch of
a transaction: partitions not yet in the transaction are collected and added with one
AddPartitionsToTxn for all of them (client versions <= 3), their batches held back until
it succeeds.  That is per partition, never per record: a record is only refused while no
transaction is open, by keeping the accumulator's ``closed`` gate shut (its per-record C
path already checks it), so the refusal costs nothing while a transaction is open.

Abortable errors (a batch of the transaction failed, TxnOffsetCommit refused by the group):
unsent batches are dropped, commit raises TransactionAbortableError, the user must abort.
Any failed batch may leave a gap in its partition's sequences, so the abort that follows
bumps the epoch (InitProducerId with the current id and epoch, KIP-360) and sequences start
again at 0; otherwise they continue across transactions, as in Java.

Versions: this client runs transactions as Kafka's transaction version 1 (EndTxn <= 4,
TxnOffsetCommit <= 4, Produce <= 11 for transactional requests); EndTxn 5 / Produce 12
(KIP-890 part 2: an epoch bump per transaction, partitions added implicitly by Produce) are
not used.  INVALID_PRODUCER_EPOCH is fatal (ProducerFencedError) wherever it comes from, as
before KIP-588.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections.abc import Callable, Coroutine, Iterable, Mapping
from typing import TYPE_CHECKING, Any, NoReturn

import kafka_protocol as kp

from .conn import ApiKey
from .errors import (
    FATAL_TRANSACTION_ERRORS,
    ClientClosedError,
    IllegalStateError,
    KafkaError,
    KafkaTimeoutError,
    ProducerFencedError,
    TransactionAbortableError,
    TransactionAbortedError,
    for_code,
)
from .group import ConsumerGroupMetadata, OffsetAndMetadata, TopicPartition

if TYPE_CHECKING:
    from .producer import _Engine

__all__ = ["TransactionManager", "TxnState", "TXN_COORDINATOR"]

log = logging.getLogger("kafka_client.transaction")

TXN_COORDINATOR = 1   # FindCoordinator key_type of a transactional id (0: a group)
_COORDINATOR_ERRORS = {14, 15, 16}  # LOAD_IN_PROGRESS, NOT_AVAILABLE, NOT_COORDINATOR
_CONCURRENT_TRANSACTIONS = 51
_CONCURRENT_BACKOFF = 0.02          # Java's TransactionManager: 20 ms, not retry.backoff.ms
_OPERATION_NOT_ATTEMPTED = 55       # AddPartitionsToTxn: another partition of the request failed
_FENCED = {47, 90}                  # INVALID_PRODUCER_EPOCH, PRODUCER_FENCED


class TxnState(enum.Enum):
    UNINITIALIZED = "UNINITIALIZED"
    INITIALIZING = "INITIALIZING"
    READY = "READY"
    IN_TRANSACTION = "IN_TRANSACTION"
    COMMITTING_TRANSACTION = "COMMITTING_TRANSACTION"
    ABORTING_TRANSACTION = "ABORTING_TRANSACTION"
    ABORTABLE_ERROR = "ABORTABLE_ERROR"
    FATAL_ERROR = "FATAL_ERROR"


# States in which the sender drops unsent batches instead of sending them (Java's Sender:
# ``abortUndrainedBatches`` when the transaction has an abortable error or is aborting).
DROP_STATES = frozenset({TxnState.ABORTABLE_ERROR, TxnState.ABORTING_TRANSACTION, TxnState.FATAL_ERROR})
# States in which records may be sent: new partitions are added to the transaction.
_SENDING = frozenset({TxnState.IN_TRANSACTION, TxnState.COMMITTING_TRANSACTION})


def _partition_codes(topics: Iterable[Any], parts: str, code: str) -> list[int]:
    return [getattr(p, code) for t in topics for p in getattr(t, parts) if getattr(p, code)]


class TransactionManager:
    """One transactional producer's transaction state; runs on the engine's loop (``begin``
    and the gate may be touched from any thread, under the engine's lock)."""

    def __init__(self, engine: _Engine, transactional_id: str, transaction_timeout_ms: int) -> None:
        self.engine = engine
        self.cluster = engine.cluster
        self.transactional_id = transactional_id
        self.transaction_timeout_ms = transaction_timeout_ms
        self.state = TxnState.UNINITIALIZED
        self.last_error: KafkaError | None = None
        self.partitions: set[tuple[str, int]] = set()   # in the transaction at the coordinator
        self._new: set[tuple[str, int]] = set()         # waiting for AddPartitionsToTxn
        self._adding: asyncio.Future[Any] | None = None
        self.groups: set[str] = set()                   # AddOffsetsToTxn done in this transaction
        self.bump_epoch = False                         # a batch failed: bump at the next abort
        self._pending: tuple[str, asyncio.Future[Any]] | None = None  # an operation that timed out
        self._gate()

    # ---- state ----
    def _gate(self) -> None:
        """Let records in only while a transaction is open (see the module docstring)."""
        e = self.engine
        with e.lock:
            e.accum.closed = e.closed or self.state is not TxnState.IN_TRANSACTION

    def _set(self, state: TxnState) -> None:
        with self.engine.lock:
            self.state = state
            self._gate()

    def _abortable_error(self, what: str) -> KafkaError:
        err = TransactionAbortableError(
            f"transactional id {self.transactional_id!r}: cannot {what}: the transaction failed "
            f"({self.last_error}); call abort_transaction()")
        err.__cause__ = self.last_error
        return err

    def _fatal(self, err: KafkaError) -> KafkaError:
        e = self.engine
        with e.lock:
            if self.state is not TxnState.FATAL_ERROR:
                self.last_error = err
                e.fatal = err
                e.accum.fatal = err
                self._set(TxnState.FATAL_ERROR)
        e._wake()
        return self.last_error or err

    def _abortable(self, err: KafkaError) -> None:
        with self.engine.lock:
            if self.state in _SENDING:
                self.last_error = err
                self._set(TxnState.ABORTABLE_ERROR)
        self.engine._wake()

    def _failed(self, exc: KafkaError) -> NoReturn:
        """An operation failed: fenced or another fatal error ends the producer; anything else
        makes the transaction abortable.  Raises the error the user sees."""
        code = exc.error_code
        if code in _FENCED:
            fenced = ProducerFencedError(
                f"transactional id {self.transactional_id!r}: fenced, another producer with this id "
                f"(a newer epoch than {self.engine.producer_epoch}) was initialised ({exc})")
            fenced.__cause__ = exc
            raise self._fatal(fenced)
        if code in FATAL_TRANSACTION_ERRORS:
            raise self._fatal(exc)
        self._abortable(exc)
        raise exc

    def send_refused(self) -> KafkaError:
        """Why a record may not be sent now (the accumulator's gate is shut)."""
        if self.state is TxnState.FATAL_ERROR and self.last_error is not None:
            return self.last_error
        if self.state is TxnState.ABORTABLE_ERROR:
            return self._abortable_error("send")
        if self.state in (TxnState.UNINITIALIZED, TxnState.INITIALIZING):
            hint = "call init_transactions() and begin_transaction() first"
        elif self.state is TxnState.READY:
            hint = "call begin_transaction() first"
        else:
            hint = f"the transaction is {self.state.value}"
        return IllegalStateError(f"transactional id {self.transactional_id!r}: cannot send outside a "
                                 f"transaction: {hint}")

    def _check(self, op: str, allowed: set[TxnState]) -> None:
        if self.engine.closed:
            raise ClientClosedError("producer is closed")
        if self.state is TxnState.FATAL_ERROR and self.last_error is not None:
            raise self.last_error
        if self._pending is not None:
            raise IllegalStateError(f"transactional id {self.transactional_id!r}: {self._pending[0]}() "
                                    f"has not completed: call it again until it does, then {op}()")
        if self.state is TxnState.ABORTABLE_ERROR and TxnState.ABORTABLE_ERROR not in allowed:
            raise self._abortable_error(f"{op}()")
        if self.state not in allowed:
            hints = {TxnState.UNINITIALIZED: "init_transactions() was not called",
                     TxnState.READY: "no transaction is open: call begin_transaction() first",
                     TxnState.IN_TRANSACTION: "a transaction is already open"}
            raise IllegalStateError(f"transactional id {self.transactional_id!r}: {op}() is not allowed "
                                    f"in state {self.state.value}: {hints.get(self.state, '')}".rstrip(": "))

    async def _op(self, op: str, allowed: set[TxnState], state: TxnState,
                  body: Callable[[], Coroutine[Any, Any, None]], timeout: float | None,
                  before: Callable[[], None] | None = None) -> None:
        """Run ``body`` as the one operation in progress, waiting ``timeout`` for it.  Java's
        habit: a call that times out leaves the operation running, and calling the same method
        again waits for it (no second request)."""
        pend = self._pending
        if pend is not None and pend[0] == op:
            fut = pend[1]
        else:
            self._check(op, allowed)
            self._set(state)
            if before is not None:
                before()
            fut = self.engine._background(body())
            fut.add_done_callback(lambda f: f.cancelled() or f.exception())
            self._pending = (op, fut)
        limit = self.engine.cfg.max_block if timeout is None else timeout
        try:
            await asyncio.wait_for(asyncio.shield(fut), limit)
        except TimeoutError:
            raise KafkaTimeoutError(f"transactional id {self.transactional_id!r}: {op}() did not complete "
                                    f"within {limit:.3g}s; call it again to keep waiting") from None
        finally:
            if fut.done() and self._pending is not None and self._pending[1] is fut:
                self._pending = None

    # ---- coordinator requests ----
    async def _call(self, api: int, make: Callable[[int], kp.Message], codes: Callable[[Any], int],
                    what: str, deadline: float, group: str | None = None) -> Any:
        """Send to the transaction (or ``group``'s) coordinator until it answers without an
        error; retriable errors are retried until ``deadline``, the rest raised."""
        key, key_type = (group, 0) if group is not None else (self.transactional_id, TXN_COORDINATOR)
        backoff = self.cluster.retry_backoff
        last: KafkaError | None = None
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                err = KafkaTimeoutError(f"{what} for transactional id {self.transactional_id!r} did not "
                                        f"succeed in time; last error: {last}")
                err.__cause__ = last
                raise err
            try:
                node = await self.cluster.coordinator(key, key_type, timeout=remaining)
                conn = await self.cluster.coordinator_connection(node)
                v = conn.version(api)
                resp = await conn.send(make(v), version=v)
            except KafkaError as exc:
                if not exc.retriable:
                    raise
                last = exc
                self.cluster.coordinator_dead(key, key_type)
                await asyncio.sleep(backoff)
                continue
            code = codes(resp)
            if not code:
                return resp
            last = for_code(code, what)
            if code in _COORDINATOR_ERRORS:
                self.cluster.coordinator_dead(key, key_type)
            elif code == _CONCURRENT_TRANSACTIONS:
                await asyncio.sleep(_CONCURRENT_BACKOFF)
                continue
            elif not last.retriable:
                raise last
            await asyncio.sleep(backoff)

    def _long_deadline(self) -> float:
        cfg = self.engine.cfg
        return time.monotonic() + max(cfg.max_block, cfg.delivery_timeout)

    async def _init_pid(self, bump: bool) -> None:
        e = self.engine

        def make(v: int) -> kp.Message:
            req = kp.InitProducerIdRequest(transactional_id=self.transactional_id,
                                           transaction_timeout_ms=self.transaction_timeout_ms)
            if bump and v >= 3:  # KIP-360: keep the producer id, the coordinator bumps the epoch
                req.producer_id, req.producer_epoch = e.producer_id, e.producer_epoch
            return req

        resp = await self._call(ApiKey.INIT_PRODUCER_ID, make, lambda r: r.error_code, "InitProducerId",
                                self._long_deadline())
        with e.lock:
            e.producer_id = e.accum.producer_id = resp.producer_id
            e.producer_epoch = e.accum.producer_epoch = resp.producer_epoch
            for st in e.parts.values():   # a new epoch (or id) starts every partition's sequences at 0
                st.next_seq = 0
                st.last_acked = -1
        log.info("transactional id %r: producer id %d epoch %d", self.transactional_id, resp.producer_id,
                 resp.producer_epoch)

    # ---- operations ----
    async def init(self, timeout: float | None) -> None:
        async def body() -> None:
            try:
                await self._init_pid(bump=False)
            except KafkaError as exc:
                if exc.error_code in _FENCED or exc.error_code in FATAL_TRANSACTION_ERRORS:
                    self._failed(exc)
                self._set(TxnState.UNINITIALIZED)  # e.g. no coordinator in time: may be called again
                raise
            self._set(TxnState.READY)

        await self._op("init_transactions", {TxnState.UNINITIALIZED}, TxnState.INITIALIZING, body, timeout)

    def begin(self) -> None:
        with self.engine.lock:
            self._check("begin_transaction", {TxnState.READY})
            self._set(TxnState.IN_TRANSACTION)

    async def send_offsets(self, offsets: Mapping[TopicPartition | tuple[str, int], OffsetAndMetadata | int],
                           group_metadata: ConsumerGroupMetadata | str, timeout: float | None) -> None:
        meta = (group_metadata if isinstance(group_metadata, ConsumerGroupMetadata)
                else ConsumerGroupMetadata(group_metadata))
        oam = {TopicPartition(*tp): (om if isinstance(om, OffsetAndMetadata) else OffsetAndMetadata(int(om)))
               for tp, om in offsets.items()}

        # The transaction stays open meanwhile: records may still be sent.
        await self._op("send_offsets_to_transaction", {TxnState.IN_TRANSACTION}, TxnState.IN_TRANSACTION,
                       lambda: self._send_offsets(oam, meta), timeout)

    async def _send_offsets(self, oam: dict[TopicPartition, OffsetAndMetadata], meta: ConsumerGroupMetadata) -> None:
        e = self.engine
        tid = self.transactional_id
        deadline = self._long_deadline()
        try:
            if meta.group_id not in self.groups:
                await self._call(ApiKey.ADD_OFFSETS_TO_TXN, lambda v: kp.AddOffsetsToTxnRequest(
                    transactional_id=tid, producer_id=e.producer_id, producer_epoch=e.producer_epoch,
                    group_id=meta.group_id), lambda r: r.error_code, "AddOffsetsToTxn", deadline)
                self.groups.add(meta.group_id)
            by_topic: dict[str, list[Any]] = {}
            for tp, om in oam.items():
                by_topic.setdefault(tp.topic, []).append(kp.TxnOffsetCommitRequest.TxnOffsetCommitRequestPartition(
                    partition_index=tp.partition, committed_offset=om.offset,
                    committed_leader_epoch=om.leader_epoch, committed_metadata=om.metadata or ""))
            topics = [kp.TxnOffsetCommitRequest.TxnOffsetCommitRequestTopic(name=t, partitions=ps)
                      for t, ps in by_topic.items()]

            def make(v: int) -> kp.Message:
                return kp.TxnOffsetCommitRequest(
                    transactional_id=tid, group_id=meta.group_id, producer_id=e.producer_id,
                    producer_epoch=e.producer_epoch, generation_id=meta.generation_id, member_id=meta.member_id,
                    group_instance_id=meta.group_instance_id, topics=topics)

            await self._call(ApiKey.TXN_OFFSET_COMMIT, make,
                             lambda r: next(iter(_partition_codes(r.topics, "partitions", "error_code")), 0),
                             f"TxnOffsetCommit of group {meta.group_id!r}", deadline, group=meta.group_id)
        except KafkaError as exc:
            self._failed(exc)

    # ---- partitions (called by the engine's sender, under its lock) ----
    def partitions_ready(self, tps: list[tuple[str, int]]) -> None:
        """``tps`` have batches to send but are not in the transaction yet: add them (one
        AddPartitionsToTxn for all that are waiting; the sender is woken when it succeeds)."""
        self._new.update(tps)
        if self.state in _SENDING and (self._adding is None or self._adding.done()):
            self._adding = self.engine._background(self._add_partitions())
            self._adding.add_done_callback(lambda f: f.cancelled() or f.exception())

    async def _add_partitions(self) -> None:
        e = self.engine
        tid = self.transactional_id
        while self.state in _SENDING:
            with e.lock:
                todo = sorted(self._new - self.partitions)
                self._new.clear()
            if not todo:
                return
            by_topic: dict[str, list[int]] = {}
            for t, p in todo:
                by_topic.setdefault(t, []).append(p)
            topics = [kp.AddPartitionsToTxnRequest.AddPartitionsToTxnTopic(name=t, partitions=ps)
                      for t, ps in by_topic.items()]

            def make(v: int, topics: list[Any] = topics) -> kp.Message:
                return kp.AddPartitionsToTxnRequest(v3_and_below_transactional_id=tid,
                                                    v3_and_below_producer_id=e.producer_id,
                                                    v3_and_below_producer_epoch=e.producer_epoch,
                                                    v3_and_below_topics=topics)

            def codes(r: Any) -> int:
                cs = _partition_codes(r.results_by_topic_v3_and_below, "results_by_partition", "partition_error_code")
                real = [c for c in cs if c != _OPERATION_NOT_ATTEMPTED]
                return (real or cs or [r.error_code])[0]

            try:
                await self._call(ApiKey.ADD_PARTITIONS_TO_TXN, make, codes, "AddPartitionsToTxn",
                                 time.monotonic() + e.cfg.delivery_timeout)
            except KafkaError as exc:
                try:
                    self._failed(exc)
                except KafkaError as raised:
                    log.warning("transactional id %r: adding partitions %s failed: %s", tid, todo, raised)
                return
            with e.lock:
                self.partitions.update(todo)
            e._wake()

    def batch_failed(self, err: KafkaError) -> None:
        """A batch of the transaction failed for good (under the engine's lock)."""
        if self.state is TxnState.FATAL_ERROR:
            return
        self.bump_epoch = True  # its sequences may or may not have been written
        if err.error_code in _FENCED or err.error_code in FATAL_TRANSACTION_ERRORS:
            try:
                self._failed(err)
            except KafkaError:
                pass
        else:
            self._abortable(err)

    def drop_error(self) -> KafkaError:
        if self.state is TxnState.ABORTING_TRANSACTION or self.last_error is None:
            return TransactionAbortedError(f"transactional id {self.transactional_id!r}: the transaction "
                                           "was aborted before the record was sent")
        return self.last_error

    # ---- ending ----
    async def commit(self, timeout: float | None) -> None:
        await self._op("commit_transaction", {TxnState.IN_TRANSACTION}, TxnState.COMMITTING_TRANSACTION,
                       lambda: self._end(True), timeout)

    async def abort(self, timeout: float | None) -> None:
        await self._op("abort_transaction", {TxnState.IN_TRANSACTION, TxnState.ABORTABLE_ERROR},
                       TxnState.ABORTING_TRANSACTION, lambda: self._end(False), timeout,
                       before=lambda: self.engine.drop_unsent(self.drop_error()))

    async def _end(self, commit: bool) -> None:
        e = self.engine
        # Commit: everything appended is sent and acknowledged first (Java's flush in
        # commitTransaction).  Abort: unsent batches were dropped; in-flight ones settle.
        await e.flush()
        if commit and self.state is not TxnState.COMMITTING_TRANSACTION:
            if self.state is TxnState.FATAL_ERROR and self.last_error is not None:
                raise self.last_error
            raise self._abortable_error("commit")
        try:
            if self.partitions or self.groups:
                await self._call(ApiKey.END_TXN, lambda v: kp.EndTxnRequest(
                    transactional_id=self.transactional_id, producer_id=e.producer_id,
                    producer_epoch=e.producer_epoch, committed=commit), lambda r: r.error_code,
                    "EndTxn", self._long_deadline())
            if self.bump_epoch and not commit:
                await self._init_pid(bump=True)
        except KafkaError as exc:
            with e.lock:
                if self.state is not TxnState.FATAL_ERROR and exc.error_code not in _FENCED \
                        and exc.error_code not in FATAL_TRANSACTION_ERRORS:
                    # Not fenced: the user may abort (again); a commit's outcome is unknown.
                    self.last_error = exc
                    self._set(TxnState.ABORTABLE_ERROR)
            if self.state is TxnState.ABORTABLE_ERROR:
                raise
            self._failed(exc)
        with e.lock:
            # Nothing is queued or in flight: the next sequence of each partition follows its
            # last acknowledged one (dropped batches had taken sequences that were never written).
            for st in e.parts.values():
                if not st.queue and not st.inflight and st.open is None:
                    st.next_seq = (st.last_acked + 1) & 0x7FFFFFFF
            self.partitions.clear()
            self._new.clear()
            self.groups.clear()
            if not commit:
                self.bump_epoch = False
            self.last_error = None
            self._set(TxnState.READY)
