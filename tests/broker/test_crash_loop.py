"""Ten kill -9 cycles under acks=all produce load (issue 16), through the crash-loop benchmark
(benches/system/bench_crash_loop.py, whose 100-cycle run is the documented command): every
acknowledged record is found afterwards."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

BENCH = Path(__file__).resolve().parents[2] / "benches" / "system" / "bench_crash_loop.py"


def test_ten_kill_9_cycles_lose_no_acknowledged_record(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("bench_crash_loop", BENCH)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    res = mod.run(10, partitions=4, run_s=(0.3, 0.9), rate=10_000, data_dir=tmp_path)
    assert res["acked"] > 10 * 1000, res          # the load really ran in every cycle
    assert res["lost"] == 0 and res["found"] == res["acked"], res
    assert res["recovery_s_max"] < 30, res
