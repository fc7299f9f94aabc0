"""Offset APIs of the group coordinator: OffsetCommit (8), OffsetFetch (9), OffsetDelete (47),
and offset retention (Kafka's ``OffsetMetadataManager``), mixed into ``GroupCoordinator``.

A commit is answered only after ``OffsetsStore.commit`` returned, i.e. after the batch is in
``__consumer_offsets`` (and fsynced when the broker's flush policy says so).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from kafka_protocol.errors import ErrorCode as E

from . import _proto as P
from .classic import COMPLETING_REBALANCE, DEAD, EMPTY, ClassicGroup
from .consumer import ConsumerGroup
from .records import OffsetValue

log = logging.getLogger("kafka_broker.groups")


class OffsetsMixin:
    """Needs from the coordinator: ``store``, ``groups``, ``started``, ``cfg``, ``now_ms``, ``call_later``,
    ``spawn``, ``_topic_info``, ``_topic_name``, ``_schedule_heartbeat``, ``_drop_group`` and the
    consumer-group validators."""

    store: Any
    groups: dict[str, Any]
    started: bool

    if TYPE_CHECKING:   # provided by GroupCoordinator and ConsumerGroupMixin
        def unavailable(self, group_id: str | None) -> int: ...
        def cfg(self, key: str) -> int: ...
        def now_ms(self) -> int: ...
        def call_later(self, delay_ms: float, cb: Callable[[], Any]) -> Any: ...
        def spawn(self, coro: Any) -> None: ...
        def _schedule_heartbeat(self, g: Any, m: Any, timeout_ms: int | None = None) -> None: ...
        def _drop_group(self, gid: str) -> None: ...
        def _validate_consumer_commit(self, g: ConsumerGroup, member_id: str, epoch: int | None,
                                      version: int) -> int: ...
        def _validate_consumer_fetch(self, g: ConsumerGroup, member_id: str, epoch: int | None) -> int: ...
    _topic_info: Any
    _topic_name: Any
    _retention_timer: Any

    # -- OffsetCommit (8) -----------------------------------------------------------
    async def offset_commit(self, req: Any, version: int, ctx: Any = None) -> Any:
        cls = P.message_class("OffsetCommitResponse")
        tcls = P.child(cls, "topics")
        pcls = P.child(tcls, "partitions")
        group_id = req.group_id
        by_id = version >= 10
        topics_in: list[tuple[Any, str | None, list[Any]]] = []
        for t in req.topics:
            name = t.name if not by_id else (self._topic_name(t.topic_id) if self._topic_name else None)
            topics_in.append((t, name, list(t.partitions)))
        err = self._validate_commit(req, version)
        results: dict[int, list[tuple[int, int]]] = {}
        to_write: list[tuple[str, int, OffsetValue]] = []
        slots: list[tuple[int, int]] = []
        now = self.now_ms()
        retention = P.get(req, "retention_time_ms", -1) if 2 <= version <= 4 else -1
        max_meta = self.cfg("offset.metadata.max.bytes")
        for ti, (_t, name, parts) in enumerate(topics_in):
            out = results[ti] = []
            for p in parts:
                code = err
                if not code:
                    meta = p.committed_metadata
                    if name is None:
                        code = E.UNKNOWN_TOPIC_ID if by_id else E.UNKNOWN_TOPIC_OR_PARTITION
                    elif not self._partition_exists(name, p.partition_index):
                        code = E.UNKNOWN_TOPIC_OR_PARTITION
                    elif meta is not None and len(meta.encode()) > max_meta:
                        code = E.OFFSET_METADATA_TOO_LARGE
                    else:
                        epoch = P.get(p, "committed_leader_epoch", -1) if version >= 6 else -1
                        to_write.append((name, p.partition_index, OffsetValue(
                            p.committed_offset, -1 if epoch is None else epoch, meta or "", now,
                            now + retention if retention is not None and retention >= 0 else -1)))
                        slots.append((ti, len(out)))
                out.append((p.partition_index, code))
        if to_write:
            if group_id not in self.groups:
                self.groups[group_id] = ClassicGroup(group_id, now)
            try:
                await self.store.commit(group_id, to_write)
            except Exception as e:  # noqa: BLE001
                log.warning("group %s: writing offsets failed: %s", group_id, e)
                for ti, i in slots:
                    results[ti][i] = (results[ti][i][0], E.COORDINATOR_NOT_AVAILABLE)
        topics = []
        for ti, (t, name, _) in enumerate(topics_in):
            topics.append(P.build(tcls, version, name=name or "", topic_id=P.get(t, "topic_id"),
                                  partitions=[P.build(pcls, version, partition_index=pi, error_code=c)
                                              for pi, c in results[ti]]))
        return P.build(cls, version, throttle_time_ms=0, topics=topics)

    # -- TxnOffsetCommit (28) ---------------------------------------------------------
    async def txn_offset_commit(self, req: Any, version: int, ctx: Any = None) -> Any:
        """Offsets committed inside a transaction (KIP-98, KIP-447): validated as an OffsetCommit
        of the group (a missing group with generation -1 is a simple group; with a generation it
        is ILLEGAL_GENERATION, as Kafka's ``validateTransactionalOffsetCommit``), written as the
        producer's transactional batch, and visible to OffsetFetch only once the transaction's
        COMMIT marker reaches ``__consumer_offsets`` (``complete_txn``)."""
        cls = P.message_class("TxnOffsetCommitResponse")
        tcls = P.child(cls, "topics")
        pcls = P.child(tcls, "partitions")
        group_id = req.group_id
        err = self.unavailable(group_id)
        if not err and not group_id:
            err = E.INVALID_GROUP_ID
        if not err and (req.producer_id < 0 or req.producer_epoch < 0):
            err = E.INVALID_PRODUCER_ID_MAPPING
        if not err:
            g = self.groups.get(group_id)
            generation = P.get(req, "generation_id", -1) if version >= 3 else -1
            if g is None and generation is not None and generation >= 0:
                err = E.ILLEGAL_GENERATION
            elif g is not None:
                shim = _CommitShim(group_id, -1 if generation is None else generation,
                                   (P.get(req, "member_id", "") or "") if version >= 3 else "",
                                   P.get(req, "group_instance_id") if version >= 3 else None)
                err = self._validate_commit(shim, 9)
                if err == E.STALE_MEMBER_EPOCH:   # not in TxnOffsetCommit's errors: Kafka answers this
                    err = E.ILLEGAL_GENERATION
        now = self.now_ms()
        max_meta = self.cfg("offset.metadata.max.bytes")
        results: list[tuple[str, list[tuple[int, int]]]] = []
        to_write: list[tuple[str, int, OffsetValue]] = []
        slots: list[tuple[int, int]] = []
        for t in req.topics:
            out: list[tuple[int, int]] = []
            results.append((t.name, out))
            for p in t.partitions:
                code = err
                meta = p.committed_metadata
                if not code:
                    if not self._partition_exists(t.name, p.partition_index):
                        code = E.UNKNOWN_TOPIC_OR_PARTITION
                    elif meta is not None and len(meta.encode()) > max_meta:
                        code = E.OFFSET_METADATA_TOO_LARGE
                    else:
                        epoch = P.get(p, "committed_leader_epoch", -1) if version >= 2 else -1
                        to_write.append((t.name, p.partition_index, OffsetValue(
                            p.committed_offset, -1 if epoch is None else epoch, meta or "", now, -1)))
                        slots.append((len(results) - 1, len(out)))
                out.append((p.partition_index, code))
        if to_write:
            if group_id not in self.groups:
                self.groups[group_id] = ClassicGroup(group_id, now)
            try:
                await self.store.txn_commit(group_id, req.producer_id, req.producer_epoch, to_write)
            except Exception as e:  # noqa: BLE001
                code = getattr(e, "error_code", 0)
                log.warning("group %s: writing transactional offsets failed: %s", group_id, e)
                # a fenced or stale producer is the log's answer (INVALID_PRODUCER_EPOCH...)
                answer = code if code in (E.INVALID_PRODUCER_EPOCH, E.PRODUCER_FENCED, E.INVALID_TXN_STATE) \
                    else E.COORDINATOR_NOT_AVAILABLE
                for ti, i in slots:
                    pi = results[ti][1][i][0]
                    results[ti][1][i] = (pi, answer)
        return P.build(cls, version, throttle_time_ms=0, topics=[
            P.build(tcls, version, name=name, partitions=[
                P.build(pcls, version, partition_index=pi, error_code=c) for pi, c in parts])
            for name, parts in results])

    def complete_txn(self, partition: int, producer_id: int, commit: bool) -> None:
        """A transaction marker reached ``__consumer_offsets-<partition>`` (the broker calls this
        once it is durable): settle the producer's pending offsets of that partition's groups."""
        n = self.store.complete_txn(partition, producer_id, commit)
        if n:
            log.debug("groups of %s-%d: %d transactional offset(s) of producer %d %s", "__consumer_offsets",
                      partition, n, producer_id, "committed" if commit else "aborted")

    def _partition_exists(self, topic: str, partition: int) -> bool:
        if self._topic_info is None:
            return True
        info = self._topic_info(topic)
        return info is not None and 0 <= partition < info.partitions

    def _validate_commit(self, req: Any, version: int) -> int:
        group_id = req.group_id
        if err := self.unavailable(group_id):
            return err
        if not group_id:
            return E.INVALID_GROUP_ID
        generation = P.get(req, "generation_id_or_member_epoch", -1)
        member_id = P.get(req, "member_id", "") or ""
        instance_id = P.get(req, "group_instance_id") if version >= 7 else None
        g = self.groups.get(group_id)
        if g is None:
            if generation is None or generation < 0:
                return E.NONE      # a "simple" group: created on write
            return E.GROUP_ID_NOT_FOUND if version >= 9 else E.ILLEGAL_GENERATION
        if isinstance(g, ConsumerGroup):
            return self._validate_consumer_commit(g, member_id, generation, version)
        if g.state == DEAD:
            return E.COORDINATOR_NOT_AVAILABLE
        if (generation is not None and generation >= 0) or member_id or instance_id is not None:
            err = g.validate_member(member_id, instance_id)
            if err:
                return err
            if generation != g.generation_id:
                return E.ILLEGAL_GENERATION
        elif g.state != EMPTY:
            # without member id and generation, commits are only accepted for an empty group
            return E.UNKNOWN_MEMBER_ID
        if g.state == COMPLETING_REBALANCE:
            return E.REBALANCE_IN_PROGRESS
        if member_id in g.members:
            self._schedule_heartbeat(g, g.members[member_id])
        return E.NONE

    # -- OffsetFetch (9) ------------------------------------------------------------
    async def offset_fetch(self, req: Any, version: int, ctx: Any = None) -> Any:
        cls = P.message_class("OffsetFetchResponse")
        require_stable = bool(P.get(req, "require_stable", False)) if version >= 7 else False
        if version >= 8:
            gcls = P.child(cls, "groups")
            tcls = P.child(gcls, "topics")
            pcls = P.child(tcls, "partitions")
            groups = []
            for rg in req.groups:
                err, topics = self._fetch_group(rg.group_id, rg.topics, version, require_stable,
                                                P.get(rg, "member_id"), P.get(rg, "member_epoch", -1))
                groups.append(P.build(gcls, version, group_id=rg.group_id, error_code=err, topics=[
                    P.build(tcls, version, name=name, topic_id=tid, partitions=[
                        P.build(pcls, version, partition_index=pi, committed_offset=off, committed_leader_epoch=ep,
                                metadata=meta, error_code=pe) for pi, off, ep, meta, pe in parts])
                    for name, tid, parts in topics]))
            return P.build(cls, version, throttle_time_ms=0, groups=groups)
        tcls = P.child(cls, "topics")
        pcls = P.child(tcls, "partitions")
        req_topics = req.topics
        if version < 2 and req_topics is None:
            req_topics = []
        err, topics = self._fetch_group(req.group_id, req_topics, version, require_stable, None, -1)
        if version < 2 and err:
            topics = [(n, tid, [(pi, -1, -1, "", err) for pi, *_ in parts]) for n, tid, parts in topics]
        return P.build(cls, version, throttle_time_ms=0, error_code=err, topics=[
            P.build(tcls, version, name=name, partitions=[
                P.build(pcls, version, partition_index=pi, committed_offset=off, committed_leader_epoch=ep,
                        metadata=meta, error_code=pe) for pi, off, ep, meta, pe in parts])
            for name, _tid, parts in topics])

    def _fetch_group(self, group_id: str, req_topics: Any, version: int, require_stable: bool,
                     member_id: str | None, member_epoch: int | None,
                     ) -> tuple[int, list[tuple[str, Any, list[tuple[int, int, int, str, int]]]]]:
        by_id = version >= 10
        err: int
        if self.unavailable(group_id):
            err = self.unavailable(group_id)
        elif not group_id:
            err = E.INVALID_GROUP_ID
        else:
            err = E.NONE
            g = self.groups.get(group_id)
            if isinstance(g, ConsumerGroup) and member_id is not None:
                err = self._validate_consumer_fetch(g, member_id, member_epoch)
            elif g is None and member_id is not None and (member_epoch or -1) >= 0:
                err = E.GROUP_ID_NOT_FOUND
        committed = self.store.committed(group_id) if not err else {}
        out: list[tuple[str, Any, list[tuple[int, int, int, str, int]]]] = []

        def part(name: str, pi: int) -> tuple[int, int, int, str, int]:
            if require_stable and self.store.pending(group_id, name, pi):
                return pi, -1, -1, "", E.UNSTABLE_OFFSET_COMMIT
            v = committed.get((name, pi))
            return (pi, -1, -1, "", E.NONE) if v is None else (pi, v.offset, v.leader_epoch, v.metadata, E.NONE)

        def tid_of(name: str) -> Any:
            info = self._topic_info(name) if self._topic_info is not None else None
            return info.topic_id if info is not None else None

        if req_topics is None:
            by_topic: dict[str, list[int]] = {}
            for (name, pi) in sorted(committed):
                by_topic.setdefault(name, []).append(pi)
            for name, pis in by_topic.items():
                out.append((name, tid_of(name), [part(name, pi) for pi in pis]))
            return err, out
        for t in req_topics:
            if by_id:
                name = self._topic_name(t.topic_id) if self._topic_name is not None else None
                if name is None:
                    out.append(("", t.topic_id, [(pi, -1, -1, "", E.UNKNOWN_TOPIC_ID) for pi in t.partition_indexes]))
                    continue
                tid = t.topic_id
            else:
                name, tid = t.name, None
            out.append((name, tid, [part(name, pi) for pi in t.partition_indexes]))
        return err, out

    # -- OffsetDelete (47) -----------------------------------------------------------
    async def offset_delete(self, req: Any, version: int, ctx: Any = None) -> Any:
        cls = P.message_class("OffsetDeleteResponse")
        tcls = P.child(cls, "topics")
        pcls = P.child(tcls, "partitions")
        g = self.groups.get(req.group_id)
        top: int = E.NONE
        subscribed: set[str] | None = set()
        if self.unavailable(req.group_id):
            top = self.unavailable(req.group_id)
        elif not req.group_id:
            top = E.INVALID_GROUP_ID
        elif g is None or (isinstance(g, ClassicGroup) and g.state == DEAD):
            top = E.GROUP_ID_NOT_FOUND
        elif isinstance(g, ConsumerGroup):
            subscribed = g.subscribed_topic_names()
        elif g.state != EMPTY:
            subscribed = g.subscribed_topics()
            if subscribed is None:
                top = E.NON_EMPTY_GROUP
        if top:
            return P.build(cls, version, error_code=top, throttle_time_ms=0, topics=[])
        assert subscribed is not None
        delete: list[tuple[str, int]] = []
        topics = []
        for t in req.topics:
            parts = []
            for p in t.partitions:
                if t.name in subscribed:
                    code: int = E.GROUP_SUBSCRIBED_TO_TOPIC
                else:
                    code = E.NONE
                    if self.store.get(req.group_id, t.name, p.partition_index) is not None:
                        delete.append((t.name, p.partition_index))
                parts.append([p.partition_index, code])
            topics.append((t.name, parts))
        if delete:
            try:
                await self.store.delete_offsets(req.group_id, delete)
            except Exception as e:  # noqa: BLE001
                log.warning("group %s: deleting offsets failed: %s", req.group_id, e)
                return P.build(cls, version, error_code=E.COORDINATOR_NOT_AVAILABLE, throttle_time_ms=0, topics=[])
        return P.build(cls, version, error_code=E.NONE, throttle_time_ms=0, topics=[
            P.build(tcls, version, name=name, partitions=[P.build(pcls, version, partition_index=pi, error_code=c)
                                                          for pi, c in parts]) for name, parts in topics])

    # -- offset retention -------------------------------------------------------------
    def _arm_retention(self) -> None:
        self._retention_timer = self.call_later(self.cfg("offsets.retention.check.interval.ms"),
                                                self._retention_tick)

    def _retention_tick(self) -> None:
        self.spawn(self.expire_offsets())
        self._arm_retention()

    async def expire_offsets(self) -> int:
        """Kafka 2.1+ retention: offsets of an empty group expire ``offsets.retention.minutes`` after it
        became empty; an explicit v1 expire timestamp wins.  Empty groups left with no offsets die."""
        now = self.now_ms()
        retention = self.cfg("offsets.retention.minutes") * 60000
        removed = 0
        for gid, offs in list(self.store.offsets.items()):
            g = self.groups.get(gid)
            if isinstance(g, ConsumerGroup) and g.members:
                continue
            if isinstance(g, ClassicGroup) and g.state != EMPTY:
                continue
            base = g.state_timestamp if isinstance(g, ClassicGroup) else None
            expired = []
            for (t, p), v in offs.items():
                if v.expire_timestamp >= 0:
                    due = v.expire_timestamp
                else:
                    due = (base if base is not None and base > 0 else v.commit_timestamp) + retention
                if now >= due:
                    expired.append((t, p))
            if expired:
                try:
                    await self.store.delete_offsets(gid, expired)
                    removed += len(expired)
                except Exception as e:  # noqa: BLE001
                    log.warning("group %s: expiring offsets failed: %s", gid, e)
                    continue
            g = self.groups.get(gid)
            if isinstance(g, ClassicGroup) and g.state == EMPTY and not self.store.offsets.get(gid):
                await self._delete_empty_group(gid, stored=True)
        # empty groups that never committed (e.g. a JoinGroup that got no further) are dropped too
        for gid, g in list(self.groups.items()):
            if isinstance(g, ClassicGroup) and g.state == EMPTY and not g.pending_members \
                    and gid not in self.store.offsets and now >= g.state_timestamp + retention:
                await self._delete_empty_group(gid, stored=gid in self.store.groups)
        return removed

    async def _delete_empty_group(self, gid: str, stored: bool) -> None:
        """Forget an empty group: its tombstone first when it has a stored record (a failed write
        keeps the group, to be tried again next tick)."""
        if stored:
            try:
                await self.store.delete_group(gid)
            except Exception as e:  # noqa: BLE001
                log.warning("group %s: deleting failed: %s", gid, e)
                return
        self._drop_group(gid)


class _CommitShim:
    """The OffsetCommit fields ``_validate_commit`` reads, from a TxnOffsetCommit."""

    __slots__ = ("group_id", "generation_id_or_member_epoch", "member_id", "group_instance_id")

    def __init__(self, group_id: str, generation: int, member_id: str, instance_id: str | None) -> None:
        self.group_id = group_id
        self.generation_id_or_member_epoch = generation
        self.member_id = member_id
        self.group_instance_id = instance_id
