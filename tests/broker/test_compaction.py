"""Log compaction through the broker: random keyed workloads (with tombstones and two
producers at once) on cleanup.policy=compact topics, checked against a model: the latest
value of every key survives, order and offsets are unchanged, older values of a key go once
they leave the active segment, tombstones go after delete.retention.ms (and stay before).
Also: keyless records are refused on compacted topics, __consumer_offsets is compacted."""

from __future__ import annotations

import random
import threading
import time
import uuid

import pytest
from kafka_bench.kafka_core_broker import KafkaCoreBroker

from tests.broker.conftest import RawClient, create_topic, fetch_req, make_batch, produce_req

SEGMENT = 2048          # small segments: each holds ~20 of the records below
TAIL = 80               # records that may still sit in the active segment (never cleaned)

Rec = tuple[int, bytes, bytes | None]     # offset, key, value


@pytest.fixture(scope="module")
def cbroker():
    b = KafkaCoreBroker(settings={"num.partitions": "1", "log.cleaner.backoff.ms": "100",
                                  "group.initial.rebalance.delay.ms": "0", "offsets.topic.num.partitions": "2",
                                  "offsets.topic.segment.bytes": str(SEGMENT)})
    b.start()
    yield b
    b.cleanup()


def compact_topic(c: RawClient, **configs: str) -> str:
    name = f"compact-{uuid.uuid4().hex[:8]}"
    cfg = {"cleanup.policy": "compact", "segment.bytes": str(SEGMENT), "min.cleanable.dirty.ratio": "0.01",
           "delete.retention.ms": "0"}
    cfg.update(configs)
    create_topic(c, name, 1, cfg)
    return name


def produce_one(c: RawClient, topic: str, key: bytes, value: bytes | None) -> int:
    resp = c.call(produce_req(topic, 0, make_batch([value], keys=[key])), 9)
    pr = resp.responses[0].partition_responses[0]
    assert pr.error_code == 0, pr
    return int(pr.base_offset)


def read_all(c: RawClient, topic: str, partition: int = 0) -> list[Rec]:
    from kafka_core._batch import iter_records, scan_batches

    out: list[Rec] = []
    offset = 0
    while True:
        resp = c.call(fetch_req(topic, partition, offset, max_bytes=1 << 20), 12)
        pd = resp.responses[0].partitions[0]
        assert pd.error_code == 0, pd
        data = bytes(pd.records or b"")
        if not data:
            return out
        infos, _ = scan_batches(data, allow_partial=True, allow_compacted=True)
        if not infos:
            return out
        for info in infos:
            for r in iter_records(memoryview(data)[info.position:info.position + info.size]):
                if r.offset >= offset:
                    out.append((r.offset, bytes(r.key), None if r.value is None else bytes(r.value)))
        offset = infos[-1].last_offset + 1
        if offset >= pd.high_watermark:
            return out


class Workload:
    """Random puts and deletes over a small key space; the model is every acknowledged write."""

    def __init__(self, seed: int, keys: int, deletes: float) -> None:
        self.rng = random.Random(seed)
        self.keys = [f"key-{seed}-{i}".encode() for i in range(keys)]
        self.deletes = deletes
        self.written: list[Rec] = []
        self.lock = threading.Lock()

    def run(self, port: int, topic: str, n: int) -> None:
        with RawClient(port) as c:
            for i in range(n):
                k = self.rng.choice(self.keys)
                v = None if self.rng.random() < self.deletes else f"v{i}-{self.rng.random()}".encode()
                off = produce_one(c, topic, k, v)
                with self.lock:
                    self.written.append((off, k, v))


def check_against_model(got: list[Rec], written: list[Rec], end: int, tombstones_gone: bool) -> bool:
    """Assert the invariants; return True once compaction is complete outside the tail."""
    by_offset = {o: (k, v) for o, k, v in written}
    offsets = [o for o, _, _ in got]
    assert offsets == sorted(set(offsets)), "order or uniqueness of offsets broken"
    for o, k, v in got:
        assert by_offset.get(o) == (k, v), f"record at offset {o} is not what was written there"
    latest: dict[bytes, Rec] = {}
    for rec in sorted(written):
        latest[rec[1]] = rec
    present = set(offsets)
    for k, (o, _, v) in latest.items():
        if v is not None or not tombstones_gone:
            assert o in present, f"latest record of {k!r} (offset {o}) was removed"
    done = True
    latest_offsets = {o for o, _, _ in latest.values()}
    for o, _k, v in got:
        if o >= end - TAIL:
            continue
        if o not in latest_offsets:
            done = False          # an older value outside the tail: not cleaned yet
        elif v is None and tombstones_gone:
            done = False          # a tombstone past delete.retention.ms: not removed yet
    return done


def wait_compacted(port: int, topic: str, written: list[Rec], tombstones_gone: bool, timeout: float = 60) -> list[Rec]:
    """Keep producing filler (so every written record leaves the active segment) until clean."""
    deadline = time.monotonic() + timeout
    with RawClient(port) as c:
        i = 0
        while True:
            for _ in range(10):
                produce_one(c, topic, f"filler-{i % 7}".encode(), b"x" * 40)
                i += 1
            got = read_all(c, topic)
            end = got[-1][0] + 1 if got else 0
            model = [r for r in got if not r[1].startswith(b"filler-")]
            if check_against_model(model, written, end, tombstones_gone):
                return model
            assert time.monotonic() < deadline, "compaction did not complete in time"
            time.sleep(0.2)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_workload_matches_model(cbroker, seed):
    with RawClient(cbroker.port) as c:
        topic = compact_topic(c)
    w = Workload(seed, keys=25, deletes=0.15)
    w.run(cbroker.port, topic, 300)
    got = wait_compacted(cbroker.port, topic, w.written, tombstones_gone=True)
    assert len(got) < len(w.written)
    live = {k for _, k, v in sorted(w.written) if v is not None} - \
        {k for k, rec in {r[1]: r for r in sorted(w.written)}.items() if rec[2] is None}
    assert {k for _, k, _ in got} >= live


def test_concurrent_producers_while_cleaning(cbroker):
    with RawClient(cbroker.port) as c:
        topic = compact_topic(c)
    a, b = Workload(11, keys=20, deletes=0.1), Workload(12, keys=20, deletes=0.1)
    ta = threading.Thread(target=a.run, args=(cbroker.port, topic, 250))
    tb = threading.Thread(target=b.run, args=(cbroker.port, topic, 250))
    ta.start()
    tb.start()
    ta.join(120)
    tb.join(120)
    written = a.written + b.written
    assert len(written) == 500
    wait_compacted(cbroker.port, topic, written, tombstones_gone=True)


def test_tombstones_kept_before_delete_retention(cbroker):
    with RawClient(cbroker.port) as c:
        topic = compact_topic(c, **{"delete.retention.ms": "3600000"})
    w = Workload(21, keys=10, deletes=0.3)
    w.run(cbroker.port, topic, 200)
    got = wait_compacted(cbroker.port, topic, w.written, tombstones_gone=False)
    latest = {r[1]: r for r in sorted(w.written)}
    deleted = [rec for rec in latest.values() if rec[2] is None]
    assert deleted, "the workload wrote no final tombstone"
    assert all(rec in got for rec in deleted)


def test_keyless_record_rejected_on_compacted_topic(cbroker):
    with RawClient(cbroker.port) as c:
        topic = compact_topic(c)
        resp = c.call(produce_req(topic, 0, make_batch([b"a", b"b"], keys=[b"k", None])), 9)
        pr = resp.responses[0].partition_responses[0]
        assert pr.error_code == 87, pr   # INVALID_RECORD
        assert produce_one(c, topic, b"k", b"v") == 0   # nothing of the refused batch was written
        # compressed batches are checked too
        from kafka_core import BatchBuilder
        from kafka_core.compression import compress

        b = BatchBuilder(1024, base_timestamp=int(time.time() * 1000))
        b.append(int(time.time() * 1000), None, b"no key")
        body = compress(1, bytes(b.records_view()))
        batch = bytearray(b.finish_compressed(1, body))
        resp = c.call(produce_req(topic, 0, batch), 9)
        assert resp.responses[0].partition_responses[0].error_code == 87
        # a delete topic takes keyless records
        create_topic(c, f"plain-{uuid.uuid4().hex[:6]}")


@pytest.mark.interop   # commits through confluent-kafka
def test_consumer_offsets_is_compacted(cbroker):
    from confluent_kafka import Consumer, TopicPartition

    with RawClient(cbroker.port) as c:
        topic = f"co-{uuid.uuid4().hex[:6]}"
        create_topic(c, topic)
        produce_one(c, topic, b"k", b"v")
    consumer = Consumer({"bootstrap.servers": cbroker.bootstrap, "group.id": f"g-{uuid.uuid4().hex[:6]}"})
    try:
        for i in range(300):
            consumer.commit(offsets=[TopicPartition(topic, 0, i % 2)], asynchronous=False)
        deadline = time.monotonic() + 60
        held = 0
        while time.monotonic() < deadline:
            with RawClient(cbroker.port) as c:
                held = sum(len(read_all(c, "__consumer_offsets", p)) for p in range(2))
            if held < 150:
                break
            time.sleep(0.5)
        assert held < 150, f"__consumer_offsets still holds {held} records after 300 commits"
        got = consumer.committed([TopicPartition(topic, 0)], timeout=10)
        assert got[0].offset == 1
    finally:
        consumer.close()
