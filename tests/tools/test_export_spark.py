"""kafka-core export's Parquet read by Apache Spark and pandas (issue 13: "reads with DuckDB,
pandas/pyarrow and Spark without options"; DuckDB and pyarrow are in test_export.py):
``spark.read().parquet(OUT)`` in local mode, no options, sees exactly the
records of the topic -- per partition the count, every offset once, the first and last offset, the
null keys and values and the header entries -- with the columns the exporter writes plus the Hive
partition columns it discovers, typed (timestamp, date, int), and every row in the directory of
its own hour; ``pandas.read_parquet(OUT)`` the same records."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from .conftest import run_export
from .test_export import filled_topic

pytestmark = [pytest.mark.interop,
              pytest.mark.skipif(shutil.which("javac") is None, reason="a JDK is installed by ./dev test")]


def test_spark_reads_the_export_without_options(core_bootstrap: str, tmp_path: Path) -> None:
    from kafka_bench import spark

    topic, truth = filled_topic(core_bootstrap, 6000, 3)
    out = tmp_path / "out"
    summary = run_export(core_bootstrap, "--topic", topic, "--group", "spark", "--out", str(out),
                         "--until-caught-up", "--roll-records", "700")
    assert summary["records"] == 6000
    schema, parts = spark.read_export(out)
    types = {f["name"]: f["type"] if isinstance(f["type"], str) else f["type"]["type"] for f in schema["fields"]}
    assert types == {"partition": "integer", "offset": "long", "timestamp": "timestamp", "key": "binary",
                     "value": "binary", "headers": "array", "topic": "string", "date": "date", "hour": "integer"}
    for p in range(3):
        mine = {o: row for (pp, o), row in truth.items() if pp == p}
        want = [len(mine), len(mine), min(mine), max(mine), 0,
                sum(1 for row in mine.values() if row[1] is None), sum(1 for row in mine.values() if row[2] is None),
                sum(len(row[3]) for row in mine.values())]
        assert parts[(topic, p)] == want, (p, parts[(topic, p)], want)
    assert set(parts) == {(topic, p) for p in range(3)}

    # pandas, as a notebook user reads it: the whole directory, no options
    import pandas as pd

    df = pd.read_parquet(out)
    assert len(df) == 6000 and set(df.columns) == set(types)
    assert sorted(zip(df["partition"], df["offset"], strict=True)) == sorted(truth)
    assert int(df["key"].isna().sum()) == sum(1 for row in truth.values() if row[1] is None)
