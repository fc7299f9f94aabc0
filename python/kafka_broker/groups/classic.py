"""State of a classic consumer group (JoinGroup/SyncGroup protocol), without I/O.

States (Kafka's ``ClassicGroupState``) and their transitions:

    Empty --join--> PreparingRebalance --all joined / rebalance timeout--> CompletingRebalance
    CompletingRebalance --leader's SyncGroup stored--> Stable
    Stable | CompletingRebalance --join, leave, expiry, metadata change--> PreparingRebalance
    PreparingRebalance --last member gone--> Empty;   Empty --DeleteGroups / offsets expired--> Dead

The coordinator (``coordinator.py``) drives the transitions and owns the
timers and futures; this module keeps the bookkeeping that must stay
consistent: members, static instance ids, protocol votes, the leader.
"""

from __future__ import annotations

import asyncio
import struct
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

EMPTY = "Empty"
PREPARING_REBALANCE = "PreparingRebalance"
COMPLETING_REBALANCE = "CompletingRebalance"
STABLE = "Stable"
DEAD = "Dead"

_VALID_PREVIOUS = {
    PREPARING_REBALANCE: {STABLE, COMPLETING_REBALANCE, EMPTY},
    COMPLETING_REBALANCE: {PREPARING_REBALANCE},
    STABLE: {COMPLETING_REBALANCE},
    EMPTY: {PREPARING_REBALANCE},
    DEAD: {STABLE, PREPARING_REBALANCE, COMPLETING_REBALANCE, EMPTY, DEAD},
}


@dataclass(slots=True)
class JoinResult:
    """What a parked JoinGroup is answered with (converted per version by the coordinator)."""

    error: int
    member_id: str = ""
    generation_id: int = -1
    protocol_type: str | None = None
    protocol_name: str | None = None
    leader: str = ""
    skip_assignment: bool = False
    members: list[tuple[str, str | None, bytes]] = field(default_factory=list)


@dataclass(slots=True)
class SyncResult:
    error: int
    assignment: bytes = b""
    protocol_type: str | None = None
    protocol_name: str | None = None


class ClassicMember:
    __slots__ = ("member_id", "group_instance_id", "client_id", "client_host", "rebalance_timeout_ms",
                 "session_timeout_ms", "protocol_type", "protocols", "assignment", "join_future",
                 "sync_future", "is_new", "heartbeat_handle")

    def __init__(self, member_id: str, group_instance_id: str | None, client_id: str, client_host: str,
                 rebalance_timeout_ms: int, session_timeout_ms: int, protocol_type: str,
                 protocols: list[tuple[str, bytes]]) -> None:
        self.member_id = member_id
        self.group_instance_id = group_instance_id
        self.client_id = client_id
        self.client_host = client_host
        self.rebalance_timeout_ms = rebalance_timeout_ms
        self.session_timeout_ms = session_timeout_ms
        self.protocol_type = protocol_type
        self.protocols = protocols
        self.assignment = b""
        self.join_future: asyncio.Future[JoinResult] | None = None
        self.sync_future: asyncio.Future[SyncResult] | None = None
        self.is_new = False
        self.heartbeat_handle: Any = None

    @property
    def awaiting_join(self) -> bool:
        return self.join_future is not None

    @property
    def awaiting_sync(self) -> bool:
        return self.sync_future is not None

    def metadata(self, protocol: str | None) -> bytes:
        for name, meta in self.protocols:
            if name == protocol:
                return meta
        return b""

    def matches(self, protocols: list[tuple[str, bytes]]) -> bool:
        return self.protocols == protocols

    def vote(self, candidates: set[str]) -> str:
        for name, _ in self.protocols:
            if name in candidates:
                return name
        raise ValueError("member does not support any candidate protocol")

    def complete_join(self, result: JoinResult) -> None:
        fut, self.join_future = self.join_future, None
        if fut is not None and not fut.done():
            fut.set_result(result)

    def complete_sync(self, result: SyncResult) -> None:
        fut, self.sync_future = self.sync_future, None
        if fut is not None and not fut.done():
            fut.set_result(result)


class ClassicGroup:
    kind = "classic"

    def __init__(self, group_id: str, now_ms: int) -> None:
        self.group_id = group_id
        self.state = EMPTY
        self.previous_state = EMPTY
        self.state_timestamp = now_ms
        self.protocol_type: str | None = None
        self.protocol_name: str | None = None
        self.generation_id = 0
        self.leader_id: str | None = None
        self.members: dict[str, ClassicMember] = {}
        self.static_members: dict[str, str] = {}
        self.pending_members: dict[str, Any] = {}      # issued by MEMBER_ID_REQUIRED -> expiry handle
        self.pending_sync: set[str] = set()
        self.join_timer: Any = None
        self.sync_timer: Any = None
        self.new_member_added = False
        self._supported: Counter[str] = Counter()

    # -- state ----------------------------------------------------------------
    def transition(self, state: str, now_ms: int) -> None:
        if self.state not in _VALID_PREVIOUS[state]:
            raise RuntimeError(f"group {self.group_id}: illegal transition {self.state} -> {state}")
        self.previous_state = self.state
        self.state = state
        self.state_timestamp = now_ms

    def is_in(self, *states: str) -> bool:
        return self.state in states

    @property
    def is_empty(self) -> bool:
        return self.state == EMPTY

    # -- members ----------------------------------------------------------------
    def generate_member_id(self, client_id: str, instance_id: str | None) -> str:
        return f"{instance_id if instance_id is not None else client_id}-{uuid.uuid4()}"

    def add(self, member: ClassicMember) -> None:
        if not self.members:
            self.protocol_type = member.protocol_type
        self.members[member.member_id] = member
        self._supported.update(name for name, _ in member.protocols)
        if self.leader_id is None:
            self.leader_id = member.member_id
        if member.group_instance_id is not None:
            self.static_members[member.group_instance_id] = member.member_id
        self.pending_members.pop(member.member_id, None)

    def remove(self, member_id: str) -> ClassicMember | None:
        member = self.members.pop(member_id, None)
        if member is None:
            return None
        self._supported.subtract(name for name, _ in member.protocols)
        self.pending_sync.discard(member_id)
        if member.group_instance_id is not None and self.static_members.get(member.group_instance_id) == member_id:
            del self.static_members[member.group_instance_id]
        if self.leader_id == member_id:
            self.leader_id = next(iter(self.members), None)
        return member

    def update_protocols(self, member: ClassicMember, protocols: list[tuple[str, bytes]]) -> None:
        self._supported.subtract(name for name, _ in member.protocols)
        member.protocols = protocols
        self._supported.update(name for name, _ in protocols)

    def replace_static_member(self, instance_id: str, old_id: str, new_id: str) -> ClassicMember:
        """Give a restarted static member a new member id; fence whoever waits under the old one."""
        member = self.members.pop(old_id)
        member.complete_join(JoinResult(_FENCED, member_id=old_id))
        member.complete_sync(SyncResult(_FENCED))
        member.member_id = new_id
        self.members[new_id] = member
        self.static_members[instance_id] = new_id
        if self.leader_id == old_id:
            self.leader_id = new_id
        if old_id in self.pending_sync:
            self.pending_sync.discard(old_id)
            self.pending_sync.add(new_id)
        return member

    def validate_member(self, member_id: str, instance_id: str | None) -> int:
        """Kafka's ``ClassicGroup.validateMember``: 0, UNKNOWN_MEMBER_ID or FENCED_INSTANCE_ID."""
        if instance_id is not None:
            existing = self.static_members.get(instance_id)
            if existing is None:
                return _UNKNOWN
            if existing != member_id:
                return _FENCED
        return 0 if member_id in self.members else _UNKNOWN

    def has_all_joined(self) -> bool:
        return not self.pending_members and all(m.awaiting_join for m in self.members.values())

    def not_yet_rejoined(self) -> list[ClassicMember]:
        return [m for m in self.members.values() if not m.awaiting_join]

    def max_rebalance_timeout_ms(self) -> int:
        return max((m.rebalance_timeout_ms for m in self.members.values()), default=0)

    def elect_joined_leader(self) -> bool:
        leader = self.members.get(self.leader_id or "")
        if leader is not None and leader.awaiting_join:
            return True
        for m in self.members.values():
            if m.awaiting_join:
                self.leader_id = m.member_id
                return True
        self.leader_id = None
        return False

    # -- protocols --------------------------------------------------------------
    def supports(self, protocol_type: str, protocols: list[tuple[str, bytes]]) -> bool:
        if not self.members:
            return bool(protocol_type) and bool(protocols)
        n = len(self.members)
        return protocol_type == self.protocol_type and any(self._supported[name] == n for name, _ in protocols)

    def candidate_protocols(self) -> set[str]:
        n = len(self.members)
        return {name for name, count in self._supported.items() if count == n and n > 0}

    def select_protocol(self) -> str:
        """The protocol all members support with the most first-choice votes (ties: leader's order)."""
        candidates = self.candidate_protocols()
        if not candidates:
            raise ValueError(f"group {self.group_id}: no protocol supported by all members")
        votes = Counter(m.vote(candidates) for m in self.members.values())
        best = max(votes.values())
        leader = self.members.get(self.leader_id or "")
        order = [name for name, _ in leader.protocols] if leader is not None else sorted(candidates)
        for name in order:
            if votes.get(name) == best:
                return name
        return sorted(n for n, v in votes.items() if v == best)[0]

    def init_next_generation(self, now_ms: int) -> None:
        self.generation_id += 1
        if self.members:
            self.protocol_name = self.select_protocol()
            self.transition(COMPLETING_REBALANCE, now_ms)
        else:
            self.protocol_name = None
            self.transition(EMPTY, now_ms)
        self.pending_sync.clear()

    def member_list(self) -> list[tuple[str, str | None, bytes]]:
        """The (member id, instance id, metadata of the chosen protocol) list the leader receives."""
        return [(m.member_id, m.group_instance_id, m.metadata(self.protocol_name)) for m in self.members.values()]

    def subscribed_topics(self) -> set[str] | None:
        """Topics the members subscribe to, when they speak the consumer protocol (else None)."""
        if self.protocol_type != "consumer" or self.protocol_name is None:
            return None
        topics: set[str] = set()
        for m in self.members.values():
            parsed = parse_subscription(m.metadata(self.protocol_name))
            if parsed is None:
                return None
            topics.update(parsed)
        return topics


def parse_subscription(meta: bytes) -> list[str] | None:
    """Topics of a ConsumerProtocolSubscription (int16 version, then an array of int16 strings)."""
    try:
        pos = 2
        (n,) = struct.unpack_from(">i", meta, pos)
        pos += 4
        if n < 0 or n > len(meta):
            return None
        out = []
        for _ in range(n):
            (ln,) = struct.unpack_from(">h", meta, pos)
            pos += 2
            if ln < 0 or pos + ln > len(meta):
                return None
            out.append(bytes(meta[pos:pos + ln]).decode())
            pos += ln
        return out
    except (struct.error, UnicodeDecodeError):
        return None


_UNKNOWN = 25   # UNKNOWN_MEMBER_ID
_FENCED = 82    # FENCED_INSTANCE_ID
