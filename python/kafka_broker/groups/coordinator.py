"""The group coordinator: one coroutine per group API, request object in, response object out.

Behaviour follows Apache Kafka 4.x's ``GroupMetadataManager`` and
``OffsetMetadataManager`` for classic groups; KIP-848 consumer groups are in
``consumer.py``.  Every long wait (a parked JoinGroup, a follower's
SyncGroup) is an asyncio future completed by a state transition; every
deadline (session, rebalance, initial delay, pending sync) is one
``call_later`` timer, cancelled or re-armed by the events that matter.
Nothing polls.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, NamedTuple
from uuid import UUID

from kafka_protocol.errors import ErrorCode as E

from . import _proto as P
from .classic import (
    COMPLETING_REBALANCE,
    DEAD,
    EMPTY,
    PREPARING_REBALANCE,
    STABLE,
    ClassicGroup,
    ClassicMember,
    JoinResult,
    SyncResult,
)
from .consumer import ConsumerGroup, ConsumerProtocolMixin
from .offsets import OffsetsMixin
from .offsets_store import OffsetsStore
from .records import GroupRecord, MemberRecord, OffsetValue

log = logging.getLogger("kafka_broker.groups")

INT32_MIN = -(1 << 31)
# AclOperation bits a group supports: READ(3), DESCRIBE(8), DELETE(6)
GROUP_AUTHORIZED_OPERATIONS = (1 << 3) | (1 << 6) | (1 << 8)
NEW_MEMBER_JOIN_TIMEOUT_MS = 5 * 60 * 1000

_DEFAULTS: dict[str, int] = {
    "group.initial.rebalance.delay.ms": 3000,
    "group.min.session.timeout.ms": 6000,
    "group.max.session.timeout.ms": 1800000,
    "group.max.size": (1 << 31) - 1,
    "offsets.retention.minutes": 10080,
    "offsets.retention.check.interval.ms": 600000,
    "offset.metadata.max.bytes": 4096,
    "group.consumer.heartbeat.interval.ms": 5000,
    "group.consumer.session.timeout.ms": 45000,
    "group.consumer.min.session.timeout.ms": 45000,
    "group.consumer.max.session.timeout.ms": 60000,
    "group.consumer.max.size": (1 << 31) - 1,
}


class TopicInfo(NamedTuple):
    """What the server's ``topic_info`` callable answers for a topic name."""

    name: str
    topic_id: UUID
    partitions: int


class NodeInfo(NamedTuple):
    node_id: int
    host: str
    port: int


@dataclass(slots=True)
class RequestContext:
    """Per-request facts the coordinator needs besides the body (DescribeGroups reports them)."""

    client_id: str = ""
    client_host: str = ""


_NO_CTX = RequestContext()


class GroupCoordinator(OffsetsMixin, ConsumerProtocolMixin):
    """All groups of this broker (a single node coordinates every group).

    ``node``: () -> NodeInfo of this broker (FindCoordinator's answer).
    ``topic_info``: name -> TopicInfo | None; ``topic_name``: UUID -> name | None;
    ``all_topics``: () -> iterable of names (KIP-848 regex subscriptions).
    ``scheduler``: object with ``call_later(seconds, callback)`` (default: the running loop); every
    timer goes through it, and ``wall_clock`` (seconds) stamps commits and state changes.
    ``transactions``: also answer FindCoordinator for transactional ids (key type 1) with this node.
    """

    def __init__(self, offsets_store: OffsetsStore, *, clock: Callable[[], float] = time.monotonic,
                 config: Any = None, node: Callable[[], NodeInfo] | None = None,
                 topic_info: Callable[[str], TopicInfo | None] | None = None,
                 topic_name: Callable[[UUID], str | None] | None = None,
                 all_topics: Callable[[], Iterable[str]] | None = None,
                 scheduler: Any = None, wall_clock: Callable[[], float] = time.time,
                 max_member_metadata_bytes: int = 1 << 20, transactions: bool = False) -> None:
        self.store = offsets_store
        self.clock = clock
        self.config = config
        self._node = node or (lambda: NodeInfo(0, "localhost", 9092))
        self._topic_info = topic_info
        self._topic_name = topic_name
        self._all_topics = all_topics
        self._scheduler = scheduler
        self._wall = wall_clock
        self.max_member_metadata_bytes = max_member_metadata_bytes
        self.transactions = transactions    # answer FindCoordinator for transactional ids too
        self.groups: dict[str, ClassicGroup | ConsumerGroup] = {}
        self.rebalances = 0     # classic generations started and KIP-848 group epochs bumped
        # In a cluster: group id -> 0, NOT_COORDINATOR or COORDINATOR_LOAD_IN_PROGRESS (None: all here)
        self.owner: Callable[[str], int] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._retention_timer: Any = None
        self.started = False
        self._init_consumer_protocol()

    # -- plumbing ------------------------------------------------------------
    def cfg(self, key: str) -> int:
        c = self.config
        if c is not None:
            v = c.get(key) if hasattr(c, "get") else None
            if v is None:
                raw = getattr(c, "ignored", {}).get(key)
                v = int(raw) if raw is not None else None
            if v is not None:
                return int(v)
        return _DEFAULTS[key]

    def now_ms(self) -> int:
        return int(self._wall() * 1000)

    def call_later(self, delay_ms: float, cb: Callable[[], Any]) -> Any:
        sched = self._scheduler or asyncio.get_running_loop()
        return sched.call_later(max(delay_ms, 0) / 1000.0, cb)

    def spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("group coordinator background task failed", exc_info=task.exception())

    async def start(self) -> None:
        """Load ``__consumer_offsets`` and rebuild the groups; arm the offset-retention timer."""
        if not self.store.loaded:
            await self.store.load()
        self._rebuild_from_store()
        self.started = True
        self._arm_retention()

    def close(self) -> None:
        for g in self.groups.values():
            self._cancel_group_timers(g)
        if self._retention_timer is not None:
            self._retention_timer.cancel()
        for t in list(self._tasks):
            t.cancel()

    async def load_partition(self, partition: int) -> None:
        """This broker became leader of ``__consumer_offsets-<partition>``: read it and serve its
        groups (Kafka's GroupMetadataManager.loadGroupsAndOffsets)."""
        await asyncio.get_running_loop().run_in_executor(
            None, lambda: self.store.load_partitions([partition], replace=False))
        self._rebuild_from_store(partition)

    def unload_partition(self, partition: int) -> list[str]:
        """It is no longer: members waiting on its groups get NOT_COORDINATOR and find the new one."""
        gone = [gid for gid in self.groups if self.store.partition_for(gid) == partition]
        for gid in gone:
            g = self.groups.get(gid)
            if isinstance(g, ClassicGroup):
                for m in g.members.values():
                    m.complete_join(JoinResult(E.NOT_COORDINATOR, m.member_id))
                    m.complete_sync(SyncResult(E.NOT_COORDINATOR))
            self._drop_group(gid)
        self.store.unload_partition(partition)
        return gone

    def _rebuild_from_store(self, only: int | None = None) -> None:
        """Groups from the loaded records (``only``: those of one ``__consumer_offsets`` partition)."""
        now = self.now_ms()

        def mine(gid: str) -> bool:
            return only is None or self.store.partition_for(gid) == only
        for gid, rec in self.store.groups.items():
            if not mine(gid):
                continue
            g = ClassicGroup(gid, now)
            g.protocol_type = rec.protocol_type or None
            g.generation_id = rec.generation
            g.protocol_name = rec.protocol
            g.leader_id = rec.leader
            for mr in rec.members:
                m = ClassicMember(mr.member_id, mr.group_instance_id, mr.client_id, mr.client_host,
                                  mr.rebalance_timeout_ms, mr.session_timeout_ms, rec.protocol_type,
                                  [(rec.protocol or "", mr.subscription)])
                m.assignment = mr.assignment
                g.add(m)
            g.leader_id = rec.leader if rec.leader in g.members else next(iter(g.members), None)
            if g.members:
                g.state = STABLE
                for m in g.members.values():
                    self._schedule_heartbeat(g, m)
            g.state_timestamp = rec.current_state_timestamp if rec.current_state_timestamp > 0 else now
            self.groups[gid] = g
        for gid, raw in self.store.consumer.items():
            if not mine(gid):
                continue
            old = self.groups.get(gid)
            if old is not None:     # both kinds stored: cannot happen with our writes; KIP-848 wins
                self._cancel_group_timers(old)
            try:
                self.groups[gid] = self._cg_restore(gid, raw)
            except Exception as e:  # noqa: BLE001 - one bad group must not stop the coordinator
                log.warning("group %s: cannot restore consumer group state: %s", gid, e)
        for gid in self.store.offsets:
            if gid not in self.groups and mine(gid):
                self.groups[gid] = ClassicGroup(gid, now)

    def _cancel_group_timers(self, g: ClassicGroup | ConsumerGroup) -> None:
        if isinstance(g, ClassicGroup):
            for h in (g.join_timer, g.sync_timer, *g.pending_members.values(),
                      *(m.heartbeat_handle for m in g.members.values())):
                if h is not None:
                    h.cancel()
        else:
            self._cancel_consumer_timers(g)

    def unavailable(self, group_id: str | None) -> int:
        """0 when this coordinator serves ``group_id`` now; else COORDINATOR_LOAD_IN_PROGRESS (its
        ``__consumer_offsets`` partition is loading) or NOT_COORDINATOR (another broker leads
        that partition: in a cluster, ``owner`` decides)."""
        if not self.started:
            return E.COORDINATOR_LOAD_IN_PROGRESS
        if self.owner is not None and group_id:
            return self.owner(group_id)
        return E.NONE

    def _classic(self, group_id: str) -> ClassicGroup | None:
        g = self.groups.get(group_id)
        return g if isinstance(g, ClassicGroup) else None

    # -- FindCoordinator (10) ------------------------------------------------------
    async def find_coordinator(self, req: Any, version: int, ctx: Any = None) -> Any:
        cls = P.message_class("FindCoordinatorResponse")
        node = self._node()

        def answer(key: str, key_type: int) -> tuple[int, str | None, NodeInfo]:
            if key_type not in (0, 1):
                return E.INVALID_REQUEST, f"unsupported key type {key_type}", NodeInfo(-1, "", -1)
            if key_type == 1 and not self.transactions:
                return E.COORDINATOR_NOT_AVAILABLE, "transactions are not supported", NodeInfo(-1, "", -1)
            if key_type == 0 and not key:
                return E.INVALID_REQUEST, "empty group id", NodeInfo(-1, "", -1)
            if not self.started:
                return E.COORDINATOR_LOAD_IN_PROGRESS, None, NodeInfo(-1, "", -1)
            return E.NONE, None, node

        key_type = P.get(req, "key_type", 0) or 0
        if version >= 4:
            coords = []
            for key in P.get(req, "coordinator_keys", []) or []:
                err, msg, n = answer(key, key_type)
                coords.append(P.build(P.child(cls, "coordinators"), version, key=key, node_id=n.node_id,
                                      host=n.host, port=n.port, error_code=err, error_message=msg))
            return P.build(cls, version, throttle_time_ms=0, coordinators=coords)
        err, msg, n = answer(P.get(req, "key", ""), key_type)
        return P.build(cls, version, throttle_time_ms=0, error_code=err, error_message=msg,
                       node_id=n.node_id, host=n.host, port=n.port)

    # -- JoinGroup (11) ------------------------------------------------------------
    async def join_group(self, req: Any, version: int, ctx: Any = None) -> Any:
        res = await self._join(req, version, ctx or _NO_CTX)
        cls = P.message_class("JoinGroupResponse")
        mcls = P.child(cls, "members")
        members = [P.build(mcls, version, member_id=mid, group_instance_id=iid, metadata=meta)
                   for mid, iid, meta in res.members]
        pname = res.protocol_name if (res.protocol_name is not None or version >= 7) else ""
        return P.build(cls, version, throttle_time_ms=0, error_code=res.error, generation_id=res.generation_id,
                       protocol_type=res.protocol_type, protocol_name=pname, leader=res.leader,
                       skip_assignment=res.skip_assignment, member_id=res.member_id, members=members)

    async def _join(self, req: Any, version: int, ctx: Any) -> JoinResult:
        group_id: str = req.group_id
        member_id: str = req.member_id or ""
        instance_id: str | None = P.get(req, "group_instance_id") if version >= 5 else None
        session_ms: int = req.session_timeout_ms
        rebalance_ms: int = P.get(req, "rebalance_timeout_ms", -1) if version >= 1 else -1
        if rebalance_ms is None or rebalance_ms < 0:
            rebalance_ms = session_ms
        protocols = [(p.name, bytes(p.metadata)) for p in req.protocols]
        protocol_type: str = req.protocol_type or ""
        if err := self.unavailable(group_id):
            return JoinResult(err, member_id)
        if not group_id:
            return JoinResult(E.INVALID_GROUP_ID, member_id)
        if not self.cfg("group.min.session.timeout.ms") <= session_ms <= self.cfg("group.max.session.timeout.ms"):
            return JoinResult(E.INVALID_SESSION_TIMEOUT, member_id)
        size = sum(len(m) for _, m in protocols)
        if size > self.max_member_metadata_bytes:
            log.warning("group %s: JoinGroup from %r rejected: protocol metadata is %d bytes, the limit is %d",
                        group_id, member_id or ctx.client_id, size, self.max_member_metadata_bytes)
            return JoinResult(E.INVALID_REQUEST, member_id)
        if not protocol_type or not protocols:
            return JoinResult(E.INCONSISTENT_GROUP_PROTOCOL, member_id)
        existing = self.groups.get(group_id)
        if isinstance(existing, ConsumerGroup):
            if existing.members:
                return JoinResult(E.INCONSISTENT_GROUP_PROTOCOL, member_id)
            self._drop_group(group_id)
            existing = None
        group = existing
        if group is None:
            if member_id:
                return JoinResult(E.UNKNOWN_MEMBER_ID, member_id)
            group = self.groups[group_id] = ClassicGroup(group_id, self.now_ms())
        if group.state == DEAD:
            return JoinResult(E.COORDINATOR_NOT_AVAILABLE, member_id)
        if not group.supports(protocol_type, protocols):
            return JoinResult(E.INCONSISTENT_GROUP_PROTOCOL, member_id)
        loop = asyncio.get_running_loop()
        if not member_id:
            if len(group.members) + len(group.pending_members) >= self.cfg("group.max.size") and \
                    (instance_id is None or instance_id not in group.static_members):
                return JoinResult(E.GROUP_MAX_SIZE_REACHED, member_id)
            new_id = group.generate_member_id(ctx.client_id, instance_id)
            if instance_id is not None and instance_id in group.static_members:
                fut = loop.create_future()
                self._static_rejoin(group, instance_id, new_id, protocols, rebalance_ms, session_ms, fut, version)
                return await fut
            if instance_id is None and version >= 4:
                # KIP-394: hand out the id first, so a client that times out cannot leave ghosts.
                group.pending_members[new_id] = self.call_later(
                    session_ms, lambda: self._expire_pending(group, new_id))
                return JoinResult(E.MEMBER_ID_REQUIRED, new_id)
            member = ClassicMember(new_id, instance_id, ctx.client_id, ctx.client_host, rebalance_ms,
                                   session_ms, protocol_type, protocols)
            fut = loop.create_future()
            self._add_member_and_rebalance(group, member, fut)
            return await fut
        if member_id in group.pending_members:
            handle = group.pending_members[member_id]
            if handle is not None:
                handle.cancel()
            member = ClassicMember(member_id, instance_id, ctx.client_id, ctx.client_host, rebalance_ms,
                                   session_ms, protocol_type, protocols)
            fut = loop.create_future()
            self._add_member_and_rebalance(group, member, fut)
            return await fut
        err = group.validate_member(member_id, instance_id)
        if err:
            return JoinResult(err, member_id)
        member = group.members[member_id]
        fut = loop.create_future()
        if group.state == PREPARING_REBALANCE:
            self._update_member_and_rebalance(group, member, protocols, rebalance_ms, session_ms, fut)
        elif group.state == COMPLETING_REBALANCE:
            if member.matches(protocols):
                return self._current_join_result(group, member_id, with_members=group.leader_id == member_id)
            self._update_member_and_rebalance(group, member, protocols, rebalance_ms, session_ms, fut)
        elif group.state == STABLE:
            if group.leader_id == member_id or not member.matches(protocols):
                # the leader rejoining (or new metadata) means the assignment must be recomputed
                self._update_member_and_rebalance(group, member, protocols, rebalance_ms, session_ms, fut)
            else:
                self._schedule_heartbeat(group, member)
                return self._current_join_result(group, member_id, with_members=False)
        else:
            return JoinResult(E.UNKNOWN_MEMBER_ID, member_id)
        return await fut

    def _current_join_result(self, g: ClassicGroup, member_id: str, *, with_members: bool,
                             skip: bool = False, leader: str | None = None) -> JoinResult:
        return JoinResult(E.NONE, member_id, g.generation_id, g.protocol_type, g.protocol_name,
                          leader if leader is not None else (g.leader_id or ""), skip,
                          g.member_list() if with_members else [])

    def _expire_pending(self, g: ClassicGroup, member_id: str) -> None:
        if g.pending_members.pop(member_id, "gone") == "gone":
            return
        log.info("group %s: pending member %s expired before joining", g.group_id, member_id)
        if g.state == PREPARING_REBALANCE:
            self._maybe_complete_join(g)

    def _add_member_and_rebalance(self, g: ClassicGroup, member: ClassicMember, fut: asyncio.Future[Any]) -> None:
        member.is_new = True
        if g.state == PREPARING_REBALANCE and g.generation_id == 0:
            g.new_member_added = True
        g.add(member)
        member.join_future = fut
        # The session timer cannot run while the JoinGroup is parked (the client cannot heartbeat
        # without an id); a new member that never completes its join is dropped after this.
        self._schedule_heartbeat(g, member, NEW_MEMBER_JOIN_TIMEOUT_MS)
        self._maybe_prepare_rebalance_or_complete(g, f"adding member {member.member_id}")

    def _update_member_and_rebalance(self, g: ClassicGroup, member: ClassicMember,
                                     protocols: list[tuple[str, bytes]], rebalance_ms: int, session_ms: int,
                                     fut: asyncio.Future[Any]) -> None:
        g.update_protocols(member, protocols)
        member.rebalance_timeout_ms = rebalance_ms
        member.session_timeout_ms = session_ms
        if member.join_future is not None and member.join_future is not fut:
            # a retried JoinGroup replaces the parked one; the old caller learns to rejoin
            member.complete_join(JoinResult(E.REBALANCE_IN_PROGRESS, member.member_id))
        member.join_future = fut
        self._schedule_heartbeat(g, member)
        self._maybe_prepare_rebalance_or_complete(g, f"updating member {member.member_id}")

    def _static_rejoin(self, g: ClassicGroup, instance_id: str, new_id: str, protocols: list[tuple[str, bytes]],
                       rebalance_ms: int, session_ms: int, fut: asyncio.Future[Any], version: int) -> None:
        """A restarted static member takes its old place; Stable with unchanged protocol: no rebalance."""
        old_id = g.static_members[instance_id]
        old_leader = g.leader_id
        member = g.replace_static_member(instance_id, old_id, new_id)
        old_meta = member.metadata(g.protocol_name)
        g.update_protocols(member, protocols)
        member.rebalance_timeout_ms = rebalance_ms
        member.session_timeout_ms = session_ms
        self._schedule_heartbeat(g, member)
        if g.state == STABLE:
            # unlike Kafka, changed metadata (a new subscription) also rebalances
            if g.select_protocol() == g.protocol_name and member.metadata(g.protocol_name) == old_meta:
                is_leader = g.leader_id == new_id
                if version >= 9:
                    res = self._current_join_result(g, new_id, with_members=is_leader, skip=is_leader)
                else:
                    # the old leader id tells a pre-KIP-814 leader it is a follower: it keeps its assignment
                    res = self._current_join_result(g, new_id, with_members=False, leader=old_leader or "")
                self.spawn(self._store_then_answer(g, fut, res))
                return
            member.join_future = fut
            self._prepare_rebalance(g, f"static member {instance_id} rejoined with new metadata")
        elif g.state == COMPLETING_REBALANCE:
            # the leader may already have computed an assignment for the old member id
            member.join_future = fut
            self._prepare_rebalance(g, f"static member {instance_id} rejoined during CompletingRebalance")
        else:
            member.join_future = fut
            self._maybe_complete_join(g)

    async def _store_then_answer(self, g: ClassicGroup, fut: asyncio.Future[Any], res: JoinResult) -> None:
        try:
            await self.store.store_group(g.group_id, self._group_record(g))
        except Exception as e:  # noqa: BLE001
            log.warning("group %s: storing metadata failed: %s", g.group_id, e)
            res = JoinResult(E.COORDINATOR_NOT_AVAILABLE, res.member_id)
        if not fut.done():
            fut.set_result(res)

    def _maybe_prepare_rebalance_or_complete(self, g: ClassicGroup, reason: str) -> None:
        if g.state in (STABLE, COMPLETING_REBALANCE, EMPTY):
            self._prepare_rebalance(g, reason)
        elif g.state == PREPARING_REBALANCE:
            self._maybe_complete_join(g)

    def _prepare_rebalance(self, g: ClassicGroup, reason: str) -> None:
        log.info("group %s: preparing to rebalance (generation %d): %s", g.group_id, g.generation_id, reason)
        if g.state == COMPLETING_REBALANCE:
            self._reset_assignment(g, E.REBALANCE_IN_PROGRESS)
        if g.sync_timer is not None:
            g.sync_timer.cancel()
            g.sync_timer = None
        if g.join_timer is not None:
            g.join_timer.cancel()
        initial = g.state == EMPTY
        rebalance_ms = g.max_rebalance_timeout_ms()
        g.transition(PREPARING_REBALANCE, self.now_ms())
        if initial:
            delay = self.cfg("group.initial.rebalance.delay.ms")
            remaining = max(rebalance_ms - delay, 0)
            g.join_timer = self.call_later(delay, lambda: self._initial_delay_done(g, delay, remaining))
        else:
            g.join_timer = self.call_later(rebalance_ms, lambda: self._complete_join(g))
            self._maybe_complete_join(g)

    def _initial_delay_done(self, g: ClassicGroup, delay: int, remaining: int) -> None:
        g.join_timer = None
        if g.state != PREPARING_REBALANCE:
            return
        if g.new_member_added and remaining > 0:
            g.new_member_added = False
            step = min(self.cfg("group.initial.rebalance.delay.ms"), remaining)
            g.join_timer = self.call_later(step, lambda: self._initial_delay_done(g, step, max(remaining - delay, 0)))
            return
        self._complete_join(g)

    def _maybe_complete_join(self, g: ClassicGroup) -> None:
        # the first rebalance of an empty group only ends by its (initial delay) timer
        if g.state == PREPARING_REBALANCE and g.has_all_joined() and g.previous_state != EMPTY:
            self._complete_join(g)

    def _complete_join(self, g: ClassicGroup) -> None:
        if g.join_timer is not None:
            g.join_timer.cancel()
            g.join_timer = None
        if g.state != PREPARING_REBALANCE:
            return
        for m in g.not_yet_rejoined():
            if m.group_instance_id is None:
                log.info("group %s: removing member %s, which did not rejoin in time", g.group_id, m.member_id)
                self._drop_member(g, m)
        if not g.elect_joined_leader() and g.members:
            # nobody rejoined: wait for the session timeouts to remove the silent members
            g.join_timer = self.call_later(g.max_rebalance_timeout_ms(), lambda: self._complete_join(g))
            return
        g.init_next_generation(self.now_ms())
        self.rebalances += 1
        log.info("group %s: generation %d (%s) with %d members", g.group_id, g.generation_id,
                 g.protocol_name, len(g.members))
        if g.state == EMPTY:
            self.spawn(self._store_quietly(g))
            return
        for m in list(g.members.values()):
            m.complete_join(self._current_join_result(g, m.member_id, with_members=g.leader_id == m.member_id))
            m.is_new = False
            self._schedule_heartbeat(g, m)
            g.pending_sync.add(m.member_id)
        gen = g.generation_id
        g.sync_timer = self.call_later(g.max_rebalance_timeout_ms(), lambda: self._sync_expired(g, gen))

    def _sync_expired(self, g: ClassicGroup, generation: int) -> None:
        g.sync_timer = None
        if generation != g.generation_id or g.state not in (COMPLETING_REBALANCE, STABLE) or not g.pending_sync:
            return
        log.info("group %s: members %s did not send SyncGroup in time", g.group_id, sorted(g.pending_sync))
        for mid in list(g.pending_sync):
            m = g.members.get(mid)
            if m is not None:
                self._drop_member(g, m)
        self._prepare_rebalance(g, "pending members did not sync")

    def _reset_assignment(self, g: ClassicGroup, error: int) -> None:
        for m in g.members.values():
            m.assignment = b""
            m.complete_sync(SyncResult(error))

    def _drop_member(self, g: ClassicGroup, m: ClassicMember) -> None:
        if m.heartbeat_handle is not None:
            m.heartbeat_handle.cancel()
            m.heartbeat_handle = None
        m.complete_join(JoinResult(E.UNKNOWN_MEMBER_ID))
        m.complete_sync(SyncResult(E.UNKNOWN_MEMBER_ID))
        g.remove(m.member_id)

    def _remove_member_and_update(self, g: ClassicGroup, m: ClassicMember, reason: str) -> None:
        self._drop_member(g, m)
        if g.state in (STABLE, COMPLETING_REBALANCE):
            self._maybe_prepare_rebalance_or_complete(g, reason)
        elif g.state == PREPARING_REBALANCE:
            self._maybe_complete_join(g)

    def _schedule_heartbeat(self, g: ClassicGroup, m: ClassicMember, timeout_ms: int | None = None) -> None:
        if m.heartbeat_handle is not None:
            m.heartbeat_handle.cancel()
        m.heartbeat_handle = self.call_later(timeout_ms if timeout_ms is not None else m.session_timeout_ms,
                                             lambda: self._heartbeat_expired(g, m))

    def _heartbeat_expired(self, g: ClassicGroup, m: ClassicMember) -> None:
        m.heartbeat_handle = None
        if g.members.get(m.member_id) is not m:
            return
        if not m.is_new and (m.awaiting_join or m.awaiting_sync):
            self._schedule_heartbeat(g, m)      # parked in a rebalance: counts as alive
            return
        log.info("group %s: member %s expired (no heartbeat within %d ms)", g.group_id, m.member_id,
                 m.session_timeout_ms)
        self._remove_member_and_update(g, m, f"member {m.member_id} expired")

    def _group_record(self, g: ClassicGroup) -> GroupRecord:
        return GroupRecord(g.protocol_type or "", g.generation_id, g.protocol_name, g.leader_id,
                           g.state_timestamp,
                           [MemberRecord(m.member_id, m.group_instance_id, m.client_id, m.client_host,
                                         m.rebalance_timeout_ms, m.session_timeout_ms,
                                         m.metadata(g.protocol_name), m.assignment) for m in g.members.values()])

    async def _store_quietly(self, g: ClassicGroup) -> None:
        try:
            await self.store.store_group(g.group_id, self._group_record(g))
        except Exception as e:  # noqa: BLE001
            log.warning("group %s: storing metadata failed: %s", g.group_id, e)

    # -- SyncGroup (14) --------------------------------------------------------------
    async def sync_group(self, req: Any, version: int, ctx: Any = None) -> Any:
        res = await self._sync(req, version)
        cls = P.message_class("SyncGroupResponse")
        return P.build(cls, version, throttle_time_ms=0, error_code=res.error, protocol_type=res.protocol_type,
                       protocol_name=res.protocol_name, assignment=res.assignment)

    async def _sync(self, req: Any, version: int) -> SyncResult:
        if err := self.unavailable(req.group_id):
            return SyncResult(err)
        g = self._classic(req.group_id)
        if g is None:
            return SyncResult(E.UNKNOWN_MEMBER_ID if req.group_id else E.INVALID_GROUP_ID)
        if g.state == DEAD:
            return SyncResult(E.COORDINATOR_NOT_AVAILABLE)
        member_id = req.member_id
        err = g.validate_member(member_id, P.get(req, "group_instance_id") if version >= 3 else None)
        if err:
            return SyncResult(err)
        if req.generation_id != g.generation_id:
            return SyncResult(E.ILLEGAL_GENERATION)
        ptype = P.get(req, "protocol_type") if version >= 5 else None
        pname = P.get(req, "protocol_name") if version >= 5 else None
        if (ptype is not None and g.protocol_type is not None and ptype != g.protocol_type) or \
                (pname is not None and g.protocol_name is not None and pname != g.protocol_name):
            return SyncResult(E.INCONSISTENT_GROUP_PROTOCOL)
        if g.state == EMPTY:
            return SyncResult(E.UNKNOWN_MEMBER_ID)
        if g.state == PREPARING_REBALANCE:
            return SyncResult(E.REBALANCE_IN_PROGRESS)
        member = g.members[member_id]
        g.pending_sync.discard(member_id)
        self._schedule_heartbeat(g, member)
        if g.state == STABLE:
            return SyncResult(E.NONE, member.assignment, g.protocol_type, g.protocol_name)
        # CompletingRebalance: park until the leader's assignment is stored
        fut: asyncio.Future[SyncResult] = asyncio.get_running_loop().create_future()
        member.complete_sync(SyncResult(E.REBALANCE_IN_PROGRESS))   # a retried SyncGroup replaces the old one
        member.sync_future = fut
        if g.leader_id == member_id:
            assignment = {a.member_id: bytes(a.assignment) for a in req.assignments}
            self.spawn(self._store_assignment(g, g.generation_id, assignment))
        return await fut

    async def _store_assignment(self, g: ClassicGroup, generation: int, assignment: dict[str, bytes]) -> None:
        rec = self._group_record(g)
        for mr in rec.members:
            mr.assignment = assignment.get(mr.member_id, b"")
        error: int = E.NONE
        try:
            await self.store.store_group(g.group_id, rec)
        except Exception as e:  # noqa: BLE001
            log.warning("group %s: storing the assignment failed: %s", g.group_id, e)
            error = E.COORDINATOR_NOT_AVAILABLE
        # a member may have joined meanwhile: act only if the rebalance is still this one
        if g.state != COMPLETING_REBALANCE or g.generation_id != generation:
            return
        if error:
            self._reset_assignment(g, error)
            self._prepare_rebalance(g, "storing the assignment failed")
            return
        for m in g.members.values():
            m.assignment = assignment.get(m.member_id, b"")
            m.complete_sync(SyncResult(E.NONE, m.assignment, g.protocol_type, g.protocol_name))
            self._schedule_heartbeat(g, m)
        g.transition(STABLE, self.now_ms())

    # -- Heartbeat (12) -------------------------------------------------------------
    async def heartbeat(self, req: Any, version: int, ctx: Any = None) -> Any:
        cls = P.message_class("HeartbeatResponse")
        return P.build(cls, version, throttle_time_ms=0, error_code=self._heartbeat(req, version))

    def _heartbeat(self, req: Any, version: int) -> int:
        if err := self.unavailable(req.group_id):
            return err
        g = self._classic(req.group_id)
        if g is None:
            return E.UNKNOWN_MEMBER_ID if req.group_id else E.INVALID_GROUP_ID
        if g.state == DEAD:
            return E.COORDINATOR_NOT_AVAILABLE
        if g.state == EMPTY:
            return E.UNKNOWN_MEMBER_ID
        err = g.validate_member(req.member_id, P.get(req, "group_instance_id") if version >= 3 else None)
        if err:
            return err
        if req.generation_id != g.generation_id:
            return E.ILLEGAL_GENERATION
        self._schedule_heartbeat(g, g.members[req.member_id])
        if g.state == PREPARING_REBALANCE:
            return E.REBALANCE_IN_PROGRESS
        return E.NONE

    # -- LeaveGroup (13) ------------------------------------------------------------
    async def leave_group(self, req: Any, version: int, ctx: Any = None) -> Any:
        cls = P.message_class("LeaveGroupResponse")
        if version >= 3:
            idents = [(m.member_id, P.get(m, "group_instance_id")) for m in req.members]
        else:
            idents = [(req.member_id, None)]
        top, results = self._leave(req.group_id, idents)
        if version < 3:
            return P.build(cls, version, throttle_time_ms=0, error_code=top or results[0][2])
        mcls = P.child(cls, "members")
        return P.build(cls, version, throttle_time_ms=0, error_code=top,
                       members=[P.build(mcls, version, member_id=mid, group_instance_id=iid, error_code=e)
                                for mid, iid, e in results])

    def _leave(self, group_id: str, idents: list[tuple[str, str | None]]) -> tuple[int, list[tuple[str, str | None, int]]]:
        if err := self.unavailable(group_id):
            return err, [(m, i, err) for m, i in idents]
        g = self._classic(group_id)
        if g is None or g.state == DEAD:
            code = E.UNKNOWN_MEMBER_ID if g is None else E.COORDINATOR_NOT_AVAILABLE
            return code, [(m, i, code) for m, i in idents]
        results: list[tuple[str, str | None, int]] = []
        for member_id, instance_id in idents:
            if instance_id is not None:
                current = g.static_members.get(instance_id)
                if current is None:
                    results.append((member_id, instance_id, E.UNKNOWN_MEMBER_ID))
                    continue
                if member_id and member_id != current:
                    results.append((member_id, instance_id, E.FENCED_INSTANCE_ID))
                    continue
                member_id = current
            if member_id in g.pending_members:
                h = g.pending_members.pop(member_id)
                if h is not None:
                    h.cancel()
                self._maybe_complete_join(g)
                results.append((member_id, instance_id, E.NONE))
                continue
            m = g.members.get(member_id)
            if m is None:
                results.append((member_id, instance_id, E.UNKNOWN_MEMBER_ID))
                continue
            log.info("group %s: member %s left", g.group_id, member_id)
            self._remove_member_and_update(g, m, f"member {member_id} left the group")
            results.append((member_id, instance_id, E.NONE))
        return E.NONE, results

    # -- ListGroups (16) ------------------------------------------------------------
    async def list_groups(self, req: Any, version: int, ctx: Any = None) -> Any:
        cls = P.message_class("ListGroupsResponse")
        gcls = P.child(cls, "groups")
        if not self.started:
            return P.build(cls, version, throttle_time_ms=0, error_code=E.COORDINATOR_LOAD_IN_PROGRESS, groups=[])
        states = {s.lower() for s in (P.get(req, "states_filter") or [])} if version >= 4 else set()
        types = {s.lower() for s in (P.get(req, "types_filter") or [])} if version >= 5 else set()
        out = []
        for info in self.list_group_summaries():
            if states and info["state"].lower() not in states:
                continue
            if types and info["type"] not in types:
                continue
            out.append(P.build(gcls, version, group_id=info["group_id"], protocol_type=info["protocol_type"],
                               group_state=info["state"], group_type=info["type"]))
        return P.build(cls, version, throttle_time_ms=0, error_code=E.NONE, groups=out)

    def list_group_summaries(self) -> list[dict[str, Any]]:
        """Every group with its state, type and protocol type (operators' ``list groups``)."""
        out = []
        for gid, g in sorted(self.groups.items()):
            if isinstance(g, ConsumerGroup):
                out.append({"group_id": gid, "state": g.state(), "type": "consumer", "protocol_type": "consumer"})
            elif g.state != DEAD:
                out.append({"group_id": gid, "state": g.state, "type": "classic",
                            "protocol_type": g.protocol_type or ""})
        return out

    # -- DescribeGroups (15) --------------------------------------------------------
    async def describe_groups(self, req: Any, version: int, ctx: Any = None) -> Any:
        cls = P.message_class("DescribeGroupsResponse")
        gcls = P.child(cls, "groups")
        mcls = P.child(gcls, "members")
        include_ops = bool(P.get(req, "include_authorized_operations", False)) if version >= 3 else False
        out = []
        for gid in req.groups:
            g = self.groups.get(gid)
            kw: dict[str, Any] = {"group_id": gid, "error_code": E.NONE, "error_message": None, "group_state": DEAD,
                                  "protocol_type": "", "protocol_data": "", "members": [],
                                  "authorized_operations": GROUP_AUTHORIZED_OPERATIONS if include_ops else INT32_MIN}
            if err := self.unavailable(gid):
                kw["error_code"] = err
            elif not gid:
                kw["error_code"] = E.INVALID_GROUP_ID
            elif g is None or isinstance(g, ConsumerGroup) or g.state == DEAD:
                if version >= 6:
                    kw["error_code"] = E.GROUP_ID_NOT_FOUND
                    kw["error_message"] = (f"Group {gid} is not a classic group." if isinstance(g, ConsumerGroup)
                                           else f"Group {gid} not found.")
            else:
                stable = g.state == STABLE
                kw.update(group_state=g.state, protocol_type=g.protocol_type or "",
                          protocol_data=(g.protocol_name or "") if stable else "",
                          members=[P.build(mcls, version, member_id=m.member_id, group_instance_id=m.group_instance_id,
                                           client_id=m.client_id, client_host=m.client_host,
                                           member_metadata=m.metadata(g.protocol_name) if stable else b"",
                                           member_assignment=m.assignment if stable else b"")
                                   for m in g.members.values()])
            out.append(P.build(gcls, version, **kw))
        return P.build(cls, version, throttle_time_ms=0, groups=out)

    # -- DeleteGroups (42) ----------------------------------------------------------
    async def delete_groups(self, req: Any, version: int, ctx: Any = None) -> Any:
        cls = P.message_class("DeleteGroupsResponse")
        rcls = P.child(cls, "results")
        out = []
        for gid in req.groups_names:
            out.append(P.build(rcls, version, group_id=gid, error_code=await self._delete_group(gid)))
        return P.build(cls, version, throttle_time_ms=0, results=out)

    async def _delete_group(self, gid: str) -> int:
        if err := self.unavailable(gid):
            return err
        if not gid:
            return E.INVALID_GROUP_ID
        g = self.groups.get(gid)
        if g is None or (isinstance(g, ClassicGroup) and g.state == DEAD):
            return E.GROUP_ID_NOT_FOUND
        if (isinstance(g, ClassicGroup) and g.state != EMPTY) or (isinstance(g, ConsumerGroup) and g.members):
            return E.NON_EMPTY_GROUP
        try:
            await self.store.delete_group(gid)
        except Exception as e:  # noqa: BLE001
            log.warning("group %s: deleting failed: %s", gid, e)
            return E.COORDINATOR_NOT_AVAILABLE
        if self.groups.get(gid) is g:
            self._drop_group(gid)
        return E.NONE

    def _drop_group(self, gid: str) -> None:
        g = self.groups.pop(gid, None)
        if g is None:
            return
        self._cancel_group_timers(g)
        if isinstance(g, ClassicGroup):
            g.transition(DEAD, self.now_ms())

    # -- operators ----------------------------------------------------------------------
    def describe_offsets(self, group_id: str) -> dict[tuple[str, int], OffsetValue]:
        """Committed offset per (topic, partition) of a group (the CLI computes lag)."""
        return self.store.committed(group_id)
