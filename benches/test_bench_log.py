"""Partition log: append throughput against plain write(2), offset lookup
and read() (file slice) cost in a log of 10^6 batches.

append: each round appends 16 MiB (16 KiB or 1 MiB batches, CRC verified,
offsets assigned in place) to a log; the baseline writes the same bytes
with os.write to a file.  extra_info["vs_write"] = log MB/s / write MB/s.
lookup/read: ns per call from Python (the C lookup is a part of that).
"""

from __future__ import annotations

import os
import random
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from bench_util import make_batch

from kafka_core._log import Log

ROUND_BYTES = 16 << 20
ROUNDS = 12


@pytest.mark.parametrize("batch_bytes", [16 << 10, 1 << 20], ids=["16KiB", "1MiB"])
def test_append_vs_write(benchmark, batch_bytes: int) -> None:
    """Log rounds are timed by the benchmark; a write(2) round of the same
    bytes runs (timed by hand) before each, so both see the same machine
    state (the host is shared and page-cache writeback is noisy).  The
    ratio compares the fastest round of each."""
    benchmark.group = "log-append"
    batch = make_batch(batch_bytes, value_size=1000)
    bufs = [bytearray(batch) for _ in range(ROUND_BYTES // len(batch))]
    nbytes = sum(map(len, bufs))
    writes: list[float] = []
    with tempfile.TemporaryDirectory() as d:
        log = Log(Path(d) / "bench-0", segment_bytes=256 << 20)
        fd = os.open(Path(d) / "plain", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)

        def write_round() -> None:
            t = time.perf_counter()
            for b in bufs:
                os.write(fd, b)
            writes.append(time.perf_counter() - t)

        def append_round() -> None:
            for b in bufs:
                log.append(b)

        benchmark.extra_info["bytes"] = nbytes
        try:
            benchmark.pedantic(append_round, setup=write_round, rounds=ROUNDS, iterations=1)
        finally:
            os.close(fd)
            log.delete()
    best_log, best_write = benchmark.stats.stats.min, min(writes)
    benchmark.extra_info["log_MB/s"] = round(nbytes / best_log / 1e6, 1)
    benchmark.extra_info["write_MB/s"] = round(nbytes / best_write / 1e6, 1)
    benchmark.extra_info["vs_write"] = round(best_write / best_log, 3)
    print(f"\nappend {batch_bytes} B batches (best round): log {nbytes / best_log / 1e6:.0f} MB/s, "
          f"write(2) {nbytes / best_write / 1e6:.0f} MB/s, ratio {best_write / best_log:.2f}")


@pytest.fixture(scope="module")
def million_batch_log():
    """10^6 one-record batches (~90 bytes each), appended 1000 per call."""
    d = tempfile.TemporaryDirectory()
    log = Log(Path(d.name) / "lookup-0", segment_bytes=16 << 20)
    one = make_batch(100, value_size=10)
    assert len(one) < 100
    chunk = bytearray(bytes(one) * 1000)
    for _ in range(1000):
        log.append(chunk, verify_crc=False, now_ms=0)
    assert log.end_offset == 1_000_000
    yield log
    log.delete()
    d.cleanup()


def ns_per_offset(benchmark, run: Callable[[list[int]], None]) -> float:
    """run(offsets) for 1000 random offsets of the million-batch log, 20 timed rounds (group
    log-lookup): the mean ns per offset, kept in extra_info too."""
    benchmark.group = "log-lookup"
    offsets = [random.randrange(1_000_000) for _ in range(1000)]
    benchmark.pedantic(run, args=(offsets,), rounds=20, iterations=1)
    ns = benchmark.stats.stats.mean / len(offsets) * 1e9
    benchmark.extra_info["ns/op"] = round(ns, 1)
    return ns


def test_lookup_in_million_batches(benchmark, million_batch_log) -> None:
    lookup = million_batch_log.lookup

    def run(offsets: list[int]) -> None:
        for o in offsets:
            lookup(o)

    benchmark.extra_info["segments"] = million_batch_log.segment_count
    ns = ns_per_offset(benchmark, run)
    print(f"\nlookup: {ns:.0f} ns/op over {million_batch_log.segment_count} segments")


def test_read_slice_in_million_batches(benchmark, million_batch_log) -> None:
    read = million_batch_log.read

    def run(offsets: list[int]) -> None:
        for o in offsets:
            read(o, 1 << 20).release()

    ns = ns_per_offset(benchmark, run)
    print(f"\nread(offset, 1 MiB): {ns:.0f} ns/op")
