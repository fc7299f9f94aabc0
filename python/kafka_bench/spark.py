"""Apache Spark SQL from Maven, to read kafka-core export's output as a warehouse user does
(tests/tools/test_export_spark.py).

``read_export(out_dir)`` runs data/spark/SparkReadExport.java in local mode: ``spark.read().
parquet(out_dir)`` with no options (Hive partition discovery of ``topic=``/``date=``/``hour=``; the
exporter's ``_ledger`` directory is skipped as hidden, as Hadoop's input formats skip ``_`` and
``.`` names), and returns the schema Spark inferred and per (topic, partition): rows, distinct
offsets, min and max offset, rows whose ``date``/``hour`` columns disagree with their timestamp,
null keys, null values, header entries.  The jars (``spark-sql_2.13``, data/spark/pom.xml) are
fetched and the reader compiled once into ``<cache>/spark``.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from . import paths
from .apache_kafka import compiled_classpath, java

SRC = paths.DATA / "spark"
CACHE = paths.CACHE / "spark"
MAIN = "SparkReadExport"

# What spark-submit adds for Java 17+ (Spark's JavaModuleOptions): Spark reaches into these.
JAVA_OPENS = [f"--add-opens=java.base/{p}=ALL-UNNAMED" for p in (
    "java.lang", "java.lang.invoke", "java.lang.reflect", "java.io", "java.net", "java.nio", "java.util",
    "java.util.concurrent", "java.util.concurrent.atomic", "jdk.internal.ref", "sun.nio.ch", "sun.nio.cs",
    "sun.security.action", "sun.util.calendar")] + [
    "-XX:+IgnoreUnrecognizedVMOptions", "-Djdk.reflect.useDirectMethodHandle=false",
    "-Dio.netty.tryReflectionSetAccessible=true"]


def classpath() -> str:
    return compiled_classpath(SRC, (MAIN + ".java",), CACHE)


def read_export(out_dir: Path, timeout: float = 300) -> tuple[dict[str, Any], dict[tuple[str, int], list[int]]]:
    """(Spark's schema as JSON, {(topic, partition): [rows, distinct offsets, min offset, max
    offset, rows in the wrong hour, null keys, null values, header entries]})."""
    r = subprocess.run([java(), "-Xmx768m", *JAVA_OPENS, "-cp", classpath(), MAIN, str(out_dir)],
                       capture_output=True, text=True, timeout=timeout)
    if r.returncode != 0:
        raise RuntimeError(f"Spark exited with {r.returncode}: {r.stderr[-3000:]}")
    schema: dict[str, Any] = {}
    parts: dict[tuple[str, int], list[int]] = {}
    for line in r.stdout.splitlines():
        if line.startswith("SCHEMA "):
            schema = json.loads(line[len("SCHEMA "):])
        elif line.startswith("PARTITION "):
            f = line.split()
            parts[(f[1], int(f[2]))] = [int(x) for x in f[3:]]
    return schema, parts
