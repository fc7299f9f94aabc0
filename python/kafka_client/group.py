"""Classic consumer group membership (JoinGroup / SyncGroup / Heartbeat /
LeaveGroup) and offset storage (OffsetCommit / OffsetFetch), client side.

The member joins with every configured assignor, in preference order; the
coordinator picks one all members support.  The leader runs it over the
members' subscriptions and sends the result in SyncGroup.  Eager assignors
(range, roundrobin) revoke everything before rejoining; cooperative-sticky
(KIP-429) keeps what it still owns, revokes only what moved and then
rejoins at once so the moved partitions reach their new owner.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

import kafka_protocol as kp

from .assignors import (
    Assignment,
    Subscription,
    decode_assignment,
    decode_subscription,
    encode_assignment,
    encode_subscription,
    get_assignor,
)
from .cluster import Cluster
from .conn import ApiKey
from .errors import KafkaError, KafkaTimeoutError, for_code

__all__ = ["TopicPartition", "OffsetAndMetadata", "ConsumerGroupMetadata", "GroupCoordinator",
           "RebalanceListener", "commit_offsets", "fetch_committed"]

log = logging.getLogger("kafka_client.group")

# Errors after which the coordinator must be looked up again.
_COORDINATOR_ERRORS = {14, 15, 16}  # LOAD_IN_PROGRESS (retry), NOT_AVAILABLE, NOT_COORDINATOR
_REJOIN_ERRORS = {22, 25, 27}  # ILLEGAL_GENERATION, UNKNOWN_MEMBER_ID, REBALANCE_IN_PROGRESS


class TopicPartition(NamedTuple):
    topic: str
    partition: int


class OffsetAndMetadata(NamedTuple):
    offset: int
    metadata: str = ""
    leader_epoch: int = -1


class ConsumerGroupMetadata(NamedTuple):
    """A consumer's group membership as ``send_offsets_to_transaction`` needs it (KIP-447): the
    group coordinator refuses a TxnOffsetCommit from a member that is no longer in the generation,
    so a zombie that lost its partitions cannot commit offsets for them."""

    group_id: str
    generation_id: int = -1
    member_id: str = ""
    group_instance_id: str | None = None


class RebalanceListener:
    """Override either method; they may be plain functions or coroutines."""

    def on_partitions_revoked(self, revoked: set[TopicPartition]) -> Any:
        pass

    def on_partitions_assigned(self, assigned: set[TopicPartition]) -> Any:
        pass

    def on_partitions_lost(self, lost: set[TopicPartition]) -> Any:
        return self.on_partitions_revoked(lost)


async def _call(fn: Callable[..., Any], *args: Any) -> None:
    r = fn(*args)
    if inspect.isawaitable(r):
        await r


async def commit_offsets(cluster: Cluster, group_id: str, offsets: dict[TopicPartition, OffsetAndMetadata],
                         generation: int = -1, member_id: str = "", *, timeout: float = 30.0) -> None:
    """OffsetCommit to the group's coordinator; retries what is retriable, raises the rest."""
    deadline = time.monotonic() + timeout
    while True:
        node = await cluster.coordinator(group_id, timeout=max(0.1, deadline - time.monotonic()))
        conn = await cluster.coordinator_connection(node)
        by_topic: dict[str, list[Any]] = {}
        for tp, om in offsets.items():
            by_topic.setdefault(tp.topic, []).append(kp.OffsetCommitRequest.OffsetCommitRequestPartition(
                partition_index=tp.partition, committed_offset=om.offset,
                committed_leader_epoch=om.leader_epoch, committed_metadata=om.metadata or ""))
        req = kp.OffsetCommitRequest(
            group_id=group_id, generation_id_or_member_epoch=generation, member_id=member_id,
            topics=[kp.OffsetCommitRequest.OffsetCommitRequestTopic(name=t, partitions=ps)
                    for t, ps in by_topic.items()])
        try:
            resp = await conn.send(req)
        except KafkaError as exc:
            if not exc.retriable or time.monotonic() > deadline:
                raise
            cluster.coordinator_dead(group_id)
            await asyncio.sleep(cluster.retry_backoff)
            continue
        codes = [p.error_code for t in resp.topics for p in t.partitions if p.error_code]
        if not codes:
            return
        code = codes[0]
        if code in _COORDINATOR_ERRORS:
            cluster.coordinator_dead(group_id)
        err = for_code(code, f"OffsetCommit of group {group_id!r}")
        if not err.retriable or time.monotonic() > deadline:
            raise err
        await asyncio.sleep(cluster.retry_backoff)


async def fetch_committed(cluster: Cluster, group_id: str, partitions: Iterable[TopicPartition] | None,
                          *, timeout: float = 30.0,
                          require_stable: bool = False) -> dict[TopicPartition, OffsetAndMetadata | None]:
    """Committed offsets of ``partitions`` (None: all the group has).  ``require_stable``
    (KIP-447, OffsetFetch v7+; a read_committed consumer sets it, as Java's does): while a
    transaction that commits offsets of these partitions is being completed the broker answers
    UNSTABLE_OFFSET_COMMIT, retried here, so the offsets a just-committed transaction wrote
    are seen rather than the older ones."""
    deadline = time.monotonic() + timeout
    parts = None if partitions is None else list(partitions)
    while True:
        node = await cluster.coordinator(group_id, timeout=max(0.1, deadline - time.monotonic()))
        conn = await cluster.coordinator_connection(node)
        topics = None
        if parts is not None:
            by_topic: dict[str, list[int]] = {}
            for tp in parts:
                by_topic.setdefault(tp.topic, []).append(tp.partition)
            topics = [kp.OffsetFetchRequest.OffsetFetchRequestTopic(name=t, partition_indexes=ps)
                      for t, ps in by_topic.items()]
        # (a broker without OffsetFetch v7 has no transactional offsets to wait for)
        stable = require_stable and conn.version(ApiKey.OFFSET_FETCH) >= 7
        req = kp.OffsetFetchRequest(group_id=group_id, topics=topics, require_stable=stable)
        try:
            resp = await conn.send(req)
            code = resp.error_code
            if not code:
                codes = [p.error_code for t in resp.topics for p in t.partitions if p.error_code]
                code = codes[0] if codes else 0
            if code:
                if code in _COORDINATOR_ERRORS:
                    cluster.coordinator_dead(group_id)
                raise for_code(code, f"OffsetFetch of group {group_id!r}")
        except KafkaError as exc:
            if not exc.retriable or time.monotonic() > deadline:
                raise
            await asyncio.sleep(cluster.retry_backoff)
            continue
        out: dict[TopicPartition, OffsetAndMetadata | None] = {}
        for t in resp.topics:
            for p in t.partitions:
                tp = TopicPartition(t.name, p.partition_index)
                out[tp] = None if p.committed_offset < 0 else OffsetAndMetadata(
                    p.committed_offset, p.metadata or "", p.committed_leader_epoch)
        if parts is not None:
            for tp in parts:
                out.setdefault(tp, None)
        return out


class GroupCoordinator:
    """Membership of one consumer in ``group_id``; ``on_assignment`` is told of changes."""

    def __init__(self, cluster: Cluster, group_id: str, *, session_timeout_ms: int = 45000,
                 rebalance_timeout_ms: int = 300000, heartbeat_interval_ms: int = 3000,
                 assignors: Iterable[str] = ("range", "cooperative-sticky"),
                 group_instance_id: str | None = None) -> None:
        self.cluster = cluster
        self.group_id = group_id
        self.session_timeout_ms = session_timeout_ms
        self.rebalance_timeout_ms = rebalance_timeout_ms
        self.heartbeat_interval = heartbeat_interval_ms / 1000
        self.assignors = [get_assignor(a) for a in assignors]
        self.group_instance_id = group_instance_id
        self.member_id = ""
        self.generation = -1
        self.protocol: str | None = None
        self.leader = False
        self.subscription: list[str] = []
        self.owned: set[TopicPartition] = set()
        self.need_rejoin = True
        self.listener: RebalanceListener | None = None
        self.on_revoke_commit: Callable[[set[TopicPartition]], Any] | None = None
        self.on_assignment: Callable[[set[TopicPartition], set[TopicPartition]], Any] | None = None
        self._hb_task: asyncio.Task[None] | None = None
        self._joined = asyncio.Event()
        self.closed = False
        self.last_error: KafkaError | None = None

    @property
    def cooperative(self) -> bool:
        return self.protocol == "cooperative-sticky"

    def set_subscription(self, topics: Iterable[str]) -> None:
        topics = sorted(set(topics))
        if topics != self.subscription:
            self.subscription = topics
            self.need_rejoin = True

    async def _send(self, req: kp.Message) -> Any:
        node = await self.cluster.coordinator(self.group_id)
        conn = await self.cluster.coordinator_connection(node)
        try:
            return await conn.send(req, timeout=self.rebalance_timeout_ms / 1000 + 5
                                   if req.API_KEY == ApiKey.JOIN_GROUP else None)
        except KafkaError:
            self.cluster.coordinator_dead(self.group_id)
            raise

    async def ensure_active(self, timeout: float) -> None:
        """Join (or rejoin) the group if needed; runs the rebalance callbacks."""
        deadline = time.monotonic() + timeout
        while self.need_rejoin and not self.closed:
            try:
                await self._join_and_sync()
            except KafkaError as exc:
                self.last_error = exc
                code = exc.error_code
                if code in _COORDINATOR_ERRORS:
                    self.cluster.coordinator_dead(self.group_id)
                if code in (25, 22):  # UNKNOWN_MEMBER_ID, ILLEGAL_GENERATION: start over
                    self.member_id = "" if code == 25 else self.member_id
                    self.generation = -1
                elif not exc.retriable and code not in _REJOIN_ERRORS and code not in _COORDINATOR_ERRORS:
                    raise
                if time.monotonic() > deadline:
                    raise KafkaTimeoutError(f"joining group {self.group_id!r} timed out: {exc}") from exc
                await asyncio.sleep(self.cluster.retry_backoff)
        if self._hb_task is None or self._hb_task.done():
            self._hb_task = asyncio.ensure_future(self._heartbeat_loop())

    def _metadata(self, assignor: Any) -> bytes:
        sub = Subscription(list(self.subscription), assignor.subscription_user_data(self.subscription),
                           sorted(self.owned), self.generation)
        return encode_subscription(sub, 1)

    async def _join_and_sync(self) -> None:
        if not self.cooperative or self.generation < 0:
            # Eager: give everything up before joining.
            if self.owned:
                await self._revoke(set(self.owned))
        protocols = [kp.JoinGroupRequest.JoinGroupRequestProtocol(name=a.name, metadata=self._metadata(a))
                     for a in self.assignors]
        while True:
            req = kp.JoinGroupRequest(group_id=self.group_id, session_timeout_ms=self.session_timeout_ms,
                                      rebalance_timeout_ms=self.rebalance_timeout_ms, member_id=self.member_id,
                                      group_instance_id=self.group_instance_id, protocol_type="consumer",
                                      protocols=protocols, reason=None)
            resp = await self._send(req)
            if resp.error_code == 79:  # MEMBER_ID_REQUIRED: rejoin with the id the coordinator gave
                self.member_id = resp.member_id
                continue
            if resp.error_code:
                raise for_code(resp.error_code, f"JoinGroup of {self.group_id!r}")
            break
        self.member_id = resp.member_id
        self.generation = resp.generation_id
        self.protocol = resp.protocol_name
        self.leader = resp.leader == resp.member_id
        assignments = []
        if self.leader:
            assignments = await self._assign(resp.protocol_name, resp.members)
        sreq = kp.SyncGroupRequest(group_id=self.group_id, generation_id=self.generation, member_id=self.member_id,
                                   group_instance_id=self.group_instance_id, protocol_type="consumer",
                                   protocol_name=self.protocol, assignments=assignments)
        sresp = await self._send(sreq)
        if sresp.error_code:
            raise for_code(sresp.error_code, f"SyncGroup of {self.group_id!r}")
        new = {TopicPartition(t, p) for t, p in decode_assignment(sresp.assignment).partitions}
        self.need_rejoin = False
        revoked = self.owned - new
        added = new - self.owned
        if revoked:
            await self._revoke(revoked)
            if self.cooperative:
                self.need_rejoin = True  # let the moved partitions reach their new owner
        self.owned = new
        if self.on_assignment is not None:
            self.on_assignment(set(new), added)
        if self.listener is not None:
            await _call(self.listener.on_partitions_assigned, added if self.cooperative else set(new))
        self._joined.set()

    async def _revoke(self, revoked: set[TopicPartition], lost: bool = False) -> None:
        if self.on_revoke_commit is not None and not lost:
            try:
                await _call(self.on_revoke_commit, revoked)
            except KafkaError as exc:
                log.warning("commit before revoking %s failed: %s", sorted(revoked), exc)
        if self.listener is not None:
            await _call(self.listener.on_partitions_lost if lost else self.listener.on_partitions_revoked,
                        revoked)
        self.owned -= revoked
        if self.on_assignment is not None:
            self.on_assignment(set(self.owned), set())

    async def _assign(self, protocol: str, members: list[Any]) -> list[Any]:
        assignor = next(a for a in self.assignors if a.name == protocol)
        subs = {m.member_id: decode_subscription(m.metadata) for m in members}
        topics = sorted({t for s in subs.values() for t in s.topics})
        await self.cluster.refresh_metadata(topics)
        counts = {t: self.cluster.topics[t].num_partitions for t in topics
                  if t in self.cluster.topics and self.cluster.topics[t].partitions}
        result = assignor.assign(counts, subs)
        return [kp.SyncGroupRequest.SyncGroupRequestAssignment(
            member_id=m, assignment=encode_assignment(Assignment(parts)))
            for m, parts in result.items()]

    async def _heartbeat_loop(self) -> None:
        while not self.closed:
            await asyncio.sleep(self.heartbeat_interval)
            if self.need_rejoin or self.generation < 0:
                continue
            req = kp.HeartbeatRequest(group_id=self.group_id, generation_id=self.generation,
                                      member_id=self.member_id, group_instance_id=self.group_instance_id)
            try:
                resp = await self._send(req)
            except KafkaError as exc:
                log.debug("heartbeat failed: %s", exc)
                continue
            code = resp.error_code
            if code == 27:
                self.need_rejoin = True
            elif code in (22, 25, 82):
                # Fenced out of the group: what we owned is lost (no commit possible).
                if code == 25:
                    self.member_id = ""
                self.generation = -1
                self.need_rejoin = True
                if self.owned:
                    await self._revoke(set(self.owned), lost=True)
            elif code in _COORDINATOR_ERRORS:
                self.cluster.coordinator_dead(self.group_id)

    async def leave(self) -> None:
        self.closed = True
        if self._hb_task is not None:
            self._hb_task.cancel()
        if self.owned:
            await self._revoke(set(self.owned))
        if self.member_id and self.generation >= 0:
            try:
                node = await self.cluster.coordinator(self.group_id, timeout=5)
                conn = await self.cluster.coordinator_connection(node)
                if conn.version(ApiKey.LEAVE_GROUP) >= 3:
                    req = kp.LeaveGroupRequest(group_id=self.group_id, members=[
                        kp.LeaveGroupRequest.MemberIdentity(member_id=self.member_id,
                                                            group_instance_id=self.group_instance_id,
                                                            reason="the consumer is being closed")])
                else:
                    req = kp.LeaveGroupRequest(group_id=self.group_id, member_id=self.member_id)
                await conn.send(req, timeout=5)
            except (TimeoutError, KafkaError) as exc:
                log.debug("LeaveGroup failed: %s", exc)
        self.generation = -1
        self.member_id = ""

