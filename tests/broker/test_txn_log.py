"""Transactions in the log (issue 12): transactional batches hold the last stable offset back,
WriteTxnMarkers' COMMIT / ABORT markers end them, read_committed fetches stop at the LSO and list
the aborted transactions so clients drop their records (confluent-kafka, kafka-python, aiokafka),
ListOffsets under read_committed answers the LSO, the aborted index survives a restart, stale
markers are fenced, and a TxnOffsetCommit becomes the group's offset at its COMMIT marker.
Driven with the raw protocol: the test plays the transaction coordinator."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from kafka_broker.groups.records import partition_for
from kafka_broker.testing import EmbeddedBroker
from kafka_protocol.errors import ErrorCode as E
from kafka_protocol.messages import REQUESTS

import kafka_core

from .conftest import RawClient, create_topic, fetch_req, produce_req


@pytest.fixture
def broker() -> Iterator[EmbeddedBroker]:
    # the test plays the transaction coordinator: its TxnOffsetCommit names an id the broker's own
    # coordinator never saw, which Kafka's verification (KIP-890) would refuse
    b = EmbeddedBroker(settings={"group.initial.rebalance.delay.ms": "0",
                                 "transaction.partition.verification.enable": "false"}).start()
    yield b
    b.cleanup()


def txn_batch(values: list[bytes], pid: int, epoch: int = 0, seq: int = 0, transactional: bool = True) -> bytearray:
    now = int(time.time() * 1000)
    b = kafka_core.BatchBuilder(64 + sum(len(v) + 40 for v in values), base_timestamp=now, producer_id=pid,
                                producer_epoch=epoch, base_sequence=seq, attributes=0x10 if transactional else 0)
    for v in values:
        assert b.append(now, None, v)
    return bytearray(b.finish())


def pid_of(c: RawClient) -> int:
    r = c.call(REQUESTS[22](transactional_id=None, transaction_timeout_ms=60000, producer_id=-1, producer_epoch=-1), 4)
    assert r.error_code == 0
    return int(r.producer_id)


def produce(c: RawClient, topic: str, batch: bytearray, partition: int = 0) -> int:
    r = c.call(produce_req(topic, partition, batch), 9)
    return int(r.responses[0].partition_responses[0].error_code)


def marker(c: RawClient, topic: str, pid: int, commit: bool, epoch: int = 0, coord_epoch: int = 0,
           partitions: tuple[int, ...] = (0,)) -> list[int]:
    W = REQUESTS[27]
    req = W(markers=[W.WritableTxnMarker(producer_id=pid, producer_epoch=epoch, transaction_result=commit,
                                         topics=[W.WritableTxnMarkerTopic(name=topic, partition_indexes=list(partitions))],
                                         coordinator_epoch=coord_epoch)])
    r = c.call(req, 1)
    return [p.error_code for t in r.markers[0].topics for p in t.partitions]


def fetch(c: RawClient, topic: str, offset: int = 0, committed: bool = True, **kw: Any) -> Any:
    req = fetch_req(topic, 0, offset, **kw)
    req.isolation_level = 1 if committed else 0
    return c.call(req, 11).responses[0].partitions[0]


def latest(c: RawClient, topic: str, committed: bool) -> int:
    L = REQUESTS[2]
    r = c.call(L(replica_id=-1, isolation_level=1 if committed else 0, topics=[L.ListOffsetsTopic(
        name=topic, partitions=[L.ListOffsetsPartition(partition_index=0, timestamp=-1, current_leader_epoch=-1)])]), 5)
    return int(r.topics[0].partitions[0].offset)


def test_lso_markers_and_the_aborted_list(broker: EmbeddedBroker) -> None:
    topic = f"txn-{uuid.uuid4().hex[:6]}"
    with RawClient(broker.port) as c:
        create_topic(c, topic)
        a, b_ = pid_of(c), pid_of(c)
        assert produce(c, topic, txn_batch([b"a0", b"a1", b"a2"], a)) == 0          # offsets 0-2
        assert produce(c, topic, txn_batch([b"b0", b"b1"], b_)) == 0                # 3-4
        # a plain batch from a producer whose transaction is open is refused
        assert produce(c, topic, txn_batch([b"x"], a, seq=3, transactional=False)) == E.INVALID_TXN_STATE
        p = fetch(c, topic)
        assert (p.high_watermark, p.last_stable_offset) == (5, 0) and not p.records
        assert fetch(c, topic, committed=False).last_stable_offset == 0
        assert (latest(c, topic, True), latest(c, topic, False)) == (0, 5)
        assert marker(c, topic, a, True) == [0]                                   # offset 5
        assert latest(c, topic, True) == 3                                        # b is still open
        # a marker from a fenced coordinator or an older producer epoch is refused
        assert marker(c, topic, b_, False) == [0]                                 # offset 6: b aborted
        assert marker(c, topic, b_, True, epoch=-1) == [E.INVALID_PRODUCER_EPOCH]
        p = fetch(c, topic)
        assert (p.high_watermark, p.last_stable_offset) == (7, 7)
        assert [(t.producer_id, t.first_offset) for t in p.aborted_transactions] == [(b_, 3)]
        assert [(t.producer_id, t.first_offset) for t in fetch(c, topic, offset=5).aborted_transactions] == [(b_, 3)]
        assert [(t.producer_id, t.first_offset) for t in fetch(c, topic, offset=7).aborted_transactions] == []
        assert marker(c, topic, a, True, coord_epoch=0) == [0]
        assert marker(c, topic, a, False, epoch=0, coord_epoch=-1) == [E.TRANSACTION_COORDINATOR_FENCED]
        assert marker(c, "no-such-topic", a, True) == [E.UNKNOWN_TOPIC_OR_PARTITION]
    # restarts keep the aborted index and the producers' open transactions
    broker.restart()
    with RawClient(broker.port) as c:
        p = fetch(c, topic)
        assert [(t.producer_id, t.first_offset) for t in p.aborted_transactions] == [(b_, 3)]
        assert p.last_stable_offset == 8


def test_a_parked_read_committed_fetch_wakes_on_the_marker(broker: EmbeddedBroker) -> None:
    topic = f"txn-{uuid.uuid4().hex[:6]}"
    with RawClient(broker.port) as c, RawClient(broker.port) as coord:
        create_topic(c, topic)
        pid = pid_of(c)
        assert produce(c, topic, txn_batch([b"v"], pid)) == 0
        c.send(_committed(fetch_req(topic, 0, 0, max_wait_ms=20000, min_bytes=1)), 11)
        time.sleep(0.3)
        t0 = time.monotonic()
        assert marker(coord, topic, pid, True) == [0]
        resp = c.recv()
        assert time.monotonic() - t0 < 5
        part = resp.responses[0].partitions[0]
        assert part.last_stable_offset == 2 and part.records


def _committed(req: Any) -> Any:
    req.isolation_level = 1
    return req


def test_third_party_read_committed_consumers_drop_aborted_records(broker: EmbeddedBroker) -> None:
    topic = f"txn-{uuid.uuid4().hex[:6]}"
    with RawClient(broker.port) as c:
        create_topic(c, topic)
        a, b_ = pid_of(c), pid_of(c)
        produce(c, topic, txn_batch([b"keep-0", b"keep-1"], a))
        produce(c, topic, txn_batch([b"drop-0", b"drop-1", b"drop-2"], b_))
        produce(c, topic, txn_batch([b"keep-2"], a, seq=2))
        marker(c, topic, b_, False)
        marker(c, topic, a, True)
    want = [b"keep-0", b"keep-1", b"keep-2"]
    everything = sorted(want + [b"drop-0", b"drop-1", b"drop-2"])
    ck = pytest.importorskip("confluent_kafka")

    def confluent(level: str) -> list[bytes]:
        cons = ck.Consumer({"bootstrap.servers": broker.bootstrap, "group.id": f"g-{uuid.uuid4().hex[:6]}",
                            "auto.offset.reset": "earliest", "isolation.level": level})
        cons.assign([ck.TopicPartition(topic, 0, 0)])
        out: list[bytes] = []
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            m = cons.poll(0.5)
            if m is not None and m.error() is None:
                out.append(m.value())
            if len(out) >= (3 if level == "read_committed" else 6):
                break
        time.sleep(0.5)
        m = cons.poll(0.5)
        if m is not None and m.error() is None:
            out.append(m.value())
        cons.close()
        return out
    assert confluent("read_committed") == want
    assert sorted(confluent("read_uncommitted")) == everything
    kp = pytest.importorskip("kafka")
    kc = kp.KafkaConsumer(bootstrap_servers=broker.bootstrap, isolation_level="read_committed",
                          auto_offset_reset="earliest", consumer_timeout_ms=5000)
    kc.assign([kp.TopicPartition(topic, 0)])
    assert [m.value for m in kc] == want
    kc.close()
    import aiokafka

    async def aio() -> list[bytes]:
        cons = aiokafka.AIOKafkaConsumer(bootstrap_servers=broker.bootstrap, isolation_level="read_committed",
                                         auto_offset_reset="earliest")
        await cons.start()
        try:
            cons.assign([aiokafka.TopicPartition(topic, 0)])
            out: list[bytes] = []
            deadline = time.monotonic() + 15
            while len(out) < 3 and time.monotonic() < deadline:
                batch = await cons.getmany(timeout_ms=500)
                out += [m.value for ms in batch.values() for m in ms]
            return out
        finally:
            await cons.stop()
    assert asyncio.run(aio()) == want


test_third_party_read_committed_consumers_drop_aborted_records = pytest.mark.interop(
    test_third_party_read_committed_consumers_drop_aborted_records)


def test_a_txn_offset_commit_becomes_the_group_s_offset_at_the_commit_marker(broker: EmbeddedBroker) -> None:
    topic = f"txn-{uuid.uuid4().hex[:6]}"
    group = f"g-{uuid.uuid4().hex[:6]}"
    with RawClient(broker.port) as c:
        create_topic(c, topic)
        pid = pid_of(c)
        F = REQUESTS[10]
        assert c.call(F(key=group, key_type=0, coordinator_keys=[]), 3).error_code == 0
        T = REQUESTS[28]
        r = c.call(T(transactional_id="tx", group_id=group, producer_id=pid, producer_epoch=0, generation_id=-1,
                     member_id="", group_instance_id=None, topics=[T.TxnOffsetCommitRequestTopic(
                         name=topic, partitions=[T.TxnOffsetCommitRequestPartition(
                             partition_index=0, committed_offset=42, committed_leader_epoch=-1,
                             committed_metadata="")])]), 3)
        assert r.topics[0].partitions[0].error_code == 0
        OF = REQUESTS[9]

        def committed(stable: bool) -> tuple[int, int]:
            resp = c.call(OF(group_id=group, topics=[OF.OffsetFetchRequestTopic(name=topic, partition_indexes=[0])],
                            require_stable=stable), 7)
            pp = resp.topics[0].partitions[0]
            return pp.committed_offset, pp.error_code
        assert committed(False) == (-1, 0)
        assert committed(True) == (-1, E.UNSTABLE_OFFSET_COMMIT)
        M = REQUESTS[3]
        md = c.call(M(topics=[M.MetadataRequestTopic(name="__consumer_offsets")], allow_auto_topic_creation=False,
                      include_topic_authorized_operations=False), 12)
        op = partition_for(group, len(md.topics[0].partitions))
        assert marker(c, "__consumer_offsets", pid, True, partitions=(op,)) == [0]
        assert committed(True) == (42, 0)
    broker.restart()          # rebuilt from the log: the transactional batch and its marker
    with RawClient(broker.port) as c:
        for _ in range(50):
            resp = c.call(OF(group_id=group, topics=[OF.OffsetFetchRequestTopic(name=topic, partition_indexes=[0])],
                            require_stable=True), 7)
            if resp.error_code != E.COORDINATOR_LOAD_IN_PROGRESS:
                break
            time.sleep(0.1)
        assert resp.topics[0].partitions[0].committed_offset == 42


@pytest.mark.interop
@pytest.mark.skipif(__import__("shutil").which("java") is None, reason="java is installed by ./dev test")
def test_kafka_transactions_describe_producers(broker: EmbeddedBroker) -> None:
    from kafka_bench import apache_kafka as ak

    topic = f"txn-{uuid.uuid4().hex[:6]}"
    with RawClient(broker.port) as c:
        create_topic(c, topic)
        open_pid, done_pid = pid_of(c), pid_of(c)
        assert produce(c, topic, txn_batch([b"x", b"y"], done_pid)) == 0        # 0-1, then its marker (2)
        assert marker(c, topic, done_pid, True, coord_epoch=7) == [0]
        assert produce(c, topic, txn_batch([b"z"], open_pid)) == 0              # 3: still open
    r = ak.java_main("org.apache.kafka.tools.TransactionsCommand",
                     ["--bootstrap-server", broker.bootstrap, "describe-producers", "--topic", topic,
                      "--partition", "0"], timeout=90, check=False)
    out = r.stdout.decode()
    assert r.returncode == 0, out + r.stderr.decode()[-3000:]
    rows = {int(line.split()[0]): line.split() for line in out.splitlines()[1:] if line.strip()}
    # ProducerId ProducerEpoch LatestCoordinatorEpoch LastSequence LastTimestamp CurrentTransactionStartOffset
    assert rows[open_pid][2] == "-1" and rows[open_pid][3] == "0" and rows[open_pid][-1] == "3", out
    assert rows[done_pid][2] == "7" and rows[done_pid][3] == "1" and rows[done_pid][-1] in ("None", "-1"), out
