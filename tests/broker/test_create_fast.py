"""CreateTopics answered as Kafka's controller answers (issue 16): once the topic is durably in the
metadata file; its logs are made afterwards in the background (creating a partition's folder and
.log costs ~0.5 ms of ext4 work, so 10,000 of them took 5.5 s before the answer).

Until a partition's log exists Metadata lists it with LEADER_NOT_AVAILABLE (leader -1), and
Produce, Fetch and ListOffsets answer NOT_LEADER_OR_FOLLOWER, as Kafka's broker does for a
partition it has not become leader of yet.  A kill -9 at any point leaves the topic listed with
all its partitions (a start makes the logs still missing) or leaves no trace of it; a topic
deleted while its logs are being made leaves no folder; and a new log's index files, made on the
first append, serve lookups by offset and by timestamp across restarts."""

from __future__ import annotations

import signal
import struct
import time
from pathlib import Path
from typing import Any

import pytest
from kafka_bench.kafka_core_broker import KafkaCoreBroker
from kafka_protocol.errors import ErrorCode as E
from kafka_protocol.messages import REQUESTS

from .conftest import RawClient, create_topic, fetch_req, make_batch, produce_req, wait_for_leaders

CREATE_TOPICS, METADATA, LIST_OFFSETS, DELETE_TOPICS = 19, 3, 2, 20
BIG = 5000   # partitions: their logs take seconds to make here (~0.05 ms each even on tmpfs)


def _create(name: str, partitions: int, configs: dict[str, str] | None = None) -> Any:
    C = REQUESTS[CREATE_TOPICS]
    req = C(topics=[C.CreatableTopic(name=name, num_partitions=partitions, replication_factor=1,
                                     configs=[C.CreatableTopicConfig(name=k, value=v)
                                              for k, v in (configs or {}).items()])], timeout_ms=60_000)
    return req


def _metadata(c: RawClient, name: str) -> Any:
    M = REQUESTS[METADATA]
    return c.call(M(topics=[M.MetadataRequestTopic(name=name)], allow_auto_topic_creation=False), 9).topics[0]


def _list_offset(c: RawClient, name: str, partition: int, ts: int) -> Any:
    L = REQUESTS[LIST_OFFSETS]
    return c.call(L(replica_id=-1, isolation_level=0, topics=[L.ListOffsetsTopic(name=name, partitions=[
        L.ListOffsetsPartition(partition_index=partition, timestamp=ts, current_leader_epoch=-1)])]),
        7).topics[0].partitions[0]


def _folders(data: Path, name: str) -> int:
    return sum(1 for e in data.iterdir() if e.is_dir() and e.name.rsplit("-", 1)[0] == name)


def _wait(cond: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def test_answered_before_the_logs_exist_then_served(tmp_path: Path) -> None:
    data = tmp_path / "logs"
    with KafkaCoreBroker(data_dir=tmp_path) as b, RawClient(b.port, timeout=60) as c:
        t0 = time.monotonic()
        r = c.call(_create("big", BIG), 7).topics[0]
        answered = time.monotonic() - t0
        assert r.error_code == 0 and r.num_partitions == BIG, r
        # the last partition is made last: its log cannot exist yet
        md = _metadata(c, "big")
        assert md.error_code == 0 and len(md.partitions) == BIG
        last = md.partitions[-1]
        assert (last.partition_index, last.error_code, last.leader_id) == (BIG - 1, E.LEADER_NOT_AVAILABLE, -1), last
        pr = c.call(produce_req("big", BIG - 1, make_batch([b"early"])), 9).responses[0].partition_responses[0]
        assert pr.error_code == E.NOT_LEADER_OR_FOLLOWER, pr
        fr = c.call(fetch_req("big", BIG - 1, 0), 12).responses[0].partitions[0]
        assert fr.error_code == E.NOT_LEADER_OR_FOLLOWER, fr
        assert _list_offset(c, "big", BIG - 1, -1).error_code == E.NOT_LEADER_OR_FOLLOWER
        assert _folders(data, "big") < BIG
        # then every log is made, and each partition serves
        wait_for_leaders(c, "big", timeout=120)
        assert _folders(data, "big") == BIG
        for i in (0, BIG // 2, BIG - 1):
            pr = c.call(produce_req("big", i, make_batch([f"v{i}".encode()])), 9).responses[0].partition_responses[0]
            assert (pr.error_code, pr.base_offset) == (0, 0), pr
            assert f"v{i}".encode() in bytes(c.call(fetch_req("big", i, 0), 12).responses[0].partitions[0].records)
        # a clean restart finds them all
        print(f"{BIG} partitions answered in {answered:.2f}s")
    b.start()
    with RawClient(b.port, timeout=60) as c:
        md = wait_for_leaders(c, "big", timeout=5)
        assert len(md.partitions) == BIG
        assert "have no log yet" not in b.log_text()
        assert f"v{BIG - 1}".encode() in bytes(c.call(fetch_req("big", BIG - 1, 0), 12).responses[0].partitions[0].records)
    b.stop()


@pytest.mark.parametrize("delay", [0.0, 0.05, 0.5])
def test_kill9_during_a_big_create_then_the_start_is_consistent(tmp_path: Path, delay: float) -> None:
    """kill -9 while the create is asked, just answered, or its logs are half made: the next
    start has the topic with all its partitions usable (making the missing logs) or no trace."""
    data = tmp_path / "logs"
    b = KafkaCoreBroker(data_dir=tmp_path).start()
    try:
        with RawClient(b.port, timeout=60) as c:
            c.send(_create("big", BIG), 7)
            if delay:
                time.sleep(delay)
            b.stop(signal.SIGKILL)
        made = _folders(data, "big")
        b.start()
        with RawClient(b.port, timeout=60) as c:
            md = _metadata(c, "big")
            if md.error_code == E.UNKNOWN_TOPIC_OR_PARTITION:
                assert made == 0 and _folders(data, "big") == 0   # no trace
            else:
                assert md.error_code == 0 and len(md.partitions) == BIG, md.error_code
                wait_for_leaders(c, "big", timeout=120)
                assert _folders(data, "big") == BIG
                if made < BIG:
                    assert f"{BIG - made} listed partition(s) have no log yet" in b.log_text()
                for i in (0, BIG - 1):
                    pr = c.call(produce_req("big", i, make_batch([b"x"])), 9).responses[0].partition_responses[0]
                    assert (pr.error_code, pr.base_offset) == (0, 0), pr
        assert "belongs to no known topic" not in b.log_text()
    finally:
        b.stop(signal.SIGKILL)


def test_stop_during_background_creation_then_start_makes_the_rest(tmp_path: Path) -> None:
    data = tmp_path / "logs"
    b = KafkaCoreBroker(data_dir=tmp_path).start()
    try:
        with RawClient(b.port, timeout=60) as c:
            assert c.call(_create("big", BIG), 7).topics[0].error_code == 0
            _wait(lambda: _folders(data, "big") > 0, 30, "no log made")
        t0 = time.monotonic()
        assert b.stop(signal.SIGTERM, timeout=60) == 0
        assert time.monotonic() - t0 < 10
        made = _folders(data, "big")
        assert 0 < made < BIG, made       # it was under way, and stopped at its next slice
        b.start()
        assert f"{BIG - made} listed partition(s) have no log yet" in b.log_text()
        with RawClient(b.port, timeout=60) as c:
            wait_for_leaders(c, "big", timeout=120)
        assert _folders(data, "big") == BIG
    finally:
        b.stop(signal.SIGKILL)


def test_delete_during_background_creation_leaves_nothing(tmp_path: Path) -> None:
    data = tmp_path / "logs"
    D = REQUESTS[DELETE_TOPICS]
    with KafkaCoreBroker(data_dir=tmp_path) as b, RawClient(b.port, timeout=60) as c:
        assert c.call(_create("big", BIG), 7).topics[0].error_code == 0
        _wait(lambda: _folders(data, "big") > 0, 30, "no log made")
        r = c.call(D(topic_names=["big"], timeout_ms=60_000), 4).responses[0]
        assert r.error_code == 0, r
        assert _metadata(c, "big").error_code == E.UNKNOWN_TOPIC_OR_PARTITION
        time.sleep(0.5)     # the background creator would have gone on meanwhile
        assert _folders(data, "big") == 0
        assert not [e for e in data.iterdir() if e.name.endswith("-delete")]
        # the name is free again, and the new topic's logs are made
        create_topic(c, "big", 3)
        pr = c.call(produce_req("big", 2, make_batch([b"again"])), 9).responses[0].partition_responses[0]
        assert (pr.error_code, pr.base_offset) == (0, 0), pr
        assert _folders(data, "big") == 3
    b.start()
    with RawClient(b.port, timeout=60) as c:
        assert len(wait_for_leaders(c, "big", timeout=5).partitions) == 3
    assert "belongs to no known topic" not in b.log_text()
    b.stop()


def _first_batch_base(records: bytes) -> int:
    return int(struct.unpack_from(">q", records, 0)[0])


def test_lazily_made_index_files_serve_lookups_across_restarts(tmp_path: Path) -> None:
    """create, restart, produce, restart (clean, then kill -9), fetch by offset and by timestamp."""
    batches, per = 60, 5
    ts0 = int(time.time() * 1000) - 3_600_000
    b = KafkaCoreBroker(data_dir=tmp_path).start()
    try:
        with RawClient(b.port, timeout=60) as c:
            # an index entry for every batch; several segments
            create_topic(c, "lazy", 1, {"index.interval.bytes": "1", "segment.bytes": "4096"})
        part = tmp_path / "logs" / "lazy-0"
        assert sorted(p.suffix for p in part.iterdir() if p.name.startswith("0000")) == [".log"]
        b.restart()
        with RawClient(b.port, timeout=60) as c:
            wait_for_leaders(c, "lazy")
            for k in range(batches):
                batch = make_batch([f"r{k * per + i}".encode() * 20 for i in range(per)], ts=ts0 + k * per)
                pr = c.call(produce_req("lazy", 0, batch), 9).responses[0].partition_responses[0]
                assert (pr.error_code, pr.base_offset) == (0, k * per), pr
        segments = sorted(part.glob("*.log"))
        assert len(segments) > 3, segments
        assert (part / segments[-1].name.replace(".log", ".index")).exists()
        for how in (signal.SIGTERM, signal.SIGKILL):
            b.restart(how)
            with RawClient(b.port, timeout=60) as c:
                wait_for_leaders(c, "lazy")
                for off in (0, 7, 123, batches * per - 1):
                    fr = c.call(fetch_req("lazy", 0, off, max_bytes=1000), 12).responses[0].partitions[0]
                    assert fr.error_code == 0 and fr.high_watermark == batches * per, fr
                    base = _first_batch_base(bytes(fr.records))
                    assert base <= off < base + per, (how, off, base)
                    assert f"r{off}".encode() in bytes(fr.records)
                for off in (0, 42, 201, batches * per - 1):
                    e = _list_offset(c, "lazy", 0, ts0 + off)
                    assert (e.error_code, e.offset, e.timestamp) == (0, off, ts0 + off), (how, off, e)
                assert _list_offset(c, "lazy", 0, ts0 + batches * per).offset == -1
    finally:
        b.stop(signal.SIGKILL)
