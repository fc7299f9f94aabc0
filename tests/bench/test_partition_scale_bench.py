"""benches/system/bench_partition_scale.py (issue 16), so that it cannot rot: its short version
against kafka-core alone (20 topics x 10 partitions, 50 of them produced to and fetched), checking
that every figure the ratio table is made of was measured, and that its Fetch and Metadata checks
refuse an answer that misses partitions (so the timed calls cannot pass on an empty answer).
Speed is never asserted here: the side-by-side run with Apache Kafka is the benchmark's job
(docs/perf/2026-12-07-partition-scale-3.txt)."""

from __future__ import annotations

import importlib.util
import signal
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
for _p in (str(ROOT / "python"), str(ROOT / "src")):
    if _p not in sys.path:
        sys.path.insert(0, _p)

from kafka_bench.kafka_core_broker import KafkaCoreBroker  # noqa: E402

BENCH = ROOT / "benches" / "system" / "bench_partition_scale.py"
pytestmark = [pytest.mark.interop]   # confluent-kafka creates, produces and consumes


def _bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_partition_scale", BENCH)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.timeout(120)
def test_short_run_against_kafka_core_measures_every_figure() -> None:
    mod = _bench()
    res = mod.measure("kafka-core", "topics", 200, 50, 7, 60)
    assert "failed" not in res, res
    assert res["created_in_batches_of"] == "7 topics" and res["fetch_partitions"] == 50
    for col, _what, _target in mod.RATIOS:
        assert isinstance(res[col], (int, float)) and res[col] >= 0, (col, res)
    assert res["idle_rss_mib"] >= res["empty_rss_mib"] > 0
    # the ratio table pairs it with an Apache row of the same layout and size, and only that
    other = dict(res, system="apache-kafka", fetch_ms=2 * res["fetch_ms"] or 1.0)
    text = mod.ratio_table([res, other, dict(other, partitions=400)])
    assert text.count("\nkafka-core / apache-kafka") == 1 and "200 partitions" in text
    assert len([ln for ln in text.splitlines() if "lower is better |" in ln]) == len(mod.RATIOS)


@pytest.mark.timeout(120)
def test_fetch_and_metadata_checks_refuse_missing_partitions(tmp_path: Path) -> None:
    mod = _bench()
    with KafkaCoreBroker(data_dir=tmp_path) as b:
        res: dict[str, object] = {}
        names = mod._create(b.bootstrap, "topics", 30, 10, 60, res)
        assert names == ["scale-00000", "scale-00001", "scale-00002"]
        full = [("scale-00000", 1), ("scale-00002", 9)]
        mod._produce(b.bootstrap, full, "x")
        assert mod._median_call(b.bootstrap, mod._fetch_request(full), mod.FETCH_VERSION,
                                mod._check_fetch(full)) > 0
        with pytest.raises(RuntimeError, match="scale-00001-0: error_code 0, 0 record bytes"):
            empty = [*full, ("scale-00001", 0)]       # exists, holds nothing
            mod._median_call(b.bootstrap, mod._fetch_request(empty), mod.FETCH_VERSION, mod._check_fetch(empty))
        with pytest.raises(RuntimeError, match="answered 2 of the 3 partitions"):
            named = [*full, ("scale-00001", 0)]       # the checker wants one the request did not name
            mod._median_call(b.bootstrap, mod._fetch_request(full), mod.FETCH_VERSION, mod._check_fetch(named))
        assert mod._median_call(b.bootstrap, mod._metadata_all(), mod.METADATA_VERSION,
                                mod._check_metadata(names, 30)) > 0
        with pytest.raises(RuntimeError, match="listed 30 of 40 partitions"):
            mod._median_call(b.bootstrap, mod._metadata_all(), mod.METADATA_VERSION, mod._check_metadata(names, 40))
        b.stop(signal.SIGKILL)
