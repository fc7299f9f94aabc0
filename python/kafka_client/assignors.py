"""Client-side partition assignors of the classic consumer group protocol,
and the ConsumerProtocolSubscription / ConsumerProtocolAssignment encodings
that travel as opaque bytes in JoinGroup / SyncGroup.

Both encodings are non-flexible Kafka structs prefixed by an int16 version
(``ConsumerProtocol.java``).  We write version 1 (owned partitions, needed
by cooperative-sticky) for subscriptions and version 0... 3 can be read.
"""

from __future__ import annotations

import struct
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

__all__ = [
    "Subscription", "Assignment", "encode_subscription", "decode_subscription",
    "encode_assignment", "decode_assignment", "RangeAssignor", "RoundRobinAssignor",
    "CooperativeStickyAssignor", "ASSIGNORS", "get_assignor",
]

TP = tuple[str, int]


@dataclass
class Subscription:
    topics: list[str]
    user_data: bytes | None = None
    owned_partitions: list[TP] = field(default_factory=list)
    generation_id: int = -1
    rack_id: str | None = None


@dataclass
class Assignment:
    partitions: list[TP]
    user_data: bytes | None = None


class _Reader:
    __slots__ = ("buf", "pos")

    def __init__(self, buf: bytes) -> None:
        self.buf = memoryview(bytes(buf))
        self.pos = 0

    def _take(self, n: int) -> memoryview:
        if n < 0 or self.pos + n > len(self.buf):
            raise ValueError(f"consumer protocol: needs {n} bytes at {self.pos}, {len(self.buf) - self.pos} left")
        b = self.buf[self.pos:self.pos + n]
        self.pos += n
        return b

    def i16(self) -> int:
        return struct.unpack(">h", self._take(2))[0]

    def i32(self) -> int:
        return struct.unpack(">i", self._take(4))[0]

    def string(self) -> str | None:
        n = self.i16()
        return None if n < 0 else bytes(self._take(n)).decode()

    def bytes_(self) -> bytes | None:
        n = self.i32()
        return None if n < 0 else bytes(self._take(n))

    def count(self) -> int:
        n = self.i32()
        if n > len(self.buf) - self.pos:
            raise ValueError(f"consumer protocol: array of {n} with {len(self.buf) - self.pos} bytes left")
        return max(n, 0)

    @property
    def done(self) -> bool:
        return self.pos >= len(self.buf)


def _w_str(out: list[bytes], s: str | None) -> None:
    if s is None:
        out.append(b"\xff\xff")
    else:
        b = s.encode()
        out.append(struct.pack(">h", len(b)) + b)


def _w_bytes(out: list[bytes], b: bytes | None) -> None:
    if b is None:
        out.append(b"\xff\xff\xff\xff")
    else:
        out.append(struct.pack(">i", len(b)) + bytes(b))


def _w_tps(out: list[bytes], tps: Iterable[TP]) -> None:
    by_topic: dict[str, list[int]] = defaultdict(list)
    for t, p in tps:
        by_topic[t].append(p)
    out.append(struct.pack(">i", len(by_topic)))
    for t in sorted(by_topic):
        _w_str(out, t)
        ps = sorted(by_topic[t])
        out.append(struct.pack(f">i{len(ps)}i", len(ps), *ps))


def _r_tps(r: _Reader) -> list[TP]:
    out = []
    for _ in range(r.count()):
        t = r.string() or ""
        for _ in range(r.count()):
            out.append((t, r.i32()))
    return out


def encode_subscription(sub: Subscription, version: int = 1) -> bytes:
    out = [struct.pack(">h", version), struct.pack(">i", len(sub.topics))]
    for t in sub.topics:
        _w_str(out, t)
    _w_bytes(out, sub.user_data)
    if version >= 1:
        _w_tps(out, sub.owned_partitions)
    if version >= 2:
        out.append(struct.pack(">i", sub.generation_id))
    if version >= 3:
        _w_str(out, sub.rack_id)
    return b"".join(out)


def decode_subscription(buf: bytes) -> Subscription:
    r = _Reader(buf)
    version = r.i16()
    topics = [r.string() or "" for _ in range(r.count())]
    sub = Subscription(topics, r.bytes_())
    # Newer versions only add fields at the end: read what is there (forward compatible).
    if version >= 1 and not r.done:
        sub.owned_partitions = _r_tps(r)
    if version >= 2 and not r.done:
        sub.generation_id = r.i32()
    if version >= 3 and not r.done:
        sub.rack_id = r.string()
    return sub


def encode_assignment(a: Assignment, version: int = 1) -> bytes:
    out = [struct.pack(">h", version)]
    _w_tps(out, a.partitions)
    _w_bytes(out, a.user_data)
    return b"".join(out)


def decode_assignment(buf: bytes | None) -> Assignment:
    if not buf:
        return Assignment([])
    r = _Reader(buf)
    r.i16()
    parts = _r_tps(r)
    user = r.bytes_() if not r.done else None
    return Assignment(parts, user)


class _Assignor:
    name = ""
    rebalance_protocol = "EAGER"

    def subscription_user_data(self, topics: list[str]) -> bytes | None:  # noqa: ARG002
        return None

    def assign(self, partitions_per_topic: dict[str, int],
               subscriptions: dict[str, Subscription]) -> dict[str, list[TP]]:
        raise NotImplementedError


class RangeAssignor(_Assignor):
    """Per topic: partitions split in contiguous ranges over the sorted subscribed members."""

    name = "range"

    def assign(self, partitions_per_topic: dict[str, int],
               subscriptions: dict[str, Subscription]) -> dict[str, list[TP]]:
        result: dict[str, list[TP]] = {m: [] for m in subscriptions}
        members_by_topic: dict[str, list[str]] = defaultdict(list)
        for m, sub in subscriptions.items():
            for t in sub.topics:
                members_by_topic[t].append(m)
        for t, members in members_by_topic.items():
            n = partitions_per_topic.get(t)
            if not n:
                continue
            members.sort()
            per, extra = divmod(n, len(members))
            start = 0
            for i, m in enumerate(members):
                cnt = per + (1 if i < extra else 0)
                result[m].extend((t, p) for p in range(start, start + cnt))
                start += cnt
        return result


class RoundRobinAssignor(_Assignor):
    """All partitions of all topics, sorted, dealt in turn to members subscribed to their topic."""

    name = "roundrobin"

    def assign(self, partitions_per_topic: dict[str, int],
               subscriptions: dict[str, Subscription]) -> dict[str, list[TP]]:
        result: dict[str, list[TP]] = {m: [] for m in subscriptions}
        members = sorted(subscriptions)
        if not members:
            return result
        topics = sorted({t for s in subscriptions.values() for t in s.topics if t in partitions_per_topic})
        i = 0
        for t in topics:
            for p in range(partitions_per_topic[t]):
                for _ in range(len(members)):
                    m = members[i % len(members)]
                    i += 1
                    if t in subscriptions[m].topics:
                        result[m].append((t, p))
                        break
        return result


class CooperativeStickyAssignor(_Assignor):
    """Balanced and sticky: members keep what they own (from the subscription's owned
    partitions, with the highest generation winning conflicts) as long as the
    balance allows, and the rest is given to the least loaded eligible members.
    A partition that moves is first only revoked (left out of every assignment)
    so that its old owner gives it up before the next rebalance hands it on
    (KIP-429)."""

    name = "cooperative-sticky"
    rebalance_protocol = "COOPERATIVE"

    def assign(self, partitions_per_topic: dict[str, int],
               subscriptions: dict[str, Subscription]) -> dict[str, list[TP]]:
        members = sorted(subscriptions)
        result: dict[str, list[TP]] = {m: [] for m in members}
        if not members:
            return result
        all_tps = sorted((t, p) for t, n in partitions_per_topic.items() for p in range(n)
                         if any(t in subscriptions[m].topics for m in members))
        # Current owners: highest generation wins a partition claimed twice.
        owner: dict[TP, tuple[int, str]] = {}
        for m in members:
            sub = subscriptions[m]
            for tp in sub.owned_partitions:
                if tp[0] not in sub.topics or tp[0] not in partitions_per_topic \
                        or tp[1] >= partitions_per_topic[tp[0]]:
                    continue
                prev = owner.get(tp)
                if prev is None or sub.generation_id > prev[0]:
                    owner[tp] = (sub.generation_id, m)
        quota_lo, extra = divmod(len(all_tps), len(members))
        # Keep owned partitions up to the quota (a member may keep quota_lo+1 while extras last).
        kept: dict[str, list[TP]] = {m: [] for m in members}
        for tp in all_tps:
            if tp in owner:
                kept[owner[tp][1]].append(tp)
        unassigned: list[TP] = [tp for tp in all_tps if tp not in owner]
        revoked: set[TP] = set()
        extras_left = extra
        for m in members:
            mine = kept[m]
            limit = quota_lo + (1 if extras_left > 0 and len(mine) > quota_lo else 0)
            if len(mine) > quota_lo and extras_left > 0:
                extras_left -= 1
            if len(mine) > limit:
                for tp in mine[limit:]:
                    revoked.add(tp)
                del mine[limit:]
        # Hand out unowned partitions to the least loaded eligible members.
        for tp in unassigned:
            eligible = [m for m in members if tp[0] in subscriptions[m].topics]
            if not eligible:
                continue
            m = min(eligible, key=lambda x: (len(kept[x]), x))
            kept[m].append(tp)
        # Revoked partitions are assigned to nobody this round; the owner rejoins after giving
        # them up and the next round assigns them (they are then unowned).
        _ = revoked
        for m in members:
            result[m] = sorted(kept[m])
        return result


ASSIGNORS: dict[str, type[_Assignor]] = {
    "range": RangeAssignor,
    "roundrobin": RoundRobinAssignor,
    "cooperative-sticky": CooperativeStickyAssignor,
}


def get_assignor(name: str) -> _Assignor:
    try:
        return ASSIGNORS[name]()
    except KeyError:
        raise ValueError(f"unknown assignor {name!r} (one of {', '.join(ASSIGNORS)})") from None
