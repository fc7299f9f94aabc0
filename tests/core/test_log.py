"""kafka_core._log: the partition log through its Python API.

Batches are built with the pure-Python reference codec (kafka_protocol._pyrecords)
and read back with it, so the C log is checked against an independent oracle.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
from kafka_protocol import _pyrecords as py

from kafka_core import _errors as E
from kafka_core._log import AppendInfo, FileSlice, Log, Position, SegmentInfo

SMALL = {"segment_bytes": 4096, "index_interval_bytes": 256, "max_index_bytes": 1024}


def batch(n: int = 1, ts: int = 1000, value: bytes = b"v" * 40, key: bytes | None = b"k",
          attributes: int = 0) -> bytearray:
    return bytearray(py.make_batch([(ts + i, key, value, []) for i in range(n)], base_timestamp=ts,
                                   attributes=attributes))


def fill(log: Log, count: int, ts0: int = 1000) -> list[tuple[int, int]]:
    """Append count batches of 1-3 records; return their (first, last) offsets."""
    out = []
    for i in range(count):
        info = log.append(batch(1 + i % 3, ts=ts0 + 10 * i), now_ms=ts0)
        out.append((info.first_offset, info.last_offset))
    return out


def all_batches(log: Log) -> list[py.PyBatch]:
    """Every batch of the log, read through read() slice after slice."""
    out: list[py.PyBatch] = []
    off = log.start_offset
    while off < log.end_offset:
        with log.read(off, 1 << 20) as s:
            data = s.read_bytes()
        got = py.decode_batches(data)
        assert got, off
        out += got
        off = got[-1].base_offset + got[-1].last_offset_delta + 1
    return out


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "topic-0"


def test_open_empty_creates_directory_and_segment(path: Path) -> None:
    with Log(path, **SMALL) as log:
        assert path.is_dir()
        assert (log.start_offset, log.end_offset, log.size_bytes, log.segment_count) == (0, 0, 0, 1)
        assert (path / f"{0:020d}.log").exists()
        # indexes open lazily (Kafka's LazyIndex): no file, fd or mapping
        # until the first entry is written
        assert not (path / f"{0:020d}.index").exists()
        assert log.max_timestamp() == (-1, -1)
        assert log.lookup_time(0) is None
        s = log.read(0, 100)
        assert isinstance(s, FileSlice) and len(s) == 0 and not s
    assert (path / ".kafka_cleanshutdown").exists()
    assert not (path / f"{0:020d}.index").exists()


def test_index_files_appear_with_their_first_entry(path: Path) -> None:
    with Log(path, **SMALL) as log:
        while not (path / f"{0:020d}.index").exists():
            log.append(batch(3, value=b"v" * 100))
        assert (path / f"{0:020d}.index").stat().st_size == 1024  # preallocated while active
        assert (path / f"{0:020d}.timeindex").exists()
    assert (path / f"{0:020d}.index").stat().st_size % 8 == 0 < (path / f"{0:020d}.index").stat().st_size
    assert (path / f"{0:020d}.index").stat().st_size < 1024  # trimmed on clean close


def test_append_assigns_offsets_in_place(path: Path) -> None:
    with Log(path, **SMALL) as log:
        b = batch(3, ts=500)
        info = log.append(b, leader_epoch=7, now_ms=1)
        assert isinstance(info, AppendInfo)
        assert (info.first_offset, info.last_offset, info.records, info.batches) == (0, 2, 3, 1)
        assert (info.max_timestamp, info.offset_of_max_timestamp, info.log_append_time) == (502, 2, -1)
        assert (info.segment_base, info.position, info.flush_due) == (0, 0, False)
        b2 = batch(2)
        info = log.append(b2)
        assert (info.first_offset, info.last_offset, info.position) == (3, 4, len(b))
        parsed = py.decode_batch(bytes(b2))
        assert parsed.base_offset == 3 and parsed.partition_leader_epoch == 0
        assert py.decode_batch(bytes(b)).partition_leader_epoch == 7
        assert log.end_offset == 5
        assert log.size_bytes == len(b) + len(b2)


def test_append_two_batches_in_one_buffer_and_log_append_time(path: Path) -> None:
    with Log(path, **SMALL) as log:
        buf = batch(2, ts=10) + batch(3, ts=20)
        info = log.append(buf, log_append_time=99999)
        assert (info.first_offset, info.last_offset, info.batches, info.records) == (0, 4, 2, 5)
        assert info.log_append_time == 99999 and info.max_timestamp == 99999
        got = all_batches(log)
        assert [b.base_offset for b in got] == [0, 2]
        assert all(b.max_timestamp == 99999 and b.attributes & 0x08 for b in got)
        assert log.lookup_time(50) == (0, 99999, True)


def test_append_needs_writable_buffer_and_valid_batches(path: Path) -> None:
    with Log(path, **SMALL) as log:
        with pytest.raises(TypeError, match="writable"):
            log.append(bytes(batch()))
        bad = batch()
        bad[-1] ^= 1
        with pytest.raises(E.CrcMismatchError):
            log.append(bad)
        assert log.append(bad, verify_crc=False).last_offset == 0
        with pytest.raises(E.TruncatedBatchError):
            log.append(batch()[:-1])
        with pytest.raises(E.InvalidArgumentError):
            log.append(bytearray())
        assert log.end_offset == 1
        with pytest.raises(E.InvalidBatchLengthError):
            Log(path.parent / "other", max_batch_size=64).append(batch(3))


def test_append_error_names_the_bad_batch_and_writes_nothing(path: Path) -> None:
    """One pass validates every batch before anything is written; the error says which batch."""
    with Log(path, **SMALL) as log:
        good, bad = batch(2), batch(3)
        bad[-1] ^= 1
        buf = good + batch(1) + bad
        with pytest.raises(E.CrcMismatchError, match=rf"batch 2 at byte {len(good) + len(batch(1))}\b"):
            log.append(buf)
        assert log.end_offset == 0 and log.append(batch(1)).first_offset == 0
        empty = bytearray(py.make_batch([(1, b"k", b"v", [])], base_timestamp=1))
        empty[23:27] = (-1).to_bytes(4, "big", signed=True)   # lastOffsetDelta -1: owns no offset
        with pytest.raises(E.InvalidRecordCountError, match=r"batch 1 at byte "):
            log.append(batch(1) + empty, verify_crc=False)
        assert log.end_offset == 1


def test_append_keep_offsets(path: Path) -> None:
    with Log(path, **SMALL) as log:
        b = bytes(py.make_batch([(1, b"k", b"v", [])], base_timestamp=1, base_offset=10))
        assert log.append(b, assign_offsets=False).first_offset == 10
        assert log.end_offset == 11
        with pytest.raises(E.OffsetOutOfRangeError):
            log.append(b, assign_offsets=False)  # offsets may not go back
        assert log.start_offset == 0
        assert log.lookup(3).batch_base_offset == 10  # the gap resolves to the next batch


def test_control_batches_are_accepted(path: Path) -> None:
    with Log(path, **SMALL) as log:
        log.append(batch(attributes=0x30))
        assert all_batches(log)[0].attributes & 0x20


def test_roll_by_size_and_segments(path: Path) -> None:
    with Log(path, **SMALL) as log:
        fill(log, 200)
        segs = log.segments()
        assert len(segs) == log.segment_count > 5
        assert all(isinstance(s, SegmentInfo) for s in segs)
        for a, b in zip(segs, segs[1:], strict=False):
            assert a.next_offset == b.base_offset
            assert a.size_bytes <= 4096
            assert a.index_entries > 0
        assert segs[-1].next_offset == log.end_offset
        assert sum(s.size_bytes for s in segs) == log.size_bytes
        names = sorted(p.name for p in path.iterdir() if p.suffix == ".log")
        assert names == [f"{s.base_offset:020d}.log" for s in segs]
        for s in segs[:-1]:  # rolled: indexes trimmed to their entries
            assert (path / f"{s.base_offset:020d}.index").stat().st_size == 8 * s.index_entries
            assert (path / f"{s.base_offset:020d}.timeindex").stat().st_size == 12 * s.timeindex_entries


def test_roll_explicit_and_by_time(path: Path) -> None:
    with Log(path, **SMALL, roll_ms=1000, now_ms=0) as log:
        log.roll(now_ms=0)
        assert log.segment_count == 1  # empty active segment: no-op
        log.append(batch(ts=0), now_ms=0)
        log.append(batch(ts=500), now_ms=500)
        assert log.segment_count == 1
        log.append(batch(ts=1500), now_ms=1500)  # first batch of the segment is 1500 ms old
        assert log.segment_count == 2
        log.roll()
        assert log.segment_count == 3
        assert log.segments()[-1].base_offset == 3


def test_read_contract(path: Path) -> None:
    with Log(path, **SMALL) as log:
        spans = fill(log, 150)
        end = log.end_offset
        for off in range(0, end, 5):
            for max_bytes in (1, 100, 700, 5000):
                s = log.read(off, max_bytes)
                data = s.read_bytes()
                got = py.decode_batches(data)  # whole batches only, CRC checked
                first = got[0]
                assert first.base_offset <= off <= first.base_offset + first.last_offset_delta
                assert len(got) == 1 or len(data) <= max_bytes
                assert s.first_offset == first.base_offset
                assert s.last_offset == got[-1].base_offset + got[-1].last_offset_delta
                assert s.segment_base <= first.base_offset
                # ends on a boundary: the next batch would not have fitted (or ends the segment)
                nxt = s.last_offset + 1
                if nxt < end and len(got) >= 1 and max_bytes >= len(data):
                    pos = log.lookup(nxt)
                    if pos.segment_base == s.segment_base:
                        assert len(data) + pos.batch_size > max_bytes
                s.release()
        assert [(b.base_offset, b.base_offset + b.last_offset_delta) for b in all_batches(log)] == spans


def test_read_max_offset_and_range(path: Path) -> None:
    with Log(path, **SMALL) as log:
        fill(log, 30)
        end = log.end_offset
        assert len(log.read(end, 100)) == 0
        with pytest.raises(E.OffsetOutOfRangeError):
            log.read(end + 1, 100)
        with pytest.raises(E.OffsetOutOfRangeError):
            log.read(-1, 100)
        assert len(log.read(10, 1 << 20, max_offset=10)) == 0
        s = log.read(0, 1 << 20, max_offset=7)
        assert s.last_offset < 7 and len(s) > 0
        batches = py.decode_batches(s.read_bytes())
        assert all(b.base_offset + b.last_offset_delta < 7 for b in batches)
        # a batch straddling max_offset is not readable yet
        pos = log.lookup(7)
        if pos.batch_base_offset < 7:
            assert len(log.read(pos.batch_base_offset, 1 << 20, max_offset=7)) == 0


def test_slice_outlives_deleted_segment(path: Path) -> None:
    with Log(path, **SMALL) as log:
        fill(log, 100)
        s = log.read(0, 100)
        want = s.read_bytes()
        assert log.retention(now_ms=0, retention_bytes=0) > 0
        assert not (path / f"{0:020d}.log").exists()
        assert s.read_bytes() == want
        fd = s.fd
        os.fstat(fd)
        s.release()
        with pytest.raises(ValueError):
            s.read_bytes()


def test_lookup_every_offset(path: Path) -> None:
    with Log(path, **SMALL) as log:
        spans = fill(log, 120)
        for first, last in spans:
            for off in range(first, last + 1):
                p = log.lookup(off)
                assert isinstance(p, Position)
                assert (p.batch_base_offset, p.batch_last_offset) == (first, last)
        with pytest.raises(E.OffsetOutOfRangeError):
            log.lookup(log.end_offset)
        p = log.lookup(spans[-1][0])
        with open(path / f"{p.segment_base:020d}.log", "rb") as f:
            f.seek(p.position)
            raw = f.read(p.batch_size)
        assert py.decode_batch(raw).base_offset == spans[-1][0]


def test_lookup_time(path: Path) -> None:
    with Log(path, **SMALL) as log:
        fill(log, 100)  # batch i: timestamps 1000 + 10 i + (0 .. i % 3)
        assert log.lookup_time(0) == (0, 1000, True)
        off, ts, exact = log.lookup_time(1001)
        assert (ts, exact) == (1010, True) and log.lookup(off).batch_base_offset == off
        off, ts, exact = log.lookup_time(1502)  # batch 50 holds 1500, 1501, 1502
        assert ts == 1502 and log.lookup(off).batch_base_offset == off - 2
        assert log.lookup_time(10**9) is None
        assert log.max_timestamp() == (1990, log.end_offset - 1)
        # after delete_records the answer never precedes the start offset
        log.delete_records(off + 1)
        assert log.lookup_time(1000)[0] == off + 1


def test_lookup_time_compressed_batch_is_inexact(path: Path) -> None:
    with Log(path, **SMALL) as log:
        raw = py.encode_batch(py.PyBatch(attributes=1, last_offset_delta=2, base_timestamp=100,
                                         max_timestamp=300), records_section=b"\x00" * 30)
        log.append(batch(1, ts=50))
        log.append(bytearray(raw))
        assert log.lookup_time(200) == (1, 300, False)


def test_retention_by_time_never_loses_log_end(path: Path) -> None:
    with Log(path, **SMALL) as log:
        fill(log, 100)  # max ts 1990
        segs = log.segments()
        end = log.end_offset
        assert log.retention(segs[2].max_timestamp + 99, retention_ms=99) == 2
        assert log.start_offset == segs[2].base_offset
        assert log.retention(10**6, retention_ms=10**7) == 0
        n = log.segment_count
        assert log.retention(10**6, retention_ms=99) == n
        assert (log.end_offset, log.start_offset, log.size_bytes, log.segment_count) == (end, end, 0, 1)
        assert log.append(batch()).first_offset == end
    with Log(path, **SMALL) as log:
        assert (log.start_offset, log.end_offset) == (end, end + 1)


def test_retention_by_size_deletes_oldest_first(path: Path) -> None:
    with Log(path, **SMALL) as log:
        fill(log, 100)
        segs = log.segments()
        total = log.size_bytes
        keep = total - segs[0].size_bytes - segs[1].size_bytes
        assert log.retention(0, retention_bytes=keep) == 2
        assert log.size_bytes == keep
        assert [s.base_offset for s in log.segments()] == [s.base_offset for s in segs[2:]]
        assert log.retention(0, retention_bytes=keep - 1) == 0  # would go below the limit
        assert log.retention(0, retention_bytes=keep - segs[2].size_bytes) == 1
        assert log.retention(0, retention_bytes=-1) == 0


def test_truncate_to(path: Path) -> None:
    with Log(path, **SMALL) as log:
        spans = fill(log, 150)
        pos = log.lookup(100)
        log.truncate_to(100)
        assert log.end_offset == pos.batch_base_offset  # the batch holding 100 went whole
        kept = [s for s in spans if s[1] < pos.batch_base_offset]
        assert [(b.base_offset, b.base_offset + b.last_offset_delta) for b in all_batches(log)] == kept
        assert log.segments()[-1].next_offset == log.end_offset
        assert log.append(batch()).first_offset == log.end_offset - 1 == pos.batch_base_offset
        log.truncate_to(10**6)  # past the end: nothing
        assert log.end_offset == pos.batch_base_offset + 1
        log.truncate_to(0)
        assert (log.end_offset, log.segment_count, log.size_bytes) == (0, 1, 0)
    with Log(path, **SMALL) as log:
        assert log.end_offset == 0


def test_delete_records(path: Path) -> None:
    with Log(path, **SMALL) as log:
        fill(log, 100)
        n = log.segment_count
        segs = log.segments()
        log.delete_records(segs[3].base_offset + 1)
        assert log.start_offset == segs[3].base_offset + 1
        assert log.segment_count == n - 3
        with pytest.raises(E.OffsetOutOfRangeError):
            log.read(segs[3].base_offset, 100)
        with pytest.raises(E.OffsetOutOfRangeError):
            log.delete_records(log.end_offset + 1)
        log.delete_records(0)  # never moves back
        assert log.start_offset == segs[3].base_offset + 1
        start = log.start_offset
        log.close(clean=False)
    with Log(path, **SMALL) as log:  # persisted in kc-checkpoint
        assert log.start_offset == start


def test_flush_recovery_point_and_flush_due(path: Path) -> None:
    with Log(path, **SMALL, flush_interval_messages=5) as log:
        assert log.recovery_point == 0
        assert not log.append(batch(2)).flush_due
        assert log.unflushed_messages == 2
        assert log.append(batch(3)).flush_due
        log.flush()
        assert (log.recovery_point, log.unflushed_messages) == (5, 0)
        log.checkpoint()
        assert (path / "kc-checkpoint").read_text().split() == ["5", "0"]


def test_flush_concurrent_with_appends(path: Path) -> None:
    with Log(path, **SMALL) as log:
        stop = threading.Event()
        errors: list[BaseException] = []

        def flusher() -> None:
            while not stop.is_set():
                try:
                    log.flush()
                except BaseException as e:  # pragma: no cover - reported below
                    errors.append(e)

        t = threading.Thread(target=flusher)
        t.start()
        try:
            spans = fill(log, 300)
        finally:
            stop.set()
            t.join()
        assert not errors
        log.flush()
        assert log.recovery_point == log.end_offset == spans[-1][1] + 1


def test_reopen_clean(path: Path) -> None:
    with Log(path, **SMALL) as log:
        spans = fill(log, 120)
        segs = [(s.base_offset, s.size_bytes, s.next_offset, s.max_timestamp) for s in log.segments()]
    assert (path / ".kafka_cleanshutdown").exists()
    with Log(path, **SMALL) as log:
        assert not (path / ".kafka_cleanshutdown").exists()  # a crash from now on is detected
        r = log.recovery
        assert r["clean"] and r["segments_scanned"] == 0 and r["first_error"] == 0
        assert [(s.base_offset, s.size_bytes, s.next_offset, s.max_timestamp) for s in log.segments()] == segs
        assert [(b.base_offset, b.base_offset + b.last_offset_delta) for b in all_batches(log)] == spans
        assert log.recovery_point == log.end_offset
        assert log.append(batch()).first_offset == spans[-1][1] + 1


def test_reopen_unclean_truncates_torn_tail(path: Path) -> None:
    log = Log(path, **SMALL)
    spans = fill(log, 60)
    active = log.segments()[-1]
    log.close(clean=False)
    assert not (path / ".kafka_cleanshutdown").exists()
    logf = path / f"{active.base_offset:020d}.log"
    os.truncate(logf, active.size_bytes - 7)
    with Log(path, **SMALL) as log:
        r = log.recovery
        assert not r["clean"] and r["segments_scanned"] >= 1
        assert r["first_error"] == E.TruncatedBatchError.code
        assert r["bytes_truncated"] > 0
        assert [(b.base_offset, b.base_offset + b.last_offset_delta) for b in all_batches(log)] == spans[:-1]
        assert log.append(batch()).first_offset == spans[-1][0]


def test_missing_and_garbage_index_rebuilt(path: Path) -> None:
    with Log(path, **SMALL) as log:
        spans = fill(log, 120)
        segs = log.segments()
    (path / f"{segs[1].base_offset:020d}.index").unlink()
    (path / f"{segs[2].base_offset:020d}.timeindex").write_bytes(b"\x00" * 36)
    with Log(path, **SMALL) as log:
        assert log.segments()[1].index_entries == segs[1].index_entries
        for first, last in spans:
            assert log.lookup(last).batch_base_offset == first
        assert log.max_timestamp() == (1000 + 10 * 119 + 119 % 3, spans[-1][1])


def test_closed_log_raises_and_delete(path: Path) -> None:
    log = Log(path, **SMALL)
    fill(log, 10)
    log.close()
    log.close()  # idempotent
    with pytest.raises(E.ClosedError):
        log.append(batch())
    log = Log(path, **SMALL)
    log.delete()
    assert not path.exists()


def test_configure_changes_roll_and_flush_policy_live(path: Path) -> None:
    with Log(path, segment_bytes=1 << 20) as log:
        for _ in range(20):
            log.append(batch(5, value=b"x" * 200))
        assert log.segment_count == 1
        assert not log.append(batch()).flush_due
        log.configure(segment_bytes=4096, flush_interval_messages=1)
        for _ in range(20):
            info = log.append(batch(5, value=b"x" * 200))
            assert info.flush_due
        assert log.segment_count > 3
        assert all(s.size_bytes <= 4096 for s in log.segments()[1:-1])
        end = log.end_offset
    with Log(path) as log:  # everything still there, in order
        assert log.end_offset == end
        assert sum(b.last_offset_delta + 1 for b in all_batches(log)) == end


@pytest.mark.parametrize("damage", ["body", "header"])
def test_read_of_a_batch_damaged_under_a_clean_marker_names_its_position(path: Path, damage: str) -> None:
    """A clean shutdown's marker means the bytes are not re-read at open; a read starting at a
    damaged batch raises (CRC or header check) with the segment and position, and the batches
    around it are still served."""
    with Log(path, **SMALL) as log:
        spans = fill(log, 120)
        segs = log.segments()
        assert len(segs) >= 3
        seg = segs[1]
        victim = next(p for p in spans if p[0] > seg.base_offset)
        pos = log.lookup(victim[0]).position
    assert (path / ".kafka_cleanshutdown").exists()
    with open(path / f"{seg.base_offset:020d}.log", "r+b") as f:
        f.seek(pos + (70 if damage == "body" else 0))
        f.write(b"\xff" * 12)
    with Log(path, **SMALL) as log:
        assert log.recovery["clean"]
        with pytest.raises(E.KcError) as ei:
            log.read(victim[0], 1 << 20)
        assert f"position {pos} of segment {seg.base_offset:020d}.log" in str(ei.value)
        assert isinstance(ei.value, E.CorruptRecordError | E.CorruptIndexError)
        with log.read(spans[0][0], 1 << 20) as s:
            assert s.first_offset == 0
        after = next(p for p in spans if p[0] >= segs[2].base_offset)
        with log.read(after[0], 1 << 20) as s:
            assert s.first_offset == after[0]
