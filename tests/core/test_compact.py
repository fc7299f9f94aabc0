"""kafka_core._log: log compaction (csrc/kc_compact.c) through Log.compact().

The log is read back through read() slices and decoded with kafka_core._batch
(compacted batches hold fewer records than offsets), and compared with a
model of what a compacted log must hold.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from kafka_core import _errors as E
from kafka_core import compression
from kafka_core._batch import scan_batches, validate_batches
from kafka_core._log import Log
from tests.core.compact_model import KeyVal, Row, expected, make, read_log

SMALL = {"segment_bytes": 2048, "index_interval_bytes": 128, "max_index_bytes": 4096}


def read_all(log: Log) -> list[Row]:
    """(offset, key, value) of every record, in log order."""
    return read_log(log)[0]


def fill(log: Log, model: list, n: int, ts: int = 1000, keys: int = 8, codec: int = 0) -> None:
    for i in range(n):
        recs: list[KeyVal] = []
        for j in range(1 + i % 3):
            x = len(model) + j
            key = None if x % 13 == 12 else b"k%d" % (x * 7 % keys)
            val = None if x % 5 == 4 else b"value-%d" % x
            recs.append((key, val))
        info = log.append(make(recs, ts + i, codec), now_ms=ts + i)
        model += [(info.first_offset + j, k, v) for j, (k, v) in enumerate(recs)]


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "compacted-0"


def test_keeps_latest_per_key_and_offsets(path: Path) -> None:
    model: list = []
    with Log(path, **SMALL) as log:
        fill(log, model, 80)
        assert log.segment_count > 3
        assert log.dirty_ratio(now_ms=2000) == 1.0
        assert log.cleaner_checkpoint == 0
        stats = log.compact(2000, delete_retention_ms=10**9)
        end = stats["end_offset"]
        assert end == log.cleaner_checkpoint == log.segments()[-1].base_offset
        assert stats["records_removed"] > 0 and stats["tombstones_removed"] == 0
        assert read_all(log) == expected(model, end, False)
        assert log.end_offset == len(model)
        assert log.dirty_ratio(now_ms=2000) == 0.0
        # every offset is still found: in its batch or the next one
        for o in range(log.start_offset, log.end_offset):
            assert log.lookup(o).batch_last_offset >= o
        # a second pass with nothing dirty changes nothing
        again = log.compact(2000, delete_retention_ms=10**9)
        assert again["end_offset"] == again["dirty_start"] == end
    with Log(path, **SMALL) as log:
        assert log.cleaner_checkpoint == end
        assert read_all(log) == expected(model, end, False)


def test_tombstones_go_after_delete_retention(path: Path) -> None:
    model: list = []
    with Log(path, **SMALL) as log:
        fill(log, model, 60, ts=1000)
        log.roll(now_ms=5000)
        young = log.compact(2000, delete_retention_ms=10_000)  # horizon -8000: every segment is newer
        assert young["tombstones_removed"] == 0
        assert read_all(log) == expected(model, len(model), False)
        fill(log, model, 30, ts=2000)
        log.roll(now_ms=5000)
        old = log.compact(100_000, delete_retention_ms=10_000)
        assert old["tombstones_removed"] > 0
        got = read_all(log)
        assert got == expected(model, len(model), True)
        assert all(v is not None for _, k, v in got if k is not None)


def test_min_compaction_lag_leaves_recent_segments(path: Path) -> None:
    model: list = []
    with Log(path, **SMALL) as log:
        fill(log, model, 100, ts=1000)
        segs = log.segments()
        assert len(segs) > 4
        lag_now = segs[1].max_timestamp + 100  # segments after the second are too recent
        clean, dirty = log.cleanable_bytes(lag_now, min_compaction_lag_ms=100)
        assert clean == 0 and 0 < dirty < log.size_bytes
        stats = log.compact(lag_now, min_compaction_lag_ms=100, delete_retention_ms=10**9)
        assert 0 < stats["end_offset"] <= segs[2].base_offset
        assert read_all(log) == expected(model, stats["end_offset"], False)


@pytest.mark.parametrize("codec", [1, 2, 3, 4], ids=["gzip", "snappy", "lz4", "zstd"])
def test_compressed_batches_through_codec_hooks(path: Path, codec: int) -> None:
    model: list = []
    with Log(path, **SMALL) as log:
        fill(log, model, 50, codec=codec)
        log.roll(now_ms=5000)
        stats = log.compact(10**7, delete_retention_ms=10)
        assert stats["compressed_kept_whole"] == 0
        assert stats["records_removed"] > 0 and stats["tombstones_removed"] > 0
        assert read_all(log) == expected(model, len(model), True)


def test_compressed_batches_without_codec_are_kept_whole(path: Path) -> None:
    model: list = []
    with Log(path, **SMALL) as log:
        fill(log, model, 20, codec=4)
        fill(log, model, 20)
        log.roll(now_ms=5000)
        stats = log.compact(10**7, delete_retention_ms=10, codec=None)
        assert stats["compressed_kept_whole"] > 0
        assert stats["tombstones_removed"] == 0  # keys inside compressed batches are unknown
        got = read_all(log)
        have = {o for o, _, _ in got}
        # every record of a compressed batch is still there; the latest of each key too
        assert all(o in have for o, _, _ in model[:len(model) // 2])
        assert all(o in have for o, _, _ in expected(model, len(model), False))


@pytest.mark.parametrize("step", [1, 2, 3])
def test_crash_in_the_middle_of_a_swap(path: Path, step: int) -> None:
    model: list = []
    log = Log(path, **SMALL)
    fill(log, model, 60)
    log.flush()
    with pytest.raises(E.KcError):
        log.compact(2000, delete_retention_ms=10**9, _crash_after=step)
    left = sorted(p.name for p in path.iterdir() if p.name.endswith((".cleaned", ".swap")))
    assert left, "the simulated crash leaves its files"
    log.close(clean=False)
    with Log(path, **SMALL) as log:
        assert not [p for p in path.iterdir() if p.name.endswith((".cleaned", ".swap"))]
        assert log.end_offset == len(model)
        got = read_all(log)
        have = {o: (k, v) for o, k, v in got}
        # nothing the cleaner would keep is lost, whichever side of the swap we are on
        for o, k, v in expected(model, len(model), False):
            assert have.get(o) == (k, v)
        stats = log.compact(2000, delete_retention_ms=10**9)
        assert read_all(log) == expected(model, stats["end_offset"], False)


def test_appends_and_reads_during_compaction(path: Path) -> None:
    model: list = []
    with Log(path, **SMALL) as log:
        fill(log, model, 100)
        log.roll(now_ms=5000)
        before = len(model)
        errors: list[BaseException] = []

        def appender() -> None:
            try:
                fill(log, model, 150, ts=3000)
            except BaseException as e:  # pragma: no cover - reported below
                errors.append(e)

        def reader() -> None:
            try:
                for _ in range(20):
                    read_all(log)
            except BaseException as e:  # pragma: no cover
                errors.append(e)

        threads = [threading.Thread(target=appender), threading.Thread(target=reader)]
        for t in threads:
            t.start()
        ends = [log.compact(2000, delete_retention_ms=10**9)["end_offset"] for _ in range(4)]
        for t in threads:
            t.join()
        assert not errors
        assert max(ends) >= before
        assert log.end_offset == len(model)
        assert read_all(log) == expected(model, log.cleaner_checkpoint, False)


def test_slice_of_swapped_out_segment_stays_readable(path: Path) -> None:
    model: list = []
    with Log(path, **SMALL) as log:
        fill(log, model, 40)
        s = log.read(0, 1 << 20)
        before = s.read_bytes()
        assert log.compact(2000, delete_retention_ms=10**9)["records_removed"] > 0
        on_disk = (path / f"{s.segment_base:020d}.log").read_bytes()
        assert on_disk[:len(before)] != before  # the segment file was replaced
        assert s.read_bytes() == before  # the old file, still open through the slice
        s.release()


def test_produce_path_keeps_the_strict_count_rule(path: Path) -> None:
    b = make([(b"k", b"v")])
    b[23:27] = (3).to_bytes(4, "big")  # lastOffsetDelta 3 for 1 record: a compacted shape
    from kafka_core._crc32c import crc32c
    b[17:21] = crc32c(bytes(b[21:])).to_bytes(4, "big")
    with pytest.raises(E.KcError):
        validate_batches(b)
    with pytest.raises(E.KcError):
        scan_batches(b)
    infos, _ = scan_batches(b, allow_compacted=True)
    assert infos[0].record_count == 1 and infos[0].last_offset_delta == 3
    with Log(path, **SMALL) as log:
        with pytest.raises(E.KcError):
            log.append(b)
        assert log.end_offset == 0
        # a replica may append it as is (offsets kept): it is a legal log batch
        info = log.append(bytes(b), assign_offsets=False)
        assert (info.first_offset, info.last_offset) == (0, 3)
        assert log.end_offset == 4


def test_map_budget(path: Path) -> None:
    model: list = []
    with Log(path, **SMALL) as log:
        fill(log, model, 150, keys=1000)
        with pytest.raises(E.KcError):
            log.compact(2000, max_map_bytes=64)
        total = 0
        for _ in range(20):  # a small map cleans a few segments per pass
            st = log.compact(2000, delete_retention_ms=10**9, max_map_bytes=24 * 128)
            if st["end_offset"] == st["dirty_start"]:
                break
            total += 1
        assert total > 1
        assert read_all(log) == expected(model, log.cleaner_checkpoint, False)


def test_close_refused_while_compacting(path: Path) -> None:
    log = Log(path, **SMALL)
    model: list = []
    fill(log, model, 10)
    started = threading.Event()

    class SlowCodec:
        def decompress(self, codec: int, data: memoryview) -> bytes:
            started.set()
            with pytest.raises(E.KcError):
                log.close()
            return compression.decompress(codec, data)

        compress = staticmethod(compression.compress)

    fill(log, model, 10, codec=1)
    log.roll(now_ms=5000)
    log.compact(2000, codec=SlowCodec())
    assert started.is_set()
    log.close()
    assert os.path.isdir(path)


def test_slice_held_over_the_swap_with_its_fd_evicted(path: Path, tmp_path: Path) -> None:
    """A slice of a segment the cleaner swaps out reads the old bytes afterwards, even with the
    segment fd pool at a tiny cap and other logs' fds churning meanwhile: the old segment's path
    now names the cleaned file, so it must keep its own fd (kc_segment_detach), not reopen."""
    from kafka_core import _log

    model: list = []
    cap = _log.fd_cap()
    _log.set_fd_cap(2)
    try:
        with Log(path, **SMALL) as log:
            fill(log, model, 80)
            held = log.read(0, 1 << 20)          # unpinned: no fd held
            before = held.read_bytes()
            assert not held.pinned
            log.compact(2000, delete_retention_ms=10**9)
            others = [Log(tmp_path / f"other-{i}", **SMALL) for i in range(4)]
            for o in others:                     # each append pins and evicts another fd
                fill(o, [], 5)
            assert held.read_bytes() == before
            held.release()
            assert read_all(log) == expected(model, log.cleaner_checkpoint, False)
            for o in others:
                o.close()
        assert _log.fd_stats()["evictions"] > 0
    finally:
        _log.set_fd_cap(cap)
