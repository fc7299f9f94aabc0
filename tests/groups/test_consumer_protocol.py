"""KIP-848: server-side assignors and ConsumerGroupHeartbeat reconciliation."""

from __future__ import annotations

import uuid
from typing import Any

import kafka_protocol as K
from hypothesis import given, settings
from hypothesis import strategies as st
from kafka_broker.groups.assignors import RangeAssignor, UniformAssignor
from kafka_protocol.errors import ErrorCode as E

from .util import TOPICS, async_test, call, commit_errors, commit_req, join_req, settle, started

T1, T2 = TOPICS["t1"].topic_id, TOPICS["t2"].topic_id


def flat(a: dict[str, dict[uuid.UUID, set[int]]]) -> dict[str, set[tuple[uuid.UUID, int]]]:
    return {m: {(t, p) for t, ps in d.items() for p in ps} for m, d in a.items()}


def check_valid(members: dict[str, set[uuid.UUID]], topics: dict[uuid.UUID, int], a: Any) -> None:
    f = flat(a)
    seen: set[tuple[uuid.UUID, int]] = set()
    for m, tps in f.items():
        assert not (tps & seen), "disjoint"
        seen |= tps
        assert all(t in members[m] for t, _ in tps), "only subscribed topics"
    want = {(t, p) for t, n in topics.items() if any(t in s for s in members.values()) for p in range(n)}
    assert seen == want, "complete"


topic_ids = [uuid.UUID(int=i) for i in range(1, 5)]


@settings(max_examples=60, deadline=None)
@given(n_members=st.integers(1, 7), parts=st.lists(st.integers(0, 12), min_size=1, max_size=4))
def test_uniform_homogeneous_is_complete_disjoint_balanced(n_members: int, parts: list[int]) -> None:
    topics = dict(zip(topic_ids, parts, strict=False))
    members = {f"m{i}": set(topics) for i in range(n_members)}
    a = UniformAssignor().assign(members, topics, {})
    check_valid(members, topics, a)
    sizes = [len(x) for x in flat(a).values()]
    assert max(sizes) - min(sizes) <= 1


@settings(max_examples=60, deadline=None)
@given(subs=st.lists(st.sets(st.sampled_from(topic_ids[:3]), min_size=1), min_size=1, max_size=6),
       parts=st.lists(st.integers(1, 8), min_size=3, max_size=3))
def test_uniform_and_range_heterogeneous_are_valid(subs: list[set[uuid.UUID]], parts: list[int]) -> None:
    topics = dict(zip(topic_ids[:3], parts, strict=True))
    members = {f"m{i}": s for i, s in enumerate(subs)}
    check_valid(members, topics, UniformAssignor().assign(members, topics, {}))
    check_valid(members, topics, RangeAssignor().assign(members, topics, {}))


def test_uniform_is_sticky_across_epochs() -> None:
    topics = {T1: 12, T2: 6}
    members = {m: {T1, T2} for m in ("a", "b", "c")}
    u = UniformAssignor()
    e1 = flat(u.assign(members, topics, {}))
    # a fourth member: only what it gets moves; everyone else keeps the rest
    members["d"] = {T1, T2}
    prev = {m: {t: {p for tt, p in tps if tt == t} for t in topics} for m, tps in e1.items()}
    e2 = flat(u.assign(members, topics, prev))
    moved = sum(len(e1[m] - e2[m]) for m in e1)
    assert moved == len(e2["d"]) == 18 // 4
    assert all(len(x) in (4, 5) for x in e2.values())
    # a member leaves: the survivors keep all they had
    del members["b"]
    prev2 = {m: {t: {p for tt, p in tps if tt == t} for t in topics} for m, tps in e2.items() if m != "b"}
    e3 = flat(u.assign(members, topics, prev2))
    assert all(e2[m] <= e3[m] for m in members)
    check_valid(members, topics, {m: {t: {p for tt, p in tps if tt == t} for t in topics} for m, tps in e3.items()})


def test_range_gives_contiguous_ranges_in_member_order() -> None:
    a = RangeAssignor().assign({"b": {T1}, "a": {T1}}, {T1: 5}, {})
    assert a["a"] == {T1: {0, 1, 2}} and a["b"] == {T1: {3, 4}}


# -- heartbeat flow -----------------------------------------------------------------

def hb(member: str, epoch: int, *, topics: list[str] | None = None, owned: Any = None,
       assignor: str | None = None, instance: str | None = None) -> Any:
    TP = K.ConsumerGroupHeartbeatRequest.TopicPartitions
    return K.ConsumerGroupHeartbeatRequest(
        group_id="cg", member_id=member, member_epoch=epoch, instance_id=instance,
        rebalance_timeout_ms=30000 if epoch == 0 else -1, subscribed_topic_names=topics,
        server_assignor=assignor,
        topic_partitions=None if owned is None else [TP(topic_id=t, partitions=sorted(ps)) for t, ps in owned.items()])


def owned_of(resp: Any, previous: dict[uuid.UUID, set[int]]) -> dict[uuid.UUID, set[int]]:
    if resp.assignment is None:
        return previous
    return {tp.topic_id: set(tp.partitions) for tp in resp.assignment.topic_partitions if tp.partitions}


@async_test
async def test_two_members_revoke_before_assign() -> None:
    coord, _, _ = await started()
    ra = await call(coord, "consumer_group_heartbeat", hb("A", 0, topics=["t1"], owned={}), 1)
    assert ra.error_code == E.NONE and ra.member_epoch == 1 and ra.heartbeat_interval_ms == 5000
    a = owned_of(ra, {})
    assert a == {T1: set(range(6))}
    rb = await call(coord, "consumer_group_heartbeat", hb("B", 0, topics=["t1"], owned={}), 1)
    b = owned_of(rb, {})
    assert rb.member_epoch == 2 and b == {}       # its partitions are still A's
    g = coord.groups["cg"]
    assert g.state() == "Reconciling"
    ra = await call(coord, "consumer_group_heartbeat", hb("A", 1, owned=a), 1)
    a2 = owned_of(ra, a)
    assert ra.member_epoch == 1 and len(a2[T1]) == 3     # revocation first, epoch unchanged
    rb = await call(coord, "consumer_group_heartbeat", hb("B", 2, owned=b), 1)
    assert owned_of(rb, b) == {}                          # A has not confirmed yet
    ra = await call(coord, "consumer_group_heartbeat", hb("A", 1, owned=a2), 1)
    assert ra.member_epoch == 2
    rb = await call(coord, "consumer_group_heartbeat", hb("B", 2, owned=b), 1)
    b = owned_of(rb, b)
    assert b[T1] == set(range(6)) - a2[T1]
    assert g.state() == "Stable"
    d = await call(coord, "consumer_group_describe", K.ConsumerGroupDescribeRequest(group_ids=["cg", "x"]), 0)
    cg, x = d.groups
    assert cg.group_state == "Stable" and cg.group_epoch == 2 and cg.assignor_name == "uniform"
    assert {m.member_id: {p for tp in m.assignment.topic_partitions for p in tp.partitions}
            for m in cg.members} == {"A": a2[T1], "B": b[T1]}
    assert all(tp.topic_name == "t1" for m in cg.members for tp in m.assignment.topic_partitions)
    assert x.error_code == E.GROUP_ID_NOT_FOUND


@async_test
async def test_leave_expiry_fencing_and_errors() -> None:
    coord, sched, _ = await started()
    ra = await call(coord, "consumer_group_heartbeat", hb("A", 0, topics=["t1", "t2"], owned={}), 1)
    rb = await call(coord, "consumer_group_heartbeat", hb("B", 0, topics=["t1"], owned={}), 1)
    assert (await call(coord, "consumer_group_heartbeat", hb("A", 5), 1)).error_code == E.FENCED_MEMBER_EPOCH
    assert (await call(coord, "consumer_group_heartbeat", hb("Z", 3), 1)).error_code == E.UNKNOWN_MEMBER_ID
    r = await call(coord, "consumer_group_heartbeat", hb("C", 0, topics=["t1"], owned={}, assignor="fancy"), 1)
    assert r.error_code == E.UNSUPPORTED_ASSIGNOR and r.error_message
    r = await call(coord, "consumer_group_heartbeat", hb("", 0, topics=["t1"], owned={}), 1)
    assert r.error_code == E.INVALID_REQUEST
    # a classic JoinGroup cannot enter a non-empty consumer group
    j = await call(coord, "join_group", join_req("cg"), 7)
    assert j.error_code == E.INCONSISTENT_GROUP_PROTOCOL
    # B leaves: A gets everything
    lv = await call(coord, "consumer_group_heartbeat", K.ConsumerGroupHeartbeatRequest(
        group_id="cg", member_id="B", member_epoch=-1), 1)
    assert lv.error_code == E.NONE and lv.member_epoch == -1 and rb.error_code == E.NONE
    assert "B" not in coord.groups["cg"].members
    a = owned_of(ra, {})
    for _ in range(3):
        ra = await call(coord, "consumer_group_heartbeat", hb("A", ra.member_epoch, owned=a), 1)
        a = owned_of(ra, a)
    assert a == {T1: set(range(6)), T2: set(range(3))}
    # A goes silent: session timeout (45 s) removes it
    sched.advance(45001)
    await settle()
    assert coord.groups["cg"].members == {}
    assert coord.groups["cg"].state() == "Empty"


@async_test
async def test_commit_member_epoch_checks() -> None:
    coord, _, _ = await started()
    ra = await call(coord, "consumer_group_heartbeat", hb("A", 0, topics=["t1"], owned={}), 1)
    ok = await call(coord, "offset_commit", commit_req("cg", {("t1", 0): 3}, generation=ra.member_epoch,
                                                       member_id="A"), 9)
    assert commit_errors(ok) == {("t1", 0): E.NONE}
    stale = await call(coord, "offset_commit", commit_req("cg", {("t1", 0): 3}, generation=0, member_id="A"), 9)
    assert commit_errors(stale) == {("t1", 0): E.STALE_MEMBER_EPOCH}
    simple = await call(coord, "offset_commit", commit_req("cg", {("t1", 0): 3}), 9)
    assert commit_errors(simple) == {("t1", 0): E.UNKNOWN_MEMBER_ID}
    lst = await call(coord, "list_groups", K.ListGroupsRequest(types_filter=["consumer"]), 5)
    assert [(g.group_id, g.group_type) for g in lst.groups] == [("cg", "consumer")]


@async_test
async def test_regex_subscription_and_new_topic_bumps_epoch() -> None:
    topics = dict(TOPICS)
    coord, _, _ = await started(topics=topics)
    req = hb("A", 0, owned={})
    req.subscribed_topic_regex = "t[0-9]"
    r = await call(coord, "consumer_group_heartbeat", req, 1)
    assert owned_of(r, {}) == {T1: set(range(6)), T2: set(range(3))}
    bad = hb("B", 0, owned={})
    bad.subscribed_topic_regex = "("
    assert (await call(coord, "consumer_group_heartbeat", bad, 1)).error_code == E.INVALID_REGULAR_EXPRESSION
    # a new matching topic appears: next heartbeat bumps the epoch and assigns it
    from kafka_broker.groups import TopicInfo
    topics["t3"] = TopicInfo("t3", uuid.UUID(int=3), 2)
    r2 = await call(coord, "consumer_group_heartbeat", hb("A", r.member_epoch, owned=owned_of(r, {})), 1)
    assert r2.member_epoch == r.member_epoch + 1
    assert owned_of(r2, {})[uuid.UUID(int=3)] == {0, 1}
