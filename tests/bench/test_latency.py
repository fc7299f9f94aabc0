"""kafka_bench.latency (issue 11 §2), so that it cannot rot: a short interleaved run of awaited
sends and commits against a kafka-core broker, checking the shape of what the bench and
``kafka-core bench`` rely on (medians over rounds, every round kept, the CPU cost per operation).
Speed is never asserted here: that is the benchmark's job (docs/perf/2026-12-07-latency.txt)."""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
for _p in (str(ROOT / "python"), str(ROOT / "src")):
    if _p not in sys.path:
        sys.path.insert(0, _p)

from kafka_bench import latency  # noqa: E402
from kafka_bench.kafka_core_broker import KafkaCoreBroker  # noqa: E402


def test_percentiles_with_and_without_cpu() -> None:
    s = latency.Samples([i / 1000 for i in range(1, 101)])
    s.cpu = 0.01
    p = latency.percentiles(s)
    assert p["n"] == 100 and p["p50_ms"] == pytest.approx(50.5) and p["max_ms"] == pytest.approx(100)
    assert p["cpu_us"] == pytest.approx(100.0)            # 10 ms of CPU over 100 operations
    assert "cpu_us" not in latency.percentiles([0.001, 0.002, 0.003])


@pytest.mark.interop   # confluent-kafka creates the topic and is one of the clients
@pytest.mark.timeout(120)
def test_interleaved_rounds_against_kafka_core(tmp_path: Path) -> None:
    which = ("kc_aio_send", "kc_sync_send", "confluent_send", "kc_aio_commit")
    with KafkaCoreBroker(tmp_path / "broker") as b:
        res = latency.run(b.bootstrap, count=40, warmup=5, which=which, rounds=3)
    assert set(res) == set(which)
    for name, row in res.items():
        rounds = row["rounds"]
        assert len(rounds) == 3, (name, row)
        for key in ("p50_ms", "p99_ms", "cpu_us"):
            # each figure is the median of the rounds' figures (rounded to 4 places when kept)
            assert row[key] == pytest.approx(statistics.median(r[key] for r in rounds), abs=1e-3), (name, key, row)
        assert all(0 < r["p50_ms"] <= r["p99_ms"] and r["cpu_us"] > 0 for r in rounds), (name, row)
        assert row["n"] == 40
