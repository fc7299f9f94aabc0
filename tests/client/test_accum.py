"""kafka_core._accum: the producer's per-record path (no broker needed)."""

from __future__ import annotations

import concurrent.futures
import threading
from typing import Any, NamedTuple

import pytest
from hypothesis import given
from hypothesis import strategies as st
from kafka_client.partitioner import murmur2 as murmur2_py

from kafka_core import iter_records, scan_batches
from kafka_core._accum import (
    SKIP_MEMORY,
    SLOW_CLOSED,
    SLOW_MEMORY,
    SLOW_PARTITIONER,
    SLOW_RANGE,
    SLOW_TOO_LARGE,
    SLOW_TOPIC,
    WAIT_CALLBACK,
    WAIT_FUTURE,
    Accumulator,
    Batch,
    murmur2,
    partition_for_key,
)


class MD(NamedTuple):
    topic: str
    partition: int
    offset: int
    timestamp: int


class Hooks:
    def __init__(self) -> None:
        self.wakes = 0
        self.slow: list[tuple[Any, ...]] = []

    def wake(self) -> None:
        self.wakes += 1

    def on_slow(self, *args: Any) -> None:
        self.slow.append(args)


def make(**kw: Any) -> tuple[Accumulator, Hooks]:
    h = Hooks()
    a = Accumulator(wake=h.wake, slow=h.on_slow, **kw)
    return a, h


def records_of(b: Batch) -> list[Any]:
    data = b.finish()
    infos, _ = scan_batches(data)
    assert len(infos) == 1
    return iter_records(data)


@given(st.binary(max_size=64))
def test_murmur2_matches_reference(data: bytes) -> None:
    assert murmur2(data) == murmur2_py(data)


def test_murmur2_known_values() -> None:
    # Values from Apache Kafka's UtilsTest.testMurmur2.
    assert murmur2(b"21") == -973932308
    assert murmur2(b"foobar") == -790332482
    assert murmur2(b"a-little-bit-long-string") == -985981536
    assert murmur2("abc") == murmur2(b"abc")
    assert partition_for_key(b"foobar", 7) == (-790332482 & 0x7FFFFFFF) % 7


def test_records_land_in_one_batch_per_partition() -> None:
    a, h = make(batch_size=4096)
    a.set_topic("t", 3)
    for i in range(10):
        a.produce("t", b"v%d" % i, partition=i % 3, timestamp_ms=1000 + i, headers=[("h", b"x")] if i == 4 else None)
    assert h.wakes == 3  # one per new batch
    assert h.slow == []
    assert sorted(a.pending) == [("t", 0), ("t", 1), ("t", 2)]
    st0 = a.parts[("t", 0)]
    recs = records_of(st0.open)
    assert [r.value for r in recs] == [b"v0", b"v3", b"v6", b"v9"]
    assert [r.timestamp for r in recs] == [1000, 1003, 1006, 1009]
    st1 = a.parts[("t", 1)]
    recs = records_of(st1.open)
    assert recs[1].value == b"v4" and recs[1].headers == [("h", b"x")]
    assert a.used == 3 * 4096


def test_keyed_records_follow_murmur2_and_str_is_utf8() -> None:
    a, _ = make()
    a.set_topic("t", 5)
    keys = [b"k%d" % i for i in range(30)] + ["clé"]
    for k in keys:
        a.produce("t", "vålue", key=k)
    got: dict[bytes, int] = {}
    for (_, p), st_ in a.parts.items():
        for r in iter_records(st_.open.finish()):
            got[r.key] = p
            assert r.value == "vålue".encode()
    assert got == {(k.encode() if isinstance(k, str) else k): partition_for_key(k, 5) for k in keys}


def test_full_batch_is_closed_queued_and_wakes() -> None:
    a, h = make(batch_size=600)
    a.set_topic("t", 1)
    for _ in range(10):
        a.produce("t", b"x" * 100, partition=0)
    st_ = a.parts[("t", 0)]
    assert len(st_.queue) >= 1
    counts = [b.count for b in st_.queue] + [st_.open.count]
    assert sum(counts) == 10
    assert h.wakes == 1 + len(st_.queue)  # first batch, then one per append that closed one
    ids = [b.id for b in st_.queue] + [st_.open.id]
    assert ids == sorted(ids)


def test_sticky_partition_switches_after_batch_size() -> None:
    a, _ = make(batch_size=1000, seed=7)
    a.set_topic("t", 4)
    seen = []
    for _ in range(60):
        a.produce("t", b"y" * 100)
        seen.append(a.sticky_partition("t"))
    # about 1000 / (100 + overhead) records per partition before switching
    switches = sum(1 for x, y in zip(seen, seen[1:], strict=False) if x != y)
    assert 4 <= switches <= 12
    assert len({p for _, p in a.parts}) > 1


def test_sticky_uses_only_available_partitions() -> None:
    a, _ = make(batch_size=100, seed=3)
    a.set_topic("t", 6, available=[2, 5])
    for _ in range(40):
        a.produce("t", b"z" * 50)
    assert {p for _, p in a.parts} <= {2, 5}
    assert len({p for _, p in a.parts}) == 2


def test_slow_reasons() -> None:
    a, h = make(max_request_size=500, buffer_memory=20000, batch_size=16384)
    a.produce("unknown", b"x")
    a.set_topic("t", 2)
    a.produce("t", b"x", partition=2)
    a.produce("t", b"x" * 600)
    a.produce("t", b"x", partition=0)  # used 16384 < 20000: a batch of 16384
    a.produce("t", b"x", partition=1)  # still below: another batch, used 32768
    a.produce("t", b"x", partition=0)  # used >= buffer_memory: the slow path decides
    reasons = [s[0] for s in h.slow]
    assert reasons == [SLOW_TOPIC, SLOW_RANGE, SLOW_TOO_LARGE, SLOW_MEMORY]
    assert a.try_append("t", b"x", None, None, 0, None, 0, None, SKIP_MEMORY) == 0
    a.partitioner = lambda *args: 0
    assert a.try_append("t", b"x", None, None, None, None, 0, None, SKIP_MEMORY) == SLOW_PARTITIONER
    a.closed = True
    assert a.try_append("t", b"x", None, None, 0, None, 0, None) == SLOW_CLOSED


def test_waiters_resolved_per_batch() -> None:
    a, _ = make()
    a.set_topic("t", 1)
    seen: list[Any] = []
    futs = []
    for i in range(6):
        if i % 2:
            f: concurrent.futures.Future[Any] = concurrent.futures.Future()
            a.produce_future("t", b"v", None, None, 0, 100 + i, f)
            futs.append(f)
        elif i == 4:
            a.produce("t", b"v", partition=0, timestamp_ms=100 + i)  # fire-and-forget
        else:
            a.produce("t", b"v", partition=0, timestamp_ms=100 + i, on_delivery=lambda e, m: seen.append((e, m)))
    b = a.parts[("t", 0)].open
    assert len(b.waiters) == 5 and b.count == 6
    assert b.resolve("t", 0, 50, -1, None, MD) == 5
    assert [f.result().offset for f in futs] == [51, 53, 55]
    assert [f.result().timestamp for f in futs] == [101, 103, 105]
    assert seen == [(None, MD("t", 0, 50, 100)), (None, MD("t", 0, 52, 102))]
    assert b.resolve("t", 0, 50, -1, None, MD) == 0  # settled once


def test_waiter_errors_and_raising_callbacks() -> None:
    b = Batch(1024, 0)
    f: concurrent.futures.Future[Any] = concurrent.futures.Future()
    seen: list[Any] = []

    def bad(err: Any, md: Any) -> None:
        seen.append(err)
        raise RuntimeError("callback bug")

    b.append(0, None, b"a")
    b.add_waiter(WAIT_FUTURE, f, 0, 0)
    b.append(0, None, b"b")
    b.add_waiter(WAIT_CALLBACK, bad, 1, 0)
    err = ValueError("boom")
    assert b.resolve("t", 0, -1, -1, err, MD) == 2  # the callback's exception is logged only
    assert f.exception() is err and seen == [err]


def test_idempotent_sequences_assigned_when_closed() -> None:
    a, _ = make(batch_size=300, idempotent=True)
    a.producer_id, a.producer_epoch = 42, 3
    a.set_topic("t", 1)
    for _ in range(12):
        a.produce("t", b"x" * 50, partition=0)
    st_ = a.parts[("t", 0)]
    a.close_open(st_)
    seqs = [(b.base_seq, b.count) for b in st_.queue]
    assert seqs[0][0] == 0
    for (s0, c0), (s1, _) in zip(seqs, seqs[1:], strict=False):
        assert s1 == s0 + c0
    assert st_.next_seq == 12
    b = st_.queue[1]
    infos, _ = scan_batches(b.finish())
    assert (infos[0].producer_id, infos[0].producer_epoch, infos[0].base_sequence) == (42, 3, seqs[1][0])


def test_lock_is_reentrant_and_threads_append_safely() -> None:
    a, _ = make(batch_size=2048)
    a.set_topic("t", 2)
    with a:
        with a:
            assert a.owned()
        assert a.owned()
    assert not a.owned()
    with pytest.raises(RuntimeError):
        a.__exit__(None, None, None)

    def worker(w: int) -> None:
        for i in range(2000):
            a.produce("t", b"%d-%d" % (w, i), key=b"%d" % w)

    ts = [threading.Thread(target=worker, args=(w,)) for w in range(4)]
    for t in ts:
        t.start()
    # Meanwhile this thread closes batches, as the sender does.
    for _ in range(200):
        for st_ in list(a.parts.values()):
            a.close_open(st_)
    for t in ts:
        t.join()
    per_key: dict[bytes, list[int]] = {}
    for st_ in a.parts.values():
        if st_.open is not None:
            a.close_open(st_)
        for b in st_.queue:
            for r in iter_records(b.finish()):
                w, i = r.value.split(b"-")
                per_key.setdefault(w, []).append(int(i))
    assert {k: len(v) for k, v in per_key.items()} == {b"%d" % w: 2000 for w in range(4)}
    assert all(v == sorted(v) for v in per_key.values())  # per key (= partition) order kept


def test_compressed_finish_and_bad_input() -> None:
    b = Batch(4096, 10)
    for i in range(20):
        assert b.append(10 + i, b"k", b"v" * 50)
    from kafka_core.compression import compress, decompress

    section = bytes(b.records_view())
    packed = compress(1, section)
    data = b.finish_compressed(1, packed)
    infos, _ = scan_batches(data)
    assert infos[0].codec == 1 and infos[0].record_count == 20
    assert decompress(1, bytes(data[61:])) == section
    with pytest.raises(ValueError):  # TooLargeError: below the 61-byte header
        Batch(10, 0)
    small = Batch(100, 0)
    assert small.append(0, None, b"x")
    assert not small.append(0, None, b"x" * 80)  # full: False, not an error
    a, _ = make()
    a.set_topic("t", 1)
    with pytest.raises(TypeError):
        a.produce("t", 12345)  # not bytes-like
    assert a.parts == {} or all(st_.open is None for st_ in a.parts.values())


def test_batch_buffer_grows_up_to_capacity() -> None:
    b = Batch(10000, 0, initial=100)
    n = 0
    while b.append(n, None, b"y" * 90):
        n += 1
    assert 90 <= n <= 100  # grew from 100 bytes to about 10000
    recs = iter_records(b.finish())
    assert len(recs) == n and all(r.value == b"y" * 90 for r in recs)
    a, _ = make(batch_size=1 << 20)
    a.set_topic("t", 1)
    for i in range(3000):
        a.produce("t", b"%05d" % i + b"z" * 300, partition=0)
    st_ = a.parts[("t", 0)]
    assert not st_.queue and st_.open.count == 3000 and a.used == 1 << 20
    assert [r.value[:5] for r in iter_records(st_.open.finish())] == [b"%05d" % i for i in range(3000)]
