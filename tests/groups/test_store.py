"""__consumer_offsets records and the offsets store: formats, reload, tombstones, restart, kill -9."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from kafka_broker.groups import GroupCoordinator, LogBackend, MemoryBackend, OffsetsStore
from kafka_broker.groups import records as R
from kafka_broker.groups.records import GroupRecord, MemberRecord, OffsetValue
from kafka_protocol.errors import ErrorCode as E

from .util import async_test, call, commit_req, form_group, hb_req, restarted, run, started, sync_all

ROOT = Path(__file__).resolve().parents[2]


def test_java_hash_and_partition_like_kafka() -> None:
    assert R.java_hash("") == 0
    assert R.java_hash("hello") == 99162322
    assert R.java_hash("polygenelubricants") == -(1 << 31)      # Utils.abs maps MIN_VALUE to 0
    assert R.partition_for("polygenelubricants", 50) == 0
    assert R.java_hash("Aa") == R.java_hash("BB")
    assert R.java_hash("\U0001F600") == (0xD83D * 31 + 0xDE00)   # UTF-16 code units
    assert R.partition_for("hello", 50) == 99162322 % 50


def test_key_and_value_formats() -> None:
    k = R.offset_key("grp", "topic", 7)
    assert k == b"\x00\x01\x00\x03grp\x00\x05topic\x00\x00\x00\x07"
    assert R.decode_key(k) == ("offset", "grp", "topic", 7)
    assert R.decode_key(R.group_key("grp")) == ("group", "grp", None, -1)
    v = OffsetValue(123, 4, "meta", 1000)
    raw = R.offset_value(v)
    assert raw[:2] == b"\x00\x03" and R.decode_offset_value(raw) == v
    v1 = OffsetValue(5, -1, "", 1000, 2000)
    assert R.offset_value(v1)[:2] == b"\x00\x01" and R.decode_offset_value(R.offset_value(v1)) == v1
    g = GroupRecord("consumer", 3, "range", "m1", 99,
                    [MemberRecord("m1", "i1", "c", "/h", 30000, 10000, b"sub", b"asg"),
                     MemberRecord("m2", None, "c", "/h", 30000, 10000, b"", b"")])
    assert R.decode_group_value(R.group_value(g)) == g
    with pytest.raises(R.RecordFormatError):
        R.decode_group_value(R.group_value(g)[:-3])


@async_test
async def test_store_reload_last_value_wins_and_tombstones_delete() -> None:
    backend = MemoryBackend(5)
    s = OffsetsStore(backend)
    await s.commit("a", [("t", 0, OffsetValue(1)), ("t", 1, OffsetValue(2))])
    await s.commit("a", [("t", 0, OffsetValue(3, metadata="x"))])
    await s.commit("b", [("u", 0, OffsetValue(9))])
    await s.store_group("b", GroupRecord("consumer", 2, "range", None, 5, []))
    await s.delete_offsets("a", [("t", 1)])
    await s.commit("c", [("t", 0, OffsetValue(1))])
    await s.delete_group("c")
    assert set(backend.batches) <= set(range(5))
    assert all(p == R.partition_for(g, 5) for g in "abc" for p in [s.partition_for(g)])
    s2 = OffsetsStore(backend)
    s2.load_sync()
    assert s2.committed("a") == {("t", 0): OffsetValue(3, metadata="x")}
    assert s2.committed("b") == {("u", 0): OffsetValue(9)}
    assert s2.committed("c") == {} and "c" not in s2.group_ids()
    assert s2.groups["b"].generation == 2


@async_test
async def test_coordinator_restart_restores_groups_and_offsets() -> None:
    coord, sched, backend = await started()
    joins = await form_group(coord, sched, 2)
    got = await sync_all(coord, "g", joins)
    await call(coord, "offset_commit", commit_req("g", {("t1", 0): 17}, generation=1,
                                                  member_id=joins[0].member_id), 8)
    coord2, _ = await restarted(coord, backend)
    g = coord2.groups["g"]
    assert g.state == "Stable" and g.generation_id == 1 and set(g.members) == set(got)
    assert {m: x.assignment for m, x in g.members.items()} == got
    for j in joins:
        assert (await call(coord2, "heartbeat", hb_req("g", j.member_id, 1), 4)).error_code == E.NONE
    assert coord2.describe_offsets("g")[("t1", 0)].offset == 17
    coord2.close()


def test_log_backend_round_trip(tmp_path: Path) -> None:
    pytest.importorskip("kafka_core._log")

    async def go() -> None:
        b = LogBackend(str(tmp_path), 3)
        s = OffsetsStore(b)
        s.load_sync()
        await s.commit("g", [("t", 0, OffsetValue(5)), ("t", 1, OffsetValue(6))])
        await s.commit("g", [("t", 0, OffsetValue(7))])
        await s.delete_offsets("g", [("t", 1)])
        await s.store_group("g", GroupRecord("consumer", 4, "range", None, 1, []))
        b.close()
        assert (tmp_path / f"__consumer_offsets-{R.partition_for('g', 3)}").is_dir()
        b2 = LogBackend(str(tmp_path), 3)
        s2 = OffsetsStore(b2)
        s2.load_sync()
        assert s2.committed("g") == {("t", 0): OffsetValue(7)}
        assert s2.groups["g"].generation == 4
        b2.close()
    run(go())


def test_committed_offsets_survive_kill_9(tmp_path: Path) -> None:
    """A child commits with fsync, prints each acknowledged offset, then is SIGKILLed."""
    pytest.importorskip("kafka_core._log")
    script = textwrap.dedent(f"""
        import asyncio, os, signal, sys
        from kafka_broker.groups import LogBackend, OffsetsStore
        from kafka_broker.groups.records import OffsetValue
        async def main():
            s = OffsetsStore(LogBackend({str(tmp_path)!r}, 4, fsync=True))
            s.load_sync()
            for i in range(50):
                await s.commit("g", [("t", i % 3, OffsetValue(i))])
                print(i, flush=True)
            os.kill(os.getpid(), signal.SIGKILL)
        asyncio.run(main())
    """)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "python"), str(ROOT / "src"),
                                                      os.environ.get("PYTHONPATH", "")]))
    p = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert p.returncode == -9, p.stderr
    acked = [int(x) for x in p.stdout.split()]
    assert acked == list(range(50))
    b = LogBackend(str(tmp_path), 4)
    s = OffsetsStore(b)
    s.load_sync()
    assert {k: v.offset for k, v in s.committed("g").items()} == {("t", 0): 48, ("t", 1): 49, ("t", 2): 47}
    b.close()


def test_backend_protocol_of_memory_backend() -> None:
    c = GroupCoordinator(OffsetsStore(MemoryBackend(1)))
    assert c.store.num_partitions == 1
