"""Test helpers: a fake clock/scheduler, a coordinator over an in-memory store, wire round trips,
classic groups formed and synced."""

from __future__ import annotations

import asyncio
import functools
import heapq
import itertools
import struct
import uuid
from collections.abc import Callable, Coroutine
from typing import Any

import kafka_protocol as K
from kafka_broker.groups import (
    GroupCoordinator,
    MemoryBackend,
    NodeInfo,
    OffsetsStore,
    RequestContext,
    TopicInfo,
)
from kafka_protocol.errors import ErrorCode as E


class FakeHandle:
    def __init__(self) -> None:
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class FakeScheduler:
    """``call_later`` against a clock that only moves when the test says so."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self._heap: list[tuple[float, int, FakeHandle, Any]] = []
        self._seq = itertools.count()

    def monotonic(self) -> float:
        return self.now

    def time(self) -> float:
        return 1_700_000_000.0 + self.now

    def call_later(self, delay: float, cb: Any) -> FakeHandle:
        h = FakeHandle()
        heapq.heappush(self._heap, (self.now + delay, next(self._seq), h, cb))
        return h

    def advance(self, ms: float) -> None:
        end = self.now + ms / 1000.0
        while self._heap and self._heap[0][0] <= end:
            when, _, h, cb = heapq.heappop(self._heap)
            self.now = max(self.now, when)
            if not h.cancelled:
                cb()
        self.now = end


TOPICS = {
    "t1": TopicInfo("t1", uuid.UUID(int=1), 6),
    "t2": TopicInfo("t2", uuid.UUID(int=2), 3),
}


def make(config: dict[str, int] | None = None, backend: MemoryBackend | None = None,
         topics: dict[str, TopicInfo] | None = None) -> tuple[GroupCoordinator, FakeScheduler, MemoryBackend]:
    sched = FakeScheduler()
    backend = backend or MemoryBackend(50)
    topics = TOPICS if topics is None else topics
    store = OffsetsStore(backend, wall_clock=sched.time)
    cfg = {"group.initial.rebalance.delay.ms": 3000}
    cfg.update(config or {})
    by_id = {t.topic_id: t.name for t in topics.values()}
    coord = GroupCoordinator(store, clock=sched.monotonic, config=cfg, scheduler=sched, wall_clock=sched.time,
                             node=lambda: NodeInfo(7, "broker.example", 9092), topic_info=topics.get,
                             topic_name=by_id.get, all_topics=lambda: list(topics),
                             max_member_metadata_bytes=4096)
    return coord, sched, backend


async def started(config: dict[str, int] | None = None, backend: MemoryBackend | None = None,
                  topics: dict[str, TopicInfo] | None = None) -> tuple[GroupCoordinator, FakeScheduler, MemoryBackend]:
    """make(), with the coordinator started (offsets loaded)."""
    coord, sched, backend = make(config, backend, topics)
    await coord.start()
    return coord, sched, backend


async def restarted(coord: GroupCoordinator, backend: MemoryBackend) -> tuple[GroupCoordinator, FakeScheduler]:
    """Close coord and start a new coordinator (and clock) over the same backend, as a broker restart does."""
    coord.close()
    coord2, sched2, _ = await started(backend=backend)
    return coord2, sched2


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def async_test(fn: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
    """A test written as a coroutine function, run to completion with asyncio.run (no plugin)."""

    @functools.wraps(fn)
    def test(*args: Any, **kwargs: Any) -> None:
        asyncio.run(fn(*args, **kwargs))

    return test


async def settle(n: int = 30) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


def wire(msg: Any, version: int) -> Any:
    """Encode and decode at ``version`` (what the server's dispatch does)."""
    out, _ = type(msg).decode(msg.encode(version), version)
    return out


async def call(coord: GroupCoordinator, method: str, req: Any, version: int, client_id: str = "c") -> Any:
    """Send ``req`` through the codec, call the coordinator, check the response encodes at ``version``."""
    resp = await getattr(coord, method)(wire(req, version), version, RequestContext(client_id, "/127.0.0.1"))
    return wire(resp, version)


def subscription(*topics: str) -> bytes:
    """ConsumerProtocolSubscription v0: topics, null user data."""
    out = struct.pack(">hi", 0, len(topics))
    for t in topics:
        out += struct.pack(">h", len(t)) + t.encode()
    return out + struct.pack(">i", -1)


def join_req(group: str = "g", member_id: str = "", *, instance: str | None = None, session: int = 10000,
             rebalance: int = 30000, protocols: list[tuple[str, bytes]] | None = None,
             ptype: str = "consumer") -> Any:
    protocols = protocols if protocols is not None else [("range", subscription("t1"))]
    return K.JoinGroupRequest(group_id=group, session_timeout_ms=session, rebalance_timeout_ms=rebalance,
                              member_id=member_id, group_instance_id=instance, protocol_type=ptype,
                              protocols=[K.JoinGroupRequest.JoinGroupRequestProtocol(name=n, metadata=m)
                                         for n, m in protocols])


def sync_req(group: str, member_id: str, generation: int, assignments: dict[str, bytes] | None = None,
             *, instance: str | None = None, ptype: str | None = None, pname: str | None = None) -> Any:
    return K.SyncGroupRequest(group_id=group, generation_id=generation, member_id=member_id,
                              group_instance_id=instance, protocol_type=ptype, protocol_name=pname,
                              assignments=[K.SyncGroupRequest.SyncGroupRequestAssignment(member_id=m, assignment=a)
                                           for m, a in (assignments or {}).items()])


def hb_req(group: str, member_id: str, generation: int, instance: str | None = None) -> Any:
    return K.HeartbeatRequest(group_id=group, generation_id=generation, member_id=member_id,
                              group_instance_id=instance)


def commit_req(group: str, offsets: dict[tuple[str, int], int], *, generation: int = -1, member_id: str = "",
               metadata: str | None = "") -> Any:
    topics: dict[str, list[Any]] = {}
    for (t, p), off in offsets.items():
        topics.setdefault(t, []).append(K.OffsetCommitRequest.OffsetCommitRequestPartition(
            partition_index=p, committed_offset=off, committed_metadata=metadata))
    return K.OffsetCommitRequest(group_id=group, generation_id_or_member_epoch=generation, member_id=member_id,
                                 topics=[K.OffsetCommitRequest.OffsetCommitRequestTopic(name=t, partitions=ps)
                                         for t, ps in topics.items()])


def commit_errors(resp: Any) -> dict[tuple[str, int], int]:
    return {(t.name, p.partition_index): p.error_code for t in resp.topics for p in t.partitions}


V = 7   # JoinGroup version used unless a test is about versions


async def join_new(coord: Any, group: str = "g", version: int = V, **kw: Any) -> str:
    """The KIP-394 round trip: returns the member id the coordinator issued."""
    resp = await call(coord, "join_group", join_req(group, **kw), version)
    assert resp.error_code == E.MEMBER_ID_REQUIRED
    assert resp.member_id
    return resp.member_id


async def form_group(coord: Any, sched: Any, n: int, group: str = "g", **kw: Any) -> list[Any]:
    """n members join during the initial delay; returns their JoinGroup responses."""
    ids = [await join_new(coord, group, **kw) for _ in range(n)]
    tasks = [asyncio.ensure_future(call(coord, "join_group", join_req(group, mid, **kw), V)) for mid in ids]
    await settle()
    assert not any(t.done() for t in tasks), "join must wait for the initial rebalance delay"
    # group.initial.rebalance.delay.ms, extended while new members keep arriving
    for _ in range(12):
        sched.advance(3000)
        await settle()
        if all(t.done() for t in tasks):
            break
    return [t.result() for t in tasks]


async def sync_all(coord: Any, group: str, joins: list[Any]) -> dict[str, bytes]:
    leader = joins[0].leader
    gen = joins[0].generation_id
    assignment = {j.member_id: f"assign-{j.member_id}".encode() for j in joins}
    followers = [asyncio.ensure_future(call(coord, "sync_group", sync_req(group, j.member_id, gen), 5))
                 for j in joins if j.member_id != leader]
    await settle()
    assert not any(t.done() for t in followers), "followers wait for the leader's assignment"
    lead = await call(coord, "sync_group", sync_req(group, leader, gen, assignment), 5)
    await settle()
    out = {leader: bytes(lead.assignment)}
    for j, t in zip([j for j in joins if j.member_id != leader], followers, strict=True):
        r = t.result()
        assert r.error_code == E.NONE
        out[j.member_id] = bytes(r.assignment)
    assert lead.error_code == E.NONE
    return out


async def stable_group(coord: Any, sched: Any, n: int, group: str = "g", **kw: Any) -> list[Any]:
    """form_group, then sync_all: n members, Stable in generation 1; their JoinGroup responses."""
    joins = await form_group(coord, sched, n, group, **kw)
    await sync_all(coord, group, joins)
    return joins
