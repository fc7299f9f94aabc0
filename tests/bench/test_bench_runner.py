"""The system benchmark runner (kafka_bench), so that it cannot rot: a real
--quick run against the kafka-core broker only, plus the failure paths and
the report's ratio/target logic on synthetic results.  Speed is never
asserted here (that is what the report is for)."""

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

from kafka_bench import report, runner, systems  # noqa: E402


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is not running
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.slow
@pytest.mark.interop   # the load generator is librdkafka
@pytest.mark.timeout(400)
def test_quick_run_against_kafka_core(tmp_path: Path) -> None:
    if not Path("/usr/include/librdkafka/rdkafka.h").exists():
        pytest.skip("librdkafka-dev is missing (./dev test installs it)")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "python"), str(ROOT / "src"), env.get("PYTHONPATH", "")])
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, "-m", "kafka_bench", "--quick", "--systems", "kafka-core", "--no-profile",
                        "--out", str(out)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=380)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    res = json.loads((out / "results.json").read_text())
    assert res["errors"] == {}
    kc = res["systems"]["kafka-core"]
    for step in ("produce_b1", "produce_b50", "consume", "e2e"):
        assert kc[step]["records"] > 0, step
        assert kc[step]["records_per_sec"] > 0, step
        assert kc[step]["broker_peak_rss_mb"] > 0, step
    # The consumer drained exactly what the batch-50 producer stored.
    assert kc["consume"]["records"] == kc["produce_b50"]["records"]
    assert 0 < kc["e2e"]["p50_ms"] <= kc["e2e"]["p99_ms"] <= kc["e2e"]["p999_ms"]
    assert [x["record_size"] for x in kc["sizes"]] == res["scale"]["sizes"]
    assert len(kc["stored"]) == res["scale"]["store_chunks"]
    assert kc["stored"][-1]["stored_gb"] > kc["stored"][0]["stored_gb"]
    # issue 11's drain: every partition count, every round drained the whole topic
    assert [d["partitions"] for d in kc["drain"]] == list(res["scale"]["drain_partitions"])
    for d in kc["drain"]:
        assert d["records"] == res["scale"]["drain_records"] and 0 < d["worst_records_per_sec"] <= d["records_per_sec"]
        assert len(d["round_records_per_sec"]) == res["scale"]["drain_rounds"]
        assert 0 < d["tuned_worst_records_per_sec"] <= d["tuned_records_per_sec"]   # fetch.queue.backoff.ms=10
        assert len(d["tuned_round_records_per_sec"]) == res["scale"]["drain_rounds"]
    # issue 11's awaited single sends and commits: every client, p50 <= p99
    assert set(kc["awaited"]) == {"kc_aio_send", "kc_sync_send", "confluent_send", "aiokafka_send",
                                  "kc_aio_commit", "confluent_commit", "aiokafka_commit"}, kc["awaited"]
    assert all(0 < v["p50_ms"] <= v["p99_ms"] and v["n"] == res["scale"]["awaited_count"]
               for v in kc["awaited"].values())
    # issue 11 §3: the perf tool and a confluent-kafka loop, the same settings, every round counted
    pt = kc["perf_tool"]
    assert set(pt["produce"]) == {"java-defaults", "librdkafka-defaults"}, pt
    assert set(pt["consume"]) == {"defaults", "fetch.queue.backoff.ms=10"}, pt
    for row in (*pt["produce"].values(), *pt["consume"].values()):
        assert row["kafka_core_perf"] > 0 and row["confluent_loop"] > 0 and row["ratio"] > 0
        assert len(row["rounds_kafka_core_perf"]) == len(row["rounds_confluent_loop"]) == res["scale"]["perf_tool_rounds"]
    text = (out / "report.md").read_text()
    assert "### Awaited single sends and commits" in text
    assert "### `kafka-core perf` vs a confluent-kafka loop" in text
    for heading in ("## 1. Producer", "## 2. Consumer", "## 3. End-to-end latency", "## 4. Throughput vs record size",
                    "## 5. Throughput while the stored data grows", "## 6. Broker CPU and memory"):
        assert heading in text
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        pass
    else:
        assert (out / "throughput.png").stat().st_size > 1000
        assert (out / "record_size.png").stat().st_size > 1000
    # The broker the runner started is not left running.
    assert kc["pid"] > 0 and not _alive(kc["pid"])


class _Broken(systems.System):
    name = "kafka-core"

    def start(self) -> None:
        raise systems.StartError("port already taken (test)")

    def stop(self) -> None:
        pass


def test_a_system_that_cannot_start_fails_loudly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(runner, "make", lambda name: _Broken())
    rc = runner.main(["--quick", "--systems", "kafka-core", "--out", str(tmp_path), "--no-plots"])
    assert rc == 2
    err = capsys.readouterr().err
    assert "kafka-core could not start" in err and "port already taken" in err
    res = json.loads((tmp_path / "results.json").read_text())
    assert "kafka-core" in res["errors"]
    assert "## Failures" in (tmp_path / "report.md").read_text()


def test_unknown_system_is_an_error(tmp_path: Path) -> None:
    assert runner.main(["--systems", "kafka-core,nope", "--out", str(tmp_path)]) == 2


def _fake(rate: float, p99: float, rss: float) -> dict:
    step = {"records": 1000, "records_per_sec": rate, "mb_per_sec": rate * 200 / 2**20, "broker_cpu_pct": 90.0,
            "client_cpu_pct": 10.0, "broker_peak_rss_mb": rss, "client": "kc_loadgen"}
    return {"produce_b1": dict(step), "produce_b50": dict(step), "consume": dict(step),
            "e2e": dict(step, p50_ms=p99 / 2, p99_ms=p99, p999_ms=p99 * 2, max_ms=p99 * 3),
            "sizes": [dict(step, record_size=10)], "stored": [dict(step, stored_gb=0.1)], "rss_idle_mb": rss / 2}


def test_report_ratios_and_targets(tmp_path: Path) -> None:
    drains = {"kafka-core": [{"partitions": 1, "records_per_sec": 900.0, "worst_records_per_sec": 100.0,
                              "tuned_records_per_sec": 3000.0, "tuned_worst_records_per_sec": 2500.0},
                             {"partitions": 6, "records_per_sec": 1200.0, "worst_records_per_sec": 1100.0}],
              "apache-kafka": [{"partitions": 1, "records_per_sec": 1000.0, "worst_records_per_sec": 900.0,
                                "tuned_records_per_sec": 2000.0, "tuned_worst_records_per_sec": 1500.0},
                               {"partitions": 6, "records_per_sec": 600.0, "worst_records_per_sec": 500.0}]}
    res = {"date": "2026-01-01T00:00:00", "quick": True, "command": "kafka-core bench --quick", "seconds": 1.0,
           "machine": runner.machine(), "errors": {},
           "scale": {"e2e_rate": 1000, "sizes": [10], "store_record": 10240, "store_chunks": 1},
           "systems": {"kafka-core": _fake(300.0, 2.0, 50.0), "apache-kafka": _fake(100.0, 1.0, 400.0)}}
    for name, rows in drains.items():
        res["systems"][name]["drain"] = rows
    res["systems"]["kafka-core"]["awaited"] = {"kc_aio_send": {"p50_ms": 0.2, "p99_ms": 0.3, "cpu_us": 90.0},
                                               "confluent_send": {"p50_ms": 0.1, "p99_ms": 0.2}}
    res["systems"]["apache-kafka"]["awaited"] = {"kc_aio_send": {"p50_ms": 0.5, "p99_ms": 0.6},
                                                 "confluent_send": {"p50_ms": 0.3, "p99_ms": 0.4}}
    res["systems"]["kafka-core"]["perf_tool"] = {"produce": {"java-defaults": {
        "kafka_core_perf": 500000.0, "confluent_loop": 625000.0, "ratio": 0.8}}, "consume": {}}
    report.write_all(res, tmp_path, plots=False)
    text = (tmp_path / "report.md").read_text()
    assert "| kafka-core | produce | java-defaults | 500,000 | 625,000 | 0.80x |" in text
    drain = {ln.split("|")[1].strip(): ln for ln in text.split("### Drain by partition count")[1].split("####")[0].splitlines()
             if ln.startswith("| ") and ln.split("|")[1].strip().isdigit()}
    assert "| 900 | 100 | 1,000 | 900 | 0.90x |" in drain["1"] and "2.00x" in drain["6"]
    tuned = text.split("#### The same drain with `fetch.queue.backoff.ms=10`")[1].split("###")[0]
    assert "| 1 | 3,000 | 2,500 | 2,000 | 1,500 | 1.50x |" in tuned
    awaited = text.split("### Awaited single sends and commits")[1]
    # kafka_client's p50 and p99 over confluent-kafka's on kafka-core (2.00x / 1.50x), then kafka-core's
    # p99 over Apache's (0.50x), then the client's CPU microseconds per operation on kafka-core
    assert "| 0.200 | 0.300 | 0.500 | 0.600 | 2.00x / 1.50x | 0.50x | 90 |" in awaited
    rows = {ln.split("|")[1].strip(): ln for ln in text.splitlines() if ln.startswith("| ")}
    assert "3.00x" in rows["producer throughput, batch 50"] and "pass" in rows["producer throughput, batch 50"]
    assert "2.00x" in rows["p99 end-to-end latency"] and "**miss**" in rows["p99 end-to-end latency"]
    assert "0.12x" in rows["broker peak RSS"] and "pass" in rows["broker peak RSS"]
    assert json.loads((tmp_path / "results.json").read_text())["systems"]["kafka-core"]["peak_rss_mb"] == 50.0
