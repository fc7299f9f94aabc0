"""``kafka-core bench --cluster`` (kafka_bench.cluster_bench), so that it cannot rot: a real --quick
run against a 3-broker kafka-core cluster only, and the report's ratios on synthetic results.
Speed is never asserted here."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
for _p in (str(ROOT / "python"), str(ROOT / "src")):
    if _p not in sys.path:
        sys.path.insert(0, _p)

from kafka_bench import report, runner  # noqa: E402
from kafka_bench.cluster_bench import CASES, median_of  # noqa: E402


@pytest.mark.slow
@pytest.mark.interop   # the load generators are librdkafka (kc_loadgen, confluent-kafka)
@pytest.mark.timeout(400)
def test_quick_cluster_run_against_kafka_core(tmp_path: Path) -> None:
    if not Path("/usr/include/librdkafka/rdkafka.h").exists():
        pytest.skip("librdkafka-dev is missing (./dev test installs it)")
    pytest.importorskip("confluent_kafka")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "python"), str(ROOT / "src"), env.get("PYTHONPATH", "")])
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, "-m", "kafka_bench", "--cluster", "--quick", "--systems", "kafka-core",
                        "--out", str(out)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=380)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    res = json.loads((out / "results.json").read_text())
    assert res["errors"] == {} and res["cluster"] is True
    kc = res["systems"]["kafka-core"]
    assert kc["brokers"] == 3
    for key, *_ in CASES:
        assert kc[key]["records"] > 0 and kc[key]["records_per_sec"] > 0, key
        assert kc[key]["broker_cpu_s"] > 0, key
    (fo,) = kc["failover_rounds"]
    assert fo["partitions_recovered"] == 6 and fo["delivery_errors"] == 0
    assert 0 < fo["p0_s"] <= fo["all_s"] and fo["new_leader_p0"] not in (-1, fo["victim"])
    assert fo["znode_gone_s"] is not None
    assert kc["failover"]["p0_s"] == fo["p0_s"]
    text = (out / "report.md").read_text()
    assert "## 1. Produce throughput" in text and "## 2. Failover" in text


def test_cluster_mode_takes_only_the_two_kafka_systems(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert runner.main(["--cluster", "--systems", "kafka-core,rabbitmq", "--out", str(tmp_path)]) == 2
    assert "kafka-core,apache-kafka" in capsys.readouterr().err


def test_failover_rounds_must_be_positive(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert runner.main(["--cluster", "--failover-rounds", "0", "--out", str(tmp_path)]) == 2
    assert "--failover-rounds must be at least 1" in capsys.readouterr().err


def test_median_of_keeps_every_round() -> None:
    rounds = [{"records_per_sec": 3.0}, {"records_per_sec": 1.0}, {"records_per_sec": 2.0}]
    m = median_of(rounds, "records_per_sec")
    assert m["records_per_sec"] == 2.0 and m["rounds_records_per_sec"] == [3.0, 1.0, 2.0] and m["rounds"] == 3


def _fake(rate: float, p0: float) -> dict:
    step = {"records": 1000, "records_per_sec": rate, "mb_per_sec": rate * 200 / 2**20, "broker_cpu_pct": 90.0,
            "client_cpu_pct": 10.0, "p99_ms": 5.0, "broker_cpu_s_per_million": 1.0}
    fo = {"p0_s": p0, "all_s": p0 + 1, "rounds_p0_s": [p0, None], "rounds_all_s": [p0 + 1, None],
          "rounds_znode_gone_s": [p0 - 1, None], "victim_was_controller": [True, False], "delivery_errors": 0}
    return {key: dict(step) for key, *_ in CASES} | {"failover": fo, "brokers": 3}


def test_cluster_report_ratios(tmp_path: Path) -> None:
    res = {"date": "2026-01-01T00:00:00", "quick": True, "cluster": True, "command": "kafka-core bench --cluster",
           "seconds": 1.0, "machine": runner.machine(), "errors": {},
           "scale": {"rounds": 1, "produce_seconds": 3, "failover_rounds": 2, "record_size": 200,
                     "send_interval_ms": 2.0},
           "systems": {"kafka-core": _fake(300.0, 4.0), "apache-kafka": _fake(100.0, 8.0)}}
    report.write_cluster(res, tmp_path)
    text = (tmp_path / "report.md").read_text()
    rows = {ln.split("|")[1].strip(): ln for ln in text.split("## 1.")[0].splitlines() if ln.startswith("| ")}
    assert "3.00x" in rows["produce msg/s, RF=3, acks=all, min.insync.replicas=2"]
    assert "0.50x" in rows["failover: partition 0 acks=all again (s)"]
    assert "| 4.00, timeout |" in text and "1 of 2" in text
    assert json.loads((tmp_path / "results.json").read_text())["systems"]["apache-kafka"]["failover"]["p0_s"] == 8.0
