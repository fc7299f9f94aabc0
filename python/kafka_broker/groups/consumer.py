"""KIP-848 consumer groups: ConsumerGroupHeartbeat (68) and ConsumerGroupDescribe (69).

The server computes the assignment.  Each heartbeat may bump the *group
epoch* (a member joined or left, a subscription or the subscribed topics'
metadata changed); a new group epoch yields a new *target assignment*
(``assignors.py``), and each member then reconciles towards its target
one heartbeat at a time (Kafka's ``CurrentAssignmentBuilder``):

1. partitions it owns that the target gives to others are *revoked first*:
   the member keeps its epoch, is told its smaller assignment, and stays
   UNREVOKED_PARTITIONS until a heartbeat's owned partitions no longer
   include them (or it is fenced after its rebalance timeout);
2. then it moves to the target epoch and receives the target's partitions
   that no other member still owns; the rest come in later heartbeats, as
   their previous owners release them (UNRELEASED_PARTITIONS).

So no partition is ever owned by two members at once.

Durability: the group's state is a set of Kafka's KIP-848 records in
``__consumer_offsets`` (``records.py``, key versions 3-8: group epoch,
subscribed topics' metadata, member metadata, target assignment epoch and
per-member target, per-member current assignment).  After each heartbeat
(and each timer that removes a member) ``_cg_persist`` encodes the group's
records, and the store appends those that differ from what it last appended,
plus tombstones for the keys that are gone; a heartbeat is answered only
after that append returned.  At start-up ``_cg_restore`` rebuilds the groups
from the records, so a member keeps its id, epoch and assignment across a
restart; session timeouts restart from load time (as in Kafka).  Encoding the
whole group per heartbeat is O(members): fine for the group sizes we serve.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections import Counter
from typing import TYPE_CHECKING, Any
from uuid import UUID

from kafka_protocol.errors import ErrorCode as E

from . import _proto as P
from . import records as R
from .assignors import ASSIGNORS, DEFAULT_ASSIGNOR

log = logging.getLogger("kafka_broker.groups.consumer")

STABLE_M = "stable"
UNREVOKED = "unrevoked_partitions"
UNRELEASED = "unreleased_partitions"
LEAVE_EPOCH = -1
STATIC_LEAVE_EPOCH = -2

TP = dict[UUID, set[int]]

_STATE_CODE = {STABLE_M: R.MEMBER_STATE_STABLE, UNREVOKED: R.MEMBER_STATE_UNREVOKED,
               UNRELEASED: R.MEMBER_STATE_UNRELEASED}
_CODE_STATE = {v: k for k, v in _STATE_CODE.items()}


def _flat(a: TP) -> set[tuple[UUID, int]]:
    return {(t, p) for t, ps in a.items() for p in ps}


def _nest(s: set[tuple[UUID, int]]) -> TP:
    out: TP = {}
    for t, p in s:
        out.setdefault(t, set()).add(p)
    return out


def _lists(s: set[tuple[UUID, int]]) -> R.TopicPartitions:
    return {t: sorted(ps) for t, ps in _nest(s).items()}


def _unlists(a: R.TopicPartitions) -> set[tuple[UUID, int]]:
    return {(t, p) for t, ps in a.items() for p in ps}


def group_records(g: ConsumerGroup) -> dict[bytes, bytes]:
    """The group's state as KIP-848 ``__consumer_offsets`` records, key -> value."""
    gid = g.group_id
    out = {
        R.cg_key(R.CG_METADATA_KEY, gid): R.cg_epoch_value(g.group_epoch),
        R.cg_key(R.CG_PARTITION_METADATA_KEY, gid): R.cg_partition_metadata_value(
            [R.CgTopicMetadata(tid, name, n) for name, tid, n in g.metadata_fp]),
        R.cg_key(R.CG_TARGET_METADATA_KEY, gid): R.cg_epoch_value(g.assignment_epoch),
    }
    for mid, m in g.members.items():
        out[R.cg_key(R.CG_MEMBER_METADATA_KEY, gid, mid)] = R.cg_member_metadata_value(R.CgMemberMetadata(
            m.instance_id, m.rack_id, m.client_id, m.client_host, list(m.subscribed_names), m.regex,
            m.server_assignor, m.rebalance_timeout_ms))
        out[R.cg_key(R.CG_CURRENT_MEMBER_KEY, gid, mid)] = R.cg_current_assignment_value(R.CgCurrentAssignment(
            m.member_epoch, m.previous_epoch, _STATE_CODE.get(m.state, R.MEMBER_STATE_UNKNOWN),
            _lists(m.assigned), _lists(m.pending_revocation)))
    for mid, tps in g.target.items():
        out[R.cg_key(R.CG_TARGET_MEMBER_KEY, gid, mid)] = R.cg_target_member_value(_lists(tps))
    return out


def restore_group(group_id: str, raw: dict[bytes, bytes]) -> ConsumerGroup:
    """A ConsumerGroup from its stored records (``group_records``'s inverse; timers not armed)."""
    g = ConsumerGroup(group_id)
    meta: dict[str, R.CgMemberMetadata] = {}
    current: dict[str, R.CgCurrentAssignment] = {}
    for key, value in raw.items():
        kv, _, mid = R.decode_cg_key(key)
        if kv == R.CG_METADATA_KEY:
            g.group_epoch = R.decode_cg_epoch_value(value)
        elif kv == R.CG_TARGET_METADATA_KEY:
            g.assignment_epoch = R.decode_cg_epoch_value(value)
        elif kv == R.CG_PARTITION_METADATA_KEY:
            g.metadata_fp = tuple((t.name, t.topic_id, t.partitions)
                                  for t in R.decode_cg_partition_metadata_value(value))
        elif kv == R.CG_MEMBER_METADATA_KEY and mid is not None:
            meta[mid] = R.decode_cg_member_metadata_value(value)
        elif kv == R.CG_CURRENT_MEMBER_KEY and mid is not None:
            current[mid] = R.decode_cg_current_assignment_value(value)
        elif kv == R.CG_TARGET_MEMBER_KEY and mid is not None:
            g.target[mid] = _unlists(R.decode_cg_target_member_value(value))
    for mid, md in meta.items():
        m = ConsumerMember(mid)
        m.instance_id, m.rack_id, m.client_id, m.client_host = md.instance_id, md.rack_id, md.client_id, md.client_host
        m.subscribed_names = list(md.subscribed_topic_names)
        m.regex = md.subscribed_topic_regex
        m.server_assignor = md.server_assignor
        if md.rebalance_timeout_ms > 0:
            m.rebalance_timeout_ms = md.rebalance_timeout_ms
        c = current.get(mid)
        if c is not None:
            m.member_epoch, m.previous_epoch = c.member_epoch, c.previous_member_epoch
            m.state = _CODE_STATE.get(c.state, STABLE_M)
            m.assigned = _unlists(c.assigned)
            m.pending_revocation = _unlists(c.pending_revocation)
        g.members[mid] = m
        if m.instance_id is not None:
            g.static[m.instance_id] = mid
    votes = Counter(m.server_assignor for m in g.members.values() if m.server_assignor)
    g.assignor = votes.most_common(1)[0][0] if votes else DEFAULT_ASSIGNOR
    return g


class ConsumerMember:
    __slots__ = ("member_id", "instance_id", "rack_id", "client_id", "client_host", "rebalance_timeout_ms",
                 "subscribed_names", "regex", "server_assignor", "member_epoch", "previous_epoch", "state",
                 "assigned", "pending_revocation", "session_handle", "revocation_handle")

    def __init__(self, member_id: str) -> None:
        self.member_id = member_id
        self.instance_id: str | None = None
        self.rack_id: str | None = None
        self.client_id = ""
        self.client_host = ""
        self.rebalance_timeout_ms = 300000
        self.subscribed_names: list[str] = []
        self.regex: str | None = None
        self.server_assignor: str | None = None
        self.member_epoch = 0
        self.previous_epoch = -1
        self.state = STABLE_M
        self.assigned: set[tuple[UUID, int]] = set()
        self.pending_revocation: set[tuple[UUID, int]] = set()
        self.session_handle: Any = None
        self.revocation_handle: Any = None


class ConsumerGroup:
    kind = "consumer"

    def __init__(self, group_id: str) -> None:
        self.group_id = group_id
        self.group_epoch = 0
        self.assignment_epoch = 0
        self.members: dict[str, ConsumerMember] = {}
        self.static: dict[str, str] = {}
        self.target: dict[str, set[tuple[UUID, int]]] = {}
        self.metadata_fp: tuple[Any, ...] = ()
        self.assignor = DEFAULT_ASSIGNOR

    def state(self) -> str:
        if not self.members:
            return "Empty"
        if self.group_epoch != self.assignment_epoch:
            return "Assigning"
        for m in self.members.values():
            if m.member_epoch != self.assignment_epoch or m.state != STABLE_M:
                return "Reconciling"
        return "Stable"

    def subscribed_topic_names(self, all_topics: Any = None) -> set[str]:
        names = {n for m in self.members.values() for n in m.subscribed_names}
        regexes = {m.regex for m in self.members.values() if m.regex}
        if regexes and all_topics is not None:
            pats = [re.compile(r) for r in regexes]
            names.update(t for t in all_topics() if any(p.fullmatch(t) for p in pats))
        return names

    def owners_except(self, member_id: str) -> set[tuple[UUID, int]]:
        out: set[tuple[UUID, int]] = set()
        for mid, m in self.members.items():
            if mid != member_id:
                out |= m.assigned
                out |= m.pending_revocation
        return out


class _Reject(Exception):
    def __init__(self, code: int, message: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class ConsumerProtocolMixin:
    """KIP-848 handlers, mixed into GroupCoordinator (which provides groups, cfg, call_later...)."""

    groups: dict[str, Any]
    started: bool
    rebalances: int

    if TYPE_CHECKING:
        def unavailable(self, group_id: str | None) -> int: ...

    def _init_consumer_protocol(self) -> None:
        pass

    # -- ConsumerGroupHeartbeat (68) ---------------------------------------------------
    async def consumer_group_heartbeat(self, req: Any, version: int, ctx: Any = None) -> Any:
        cls = P.message_class("ConsumerGroupHeartbeatResponse")
        interval = self.cfg("group.consumer.heartbeat.interval.ms")  # type: ignore[attr-defined]
        try:
            member_id, epoch, assignment = self._cg_heartbeat(req, version, ctx)
            g = self.groups.get(req.group_id)
            if isinstance(g, ConsumerGroup) and not await self._cg_persist(g):
                raise _Reject(E.COORDINATOR_NOT_AVAILABLE, "Writing the group's state failed.")
        except _Reject as r:
            return P.build(cls, version, throttle_time_ms=0, error_code=r.code, error_message=r.message,
                           member_id=None, member_epoch=-1, heartbeat_interval_ms=0, assignment=None)
        acls = P.child(cls, "assignment")
        tcls = P.child(acls, "topic_partitions")
        asg = None
        if assignment is not None:
            asg = P.build(acls, version, topic_partitions=[
                P.build(tcls, version, topic_id=t, partitions=sorted(ps)) for t, ps in sorted(assignment.items())])
        return P.build(cls, version, throttle_time_ms=0, error_code=E.NONE, error_message=None, member_id=member_id,
                       member_epoch=epoch, heartbeat_interval_ms=interval, assignment=asg)

    def _cg_heartbeat(self, req: Any, version: int, ctx: Any) -> tuple[str, int, TP | None]:
        group_id: str = req.group_id
        if err := self.unavailable(group_id):
            raise _Reject(err)
        member_id: str = req.member_id or ""
        epoch: int = req.member_epoch
        instance_id = P.get(req, "instance_id")
        names = P.get(req, "subscribed_topic_names")
        regex = P.get(req, "subscribed_topic_regex") if version >= 1 else None
        owned_in = P.get(req, "topic_partitions")
        rebalance_ms = P.get(req, "rebalance_timeout_ms", -1)
        assignor = P.get(req, "server_assignor")
        if not group_id:
            raise _Reject(E.INVALID_REQUEST, "GroupId can't be empty.")
        if epoch == 0:
            if not member_id:
                if version >= 1:
                    raise _Reject(E.INVALID_REQUEST, "MemberId can't be empty.")
                member_id = str(uuid.uuid4())
            if rebalance_ms is None or rebalance_ms == -1:
                raise _Reject(E.INVALID_REQUEST, "RebalanceTimeoutMs must be provided in first request.")
            if names is None and regex is None:
                raise _Reject(E.INVALID_REQUEST, "SubscribedTopicNames or SubscribedTopicRegex must be set "
                                                 "in first request.")
            if owned_in:
                raise _Reject(E.INVALID_REQUEST, "TopicPartitions must be empty when (re-)joining.")
        elif epoch > 0 or epoch in (LEAVE_EPOCH, STATIC_LEAVE_EPOCH):
            if not member_id:
                raise _Reject(E.INVALID_REQUEST, "MemberId can't be empty.")
            if epoch == STATIC_LEAVE_EPOCH and instance_id is None:
                raise _Reject(E.INVALID_REQUEST, "InstanceId can't be null when leaving with epoch -2.")
        else:
            raise _Reject(E.INVALID_REQUEST, f"MemberEpoch {epoch} is invalid.")
        if assignor is not None and assignor not in ASSIGNORS:
            raise _Reject(E.UNSUPPORTED_ASSIGNOR, f"ServerAssignor {assignor} is not supported; "
                                                  f"supported: {', '.join(sorted(ASSIGNORS))}.")
        if regex:
            try:
                re.compile(regex)
            except re.error as e:
                raise _Reject(E.INVALID_REGULAR_EXPRESSION, f"SubscribedTopicRegex {regex!r}: {e}") from None

        g = self.groups.get(group_id)
        if g is not None and not isinstance(g, ConsumerGroup):
            if g.members or g.state not in ("Empty",):
                raise _Reject(E.GROUP_ID_NOT_FOUND, f"Group {group_id} is not a consumer group.")
            if epoch != 0:
                raise _Reject(E.UNKNOWN_MEMBER_ID)
            self._drop_group(group_id)  # type: ignore[attr-defined]
            g = None
        if g is None:
            if epoch != 0:
                # not GROUP_ID_NOT_FOUND: the member rejoins with epoch 0 (e.g. its group was deleted)
                raise _Reject(E.UNKNOWN_MEMBER_ID, f"Group {group_id} has no member {member_id}.")
            g = self.groups[group_id] = ConsumerGroup(group_id)

        if epoch in (LEAVE_EPOCH, STATIC_LEAVE_EPOCH):
            return self._cg_leave(g, member_id, epoch)

        m = g.members.get(member_id)
        bump = False
        if instance_id is not None:
            holder = g.static.get(instance_id)
            if holder is not None and holder != member_id:
                other = g.members.get(holder)
                if other is not None and other.member_epoch != STATIC_LEAVE_EPOCH:
                    if epoch == 0:
                        raise _Reject(E.UNRELEASED_INSTANCE_ID,
                                      f"Static member {instance_id} is still in use by {holder}.")
                    raise _Reject(E.FENCED_INSTANCE_ID)
                if other is not None and epoch == 0:
                    # a restarted static member takes over its predecessor's place and target
                    m = ConsumerMember(member_id)
                    m.assigned = set()
                    g.target[member_id] = g.target.pop(holder, set())
                    self._cg_remove(g, other, bump=False)
                    g.members[member_id] = m
                    g.static[instance_id] = member_id
        if m is None:
            if epoch != 0:
                raise _Reject(E.UNKNOWN_MEMBER_ID)
            m = g.members[member_id] = ConsumerMember(member_id)
            if instance_id is not None:
                g.static[instance_id] = member_id
            bump = True
        elif epoch == 0:
            # a member that lost its state rejoins: it owns nothing now
            m.assigned.clear()
            m.pending_revocation.clear()
            m.state = STABLE_M
            m.previous_epoch, m.member_epoch = m.member_epoch, 0
        else:
            owned = _flat({t.topic_id: set(t.partitions) for t in owned_in}) if owned_in is not None else None
            if epoch > m.member_epoch:
                raise _Reject(E.FENCED_MEMBER_EPOCH, f"Member epoch {epoch} is ahead of {m.member_epoch}.")
            if epoch < m.member_epoch and not (epoch == m.previous_epoch and (owned is None or owned <= m.assigned)):
                raise _Reject(E.FENCED_MEMBER_EPOCH, f"Member epoch {epoch} is behind {m.member_epoch}.")
        m.instance_id = instance_id if instance_id is not None else m.instance_id
        m.rack_id = P.get(req, "rack_id") if P.get(req, "rack_id") is not None else m.rack_id
        if ctx is not None:
            m.client_id, m.client_host = ctx.client_id, ctx.client_host
        if rebalance_ms is not None and rebalance_ms > 0:
            m.rebalance_timeout_ms = rebalance_ms
        if names is not None and list(names) != m.subscribed_names:
            m.subscribed_names = list(names)
            bump = True
        if version >= 1 and regex is not None and (regex or None) != m.regex:
            m.regex = regex or None
            bump = True
        if assignor is not None and assignor != m.server_assignor:
            m.server_assignor = assignor
            bump = True
        fp, sub_ids = self._cg_metadata(g)
        if fp != g.metadata_fp:
            g.metadata_fp = fp
            bump = True
        if bump:
            g.group_epoch += 1
            self.rebalances += 1
        if g.group_epoch != g.assignment_epoch:
            self._cg_assign(g, sub_ids)
        before = set(m.assigned)
        owned = _flat({t.topic_id: set(t.partitions) for t in owned_in}) if owned_in is not None else None
        self._cg_reconcile(g, m, owned)
        self._cg_arm_session(g, m)
        full = epoch == 0 or (rebalance_ms not in (None, -1) and names is not None and owned_in is not None)
        return m.member_id, m.member_epoch, (_nest(m.assigned) if full or m.assigned != before else None)

    def _cg_metadata(self, g: ConsumerGroup) -> tuple[tuple[Any, ...], dict[str, set[UUID]]]:
        """The subscribed topics' (name, id, partitions), and each member's subscription as topic ids."""
        info = self._topic_info  # type: ignore[attr-defined]
        known: dict[str, Any] = {}
        for name in sorted(g.subscribed_topic_names(self._all_topics)):  # type: ignore[attr-defined]
            ti = info(name) if info is not None else None
            if ti is not None:
                known[name] = ti
        subs: dict[str, set[UUID]] = {}
        pats: dict[str, re.Pattern[str]] = {}
        for mid, m in g.members.items():
            ids = {known[n].topic_id for n in m.subscribed_names if n in known}
            if m.regex:
                pat = pats.setdefault(m.regex, re.compile(m.regex))
                ids |= {ti.topic_id for n, ti in known.items() if pat.fullmatch(n)}
            subs[mid] = ids
        fp = tuple((n, ti.topic_id, ti.partitions) for n, ti in known.items())
        return fp, subs

    def _cg_assign(self, g: ConsumerGroup, subs: dict[str, set[UUID]]) -> None:
        votes = Counter(m.server_assignor for m in g.members.values() if m.server_assignor)
        g.assignor = votes.most_common(1)[0][0] if votes else DEFAULT_ASSIGNOR
        topics: dict[UUID, int] = {}
        info = self._topic_info  # type: ignore[attr-defined]
        for name in g.subscribed_topic_names(self._all_topics):  # type: ignore[attr-defined]
            ti = info(name) if info is not None else None
            if ti is not None:
                topics[ti.topic_id] = ti.partitions
        active = {mid: s for mid, s in subs.items() if g.members[mid].member_epoch != STATIC_LEAVE_EPOCH}
        # a static member that left with -2 keeps its target for its successor
        previous = {mid: _nest(tps) for mid, tps in g.target.items()}
        result = ASSIGNORS[g.assignor].assign(active, topics, previous)
        g.target = {mid: _flat(a) for mid, a in result.items()}
        for mid in g.members:
            if mid not in active:
                g.target[mid] = {tp for tp in g.target.get(mid, set()) if tp[0] in topics}
        g.assignment_epoch = g.group_epoch
        log.info("group %s: epoch %d target assignment by %s for %d members", g.group_id, g.group_epoch,
                 g.assignor, len(active))

    def _cg_reconcile(self, g: ConsumerGroup, m: ConsumerMember, owned: set[tuple[UUID, int]] | None) -> None:
        if m.state == UNREVOKED:
            if owned is None or owned & m.pending_revocation:
                return
            m.pending_revocation = set()
            m.state = STABLE_M
            if m.revocation_handle is not None:
                m.revocation_handle.cancel()
                m.revocation_handle = None
        if m.member_epoch == g.assignment_epoch and m.state == STABLE_M:
            return
        target = g.target.get(m.member_id, set())
        keep = m.assigned & target
        revoke = m.assigned - target
        if revoke:
            m.assigned = keep
            m.pending_revocation = revoke
            m.state = UNREVOKED
            m.revocation_handle = self.call_later(  # type: ignore[attr-defined]
                m.rebalance_timeout_ms, lambda: self._cg_revocation_expired(g, m))
            return
        want = target - keep
        free = want - g.owners_except(m.member_id)
        m.assigned = keep | free
        if m.member_epoch != g.assignment_epoch:
            m.previous_epoch, m.member_epoch = m.member_epoch, g.assignment_epoch
        m.state = UNRELEASED if want - free else STABLE_M

    def _cg_revocation_expired(self, g: ConsumerGroup, m: ConsumerMember) -> None:
        m.revocation_handle = None
        if g.members.get(m.member_id) is m and m.state == UNREVOKED:
            log.info("group %s: member %s fenced: did not revoke partitions within %d ms", g.group_id,
                     m.member_id, m.rebalance_timeout_ms)
            self._cg_remove(g, m)
            self.spawn(self._cg_persist(g))  # type: ignore[attr-defined]

    def _cg_arm_session(self, g: ConsumerGroup, m: ConsumerMember) -> None:
        if m.session_handle is not None:
            m.session_handle.cancel()
        m.session_handle = self.call_later(  # type: ignore[attr-defined]
            self.cfg("group.consumer.session.timeout.ms"), lambda: self._cg_session_expired(g, m))  # type: ignore[attr-defined]

    def _cg_session_expired(self, g: ConsumerGroup, m: ConsumerMember) -> None:
        m.session_handle = None
        if g.members.get(m.member_id) is m:
            log.info("group %s: member %s expired", g.group_id, m.member_id)
            self._cg_remove(g, m)
            self.spawn(self._cg_persist(g))  # type: ignore[attr-defined]

    def _cg_remove(self, g: ConsumerGroup, m: ConsumerMember, bump: bool = True) -> None:
        for h in (m.session_handle, m.revocation_handle):
            if h is not None:
                h.cancel()
        m.session_handle = m.revocation_handle = None
        g.members.pop(m.member_id, None)
        g.target.pop(m.member_id, None)
        if m.instance_id is not None and g.static.get(m.instance_id) == m.member_id:
            del g.static[m.instance_id]
        if bump:
            g.group_epoch += 1
            self.rebalances += 1

    def _cg_leave(self, g: ConsumerGroup, member_id: str, epoch: int) -> tuple[str, int, TP | None]:
        m = g.members.get(member_id)
        if m is None:
            raise _Reject(E.UNKNOWN_MEMBER_ID)
        if epoch == STATIC_LEAVE_EPOCH and m.instance_id is not None:
            # keep its place (and partitions) for a restart within the session timeout
            m.member_epoch = STATIC_LEAVE_EPOCH
            self._cg_arm_session(g, m)
        else:
            self._cg_remove(g, m)
        return member_id, epoch, None

    # -- durability ------------------------------------------------------------------------
    async def _cg_persist(self, g: ConsumerGroup) -> bool:
        """Append the group's changed records; False (logged) if the append failed.

        A group that was dropped or replaced meanwhile is not written (its deletion
        or replacement writes its own tombstones).
        """
        if self.groups.get(g.group_id) is not g:
            return True
        try:
            await self.store.sync_consumer_group(g.group_id, group_records(g))  # type: ignore[attr-defined]
        except Exception as e:  # noqa: BLE001
            log.warning("group %s: storing consumer group state failed: %s", g.group_id, e)
            return False
        return True

    def _cg_restore(self, group_id: str, raw: dict[bytes, bytes]) -> ConsumerGroup:
        """Rebuild a group from the store at start-up and arm its members' timers from now."""
        g = restore_group(group_id, raw)
        for m in g.members.values():
            self._cg_arm_session(g, m)
            if m.state == UNREVOKED:
                m.revocation_handle = self.call_later(  # type: ignore[attr-defined]
                    m.rebalance_timeout_ms, lambda g=g, m=m: self._cg_revocation_expired(g, m))
        return g

    def _cancel_consumer_timers(self, g: ConsumerGroup) -> None:
        for m in g.members.values():
            for h in (m.session_handle, m.revocation_handle):
                if h is not None:
                    h.cancel()

    # -- offsets validation for consumer groups -------------------------------------------
    def _validate_consumer_commit(self, g: ConsumerGroup, member_id: str, epoch: int | None, version: int) -> int:
        if (epoch is None or epoch < 0) and not g.members:
            return E.NONE
        m = g.members.get(member_id)
        if m is None:
            return E.UNKNOWN_MEMBER_ID
        if epoch is None or epoch > m.member_epoch:
            return E.FENCED_MEMBER_EPOCH
        if epoch < m.member_epoch:
            return E.STALE_MEMBER_EPOCH
        return E.NONE

    def _validate_consumer_fetch(self, g: ConsumerGroup, member_id: str, epoch: int | None) -> int:
        m = g.members.get(member_id)
        if m is None:
            return E.UNKNOWN_MEMBER_ID
        if epoch != m.member_epoch:
            return E.STALE_MEMBER_EPOCH
        return E.NONE

    # -- ConsumerGroupDescribe (69) -----------------------------------------------------
    async def consumer_group_describe(self, req: Any, version: int, ctx: Any = None) -> Any:
        cls = P.message_class("ConsumerGroupDescribeResponse")
        gcls = P.child(cls, "groups")
        mcls = P.child(gcls, "members")
        acls = P.child(mcls, "assignment")
        tcls = P.child(acls, "topic_partitions")
        include_ops = bool(P.get(req, "include_authorized_operations", False))
        names = self._topic_name  # type: ignore[attr-defined]

        def asg(tps: set[tuple[UUID, int]]) -> Any:
            return P.build(acls, version, topic_partitions=[
                P.build(tcls, version, topic_id=t, topic_name=(names(t) if names else None) or "",
                        partitions=sorted(ps)) for t, ps in sorted(_nest(tps).items())])

        out = []
        for gid in req.group_ids:
            g = self.groups.get(gid)
            ops = (1 << 3) | (1 << 6) | (1 << 8) if include_ops else -(1 << 31)
            if err := self.unavailable(gid):
                out.append(P.build(gcls, version, error_code=err, group_id=gid,
                                   group_state="", assignor_name="", members=[], authorized_operations=ops))
                continue
            if not isinstance(g, ConsumerGroup):
                msg = f"Group {gid} is not a consumer group." if g is not None else f"Group {gid} not found."
                out.append(P.build(gcls, version, error_code=E.GROUP_ID_NOT_FOUND, error_message=msg, group_id=gid,
                                   group_state="Dead", assignor_name="", members=[], authorized_operations=ops))
                continue
            members = [P.build(mcls, version, member_id=m.member_id, instance_id=m.instance_id, rack_id=m.rack_id,
                               member_epoch=m.member_epoch, client_id=m.client_id, client_host=m.client_host,
                               subscribed_topic_names=list(m.subscribed_names), subscribed_topic_regex=m.regex,
                               assignment=asg(m.assigned), target_assignment=asg(g.target.get(m.member_id, set())))
                       for m in g.members.values()]
            out.append(P.build(gcls, version, error_code=E.NONE, error_message=None, group_id=gid,
                               group_state=g.state(), group_epoch=g.group_epoch,
                               assignment_epoch=g.assignment_epoch, assignor_name=g.assignor, members=members,
                               authorized_operations=ops))
        return P.build(cls, version, throttle_time_ms=0, groups=out)
