"""Bounded admin work (issue 16): a CreateTopics of 50,000 partitions held the storage worker for
minutes, an unrelated one-partition CreateTopics timed out after 60 s, and a SIGTERM during a
CreatePartitions of 100,000 took 78 s and left thousands of orphan partition folders.

Now the storage worker creates partitions in slices (other work runs between two).  CreateTopics is
answered once the topic is in the metadata and its logs are made in the background, one slice at a
time (test_create_fast.py); a shutdown stops that at its next slice and the next start makes the
rest.  A CreatePartitions not done within its timeout_ms is answered REQUEST_TIMED_OUT and goes on
in the background (Kafka's semantics); a shutdown stops it at its next slice and removes what it
made: on restart every partition folder is one the metadata lists."""

from __future__ import annotations

import signal
import time
import uuid
from pathlib import Path

from kafka_bench.kafka_core_broker import KafkaCoreBroker
from kafka_protocol.errors import ErrorCode as E
from kafka_protocol.messages import REQUESTS

from .conftest import RawClient, create_topic, make_batch, produce_req

CREATE_TOPICS, CREATE_PARTITIONS, METADATA = 19, 37, 3


def _create_topics(c: RawClient, name: str, partitions: int, timeout_ms: int) -> object:
    C = REQUESTS[CREATE_TOPICS]
    return c.call(C(topics=[C.CreatableTopic(name=name, num_partitions=partitions, replication_factor=1)],
                    timeout_ms=timeout_ms), 7).topics[0]


def _small_create_with_a_real_client(port: int) -> float:
    """Seconds a confluent-kafka AdminClient takes to create a one-partition topic."""
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": f"127.0.0.1:{port}"})
    t = time.monotonic()
    fut = admin.create_topics([NewTopic(f"small-{uuid.uuid4().hex[:6]}", 1, 1)],
                              operation_timeout=30, request_timeout=60)
    for f in fut.values():
        f.result(60)
    return time.monotonic() - t


def _auto_create(port: int, topic: str) -> float:
    """Seconds until a Metadata request with auto-creation lists topic (auto.create.topics.enable
    is Kafka's default, true)."""
    M = REQUESTS[METADATA]
    t = time.monotonic()
    with RawClient(port, timeout=60) as c:
        while time.monotonic() - t < 60:
            resp = c.call(M(topics=[M.MetadataRequestTopic(name=topic)], allow_auto_topic_creation=True), 9)
            if resp.topics[0].error_code == 0 and resp.topics[0].partitions:
                break
            time.sleep(0.1)
    return time.monotonic() - t


def _partition_counts(port: int, topic: str) -> int:
    """Partitions of topic in the broker's metadata (0: no such topic)."""
    M = REQUESTS[METADATA]
    with RawClient(port, timeout=60) as c:
        resp = c.call(M(topics=[M.MetadataRequestTopic(name=topic)], allow_auto_topic_creation=False), 9)
    t = resp.topics[0]
    return 0 if t.error_code == E.UNKNOWN_TOPIC_OR_PARTITION else len(t.partitions)


def _folders(data_dir: Path, topic: str) -> int:
    return sum(1 for e in data_dir.iterdir() if e.is_dir() and e.name.rsplit("-", 1)[0] == topic)


def _stop_timed(b: KafkaCoreBroker) -> tuple[int | None, float]:
    t = time.monotonic()
    code = b.stop(signal.SIGTERM, timeout=60)
    return code, time.monotonic() - t


def test_small_create_completes_while_a_50000_partition_create_runs(tmp_path: Path) -> None:
    data = tmp_path / "logs"
    with KafkaCoreBroker(data_dir=tmp_path) as b:
        with RawClient(b.port, timeout=60) as c:
            t = time.monotonic()
            big = _create_topics(c, "big", 50_000, timeout_ms=300)
            answered = time.monotonic() - t
        assert big.error_code == 0, big     # in the metadata; the logs come in the background
        assert answered < 15, f"the create was answered after {answered:.1f}s"
        took = _small_create_with_a_real_client(b.port)
        assert took < 10, f"a one-partition create took {took:.1f}s behind the big one"
        with RawClient(b.port, timeout=60) as c:
            t = time.monotonic()
            create_topic(c, "small-raw", 1)      # answered, then its leader: its log made in turn
            took = time.monotonic() - t
            assert took < 10, f"a one-partition topic had its leader after {took:.1f}s behind the big one"
            pr = c.call(produce_req("small-raw", 0, make_batch([b"x"])), 9).responses[0].partition_responses[0]
            assert pr.error_code == 0, pr
        took = _auto_create(b.port, f"auto-{uuid.uuid4().hex[:6]}")
        assert took < 10, f"a metadata auto-create took {took:.1f}s behind the big one"
        assert _folders(data, "big") < 50_000        # still going on in the background
        code, stopped_in = _stop_timed(b)
        assert code == 0 and stopped_in < 10, (code, stopped_in)
        made = _folders(data, "big")
        b.start()
        n = _partition_counts(b.port, "big")
        assert n == 50_000, n                        # listed whole; the start makes the missing logs
        lines = [ln for ln in b.log_text().splitlines() if "storage:" in ln]
        assert f"storage: {n - made} listed partition(s) have no log yet; creating them" in lines[-1], lines
        deadline = time.monotonic() + 30
        while _folders(data, "big") == made and time.monotonic() < deadline:
            time.sleep(0.1)
        assert made < _folders(data, "big") <= n
        assert "belongs to no known topic" not in b.log_text()


def test_sigterm_during_create_partitions_100000_restarts_consistent(tmp_path: Path) -> None:
    data = tmp_path / "logs"
    P = REQUESTS[CREATE_PARTITIONS]
    with KafkaCoreBroker(data_dir=tmp_path) as b:
        with RawClient(b.port, timeout=60) as c:
            assert _create_topics(c, "grow", 1, timeout_ms=30000).error_code == 0
            r = c.call(P(topics=[P.CreatePartitionsTopic(name="grow", count=100_000, assignments=None)],
                         timeout_ms=300, validate_only=False), 3).results[0]
        assert r.error_code == E.REQUEST_TIMED_OUT, r
        time.sleep(0.3)
        assert _folders(data, "grow") > 1            # it was going on when the broker was stopped
        code, stopped_in = _stop_timed(b)
        assert code == 0 and stopped_in < 10, (code, stopped_in)
        b.start()
        n = _partition_counts(b.port, "grow")
        assert n in (1, 100_000), n
        assert _folders(data, "grow") == n
        assert "belongs to no known topic" not in b.log_text()
