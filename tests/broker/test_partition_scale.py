"""Partition scale (issue 16): a 50,000-partition topic on one broker whose open-file limit is
4,096, far below the partition count.  Each partition held three fds (.log, .index, .timeindex)
from its creation, so a topic this size stopped at the 20,000 fd limit with KAFKA_STORAGE_ERROR.
Now a segment's files are opened on first use and an index keeps no fd (csrc/kc_segment.h): an
idle partition costs no fd and no mapping, one in use the fd of its active .log.

Shown with real clients: the topic is created, listed, produced to and fetched from on a sample of
partitions, and the broker restarts (clean, then after kill -9) with every record served again.
The requests name a few partitions each; they are answered fast with 50,000 around, since their
work is proportional to the partitions they name (ListOffsets and Fetch of one partition are timed)."""

from __future__ import annotations

import os
import random
import resource
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from kafka_bench.kafka_core_broker import KafkaCoreBroker
from kafka_protocol.messages import REQUESTS

from .conftest import RawClient

pytestmark = pytest.mark.slow

CREATE_TOPICS, METADATA, LIST_OFFSETS, FETCH = 19, 3, 2, 1
PARTITIONS = 50_000
FD_LIMIT = 4096
SAMPLE = 200


@contextmanager
def _fd_limit(n: int) -> Iterator[None]:
    """The soft RLIMIT_NOFILE of processes started inside (the broker inherits it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (n, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def _start(b: KafkaCoreBroker) -> float:
    t = time.monotonic()
    with _fd_limit(FD_LIMIT):
        b.start(timeout=120)
    assert b.proc is not None
    assert resource.prlimit(b.proc.pid, resource.RLIMIT_NOFILE)[0] == FD_LIMIT
    return time.monotonic() - t


def _fds(b: KafkaCoreBroker) -> int:
    assert b.proc is not None
    return len(os.listdir(f"/proc/{b.proc.pid}/fd"))


def _produce(port: int, topic: str, parts: list[int], tag: str) -> None:
    p = Producer({"bootstrap.servers": f"127.0.0.1:{port}", "acks": "all", "linger.ms": 5})
    errors: list[object] = []
    for i in parts:
        p.produce(topic, f"{tag}-{i}".encode(), partition=i,
                  on_delivery=lambda err, _m: errors.append(err) if err else None)
    assert p.flush(60) == 0 and not errors, errors


def _consume(port: int, topic: str, parts: list[int], expect: int) -> dict[int, list[bytes]]:
    c = Consumer({"bootstrap.servers": f"127.0.0.1:{port}", "group.id": "scale", "enable.auto.commit": False})
    c.assign([TopicPartition(topic, i, 0) for i in parts])
    got: dict[int, list[bytes]] = {}
    n, deadline = 0, time.monotonic() + 60
    try:
        while n < expect and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is None:
                continue
            assert m.error() is None, m.error()
            got.setdefault(m.partition(), []).append(m.value())
            n += 1
    finally:
        c.close()
    return got


def _timed_one_partition_requests(port: int, topic: str, part: int) -> tuple[float, float]:
    L, F = REQUESTS[LIST_OFFSETS], REQUESTS[FETCH]
    with RawClient(port, timeout=30) as c:
        t = time.monotonic()
        r = c.call(L(replica_id=-1, isolation_level=0, topics=[L.ListOffsetsTopic(
            name=topic, partitions=[L.ListOffsetsPartition(partition_index=part, timestamp=-1,
                                                            current_leader_epoch=-1)])]), 7)
        lo = time.monotonic() - t
        assert r.topics[0].partitions[0].error_code == 0 and r.topics[0].partitions[0].offset >= 1
        t = time.monotonic()
        r = c.call(F(replica_id=-1, max_wait_ms=0, min_bytes=1, max_bytes=1 << 20, isolation_level=0,
                     session_id=0, session_epoch=-1, topics=[F.FetchTopic(topic=topic, partitions=[
                         F.FetchPartition(partition=part, current_leader_epoch=-1, fetch_offset=0,
                                          log_start_offset=-1, partition_max_bytes=1 << 20)])],
                     forgotten_topics_data=[], rack_id=""), 12)
        fe = time.monotonic() - t
        assert r.responses[0].partitions[0].error_code == 0
    return lo, fe


def test_50000_partitions_past_the_fd_limit(tmp_path: Path) -> None:
    rng = random.Random(16)
    sample = sorted(rng.sample(range(PARTITIONS), SAMPLE))
    b = KafkaCoreBroker(data_dir=tmp_path)
    _start(b)
    try:
        C, M = REQUESTS[CREATE_TOPICS], REQUESTS[METADATA]
        with RawClient(b.port, timeout=120) as c:
            t = time.monotonic()
            r = c.call(C(topics=[C.CreatableTopic(name="wide", num_partitions=PARTITIONS, replication_factor=1)],
                         timeout_ms=100_000), 7).topics[0]
            created_in = time.monotonic() - t
            assert r.error_code == 0, r
            md = c.call(M(topics=[M.MetadataRequestTopic(name="wide")], allow_auto_topic_creation=False), 9)
            assert md.topics[0].error_code == 0 and len(md.topics[0].partitions) == PARTITIONS
        idle_fds = _fds(b)
        assert idle_fds < 100, idle_fds          # no fd per idle partition

        _produce(b.port, "wide", sample, "a")
        assert _fds(b) < idle_fds + SAMPLE + 100  # one .log per partition written, no index fd
        got = _consume(b.port, "wide", sample, SAMPLE)
        assert got == {i: [f"a-{i}".encode()] for i in sample}
        lo, fe = _timed_one_partition_requests(b.port, "wide", sample[0])
        assert lo < 1 and fe < 1, (lo, fe)

        # clean restart: nothing re-read; idle partitions stay unopened (the ones holding data
        # have their .log open, mapped to check its tail)
        t = time.monotonic()
        assert b.stop(signal.SIGTERM, timeout=120) == 0
        stopped_in = time.monotonic() - t
        started_in = _start(b)
        assert "recovered" not in b.log_text().split("storage closed cleanly")[-1]
        assert _fds(b) < idle_fds + SAMPLE + 100
        _produce(b.port, "wide", sample[:SAMPLE // 2], "b")

        # kill -9: every log is recovered; acknowledged records are all served
        b.stop(signal.SIGKILL)
        recovered_in = _start(b)
        got = _consume(b.port, "wide", sample, SAMPLE + SAMPLE // 2)
        want = {i: [f"a-{i}".encode()] + ([f"b-{i}".encode()] if i in sample[:SAMPLE // 2] else []) for i in sample}
        assert got == want
        assert _fds(b) < idle_fds + SAMPLE + 100
        print(f"create {created_in:.1f}s, clean stop {stopped_in:.1f}s, start {started_in:.1f}s, "
              f"start after kill -9 {recovered_in:.1f}s, idle fds {idle_fds}")
    finally:
        b.stop(signal.SIGKILL)
