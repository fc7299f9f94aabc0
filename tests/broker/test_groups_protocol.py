"""The group APIs over the wire, with the project's own codecs: the member-id round trip,
batched FindCoordinator/LeaveGroup, multi-group OffsetFetch, and bad input -- malformed
requests, member ids never issued, stale generations, fenced static members, commits for
unknown topics, oversized protocol metadata -- each answered with the right error while the
broker keeps serving and other groups' commits stay intact."""

from __future__ import annotations

import struct
import uuid
from typing import Any

import pytest
from kafka_bench.kafka_core_broker import KafkaCoreBroker
from kafka_protocol.messages import REQUESTS

from tests.broker.conftest import RawClient, create_topic
from tests.broker.restarts import RESTARTS, restart

FindCoordinator, JoinGroup, Heartbeat, LeaveGroup, SyncGroup = (REQUESTS[k] for k in (10, 11, 12, 13, 14))
OffsetCommit, OffsetFetch, DescribeGroups, ListGroups, DeleteGroups = (REQUESTS[k] for k in (8, 9, 15, 16, 42))

NONE, ILLEGAL_GENERATION, UNKNOWN_MEMBER_ID, REBALANCE_IN_PROGRESS = 0, 22, 25, 27
UNKNOWN_TOPIC_OR_PARTITION, INVALID_REQUEST, MEMBER_ID_REQUIRED, FENCED_INSTANCE_ID = 3, 42, 79, 82
GROUP_ID_NOT_FOUND, INVALID_SESSION_TIMEOUT, NON_EMPTY_GROUP = 69, 26, 68


@pytest.fixture(scope="module")
def gb():
    b = KafkaCoreBroker(settings={"num.partitions": "1", "group.initial.rebalance.delay.ms": "0",
                                  "offsets.topic.num.partitions": "3"})
    b.start()
    yield b
    b.cleanup()


@pytest.fixture
def c(gb):
    with RawClient(gb.port) as cl:
        yield cl


def gid() -> str:
    return f"g-{uuid.uuid4().hex[:8]}"


def join(c: RawClient, group: str, member_id: str = "", instance: str | None = None,
         metadata: bytes = b"\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00", version: int = 9) -> Any:
    return c.call(JoinGroup(group_id=group, session_timeout_ms=10000, rebalance_timeout_ms=10000,
                            member_id=member_id, group_instance_id=instance, protocol_type="consumer",
                            protocols=[JoinGroup.JoinGroupRequestProtocol(name="range", metadata=metadata)],
                            reason=None), version)


def join_member(c: RawClient, group: str, instance: str | None = None) -> tuple[str, int]:
    """The v4+ round trip: MEMBER_ID_REQUIRED with an id, then the join with it; then sync."""
    r = join(c, group, instance=instance)
    if instance is None:
        assert r.error_code == MEMBER_ID_REQUIRED and r.member_id
        r = join(c, group, r.member_id)
    assert r.error_code == NONE, r
    s = c.call(SyncGroup(group_id=group, generation_id=r.generation_id, member_id=r.member_id,
                         group_instance_id=instance, protocol_type="consumer", protocol_name="range",
                         assignments=[SyncGroup.SyncGroupRequestAssignment(member_id=r.member_id,
                                                                           assignment=b"assignment-bytes")]), 5)
    assert s.error_code == NONE and s.assignment == b"assignment-bytes", s
    return r.member_id, r.generation_id


def commit(c: RawClient, group: str, items: dict[tuple[str, int], int], member: str = "", gen: int = -1,
           instance: str | None = None) -> dict[tuple[str, int], int]:
    topics: dict[str, list[Any]] = {}
    for (t, p), o in items.items():
        topics.setdefault(t, []).append(OffsetCommit.OffsetCommitRequestPartition(
            partition_index=p, committed_offset=o, committed_leader_epoch=-1, committed_metadata=""))
    r = c.call(OffsetCommit(group_id=group, generation_id_or_member_epoch=gen, member_id=member,
                            group_instance_id=instance,
                            topics=[OffsetCommit.OffsetCommitRequestTopic(name=t, partitions=ps)
                                    for t, ps in topics.items()]), 9)
    return {(t.name, p.partition_index): p.error_code for t in r.topics for p in t.partitions}


def fetch_offsets(c: RawClient, groups: list[str], topic: str, parts: list[int]) -> dict[str, dict[int, int]]:
    r = c.call(OffsetFetch(groups=[OffsetFetch.OffsetFetchRequestGroup(
        group_id=g, topics=[OffsetFetch.OffsetFetchRequestTopics(name=topic, partition_indexes=parts)])
        for g in groups], require_stable=False), 9)
    out: dict[str, dict[int, int]] = {}
    for g in r.groups:
        assert g.error_code == NONE, g
        out[g.group_id] = {p.partition_index: p.committed_offset for t in g.topics for p in t.partitions}
    return out


@pytest.fixture
def topic(c) -> str:
    name = f"gt-{uuid.uuid4().hex[:8]}"
    create_topic(c, name, 2)
    return name


def test_find_coordinator_batched_and_single(gb, c):
    r = c.call(FindCoordinator(key_type=0, coordinator_keys=["a", "b", ""]), 4)
    assert [(x.key, x.error_code) for x in r.coordinators] == [("a", 0), ("b", 0), ("", INVALID_REQUEST)]
    assert all(x.port == gb.port and x.host == "127.0.0.1" for x in r.coordinators[:2])
    r = c.call(FindCoordinator(key="grp", key_type=0), 3)
    assert r.error_code == 0 and r.port == gb.port
    r = c.call(FindCoordinator(key="txn", key_type=1), 3)
    assert r.error_code == 0 and r.port == gb.port      # the transaction coordinator is this node too
    r = c.call(FindCoordinator(key_type=1, coordinator_keys=["t1", ""]), 4)
    assert [(x.key, x.error_code) for x in r.coordinators] == [("t1", 0), ("", 0)]


def test_member_id_round_trip_and_stale_generation(c):
    g = gid()
    member, gen = join_member(c, g)
    assert c.call(Heartbeat(group_id=g, generation_id=gen, member_id=member), 4).error_code == NONE
    assert c.call(Heartbeat(group_id=g, generation_id=gen + 5, member_id=member), 4).error_code == \
        ILLEGAL_GENERATION
    assert c.call(Heartbeat(group_id=g, generation_id=gen, member_id="never-issued"), 4).error_code == \
        UNKNOWN_MEMBER_ID
    r = join(c, g, "never-issued")
    assert r.error_code == UNKNOWN_MEMBER_ID
    s = c.call(SyncGroup(group_id=g, generation_id=gen + 1, member_id=member, protocol_type="consumer",
                         protocol_name="range", assignments=[]), 5)
    assert s.error_code == ILLEGAL_GENERATION


def test_rebalance_in_progress_seen_by_heartbeat(c):
    g = gid()
    m1, gen = join_member(c, g)
    with RawClient(c.sock.getpeername()[1]) as c2:
        # a second member's join parks (rebalance) until m1 rejoins
        r0 = join(c2, g)
        assert r0.error_code == MEMBER_ID_REQUIRED
        corr = c2.send(JoinGroup(group_id=g, session_timeout_ms=10000, rebalance_timeout_ms=10000,
                                 member_id=r0.member_id, group_instance_id=None, protocol_type="consumer",
                                 protocols=[JoinGroup.JoinGroupRequestProtocol(name="range", metadata=b"m")],
                                 reason=None), 9)
        hb = c.call(Heartbeat(group_id=g, generation_id=gen, member_id=m1), 4)
        assert hb.error_code == REBALANCE_IN_PROGRESS
        r1 = join(c, g, m1)
        r2 = c2.recv(corr)
        assert r1.error_code == r2.error_code == NONE and r1.generation_id == r2.generation_id == gen + 1
        assert r1.leader == r2.leader and len(r1.members if r1.leader == m1 else r2.members) == 2


def test_leave_group_batched(c):
    g = gid()
    m1, _ = join_member(c, g, instance="inst-1")
    r = c.call(LeaveGroup(group_id=g, members=[LeaveGroup.MemberIdentity(member_id=m1, group_instance_id="inst-1"),
                                               LeaveGroup.MemberIdentity(member_id="nobody", group_instance_id=None)]),
               5)
    assert r.error_code == NONE
    assert [(m.member_id, m.error_code) for m in r.members] == [(m1, NONE), ("nobody", UNKNOWN_MEMBER_ID)]
    d = c.call(DescribeGroups(groups=[g], include_authorized_operations=False), 5)
    assert d.groups[0].group_state == "Empty" and not d.groups[0].members


def test_static_member_replaced_old_id_is_fenced(c):
    g = gid()
    m1, gen = join_member(c, g, instance="static-a")
    r = join(c, g, "", instance="static-a")        # the same instance restarts: new member id, no rebalance
    assert r.error_code == NONE and r.member_id != m1 and r.generation_id == gen
    hb = c.call(Heartbeat(group_id=g, generation_id=gen, member_id=m1, group_instance_id="static-a"), 4)
    assert hb.error_code == FENCED_INSTANCE_ID
    hb = c.call(Heartbeat(group_id=g, generation_id=gen, member_id=r.member_id, group_instance_id="static-a"), 4)
    assert hb.error_code == NONE


def test_commit_unknown_topic_and_known_topic_in_one_request(c, topic):
    g = gid()
    res = commit(c, g, {(topic, 0): 5, (topic, 1): 6, ("no-such-topic", 0): 1, (topic, 9): 3})
    assert res == {(topic, 0): NONE, (topic, 1): NONE, ("no-such-topic", 0): UNKNOWN_TOPIC_OR_PARTITION,
                   (topic, 9): UNKNOWN_TOPIC_OR_PARTITION}
    assert fetch_offsets(c, [g], topic, [0, 1]) == {g: {0: 5, 1: 6}}


def test_commit_from_unknown_member_of_active_group_rejected(c, topic):
    g = gid()
    member, gen = join_member(c, g)
    assert commit(c, g, {(topic, 0): 1}, "someone-else", gen) == {(topic, 0): UNKNOWN_MEMBER_ID}
    assert commit(c, g, {(topic, 0): 2}, member, gen + 1) == {(topic, 0): ILLEGAL_GENERATION}
    assert commit(c, g, {(topic, 0): 3}, member, gen) == {(topic, 0): NONE}
    assert fetch_offsets(c, [g], topic, [0]) == {g: {0: 3}}


def test_offset_fetch_multi_group(c, topic):
    g1, g2, g3 = gid(), gid(), gid()
    commit(c, g1, {(topic, 0): 10, (topic, 1): 11})
    commit(c, g2, {(topic, 0): 20})
    got = fetch_offsets(c, [g1, g2, g3], topic, [0, 1])
    assert got == {g1: {0: 10, 1: 11}, g2: {0: 20, 1: -1}, g3: {0: -1, 1: -1}}


def test_oversized_protocol_metadata_rejected(c, topic):
    g = gid()
    r = join(c, g, instance="big", metadata=b"x" * (2 << 20))
    assert r.error_code == INVALID_REQUEST
    # the broker and other groups are fine
    g2 = gid()
    commit(c, g2, {(topic, 0): 4})
    assert fetch_offsets(c, [g2], topic, [0]) == {g2: {0: 4}}


def test_bad_session_timeout(c):
    r = c.call(JoinGroup(group_id=gid(), session_timeout_ms=10, rebalance_timeout_ms=10000, member_id="",
                         group_instance_id=None, protocol_type="consumer",
                         protocols=[JoinGroup.JoinGroupRequestProtocol(name="range", metadata=b"")], reason=None), 9)
    assert r.error_code == INVALID_SESSION_TIMEOUT


def test_malformed_group_requests_close_only_that_connection(gb, c, topic):
    g = gid()
    commit(c, g, {(topic, 0): 42})
    for api_key, version in ((11, 9), (14, 5), (8, 9), (9, 9), (13, 5), (12, 4)):
        with RawClient(gb.port) as bad:
            body = struct.pack(">hhi", api_key, version, 7) + struct.pack(">h", 3) + b"bad" + b"\x00" + \
                b"\xff\xff\xff\x7f\x01garbage"
            bad.send_raw(struct.pack(">i", len(body)) + body)
            assert bad.is_closed_by_peer()
    assert fetch_offsets(c, [g], topic, [0]) == {g: {0: 42}}
    join_member(c, gid())


def test_list_describe_delete(c, topic):
    g = gid()
    member, _ = join_member(c, g)
    lg = c.call(ListGroups(states_filter=[], types_filter=[]), 5)
    assert (g, "Stable", "classic") in {(x.group_id, x.group_state, x.group_type) for x in lg.groups}
    d = c.call(DescribeGroups(groups=[g, "missing-group"], include_authorized_operations=False), 6)
    assert d.groups[0].group_state == "Stable" and d.groups[0].members[0].member_id == member
    assert d.groups[0].members[0].member_assignment == b"assignment-bytes"
    assert d.groups[1].error_code == GROUP_ID_NOT_FOUND
    r = c.call(DeleteGroups(groups_names=[g]), 2)
    assert r.results[0].error_code == NON_EMPTY_GROUP
    c.call(LeaveGroup(group_id=g, members=[LeaveGroup.MemberIdentity(member_id=member)]), 5)
    commit(c, g, {(topic, 1): 9})
    assert c.call(DeleteGroups(groups_names=[g]), 2).results[0].error_code == NONE
    assert fetch_offsets(c, [g], topic, [1]) == {g: {1: -1}}


def test_commit_survives_kill9(tmp_path):
    b = KafkaCoreBroker(data_dir=tmp_path, settings={"group.initial.rebalance.delay.ms": "0",
                                                     "offsets.topic.num.partitions": "3"})
    b.start()
    try:
        with RawClient(b.port) as cl:
            t = f"k9-{uuid.uuid4().hex[:6]}"
            create_topic(cl, t, 2)
            groups = [gid() for _ in range(20)]
            for i, g in enumerate(groups):
                assert commit(cl, g, {(t, 0): i, (t, 1): 100 + i}) == {(t, 0): NONE, (t, 1): NONE}
        restart(b, "kill-9")
        with RawClient(b.port) as cl:
            got = fetch_offsets(cl, groups, t, [0, 1])
        assert got == {g: {0: i, 1: 100 + i} for i, g in enumerate(groups)}
    finally:
        b.cleanup()


@pytest.mark.parametrize("how", RESTARTS)
def test_static_member_survives_broker_restart_without_rebalance(tmp_path, how):
    """Group metadata (members, generation, assignments) is in __consumer_offsets: after a restart the
    static member goes on heartbeating in the same generation and gets the same assignment back."""
    b = KafkaCoreBroker(data_dir=tmp_path, settings={"group.initial.rebalance.delay.ms": "0",
                                                     "offsets.topic.num.partitions": "3"})
    b.start()
    try:
        g = gid()
        with RawClient(b.port) as cl:
            member, gen = join_member(cl, g, instance="static-r")
        restart(b, how)
        with RawClient(b.port) as cl:
            hb = cl.call(Heartbeat(group_id=g, generation_id=gen, member_id=member, group_instance_id="static-r"), 4)
            assert hb.error_code == NONE
            r = join(cl, g, "", instance="static-r")    # the member restarts too: same generation, no rebalance
            assert r.error_code == NONE and r.generation_id == gen
            s = cl.call(SyncGroup(group_id=g, generation_id=gen, member_id=r.member_id, group_instance_id="static-r",
                                  protocol_type="consumer", protocol_name="range", assignments=[]), 5)
            assert s.error_code == NONE and s.assignment == b"assignment-bytes"
    finally:
        b.cleanup()


def test_consumer_offsets_is_internal(c, topic):
    from tests.broker.conftest import make_batch, produce_req

    commit(c, gid(), {(topic, 0): 1})          # the first commit creates __consumer_offsets
    M = REQUESTS[3]
    md = c.call(M(topics=[M.MetadataRequestTopic(name="__consumer_offsets")], allow_auto_topic_creation=False), 12)
    t = md.topics[0]
    assert t.error_code == 0 and t.is_internal and len(t.partitions) == 3
    r = c.call(produce_req("__consumer_offsets", 0, make_batch([b"v"], keys=[b"k"])), 9)
    assert r.responses[0].partition_responses[0].error_code == 17      # INVALID_TOPIC_EXCEPTION
    D = REQUESTS[20]
    r = c.call(D(topic_names=["__consumer_offsets"], timeout_ms=5000), 5)
    assert r.responses[0].error_code == 17
