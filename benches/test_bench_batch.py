"""RecordBatch v2: validate_batches on a 1 MiB batch (CRC-bound), scan of
many small batches, assign_offsets, iter_records and BatchBuilder throughput."""

from __future__ import annotations

import itertools
import os

from bench_util import make_batch

from kafka_core._batch import BatchBuilder, assign_offsets, iter_records, scan_batches, validate_batches

BIG = make_batch(1 << 20, value_size=200)
SMALL = make_batch(16 << 10, value_size=200)


def test_validate_1mib_batch(benchmark, throughput) -> None:
    benchmark.group = "batch-validate"
    s = throughput(validate_batches, BIG, nbytes=len(BIG))
    assert s.batches == 1


def test_scan_64_batches_of_16kib(benchmark, throughput) -> None:
    benchmark.group = "batch-validate"
    buf = SMALL * 64
    infos, valid = throughput(scan_batches, buf, nbytes=len(buf))
    assert len(infos) == 64 and valid == len(buf)


def test_assign_offsets_1mib(benchmark) -> None:
    """Header writes only: cost is per batch, not per byte."""
    benchmark.group = "batch-assign"
    buf = bytearray(BIG)
    assert benchmark(assign_offsets, buf, 1000, 3) > 1000


def test_assign_offsets_log_append_time_1mib(benchmark, throughput) -> None:
    """A new LogAppendTime each call, so the CRC is recomputed every time."""
    benchmark.group = "batch-assign"
    buf = bytearray(BIG)
    clock = itertools.count(1_700_000_000_000)

    def stamp() -> int:
        return assign_offsets(buf, 1000, 3, next(clock))

    assert throughput(stamp, nbytes=len(buf)) > 1000


def test_iter_records_1mib(benchmark, throughput) -> None:
    benchmark.group = "batch-records"
    n = scan_batches(BIG)[0][0].record_count
    benchmark.extra_info["records"] = n
    recs = throughput(iter_records, BIG, nbytes=len(BIG))
    assert len(recs) == n


def test_build_1mib(benchmark, throughput) -> None:
    benchmark.group = "batch-records"
    value = os.urandom(200)

    def build() -> int:
        b = BatchBuilder(1 << 20, base_timestamp=0)
        i = 0
        while b.append(i, None, value):
            i += 1
        return len(b.finish())

    assert throughput(build, nbytes=1 << 20) > 0
