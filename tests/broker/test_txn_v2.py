"""Transaction version 2 over the wire (KIP-890 part 2, issue 12), with the raw protocol playing a
Java 4.x producer: ApiVersions advertises ``transaction.version`` (finalized at the start-up key),
Produce v12 adds its partition to the transaction without AddPartitionsToTxn, TxnOffsetCommit v5
its group without AddOffsetsToTxn, EndTxn v5 answers the bumped epoch, the markers carry it (the
old epoch is fenced at the partition), and DescribeProducers shows it.  Under TV1 (Produce v11 and
below) the same produce without AddPartitionsToTxn is refused as Kafka's verification refuses it."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from kafka_broker.testing import EmbeddedBroker
from kafka_protocol.errors import ErrorCode as E
from kafka_protocol.messages import REQUESTS

from .conftest import RawClient, create_topic, produce_req
from .test_txn_log import fetch, txn_batch


@pytest.fixture(scope="module")
def broker() -> Iterator[EmbeddedBroker]:
    b = EmbeddedBroker(settings={"transaction.version": "2", "group.initial.rebalance.delay.ms": "0"}).start()
    yield b
    b.cleanup()


def init(c: RawClient, tid: str) -> tuple[int, int]:
    r = c.call(REQUESTS[22](transactional_id=tid, transaction_timeout_ms=60000, producer_id=-1, producer_epoch=-1), 5)
    assert r.error_code == 0, r
    return int(r.producer_id), int(r.producer_epoch)


def fresh(c: RawClient) -> tuple[str, str, int, int]:
    """A new topic and a new transactional id initialized on it: (topic, id, producer id, epoch)."""
    topic, tid = f"tv-{uuid.uuid4().hex[:6]}", f"tx-{uuid.uuid4().hex[:6]}"
    create_topic(c, topic)
    return (topic, tid, *init(c, tid))


def produce(c: RawClient, tid: str | None, topic: str, batch: bytearray, version: int) -> int:
    req = produce_req(topic, 0, batch)
    req.transactional_id = tid
    return int(c.call(req, version).responses[0].partition_responses[0].error_code)


def end_txn(c: RawClient, tid: str, pid: int, epoch: int, commit: bool, version: int = 5) -> Any:
    return c.call(REQUESTS[26](transactional_id=tid, producer_id=pid, producer_epoch=epoch, committed=commit),
                  version)


def state(c: RawClient, tid: str) -> Any:
    return c.call(REQUESTS[65](transactional_ids=[tid]), 0).transaction_states[0]


def wait_state(c: RawClient, tid: str, name: str) -> Any:
    deadline = time.monotonic() + 10
    while (s := state(c, tid)).transaction_state != name:
        assert time.monotonic() < deadline, s
        time.sleep(0.05)
    return s


def producer_epochs(c: RawClient, topic: str) -> dict[int, int]:
    D = REQUESTS[61]
    r = c.call(D(topics=[D.TopicRequest(name=topic, partition_indexes=[0])]), 0)
    return {p.producer_id: p.producer_epoch for p in r.topics[0].partitions[0].active_producers}


def test_api_versions_advertise_the_feature(broker: EmbeddedBroker) -> None:
    with RawClient(broker.port) as c:
        r = c.call(REQUESTS[18](client_software_name="kc-test", client_software_version="1"), 3)
    assert [(f.name, f.min_version, f.max_version) for f in r.supported_features] == [("transaction.version", 0, 2)]
    assert [(f.name, f.min_version_level, f.max_version_level) for f in r.finalized_features] == \
        [("transaction.version", 2, 2)]
    assert r.finalized_features_epoch >= 0


def test_tv2_implicit_add_and_epoch_bump_per_transaction(broker: EmbeddedBroker) -> None:
    with RawClient(broker.port) as c:
        topic, tid, pid, epoch = fresh(c)
        assert epoch == 0
        # no AddPartitionsToTxn: Produce v12 puts the partition in the transaction
        assert produce(c, tid, topic, txn_batch([b"a0", b"a1"], pid, 0, 0), 12) == E.NONE
        s = state(c, tid)
        assert s.transaction_state == "Ongoing" and [(t.topic, t.partitions) for t in s.topics] == [(topic, [0])]
        assert produce(c, tid, topic, txn_batch([b"a2"], pid, 0, 2), 12) == E.NONE
        r = end_txn(c, tid, pid, 0, True)
        assert (r.error_code, r.producer_id, r.producer_epoch) == (E.NONE, pid, 1)
        assert wait_state(c, tid, "CompleteCommit").producer_epoch == 1
        assert producer_epochs(c, topic) == {pid: 1}           # the marker carried the bumped epoch
        # the ended transaction's epoch is fenced; the new epoch starts again at sequence 0
        assert produce(c, tid, topic, txn_batch([b"zombie"], pid, 0, 3), 12) == E.INVALID_PRODUCER_EPOCH
        assert produce(c, tid, topic, txn_batch([b"b0"], pid, 1, 0), 12) == E.NONE
        r = end_txn(c, tid, pid, 1, False)
        assert (r.error_code, r.producer_epoch) == (E.NONE, 2)
        wait_state(c, tid, "CompleteAbort")
        assert producer_epochs(c, topic) == {pid: 2}
        # a retry of that EndTxn (epoch 1) is answered with the epoch it produced
        r = end_txn(c, tid, pid, 1, False)
        assert (r.error_code, r.producer_epoch) == (E.NONE, 2)
        assert end_txn(c, tid, pid, 0, False).error_code == E.PRODUCER_FENCED
        p = fetch(c, topic, committed=True)
        assert p.error_code == 0 and p.last_stable_offset == p.high_watermark == 6   # 3 + marker + 1 + marker
        assert [a.producer_id for a in p.aborted_transactions] == [pid]


def txn_offset_commit(tid: str, group: str, topic: str, pid: int, epoch: int) -> Any:
    T = REQUESTS[28]
    return T(transactional_id=tid, group_id=group, producer_id=pid, producer_epoch=epoch, generation_id=-1,
             member_id="", group_instance_id=None, topics=[T.TxnOffsetCommitRequestTopic(name=topic, partitions=[
                 T.TxnOffsetCommitRequestPartition(partition_index=0, committed_offset=42, committed_leader_epoch=-1,
                                                   committed_metadata="")])])


def test_tv2_txn_offset_commit_adds_the_group(broker: EmbeddedBroker) -> None:
    group = f"g-{uuid.uuid4().hex[:6]}"
    with RawClient(broker.port) as c:
        topic, tid, pid, epoch = fresh(c)
        req = txn_offset_commit(tid, group, topic, pid, epoch)
        r = c.call(req, 5)
        assert r.topics[0].partitions[0].error_code == E.NONE
        s = state(c, tid)
        assert s.transaction_state == "Ongoing" and [t.topic for t in s.topics] == ["__consumer_offsets"]
        assert end_txn(c, tid, pid, epoch, True).error_code == E.NONE
        wait_state(c, tid, "CompleteCommit")
        F = REQUESTS[9]
        deadline = time.monotonic() + 10
        while True:
            got = c.call(F(groups=[F.OffsetFetchRequestGroup(group_id=group, topics=[
                F.OffsetFetchRequestTopics(name=topic, partition_indexes=[0])])], require_stable=True), 8)
            if got.groups[0].topics[0].partitions[0].committed_offset == 42:
                break
            assert time.monotonic() < deadline, got
            time.sleep(0.05)
        # an old epoch cannot add the group again: the producer is told its epoch is stale
        req.producer_epoch = 0
        assert c.call(req, 5).topics[0].partitions[0].error_code == E.INVALID_PRODUCER_EPOCH


def test_tv1_txn_offset_commit_without_add_offsets_is_refused(broker: EmbeddedBroker) -> None:
    group = f"g1-{uuid.uuid4().hex[:6]}"
    with RawClient(broker.port) as c:
        topic, tid, pid, epoch = fresh(c)
        req = txn_offset_commit(tid, group, topic, pid, epoch)
        assert c.call(req, 4).topics[0].partitions[0].error_code == E.TRANSACTION_ABORTABLE
        assert c.call(req, 3).topics[0].partitions[0].error_code == E.INVALID_TXN_STATE
        assert state(c, tid).transaction_state == "Empty"             # nothing was added
        r = c.call(REQUESTS[25](transactional_id=tid, producer_id=pid, producer_epoch=epoch, group_id=group), 3)
        assert r.error_code == E.NONE
        assert c.call(req, 3).topics[0].partitions[0].error_code == E.NONE


def test_tv1_produce_without_add_partitions_is_refused(broker: EmbeddedBroker) -> None:
    with RawClient(broker.port) as c:
        topic, tid, pid, epoch = fresh(c)
        # Kafka's verification: the partition is not in the transaction
        assert produce(c, tid, topic, txn_batch([b"x"], pid, epoch, 0), 11) == E.TRANSACTION_ABORTABLE
        assert produce(c, tid, topic, txn_batch([b"x"], pid, epoch, 0), 9) == E.INVALID_TXN_STATE
        assert fetch(c, topic, committed=False).high_watermark == 0        # nothing appended
        A = REQUESTS[24]
        r = c.call(A(v3_and_below_transactional_id=tid, v3_and_below_producer_id=pid,
                     v3_and_below_producer_epoch=epoch, v3_and_below_topics=[
                         A.AddPartitionsToTxnTopic(name=topic, partitions=[0])]), 3)
        assert r.results_by_topic_v3_and_below[0].results_by_partition[0].partition_error_code == E.NONE
        assert produce(c, tid, topic, txn_batch([b"x"], pid, epoch, 0), 9) == E.NONE
        r = end_txn(c, tid, pid, epoch, True, version=4)
        assert r.error_code == E.NONE
        wait_state(c, tid, "CompleteCommit")
        assert state(c, tid).producer_epoch == epoch                  # TV1: the epoch stays
        assert producer_epochs(c, topic) == {pid: epoch}
        # a wrong epoch is fenced by the coordinator before anything is appended
        assert produce(c, tid, topic, txn_batch([b"y"], pid, epoch + 5, 0), 9) == E.INVALID_PRODUCER_EPOCH


def test_tv0_broker_does_not_finalize_the_feature() -> None:
    b = EmbeddedBroker(settings={"transaction.version": "0"}).start()
    try:
        with RawClient(b.port) as c:
            r = c.call(REQUESTS[18](client_software_name="kc-test", client_software_version="1"), 3)
        assert [f.name for f in r.supported_features] == ["transaction.version"]
        assert list(r.finalized_features) == []
    finally:
        b.cleanup()


def test_pipelined_produce_keeps_sequence_order_through_the_verification(broker: EmbeddedBroker) -> None:
    """Requests sent back to back right after EndTxn: the first waits for the coordinator (the
    previous transaction may still be completing: refused as retriable), the ones behind it must
    neither overtake it nor land after a refusal of it (OUT_OF_ORDER_SEQUENCE_NUMBER for the
    client, seen in benches/system/bench_txn_v2.py before the chain)."""
    with RawClient(broker.port) as c:
        topic, tid, pid, epoch = fresh(c)
        for rnd in range(3):
            sent, seq = [], 0
            for k in range(6):
                req = produce_req(topic, 0, txn_batch([f"{rnd}-{k}".encode()], pid, epoch, seq))
                req.transactional_id = tid
                sent.append(c.send(req, 12))
                seq += 1
            codes = [c.recv(corr).responses[0].partition_responses[0].error_code for corr in sent]
            # all in, or a refused prefix (the client retries those in order) and nothing after it
            ok = codes.index(E.NONE) if E.NONE in codes else len(codes)
            assert set(codes[:ok]) <= {E.NOT_ENOUGH_REPLICAS} and set(codes[ok:]) <= {E.NONE}, codes
            for k in range(ok):          # the retry, in order
                deadline = time.monotonic() + 10
                while (got := produce(c, tid, topic, txn_batch([f"{rnd}-{k}".encode()], pid, epoch, k), 12)) \
                        == E.NOT_ENOUGH_REPLICAS:
                    assert time.monotonic() < deadline
                    time.sleep(0.02)
                assert got == E.NONE
            r = end_txn(c, tid, pid, epoch, True)
            assert r.error_code == E.NONE
            epoch = r.producer_epoch
        wait_state(c, tid, "CompleteCommit")
        assert producer_epochs(c, topic) == {pid: 3}


def test_tv2_state_survives_a_restart(tmp_path: Any) -> None:
    """The coordinator reads TransactionLogValue v1 back: the bumped epoch, and a retried EndTxn v5
    of the transaction before the restart is still recognised."""
    b = EmbeddedBroker(data_dir=tmp_path, settings={"transaction.version": "2"}).start()
    try:
        with RawClient(b.port) as c:
            topic, tid, pid, epoch = fresh(c)
            assert produce(c, tid, topic, txn_batch([b"v"], pid, epoch, 0), 12) == E.NONE
            assert end_txn(c, tid, pid, epoch, True).producer_epoch == epoch + 1
            wait_state(c, tid, "CompleteCommit")
        b.stop()
        b.start()
        with RawClient(b.port) as c:
            s = wait_state(c, tid, "CompleteCommit")
            assert (s.producer_id, s.producer_epoch) == (pid, epoch + 1)
            r = end_txn(c, tid, pid, epoch, True)            # the retry, answered from the log
            assert (r.error_code, r.producer_id, r.producer_epoch) == (E.NONE, pid, epoch + 1)
            assert produce(c, tid, topic, txn_batch([b"old"], pid, epoch, 1), 12) == E.INVALID_PRODUCER_EPOCH
            assert produce(c, tid, topic, txn_batch([b"w"], pid, epoch + 1, 0), 12) == E.NONE
    finally:
        b.cleanup()


def test_unsupported_transaction_version_is_refused_at_start_up() -> None:
    from kafka_broker.config import BrokerConfig, ConfigError

    with pytest.raises(ConfigError, match="transaction.version"):
        BrokerConfig({"transaction.version": "3"})
    assert BrokerConfig({})["transaction.version"] == 2       # Kafka 4.x's level for a new cluster
