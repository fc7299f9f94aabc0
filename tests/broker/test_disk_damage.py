"""Damaged files on disk (issue 16): the broker starts, rebuilds what it can, serves every
acknowledged record before the damage, and says where the damage is.

1,000 records in 8 segments; the damage goes into the third one while the broker is down, after
a clean shutdown (its marker tells the broker to trust the files) unless said otherwise:
- the offset and time indexes garbled or zeroed, one deleted, one cut to a partial entry: the
  sanity check fails and they are rebuilt from the log (Kafka's LogSegment.sanityCheck): all
  1,000 served;
- the .log truncated mid-batch: the valid prefix is kept and the later segments are deleted, as
  Kafka's LogLoader does; appends continue at the new end;
- a producer snapshot of garbage: ignored (rebuilt from the log);
- 200 random bytes in the middle of the segment: not re-read at start (the marker vouches for
  it), so each read validates its first batch: the consumer gets every record before the damage
  and then an error naming the damaged offset (librdkafka's own when the garbage came after good
  batches of a slice, else the broker's CORRUPT_MESSAGE), where it used to stall silently there;
  a fetch at that offset answers CORRUPT_MESSAGE and the broker logs an ERROR naming the segment
  and position.
Read back with confluent-kafka from offset 0."""

from __future__ import annotations

import random
import signal
import time
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaError, TopicPartition
from kafka_bench.kafka_core_broker import KafkaCoreBroker
from kafka_broker.log.producer_state import PRODUCER_SNAPSHOT
from kafka_protocol.errors import ErrorCode as E

from .conftest import RawClient, create_topic, fetch_req, make_batch, produce_req

N = 1000
TOPIC = "dmg"


def _value(i: int) -> bytes:
    return b"r%04d-" % i + b"x" * 100


def _fill(b: KafkaCoreBroker) -> list[Path]:
    with RawClient(b.port) as c:
        create_topic(c, TOPIC, configs={"segment.bytes": "24000", "index.interval.bytes": "1000"})
        for i in range(N):
            pr = c.call(produce_req(TOPIC, 0, make_batch([_value(i)])), 9).responses[0].partition_responses[0]
            assert (pr.error_code, pr.base_offset) == (0, i)
    segs = _segments(b)
    assert len(segs) >= 6, segs
    return segs


def _segments(b: KafkaCoreBroker) -> list[Path]:
    return sorted((b.data_dir / "logs" / f"{TOPIC}-0").glob("*.log"))


def _consume(port: int, upto: int, timeout: float = 30) -> tuple[list[bytes], list[KafkaError]]:
    """Values read from offset 0 until upto arrived, an error came, or timeout passed."""
    c = Consumer({"bootstrap.servers": f"127.0.0.1:{port}", "group.id": "dmg", "enable.auto.commit": False,
                  "enable.partition.eof": False})
    c.assign([TopicPartition(TOPIC, 0, 0)])
    values: list[bytes] = []
    errors: list[KafkaError] = []
    deadline = time.monotonic() + timeout
    try:
        while len(values) < upto and not errors and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is None:
                continue
            if m.error():
                errors.append(m.error())
            else:
                values.append(m.value())
    finally:
        c.close()
    return values, errors


@pytest.fixture
def filled(tmp_path: Path):
    b = KafkaCoreBroker(data_dir=tmp_path).start()
    try:
        segs = _fill(b)
        assert b.stop(signal.SIGTERM) == 0
        yield b, segs[2]
    finally:
        b.stop(signal.SIGKILL)


def _garble(p: Path, rng: random.Random) -> None:
    p.write_bytes(bytes(rng.randrange(256) for _ in range(p.stat().st_size or 64)))


@pytest.mark.parametrize("damage", ["garbled indexes", "zeroed indexes", "deleted index",
                                    "index cut mid-entry", "garbage producer snapshot"])
def test_damaged_index_or_snapshot_is_rebuilt(filled, damage: str) -> None:
    b, seg = filled
    rng = random.Random(damage)
    index, timeindex = seg.with_suffix(".index"), seg.with_suffix(".timeindex")
    if damage == "garbled indexes":
        _garble(index, rng)
        _garble(timeindex, rng)
    elif damage == "zeroed indexes":
        index.write_bytes(bytes(index.stat().st_size))
        timeindex.write_bytes(bytes(timeindex.stat().st_size))
    elif damage == "deleted index":
        index.unlink()
    elif damage == "index cut mid-entry":
        assert index.stat().st_size >= 16
        with open(index, "r+b") as f:
            f.truncate(index.stat().st_size - 3)
    else:
        snap = seg.parent / PRODUCER_SNAPSHOT
        assert snap.exists()
        _garble(snap, rng)
    b.start()
    values, errors = _consume(b.port, N)
    assert not errors and values == [_value(i) for i in range(N)]
    with RawClient(b.port) as c:   # appends go on at the end
        pr = c.call(produce_req(TOPIC, 0, make_batch([b"after"])), 9).responses[0].partition_responses[0]
        assert (pr.error_code, pr.base_offset) == (0, N)


def test_segment_truncated_mid_batch_keeps_the_valid_prefix(filled) -> None:
    b, seg = filled
    later = [p for p in _segments(b) if p > seg]
    size = seg.stat().st_size
    with open(seg, "r+b") as f:
        f.truncate(size // 2 + 7)    # inside a batch (they are ~170 bytes)
    b.start()
    assert not any(p.exists() for p in later)     # the segments after the cut are gone
    with RawClient(b.port) as c:
        pr = c.call(produce_req(TOPIC, 0, make_batch([b"after"])), 9).responses[0].partition_responses[0]
    assert pr.error_code == 0
    end = pr.base_offset
    first = int(seg.stem)
    assert first < end < N
    values, errors = _consume(b.port, end + 1)
    assert not errors
    assert values == [_value(i) for i in range(end)] + [b"after"]
    assert "recovered" in b.log_text() or "truncat" in b.log_text()


@pytest.mark.parametrize("seed", [200, 1, 2, 3])
def test_garbage_inside_a_segment_is_an_error_naming_it_not_a_stall(filled, seed: int) -> None:
    b, seg = filled
    size = seg.stat().st_size
    with open(seg, "r+b") as f:
        f.seek(size // 2)
        f.write(bytes(random.Random(seed).randrange(256) for _ in range(200)))
    b.log_path.write_text("")
    b.start()
    values, errors = _consume(b.port, N, timeout=30)
    # every record before the damaged batch, in order, then an error, not silence
    assert errors, f"no error after {len(values)} records"
    assert int(seg.stem) < len(values) < N
    assert values == [_value(i) for i in range(len(values))]
    # librdkafka names the offset: its own parse error when the damage came inside a slice after
    # good batches, or the broker's CORRUPT_MESSAGE (INVALID_MSG, 2) when it fetched the damaged one
    assert errors[0].code() in (KafkaError.INVALID_MSG, KafkaError._NOT_IMPLEMENTED, KafkaError._BAD_MSG), errors[0]
    # the broker's answer for the damaged offset itself, and its ERROR line
    with RawClient(b.port) as c:
        r = c.call(fetch_req(TOPIC, 0, len(values)), 12).responses[0].partitions[0]
    assert r.error_code == E.CORRUPT_MESSAGE and not r.records, r
    line = next(ln for ln in b.log_text().splitlines() if " ERROR " in ln and "CORRUPT_MESSAGE" in ln)
    assert seg.name in line and "position" in line and f"offset {len(values)}" in line, line
