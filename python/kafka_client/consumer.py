"""Consumer: manual assignment or group subscription, pipelined fetching.

One fetcher task keeps at most one Fetch in flight per broker, for the
assigned partitions it leads that are not paused and have at most one
fetched response waiting for the application: so the next fetch is already
on the wire while the application works through the previous one.  Fetched
data is decoded in C (``kafka_core.iter_records``); record keys and values
are bytes created once from the response buffer.

``position`` is the next offset handed to the application; ``fetch_offset``
is where the next fetch starts (ahead of ``position`` while data is
buffered).  Seeking bumps a partition's generation so fetches already in
flight for the old position are dropped when they return.

read_committed: fetches and ListOffsets carry isolation level 1, so the broker
serves data only up to the last stable offset and lists the aborted
transactions of the range; records.decode_records drops those transactions'
batches (and every control batch).  Committed offsets are fetched with
require_stable (KIP-447), so offsets written by a transaction being completed
are waited for, not read stale.  ``group_metadata()`` is what a transactional
producer's ``send_offsets_to_transaction`` needs.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import logging
import time
from collections.abc import AsyncIterator, Iterable, Iterator
from typing import Any, NamedTuple, TypeAlias, Unpack

import kafka_protocol as kp

from ._loop import LoopThread
from .cluster import Cluster
from .conn import ApiKey
from .errors import (
    IllegalStateError,
    KafkaError,
    KafkaTimeoutError,
    OffsetOutOfRangeError,
    for_code,
)
from .group import (
    ConsumerGroupMetadata,
    GroupCoordinator,
    OffsetAndMetadata,
    RebalanceListener,
    TopicPartition,
    commit_offsets,
    fetch_committed,
)
from .records import Record, decode_records
from .security import Security, SecuritySettings
from .settings import ConsumerSettings, check_settings, lists_settings

__all__ = ["AIOConsumer", "Consumer", "ConsumerRecord", "TopicPartition", "OffsetAndMetadata",
           "OffsetAndTimestamp", "RebalanceListener"]

log = logging.getLogger("kafka_client.consumer")

# Fetch errors after which the partition is fetched again once metadata was refreshed, as the
# Java client's FetchCollector does: unknown topic/partition, leader n/a, not leader, replica
# n/a, storage error, fenced/unknown leader epoch, offset not available (a new leader whose
# high watermark is not known yet), unknown topic id.
_METADATA_ERRORS = {3, 5, 6, 9, 56, 74, 75, 78, 100}
_UNKNOWN_SERVER_ERROR = -1
_SESSION_ERRORS = {70, 71}  # FETCH_SESSION_ID_NOT_FOUND, INVALID_FETCH_SESSION_EPOCH
EARLIEST = -2
LATEST = -1


# The one record type of every consumer API (poll, getmany, getone, iteration): kafka_core's
# Record with topic, partition, offset, timestamp, key, value and headers.
ConsumerRecord: TypeAlias = Record


class OffsetAndTimestamp(NamedTuple):
    offset: int
    timestamp: int


class _PState:
    __slots__ = ("position", "fetch_offset", "buffer", "paused", "gen", "high_watermark", "reset", "error",
                 "retry_at")

    def __init__(self) -> None:
        self.position: int | None = None
        self.fetch_offset: int | None = None
        self.buffer: collections.deque[list[Record]] = collections.deque()
        self.paused = False
        self.gen = 0
        self.high_watermark = -1
        self.reset: int | None = None  # EARLIEST/LATEST when a reset is pending
        self.error: KafkaError | None = None
        self.retry_at = 0.0


class _FetchSession:
    """This consumer's fetch session with one broker: id and next epoch (0 = none yet), and the
    fetch offset the broker holds for each partition in it."""

    __slots__ = ("id", "epoch", "parts")

    def __init__(self) -> None:
        self.id = 0
        self.epoch = 0
        self.parts: dict[TopicPartition, int] = {}

    def reset(self) -> None:
        self.id = 0
        self.epoch = 0
        self.parts = {}


class AIOConsumer:
    """asyncio consumer: ``await start()`` (or ``async with``), then ``assign`` or ``subscribe``; records
    come from ``getmany``/``getone``/``async for``, and ``commit`` stores the group's offsets. Settings
    are the Java consumer's names with dots as underscores."""
    def __init__(self, *topics: str, bootstrap_servers: str | Iterable[str] = "localhost:9092",
                 group_id: str | None = None, client_id: str = "kafka-core-python",
                 auto_offset_reset: str = "latest", enable_auto_commit: bool = True,
                 auto_commit_interval_ms: int = 5000, fetch_min_bytes: int = 1, fetch_max_wait_ms: int = 500,
                 fetch_max_bytes: int = 52428800, max_partition_fetch_bytes: int = 1048576,
                 max_poll_records: int = 500, isolation_level: str = "read_uncommitted",
                 check_crcs: bool = True, session_timeout_ms: int = 45000, heartbeat_interval_ms: int = 3000,
                 max_poll_interval_ms: int = 300000, request_timeout_ms: int = 30000,
                 retry_backoff_ms: int = 100, metadata_max_age_ms: int = 300000,
                 partition_assignment_strategy: Iterable[str] = ("range", "cooperative-sticky"),
                 group_instance_id: str | None = None, allow_auto_create_topics: bool = True,
                 connect_timeout_ms: int = 10000, fetch_sessions: bool = True,
                 **security: Unpack[SecuritySettings]) -> None:
        if auto_offset_reset not in ("earliest", "latest", "none"):
            raise ValueError("auto_offset_reset must be 'earliest', 'latest' or 'none'")
        self._initial_topics = topics
        self.bootstrap_servers = bootstrap_servers
        self.group_id = group_id
        self.client_id = client_id
        self.auto_offset_reset = auto_offset_reset
        self.enable_auto_commit = enable_auto_commit and group_id is not None
        self.auto_commit_interval = auto_commit_interval_ms / 1000
        self.fetch_min_bytes = fetch_min_bytes
        self.fetch_max_wait_ms = fetch_max_wait_ms
        self.fetch_max_bytes = fetch_max_bytes
        self.fetch_sessions = fetch_sessions
        self._sessions: dict[int, _FetchSession] = {}
        self.fetch_session_stats = [0, 0]  # incremental, full fetches (sessions in use only)
        self.max_partition_fetch_bytes = max_partition_fetch_bytes
        self.max_poll_records = max_poll_records
        self.isolation_level = 1 if isolation_level == "read_committed" else 0
        self.check_crcs = check_crcs
        self.request_timeout_ms = request_timeout_ms
        self.retry_backoff = retry_backoff_ms / 1000
        self._cluster_kw = dict(client_id=client_id, request_timeout_ms=request_timeout_ms,
                                connect_timeout_ms=connect_timeout_ms, metadata_max_age_ms=metadata_max_age_ms,
                                retry_backoff_ms=retry_backoff_ms, allow_auto_create_topics=allow_auto_create_topics,
                                security=Security(**security))
        self._group_kw = dict(session_timeout_ms=session_timeout_ms, rebalance_timeout_ms=max_poll_interval_ms,
                              heartbeat_interval_ms=heartbeat_interval_ms, assignors=partition_assignment_strategy,
                              group_instance_id=group_instance_id)
        self.cluster: Cluster | None = None
        self._parts: dict[TopicPartition, _PState] = {}
        self._subscribed: list[str] | None = None
        self._group: GroupCoordinator | None = None
        self._data = asyncio.Event()
        self._wake = asyncio.Event()
        self._fetching: set[int] = set()
        self._tasks: list[asyncio.Task[Any]] = []
        self._fetch_tasks: set[asyncio.Future[None]] = set()
        self._closed = False
        self._last_commit = time.monotonic()
        self._started = False

    # ---- life cycle ----
    async def start(self) -> AIOConsumer:
        """Connect and fetch the cluster's metadata; returns self."""
        self._data = asyncio.Event()
        self._wake = asyncio.Event()
        self.cluster = Cluster(self.bootstrap_servers, **self._cluster_kw)  # type: ignore[arg-type]
        self.cluster.metadata_listeners.append(self._wake.set)
        await self.cluster.bootstrap_metadata()
        if self.group_id is not None:
            self._group = GroupCoordinator(self.cluster, self.group_id, **self._group_kw)  # type: ignore[arg-type]
            self._group.on_assignment = self._on_group_assignment
            self._group.on_revoke_commit = self._commit_revoked
        self._tasks.append(asyncio.ensure_future(self._fetch_loop()))
        self._started = True
        if self._initial_topics:
            self.subscribe(list(self._initial_topics))
        return self

    async def __aenter__(self) -> AIOConsumer:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Leave the group (if any), commit when auto-commit is on, and close the connections."""
        if self._closed:
            return
        try:
            if self._group is not None:
                if self.enable_auto_commit and self._group.generation >= 0:
                    try:
                        await self.commit()
                    except KafkaError as exc:
                        log.warning("final commit failed: %s", exc)
                await self._group.leave()
        finally:
            self._closed = True
            tasks = self._tasks + [t for t in self._fetch_tasks if not t.done()]
            for t in tasks:
                t.cancel()
            for t in tasks:
                try:
                    await t
                except (asyncio.CancelledError, Exception):
                    pass
            if self.cluster is not None:
                await self.cluster.close()

    # ---- assignment ----
    def assign(self, partitions: Iterable[TopicPartition | tuple[str, int]]) -> None:
        """Manual assignment (no group membership); replaces any previous one."""
        if self._subscribed is not None:
            raise IllegalStateError("assign() after subscribe(): unsubscribe() first")
        self._set_assignment({TopicPartition(*tp) for tp in partitions})

    def _set_assignment(self, tps: set[TopicPartition]) -> None:
        for tp in list(self._parts):
            if tp not in tps:
                del self._parts[tp]
        for tp in tps:
            if tp not in self._parts:
                self._parts[tp] = _PState()
        if self.cluster is not None and tps:
            new = {tp.topic for tp in tps} - self.cluster.tracked
            if new:
                self.cluster.tracked |= new
                self.cluster.request_refresh()
        self._wake.set()

    def subscribe(self, topics: Iterable[str], listener: RebalanceListener | None = None) -> None:
        """Join the group on these topics (needs group_id); the group assigns the partitions, ``listener``
        hears of revocations and assignments."""
        if self.group_id is None:
            raise IllegalStateError("subscribe() needs a group_id")
        topics = list(topics)
        self._subscribed = topics
        if self._group is not None:
            self._group.listener = listener or self._group.listener
            self._group.set_subscription(topics)
            self.cluster.tracked |= set(topics)  # type: ignore[union-attr]
        self._wake.set()

    def unsubscribe(self) -> None:
        """Leave the group's subscription: no partition is assigned any more."""
        self._subscribed = None
        if self._group is not None:
            self._group.set_subscription([])
        self._set_assignment(set())

    def subscription(self) -> set[str]:
        """The topics subscribed to."""
        return set(self._subscribed or ())

    def assignment(self) -> set[TopicPartition]:
        """The partitions currently assigned (by ``assign`` or by the group)."""
        return set(self._parts)

    def _on_group_assignment(self, owned: set[TopicPartition], added: set[TopicPartition]) -> None:  # noqa: ARG002
        self._set_assignment(owned)

    async def _commit_revoked(self, revoked: set[TopicPartition]) -> None:
        if self.enable_auto_commit:
            offsets = {tp: OffsetAndMetadata(st.position) for tp, st in self._parts.items()
                       if tp in revoked and st.position is not None}
            if offsets:
                await self._commit(offsets)

    async def _ensure_group(self) -> None:
        g = self._group
        if g is not None and self._subscribed is not None:
            # A topic may have gained partitions: the leader rejoins when it sees more.
            if g.need_rejoin:
                await g.ensure_active(self._group_kw["rebalance_timeout_ms"] / 1000)  # type: ignore[operator]

    # ---- positions ----
    def _state(self, tp: TopicPartition | tuple[str, int]) -> _PState:
        st = self._parts.get(TopicPartition(*tp))
        if st is None:
            raise IllegalStateError(f"{tp} is not assigned to this consumer")
        return st

    def seek(self, tp: TopicPartition | tuple[str, int], offset: int) -> None:
        """Fetch ``tp`` from ``offset`` next."""
        st = self._state(tp)
        self._move(st, offset)

    def _move(self, st: _PState, offset: int | None, reset: int | None = None) -> None:
        st.gen += 1
        st.position = offset
        st.fetch_offset = offset
        st.buffer.clear()
        st.reset = reset
        st.error = None
        self._wake.set()

    def seek_to_beginning(self, *tps: TopicPartition | tuple[str, int]) -> None:
        """Fetch these partitions (all assigned when none given) from their log start next."""
        for tp in tps or list(self._parts):
            self._move(self._state(tp), None, EARLIEST)

    def seek_to_end(self, *tps: TopicPartition | tuple[str, int]) -> None:
        """Fetch these partitions (all assigned when none given) from their log end next."""
        for tp in tps or list(self._parts):
            self._move(self._state(tp), None, LATEST)

    async def position(self, tp: TopicPartition | tuple[str, int]) -> int:
        """The offset of the next record this consumer will return for ``tp``."""
        st = self._state(tp)
        deadline = time.monotonic() + self.request_timeout_ms / 1000
        while st.position is None:
            await self._init_positions()
            if st.error is not None:
                raise st.error
            if st.position is None:
                if time.monotonic() > deadline:
                    raise KafkaTimeoutError(f"no position for {tp}")
                await asyncio.sleep(self.retry_backoff)
        return st.position

    def pause(self, *tps: TopicPartition | tuple[str, int]) -> None:
        """Stop fetching these partitions until ``resume``."""
        for tp in tps:
            self._state(tp).paused = True

    def resume(self, *tps: TopicPartition | tuple[str, int]) -> None:
        """Fetch these paused partitions again."""
        for tp in tps:
            self._state(tp).paused = False
        self._wake.set()

    def paused(self) -> set[TopicPartition]:
        """The partitions paused."""
        return {tp for tp, st in self._parts.items() if st.paused}

    def highwater(self, tp: TopicPartition | tuple[str, int]) -> int:
        """The high watermark of ``tp`` as the last fetch response said (-1 before the first)."""
        return self._state(tp).high_watermark

    async def _init_positions(self) -> None:
        """Positions for partitions without one: the committed offset (groups), else the reset policy."""
        missing = [tp for tp, st in self._parts.items() if st.position is None and st.error is None]
        if not missing:
            return
        if self.group_id is not None:
            need = [tp for tp in missing if self._parts[tp].reset is None]
            if need:
                committed = await fetch_committed(self.cluster, self.group_id, need,  # type: ignore[arg-type]
                                                  require_stable=self.isolation_level == 1)
                for tp, om in committed.items():
                    st = self._parts.get(tp)
                    if st is not None and st.position is None and st.reset is None and om is not None:
                        st.position = st.fetch_offset = om.offset
        resets: dict[TopicPartition, int] = {}
        for tp in missing:
            st = self._parts.get(tp)
            if st is None or st.position is not None:
                continue
            if st.reset is None:
                if self.auto_offset_reset == "none":
                    st.error = IllegalStateError(f"no committed offset for {tp} and auto_offset_reset='none'")
                    continue
                st.reset = EARLIEST if self.auto_offset_reset == "earliest" else LATEST
            resets[tp] = st.reset
        if resets:
            gens = {tp: self._parts[tp].gen for tp in resets}
            found = await self._list_offsets(resets)
            for tp, (off, _ts) in found.items():
                st = self._parts.get(tp)
                if st is not None and st.gen == gens[tp] and st.position is None and off is not None:
                    st.position = st.fetch_offset = off
                    st.reset = None

    async def _list_offsets(self, query: dict[TopicPartition, int]) -> dict[TopicPartition, tuple[int | None, int]]:
        """ListOffsets per leader; timestamps -2 earliest, -1 latest, else first offset at/after."""
        assert self.cluster is not None
        out: dict[TopicPartition, tuple[int | None, int]] = {}
        deadline = time.monotonic() + self.request_timeout_ms / 1000
        todo = dict(query)
        while todo:
            await self.cluster.refresh_metadata({tp.topic for tp in todo}) if any(
                self.cluster.leader_for(*tp) < 0 for tp in todo) else None
            by_node: dict[int, dict[TopicPartition, int]] = {}
            for tp, ts in todo.items():
                leader = self.cluster.leader_for(*tp)
                if leader >= 0:
                    by_node.setdefault(leader, {})[tp] = ts
            retry: dict[TopicPartition, int] = {tp: ts for tp, ts in todo.items() if self.cluster.leader_for(*tp) < 0}
            last_err: KafkaError | None = None
            for node, q in by_node.items():
                topics: dict[str, list[Any]] = {}
                for tp, ts in q.items():
                    topics.setdefault(tp.topic, []).append(kp.ListOffsetsRequest.ListOffsetsPartition(
                        partition_index=tp.partition, current_leader_epoch=-1, timestamp=ts))
                req = kp.ListOffsetsRequest(replica_id=-1, isolation_level=self.isolation_level,
                                            topics=[kp.ListOffsetsRequest.ListOffsetsTopic(name=t, partitions=ps)
                                                    for t, ps in topics.items()],
                                            timeout_ms=self.request_timeout_ms)
                try:
                    resp = await self.cluster.send(node, req)
                except KafkaError as exc:
                    last_err = exc
                    retry.update(q)
                    continue
                for t in resp.topics:
                    for p in t.partitions:
                        tp = TopicPartition(t.name, p.partition_index)
                        if p.error_code == 0:
                            out[tp] = (p.offset if p.offset >= 0 else None, p.timestamp)
                        else:
                            err = for_code(p.error_code, f"ListOffsets {tp}")
                            if not err.retriable:
                                raise err
                            last_err = err
                            retry[tp] = q[tp]
            todo = retry
            if todo:
                if time.monotonic() > deadline:
                    raise last_err or KafkaTimeoutError("ListOffsets timed out")
                self.cluster.request_refresh()
                await asyncio.sleep(self.retry_backoff)
        return out

    async def offsets_for_times(self, timestamps: dict[TopicPartition, int]) -> dict[TopicPartition, OffsetAndTimestamp | None]:
        """For each partition, the first offset whose timestamp is at or after the given one (ListOffsets
        by time), or None."""
        found = await self._list_offsets({TopicPartition(*tp): ts for tp, ts in timestamps.items()})
        return {tp: None if off is None else OffsetAndTimestamp(off, ts) for tp, (off, ts) in found.items()}

    async def beginning_offsets(self, tps: Iterable[TopicPartition]) -> dict[TopicPartition, int]:
        """Log start offset of each partition."""
        found = await self._list_offsets({TopicPartition(*tp): EARLIEST for tp in tps})
        return {tp: off if off is not None else -1 for tp, (off, _) in found.items()}

    async def end_offsets(self, tps: Iterable[TopicPartition]) -> dict[TopicPartition, int]:
        """The log end offset (high watermark) of each partition, -1 where the broker gave none."""
        found = await self._list_offsets({TopicPartition(*tp): LATEST for tp in tps})
        return {tp: off if off is not None else -1 for tp, (off, _) in found.items()}

    async def partitions_for_topic(self, topic: str) -> set[int]:
        """Partition numbers of ``topic``, waiting up to request_timeout_ms for its metadata."""
        assert self.cluster is not None
        meta = await self.cluster.wait_for_topic(topic, self.request_timeout_ms / 1000)
        return set(meta.partitions)

    async def topics(self) -> set[str]:
        """Names of the cluster's topics."""
        assert self.cluster is not None
        conn = await self.cluster.any_connection()
        resp = await conn.send(kp.MetadataRequest(topics=None, allow_auto_topic_creation=False))
        return {t.name for t in resp.topics if not t.error_code}

    # ---- commits ----
    async def commit(self, offsets: dict[TopicPartition, int | OffsetAndMetadata] | None = None) -> None:
        """Commit ``offsets`` (default: the current positions) and wait for the broker."""
        if self.group_id is None:
            raise IllegalStateError("commit() needs a group_id")
        if offsets is None:
            oam = {tp: OffsetAndMetadata(st.position) for tp, st in self._parts.items() if st.position is not None}
        else:
            oam = {TopicPartition(*tp): (o if isinstance(o, OffsetAndMetadata) else OffsetAndMetadata(o))
                   for tp, o in offsets.items()}
        if oam:
            await self._commit(oam)

    def commit_async(self, offsets: dict[TopicPartition, int | OffsetAndMetadata] | None = None,
                     callback: Any = None) -> asyncio.Future[None]:
        """Commit without waiting; ``callback(err)`` gets None or the error once it is done."""
        fut = asyncio.ensure_future(self.commit(offsets))
        if callback is not None:
            fut.add_done_callback(lambda f: callback(None if f.cancelled() else f.exception()))
        return fut

    async def _commit(self, oam: dict[TopicPartition, OffsetAndMetadata]) -> None:
        g = self._group
        gen, member = (g.generation, g.member_id) if g is not None and self._subscribed is not None else (-1, "")
        await commit_offsets(self.cluster, self.group_id, oam, gen, member,  # type: ignore[arg-type]
                             timeout=self.request_timeout_ms / 1000)
        self._last_commit = time.monotonic()

    def group_metadata(self) -> ConsumerGroupMetadata:
        """This member's group id, generation, member id and group instance id, for a
        transactional producer's ``send_offsets_to_transaction`` (KIP-447: the group coordinator
        refuses the offsets if this member has left the generation since).  Without a
        subscription (assign mode) the generation is -1 and the member id empty."""
        if self.group_id is None:
            raise IllegalStateError("group_metadata() needs a group_id")
        g = self._group
        instance = self._group_kw.get("group_instance_id")
        if g is None or self._subscribed is None:
            return ConsumerGroupMetadata(self.group_id, -1, "", instance)  # type: ignore[arg-type]
        return ConsumerGroupMetadata(self.group_id, g.generation, g.member_id, g.group_instance_id)

    async def committed(self, tp: TopicPartition | tuple[str, int]) -> int | None:
        """The group's committed offset of ``tp`` (None when nothing is committed).  With
        read_committed, offsets of a transaction still being completed are waited for (KIP-447)."""
        if self.group_id is None:
            raise IllegalStateError("committed() needs a group_id")
        r = await fetch_committed(self.cluster, self.group_id, [TopicPartition(*tp)],  # type: ignore[arg-type]
                                  require_stable=self.isolation_level == 1)
        om = r.get(TopicPartition(*tp))
        return None if om is None else om.offset

    async def _maybe_auto_commit(self) -> None:
        if self.enable_auto_commit and time.monotonic() - self._last_commit >= self.auto_commit_interval:
            self._last_commit = time.monotonic()
            try:
                await self.commit()
            except KafkaError as exc:
                log.warning("auto commit failed: %s", exc)

    # ---- fetching ----
    async def _fetch_loop(self) -> None:
        assert self.cluster is not None
        while not self._closed:
            self._wake.clear()
            try:
                await self._ensure_group()
                await self._init_positions()
                next_at = self._send_fetches()
            except KafkaError as exc:
                log.debug("fetch loop: %s", exc)
                await asyncio.sleep(self.retry_backoff)
                next_at = None
            except Exception:  # pragma: no cover
                log.exception("fetch loop failed")
                await asyncio.sleep(self.retry_backoff)
                next_at = None
            wait = self.retry_backoff * 5
            if next_at is not None:
                wait = min(wait, max(0.0, next_at - time.monotonic()))
            try:
                await asyncio.wait_for(self._wake.wait(), wait)
            except TimeoutError:
                pass

    def _send_fetches(self) -> float | None:
        """Start a fetch per leader for the fetchable partitions; returns when a partition in
        backoff (after a fetch error) or without a known leader should be looked at again."""
        assert self.cluster is not None
        now = time.monotonic()
        next_at: float | None = None
        by_node: dict[int, list[tuple[TopicPartition, _PState]]] = {}
        need_meta = False
        for tp, st in self._parts.items():
            if st.paused or st.fetch_offset is None or st.error is not None or len(st.buffer) > 1:
                continue
            if st.retry_at > now:
                next_at = st.retry_at if next_at is None else min(next_at, st.retry_at)
                continue
            leader = self.cluster.leader_for(*tp)
            if leader < 0:
                need_meta = True
                continue
            if leader in self._fetching:
                continue
            by_node.setdefault(leader, []).append((tp, st))
        if need_meta:
            # No leader known (an election, or invalidated after NOT_LEADER): ask again after
            # retry_backoff_ms until metadata names one.
            self.cluster.request_refresh()
            t = now + self.retry_backoff
            next_at = t if next_at is None else min(next_at, t)
        for node, parts in by_node.items():
            self._fetching.add(node)
            task = asyncio.ensure_future(self._fetch(node, parts))
            self._fetch_tasks.add(task)
            task.add_done_callback(self._fetch_tasks.discard)
            task.add_done_callback(functools.partial(self._fetch_done, node))
        return next_at

    def _fetch_done(self, node: int, fut: asyncio.Future[None]) -> None:
        self._fetching.discard(node)
        if not fut.cancelled() and fut.exception() is not None:
            log.debug("fetch from node %s failed: %s", node, fut.exception())
        self._wake.set()

    async def _fetch(self, node: int, parts: list[tuple[TopicPartition, _PState]]) -> None:
        assert self.cluster is not None
        try:
            conn = await self.cluster.connection(node)
        except KafkaError:
            self.cluster.request_refresh()
            await asyncio.sleep(self.retry_backoff)
            return
        sent: dict[TopicPartition, tuple[_PState, int, int]] = {}
        for tp, st in parts:
            assert st.fetch_offset is not None
            sent[tp] = (st, st.gen, st.fetch_offset)
        want = {tp: offset for tp, (_, _, offset) in sent.items()}
        # Fetch sessions (KIP-227, Fetch v7+): after a full fetch the broker remembers the
        # partitions; later requests carry only partitions whose fetch offset changed, plus the
        # ones to forget (paused, full buffer, moved), and answers only partitions with news.
        sess = self._sessions.get(node)
        if sess is None:
            sess = self._sessions[node] = _FetchSession()
        use_session = self.fetch_sessions and conn.version(ApiKey.FETCH) >= 7
        incremental = use_session and sess.id > 0
        if incremental:
            changed = [tp for tp, off in want.items() if sess.parts.get(tp) != off]
            forgotten: dict[str, list[int]] = {}
            for tp in sess.parts:
                if tp not in want:
                    forgotten.setdefault(tp.topic, []).append(tp.partition)
            session_id, epoch = sess.id, sess.epoch
        else:
            changed = list(want)
            forgotten = {}
            session_id, epoch = 0, (0 if use_session else -1)
        topics: dict[str, list[Any]] = {}
        for tp in changed:
            topics.setdefault(tp.topic, []).append(kp.FetchRequest.FetchPartition(
                partition=tp.partition, current_leader_epoch=-1, fetch_offset=want[tp],
                last_fetched_epoch=-1, log_start_offset=-1, partition_max_bytes=self.max_partition_fetch_bytes))
        req = kp.FetchRequest(replica_id=-1, max_wait_ms=self.fetch_max_wait_ms, min_bytes=self.fetch_min_bytes,
                              max_bytes=self.fetch_max_bytes, isolation_level=self.isolation_level,
                              session_id=session_id, session_epoch=epoch,
                              topics=[kp.FetchRequest.FetchTopic(topic=t, partitions=ps) for t, ps in topics.items()],
                              forgotten_topics_data=[kp.FetchRequest.ForgottenTopic(topic=t, partitions=ps)
                                                     for t, ps in forgotten.items()],
                              rack_id="")
        try:
            resp = await conn.send(req, timeout=self.request_timeout_ms / 1000 + self.fetch_max_wait_ms / 1000)
        except KafkaError:
            sess.reset()
            self.cluster.request_refresh()
            await asyncio.sleep(self.retry_backoff)
            return
        if resp.error_code:
            log.debug("fetch error %s", resp.error_code)
            sess.reset()  # FETCH_SESSION_ID_NOT_FOUND, INVALID_FETCH_SESSION_EPOCH, ...: start over
            if resp.error_code not in _SESSION_ERRORS:
                await asyncio.sleep(self.retry_backoff)
            return
        if use_session:
            if incremental:
                sess.epoch = sess.epoch + 1 if sess.epoch < 0x7FFFFFFF else 1
            elif resp.session_id > 0:
                sess.id, sess.epoch = resp.session_id, 1
            sess.parts = want if sess.id > 0 else {}
            self.fetch_session_stats[0 if incremental else 1] += 1
        got = False
        for t in resp.responses:
            for p in t.partitions:
                tp = TopicPartition(t.topic, p.partition_index)
                entry = sent.get(tp)
                if entry is None:
                    continue
                st, gen, offset = entry
                if self._parts.get(tp) is not st or st.gen != gen or st.fetch_offset != offset:
                    continue  # seeked or unassigned meanwhile
                got |= self._on_partition_data(tp, st, p, offset)
        if got:
            self._data.set()

    def _on_partition_data(self, tp: TopicPartition, st: _PState, p: Any, offset: int) -> bool:
        code = p.error_code
        if code:
            if code in _METADATA_ERRORS or code == _UNKNOWN_SERVER_ERROR or for_code(code).retriable:
                # Fetch the same offset again after retry_backoff_ms: nothing skipped, nothing twice.
                log.debug("fetch %s at offset %d: error %d, retrying", tp, offset, code)
                assert self.cluster is not None
                if code in _METADATA_ERRORS:
                    self.cluster.invalidate_leader(tp.topic, tp.partition)
                if code != _UNKNOWN_SERVER_ERROR:
                    self.cluster.request_refresh()
                st.retry_at = time.monotonic() + self.retry_backoff
            elif code == 1:  # OFFSET_OUT_OF_RANGE
                if self.auto_offset_reset == "none":
                    st.error = OffsetOutOfRangeError(f"{tp} offset {offset} is out of range")
                    self._data.set()
                else:
                    self._move(st, None, EARLIEST if self.auto_offset_reset == "earliest" else LATEST)
            else:
                st.error = for_code(code, f"fetch {tp}")
                self._data.set()
            return False
        st.high_watermark = p.high_watermark
        records = p.records
        if not records:
            return False
        aborted = None
        if self.isolation_level and p.aborted_transactions:
            aborted = [(a.producer_id, a.first_offset) for a in p.aborted_transactions]
        try:
            recs, nxt = decode_records(records, offset, check_crcs=self.check_crcs, aborted=aborted, topic=tp.topic,
                                       partition=tp.partition)
        except Exception as exc:  # corrupt data: surface it, do not skip silently
            st.error = for_code(2, f"{tp} at offset {offset}: {exc}")
            self._data.set()
            return False
        st.fetch_offset = max(nxt, offset)
        if recs:
            st.buffer.append(recs)
            return True
        if st.position == offset and not st.buffer:
            st.position = st.fetch_offset  # only control batches (or compacted gaps) were read
        return False

    def _drain_buffered(self, partitions: Iterable[TopicPartition] | None, max_records: int) -> dict[TopicPartition, list[Record]]:
        out: dict[TopicPartition, list[Record]] = {}
        n = 0
        tps = list(partitions) if partitions else list(self._parts)
        for tp in tps:
            st = self._parts.get(tp)
            if st is None:
                continue
            if st.error is not None:
                err, st.error = st.error, None
                if out:
                    st.error = err  # hand out what we have first
                    return out
                raise err
            if st.paused:
                continue
            while st.buffer and n < max_records:
                chunk = st.buffer[0]
                pos = st.position if st.position is not None else 0
                if chunk and chunk[0].offset < pos:
                    # Drop what lies before the position (a fetch that raced a commit or seek).
                    chunk = [r for r in chunk if r.offset >= pos]
                take = max_records - n
                if len(chunk) <= take:
                    st.buffer.popleft()
                    part = chunk
                else:
                    part = chunk[:take]
                    st.buffer[0] = chunk[take:]
                if part:
                    out.setdefault(tp, []).extend(part)
                    n += len(part)
                    st.position = part[-1].offset + 1
                if not st.buffer and st.fetch_offset is not None and st.position is not None \
                        and st.fetch_offset > st.position:
                    st.position = st.fetch_offset
            if n >= max_records:
                break
        if out:
            self._wake.set()  # room in the buffers: fetch more
        return out

    async def getmany(self, *partitions: TopicPartition, timeout_ms: int = 0,
                      max_records: int | None = None) -> dict[TopicPartition, list[Record]]:
        """Records fetched so far, waiting up to ``timeout_ms`` for some."""
        if not self._started:
            raise IllegalStateError("consumer not started: await start() first")
        limit = max_records or self.max_poll_records
        deadline = time.monotonic() + timeout_ms / 1000
        await self._maybe_auto_commit()
        while True:
            self._data.clear()
            out = self._drain_buffered(partitions or None, limit)
            if out:
                return out
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return {}
            try:
                await asyncio.wait_for(self._data.wait(), remaining)
            except TimeoutError:
                return {}

    async def getone(self, *partitions: TopicPartition) -> ConsumerRecord:
        """The next record of these partitions (any assigned when none given), waiting as long as it takes."""
        while True:
            got = await self.getmany(*partitions, timeout_ms=1000, max_records=1)
            for recs in got.values():
                return recs[0]

    def __aiter__(self) -> AsyncIterator[ConsumerRecord]:
        return self._iter()

    async def _iter(self) -> AsyncIterator[ConsumerRecord]:
        while not self._closed:
            got = await self.getmany(timeout_ms=1000)
            for recs in got.values():
                for r in recs:
                    yield r


class Consumer:
    """Synchronous consumer over AIOConsumer, its loop in a background thread."""

    @lists_settings(AIOConsumer.__init__)
    def __init__(self, *topics: str, **config: Unpack[ConsumerSettings]) -> None:
        """``config``: AIOConsumer's settings, or the Java client's dotted names."""
        settings = check_settings(AIOConsumer.__init__, config, "consumer")
        self._thread = LoopThread("kafka-consumer")
        self._c: AIOConsumer = self._thread.call(self._create(topics, settings))

    def _create(self, topics: tuple[str, ...], config: dict[str, Any]) -> Any:
        async def make() -> AIOConsumer:
            c = AIOConsumer(*topics, **config)
            await c.start()
            return c
        return make

    def __enter__(self) -> Consumer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _sync(self, fn: Any, *args: Any) -> Any:
        async def call() -> Any:
            return fn(*args)
        return self._thread.run(call())

    def assign(self, partitions: Iterable[TopicPartition | tuple[str, int]]) -> None:
        """Take these partitions by hand (no group rebalancing); positions come from committed offsets or
        auto_offset_reset."""
        self._sync(self._c.assign, list(partitions))

    def subscribe(self, topics: Iterable[str], listener: RebalanceListener | None = None) -> None:
        """Join the group on these topics (needs group_id); the group assigns the partitions, ``listener``
        hears of revocations and assignments."""
        self._sync(self._c.subscribe, list(topics), listener)

    def unsubscribe(self) -> None:
        """Leave the group's subscription: no partition is assigned any more."""
        self._sync(self._c.unsubscribe)

    def assignment(self) -> set[TopicPartition]:
        """The partitions currently assigned (by ``assign`` or by the group)."""
        return self._sync(self._c.assignment)

    def poll(self, timeout: float = 0.0, max_records: int | None = None) -> dict[TopicPartition, list[Record]]:
        """Records by partition, waiting up to ``timeout`` seconds for some."""
        return self._thread.run(self._c.getmany(timeout_ms=int(timeout * 1000), max_records=max_records))

    def __iter__(self) -> Iterator[ConsumerRecord]:
        while True:
            for recs in self.poll(1.0).values():
                yield from recs

    def seek(self, tp: TopicPartition | tuple[str, int], offset: int) -> None:
        """Fetch ``tp`` from ``offset`` next."""
        self._sync(self._c.seek, tp, offset)

    def seek_to_beginning(self, *tps: TopicPartition) -> None:
        """Fetch these partitions (all assigned when none given) from their log start next."""
        self._sync(self._c.seek_to_beginning, *tps)

    def seek_to_end(self, *tps: TopicPartition) -> None:
        """Fetch these partitions (all assigned when none given) from their log end next."""
        self._sync(self._c.seek_to_end, *tps)

    def position(self, tp: TopicPartition | tuple[str, int]) -> int:
        """The offset of the next record this consumer will return for ``tp``."""
        return self._thread.run(self._c.position(tp))

    def pause(self, *tps: TopicPartition) -> None:
        """Stop fetching these partitions until ``resume``."""
        self._sync(self._c.pause, *tps)

    def resume(self, *tps: TopicPartition) -> None:
        """Fetch these paused partitions again."""
        self._sync(self._c.resume, *tps)

    def paused(self) -> set[TopicPartition]:
        """The partitions paused."""
        return self._sync(self._c.paused)

    def commit(self, offsets: dict[TopicPartition, int | OffsetAndMetadata] | None = None) -> None:
        """Commit these offsets (default: the current positions) for the group and wait until the
        coordinator has them."""
        self._thread.run(self._c.commit(offsets))

    def commit_async(self, offsets: dict[TopicPartition, int | OffsetAndMetadata] | None = None,
                     callback: Any = None) -> None:
        """Commit without waiting; ``callback(err)`` gets None or the error once it is done."""
        self._sync(self._c.commit_async, offsets, callback)

    def group_metadata(self) -> ConsumerGroupMetadata:
        """The member's group metadata for ``send_offsets_to_transaction`` (see AIOConsumer)."""
        return self._c.group_metadata()

    def committed(self, tp: TopicPartition | tuple[str, int]) -> int | None:
        """The group's committed offset of ``tp`` (None when nothing is committed).  With
        read_committed, offsets of a transaction still being completed are waited for (KIP-447)."""
        return self._thread.run(self._c.committed(tp))

    def offsets_for_times(self, timestamps: dict[TopicPartition, int]) -> dict[TopicPartition, OffsetAndTimestamp | None]:
        """For each partition, the first offset whose timestamp is at or after the given one (ListOffsets
        by time), or None."""
        return self._thread.run(self._c.offsets_for_times(timestamps))

    def beginning_offsets(self, tps: Iterable[TopicPartition]) -> dict[TopicPartition, int]:
        """Log start offset of each partition."""
        return self._thread.run(self._c.beginning_offsets(list(tps)))

    def end_offsets(self, tps: Iterable[TopicPartition]) -> dict[TopicPartition, int]:
        """The log end offset (high watermark) of each partition, -1 where the broker gave none."""
        return self._thread.run(self._c.end_offsets(list(tps)))

    def partitions_for_topic(self, topic: str) -> set[int]:
        """Partition numbers of ``topic``, waiting up to request_timeout_ms for its metadata."""
        return self._thread.run(self._c.partitions_for_topic(topic))

    def close(self) -> None:
        """Leave the group (if any), commit when auto-commit is on, and stop the consumer's thread."""
        if self._thread.stopped:
            return
        try:
            self._thread.run(self._c.close(), timeout=30)
        finally:
            self._thread.stop()
