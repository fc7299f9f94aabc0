"""Ten kill -9 cycles under the mixed load of issue 16, through the crash-loop benchmark
(benches/system/bench_crash_loop.py, whose 100-cycle run is the documented command): acks=all
producers, a committing consumer group of two subscribed members (a member joining under load
before each kill, one replaced after each restart: rebalances with commits in flight, and on the
restarted coordinator), a compacted topic being cleaned and a topic whose segments retention
deletes, all in flight at each SIGKILL.  After every restart: every acknowledged record is there,
committed offsets never moved back, the next members resume at the committed offsets, the latest
acknowledged value of every compacted key is readable, and the retained topic's log start only
moves forward with nothing below it served.  The benchmark fails itself if the cleaner removed
nothing, no segment was deleted, a member was never given partitions, no partition moved between
members or no member joining after a restart got any, so the checks cannot pass vacuously."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.interop]   # confluent-kafka clients

BENCH = Path(__file__).resolve().parents[2] / "benches" / "system" / "bench_crash_loop.py"


def test_ten_kill_9_cycles_under_mixed_load_lose_nothing_acknowledged(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("bench_crash_loop", BENCH)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    res = mod.run(10, partitions=4, run_s=(0.3, 0.9), rate=5_000, data_dir=tmp_path, consumers="group")
    assert res["problems"] == [], res
    assert res["acked"] > 10 * 500, res            # the load really ran in every cycle
    assert res["lost"] == 0 and res["found"] == res["acked"], res
    assert res["commits_checked"] > 0 and res["offsets_moved_back"] == 0, res
    assert res["resumes_checked"] > 0, res
    assert len(res["assigned_per_member"]) == 3 and res["rebalanced_after_restart_cycles"] > 0, res
    assert res["caught_up_cycles"] > 0, res                # commits went through the restarted coordinator
    assert res["cleaner_runs"] > 0 and res["records_removed_by_cleaner"] > 0, res
    assert res["segments_deleted"] > 0 and res["retain_log_start_sum"] > 0, res
    assert res["recovery_s_max"] < 30, res
