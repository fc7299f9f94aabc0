"""Shared benchmark configuration (pytest-benchmark).

Every run writes its results as JSON to benches/results/<UTC time>-<host>.json
(unless --benchmark-json is given or KC_BENCH_JSON=0), so runs on different
commits or machines can be compared with `pytest-benchmark compare` or by
reading the files.  Benchmarks never assert speed.
"""

from __future__ import annotations

import os
import platform
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "results"

try:  # a source checkout that is not pip-installed: use the in-place build
    import kafka_core  # noqa: F401
except ImportError:  # pragma: no cover
    for sub in ("src", "python"):
        sys.path.insert(0, str(ROOT / sub))


@pytest.hookimpl(trylast=True)
def pytest_configure(config: pytest.Config) -> None:
    bs = getattr(config, "_benchmarksession", None)
    if bs is None or bs.disabled or bs.json or os.environ.get("KC_BENCH_JSON") == "0":
        return
    RESULTS.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    bs.json = str(RESULTS / f"{stamp}-{platform.node() or 'host'}.json")


def pytest_benchmark_update_json(config: pytest.Config, benchmarks: list, output_json: dict) -> None:  # noqa: ARG001
    """Record which C implementations ran, and GB/s where a bench set bytes."""
    try:
        from kafka_core._crc32c import crc32c_impl

        output_json["kafka_core"] = {"crc32c": crc32c_impl()}
    except ImportError:  # pragma: no cover
        output_json["kafka_core"] = {"crc32c": "not built"}
    for b in output_json.get("benchmarks", []):
        nbytes = b.get("extra_info", {}).get("bytes")
        mean = b.get("stats", {}).get("mean")
        if nbytes and mean:
            b["extra_info"]["GB/s"] = round(nbytes / mean / 1e9, 3)


@pytest.fixture
def throughput(benchmark):
    """benchmark wrapper that records the bytes processed per call (extra_info)."""

    def run(fn, *args, nbytes: int, **kw):
        benchmark.extra_info["bytes"] = nbytes
        return benchmark(fn, *args, **kw)

    return run
