"""KIP-848 group state in __consumer_offsets: record formats, reload after a restart, tombstones."""

from __future__ import annotations

import uuid
from typing import Any

import kafka_protocol as K
import pytest
from kafka_broker.groups import MemoryBackend, OffsetsStore
from kafka_broker.groups import records as R
from kafka_broker.groups.consumer import UNREVOKED, group_records, restore_group
from kafka_broker.groups.offsets_store import decode_records
from kafka_broker.groups.records import GroupRecord, OffsetValue
from kafka_protocol.errors import ErrorCode as E

from .test_consumer_protocol import hb, owned_of
from .util import TOPICS, async_test, call, restarted, settle, stable_group, started

T1, T2 = TOPICS["t1"].topic_id, TOPICS["t2"].topic_id
U = uuid.UUID(int=0xABCDEF)


# -- formats ----------------------------------------------------------------------------

def test_keys_do_not_collide_with_classic_ones_and_round_trip() -> None:
    for ver in R.CG_GROUP_KEYS:
        k = R.cg_key(ver, "grp")
        assert k == ver.to_bytes(2, "big") + b"\x00\x03grp"
        assert R.decode_cg_key(k) == (ver, "grp", None)
        assert R.decode_key(k) == ("consumer", "grp", None, ver)
    for ver in R.CG_MEMBER_KEYS:
        k = R.cg_key(ver, "grp", "m-1")
        assert k == ver.to_bytes(2, "big") + b"\x00\x03grp\x00\x03m-1"
        assert R.decode_key(k) == ("consumer", "grp", "m-1", ver)
    assert set(R.CG_GROUP_KEYS + R.CG_MEMBER_KEYS) == {3, 4, 5, 6, 7, 8}
    assert R.decode_key(R.group_key("grp"))[0] == "group"
    assert R.decode_key(b"\x00\x09\x00\x01x")[0] == "other"


def test_value_round_trips() -> None:
    assert R.decode_cg_epoch_value(R.cg_epoch_value(42)) == 42
    assert R.cg_epoch_value(7) == b"\x00\x00\x00\x00\x00\x07\x00"    # v0, epoch, no tagged fields
    topics = [R.CgTopicMetadata(U, "t", 12), R.CgTopicMetadata(T1, "", 1)]
    assert R.decode_cg_partition_metadata_value(R.cg_partition_metadata_value(topics)) == topics
    for m in (R.CgMemberMetadata("inst", "rack", "cid", "/1.2.3.4", ["a", "bé"], "t.*", "range", 30000),
              R.CgMemberMetadata()):
        assert R.decode_cg_member_metadata_value(R.cg_member_metadata_value(m)) == m
    a = {T1: [0, 2, 5], T2: []}
    assert R.decode_cg_target_member_value(R.cg_target_member_value(a)) == a
    c = R.CgCurrentAssignment(5, 4, R.MEMBER_STATE_UNREVOKED, {T1: [1]}, {T2: [0, 1]})
    assert R.decode_cg_current_assignment_value(R.cg_current_assignment_value(c)) == c


@pytest.mark.parametrize("encode,decode,value", [
    (R.cg_member_metadata_value, R.decode_cg_member_metadata_value, R.CgMemberMetadata("i", None, "c", "h", ["x"])),
    (R.cg_current_assignment_value, R.decode_cg_current_assignment_value,
     R.CgCurrentAssignment(1, 0, 1, {T1: [0, 1]})),
    (R.cg_partition_metadata_value, R.decode_cg_partition_metadata_value, [R.CgTopicMetadata(U, "t", 3)]),
])
def test_truncated_or_unknown_version_values_are_rejected(encode: Any, decode: Any, value: Any) -> None:
    raw = encode(value)
    for cut in range(len(raw)):
        with pytest.raises(R.RecordFormatError):
            decode(raw[:cut])
    with pytest.raises(R.RecordFormatError):
        decode(b"\x00\x07" + raw[2:])


@async_test
async def test_store_sync_writes_only_changes_and_tombstones() -> None:
    backend = MemoryBackend(5)
    s = OffsetsStore(backend)
    k3, k5 = R.cg_key(3, "g"), R.cg_key(5, "g", "m")
    v5 = R.cg_member_metadata_value(R.CgMemberMetadata(client_id="c"))
    assert await s.sync_consumer_group("g", {k3: R.cg_epoch_value(1), k5: v5}) == 2
    assert await s.sync_consumer_group("g", {k3: R.cg_epoch_value(1), k5: v5}) == 0    # nothing changed
    assert backend.appends == 1
    assert await s.sync_consumer_group("g", {k3: R.cg_epoch_value(2)}) == 2           # new epoch + tombstone
    last = list(decode_records(backend.batches[s.partition_for("g")][-1]))
    assert (k5, None) in last and (k3, R.cg_epoch_value(2)) in last
    s2 = OffsetsStore(backend)
    s2.load_sync()
    assert s2.consumer == {"g": {k3: R.cg_epoch_value(2)}}
    assert "g" in s2.group_ids()
    # deleting the group tombstones its consumer records and offsets
    await s.commit("g", [("t", 0, OffsetValue(3))])
    await s.delete_group("g")
    s3 = OffsetsStore(backend)
    s3.load_sync()
    assert s3.consumer == {} and s3.offsets == {} and "g" not in s3.group_ids()


@async_test
async def test_store_conversion_between_classic_and_consumer_leaves_one_kind() -> None:
    backend = MemoryBackend(3)
    s = OffsetsStore(backend)
    await s.store_group("g", GroupRecord("consumer", 1, "range", None, 1, []))
    await s.sync_consumer_group("g", {R.cg_key(3, "g"): R.cg_epoch_value(1)})
    assert "g" not in s.groups
    s2 = OffsetsStore(backend)
    s2.load_sync()
    assert "g" not in s2.groups and "g" in s2.consumer
    await s.store_group("g", GroupRecord("consumer", 2, "range", None, 1, []))
    s3 = OffsetsStore(backend)
    s3.load_sync()
    assert s3.groups["g"].generation == 2 and "g" not in s3.consumer


# -- the coordinator across a restart ------------------------------------------------------

async def two_members_mid_rebalance(coord: Any) -> tuple[Any, Any, dict[uuid.UUID, set[int]]]:
    """A owns t1 and t2, B joins: A must revoke part of it (UNREVOKED); B waits."""
    ra = await call(coord, "consumer_group_heartbeat", hb("A", 0, topics=["t1", "t2"], owned={}, instance="ia"), 1)
    a = owned_of(ra, {})
    rb = await call(coord, "consumer_group_heartbeat", hb("B", 0, topics=["t1"], owned={}, assignor="range"), 1)
    ra = await call(coord, "consumer_group_heartbeat", hb("A", ra.member_epoch, owned=a), 1)
    assert ra.error_code == rb.error_code == E.NONE
    return ra, rb, owned_of(ra, a)


def snapshot(g: Any) -> dict[str, Any]:
    return {"epoch": g.group_epoch, "assignment_epoch": g.assignment_epoch, "fp": g.metadata_fp,
            "target": g.target, "static": g.static, "assignor": g.assignor, "state": g.state(),
            "members": {mid: (m.member_epoch, m.previous_epoch, m.state, m.assigned, m.pending_revocation,
                              m.instance_id, m.rack_id, m.client_id, m.client_host, m.subscribed_names, m.regex,
                              m.server_assignor, m.rebalance_timeout_ms) for mid, m in g.members.items()}}


@async_test
async def test_restart_keeps_members_epochs_and_assignments() -> None:
    coord, _, backend = await started()
    ra, rb, a = await two_members_mid_rebalance(coord)
    before = snapshot(coord.groups["cg"])
    assert before["members"]["A"][2] == UNREVOKED and before["epoch"] == 2
    coord2, sched2 = await restarted(coord, backend)
    assert snapshot(coord2.groups["cg"]) == before
    appends = backend.appends
    # both go on heartbeating with their ids and epochs: no UNKNOWN_MEMBER_ID, no new group epoch
    rb2 = await call(coord2, "consumer_group_heartbeat", hb("B", rb.member_epoch, owned={}), 1)
    assert rb2.error_code == E.NONE and rb2.member_epoch == rb.member_epoch == 2
    assert backend.appends == appends        # nothing changed, nothing written
    ra2 = await call(coord2, "consumer_group_heartbeat", hb("A", ra.member_epoch, owned=a), 1)
    assert ra2.error_code == E.NONE and ra2.member_epoch == 2        # revocation done: moves on
    rb2 = await call(coord2, "consumer_group_heartbeat", hb("B", 2, owned={}), 1)
    g = coord2.groups["cg"]
    assert g.group_epoch == 2 and g.state() == "Stable"
    assert owned_of(rb2, {}) == _nest(g.target["B"])
    coord2.close()


def _nest(s: set[tuple[uuid.UUID, int]]) -> dict[uuid.UUID, set[int]]:
    out: dict[uuid.UUID, set[int]] = {}
    for t, p in s:
        out.setdefault(t, set()).add(p)
    return out


@async_test
async def test_restart_after_stable_keeps_the_same_assignment() -> None:
    coord, _, backend = await started()
    r = await call(coord, "consumer_group_heartbeat", hb("A", 0, topics=["t1"], owned={}), 1)
    a = owned_of(r, {})
    assert a == {T1: set(range(6))}
    coord2, _ = await restarted(coord, backend)
    # a full heartbeat (as a client sends after reconnecting) gets the same epoch and assignment
    full = K.ConsumerGroupHeartbeatRequest(
        group_id="cg", member_id="A", member_epoch=r.member_epoch, rebalance_timeout_ms=30000,
        subscribed_topic_names=["t1"], topic_partitions=[
            K.ConsumerGroupHeartbeatRequest.TopicPartitions(topic_id=T1, partitions=sorted(a[T1]))])
    r2 = await call(coord2, "consumer_group_heartbeat", full, 1)
    assert r2.error_code == E.NONE and r2.member_epoch == r.member_epoch
    assert owned_of(r2, {}) == a
    d = await call(coord2, "consumer_group_describe", K.ConsumerGroupDescribeRequest(group_ids=["cg"]), 0)
    assert d.groups[0].group_epoch == 1 and d.groups[0].group_state == "Stable"
    coord2.close()


@async_test
async def test_session_timeout_restarts_at_load_and_expiry_is_written() -> None:
    coord, sched, backend = await started()
    ra = await call(coord, "consumer_group_heartbeat", hb("A", 0, topics=["t1"], owned={}), 1)
    await call(coord, "consumer_group_heartbeat", hb("B", 0, topics=["t1"], owned={}), 1)
    sched.advance(40000)        # 40 of the 45 s pass before the "restart"
    coord2, sched2 = await restarted(coord, backend)
    sched2.advance(40000)
    assert set(coord2.groups["cg"].members) == {"A", "B"}      # the timer restarted at load
    r = await call(coord2, "consumer_group_heartbeat", hb("A", ra.member_epoch, owned=owned_of(ra, {})), 1)
    assert r.error_code == E.NONE
    sched2.advance(5001)        # B never came back
    await settle()
    assert set(coord2.groups["cg"].members) == {"A"}
    coord3, _ = await restarted(coord2, backend)
    g = coord3.groups["cg"]
    assert set(g.members) == {"A"} and set(g.target) == {"A"} and g.group_epoch == 3
    coord3.close()


@async_test
async def test_leave_and_reload_leaves_no_trace_of_the_member() -> None:
    coord, _, backend = await started()
    await two_members_mid_rebalance(coord)
    lv = await call(coord, "consumer_group_heartbeat", K.ConsumerGroupHeartbeatRequest(
        group_id="cg", member_id="B", member_epoch=-1), 1)
    assert lv.error_code == E.NONE
    coord2, _ = await restarted(coord, backend)
    g = coord2.groups["cg"]
    assert set(g.members) == {"A"} and "B" not in g.target and g.group_epoch == 3
    assert all(R.decode_cg_key(k)[2] != "B" for k in coord2.store.consumer["cg"])
    r = await call(coord2, "consumer_group_heartbeat", hb("B", 2, owned={}), 1)
    assert r.error_code == E.UNKNOWN_MEMBER_ID
    # the last member leaves, the group is deleted: nothing of it is left
    await call(coord2, "consumer_group_heartbeat", K.ConsumerGroupHeartbeatRequest(
        group_id="cg", member_id="A", member_epoch=-1), 1)
    d = await call(coord2, "delete_groups", K.DeleteGroupsRequest(groups_names=["cg"]), 2)
    assert d.results[0].error_code == E.NONE
    coord3, _ = await restarted(coord2, backend)
    assert "cg" not in coord3.groups and coord3.store.consumer == {}
    coord3.close()


@async_test
async def test_heartbeat_is_answered_after_its_records_are_appended() -> None:
    coord, _, backend = await started()
    backend.fail = OSError("disk full")
    r = await call(coord, "consumer_group_heartbeat", hb("A", 0, topics=["t1"], owned={}), 1)
    assert r.error_code == E.COORDINATOR_NOT_AVAILABLE
    backend.fail = None
    r = await call(coord, "consumer_group_heartbeat", hb("A", 0, topics=["t1"], owned={}), 1)
    assert r.error_code == E.NONE
    assert backend.appends == 1
    raw = coord.store.consumer["cg"]
    assert raw == group_records(coord.groups["cg"])
    assert snapshot(restore_group("cg", raw))["members"] == snapshot(coord.groups["cg"])["members"]
    coord.close()


@async_test
async def test_classic_group_replaced_by_consumer_group_is_gone_after_reload() -> None:
    coord, sched, backend = await started()
    joins = await stable_group(coord, sched, 1, "cg")
    j = joins[0]
    await call(coord, "leave_group", K.LeaveGroupRequest(group_id="cg", members=[
        K.LeaveGroupRequest.MemberIdentity(member_id=j.member_id, group_instance_id=None)]), 3)
    await settle()
    assert "cg" in coord.store.groups
    r = await call(coord, "consumer_group_heartbeat", hb("A", 0, topics=["t1"], owned={}), 1)
    assert r.error_code == E.NONE
    coord2, _ = await restarted(coord, backend)
    assert coord2.groups["cg"].kind == "consumer" and "cg" not in coord2.store.groups
    coord2.close()
