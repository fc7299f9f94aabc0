"""``kafka-core audit`` and ``AuditingProducer`` (issue 13): the paper's loss detection.

Records are produced through ``AuditingProducer`` over five one-minute windows, mirrored to a
second kafka-core broker with ``kafka-core mirror`` and written out in the export's layout
(``OUT/topic=T/date=.../hour=.../*.parquet|*.jsonl``, here by the test with pyarrow, so that
the audit is tested apart from the exporter).  No loss: every stage counts the same and the
audit exits 0.  Then loss is injected (an export file dropped; DeleteRecords on the target's
copy and on the stored topic) and the audit reports exactly the windows and counts lost.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kafka_broker.testing import EmbeddedBroker
from kafka_client import AdminClient, ConfigResource, ConfigResourceType, NewTopic, Producer
from kafka_tools.audit import AuditingProducer, compare, parse_window, produced_counts, stored_counts

from .mirror_helpers import kafka_core, read_partitions

BASE = 1_700_000_040_000          # 2023-11-14T22:14:00Z, a minute boundary
WINDOWS = 5
PER_WINDOW = 200


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("audit")
    source = EmbeddedBroker(tmp / "source").start()
    target = EmbeddedBroker(tmp / "target").start()
    try:
        with AdminClient(source.bootstrap) as admin:
            admin.create_topics([NewTopic("clicks", 3, 1)], raise_on_error=True)
        with AuditingProducer(Producer(source.bootstrap), window_s=60, flush_interval_s=None, own_producer=True) as p:
            for i in range(WINDOWS * PER_WINDOW):
                ts = BASE + (i // PER_WINDOW) * 60_000 + (i % PER_WINDOW) * 100
                p.produce("clicks", b"v%d" % i, key=b"k%d" % i, partition=i % 3, timestamp_ms=ts)
        r = kafka_core("mirror", "--source-bootstrap", source.bootstrap, "--target-bootstrap", target.bootstrap,
                       "--include", "clicks", "--until-caught-up", "--json")
        assert r.returncode == 0, r.stderr[-3000:]
        export = tmp / "export"
        _write_export(export, read_partitions(source.bootstrap, "clicks", 3))
        yield {"source": source, "target": target, "export": export}
    finally:
        source.cleanup()
        target.cleanup()


def _write_export(out: Path, parts: dict[int, list[Any]]) -> None:
    """The export's layout and columns: partitions 0 and 1 as Parquet, partition 2 as JSON Lines."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    for p, recs in parts.items():
        hour = dt.datetime.fromtimestamp(recs[0].timestamp / 1000, dt.UTC)
        d = out / "topic=clicks" / f"date={hour:%Y-%m-%d}" / f"hour={hour:%H}"
        d.mkdir(parents=True, exist_ok=True)
        name = f"clicks-{p}-{recs[0].offset:020d}-{recs[-1].offset:020d}"
        if p < 2:
            table = pa.table({
                "partition": pa.array([p] * len(recs), pa.int32()),
                "offset": pa.array([r.offset for r in recs], pa.int64()),
                "timestamp": pa.array([r.timestamp for r in recs], pa.timestamp("ms")),
                "key": pa.array([r.key for r in recs], pa.binary()),
                "value": pa.array([r.value for r in recs], pa.binary()),
                "headers": pa.array([[] for _ in recs], pa.list_(pa.struct([("key", pa.string()),
                                                                              ("value", pa.binary())]))),
            })
            pq.write_table(table, d / f"{name}.parquet")
        else:
            with open(d / f"{name}.jsonl", "w") as f:
                for r in recs:
                    f.write(json.dumps({"partition": p, "offset": r.offset, "timestamp": r.timestamp,
                                        "key": r.key.decode(), "value": r.value.decode(), "headers": []}) + "\n")
    (out / "topic=clicks" / ".in-progress.parquet").write_bytes(b"not a finished file")   # skipped


def _audit(setup: dict[str, Any], *extra: str) -> tuple[int, dict[str, Any]]:
    r = kafka_core("audit", "--bootstrap-server", setup["source"].bootstrap, "--topic", "clicks", "--window", "1m",
                   "--target-bootstrap", setup["target"].bootstrap, "--export-dir", str(setup["export"]),
                   "--json", *extra)
    assert r.returncode in (0, 1), r.stderr[-3000:]
    return r.returncode, json.loads(r.stdout)


def _per_window(parts: dict[int, list[Any]], p: int, upto: int | None = None) -> dict[int, int]:
    out: dict[int, int] = {}
    for r in parts[p][:upto]:
        w = r.timestamp - r.timestamp % 60_000
        out[w] = out.get(w, 0) + 1
    return out


def test_no_loss_every_stage_counts_the_same(setup: dict[str, Any]) -> None:
    rc, out = _audit(setup)
    assert rc == 0 and out["short_windows"] == 0, out
    assert [(r["window_start_ms"], r["produced"], r["stored"], r["mirrored"], r["exported"]) for r in out["rows"]] \
        == [(BASE + w * 60_000, PER_WINDOW, PER_WINDOW, PER_WINDOW, PER_WINDOW) for w in range(WINDOWS)]
    assert out["rows"][0]["window_start"] == "2023-11-14T22:14:00Z"
    # --since (read from the first offset at that time on) and --until keep windows 22:15-22:17.
    rc, out = _audit(setup, "--since", "2023-11-14T22:15:30Z", "--until", str(BASE + 4 * 60_000))
    assert rc == 0, out
    assert [(r["window_start"], r["produced"], r["stored"], r["mirrored"], r["exported"]) for r in out["rows"]] \
        == [(f"2023-11-14T22:{m}:00Z", PER_WINDOW, PER_WINDOW, PER_WINDOW, PER_WINDOW) for m in (15, 16, 17)]
    # A coarser window sums the producers' one-minute counts.
    r = kafka_core("audit", "--bootstrap-server", setup["source"].bootstrap, "--topic", "clicks", "--window", "5m",
                   "--json")
    assert r.returncode == 0, r.stderr[-2000:]
    assert sum(row["produced"] for row in json.loads(r.stdout)["rows"]) == WINDOWS * PER_WINDOW


def test_a_dropped_export_file_is_reported(setup: dict[str, Any]) -> None:
    files = sorted(setup["export"].rglob("clicks-1-*.parquet"))
    assert len(files) == 1
    kept = files[0].read_bytes()
    files[0].unlink()
    try:
        rc, out = _audit(setup)
    finally:
        files[0].write_bytes(kept)
    assert rc == 1
    lost = _per_window(read_partitions(setup["source"].bootstrap, "clicks", 3), 1)
    assert {r["window_start_ms"]: r["shortfall"] for r in out["rows"]} == {w: {"exported": n} for w, n in lost.items()}
    assert out["missing"] == {"stored": 0, "mirrored": 0, "exported": sum(lost.values())}


@pytest.mark.interop   # DeleteRecords through confluent-kafka's AdminClient
def test_deleted_records_are_reported_per_window(setup: dict[str, Any]) -> None:
    from confluent_kafka import TopicPartition as CTP
    from confluent_kafka.admin import AdminClient as CAdmin

    src = read_partitions(setup["source"].bootstrap, "clicks", 3)
    for bootstrap, partition, upto in ((setup["target"].bootstrap, 0, 150), (setup["source"].bootstrap, 2, 80)):
        admin = CAdmin({"bootstrap.servers": bootstrap})    # kept alive until its futures are done
        futs = admin.delete_records([CTP("clicks", partition, upto)])
        for f in futs.values():
            assert f.result(30).low_watermark == upto
    rc, out = _audit(setup)
    assert rc == 1
    lost_mirror = _per_window(src, 0, 150)       # gone from the target's copy only
    lost_stored = _per_window(src, 2, 80)        # gone from the source: produced > stored
    got = {r["window_start_ms"]: r["shortfall"] for r in out["rows"] if r["shortfall"]}
    for w in set(lost_mirror) | set(lost_stored):
        want: dict[str, int] = {}
        if w in lost_stored:
            want["stored"] = lost_stored[w]
        if w in lost_mirror:
            # the target compares with what the source still stores
            want["mirrored"] = lost_mirror[w] - lost_stored.get(w, 0)
        if want.get("mirrored", 1) <= 0:
            del want["mirrored"]
        assert got.get(w) == want, (w, got.get(w), want)
    assert set(got) == set(lost_mirror) | set(lost_stored)


def test_compare_and_windows() -> None:
    assert parse_window("1m") == 60_000 and parse_window("500ms") == 500 and parse_window("2h") == 7_200_000
    assert parse_window("30") == 30_000
    with pytest.raises(ValueError):
        parse_window("soon")
    rows = compare(60_000, {0: 10, 60_000: 5}, {0: 10, 60_000: 4}, {0: 9, 60_000: 4}, None)
    assert [(r.window_start_ms, r.shortfall) for r in rows] == [(0, {"mirrored": 1}), (60_000, {"stored": 1})]


def test_auditing_producer_counts_deliveries_and_keeps_failed_counts(tmp_path: Path) -> None:
    """send() futures and the caller's on_delivery still work through the wrapper; a failed record
    is not counted; counts whose audit record fails are emitted again once it can be written."""
    with EmbeddedBroker(tmp_path / "b") as b:
        with AdminClient(b.bootstrap) as admin:
            admin.create_topics([NewTopic("t", 1, 1), NewTopic("small", 1, 1, {"max.message.bytes": "200"}),
                                 NewTopic("audit", 1, 1, {"max.message.bytes": "100"})], raise_on_error=True)
        seen: list[Any] = []
        p = AuditingProducer(Producer(b.bootstrap, linger_ms=0), audit_topic="audit", window_s=1,
                             flush_interval_s=None)
        futs = [p.send("t", b"x", timestamp_ms=BASE + i * 400) for i in range(5)]   # windows 0,0,0,1,1
        assert [f.result(10).offset for f in futs] == [0, 1, 2, 3, 4]
        p.produce("t", b"y", timestamp_ms=BASE + 2500, on_delivery=lambda err, md: seen.append((err, md.offset)))
        p.produce("small", b"z" * 500, timestamp_ms=BASE)          # refused by the broker: not counted
        p.flush()
        assert seen == [(None, 5)]
        # The audit topic refused the counts (too large for it): nothing there yet, counts kept.
        assert produced_counts(b.bootstrap, "t", 1000, "audit") is None
        with AdminClient(b.bootstrap) as admin:
            from kafka_client import AlterConfigOp

            res = ConfigResource(ConfigResourceType.TOPIC, "audit")
            admin.incremental_alter_configs({res: [AlterConfigOp("max.message.bytes", None, "delete")]},
                                            raise_on_error=True)
        p.close()
        assert produced_counts(b.bootstrap, "t", 1000, "audit") == {BASE: 3, BASE + 1000: 2, BASE + 2000: 1}
        assert produced_counts(b.bootstrap, "small", 1000, "audit") is None
        assert stored_counts(b.bootstrap, "t", 1000) == {BASE: 3, BASE + 1000: 2, BASE + 2000: 1}
        p.producer.close()
