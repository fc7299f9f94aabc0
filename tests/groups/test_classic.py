"""Classic group protocol: JoinGroup / SyncGroup / Heartbeat / LeaveGroup state machine."""

from __future__ import annotations

import asyncio

import kafka_protocol as K
from kafka_protocol.errors import ErrorCode as E

from .util import (
    V,
    async_test,
    call,
    form_group,
    hb_req,
    join_new,
    join_req,
    make,
    settle,
    stable_group,
    started,
    subscription,
    sync_all,
    sync_req,
)


@async_test
async def test_single_member_join_sync_heartbeat() -> None:
    coord, sched, backend = await started()
    [j] = await form_group(coord, sched, 1)
    assert j.error_code == E.NONE and j.generation_id == 1
    assert j.leader == j.member_id and j.protocol_name == "range" and j.protocol_type == "consumer"
    assert [m.member_id for m in j.members] == [j.member_id]
    assert bytes(j.members[0].metadata) == subscription("t1")
    got = await sync_all(coord, "g", [j])
    assert got == {j.member_id: f"assign-{j.member_id}".encode()}
    assert coord.groups["g"].state == "Stable"
    hb = await call(coord, "heartbeat", hb_req("g", j.member_id, 1), 4)
    assert hb.error_code == E.NONE
    assert backend.appends >= 1      # the assignment was stored before SyncGroup answered


@async_test
async def test_three_members_leader_gets_metadata_followers_do_not() -> None:
    coord, sched, _ = await started()
    joins = await form_group(coord, sched, 3)
    assert {j.generation_id for j in joins} == {1}
    assert len({j.leader for j in joins}) == 1
    leader = joins[0].leader
    for j in joins:
        assert j.error_code == E.NONE
        assert len(j.members) == (3 if j.member_id == leader else 0)
    got = await sync_all(coord, "g", joins)
    assert got == {j.member_id: f"assign-{j.member_id}".encode() for j in joins}


@async_test
async def test_member_id_required_only_from_v4() -> None:
    coord, sched, _ = await started()
    t = asyncio.ensure_future(call(coord, "join_group", join_req("g"), 3))
    await settle()
    sched.advance(3000)
    await settle()
    r = t.result()
    assert r.error_code == E.NONE and r.member_id and r.generation_id == 1


@async_test
async def test_new_member_triggers_rebalance_and_all_rejoin() -> None:
    coord, sched, _ = await started()
    joins = await stable_group(coord, sched, 2)
    new_id = await join_new(coord)
    t_new = asyncio.ensure_future(call(coord, "join_group", join_req("g", new_id), V))
    await settle()
    assert coord.groups["g"].state == "PreparingRebalance"
    for j in joins:
        hb = await call(coord, "heartbeat", hb_req("g", j.member_id, 1), 4)
        assert hb.error_code == E.REBALANCE_IN_PROGRESS
    assert not t_new.done()
    rejoin = [asyncio.ensure_future(call(coord, "join_group", join_req("g", j.member_id), V)) for j in joins]
    await settle()
    # everyone is back: completes at once, no timer needed
    results = [t.result() for t in rejoin] + [t_new.result()]
    assert {r.generation_id for r in results} == {2}
    assert sum(len(r.members) for r in results) == 3


@async_test
async def test_leave_triggers_rebalance() -> None:
    coord, sched, _ = await started()
    joins = await stable_group(coord, sched, 2)
    leave = K.LeaveGroupRequest(group_id="g", members=[K.LeaveGroupRequest.MemberIdentity(
        member_id=joins[1].member_id)])
    r = await call(coord, "leave_group", leave, 3)
    assert r.error_code == E.NONE and [m.error_code for m in r.members] == [E.NONE]
    assert coord.groups["g"].state == "PreparingRebalance"
    j = await call(coord, "join_group", join_req("g", joins[0].member_id), V)
    assert j.generation_id == 2 and [m.member_id for m in j.members] == [joins[0].member_id]
    again = await call(coord, "leave_group", K.LeaveGroupRequest(group_id="g", member_id="nobody"), 0)
    assert again.error_code == E.UNKNOWN_MEMBER_ID


@async_test
async def test_session_expiry_removes_member_and_rebalances() -> None:
    coord, sched, _ = await started()
    joins = await stable_group(coord, sched, 2, session=10000)
    alive, silent = joins[0].member_id, joins[1].member_id
    for _ in range(4):            # only `alive` heartbeats, every 4 s
        sched.advance(4000)
        r = await call(coord, "heartbeat", hb_req("g", alive, 1), 4)
        if r.error_code:
            break
    g = coord.groups["g"]
    assert silent not in g.members
    assert r.error_code == E.REBALANCE_IN_PROGRESS
    j = await call(coord, "join_group", join_req("g", alive), V)
    assert j.generation_id == 2 and len(j.members) == 1
    hb = await call(coord, "heartbeat", hb_req("g", silent, 1), 4)
    assert hb.error_code == E.UNKNOWN_MEMBER_ID


@async_test
async def test_rebalance_timeout_drops_members_that_do_not_rejoin() -> None:
    coord, sched, _ = await started()
    joins = await stable_group(coord, sched, 2, session=60000, rebalance=20000)
    a, b = joins[0].member_id, joins[1].member_id
    t = asyncio.ensure_future(call(coord, "join_group", join_req("g", a, session=60000, rebalance=20000), V))
    await settle()
    sched.advance(10000)
    await call(coord, "heartbeat", hb_req("g", b, 1), 4)   # b is alive but does not rejoin
    await settle()
    assert not t.done()
    sched.advance(10001)
    await settle()
    r = t.result()
    assert r.error_code == E.NONE and r.generation_id == 2 and [m.member_id for m in r.members] == [a]
    assert b not in coord.groups["g"].members


@async_test
async def test_errors_illegal_generation_unknown_member_rebalance_in_progress() -> None:
    coord, sched, _ = await started()
    joins = await form_group(coord, sched, 1)
    m = joins[0].member_id
    await sync_all(coord, "g", joins)
    assert (await call(coord, "heartbeat", hb_req("g", m, 0), 4)).error_code == E.ILLEGAL_GENERATION
    assert (await call(coord, "sync_group", sync_req("g", m, 5), 5)).error_code == E.ILLEGAL_GENERATION
    # a member id that was never issued
    never = "c-00000000-0000-0000-0000-000000000000"
    assert (await call(coord, "heartbeat", hb_req("g", never, 1), 4)).error_code == E.UNKNOWN_MEMBER_ID
    assert (await call(coord, "sync_group", sync_req("g", never, 1), 5)).error_code == E.UNKNOWN_MEMBER_ID
    assert (await call(coord, "join_group", join_req("g", never), V)).error_code == E.UNKNOWN_MEMBER_ID
    assert (await call(coord, "join_group", join_req("nope", never), V)).error_code == E.UNKNOWN_MEMBER_ID
    assert (await call(coord, "heartbeat", hb_req("nope", m, 1), 4)).error_code == E.UNKNOWN_MEMBER_ID
    # a pending (KIP-394) id is not a member yet
    pending = await join_new(coord)
    assert (await call(coord, "heartbeat", hb_req("g", pending, 1), 4)).error_code == E.UNKNOWN_MEMBER_ID
    assert coord.groups["g"].state == "Stable"
    t = asyncio.ensure_future(call(coord, "join_group", join_req("g", pending), V))
    await settle()
    assert (await call(coord, "heartbeat", hb_req("g", m, 1), 4)).error_code == E.REBALANCE_IN_PROGRESS
    assert (await call(coord, "sync_group", sync_req("g", m, 1), 5)).error_code == E.REBALANCE_IN_PROGRESS
    t.cancel()


@async_test
async def test_invalid_session_timeout_and_group_id() -> None:
    coord, _, _ = await started()
    r = await call(coord, "join_group", join_req("g", session=1000), V)
    assert r.error_code == E.INVALID_SESSION_TIMEOUT
    r = await call(coord, "join_group", join_req(""), V)
    assert r.error_code == E.INVALID_GROUP_ID
    assert "g" not in coord.groups or not coord.groups["g"].members


@async_test
async def test_inconsistent_protocols() -> None:
    coord, sched, _ = await started()
    await form_group(coord, sched, 1)
    r = await call(coord, "join_group", join_req("g", ptype="connect"), V)
    assert r.error_code == E.INCONSISTENT_GROUP_PROTOCOL
    r = await call(coord, "join_group", join_req("g", protocols=[("sticky", b"x")]), V)
    assert r.error_code == E.INCONSISTENT_GROUP_PROTOCOL
    r = await call(coord, "join_group", join_req("h", protocols=[]), V)
    assert r.error_code == E.INCONSISTENT_GROUP_PROTOCOL


@async_test
async def test_protocol_chosen_by_votes() -> None:
    coord, sched, _ = await started()
    prefs = [[("range", b"a"), ("roundrobin", b"b")],
             [("roundrobin", b"c"), ("range", b"d")],
             [("roundrobin", b"e"), ("range", b"f"), ("sticky", b"g")]]
    ids = [await join_new(coord, protocols=p) for p in prefs]
    tasks = [asyncio.ensure_future(call(coord, "join_group", join_req("g", mid, protocols=p), V))
             for mid, p in zip(ids, prefs, strict=True)]
    await settle()
    sched.advance(6000)
    await settle()
    rs = [t.result() for t in tasks]
    assert {r.protocol_name for r in rs} == {"roundrobin"}
    leader = next(r for r in rs if r.members)
    assert sorted(bytes(m.metadata) for m in leader.members) == [b"b", b"c", b"e"]


@async_test
async def test_oversized_metadata_rejected_without_effect_on_others() -> None:
    coord, sched, _ = await started()
    joins = await stable_group(coord, sched, 1)
    big = join_req("g", protocols=[("range", b"x" * 5000)])
    r = await call(coord, "join_group", big, V)
    assert r.error_code == E.INVALID_REQUEST
    g = coord.groups["g"]
    assert g.state == "Stable" and list(g.members) == [joins[0].member_id] and not g.pending_members
    assert (await call(coord, "heartbeat", hb_req("g", joins[0].member_id, 1), 4)).error_code == E.NONE


@async_test
async def test_static_member_restart_without_rebalance_and_fencing() -> None:
    coord, sched, _ = await started()
    ids = []
    tasks = []
    for inst in ("i-a", "i-b"):
        # static members skip MEMBER_ID_REQUIRED
        tasks.append(asyncio.ensure_future(call(coord, "join_group", join_req("g", instance=inst), V)))
    await settle()
    sched.advance(6000)
    await settle()
    joins = [t.result() for t in tasks]
    ids = [j.member_id for j in joins]
    assert all(j.error_code == E.NONE for j in joins)
    got = await sync_all(coord, "g", joins)
    old_b = ids[1]
    # i-b restarts: new member id, same instance id and metadata -> same generation, no rebalance
    r = await call(coord, "join_group", join_req("g", instance="i-b"), V)
    assert r.error_code == E.NONE and r.generation_id == 1 and r.member_id != old_b
    g = coord.groups["g"]
    assert g.state == "Stable" and g.generation_id == 1
    s = await call(coord, "sync_group", sync_req("g", r.member_id, 1, instance="i-b"), 5)
    assert s.error_code == E.NONE and bytes(s.assignment) == got[old_b]
    assert (await call(coord, "heartbeat", hb_req("g", ids[0], 1, "i-a"), 4)).error_code == E.NONE
    # the old incarnation is fenced
    assert (await call(coord, "heartbeat", hb_req("g", old_b, 1, "i-b"), 4)).error_code == E.FENCED_INSTANCE_ID
    assert (await call(coord, "sync_group", sync_req("g", old_b, 1, instance="i-b"), 5)).error_code \
        == E.FENCED_INSTANCE_ID
    # a changed subscription from a restarted static member does rebalance
    r2 = asyncio.ensure_future(call(coord, "join_group", join_req(
        "g", instance="i-b", protocols=[("range", subscription("t1", "t2"))]), V))
    await settle()
    assert not r2.done() and g.state == "PreparingRebalance"
    ra = await call(coord, "join_group", join_req("g", ids[0], instance="i-a"), V)
    await settle()
    assert ra.generation_id == 2 and r2.result().generation_id == 2
    # a different protocol altogether is refused
    r3 = await call(coord, "join_group", join_req("g", instance="i-c", protocols=[("sticky", b"z")]), V)
    assert r3.error_code == E.INCONSISTENT_GROUP_PROTOCOL


@async_test
async def test_sync_v5_checks_protocol_type_and_name() -> None:
    coord, sched, _ = await started()
    [j] = await form_group(coord, sched, 1)
    bad = await call(coord, "sync_group", sync_req("g", j.member_id, 1, pname="roundrobin", ptype="consumer"), 5)
    assert bad.error_code == E.INCONSISTENT_GROUP_PROTOCOL
    ok = await call(coord, "sync_group", sync_req("g", j.member_id, 1, {j.member_id: b"A"}, pname="range",
                                                  ptype="consumer"), 5)
    assert ok.error_code == E.NONE and bytes(ok.assignment) == b"A" and ok.protocol_name == "range"


@async_test
async def test_describe_and_list_groups() -> None:
    coord, sched, _ = await started()
    joins = await stable_group(coord, sched, 2)
    d = await call(coord, "describe_groups", K.DescribeGroupsRequest(groups=["g", "missing"]), 5)
    g, missing = d.groups
    assert g.group_state == "Stable" and g.protocol_type == "consumer" and g.protocol_data == "range"
    assert {m.member_id for m in g.members} == {j.member_id for j in joins}
    assert all(m.client_host == "/127.0.0.1" and bytes(m.member_assignment).startswith(b"assign-")
               for m in g.members)
    assert missing.group_state == "Dead" and missing.error_code == E.NONE
    d6 = await call(coord, "describe_groups", K.DescribeGroupsRequest(groups=["missing"]), 6)
    assert d6.groups[0].error_code == E.GROUP_ID_NOT_FOUND
    lst = await call(coord, "list_groups", K.ListGroupsRequest(states_filter=["stable"]), 5)
    assert [(x.group_id, x.group_state, x.group_type) for x in lst.groups] == [("g", "Stable", "classic")]
    lst = await call(coord, "list_groups", K.ListGroupsRequest(states_filter=["Empty"]), 4)
    assert lst.groups == []
    lst = await call(coord, "list_groups", K.ListGroupsRequest(types_filter=["consumer"]), 5)
    assert lst.groups == []


@async_test
async def test_find_coordinator_single_and_batched() -> None:
    coord, _, _ = make()
    r = await call(coord, "find_coordinator", K.FindCoordinatorRequest(key="g"), 1)
    assert r.error_code == E.COORDINATOR_LOAD_IN_PROGRESS
    await coord.start()
    for v in range(0, 4):
        r = await call(coord, "find_coordinator", K.FindCoordinatorRequest(key="g"), v)
        assert (r.error_code, r.node_id, r.host, r.port) == (0, 7, "broker.example", 9092)
    r = await call(coord, "find_coordinator", K.FindCoordinatorRequest(key_type=0, coordinator_keys=["a", "b"]), 4)
    assert [(c.key, c.node_id, c.error_code) for c in r.coordinators] == [("a", 7, 0), ("b", 7, 0)]
    r = await call(coord, "find_coordinator", K.FindCoordinatorRequest(key="txn", key_type=1), 2)
    assert r.error_code == E.COORDINATOR_NOT_AVAILABLE      # no transaction coordinator here


@async_test
async def test_every_join_version_round_trips() -> None:
    coord, sched, _ = await started({"group.initial.rebalance.delay.ms": 0})
    for v in range(0, 10):
        group = f"g{v}"
        mid = ""
        if v >= 4:
            mid = (await call(coord, "join_group", join_req(group), v)).member_id
        t = asyncio.ensure_future(call(coord, "join_group", join_req(group, mid), v))
        await settle()
        sched.advance(1)
        await settle()
        r = t.result()
        assert r.error_code == E.NONE and r.generation_id == 1, v
        s = await call(coord, "sync_group", sync_req(group, r.member_id, 1, {r.member_id: b"x"}), min(v, 5))
        assert bytes(s.assignment) == b"x"
