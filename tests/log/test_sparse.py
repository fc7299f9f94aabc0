"""Sparse hosting: a Topic's slots are None for the partitions this broker hosts no replica of
(Storage.ensure_topic / create_replica / delete_replica), persisted in kc-metadata.json."""

from __future__ import annotations

import json
import os
import uuid

import pytest
from kafka_broker.log import AppendOrigin, AppendResult
from kafka_broker.log.topics import new_topic_id
from kafka_broker.storage import META_FILE
from kafka_protocol import _pyrecords as py

from .conftest import StorageHarness


def batch(n: int = 1, ts: int = 1000) -> bytearray:
    return bytearray(py.make_batch([(ts + i, b"k", b"v" * 20, []) for i in range(n)], base_timestamp=ts))


def meta(h: StorageHarness) -> dict:
    with open(os.path.join(h.dir, META_FILE), encoding="utf-8") as f:
        return json.load(f)


def test_single_node_topic_is_dense_and_keeps_the_old_format(harness: StorageHarness) -> None:
    st = harness.open()
    t = harness.run(st.create_topic("dense", 3, {}))
    assert [p.index for p in t.partitions if p is not None] == [0, 1, 2]
    assert [p.index for p in t.hosted()] == [0, 1, 2]
    assert "hosted" not in meta(harness)["topics"]["dense"]
    st = harness.reopen()
    assert [p.index for p in st.topics["dense"].hosted()] == [0, 1, 2]


def test_ensure_topic_creates_empty_slots_and_grows(harness: StorageHarness) -> None:
    st = harness.open()
    tid = new_topic_id()
    t = harness.run(st.ensure_topic("sp", tid, 2, {"retention.ms": "1000"}))
    assert t.partitions == [None, None] and list(t.hosted()) == []
    assert st.topics_by_id[tid] is t and st.partition("sp", 0) is None
    assert harness.run(st.ensure_topic("sp", tid, 4, {"retention.ms": "1000"})) is t
    assert t.partitions == [None] * 4
    harness.run(st.ensure_topic("sp", tid, 3, {}))     # never shrinks; overrides follow
    assert len(t.partitions) == 4 and t.overrides == {} and t.effective["retention.ms"] != 1000
    with pytest.raises(ValueError):
        harness.run(st.ensure_topic("sp", uuid.uuid4(), 4, {}))
    assert meta(harness)["topics"]["sp"]["hosted"] == []


def test_create_replica_is_idempotent_and_persisted(harness: StorageHarness) -> None:
    st = harness.open()
    tid = new_topic_id()
    t = harness.run(st.ensure_topic("sp", tid, 3, {}))
    p = harness.run(st.create_replica(t, 1))
    assert t.partitions[1] is p and t.partitions[0] is None and t.partitions[2] is None
    assert harness.run(st.create_replica(t, 1)) is p

    async def two() -> tuple:
        import asyncio
        return tuple(await asyncio.gather(st.create_replica(t, 2), st.create_replica(t, 2)))
    a, b = harness.run(two())
    assert a is b and t.partitions[2] is a
    with pytest.raises(IndexError):
        harness.run(st.create_replica(t, 3))
    assert isinstance(p.append(batch(3), AppendOrigin.CLIENT), AppendResult)
    assert meta(harness)["topics"]["sp"]["hosted"] == [1, 2]
    st = harness.reopen()
    t = st.topics["sp"]
    assert t.id == tid and t.partitions[0] is None and [q.index for q in t.hosted()] == [1, 2]
    q1 = t.partitions[1]
    assert q1 is not None and q1.log.end_offset == 3
    assert os.path.isdir(os.path.join(harness.dir, "sp-1")) and not os.path.exists(os.path.join(harness.dir, "sp-0"))


def test_delete_replica_drops_the_log_then_the_topic(harness: StorageHarness) -> None:
    st = harness.open()
    t = harness.run(st.ensure_topic("sp", new_topic_id(), 2, {}))
    p0 = harness.run(st.create_replica(t, 0))
    harness.run(st.create_replica(t, 1))
    p0.append(batch(), AppendOrigin.CLIENT)
    harness.run(st.delete_replica(t, 0))
    assert t.partitions[0] is None and p0.closed and "sp" in st.topics
    assert not os.path.exists(p0.path)
    assert meta(harness)["topics"]["sp"]["hosted"] == [1]
    harness.run(st.delete_replica(t, 0))     # not hosted: nothing to do
    harness.run(st.delete_replica(t, 1))
    assert "sp" not in st.topics and t.id not in st.topics_by_id
    assert "sp" not in meta(harness)["topics"]
    st = harness.reopen()
    assert "sp" not in st.topics
    assert not [e for e in os.listdir(harness.dir) if e.startswith("sp-")]


def test_sparse_topic_survives_the_tick_and_close_paths(harness: StorageHarness) -> None:
    """Retention, checkpoint and flush-ms scans skip the None slots."""
    st = harness.open()
    t = harness.run(st.ensure_topic("sp", new_topic_id(), 3, {"flush.ms": "10"}))
    harness.run(st.create_replica(t, 2))
    st._retention_tick()
    st._checkpoint_tick()
    assert [p.index for p in st.partitions_due_for_time_flush()] in ([], [2])
    harness.run(st.alter_topic_configs(t, {"segment.bytes": "1048576"}))
    harness.run(st.delete_topic(t))
    assert "sp" not in st.topics


def test_client_handlers_answer_not_leader_for_a_partition_not_hosted(harness: StorageHarness) -> None:
    from types import SimpleNamespace

    from kafka_broker.fetch import handle_list_offsets
    from kafka_broker.produce import handle_produce
    from kafka_protocol.errors import ErrorCode as E
    from kafka_protocol.messages import ListOffsetsRequest, ProduceRequest

    st = harness.open()
    t = harness.run(st.ensure_topic("sp", new_topic_id(), 2, {}))
    harness.run(st.create_replica(t, 1))
    deps = SimpleNamespace(storage=st, cluster=None, txns=None)
    ctx = SimpleNamespace(api_version=9)
    req = ProduceRequest(acks=1, timeout_ms=1000, transactional_id=None, topic_data=[
        ProduceRequest.TopicProduceData(name="sp", partition_data=[
            ProduceRequest.PartitionProduceData(index=i, records=batch()) for i in (0, 1, 2)])])
    resp = handle_produce(deps, ctx, req)
    codes = [r.error_code for r in resp.responses[0].partition_responses]
    assert codes == [E.NOT_LEADER_OR_FOLLOWER, 0, E.UNKNOWN_TOPIC_OR_PARTITION]
    req2 = ListOffsetsRequest(replica_id=-1, isolation_level=0, topics=[ListOffsetsRequest.ListOffsetsTopic(
        name="sp", partitions=[ListOffsetsRequest.ListOffsetsPartition(partition_index=i, timestamp=-1)
                               for i in (0, 1)])])
    resp2 = handle_list_offsets(deps, SimpleNamespace(api_version=5), req2)
    assert [(r.error_code, r.offset) for r in resp2.topics[0].partitions] == [(E.NOT_LEADER_OR_FOLLOWER, -1), (0, 1)]
