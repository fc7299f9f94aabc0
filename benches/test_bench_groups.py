"""Group coordinator: rebalance latency after a member leaves, and OffsetCommit throughput.

Members are lightweight protocol-level consumers (asyncio, kafka_protocol codecs) against a
kafka-core broker in a subprocess: JoinGroup with the member-id round trip, the leader
assigns round-robin in SyncGroup, everyone heartbeats every HEARTBEAT_MS and rejoins on
REBALANCE_IN_PROGRESS, exactly the classic protocol's client side.

rebalance: a stable group of N members (3, 30) over 60 partitions; one member sends
LeaveGroup; timed until every remaining member holds its new assignment (same generation,
disjoint, covering all partitions).  Then (untimed) a new member joins and the group is stable
again before the next round.  Most of the time is the other members noticing the rebalance on
their next heartbeat (HEARTBEAT_MS), so extra_info also has the time to the new generation.

commits: OffsetCommit requests of one partition each, 1 and 32 in flight on one connection;
extra_info["commits_per_s"].  Speed is reported, never asserted.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import struct
import threading
import time
import uuid
from collections.abc import Coroutine
from typing import Any

import pytest
from kafka_protocol import decode_response_header, encode_request
from kafka_protocol.messages import REQUESTS, RESPONSES

HEARTBEAT_MS = 100
PARTITIONS = 60
TOPIC = "bench-groups"

JoinGroup, Heartbeat, LeaveGroup, SyncGroup, OffsetCommit = (REQUESTS[k] for k in (11, 12, 13, 14, 8))
REBALANCE_IN_PROGRESS, MEMBER_ID_REQUIRED = 27, 79


class Conn:
    """One connection with any number of requests in flight (responses matched by correlation id)."""

    def __init__(self) -> None:
        self.corr = itertools.count(1)
        self.waiting: dict[int, tuple[asyncio.Future[Any], int, int]] = {}

    async def open(self, port: int) -> Conn:
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", port)
        self.task = asyncio.ensure_future(self._read())
        return self

    async def _read(self) -> None:
        try:
            while True:
                (size,) = struct.unpack(">i", await self.reader.readexactly(4))
                frame = await self.reader.readexactly(size)
                (corr,) = struct.unpack_from(">i", frame, 0)
                fut, key, version = self.waiting.pop(corr)
                _, off = decode_response_header(frame, key, version)
                fut.set_result(RESPONSES[key].decode(frame, version, off)[0])
        except (asyncio.IncompleteReadError, ConnectionError):
            for fut, _, _ in self.waiting.values():
                if not fut.done():
                    fut.set_exception(ConnectionError("closed"))

    def call(self, req: Any, version: int) -> asyncio.Future[Any]:
        corr = next(self.corr)
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.waiting[corr] = (fut, req.API_KEY, version)
        self.writer.write(encode_request(req.API_KEY, version, corr, "bench", req))
        return fut

    def close(self) -> None:
        self.task.cancel()
        self.writer.close()


class Member:
    def __init__(self, port: int, group: str) -> None:
        self.port, self.group = port, group
        self.member_id = ""
        self.generation = -1
        self.assignment: list[int] = []
        self.stopping = False
        self.changed = asyncio.Event()

    async def start(self) -> None:
        self.conn = await Conn().open(self.port)
        self.task = asyncio.ensure_future(self._run())

    async def _join(self) -> Any:
        while True:
            r = await self.conn.call(JoinGroup(
                group_id=self.group, session_timeout_ms=10000, rebalance_timeout_ms=10000, member_id=self.member_id,
                group_instance_id=None, protocol_type="consumer",
                protocols=[JoinGroup.JoinGroupRequestProtocol(name="rr", metadata=b"sub")], reason=None), 9)
            if r.error_code == MEMBER_ID_REQUIRED:
                self.member_id = r.member_id
                continue
            if r.error_code:
                await asyncio.sleep(0.01)
                continue
            self.member_id = r.member_id
            return r

    async def _run(self) -> None:
        while not self.stopping:
            j = await self._join()
            assignments = []
            if j.leader == self.member_id:
                ids = sorted(m.member_id for m in j.members)
                parts: dict[str, list[int]] = {m: [] for m in ids}
                for p in range(PARTITIONS):
                    parts[ids[p % len(ids)]].append(p)
                assignments = [SyncGroup.SyncGroupRequestAssignment(member_id=m, assignment=json.dumps(ps).encode())
                               for m, ps in parts.items()]
            s = await self.conn.call(SyncGroup(group_id=self.group, generation_id=j.generation_id,
                                               member_id=self.member_id, protocol_type="consumer",
                                               protocol_name="rr", assignments=assignments), 5)
            if s.error_code:
                continue
            self.generation = j.generation_id
            self.assignment = json.loads(bytes(s.assignment or b"[]"))
            self.changed.set()
            while not self.stopping:
                await asyncio.sleep(HEARTBEAT_MS / 1000)
                if self.stopping:
                    return
                h = await self.conn.call(Heartbeat(group_id=self.group, generation_id=self.generation,
                                                   member_id=self.member_id), 4)
                if h.error_code:
                    break

    async def leave(self) -> None:
        self.stopping = True
        await self.conn.call(LeaveGroup(group_id=self.group, members=[
            LeaveGroup.MemberIdentity(member_id=self.member_id, group_instance_id=None)]), 5)
        self.task.cancel()
        self.conn.close()


def complete(members: list[Member]) -> bool:
    gens = {m.generation for m in members}
    if len(gens) != 1 or -1 in gens:
        return False
    got = [p for m in members for p in m.assignment]
    return sorted(got) == list(range(PARTITIONS))


async def wait_complete(members: list[Member], newer_than: int, timeout: float = 60) -> float:
    """Seconds until the members agree on a generation > newer_than covering every partition."""
    t0 = time.perf_counter()
    while not (complete(members) and members[0].generation > newer_than):
        if time.perf_counter() - t0 > timeout:
            raise TimeoutError("the group did not settle")
        await asyncio.sleep(0.002)
    return time.perf_counter() - t0


class LoopThread:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(300)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture(scope="module")
def bench_broker():
    import os
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    from kafka_bench.kafka_core_broker import KafkaCoreBroker

    # the broker subprocess imports the in-tree packages even without `pip install -e .`
    os.environ["PYTHONPATH"] = os.pathsep.join([str(root / "python"), str(root / "src"),
                                                os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    b = KafkaCoreBroker(settings={"group.initial.rebalance.delay.ms": "0", "offsets.topic.num.partitions": "4"})
    b.start()
    yield b
    b.cleanup()


@pytest.mark.parametrize("size", [3, 30])
def test_rebalance_after_departure(benchmark, bench_broker, size: int) -> None:
    lt = LoopThread()
    group = f"bench-{uuid.uuid4().hex[:6]}"
    members: list[Member] = []
    gen_times: list[float] = []

    async def add() -> None:
        m = Member(bench_broker.port, group)
        await m.start()
        members.append(m)

    async def setup() -> None:
        for _ in range(size):
            await add()
        await wait_complete(members, -1)

    async def one_departure() -> None:
        gen = members[0].generation
        leaving = members.pop(0)
        t0 = time.perf_counter()
        await leaving.leave()
        first = asyncio.ensure_future(_first_new_generation(members, gen))
        await wait_complete(members, gen)
        gen_times.append((first.result() if first.done() else time.perf_counter()) - t0)

    async def refill() -> None:
        """Untimed: back to N members, stable, before the next departure."""
        while len(members) < size:
            gen = members[0].generation
            await add()
            await wait_complete(members, gen)

    try:
        lt.run(setup())
        benchmark.pedantic(lambda: lt.run(one_departure()), setup=lambda: lt.run(refill()), rounds=8,
                           iterations=1, warmup_rounds=1)
        benchmark.extra_info.update(members=size, partitions=PARTITIONS, heartbeat_ms=HEARTBEAT_MS,
                                    to_new_generation_ms=round(1000 * sorted(gen_times)[len(gen_times) // 2], 2))
    finally:
        async def stop_all() -> None:
            for m in members:
                await m.leave()
        lt.run(stop_all())
        lt.stop()


async def _first_new_generation(members: list[Member], gen: int) -> float:
    while not any(m.generation > gen for m in members):
        await asyncio.sleep(0.001)
    return time.perf_counter()


@pytest.mark.parametrize("inflight", [1, 32])
def test_offset_commits_per_second(benchmark, bench_broker, inflight: int) -> None:
    lt = LoopThread()
    group = f"bench-commit-{uuid.uuid4().hex[:6]}"
    per_round = 2000
    conn: Conn = lt.run(Conn().open(bench_broker.port))

    async def make_topic() -> None:
        C = REQUESTS[19]
        await conn.call(C(topics=[C.CreatableTopic(name=TOPIC, num_partitions=8, replication_factor=1)],
                          timeout_ms=10000), 7)
    lt.run(make_topic())
    counter = itertools.count()

    async def commits() -> None:
        sem = asyncio.Semaphore(inflight)

        async def one() -> None:
            async with sem:
                i = next(counter)
                r = await conn.call(OffsetCommit(
                    group_id=group, generation_id_or_member_epoch=-1, member_id="", group_instance_id=None,
                    topics=[OffsetCommit.OffsetCommitRequestTopic(name=TOPIC, partitions=[
                        OffsetCommit.OffsetCommitRequestPartition(partition_index=i % 8, committed_offset=i,
                                                                  committed_leader_epoch=-1,
                                                                  committed_metadata="")])]), 9)
                assert r.topics[0].partitions[0].error_code == 0
        await asyncio.gather(*(one() for _ in range(per_round)))

    try:
        benchmark.pedantic(lambda: lt.run(commits()), rounds=5, iterations=1, warmup_rounds=1)
        benchmark.extra_info.update(commits_per_round=per_round, inflight=inflight,
                                    commits_per_s=round(per_round / benchmark.stats.stats.median))
    finally:
        conn.close()
        lt.stop()
