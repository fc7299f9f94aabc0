"""kafka_core._log: the cleaner and transactions (csrc/kc_compact_txn.c), through Log.compact().

Deterministic: every pass gets its own ``now_ms``.  An aborted transaction's records go in the
first pass, its ABORT marker stays in that pass with its entry in the cleaned segment's
``.txnindex`` (Kafka's 34-byte AbortedTxn); the next pass finds no record of it left and stamps
the marker with a delete horizon (KIP-534: attribute 0x40, baseTimestamp = now +
delete.retention.ms, the record's own timestamp unchanged); a pass after the horizon drops it.
A COMMIT marker stays while any record of its transaction does.
"""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from kafka_core import _errors as E
from kafka_core._batch import BatchBuilder, iter_records
from kafka_core._log import Log
from tests.core.compact_model import log_slices

SMALL = {"segment_bytes": 1024, "index_interval_bytes": 128, "max_index_bytes": 4096}
ENTRY = struct.Struct(">hqqqq")
DELETE_HORIZON = 0x40


def txn(pid: int, recs: list[tuple[bytes, bytes]], ts: int, seq: int) -> bytearray:
    b = BatchBuilder(4096, base_timestamp=ts, producer_id=pid, producer_epoch=0, base_sequence=seq, attributes=0x10)
    for k, v in recs:
        assert b.append(ts, k, v)
    return bytearray(b.finish())


def marker(pid: int, commit: bool, ts: int) -> bytearray:
    b = BatchBuilder(128, base_timestamp=ts, producer_id=pid, producer_epoch=0, base_sequence=-1, attributes=0x30)
    assert b.append(ts, struct.pack(">hh", 0, 1 if commit else 0), struct.pack(">hi", 0, 7))
    return bytearray(b.finish())


def plain(key: bytes, value: bytes, ts: int) -> bytearray:
    b = BatchBuilder(1024, base_timestamp=ts)
    assert b.append(ts, key, value)
    return bytearray(b.finish())


def batches(log: Log) -> list[tuple[object, list[tuple[int, int, bytes | None, bytes | None]]]]:
    """(BatchInfo, [(offset, timestamp, key, value)]) of every batch, in log order."""
    out = []
    for data, infos in log_slices(log):
        for bi in infos:
            rs = iter_records(data[bi.position:bi.position + bi.size], verify_crc=True)
            out.append((bi, [(r.offset, r.timestamp, r.key, r.value) for r in rs]))
    return out


def txnindex(path: Path) -> dict[int, list[tuple[int, int, int, int, int]]]:
    out = {}
    for f in sorted(path.glob("*.txnindex")):
        data = f.read_bytes()
        assert len(data) % 34 == 0
        out[int(f.name[:20])] = [ENTRY.unpack_from(data, i) for i in range(0, len(data), 34)]
    return out


def test_aborted_records_then_markers_go_two_passes(tmp_path: Path) -> None:
    path = tmp_path / "txn-0"
    A, B = 1000, 2000
    with Log(path, **SMALL) as log:
        log.append(txn(A, [(b"k%d" % i, b"committed-%d" % i) for i in range(4)], 100, 0), now_ms=100)  # 0-3
        log.append(txn(B, [(b"k%d" % i, b"aborted-%d" % i) for i in range(4)], 101, 0), now_ms=101)    # 4-7
        c1 = log.append(marker(A, True, 102), now_ms=102).first_offset                                 # 8
        ab = log.append(marker(B, False, 103), now_ms=103).first_offset                                # 9
        assert (c1, ab) == (8, 9)
        for i in range(12):                                   # rolls: the markers leave the active segment
            log.append(plain(b"f%d" % (i % 3), b"x" * 120, 104 + i), now_ms=104 + i)
        aborted = [(B, 4, 9, 10)]
        st = log.compact(1000, delete_retention_ms=500, aborted=aborted)
        assert st["end_offset"] > 9 and st["markers_removed"] == 0
        got = batches(log)
        recs = [(o, k, v) for _, rs in got for o, _, k, v in rs]
        assert [v for _, k, v in recs if k and k.startswith(b"k")] == [b"committed-%d" % i for i in range(4)]
        ctrl = [(bi, rs) for bi, rs in got if bi.is_control]
        assert [bi.base_offset for bi, _ in ctrl] == [8, 9]       # both kept: records of each were seen
        assert all(not bi.attributes & DELETE_HORIZON for bi, _ in ctrl)
        # the cleaned segment holding the abort marker keeps its entry, in Kafka's format
        first_seg = log.segments()[0].base_offset
        assert txnindex(path) == {first_seg: [(0, B, 4, 9, 10)]}

        # pass 2: B has no record left -> its marker gets a delete horizon; A's records stay, so its
        # COMMIT marker stays as it is; the entry is gone with B's records
        for i in range(8):
            log.append(plain(b"f%d" % (i % 3), b"y" * 120, 200 + i), now_ms=200 + i)
        st = log.compact(2000, delete_retention_ms=500, aborted=aborted)
        got = batches(log)
        ctrl = {bi.base_offset: (bi, rs) for bi, rs in got if bi.is_control}
        assert set(ctrl) == {8, 9}
        assert not ctrl[8][0].attributes & DELETE_HORIZON
        bi, rs = ctrl[9]
        assert bi.attributes & DELETE_HORIZON and bi.base_timestamp == 2500
        assert [(o, ts) for o, ts, _, _ in rs] == [(9, 103)]     # the record keeps its timestamp
        assert rs[0][2] == struct.pack(">hh", 0, 0) and rs[0][3] == struct.pack(">hi", 0, 7)
        assert txnindex(path) == {}

        # pass 3, before the horizon: the marker stays; pass 4, after it: gone
        for i in range(8):
            log.append(plain(b"f%d" % (i % 3), b"z" * 120, 300 + i), now_ms=300 + i)
        log.compact(2400, delete_retention_ms=500, aborted=aborted)
        assert 9 in {bi.base_offset for bi, _ in batches(log) if bi.is_control}
        for i in range(8):
            log.append(plain(b"f%d" % (i % 3), b"w" * 120, 400 + i), now_ms=400 + i)
        st = log.compact(2600, delete_retention_ms=500, aborted=aborted)
        assert st["markers_removed"] == 1
        got = batches(log)
        assert [bi.base_offset for bi, rs in got if bi.is_control and rs] == [8]
        assert [v for _, rs in got for _, _, k, v in rs if k and k.startswith(b"k")] == \
            [b"committed-%d" % i for i in range(4)]
        end = log.end_offset
    with Log(path, **SMALL) as log:                     # reopened: the same log
        assert log.end_offset == end
        assert [bi.base_offset for bi, rs in batches(log) if bi.is_control and rs] == [8]


def test_commit_marker_goes_once_its_records_are_superseded(tmp_path: Path) -> None:
    path = tmp_path / "txn-1"
    A = 1000
    with Log(path, **SMALL) as log:
        log.append(txn(A, [(b"k0", b"old0"), (b"k1", b"old1")], 100, 0), now_ms=100)   # 0-1
        log.append(marker(A, True, 101), now_ms=101)                                   # 2
        log.append(plain(b"k0", b"new0", 102), now_ms=102)                             # 3
        log.append(plain(b"k1", b"new1", 103), now_ms=103)                             # 4
        for i in range(12):
            log.append(plain(b"f%d" % (i % 3), b"x" * 120, 104 + i), now_ms=104 + i)
        log.compact(1000, delete_retention_ms=0)     # A's records are seen (then superseded): kept
        assert [bi.base_offset for bi, rs in batches(log) if bi.is_control and rs] == [2]
        for i in range(8):
            log.append(plain(b"f%d" % (i % 3), b"y" * 120, 200 + i), now_ms=200 + i)
        log.compact(2000, delete_retention_ms=0)     # none left: horizon 2000
        ctrl = [bi for bi, rs in batches(log) if bi.is_control and rs]
        assert [(bi.base_offset, bi.base_timestamp) for bi in ctrl] == [(2, 2000)]
        for i in range(8):
            log.append(plain(b"f%d" % (i % 3), b"z" * 120, 300 + i), now_ms=300 + i)
        assert log.compact(2000, delete_retention_ms=0)["markers_removed"] == 1   # horizon <= now
        assert not [bi for bi, rs in batches(log) if bi.is_control and rs]
        assert [(o, v) for _, rs in batches(log) for o, _, k, v in rs if k in (b"k0", b"k1")] == \
            [(3, b"new0"), (4, b"new1")]


@pytest.mark.parametrize("step", [1, 2, 3])
def test_a_swap_interrupted_keeps_a_consistent_txnindex(tmp_path: Path, step: int) -> None:
    """A crash in the swap: before the rename to .swap (1) the old segments and their .txnindex
    stand; after it (2, 3) reopening finishes the swap, the cleaned .txnindex included (it is not
    rebuilt from the log).  The entry the pass is given carries LSO 99 to tell the two apart."""
    path = tmp_path / "txn-2"
    B = 2000
    log = Log(path, **SMALL)
    log.append(txn(B, [(b"k%d" % i, b"aborted-%d" % i) for i in range(3)], 100, 0), now_ms=100)   # 0-2
    log.append(marker(B, False, 101), now_ms=101)                                                  # 3
    (path / f"{0:020d}.txnindex").write_bytes(ENTRY.pack(0, B, 0, 3, 4))    # as the broker wrote it
    for i in range(12):
        log.append(plain(b"f%d" % (i % 3), b"x" * 120, 102 + i), now_ms=102 + i)
    log.flush()
    with pytest.raises(E.KcError):
        log.compact(1000, delete_retention_ms=500, aborted=[(B, 0, 3, 99)], _crash_after=step)
    log.close(clean=False)
    with Log(path, **SMALL) as log:
        assert not list(path.glob("*.swap")) and not list(path.glob("*.cleaned"))
        assert txnindex(path) == {0: [(0, B, 0, 3, 4 if step == 1 else 99)]}
        left = [k for _, rs in batches(log) for _, _, k, _ in rs if k and k.startswith(b"k")]
        assert left == ([b"k0", b"k1", b"k2"] if step == 1 else [])
