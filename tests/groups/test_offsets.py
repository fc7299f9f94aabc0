"""OffsetCommit / OffsetFetch / OffsetDelete / DeleteGroups and offset retention."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import kafka_protocol as K
from kafka_protocol.errors import ErrorCode as E

from .util import (
    TOPICS,
    async_test,
    call,
    commit_errors,
    commit_req,
    form_group,
    make,
    run,
    settle,
    stable_group,
    started,
    sync_all,
)


def fetch_req(group: str, topics: dict[str, list[int]] | None, require_stable: bool = False) -> Any:
    return K.OffsetFetchRequest(group_id=group, require_stable=require_stable, topics=None if topics is None else [
        K.OffsetFetchRequest.OffsetFetchRequestTopic(name=t, partition_indexes=ps) for t, ps in topics.items()])


def fetched(resp: Any) -> dict[tuple[str, int], tuple[int, str, int]]:
    return {(t.name, p.partition_index): (p.committed_offset, p.metadata, p.error_code)
            for t in resp.topics for p in t.partitions}


@async_test
async def test_simple_commit_creates_empty_group_and_fetch_every_version() -> None:
    coord, _, backend = await started()
    r = await call(coord, "offset_commit", commit_req("s", {("t1", 0): 10, ("t1", 1): 11, ("t2", 0): 5},
                                                      metadata="m"), 8)
    assert set(commit_errors(r).values()) == {E.NONE}
    assert backend.appends == 1        # one batch per commit request
    for v in range(1, 8):
        f = await call(coord, "offset_fetch", fetch_req("s", {"t1": [0, 1, 2]}), v)
        assert fetched(f) == {("t1", 0): (10, "m", 0), ("t1", 1): (11, "m", 0), ("t1", 2): (-1, "", 0)}, v
    f = await call(coord, "offset_fetch", fetch_req("s", None), 7)     # null topics: all
    assert fetched(f) == {("t1", 0): (10, "m", 0), ("t1", 1): (11, "m", 0), ("t2", 0): (5, "m", 0)}
    lst = await call(coord, "list_groups", K.ListGroupsRequest(), 5)
    assert [(g.group_id, g.protocol_type, g.group_state) for g in lst.groups] == [("s", "", "Empty")]


@async_test
async def test_multi_group_fetch_v8_and_v9() -> None:
    coord, _, _ = await started()
    await call(coord, "offset_commit", commit_req("a", {("t1", 0): 1}), 8)
    await call(coord, "offset_commit", commit_req("b", {("t2", 2): 2}), 8)
    G = K.OffsetFetchRequest.OffsetFetchRequestGroup
    T = K.OffsetFetchRequest.OffsetFetchRequestTopics
    for v in (8, 9):
        req = K.OffsetFetchRequest(groups=[G(group_id="a", topics=[T(name="t1", partition_indexes=[0])]),
                                           G(group_id="b", topics=None), G(group_id="none", topics=None)])
        r = await call(coord, "offset_fetch", req, v)
        got = {g.group_id: {(t.name, p.partition_index): p.committed_offset for t in g.topics for p in t.partitions}
               for g in r.groups}
        assert got == {"a": {("t1", 0): 1}, "b": {("t2", 2): 2}, "none": {}}
        assert all(g.error_code == E.NONE for g in r.groups)


@async_test
async def test_generation_checks() -> None:
    coord, sched, _ = await started()
    joins = await form_group(coord, sched, 1)
    m = joins[0].member_id
    # CompletingRebalance: the member has not synced yet
    r = await call(coord, "offset_commit", commit_req("g", {("t1", 0): 1}, generation=1, member_id=m), 8)
    assert commit_errors(r) == {("t1", 0): E.REBALANCE_IN_PROGRESS}
    await sync_all(coord, "g", joins)
    ok = await call(coord, "offset_commit", commit_req("g", {("t1", 0): 1}, generation=1, member_id=m), 8)
    assert commit_errors(ok) == {("t1", 0): E.NONE}
    bad = await call(coord, "offset_commit", commit_req("g", {("t1", 0): 2}, generation=7, member_id=m), 8)
    assert commit_errors(bad) == {("t1", 0): E.ILLEGAL_GENERATION}
    unk = await call(coord, "offset_commit", commit_req("g", {("t1", 0): 2}, generation=1, member_id="x"), 8)
    assert commit_errors(unk) == {("t1", 0): E.UNKNOWN_MEMBER_ID}
    simple = await call(coord, "offset_commit", commit_req("g", {("t1", 0): 2}), 8)
    assert commit_errors(simple) == {("t1", 0): E.UNKNOWN_MEMBER_ID}   # not empty: members only
    for v, code in ((8, E.ILLEGAL_GENERATION), (9, E.GROUP_ID_NOT_FOUND)):
        r = await call(coord, "offset_commit", commit_req("nogroup", {("t1", 0): 2}, generation=3,
                                                          member_id="m"), v)
        assert commit_errors(r) == {("t1", 0): code}
    f = await call(coord, "offset_fetch", fetch_req("g", {"t1": [0]}), 5)
    assert fetched(f)[("t1", 0)][0] == 1


@async_test
async def test_unknown_topic_and_metadata_too_large_are_per_partition() -> None:
    coord, _, _ = await started()
    req = commit_req("s", {("t1", 0): 1, ("t1", 6): 1, ("ghost", 0): 1})
    r = await call(coord, "offset_commit", req, 2)
    assert commit_errors(r) == {("t1", 0): E.NONE, ("t1", 6): E.UNKNOWN_TOPIC_OR_PARTITION,
                                ("ghost", 0): E.UNKNOWN_TOPIC_OR_PARTITION}
    big = await call(coord, "offset_commit", commit_req("s", {("t1", 1): 1}, metadata="x" * 4097), 8)
    assert commit_errors(big) == {("t1", 1): E.OFFSET_METADATA_TOO_LARGE}
    f = await call(coord, "offset_fetch", fetch_req("s", {"t1": [0, 1]}), 7)
    assert fetched(f) == {("t1", 0): (1, "", 0), ("t1", 1): (-1, "", 0)}


@async_test
async def test_commit_answers_only_after_the_append_and_failures_leave_no_trace() -> None:
    coord, _, backend = await started()
    gate = asyncio.Event()
    real = backend.append

    async def slow(partition: int, batch: bytearray) -> None:
        await gate.wait()
        await real(partition, batch)
    backend.append = slow  # type: ignore[method-assign]
    t = asyncio.ensure_future(call(coord, "offset_commit", commit_req("s", {("t1", 0): 42}), 8))
    await settle()
    assert not t.done()
    f = await call(coord, "offset_fetch", fetch_req("s", {"t1": [0]}, require_stable=True), 7)
    assert fetched(f)[("t1", 0)] == (-1, "", E.UNSTABLE_OFFSET_COMMIT)
    f = await call(coord, "offset_fetch", fetch_req("s", {"t1": [0]}), 7)
    assert fetched(f)[("t1", 0)] == (-1, "", E.NONE)    # not visible before it is written
    gate.set()
    await settle()
    assert commit_errors(t.result()) == {("t1", 0): E.NONE}
    backend.append = real  # type: ignore[method-assign]
    backend.fail = OSError("disk full")
    r = await call(coord, "offset_commit", commit_req("s", {("t1", 0): 99}), 8)
    assert commit_errors(r) == {("t1", 0): E.COORDINATOR_NOT_AVAILABLE}
    f = await call(coord, "offset_fetch", fetch_req("s", {"t1": [0]}), 7)
    assert fetched(f)[("t1", 0)][0] == 42


@async_test
async def test_delete_groups_and_offset_delete() -> None:
    coord, sched, _ = await started()
    joins = await stable_group(coord, sched, 1)     # subscribes to t1
    await call(coord, "offset_commit", commit_req("g", {("t1", 0): 1, ("t2", 0): 2}, generation=1,
                                                  member_id=joins[0].member_id), 8)
    d = await call(coord, "delete_groups", K.DeleteGroupsRequest(groups_names=["g", "nope"]), 2)
    assert [(x.group_id, x.error_code) for x in d.results] == [("g", E.NON_EMPTY_GROUP),
                                                               ("nope", E.GROUP_ID_NOT_FOUND)]
    OD = K.OffsetDeleteRequest
    req = OD(group_id="g", topics=[OD.OffsetDeleteRequestTopic(name=t, partitions=[
        OD.OffsetDeleteRequestPartition(partition_index=0)]) for t in ("t1", "t2")])
    r = await call(coord, "offset_delete", req, 0)
    assert r.error_code == E.NONE
    assert {t.name: t.partitions[0].error_code for t in r.topics} == {"t1": E.GROUP_SUBSCRIBED_TO_TOPIC,
                                                                      "t2": E.NONE}
    assert coord.describe_offsets("g").keys() == {("t1", 0)}
    await call(coord, "leave_group", K.LeaveGroupRequest(group_id="g", member_id=joins[0].member_id), 1)
    await settle()
    assert coord.groups["g"].state == "Empty"
    d = await call(coord, "delete_groups", K.DeleteGroupsRequest(groups_names=["g"]), 0)
    assert d.results[0].error_code == E.NONE
    assert "g" not in coord.groups and coord.describe_offsets("g") == {}
    f = await call(coord, "offset_fetch", fetch_req("g", {"t1": [0]}), 5)
    assert fetched(f)[("t1", 0)][0] == -1


@async_test
async def test_offsets_expire_after_retention_once_group_is_empty() -> None:
    coord, sched, _ = await started({"offsets.retention.minutes": 1})
    await call(coord, "offset_commit", commit_req("s", {("t1", 0): 1}), 8)
    sched.advance(30_000)
    assert await coord.expire_offsets() == 0
    sched.advance(31_000)
    assert await coord.expire_offsets() == 1
    assert "s" not in coord.groups          # an empty group without offsets is gone
    # v2-4 retention_time_ms sets an explicit expiry
    req = commit_req("r", {("t1", 0): 1})
    req.retention_time_ms = 5000
    await call(coord, "offset_commit", req, 2)
    sched.advance(5001)
    assert await coord.expire_offsets() == 1


@async_test
async def test_commit_and_fetch_by_topic_id_v10() -> None:
    coord, _, _ = await started()
    OC = K.OffsetCommitRequest
    tid = TOPICS["t1"].topic_id
    req = OC(group_id="s", topics=[
        OC.OffsetCommitRequestTopic(topic_id=tid, partitions=[OC.OffsetCommitRequestPartition(
            partition_index=2, committed_offset=8, committed_metadata=None)]),
        OC.OffsetCommitRequestTopic(topic_id=uuid.UUID(int=99), partitions=[OC.OffsetCommitRequestPartition(
            partition_index=0, committed_offset=1, committed_metadata="")])])
    r = await call(coord, "offset_commit", req, 10)
    assert [(t.topic_id, t.partitions[0].error_code) for t in r.topics] == [(tid, E.NONE),
                                                                           (uuid.UUID(int=99), E.UNKNOWN_TOPIC_ID)]
    G, T = K.OffsetFetchRequest.OffsetFetchRequestGroup, K.OffsetFetchRequest.OffsetFetchRequestTopics
    f = await call(coord, "offset_fetch", K.OffsetFetchRequest(groups=[
        G(group_id="s", topics=[T(topic_id=tid, partition_indexes=[2])])]), 10)
    p = f.groups[0].topics[0].partitions[0]
    assert (f.groups[0].topics[0].topic_id, p.committed_offset) == (tid, 8)


def test_every_api_and_version_answers_with_an_encodable_response() -> None:
    """Default (mostly empty) requests at every version, before and after loading."""
    apis = {"find_coordinator": K.FindCoordinatorRequest, "join_group": K.JoinGroupRequest,
            "sync_group": K.SyncGroupRequest, "heartbeat": K.HeartbeatRequest, "leave_group": K.LeaveGroupRequest,
            "offset_commit": K.OffsetCommitRequest, "offset_fetch": K.OffsetFetchRequest,
            "offset_delete": K.OffsetDeleteRequest, "list_groups": K.ListGroupsRequest,
            "describe_groups": K.DescribeGroupsRequest, "delete_groups": K.DeleteGroupsRequest,
            "consumer_group_heartbeat": K.ConsumerGroupHeartbeatRequest,
            "consumer_group_describe": K.ConsumerGroupDescribeRequest}

    async def go() -> None:
        coord, _, _ = make()
        for loaded in (False, True):
            if loaded:
                await coord.start()
            for method, cls in apis.items():
                for v in range(cls.MIN_VERSION, cls.MAX_VERSION + 1):
                    req = cls()
                    if method == "describe_groups":
                        req.groups = ["", "x"]
                    if method == "delete_groups":
                        req.groups_names = ["x"]
                    if method == "consumer_group_describe":
                        req.group_ids = ["x"]
                    await call(coord, method, req, v)
    run(go())


@async_test
async def test_empty_group_without_offsets_is_dropped_after_retention() -> None:
    coord, sched, _ = await started({"offsets.retention.minutes": 1})
    [j] = await form_group(coord, sched, 1)
    await call(coord, "leave_group", K.LeaveGroupRequest(group_id="g", member_id=j.member_id), 1)
    await settle()
    assert coord.groups["g"].state == "Empty"
    assert await coord.expire_offsets() == 0 and "g" in coord.groups
    sched.advance(61_000)
    await coord.expire_offsets()
    assert "g" not in coord.groups and "g" not in coord.store.groups
