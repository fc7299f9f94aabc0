"""Data for the export tests, the topic's own content as the oracle, and the exported files
read back by pyarrow and DuckDB."""

from __future__ import annotations

import base64
import datetime as dt
from pathlib import Path
from typing import Any

HOUR = 3_600_000
# 22:00 UTC on one day to 02:00 the next: four hours, two dates.
BASE = int(dt.datetime(2026, 12, 6, 22, 0, tzinfo=dt.UTC).timestamp() * 1000)

Row = tuple[int, bytes | None, bytes | None, tuple[tuple[str, bytes | None], ...]]


def record(i: int, n: int) -> tuple[int, bytes | None, bytes | None, list[tuple[str, bytes | None]]]:
    """The i-th of n records: keys, null keys, null values, headers (with null values), and
    timestamps over four hours, one in 97 an hour late (a range then spans hours out of order)."""
    ts = BASE + i * 4 * HOUR // n - (HOUR if i % 97 == 0 and i > 97 else 0)
    key = None if i % 10 == 0 else b"k%d" % (i % 1000)
    value = None if i % 13 == 0 else b"v%d-" % i + b"x" * (i % 50)
    headers: list[tuple[str, bytes | None]] = []
    if i % 4 == 0:
        headers = [("a", b"1"), ("b", None)]
    elif i % 4 == 1:
        headers = [("trace", b"%d" % i)]
    return ts, key, value, headers


def produce(bootstrap: str, topic: str, n: int, partitions: int, start: int = 0) -> None:
    from kafka_client import Producer

    p = Producer(bootstrap, linger_ms=5, acks="all")
    try:
        for i in range(start, start + n):
            ts, key, value, headers = record(i, n + start)
            p.produce(topic, value, key=key, headers=headers or None, partition=i % partitions, timestamp_ms=ts)
        p.flush(60)
    finally:
        p.close()


def read_topic(bootstrap: str, topic: str) -> dict[tuple[int, int], Row]:
    """Every record of the topic, by (partition, offset): what an export must contain."""
    from kafka_client import Consumer, TopicPartition

    c = Consumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False,
                 max_poll_records=50000)
    try:
        tps = [TopicPartition(topic, p) for p in sorted(c.partitions_for_topic(topic))]
        c.assign(tps)
        ends = c.end_offsets(tps)
        out: dict[tuple[int, int], Row] = {}
        while any(c.position(tp) < ends[tp] for tp in tps):
            for tp, recs in c.poll(1.0).items():
                for r in recs:
                    out[(tp.partition, r.offset)] = (r.timestamp, r.key, r.value, tuple(r.headers))
        return out
    finally:
        c.close()


def _hive_ok(ts: int, date: Any, hour: Any) -> bool:
    t = dt.datetime.fromtimestamp(max(ts, 0) / 1000, tz=dt.UTC)
    return str(date) == f"{t:%Y-%m-%d}" and int(hour) == t.hour


def read_pyarrow(out: Path, topic: str) -> list[tuple[tuple[int, int], Row]]:
    """pyarrow's dataset discovery with no options (Hive partitioning is its default)."""
    import pyarrow.parquet as pq

    rows = pq.read_table(out / f"topic={topic}").to_pylist()
    got = []
    for r in rows:
        ts = int(r["timestamp"].timestamp() * 1000)
        assert _hive_ok(ts, r["date"], r["hour"]), r
        got.append(((r["partition"], r["offset"]),
                    (ts, r["key"], r["value"], tuple((h["key"], h["value"]) for h in r["headers"]))))
    return got


def read_duckdb(out: Path, topic: str, fmt: str = "parquet") -> list[tuple[tuple[int, int], Row]]:
    import duckdb

    if fmt == "parquet":
        src = f"read_parquet('{out}/**/*.parquet', hive_partitioning=true)"
        cols = 'partition, "offset", epoch_ms(timestamp), key, value, headers, date, hour, topic'
    else:
        src = f"read_json('{out}/**/*.jsonl', hive_partitioning=true, format='newline_delimited')"
        cols = ('partition, "offset", epoch_ms(timestamp::TIMESTAMP), from_base64(key), from_base64(value), '
                'headers, date, hour, topic')
    got = []
    for p, o, ts, key, value, headers, date, hour, t in duckdb.sql(f"SELECT {cols} FROM {src}").fetchall():
        if t != topic:
            continue
        assert _hive_ok(ts, date, hour), (p, o, ts, date, hour)
        if fmt != "parquet":
            headers = [{"key": h["key"], "value": None if h["value"] is None else base64.b64decode(h["value"])}
                       for h in headers]
        got.append(((p, o), (ts, None if key is None else bytes(key), None if value is None else bytes(value),
                             tuple((h["key"], None if h["value"] is None else bytes(h["value"])) for h in headers))))
    return got


def assert_exactly_once(truth: dict[tuple[int, int], Row], rows: list[tuple[tuple[int, int], Row]]) -> None:
    seen: dict[tuple[int, int], Row] = {}
    dups = []
    for k, row in rows:
        if k in seen:
            dups.append(k)
        seen[k] = row
    assert not dups, f"{len(dups)} records exported twice, e.g. {dups[:5]}"
    missing = sorted(set(truth) - set(seen))
    extra = sorted(set(seen) - set(truth))
    assert not missing and not extra, f"missing {len(missing)} (e.g. {missing[:5]}), extra {extra[:5]}"
    wrong = [k for k in truth if truth[k] != seen[k]]
    assert not wrong, f"{len(wrong)} records differ, e.g. {wrong[0]}: {truth[wrong[0]]} != {seen[wrong[0]]}"


def visible_files(out: Path) -> list[Path]:
    """What a reader's listing sees: no name starting with '.' or '_' on the way down."""
    return sorted(p for p in out.rglob("*") if p.is_file()
                  and not any(part.startswith((".", "_")) for part in p.relative_to(out).parts))
