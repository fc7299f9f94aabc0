"""Markers and the log (issue 12): per-segment ``.txnindex`` files in Kafka's format, a data
directory with the older per-partition index migrated, and compaction of a topic written by
transactional producers (kafka_client's transactional Producer): aborted records go, a
transaction's marker stays while records of it remain and goes after delete.retention.ms once
none do, and read_committed and read_uncommitted consumers both see exactly the latest
committed value of every key, before and after a restart.  Also: a torn tail takes its abort out
of the last segment's index, and the cleaner stops at the first unstable offset."""

from __future__ import annotations

import json
import struct
import tarfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kafka_broker.testing import EmbeddedBroker
from kafka_client import Consumer, Producer, TopicPartition
from kafka_protocol.messages import REQUESTS

from kafka_core._batch import BatchBuilder, iter_records, scan_batches

from .conftest import RawClient, create_topic, fetch_req, make_batch, produce_req
from .test_txn_log import fetch, marker, pid_of, produce, txn_batch

ENTRY = struct.Struct(">hqqqq")       # Kafka's AbortedTxn: version, pid, first, last, LSO
FIXTURE = Path(__file__).with_name("data") / "txnindex_v0.tar.gz"


@pytest.fixture
def broker() -> Iterator[EmbeddedBroker]:
    b = EmbeddedBroker(settings={"group.initial.rebalance.delay.ms": "0", "log.cleaner.backoff.ms": "100"}).start()
    yield b
    b.cleanup()


def txnindex(d: Path) -> dict[int, list[tuple[int, int, int, int, int]]]:
    """Every ``<base>.txnindex`` of a partition directory, parsed."""
    out = {}
    for f in sorted(d.glob("*.txnindex")):
        data = f.read_bytes()
        assert len(data) % ENTRY.size == 0, f
        out[int(f.name[:20])] = [ENTRY.unpack_from(data, i) for i in range(0, len(data), ENTRY.size)]
    return out


def aborted_at(c: RawClient, topic: str, offset: int) -> list[tuple[int, int]]:
    return [(t.producer_id, t.first_offset) for t in fetch(c, topic, offset=offset).aborted_transactions]


def delete_records(c: RawClient, topic: str, offset: int) -> None:
    D = REQUESTS[21]
    r = c.call(D(topics=[D.DeleteRecordsTopic(name=topic, partitions=[
        D.DeleteRecordsPartition(partition_index=0, offset=offset)])], timeout_ms=5000), 2)
    assert r.topics[0].partitions[0].error_code == 0


def test_each_segment_has_its_own_txnindex(broker: EmbeddedBroker) -> None:
    topic = f"txi-{uuid.uuid4().hex[:6]}"
    d = broker.data_dir / "logs" / f"{topic}-0"
    with RawClient(broker.port) as c:
        create_topic(c, topic, 1, {"segment.bytes": "600"})
        a, b = pid_of(c), pid_of(c)
        assert produce(c, topic, txn_batch([b"a0", b"a1"], a)) == 0                 # 0-1
        assert marker(c, topic, a, False) == [0]                                    # 2: abort
        for _ in range(6):                                                          # 3-8: rolls
            r = c.call(produce_req(topic, 0, make_batch([b"x" * 150])), 9)
            assert r.responses[0].partition_responses[0].error_code == 0
        assert produce(c, topic, txn_batch([b"b0", b"b1", b"b2"], b)) == 0          # 9-11
        assert marker(c, topic, b, False) == [0]                                    # 12: abort
        segs = sorted(int(f.name[:20]) for f in d.glob("*.log"))
        assert len(segs) >= 3 and not (d / "kc-aborted.txnindex").exists()
        last_seg = max(s for s in segs if s <= 12)
        expect = {0: [(0, a, 0, 2, 3)], last_seg: [(0, b, 9, 12, 13)]}
        assert txnindex(d) == expect
        # Kafka's rule: an aborted transaction is listed when its marker is at or after the
        # fetch offset and it began before the end of what is returned
        assert aborted_at(c, topic, 0) == [(a, 0), (b, 9)]
        assert aborted_at(c, topic, 2) == [(a, 0), (b, 9)]
        assert aborted_at(c, topic, 3) == [(b, 9)]
        assert aborted_at(c, topic, 13) == []
    broker.restart()
    with RawClient(broker.port) as c:
        assert txnindex(d) == expect
        assert aborted_at(c, topic, 0) == [(a, 0), (b, 9)]
        # DeleteRecords past the first segment: it goes with its .txnindex
        delete_records(c, topic, last_seg)
        assert not (d / f"{0:020d}.txnindex").exists() and not (d / f"{0:020d}.log").exists()
        assert txnindex(d) == {last_seg: [(0, b, 9, 12, 13)]}
        assert aborted_at(c, topic, last_seg) == [(b, 9)]


def test_a_data_dir_with_a_per_partition_index_is_migrated(tmp_path: Path) -> None:
    """The fixture was written by kafka-core before per-segment indexes (see
    data/make_txnindex_v0.py): its kc-aborted.txnindex is spread over the segments holding the
    markers, and read_committed fetches answer as they did."""
    with tarfile.open(FIXTURE) as t:
        t.extractall(tmp_path, filter="data")
    meta = json.loads((tmp_path / "logs" / "fixture.json").read_text())
    a, b = meta["a"], meta["b"]
    d = tmp_path / "logs" / "legacy-txn-0"
    assert (d / "kc-aborted.txnindex").stat().st_size == 2 * ENTRY.size
    br = EmbeddedBroker(data_dir=tmp_path).start()
    try:
        assert not (d / "kc-aborted.txnindex").exists()
        idx = txnindex(d)
        assert [(base, [e[1:4] for e in es]) for base, es in idx.items()] == [(0, [(b, 4, 6)]), (14, [(b, 15, 18)])]
        with RawClient(br.port) as c:
            p = fetch(c, "legacy-txn", offset=0)
            assert p.last_stable_offset == 19
            assert [(t.producer_id, t.first_offset) for t in p.aborted_transactions] == [(b, 4), (b, 15)]
            assert aborted_at(c, "legacy-txn", 7) == [(b, 15)]
            assert {bi.producer_id for bi, _ in batches(c, "legacy-txn") if bi.is_transactional} == {a, b}
        # read_committed: A's committed records and the plain ones, none of B's aborted two
        got = [v for _, v in consume(br.bootstrap, "legacy-txn", "read_committed")]
        assert got == [b"a0", b"a1", b"a2"] + [b"p%d" % i + b"x" * 100 for i in range(8)]
        br.restart()
        assert txnindex(d) == idx
    finally:
        br.cleanup()


def batches(c: RawClient, topic: str) -> list[tuple[Any, list[tuple[int, bytes | None, bytes | None]]]]:
    out: list[tuple[Any, list[tuple[int, bytes | None, bytes | None]]]] = []
    offset = 0
    while True:
        pd = c.call(fetch_req(topic, 0, offset, max_bytes=1 << 20), 12).responses[0].partitions[0]
        if pd.error_code == 1:                       # below the log start
            offset = pd.log_start_offset
            continue
        assert pd.error_code == 0, pd
        data = bytes(pd.records or b"")
        infos, _ = scan_batches(data, allow_partial=True, allow_compacted=True) if data else ([], 0)
        if not infos:
            return out
        for bi in infos:
            rs = iter_records(memoryview(data)[bi.position:bi.position + bi.size])
            out.append((bi, [(r.offset, None if r.key is None else bytes(r.key),
                              None if r.value is None else bytes(r.value)) for r in rs if r.offset >= offset]))
        offset = infos[-1].last_offset + 1
        if offset >= pd.high_watermark:
            return out


def consume(bootstrap: str, topic: str, isolation: str, timeout: float = 20) -> list[tuple[bytes, bytes]]:
    """(key, value) of every record ``isolation`` shows, from the beginning to the end offset."""
    with Consumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest", isolation_level=isolation,
                  fetch_max_wait_ms=100) as c:
        tp = TopicPartition(topic, 0)
        c.assign([tp])
        end = c.end_offsets([tp])[tp]
        out: list[tuple[bytes, bytes]] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and c.position(tp) < end:
            for recs in c.poll(0.2).values():
                out += [(r.key, r.value) for r in recs]
        return out


def compacted_txn_topic(broker: EmbeddedBroker) -> tuple[str, list[bytes], list[tuple[bytes, bytes]], list[int]]:
    """A compacted topic written by a transactional Producer (committed and aborted transactions
    over the same keys), filled until the cleaner removed the aborted records and, after
    delete.retention.ms, their markers.  Returns (topic, keys, the latest committed (key, value)
    in offset order, the COMMIT markers' offsets)."""
    topic = f"txc-{uuid.uuid4().hex[:6]}"
    d = broker.data_dir / "logs" / f"{topic}-0"
    with RawClient(broker.port) as c:
        create_topic(c, topic, 1, {"cleanup.policy": "compact", "segment.bytes": "1024",
                                   "min.cleanable.dirty.ratio": "0.01", "delete.retention.ms": "1500"})
    keys = [b"k%d" % i for i in range(6)]
    with Producer(broker.bootstrap, transactional_id=f"t-{uuid.uuid4().hex[:8]}", linger_ms=0) as p:
        p.init_transactions(30)
        for name, ks, commit in (("c1", keys, True), ("ab1", keys, False), ("c2", keys[:3], True),
                                 ("ab2", keys[3:], False)):
            p.begin_transaction()
            for k in ks:
                p.send(topic, name.encode() + b"-" + k, key=k)
            p.flush(30)                             # in the log before the abort
            (p.commit_transaction if commit else p.abort_transaction)(30)
    latest = [(k, b"c1-" + k) for k in keys[3:]] + [(k, b"c2-" + k) for k in keys[:3]]   # in offset order
    # both aborts are indexed before any cleaning: their records are still in the active segment
    assert sorted(e[3] - e[2] for es in txnindex(d).values() for e in es) == [3, 6]   # marker - first
    with RawClient(broker.port) as c:
        ctrl = [bi for bi, _ in batches(c, topic) if bi.is_control]
        assert len(ctrl) == 4
        commits = [bi.base_offset for bi, rs in batches(c, topic) if bi.is_control and rs[0][1] == b"\0\0\0\1"]
        assert len(commits) == 2
        # filler on three other keys rolls segments; the cleaner runs until the aborted records
        # are gone, the abort markers went after delete.retention.ms, and no .txnindex entry is left
        deadline = time.monotonic() + 45
        i = 0
        while True:
            for _ in range(5):
                i += 1
                r = c.call(produce_req(topic, 0, make_batch([b"f" * 200], keys=[b"f%d" % (i % 3)])), 9)
                assert r.responses[0].partition_responses[0].error_code == 0
            got = batches(c, topic)
            data = [(k, v) for bi, rs in got if not bi.is_control for _, k, v in rs if k in keys]
            markers = [bi.base_offset for bi, rs in got if bi.is_control and rs]
            if data == latest and markers == commits and not txnindex(d):
                break
            assert time.monotonic() < deadline, (data, markers, txnindex(d))
            time.sleep(0.3)
    return topic, keys, latest, commits


def test_compaction_with_transactions(broker: EmbeddedBroker) -> None:
    topic, keys, latest, commits = compacted_txn_topic(broker)
    d = broker.data_dir / "logs" / f"{topic}-0"
    # every COMMIT marker stays: records of both committed transactions remain
    for isolation in ("read_committed", "read_uncommitted"):
        assert [kv for kv in consume(broker.bootstrap, topic, isolation) if kv[0] in keys] == latest, isolation
    broker.restart()
    with RawClient(broker.port) as c:
        got = batches(c, topic)
        assert [bi.base_offset for bi, rs in got if bi.is_control and rs] == commits
        assert [(k, v) for bi, rs in got if not bi.is_control for _, k, v in rs if k in keys] == latest
        assert fetch(c, topic, offset=0).aborted_transactions == []
    assert not txnindex(d)
    assert [kv for kv in consume(broker.bootstrap, topic, "read_committed") if kv[0] in keys] == latest


def test_a_torn_tail_takes_its_abort_out_of_the_txnindex(broker: EmbeddedBroker) -> None:
    """A crash that tore the ABORT marker off the log: recovery truncates the log before it, the
    last segment's .txnindex loses the entry, the transaction is open again (as in Kafka, whose
    recoverSegment rebuilds the index from the batches that survive)."""
    topic = f"txt-{uuid.uuid4().hex[:6]}"
    d = broker.data_dir / "logs" / f"{topic}-0"
    with RawClient(broker.port) as c:
        create_topic(c, topic)
        a, b = pid_of(c), pid_of(c)
        assert produce(c, topic, txn_batch([b"a0"], a)) == 0                 # 0
        assert marker(c, topic, a, False) == [0]                             # 1: abort, survives
        assert produce(c, topic, txn_batch([b"b0", b"b1"], b)) == 0          # 2-3
        assert marker(c, topic, b, False) == [0]                             # 4: abort, torn off
        assert txnindex(d) == {0: [(0, a, 0, 1, 2), (0, b, 2, 4, 5)]}
    broker.kill()
    seg = d / f"{0:020d}.log"
    with open(seg, "r+b") as f:
        f.truncate(seg.stat().st_size - 5)                                   # into the last batch
    broker.start()
    with RawClient(broker.port) as c:
        p = fetch(c, topic, offset=0)
        assert p.high_watermark == 4 and p.last_stable_offset == 2           # b's transaction: open
        assert [(t.producer_id, t.first_offset) for t in p.aborted_transactions] == [(a, 0)]
        assert txnindex(d) == {0: [(0, a, 0, 1, 2)]}
        assert marker(c, topic, b, False) == [0]                             # 4 again
        assert txnindex(d) == {0: [(0, a, 0, 1, 2), (0, b, 2, 4, 5)]}
        assert aborted_at(c, topic, 2) == [(b, 2)]


def test_the_cleaner_stops_at_the_first_unstable_offset(broker: EmbeddedBroker) -> None:
    """An open transaction's records may still be aborted: nothing from its first offset on is
    cleaned (Kafka cleans up to the first unstable offset), so the committed value it would
    supersede stays; once it is aborted, its record goes and that value is still the latest."""
    topic = f"txu-{uuid.uuid4().hex[:6]}"

    def put(c: RawClient, key: bytes, value: bytes) -> None:
        r = c.call(produce_req(topic, 0, make_batch([value], keys=[key])), 9)
        assert r.responses[0].partition_responses[0].error_code == 0

    def keyed(c: RawClient) -> list[tuple[bytes | None, bytes | None]]:
        return [(k, v) for bi, rs in batches(c, topic) if not bi.is_control for _, k, v in rs]

    def wait(c: RawClient, ok: Any) -> list[tuple[bytes | None, bytes | None]]:
        deadline = time.monotonic() + 30
        while not ok(got := keyed(c)):
            assert time.monotonic() < deadline, got
            time.sleep(0.2)
        return got

    with RawClient(broker.port) as c:
        create_topic(c, topic, 1, {"cleanup.policy": "compact", "segment.bytes": "1024",
                                   "min.cleanable.dirty.ratio": "0.01", "delete.retention.ms": "0"})
        put(c, b"k", b"committed")
        for i in range(24):                                   # f0-f2 overwritten: cleanable
            put(c, b"f%d" % (i % 3), b"x" * 150)
        pid = pid_of(c)
        now = int(time.time() * 1000)                         # a transactional batch, left open
        tb = BatchBuilder(128, base_timestamp=now, producer_id=pid, producer_epoch=0, base_sequence=0,
                          attributes=0x10)
        assert tb.append(now, b"k", b"open")
        assert produce(c, topic, bytearray(tb.finish())) == 0
        for i in range(12):
            put(c, b"g%d" % (i % 3), b"y" * 150)
        # the cleaner ran below the open transaction (f-keys deduplicated) ...
        got = wait(c, lambda g: sum(k is not None and k.startswith(b"f") for k, _ in g) < 24)
        # ... and left the committed value the open transaction's record would supersede
        assert (b"k", b"committed") in got
        # the g-keys above the first unstable offset were not cleaned
        assert sum(k is not None and k.startswith(b"g") for k, _ in got) == 12
        assert marker(c, topic, pid, False) == [0]
        for i in range(12):
            put(c, b"h%d" % (i % 3), b"z" * 150)
        got = wait(c, lambda g: (b"k", b"open") not in g and sum(
            k is not None and k.startswith(b"g") for k, _ in g) < 12)
        assert (b"k", b"committed") in got


@pytest.mark.interop
def test_confluent_kafka_reads_the_compacted_transactional_topic(broker: EmbeddedBroker) -> None:
    """librdkafka over the cleaned log (batches with fewer records than offsets, markers gone
    or stamped with a delete horizon): read_committed and read_uncommitted both see exactly the
    latest committed values."""
    import confluent_kafka as ck  # a test dependency (./dev test): missing is a failure

    topic, keys, latest, _ = compacted_txn_topic(broker)
    for isolation in ("read_committed", "read_uncommitted"):
        c = ck.Consumer({"bootstrap.servers": broker.bootstrap, "group.id": f"ck-{uuid.uuid4().hex[:8]}",
                         "auto.offset.reset": "earliest", "isolation.level": isolation,
                         "enable.auto.commit": False, "enable.partition.eof": True})
        try:
            c.assign([ck.TopicPartition(topic, 0, ck.OFFSET_BEGINNING)])
            got: list[tuple[bytes, bytes]] = []
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                m = c.poll(0.5)
                if m is None:
                    continue
                if m.error():
                    assert m.error().code() == ck.KafkaError._PARTITION_EOF, m.error()
                    break
                got.append((m.key(), m.value()))
        finally:
            c.close()
        assert [kv for kv in got if kv[0] in keys] == latest, isolation
