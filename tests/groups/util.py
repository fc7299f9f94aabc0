"""Test helpers: a fake clock/scheduler, a coordinator over an in-memory store, wire round trips."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import struct
import uuid
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


def run(coro: Any) -> Any:
    return asyncio.run(coro)


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
