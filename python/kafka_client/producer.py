"""Producer: one engine, an asyncio API (AIOProducer) and a thread-safe sync API (Producer).

Records go into one open batch per partition, a kafka_core._accum.Batch (C
builder over its own buffer, varint records; header, sequence stamp and
CRC-32C when the sender seals it).  A batch is sent when
it is full, when linger.ms passed, or on flush; one Produce request per
broker carries at most one batch per partition, and up to
max.in.flight.requests.per.connection requests are pipelined per broker.

With linger.ms=0 the AIO producer sends from the caller's task right after
opening a batch (no hop through a sender task).  When that batch is the only
thing to send and nothing is in flight to its leader, ``send_direct`` seals and
sends it at once, without the general drain over every partition; the sync
Producer does the same from the caller's thread, writing the frame with the
connection's thread-safe direct write (plaintext without SASL, see
kafka_client.conn), so an awaited sync send costs no hop to the I/O thread on
the way out.  Otherwise the sync wake-up callback on the I/O thread drains at
once, without waking the sender task.  Responses, retries and errors are
handled on the loop either way.  A batch the broker refuses as MESSAGE_TOO_LARGE is
split in two (recursively) and resent in its place, keeping its sequences.

Idempotence (default with acks=all, as in the Java client): InitProducerId
once, then every batch carries (producerId, epoch, baseSequence) with
per-partition sequences.  Retries keep their sequence (the broker answers a
duplicate with the original offset), and a retried batch is only re-sent
once no later batch of its partition is in flight, so retries never reorder.
OUT_OF_ORDER_SEQUENCE_NUMBER for a batch that is not the next expected one is
retried (an earlier batch failed first); for the next expected one it is
fatal for that batch.  UNKNOWN_PRODUCER_ID for the next expected batch means
the broker lost the producer state: like the Java client we bump the epoch
(InitProducerId with the current id/epoch, KIP-360), restart sequences at 0
and resend.  Any batch that fails for good leaves a gap in its partition's
sequences, so the epoch is bumped then too, and pending batches are
re-stamped with the new epoch and sequences.

Transactions (``transactional_id``; the state machine is kafka_client.transaction):
the producer is idempotent, gets its id and epoch from ``init_transactions`` (the
transaction coordinator) rather than at start, marks every batch transactional and names
the transactional id in every Produce request (v11 at most).  The sender holds back a
partition's batches until AddPartitionsToTxn put the partition in the transaction, never
bumps the epoch itself (a failed batch makes the transaction abortable; the abort bumps),
and drops unsent batches while the transaction is failed or aborting.

The per-record path is one C call (``kafka_core._accum.Accumulator``): it
picks the partition (explicit, murmur2 of the key, or sticky), appends to
that partition's open batch and returns; Python runs once per batch.  The
sync ``Producer`` appends from the caller's thread under the accumulator's
lock (no thread hop per record); its I/O thread only sends closed batches.

Three ways to send, from cheapest to most convenient:

- ``produce(topic, value, key=..., on_delivery=None)``: fire-and-forget, or a
  callback ``on_delivery(err, metadata)`` per record; returns None.  No
  future is created.  Delivery reports are settled per batch, one call per
  batch (callbacks run on the producer's I/O thread for ``Producer``, on the
  loop for ``AIOProducer``).
- ``send(..., on_delivery=cb)`` (sync) is the same as ``produce``.
- ``send(...)`` (sync) returns a ``concurrent.futures.Future``;
  ``send_nowait`` (asyncio) an ``asyncio.Future``; ``await send(...)``
  (asyncio) waits for the delivery.  A future costs about a microsecond per
  record.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import functools
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures._base import FINISHED as _FUTURE_FINISHED
from concurrent.futures._base import PENDING as _FUTURE_PENDING
from concurrent.futures._base import RUNNING as _FUTURE_RUNNING
from typing import Any, NamedTuple, Unpack, overload

import kafka_protocol as kp

from kafka_core._accum import (
    SLOW_CLOSED,
    SLOW_MEMORY,
    SLOW_NO_PARTITION,
    SLOW_PARTITIONER,
    SLOW_RANGE,
    SLOW_TOO_LARGE,
    SLOW_TOPIC,
    Accumulator,
    Batch,
    PartState,
)
from kafka_core.compression import codec_id, compress

from ._loop import LoopThread
from .cluster import Cluster
from .conn import ApiKey, _fast
from .errors import (
    BufferFullError,
    ClientClosedError,
    IllegalStateError,
    KafkaConnectionError,
    KafkaError,
    KafkaTimeoutError,
    OutOfOrderSequenceError,
    RecordTooLargeError,
    for_code,
)
from .group import ConsumerGroupMetadata, TopicPartition
from .records import HEADER_SIZE, decode_records, record_size_upper_bound, restamp
from .security import Security, SecuritySettings
from .settings import ProducerSettings, check_settings, lists_settings
from .transaction import DROP_STATES, TransactionManager

__all__ = ["AIOProducer", "Producer", "RecordMetadata", "ProducerConfig", "DeliveryFuture"]

log = logging.getLogger("kafka_client.producer")

# send_produce_one's answer (None under KAFKA_CORE_NO_EXTENSIONS: every answer is a ProduceResponse)
_PartitionResult: Any = _fast.ProducePartitionResult if _fast is not None else None

# Java's InvalidMetadataException family: the leader is forgotten and metadata refreshed before
# the retry (unknown topic/partition, leader n/a, not leader, storage error, fenced/unknown
# leader epoch, unknown topic id).
_PRODUCE_RETRY_METADATA = {3, 5, 6, 56, 74, 75, 100}
_DUPLICATE_SEQUENCE = 46
_OUT_OF_ORDER = 45
_UNKNOWN_PRODUCER_ID = 59
_INVALID_PRODUCER_EPOCH = 47
_MESSAGE_TOO_LARGE = 10
_TXN_PRODUCE_MAX = 11
# Produce errors that fail a transactional batch at once instead of the idempotent producer's
# epoch bump: OUT_OF_ORDER_SEQUENCE_NUMBER, INVALID_PRODUCER_EPOCH, UNKNOWN_PRODUCER_ID,
# TRANSACTIONAL_ID_AUTHORIZATION_FAILED, INVALID_TXN_STATE, PRODUCER_FENCED.
_TXN_BATCH_FATAL = {45, 47, 59, 53, 48, 90}


class RecordMetadata(NamedTuple):
    topic: str
    partition: int
    offset: int
    timestamp: int


class ProducerConfig:
    """Settings, named as the Java client's with dots turned into underscores."""

    def __init__(self, bootstrap_servers: str | Iterable[str] = "localhost:9092", *,
                 client_id: str = "kafka-core-python", acks: int | str = "all",
                 enable_idempotence: bool | None = None, linger_ms: float = 5, batch_size: int = 16384,
                 buffer_memory: int = 32 * 1024 * 1024, max_block_ms: int = 60000,
                 compression_type: str | int | None = None, max_request_size: int = 1048576,
                 request_timeout_ms: int = 30000, delivery_timeout_ms: int = 120000,
                 retry_backoff_ms: int = 100, max_in_flight_requests_per_connection: int = 5,
                 metadata_max_age_ms: int = 300000, connect_timeout_ms: int = 10000,
                 partitioner: Any = None, allow_auto_create_topics: bool = True,
                 transactional_id: str | None = None, transaction_timeout_ms: int = 60000,
                 **security: Unpack[SecuritySettings]) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.security = Security(**security)
        self.client_id = client_id
        if acks in ("all", -1, "-1"):
            self.acks = -1
        elif str(acks) in ("0", "1"):
            self.acks = int(acks)
        else:
            raise ValueError(f"acks must be 0, 1 or 'all', not {acks!r}")
        # As Java's ProducerConfig: a transactional producer is idempotent, and settings that
        # contradict it are refused rather than silently overridden.
        self.transactional_id = transactional_id or None
        self.transaction_timeout_ms = transaction_timeout_ms
        if self.transactional_id is not None:
            if enable_idempotence is False:
                raise ValueError("transactional_id requires enable_idempotence (a transactional "
                                 "producer is idempotent)")
            if self.acks != -1:
                raise ValueError(f"transactional_id requires acks='all', not {acks!r}")
            if transaction_timeout_ms <= 0:
                raise ValueError(f"transaction_timeout_ms must be positive, not {transaction_timeout_ms}")
            enable_idempotence = True
        if enable_idempotence is None:
            enable_idempotence = self.acks == -1
        if enable_idempotence and self.acks != -1:
            raise ValueError("enable_idempotence requires acks='all'")
        self.idempotent = enable_idempotence
        self.linger = max(0.0, linger_ms / 1000)
        self.batch_size = batch_size
        self.buffer_memory = buffer_memory
        self.max_block = max_block_ms / 1000
        self.codec = codec_id(compression_type)
        self.max_request_size = max_request_size
        self.request_timeout_ms = request_timeout_ms
        self.delivery_timeout = delivery_timeout_ms / 1000
        self.retry_backoff = retry_backoff_ms / 1000
        self.max_in_flight = max(1, max_in_flight_requests_per_connection)
        if self.idempotent and self.max_in_flight > 5:
            raise ValueError("idempotence (and so transactional_id) needs "
                             "max_in_flight_requests_per_connection <= 5")
        self.metadata_max_age_ms = metadata_max_age_ms
        self.connect_timeout_ms = connect_timeout_ms
        self.partitioner = partitioner
        self.allow_auto_create_topics = allow_auto_create_topics


class _Engine:
    """The producer's state machine; runs on one event loop (``loop``)."""

    def __init__(self, cfg: ProducerConfig, loop: asyncio.AbstractEventLoop) -> None:
        self.cfg = cfg
        self.loop = loop
        self.cluster = Cluster(cfg.bootstrap_servers, client_id=cfg.client_id,
                               request_timeout_ms=cfg.request_timeout_ms,
                               connect_timeout_ms=cfg.connect_timeout_ms,
                               metadata_max_age_ms=cfg.metadata_max_age_ms, retry_backoff_ms=int(cfg.retry_backoff * 1000),
                               allow_auto_create_topics=cfg.allow_auto_create_topics, security=cfg.security)
        self.cluster.metadata_listeners.append(self._sync_topics)
        self.cluster.metadata_listeners.append(self._wake)
        # The accumulator holds the open batches and is the engine's (reentrant) lock too.
        self.accum = Accumulator(batch_size=cfg.batch_size, max_request_size=cfg.max_request_size,
                                 buffer_memory=cfg.buffer_memory, delivery_timeout=cfg.delivery_timeout,
                                 idempotent=cfg.idempotent, partitioner=cfg.partitioner)
        self.lock = self.accum
        self.parts: dict[tuple[str, int], PartState] = self.accum.parts
        self.pending: dict[tuple[str, int], PartState] = self.accum.pending  # partitions with something to send
        self.node_inflight: dict[int, int] = collections.defaultdict(int)
        self.total_inflight = 0
        self.mem_cond = threading.Condition()  # its own lock: waiters poll ``used`` too
        self.mem_waiters = 0  # threads in wait_memory_sync (counted under mem_cond)
        self.mem_event: asyncio.Event | None = None
        self.next_id = 0
        self.producer_id = -1
        self.producer_epoch = -1
        self._pid_future: asyncio.Future[None] | None = None
        self.bump_needed = False
        self._bumping = False
        self.closed = False
        self.force = 0  # > 0 while flushing/closing: open batches are ready now
        self._wakeup: asyncio.Event | None = None
        self._wake_scheduled = False
        self._sender: asyncio.Task[None] | None = None
        self._connecting: set[int] = set()
        self._tasks: set[asyncio.Future[Any]] = set()
        self.fatal: KafkaError | None = None
        self.records_sent = 0       # acknowledged (Java's record-send-total counts attempts)
        self.records_failed = 0     # settled with an error (record-error-total)
        self.txn: TransactionManager | None = None
        if cfg.transactional_id is not None:
            self.txn = TransactionManager(self, cfg.transactional_id, cfg.transaction_timeout_ms)

    @property
    def used(self) -> int:
        return self.accum.used

    def _sync_topics(self) -> None:
        """Metadata changed: give the accumulator every topic's partitions (with a leader)."""
        for name, meta in list(self.cluster.topics.items()):
            if meta.partitions:
                self.accum.set_topic(name, meta.num_partitions, meta.available())

    # ---- start / stop (on the loop) ----
    async def start(self) -> None:
        """Metadata and (idempotent) a producer id, within max_block_ms, else KafkaTimeoutError."""
        self._wakeup = asyncio.Event()
        self.mem_event = asyncio.Event()
        limit = self.cfg.max_block
        deadline = time.monotonic() + limit
        try:
            await self.cluster.bootstrap_metadata(timeout=limit)
            self._sync_topics()
            if self.cfg.idempotent and self.txn is None:  # transactional: init_transactions() gets it
                await asyncio.wait_for(self.ensure_pid(), max(0.01, deadline - time.monotonic()))
        except (TimeoutError, KafkaTimeoutError, KafkaConnectionError) as exc:
            raise KafkaTimeoutError(f"no broker of {self.cfg.bootstrap_servers!r} answered within max_block_ms "
                                    f"({limit * 1000:.0f} ms): {exc or type(exc).__name__}") from exc
        self._sender = asyncio.ensure_future(self._run())

    async def ensure_pid(self) -> None:
        if self.producer_id >= 0 or not self.cfg.idempotent:
            return
        if self._pid_future is None or self._pid_future.done() and self._pid_future.exception():
            self._pid_future = asyncio.ensure_future(self._init_producer_id(bump=False))
        await asyncio.shield(self._pid_future)

    async def _init_producer_id(self, bump: bool) -> None:
        deadline = time.monotonic() + self.cfg.max_block
        while True:
            try:
                conn = await self.cluster.any_connection()
                v = conn.version(ApiKey.INIT_PRODUCER_ID)
                req = kp.InitProducerIdRequest(transactional_id=None, transaction_timeout_ms=60000)
                if bump and v >= 3:
                    req.producer_id = self.producer_id
                    req.producer_epoch = self.producer_epoch
                resp = await conn.send(req, version=v)
                if resp.error_code:
                    raise for_code(resp.error_code, "InitProducerId")
            except KafkaError as exc:
                if not exc.retriable or time.monotonic() > deadline:
                    raise
                await asyncio.sleep(self.cfg.retry_backoff)
                continue
            with self.lock:
                self.producer_id = resp.producer_id
                self.producer_epoch = resp.producer_epoch
                self.accum.producer_id = resp.producer_id
                self.accum.producer_epoch = resp.producer_epoch
            return

    async def close(self, timeout: float | None = None) -> None:
        if self.closed:
            return
        try:
            await asyncio.wait_for(self.flush(), timeout)
        except TimeoutError:
            pass
        finally:
            self.closed = True
            self.accum.closed = True
            if self._sender is not None:
                self._sender.cancel()
                try:
                    await self._sender
                except (asyncio.CancelledError, Exception):
                    pass
            left = [t for t in self._tasks if not t.done()]
            for t in left:
                t.cancel()
            if left:
                await asyncio.gather(*left, return_exceptions=True)
            err = ClientClosedError("producer closed before the record was delivered")
            done: list[Any] = []
            with self.lock:
                for st in self.parts.values():
                    batches = list(st.queue) + list(st.inflight) + ([st.open] if st.open else [])
                    st.queue.clear()
                    st.open = None
                    for b in batches:
                        self._complete(b, -1, -1, err, done)
            self._resolve(done)
            await self.cluster.close()

    # ---- appending: the fast path is Accumulator.produce; this is the slow one ----
    def custom_partition(self, topic: str, key: Any, value: Any) -> int:
        meta = self.cluster.topics[topic]
        n = meta.num_partitions
        p = int(self.cfg.partitioner(key, n, meta.available()))
        if not 0 <= p < n:
            raise ValueError(f"partitioner returned {p} for {topic!r} ({n} partitions)")
        return p

    def slow_check(self, reason: int, topic: str, key: Any, value: Any, headers: Any,
                   partition: int | None) -> int | None:
        """Handle a slow-path reason the same way for both APIs: raise, or return the
        partition a custom partitioner chose.  SLOW_TOPIC/SLOW_MEMORY are the caller's."""
        if reason == SLOW_CLOSED:
            if self.fatal is not None:
                raise self.fatal
            if self.txn is not None and not self.closed:
                raise self.txn.send_refused()
            raise ClientClosedError("producer is closed")
        if reason == SLOW_TOO_LARGE:
            need = record_size_upper_bound(key, value, headers or ())
            raise RecordTooLargeError(f"record of about {need} bytes exceeds max_request_size "
                                      f"{self.cfg.max_request_size}")
        if reason == SLOW_RANGE:
            n = self.accum.num_partitions(topic)
            raise ValueError(f"partition {partition} out of range for {topic!r} ({n} partitions)")
        if reason == SLOW_NO_PARTITION:
            raise IllegalStateError(f"no partition of {topic!r} is available")
        if reason == SLOW_PARTITIONER:
            return self.custom_partition(topic, key, value)
        raise IllegalStateError(f"unexpected producer state {reason}")  # pragma: no cover

    def _close_open(self, st: PartState) -> None:
        self.accum.close_open(st)

    def _seal(self, b: Batch) -> None:
        """Finish a closed batch (header, sequence stamp, CRC), compressing its records with
        the configured codec unless that makes them larger."""
        codec = self.cfg.codec
        data = None
        b.transactional = self.txn is not None
        if codec:
            section = b.records_view()
            packed = compress(codec, section)
            if len(packed) < len(section):
                data = b.finish_compressed(codec, packed)
        b.data = data if data is not None else b.finish()
        b.stamped = (b.pid, b.epoch, b.base_seq)

    # ---- memory back-pressure ----
    def memory_full(self) -> bool:
        return self.used >= self.cfg.buffer_memory

    def wait_memory_sync(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        with self.mem_cond:
            # Counted before ``used`` is read: a settle that frees memory after this either sees
            # the waiter and notifies, or freed it before the check below.
            self.mem_waiters += 1
            try:
                while self.used >= self.cfg.buffer_memory:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise KafkaTimeoutError(f"buffer_memory full for {timeout:.3g}s (max_block_ms)")
                    self.mem_cond.wait(min(remaining, 0.05))
            finally:
                self.mem_waiters -= 1

    async def wait_memory(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        assert self.mem_event is not None
        while self.used >= self.cfg.buffer_memory:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise KafkaTimeoutError(f"buffer_memory full for {timeout:.3g}s (max_block_ms)")
            self.mem_event.clear()
            try:
                await asyncio.wait_for(self.mem_event.wait(), remaining)
            except TimeoutError:
                pass

    # ---- sender ----
    def wake_threadsafe(self) -> None:
        if not self._wake_scheduled:
            self._wake_scheduled = True
            # linger.ms=0: the loop thread drains in the callback itself, not by waking the sender
            # task, which would cost another loop turn and a task switch per awaited send.
            self.loop.call_soon_threadsafe(self._drain_now if self.cfg.linger == 0 else self._wake)

    def _drain_now(self) -> None:
        self._wake_scheduled = False
        if self.closed:
            return
        try:
            again = self.drain() is not None
        except Exception:  # pragma: no cover - as in _run: the sender task retries
            log.exception("producer drain failed")
            again = True
        if again or self.bump_needed or self.cluster.stale():
            self._wake()   # a timer (retry backoff), a bump or a metadata refresh: the sender task

    def _wake(self) -> None:
        self._wake_scheduled = False
        if self._wakeup is not None:
            self._wakeup.set()

    async def _run(self) -> None:
        assert self._wakeup is not None
        while not self.closed:
            self._wakeup.clear()
            try:
                next_at = self.drain()
            except Exception:  # pragma: no cover - a bug must not kill the sender silently
                log.exception("producer sender failed")
                next_at = time.monotonic() + self.cfg.retry_backoff
            if self.cluster.stale():
                self.cluster.request_refresh()
            timeout = None if next_at is None else max(0.0, next_at - time.monotonic())
            try:
                await asyncio.wait_for(self._wakeup.wait(), timeout)
            except TimeoutError:
                pass

    def drain(self) -> float | None:
        """Send whatever is ready, on this (the loop's) thread; returns when to look again."""
        now = time.monotonic()
        next_at: float | None = None
        expired: list[Any] = []
        by_node: dict[int, list[PartState]] = {}
        txn = self.txn
        to_add: list[tuple[str, int]] = []
        with self.lock:
            if self.bump_needed:
                self._maybe_bump()
                return None
            if txn is not None and txn.state in DROP_STATES and self.pending:
                self._drop_unsent(txn.drop_error(), expired)
            need_meta = False
            for tp, st in list(self.pending.items()):
                if not st.queue and st.open is None:
                    del self.pending[tp]
                    continue
                # Expire batches that waited longer than delivery.timeout.ms (never in-flight ones).
                while st.queue and st.queue[0].deadline <= now:
                    b = st.queue.popleft()
                    self._fail_batch(b, KafkaTimeoutError(
                        f"{tp[0]}-{tp[1]}: batch expired after {self.cfg.delivery_timeout:.3g}s "
                        f"(delivery_timeout_ms)"), expired)
                if st.open is not None and not st.queue:
                    if st.open.deadline <= now:
                        self._close_open(st)
                        continue
                    ready_at = st.open.created + self.cfg.linger
                    if self.force or ready_at <= now:
                        self._close_open(st)
                    else:
                        next_at = ready_at if next_at is None else min(next_at, ready_at)
                        continue
                if not st.queue:
                    continue
                if txn is not None and tp not in txn.partitions:
                    to_add.append(tp)  # sent once the partition is in the transaction
                    continue
                leader = self.cluster.leader_for(st.topic, st.partition)
                if leader < 0:
                    need_meta = True
                    continue
                by_node.setdefault(leader, []).append(st)
            if need_meta:
                self.cluster.request_refresh()
                t = now + self.cfg.retry_backoff
                next_at = t if next_at is None else min(next_at, t)
            for node, parts in by_node.items():
                due = self._drain_node(node, parts, now)
                if due is not None:
                    next_at = due if next_at is None else min(next_at, due)
            if to_add:
                assert txn is not None
                txn.partitions_ready(to_add)
        self._resolve(expired)
        return next_at

    def drop_unsent(self, err: KafkaError) -> None:
        """Fail every batch not sent yet (queued or open) with ``err``: the transaction is
        aborted or failed, so they must not be written (Java: abortUndrainedBatches).  In-flight
        batches settle as the broker answers."""
        done: list[Any] = []
        self._drop_unsent(err, done)
        self._resolve(done)

    def _drop_unsent(self, err: KafkaError, done: list[Any]) -> None:
        with self.lock:
            for st in self.parts.values():
                batches = list(st.queue) + ([st.open] if st.open is not None else [])
                st.queue.clear()
                st.open = None
                for b in batches:
                    self._complete(b, -1, -1, err, done)

    def send_direct(self, threaded: bool) -> bool:
        """The linger.ms=0 shortcut, called right after a record opened a batch: when that batch
        is the only thing to send and nothing is in flight to its leader, close, seal and send it
        now, without the general drain over every partition.  ``threaded``: called from the sync
        producer's caller thread, so the frame is written with the connection's thread-safe
        direct write (False when it cannot be; the batch then stays queued for the loop's drain).
        Sequence numbers come from close_open as in the drain; retries and errors take the
        general path from the response on.  True when the batch was sent."""
        pending = self.pending
        if len(pending) != 1 or self.bump_needed or self.txn is not None:
            return False
        with self.lock:
            if len(pending) != 1 or self.bump_needed or self.closed:
                return False
            tp, st = next(iter(pending.items()))
            b = st.open
            if b is None or st.queue or st.inflight:
                return False
            node = self.cluster.leader_for(st.topic, st.partition)
            if node < 0 or self.node_inflight.get(node):
                return False
            conn = self.cluster.connection_if_ready(node)
            if conn is None:
                return False
            self.accum.close_open(st)
            self._seal(b)
            st.queue.popleft()
            del pending[tp]
            batches = [b]
            st.inflight.append(b)
            self.node_inflight[node] += 1
            self.total_inflight += 1
            cb = functools.partial(self._on_response, node, batches)
            cfg = self.cfg
            timeout = cfg.request_timeout_ms / 1000 + 5
            topic = st.topic.encode()
            if threaded:
                sent = conn.send_produce_one_threadsafe(topic, st.partition, b.data, cfg.acks,
                                                        cfg.request_timeout_ms, cb, timeout=timeout)
            else:   # _send's one-batch case: freshly sealed and stamped, not transactional
                sent = conn.send_produce_one(topic, st.partition, b.data, None, cfg.acks, cfg.request_timeout_ms,
                                             cb, timeout=timeout)
            if sent:
                return True
            st.inflight.remove(b)           # not written
            self.node_inflight[node] -= 1
            self.total_inflight -= 1
            if not threaded:
                self._send(conn, node, batches)   # a field the fast path cannot encode: the codec
                return True
            st.queue.appendleft(b)          # back in the queue for the loop's drain
            pending[tp] = st
        return False

    def _wake_linger0(self) -> None:
        """AIOProducer's wake hook with linger.ms=0 (on the loop, after the append)."""
        if not self.send_direct(False):
            self.drain()

    def _drain_node(self, node: int, parts: list[PartState], now: float) -> float | None:
        conn = self.cluster.connection_if_ready(node)
        if conn is None:
            if node not in self._connecting:
                self._connecting.add(node)
                fut = self._background(self.cluster.connection(node))
                fut.add_done_callback(functools.partial(self._connected, node))
            return None
        next_at: float | None = None
        while self.node_inflight[node] < self.cfg.max_in_flight:
            batches: list[Batch] = []
            size = 0
            for st in parts:
                b = st.queue[0] if st.queue else None
                if b is None:
                    continue
                if b.retry_at > now:
                    next_at = b.retry_at if next_at is None else min(next_at, b.retry_at)
                    continue
                if self.cfg.idempotent and b.attempts and st.inflight:
                    continue  # a retry goes out only when nothing later of its partition is in flight
                if b.data is None:
                    self._seal(b)
                blen = len(b.data)
                if batches and size + blen > self.cfg.max_request_size:
                    continue
                st.queue.popleft()
                batches.append(b)
                size += blen
                if not st.queue and st.open is None:
                    # Nothing left to send for it: off the pending list now, so the response does
                    # not walk it again (a new batch, a retry or a split puts it back).
                    self.pending.pop((st.topic, st.partition), None)
            if not batches:
                break
            self._send(conn, node, batches)
        return next_at

    def _connected(self, node: int, fut: asyncio.Future[Any]) -> None:
        self._connecting.discard(node)
        if fut.cancelled():
            return
        if fut.exception() is not None:
            self.cluster.request_refresh()
            self.loop.call_later(self.cfg.retry_backoff, self._wake)
            return
        self._wake()

    def _send(self, conn: Any, node: int, batches: list[Batch]) -> None:
        for b in batches:
            if self.cfg.idempotent and (b.pid, b.epoch, b.base_seq) != b.stamped:
                b.data = restamp(b.data, b.pid, b.epoch, b.base_seq)
                b.stamped = (b.pid, b.epoch, b.base_seq)
            b.part.inflight.append(b)
        txn = self.txn
        tid = txn.transactional_id if txn is not None else None
        # Transactional Produce stays at v11: v12 means KIP-890 part 2 (partitions added implicitly).
        version = min(conn.version(ApiKey.PRODUCE), _TXN_PRODUCE_MAX) if txn is not None else None
        self.node_inflight[node] += 1
        self.total_inflight += 1
        # The response comes to _on_response in the loop turn that reads it (no future between).
        cb = functools.partial(self._on_response, node, batches)
        timeout = self.cfg.request_timeout_ms / 1000 + 5
        if len(batches) == 1:
            # The common case, one batch: one frame built in compiled code (kafka_core._client),
            # its answer read without message objects; False = a field it cannot encode.
            st = batches[0].part
            if conn.send_produce_one(st.topic.encode(), st.partition, batches[0].data,
                                     tid.encode() if tid is not None else None, self.cfg.acks,
                                     self.cfg.request_timeout_ms, cb, version=version, timeout=timeout):
                return
        topics: dict[str, list[Any]] = {}
        for b in batches:
            topics.setdefault(b.part.topic, []).append(
                kp.ProduceRequest.PartitionProduceData(index=b.part.partition, records=b.data))
        req = kp.ProduceRequest(transactional_id=tid, acks=self.cfg.acks, timeout_ms=self.cfg.request_timeout_ms,
                                topic_data=[kp.ProduceRequest.TopicProduceData(name=t, partition_data=p)
                                            for t, p in topics.items()])
        conn.send_with_callback(req, cb, version=version, expect_response=self.cfg.acks != 0, timeout=timeout)

    def _on_response(self, node: int, batches: list[Batch], resp: Any, exc: BaseException | None) -> None:
        done: list[Any] = []
        if type(resp) is _PartitionResult and resp.error_code == 0:
            # The common answer, send_produce_one's batch written: _on_partition's success branch
            # without the error dispatch around it.
            b = batches[0]
            with self.lock:
                self.node_inflight[node] -= 1
                self.total_inflight -= 1
                if self.cfg.idempotent:
                    b.part.last_acked = (b.base_seq + b.count - 1) & 0x7FFFFFFF
                self._complete(b, resp.base_offset, resp.log_append_time_ms, None, done)
                if self.bump_needed:
                    self._maybe_bump()
            self._resolve(done)
            if self.pending or self.bump_needed:
                self._after_response()
            return
        with self.lock:
            self.node_inflight[node] -= 1
            self.total_inflight -= 1
            if exc is not None:
                err = exc if isinstance(exc, KafkaError) else KafkaConnectionError(str(exc))
                self.cluster.request_refresh()
                for b in batches:
                    self._retry_or_fail(b, err, done)
            else:
                if resp is None:  # acks=0
                    for b in batches:
                        self._complete(b, -1, -1, None, done)
                elif type(resp) is _PartitionResult:  # send_produce_one: its one partition
                    self._on_partition(batches[0], resp, done)
                else:
                    results = {}
                    for t in resp.responses:
                        for p in t.partition_responses:
                            results[(t.name, p.index)] = p
                    for b in batches:
                        pr = results.get((b.part.topic, b.part.partition))
                        if pr is None:
                            self._retry_or_fail(b, KafkaConnectionError("partition missing from the response"), done)
                        else:
                            self._on_partition(b, pr, done)
            if self.bump_needed:
                self._maybe_bump()
        self._resolve(done)
        self._after_response()

    def _after_response(self) -> None:
        # Send what the freed slot allows right away; the sender task only needs waking when
        # something must happen later (a retry backoff, a linger timer).
        if (self.pending and self.drain() is not None) or self.bump_needed:
            self._wake()

    def _on_partition(self, b: Batch, pr: Any, done: list[Any]) -> None:
        code = pr.error_code
        st = b.part
        if code == 0 or code == _DUPLICATE_SEQUENCE:
            if self.cfg.idempotent:
                st.last_acked = (b.base_seq + b.count - 1) & 0x7FFFFFFF
            self._complete(b, pr.base_offset if code == 0 else -1, pr.log_append_time_ms, None, done)
            return
        if code == _MESSAGE_TOO_LARGE and b.count > 1 and not self.closed:
            self._split(b)
            return
        err = for_code(code, pr.error_message)
        if code in _PRODUCE_RETRY_METADATA:
            self.cluster.invalidate_leader(st.topic, st.partition)
            self.cluster.request_refresh()
        if self.txn is not None and code in _TXN_BATCH_FATAL:
            # In a transaction the epoch is bumped by the coordinator, never by the sender: a
            # sequence or epoch problem fails the batch (the transaction must be aborted).
            self._fail_batch(b, err, done)
            return
        if self.cfg.idempotent:
            expected = (st.last_acked + 1) & 0x7FFFFFFF
            if code == _OUT_OF_ORDER:
                behind = 0 < ((expected - b.base_seq) & 0x7FFFFFFF) < (1 << 30)
                if behind and b.epoch == self.producer_epoch:
                    # Later batches of this partition were written while this one got a retriable
                    # error (e.g. NOT_LEADER while a new partition's leader was starting): it can no
                    # longer be written under this epoch.  It was never written, so bump and resend.
                    self.bump_needed = True
                    self._retry_or_fail(b, err, done, force_retriable=True)
                elif b.base_seq != expected or b.epoch != self.producer_epoch:
                    self._retry_or_fail(b, err, done, force_retriable=True)  # an earlier batch failed first
                else:
                    self._fail_batch(b, OutOfOrderSequenceError(
                        f"{st.topic}-{st.partition}: broker expected another sequence than {b.base_seq}"), done)
                return
            if code == _UNKNOWN_PRODUCER_ID or (code == _INVALID_PRODUCER_EPOCH and b.epoch < self.producer_epoch):
                if b.base_seq == expected or b.epoch < self.producer_epoch or st.last_acked < 0:
                    self.bump_needed = True
                self._retry_or_fail(b, err, done, force_retriable=True)
                return
        self._retry_or_fail(b, err, done)

    def _split(self, b: Batch) -> None:
        """The broker refused the batch as too large (MESSAGE_TOO_LARGE): nothing of it was
        written, so resend its records as two batches in its place, each half of it (halved
        again if still refused).  The halves keep the batch's sequence range, so idempotence
        and ordering hold; each record's waiter moves with it."""
        st = b.part
        if b in st.inflight:
            st.inflight.remove(b)
        recs, _ = decode_records(b.data, 0, check_crcs=False)
        k = len(recs) // 2
        waiters = b.waiters or []
        halves: list[Batch] = []
        for lo, hi in ((0, k), (k, len(recs))):
            part = recs[lo:hi]
            cap = max(HEADER_SIZE + sum(record_size_upper_bound(r.key, r.value, r.headers) for r in part), 128)
            nb = Batch(cap, part[0].timestamp)
            for r in part:
                if not nb.append(r.timestamp, r.key, r.value, r.headers or None):
                    raise IllegalStateError("split batch overflow")  # pragma: no cover - cap is an upper bound
            # Ids order a partition's batches: the halves take b's place, before any later batch.
            nb.split_step = b.split_step / 2
            nb.id = b.id if lo == 0 else b.id + nb.split_step
            nb.part, nb.created, nb.deadline = st, b.created, b.deadline
            nb.pid, nb.epoch = b.pid, b.epoch
            nb.base_seq = (b.base_seq + lo) & 0x7FFFFFFF if b.base_seq >= 0 else -1
            nb.attempts = b.attempts
            for kind, obj, idx, ts in waiters:
                if lo <= idx < hi:
                    nb.add_waiter(kind, obj, idx - lo, ts)
            self.accum.used += cap
            halves.append(nb)
        self.accum.used -= b.capacity
        b.done = True
        b.waiters = None
        b.release()
        log.info("%s-%d: batch of %d records refused as too large; split in two", st.topic, st.partition,
                 len(recs))
        i = 0
        while i < len(st.queue) and st.queue[i].id < b.id:
            i += 1
        st.queue.insert(i, halves[1])
        st.queue.insert(i, halves[0])
        self.pending[(st.topic, st.partition)] = st

    def _retry_or_fail(self, b: Batch, err: KafkaError, done: list[Any], force_retriable: bool = False) -> None:
        st = b.part
        if b in st.inflight:
            st.inflight.remove(b)
        now = time.monotonic()
        if (err.retriable or force_retriable) and now < b.deadline and not self.closed:
            b.attempts += 1
            b.retry_at = now + self.cfg.retry_backoff
            # Keep the queue in batch order (= sequence order) with the retry in front of newer batches.
            i = 0
            while i < len(st.queue) and st.queue[i].id < b.id:
                i += 1
            st.queue.insert(i, b)
            self.pending[(st.topic, st.partition)] = st
            return
        if (err.retriable or force_retriable) and now >= b.deadline and not self.closed:
            # Retriable, but delivery.timeout.ms is spent: a timeout that names the partition
            # and says what kept failing (the error itself is the cause).
            timeout = KafkaTimeoutError(
                f"{st.topic}-{st.partition}: {b.count} record(s) not delivered in "
                f"{self.cfg.delivery_timeout:.3g}s (delivery_timeout_ms); last error: {err}")
            timeout.__cause__ = err
            err = timeout
        self._fail_batch(b, err, done)

    def _fail_batch(self, b: Batch, err: KafkaError, done: list[Any]) -> None:
        if self.txn is not None:
            self.txn.batch_failed(err)  # abortable (or fatal); the abort bumps the epoch
        elif self.cfg.idempotent:
            # The batch's sequences were never written: later batches would be out of order.
            self.bump_needed = True
        self._complete(b, -1, -1, err, done)

    def _complete(self, b: Batch, offset: int, log_append_time: int, err: BaseException | None,
                  done: list[Any]) -> None:
        if b.done:
            return
        b.done = True
        st = b.part
        if b in st.inflight:
            st.inflight.remove(b)
        self.accum.used -= b.capacity
        b.release()
        done.append((b, offset, log_append_time, err))

    def _resolve(self, done: list[Any]) -> None:
        """Complete futures outside the lock (sync futures run callbacks right away)."""
        if not done:
            return
        if self.mem_event is not None:
            self.mem_event.set()
        if self.mem_waiters:   # a Condition round trip per response costs more than the append
            with self.mem_cond:
                self.mem_cond.notify_all()
        for b, offset, lat, err in done:
            st = b.part
            if err is None:
                self.records_sent += b.count
            else:
                self.records_failed += b.count
            n = b.resolve(st.topic, st.partition, offset, lat if lat is not None else -1, err, RecordMetadata)
            if err is not None and n < b.count:
                log.warning("%d record(s) for %s-%d not delivered: %s", b.count - n, st.topic, st.partition, err)

    def metrics(self) -> dict[str, int]:
        """Counters of the producer's life so far under the Java client's metric names:
        ``record-send-total`` (records acknowledged) and ``record-error-total`` (records settled
        with an error, whether or not a callback or future was there to tell)."""
        return {"record-send-total": self.records_sent, "record-error-total": self.records_failed}

    def _background(self, coro: Any) -> asyncio.Future[Any]:
        """A task the engine does not await; close() cancels and awaits what is left."""
        t = asyncio.ensure_future(coro)
        self._tasks.add(t)
        t.add_done_callback(self._tasks.discard)
        return t

    def _maybe_bump(self) -> None:
        if self._bumping or self.total_inflight:
            return
        self._bumping = True
        fut = self._background(self._bump())
        fut.add_done_callback(lambda f: f.cancelled() or f.exception())

    async def _bump(self) -> None:
        try:
            await self._init_producer_id(bump=True)
        except KafkaError as exc:
            log.error("producer epoch bump failed: %s", exc)
            with self.lock:
                self.fatal = exc
                self.accum.fatal = exc
            done: list[Any] = []
            with self.lock:
                for st in self.parts.values():
                    while st.queue:
                        self._complete(st.queue.popleft(), -1, -1, exc, done)
            self._resolve(done)
            return
        finally:
            self._bumping = False
        with self.lock:
            self.bump_needed = False
            # New epoch: every partition's sequences restart at 0, pending batches re-stamped in order.
            for st in self.parts.values():
                seq = 0
                st.last_acked = -1
                for b in st.queue:
                    b.pid, b.epoch, b.base_seq = self.producer_id, self.producer_epoch, seq
                    seq = (seq + b.count) & 0x7FFFFFFF
                st.next_seq = seq  # the open batch takes its sequence when it is closed
        self._wake()

    async def flush(self, timeout: float | None = None) -> None:
        """Send everything appended so far and wait until it is acknowledged (or failed)."""
        self.force += 1
        try:
            deadline = None if timeout is None else time.monotonic() + timeout
            while True:
                with self.lock:
                    busy = self.total_inflight or any(st.queue or st.open or st.inflight
                                                      for st in self.parts.values())
                if not busy:
                    return
                self._wake()
                if deadline is not None and time.monotonic() > deadline:
                    raise KafkaTimeoutError(f"flush did not complete in {timeout:.3g}s")
                await asyncio.sleep(0.002)
        finally:
            self.force -= 1


def _txn(engine: _Engine) -> TransactionManager:
    if engine.txn is None:
        raise IllegalStateError("transactional method called on a producer without transactional_id")
    return engine.txn


class AIOProducer:
    """asyncio producer. ``await start()`` (or ``async with``) before sending.

    ``produce(topic, value, ...)`` appends without creating a future (fire-and-forget, or
    ``on_delivery(err, metadata)`` called on the loop); ``send_nowait`` returns a future;
    ``await send(...)`` waits for the delivery."""

    @lists_settings(ProducerConfig.__init__)
    def __init__(self, bootstrap_servers: str | Iterable[str] = "localhost:9092",
                 **config: Unpack[ProducerSettings]) -> None:
        self.config = ProducerConfig(bootstrap_servers, **check_settings(ProducerConfig.__init__, config, "producer"))
        self._engine: _Engine | None = None

    async def start(self) -> AIOProducer:
        """Fetch metadata and (idempotent) a producer id within max_block_ms; returns self."""
        e = self._engine = _Engine(self.config, asyncio.get_running_loop())
        e.accum.wake = e._wake_linger0 if self.config.linger == 0 else e._wake
        e.accum.slow = self._slow
        try:
            await e.start()
        except BaseException:
            await e.cluster.close()
            raise
        return self

    async def __aenter__(self) -> AIOProducer:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def engine(self) -> _Engine:
        if self._engine is None:
            raise IllegalStateError("producer not started: await start() first")
        return self._engine

    async def partitions_for(self, topic: str) -> list[int]:
        """Partition numbers of ``topic``, waiting up to max_block_ms for its metadata."""
        meta = await self.engine.cluster.wait_for_topic(topic, self.config.max_block)
        self.engine._sync_topics()
        return sorted(meta.partitions)

    async def _prepare(self, topic: str) -> None:
        e = self.engine
        if topic not in e.cluster.topics or not e.cluster.topics[topic].partitions:
            await e.cluster.wait_for_topic(topic, self.config.max_block)
            e._sync_topics()
        if e.used >= self.config.buffer_memory:
            await e.wait_memory(self.config.max_block)

    def _slow(self, reason: int, topic: str, value: Any, key: Any, headers: Any, partition: int | None,
              timestamp_ms: int | None, kind: int, waiter: Any) -> None:
        e = self.engine
        if reason == SLOW_TOPIC:
            if topic in e.cluster.topics and e.cluster.topics[topic].partitions:
                e._sync_topics()
            else:
                e.cluster.tracked.add(topic)
                e.cluster.request_refresh()
                raise IllegalStateError(f"no metadata for topic {topic!r} yet: await send() or "
                                        "partitions_for() first")
        elif reason == SLOW_MEMORY:
            raise BufferFullError(f"buffer_memory ({self.config.buffer_memory} bytes) is full: "
                                  "await flush() or send()")
        else:
            p = e.slow_check(reason, topic, key, value, headers, partition)
            if p is not None:
                partition = p
        reason = e.accum.try_append(topic, value, key, headers, partition, timestamp_ms, kind, waiter)
        if reason:
            self._slow(reason, topic, value, key, headers, partition, timestamp_ms, kind, waiter)

    def produce(self, topic: str, value: Any = None, key: Any = None, headers: Sequence[Any] | None = None,
                partition: int | None = None, timestamp_ms: int | None = None,
                on_delivery: Any = None) -> None:
        """Append without a future: fire-and-forget, or ``on_delivery(err, metadata)`` called on
        the loop once the record is settled.  Metadata for ``topic`` must be known (after a
        first ``await send`` or ``partitions_for``); raises BufferFullError when buffer_memory
        is full."""
        self.engine.accum.produce(topic, value, key, headers, partition, timestamp_ms, on_delivery)

    def send_nowait(self, topic: str, value: Any = None, key: Any = None, headers: Sequence[Any] | None = None,
                    partition: int | None = None, timestamp_ms: int | None = None) -> asyncio.Future[RecordMetadata]:
        """Append without waiting (metadata for ``topic`` must be known, e.g. after a first
        ``await send``); the returned future resolves on delivery."""
        e = self.engine
        fut: asyncio.Future[RecordMetadata] = e.loop.create_future()
        e.accum.produce_future(topic, value, key, headers, partition, timestamp_ms, fut)
        return fut

    async def send(self, topic: str, value: Any = None, key: Any = None, headers: Sequence[Any] | None = None,
                   partition: int | None = None, timestamp_ms: int | None = None) -> RecordMetadata:
        """Append the record and wait for its delivery; returns its offset."""
        e = self.engine
        meta = e.cluster.topics.get(topic)
        if meta is None or not meta.partitions or e.used >= self.config.buffer_memory:
            await self._prepare(topic)       # (not a coroutine per record when nothing waits)
        return await self.send_nowait(topic, value, key, headers, partition, timestamp_ms)

    # ---- transactions (transactional_id set) ----
    async def init_transactions(self, timeout: float | None = None) -> None:
        """Register the transactional id with its coordinator and get the producer id and epoch;
        this fences older producers with the same id and completes their open transactions.
        Call once, before the first ``begin_transaction``.  ``timeout`` (seconds, default
        max_block_ms): KafkaTimeoutError, and calling again keeps waiting."""
        await _txn(self.engine).init(timeout)

    def begin_transaction(self) -> None:
        """Open a transaction: records sent from now until commit or abort belong to it (local;
        the coordinator learns of it with the first partition or offsets)."""
        _txn(self.engine).begin()

    async def send_offsets_to_transaction(self, offsets: Mapping[TopicPartition | tuple[str, int], Any],
                                          group_metadata: ConsumerGroupMetadata | str,
                                          timeout: float | None = None) -> None:
        """Commit ``offsets`` (the next offsets to consume, ``int`` or ``OffsetAndMetadata``) for
        the consumer group of ``group_metadata`` (``consumer.group_metadata()``) as part of the
        transaction: visible to the group only if the transaction commits (consume-transform-produce)."""
        await _txn(self.engine).send_offsets(offsets, group_metadata, timeout)

    async def commit_transaction(self, timeout: float | None = None) -> None:
        """Send every record of the transaction, wait for their acknowledgements, then commit.
        If a record failed, raises TransactionAbortableError: call ``abort_transaction``."""
        await _txn(self.engine).commit(timeout)

    async def abort_transaction(self, timeout: float | None = None) -> None:
        """Abort the transaction: unsent records fail with TransactionAbortedError, records already
        written are never shown to read_committed consumers, offsets sent are discarded."""
        await _txn(self.engine).abort(timeout)

    async def flush(self, timeout: float | None = None) -> None:
        """Send everything buffered now (linger ends) and wait until every record is acknowledged or
        failed."""
        await self.engine.flush(timeout)

    def metrics(self) -> dict[str, int]:
        """``record-send-total`` and ``record-error-total`` (see ``_Engine.metrics``)."""
        return self.engine.metrics()

    async def close(self, timeout: float | None = None) -> None:
        """Send what is buffered (up to ``timeout`` seconds), then close the connections."""
        if self._engine is not None:
            await self._engine.close(timeout)


class DeliveryFuture(concurrent.futures.Future):
    """The sync producer's per-record future: a ``concurrent.futures.Future`` whose condition
    is shared by all futures of one producer (a Condition per record costs more than the
    append itself; ``concurrent.futures.wait`` still works through it).  ``result()`` waits on
    the future's own lock, held from creation until the future is done: the I/O thread's
    ``set_result`` wakes exactly this waiter with one release, no Condition round trip."""

    def __init__(self, condition: threading.Condition) -> None:  # noqa: B027 - no super().__init__
        self._condition = condition
        self._state = _FUTURE_PENDING
        self._result = None
        self._exception = None
        self._waiters: list[Any] = []
        self._done_callbacks: list[Any] = []
        self._done = threading.Lock()
        self._done.acquire()

    def set_result(self, result: Any) -> None:
        # Future.set_result without its notify_all: nothing waits on the shared condition
        # (result() and exception() wait on _done; concurrent.futures.wait on its waiters).
        with self._condition:
            if self._state is not _FUTURE_PENDING and self._state is not _FUTURE_RUNNING:
                raise concurrent.futures.InvalidStateError(f"{self._state}: {self!r}")
            self._result = result
            self._state = _FUTURE_FINISHED
            for waiter in self._waiters:
                waiter.add_result(self)
        self._done.release()
        if self._done_callbacks:
            self._invoke_callbacks()  # type: ignore[attr-defined]

    def set_exception(self, exception: BaseException | None) -> None:
        super().set_exception(exception)
        self._done.release()

    def cancel(self) -> bool:
        with self._condition:
            pending = self._state == _FUTURE_PENDING
            cancelled = super().cancel()
        if pending and cancelled:
            self._done.release()
        return cancelled

    def _wait(self, timeout: float | None) -> None:
        if self._state in (_FUTURE_PENDING, _FUTURE_RUNNING):
            # Released once done; each waiter passes it on (several threads may wait).
            if self._done.acquire(timeout=-1 if timeout is None else max(0.0, timeout)):
                self._done.release()

    def result(self, timeout: float | None = None) -> Any:
        self._wait(timeout)
        return super().result(0)

    def exception(self, timeout: float | None = None) -> BaseException | None:
        self._wait(timeout)
        return super().exception(0)


class Producer:
    """Thread-safe synchronous producer; the engine's loop runs in a background thread.

    Records are appended from the caller's thread (one C call, under the accumulator's lock);
    the background thread only sends closed batches and settles deliveries.  ``send`` returns a
    ``concurrent.futures.Future`` of ``RecordMetadata`` (or None with ``on_delivery``);
    ``produce`` never creates a future."""

    @lists_settings(ProducerConfig.__init__)
    def __init__(self, bootstrap_servers: str | Iterable[str] = "localhost:9092",
                 **config: Unpack[ProducerSettings]) -> None:
        self.config = ProducerConfig(bootstrap_servers, **check_settings(ProducerConfig.__init__, config, "producer"))
        self._thread = LoopThread("kafka-producer")
        self._engine: _Engine = self._thread.call(self._create)
        accum = self._accum = self._engine.accum
        self._cond = threading.Condition()
        # linger.ms=0: a record that opens the only batch to send is written from the caller's
        # thread when the connection allows it (Engine.send_direct), no hop to the I/O thread.
        self._direct = self.config.linger == 0
        accum.wake = self._wake
        accum.slow = self._slow
        try:
            self._thread.run(self._engine.start(), timeout=self.config.max_block + 5)
        except BaseException:
            self._thread.run(self._engine.cluster.close())
            self._thread.stop()
            raise
        # The per-record call goes straight to C (no Python frame in between).
        self.produce = accum.produce  # type: ignore[method-assign]

    async def _create(self) -> _Engine:
        return _Engine(self.config, asyncio.get_running_loop())

    def _wake(self) -> None:
        """A batch was opened or filled: wake the I/O thread.  If it has not even run since the
        last wake-up, it is starved of the GIL by this (appending) thread, which would keep it
        for a whole switch interval (5 ms): hand the GIL over for a moment instead."""
        e = self._engine
        if e._wake_scheduled:
            time.sleep(0.00005)
        elif not (self._direct and e.send_direct(True)):
            e.wake_threadsafe()

    def __enter__(self) -> Producer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def partitions_for(self, topic: str) -> list[int]:
        """Partition numbers of ``topic``, waiting up to max_block_ms for its metadata."""
        meta = self._thread.run(self._engine.cluster.wait_for_topic(topic, self.config.max_block))
        self._engine._sync_topics()
        return sorted(meta.partitions)

    def _slow(self, reason: int, topic: str, value: Any, key: Any, headers: Any, partition: int | None,
              timestamp_ms: int | None, kind: int, waiter: Any) -> None:
        e = self._engine
        while reason:
            if reason == SLOW_TOPIC:
                meta = e.cluster.topics.get(topic)
                if meta is None or not meta.partitions:
                    self._thread.run(e.cluster.wait_for_topic(topic, self.config.max_block))
                e._sync_topics()
            elif reason == SLOW_MEMORY:
                e.wait_memory_sync(self.config.max_block)
            else:
                p = e.slow_check(reason, topic, key, value, headers, partition)
                if p is not None:
                    partition = p
            reason = e.accum.try_append(topic, value, key, headers, partition, timestamp_ms, kind, waiter)

    def produce(self, topic: str, value: Any = None, key: Any = None, headers: Sequence[Any] | None = None,
                partition: int | None = None, timestamp_ms: int | None = None,
                on_delivery: Any = None) -> None:
        """Append the record without a future: fire-and-forget, or ``on_delivery(err, metadata)``
        called on the producer's I/O thread once it is settled.  Blocks up to max_block_ms for
        metadata of a new topic or while buffer_memory is full."""
        self._accum.produce(topic, value, key, headers, partition, timestamp_ms, on_delivery)

    @overload
    def send(self, topic: str, value: Any = None, key: Any = None, headers: Sequence[Any] | None = None,
             partition: int | None = None, timestamp_ms: int | None = None,
             on_delivery: None = None) -> concurrent.futures.Future[RecordMetadata]: ...

    @overload
    def send(self, topic: str, value: Any = None, key: Any = None, headers: Sequence[Any] | None = None,
             partition: int | None = None, timestamp_ms: int | None = None, *,
             on_delivery: Callable[[Any, Any], Any]) -> None: ...

    def send(self, topic: str, value: Any = None, key: Any = None, headers: Sequence[Any] | None = None,
             partition: int | None = None, timestamp_ms: int | None = None,
             on_delivery: Callable[[Any, Any], Any] | None = None) -> concurrent.futures.Future[RecordMetadata] | None:
        """Append the record; the future resolves on delivery.  With ``on_delivery(err, metadata)``
        no future is made (None is returned) and the callback runs on the producer's I/O thread.
        Blocks up to max_block_ms for metadata of a new topic or while buffer_memory is full."""
        if on_delivery is not None:
            self._accum.produce(topic, value, key, headers, partition, timestamp_ms, on_delivery)
            return None
        fut: concurrent.futures.Future[RecordMetadata] = DeliveryFuture(self._cond)
        self._accum.produce_future(topic, value, key, headers, partition, timestamp_ms, fut)
        return fut

    # ---- transactions (transactional_id set): see AIOProducer for what each one does ----
    def init_transactions(self, timeout: float | None = None) -> None:
        """Register the transactional id and get the producer id and epoch (fences older producers
        with the same id); once, before the first ``begin_transaction``."""
        self._thread.run(_txn(self._engine).init(timeout))

    def begin_transaction(self) -> None:
        """Open a transaction: records sent until commit or abort belong to it."""
        _txn(self._engine).begin()

    def send_offsets_to_transaction(self, offsets: Mapping[TopicPartition | tuple[str, int], Any],
                                    group_metadata: ConsumerGroupMetadata | str,
                                    timeout: float | None = None) -> None:
        """Commit the consumer group's ``offsets`` as part of the transaction (KIP-447 fencing with
        ``consumer.group_metadata()``)."""
        self._thread.run(_txn(self._engine).send_offsets(offsets, group_metadata, timeout))

    def commit_transaction(self, timeout: float | None = None) -> None:
        """Send and acknowledge every record of the transaction, then commit it; raises
        TransactionAbortableError if a record failed (then call ``abort_transaction``)."""
        self._thread.run(_txn(self._engine).commit(timeout))

    def abort_transaction(self, timeout: float | None = None) -> None:
        """Abort the transaction (unsent records fail with TransactionAbortedError)."""
        self._thread.run(_txn(self._engine).abort(timeout))

    def flush(self, timeout: float | None = None) -> None:
        """Send everything buffered now (linger ends) and wait until every record is acknowledged or
        failed."""
        self._thread.run(self._engine.flush(timeout))

    def metrics(self) -> dict[str, int]:
        """``record-send-total`` and ``record-error-total`` (see ``_Engine.metrics``)."""
        return self._engine.metrics()

    def close(self, timeout: float | None = None) -> None:
        """Send what is buffered (up to ``timeout`` seconds), then close the connections and the I/O
        thread."""
        if self._thread.stopped:
            return
        try:
            self._thread.run(self._engine.close(timeout))
        finally:
            self._thread.stop()
