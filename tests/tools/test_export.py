"""``kafka-core export`` (issue 13) on a kafka-core broker, through kafka_client only: the files read
back with pyarrow and DuckDB hold exactly the topic's records, once, through restarts, lost
commits, kill -9 and a group of two exporters."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from kafka_cli.main import main
from kafka_tools.export import ledger_dir, read_ledger, recover_partition

from tests.client.conftest import make_topic as client_topic

from .conftest import export_cmd, make_topic, run_export, subprocess_env
from .helpers import (
    assert_exactly_once,
    produce,
    read_duckdb,
    read_pyarrow,
    read_topic,
    visible_files,
)


def filled_topic(bootstrap: str, n: int, partitions: int) -> tuple[str, dict]:  # type: ignore[type-arg]
    """A new topic with the first n records of helpers.record, and its content as read back."""
    topic = make_topic(bootstrap, partitions)
    produce(bootstrap, topic, n, partitions)
    return topic, read_topic(bootstrap, topic)


def summaries(procs: list[subprocess.Popen]) -> list[dict]:  # type: ignore[type-arg]
    """Wait for exporters started with --json; their summaries."""
    out = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=180)
        assert p.returncode == 0, stderr[-3000:]
        out.append(json.loads(stdout))
    return out


def _wait_for(cond, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def read_pyarrow_safe(out: Path, topic: str) -> list:  # type: ignore[type-arg]
    return read_pyarrow(out, topic) if (out / f"topic={topic}").exists() else []


def test_export_100k_records_exactly_once(core_bootstrap: str, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    topic, truth = filled_topic(core_bootstrap, 100_000, 4)
    assert len(truth) == 100_000
    out = tmp_path / "out"
    rc = main(["export", "-b", core_bootstrap, "--topic", topic, "--group", "g1", "--out", str(out),
               "--until-caught-up", "--roll-records", "30000", "--json"])
    summary = json.loads(capsys.readouterr().out)
    assert rc == 0
    assert summary["records"] == 100_000
    assert summary["partitions"] == {f"{topic}-{p}": 25_000 for p in range(4)}
    # 25,000 records per partition in ranges of at most 30,000: one range each, over the five
    # hours its timestamps fall in (22:00 to 02:00, and 21 for the late ones of the first hour).
    assert summary["ranges"] == 4
    dirs = {f.parent.relative_to(out).as_posix() for f in visible_files(out)}
    assert dirs == {f"topic={topic}/date=2026-12-06/hour=21", f"topic={topic}/date=2026-12-06/hour=22", f"topic={topic}/date=2026-12-06/hour=23",
                    f"topic={topic}/date=2026-12-07/hour=00", f"topic={topic}/date=2026-12-07/hour=01"}
    names = sorted({f.name for f in visible_files(out)})
    assert names == [f"part-{p}-{0:020d}-{24999:020d}.parquet" for p in range(4)]
    assert_exactly_once(truth, read_pyarrow(out, topic))
    assert_exactly_once(truth, read_duckdb(out, topic))

    # A second run of the group has nothing left to do.
    again = run_export(core_bootstrap, "--topic", topic, "--group", "g1", "--out", str(out), "--until-caught-up")
    assert again["records"] == 0 and again["files"] == 0
    # The whole output directory, as a warehouse user points at it (the ledger is skipped by its
    # underscore).  pandas and Spark read it in test_export_spark.py.
    whole = pq.read_table(out)
    assert whole.num_rows == 100_000 and set(whole.column_names) == {
        "partition", "offset", "timestamp", "key", "value", "headers", "topic", "date", "hour"}


def test_lost_commit_and_offset_reset_never_write_twice(core_bootstrap: str, tmp_path: Path) -> None:
    """The files are durable but the group does not know (a crash between file and commit, a new
    group, an offset reset to the middle of a range): the ledger makes the rerun skip what was
    exported, even when the re-read would have rolled at other offsets."""
    from kafka_client import Consumer, TopicPartition

    topic = make_topic(core_bootstrap, 2)
    produce(core_bootstrap, topic, 10_000, 2)
    out = tmp_path / "out"
    first = run_export(core_bootstrap, "--topic", topic, "--group", "a", "--out", str(out), "--until-caught-up",
                       "--roll-records", "1500")
    assert first["records"] == 10_000
    # A group that never committed: reads from the start, with other roll sizes.
    other = run_export(core_bootstrap, "--topic", topic, "--group", "b", "--out", str(out), "--until-caught-up",
                       "--roll-records", "1000")
    assert other["records"] == 0 and other["skipped_ranges"] >= 1
    # Group a's offsets moved back into the middle of ranges.
    c = Consumer(bootstrap_servers=core_bootstrap, group_id="a", enable_auto_commit=False)
    c.assign([TopicPartition(topic, 0), TopicPartition(topic, 1)])
    c.commit({TopicPartition(topic, 0): 700, TopicPartition(topic, 1): 0})
    c.close()
    more = run_export(core_bootstrap, "--topic", topic, "--group", "a", "--out", str(out), "--until-caught-up")
    assert more["records"] == 0
    # New records after that: exported once, in ranges after the old ones.
    produce(core_bootstrap, topic, 3_000, 2, start=10_000)
    tail = run_export(core_bootstrap, "--topic", topic, "--group", "b", "--out", str(out), "--until-caught-up")
    assert tail["records"] == 3_000
    truth = read_topic(core_bootstrap, topic)
    assert_exactly_once(truth, read_pyarrow(out, topic))
    assert_exactly_once(truth, read_duckdb(out, topic))
    assert read_ledger(out, topic, 0)[-1] == (first["partitions"][f"{topic}-0"], 6_499)


def test_recovery_finishes_done_ranges_and_drops_pending_ones(tmp_path: Path) -> None:
    """The two crash windows of a range, laid out as a crash leaves them: after the commit point
    (``.done`` with a temporary file not yet renamed) and before it (``.pending``)."""
    out = tmp_path
    ldir = ledger_dir(out, "t", 3)
    ldir.mkdir(parents=True)
    hour = out / "topic=t/date=2026-12-06/hour=22"
    hour.mkdir(parents=True)
    done_name, pending_name = f"{0:020d}-{9:020d}", f"{10:020d}-{19:020d}"
    (ldir / f"{done_name}.done").write_text(json.dumps(
        {"records": 10, "files": [f"topic=t/date=2026-12-06/hour=22/part-3-{done_name}.parquet"]}))
    (hour / f".part-3-{done_name}.parquet.tmp").write_bytes(b"whole file")
    (ldir / f"{pending_name}.pending").write_text(json.dumps(
        {"files": [f"topic=t/date=2026-12-06/hour=22/part-3-{pending_name}.parquet"]}))
    (hour / f".part-3-{pending_name}.parquet.tmp").write_bytes(b"half a fi")
    (ldir / f"{20:020d}-{29:020d}.pending").write_text('{"files": ["top')   # torn: no file was written yet
    rec = recover_partition(out, "t", 3)
    assert rec.ranges == [(0, 9)] and rec.recovered == 1 and rec.discarded == 2 and rec.recovered_records == 10
    assert sorted(p.name for p in hour.iterdir()) == [f"part-3-{done_name}.parquet"]
    assert (hour / f"part-3-{done_name}.parquet").read_bytes() == b"whole file"
    assert sorted(p.name for p in ldir.iterdir()) == [f"{done_name}.done"]
    assert recover_partition(out, "t", 3).recovered == 0      # idempotent


def _done_ranges(out: Path) -> int:
    return sum(1 for _ in (out / "_ledger").rglob("*.done")) if (out / "_ledger").exists() else 0


@pytest.mark.slow
def test_kill_9_ten_times_then_exactly_once(core_bootstrap: str, tmp_path: Path) -> None:
    """Each run is killed at a random moment after it wrote its first range (so every kill lands
    in the middle of exporting: between files, inside one, between a file and its commit).  Each
    run restarts as the same static member (group.instance.id, as a restarted pod would), so it
    takes the partitions over at once instead of waiting out the dead one's session."""
    N = 120_000   # noqa: N806
    topic, truth = filled_topic(core_bootstrap, N, 3)
    out = tmp_path / "out"
    rng = random.Random(13)
    args = ("--topic", topic, "--group", "crashy", "--out", str(out), "--until-caught-up", "--roll-records", "250",
            "--consumer-property", "group.instance.id=crashy-0")
    killed = 0
    for _ in range(10):
        ranges = _done_ranges(out)
        proc = subprocess.Popen(export_cmd(core_bootstrap, *args), env=subprocess_env(), stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE)
        _wait_for(lambda p=proc, n=ranges: _done_ranges(out) > n or p.poll() is not None, 60,  # type: ignore[misc]
                  "a range of this run")
        time.sleep(rng.uniform(0, 0.2))
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            killed += 1
        proc.wait(30)
        # What readers list is whole files only: each visible file reads, no temporary name shows.
        for f in visible_files(out):
            assert f.suffix == ".parquet", f
            pq.read_table(f)
        so_far = read_pyarrow_safe(out, topic)
        assert_exactly_once({k: truth[k] for k, _ in so_far}, so_far)
    assert killed >= 8, f"only {killed} of 10 runs were still going when killed: make the export longer"
    before = len(read_pyarrow(out, topic))
    assert before > 0
    final = run_export(core_bootstrap, *args)
    # A range a kill left ledgered but not yet renamed is invisible to `before`; the final run
    # renames it into place (recovered_records) instead of exporting it again.
    assert final["records"] + final["recovered_records"] == N - before
    assert not list(out.rglob("*.tmp")) and not list(out.rglob("*.pending"))   # crash debris cleared
    assert_exactly_once(truth, read_pyarrow(out, topic))
    assert_exactly_once(truth, read_duckdb(out, topic))


def test_two_exporters_share_the_group(tmp_path: Path) -> None:
    """Kafka's default group.initial.rebalance.delay.ms (3 s) lets both join the first generation:
    each exports its share, the union is the topic, once."""
    from kafka_bench.kafka_core_broker import KafkaCoreBroker

    with KafkaCoreBroker(settings={"num.partitions": "1"}) as broker:
        bootstrap = broker.bootstrap
        topic, truth = filled_topic(bootstrap, 60_000, 6)
        out = tmp_path / "out"
        cmd = export_cmd(bootstrap, "--topic", topic, "--group", "pair", "--out", str(out), "--until-caught-up",
                         "--roll-records", "2000", "--json")
        procs = [subprocess.Popen(cmd, env=subprocess_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True) for _ in range(2)]
        results = summaries(procs)
        broker.stop()
    assert all(r["records"] > 0 for r in results), results
    assert sum(r["records"] for r in results) == 60_000
    mine = [set(r["partitions"]) for r in results]
    assert not mine[0] & mine[1] and len(mine[0] | mine[1]) == 6
    assert_exactly_once(truth, read_pyarrow(out, topic))
    assert_exactly_once(truth, read_duckdb(out, topic))


def test_jsonl_and_string_values(core_bootstrap: str, tmp_path: Path) -> None:
    topic, truth = filled_topic(core_bootstrap, 5_000, 2)
    out = tmp_path / "jsonl"
    s = run_export(core_bootstrap, "--topic", topic, "--group", "j", "--out", str(out), "--format", "jsonl",
                   "--until-caught-up")
    assert s["records"] == 5_000
    assert all(f.suffix == ".jsonl" for f in visible_files(out))
    assert_exactly_once(truth, read_duckdb(out, topic, "jsonl"))
    # string values: Parquet strings DuckDB compares as text
    out2 = tmp_path / "strings"
    run_export(core_bootstrap, "--topic", topic, "--group", "s", "--out", str(out2), "--value-format", "string",
               "--key-format", "string", "--until-caught-up")
    import duckdb

    rows = duckdb.sql(f"SELECT partition, \"offset\", value FROM read_parquet('{out2}/**/*.parquet')").fetchall()
    got = {(p, o): v for p, o, v in rows}
    assert len(got) == 5_000
    assert all(got[(k[0], k[1])] == (None if v[2] is None else v[2].decode()) for k, v in truth.items())


def test_json_values_and_a_bad_one(core_bootstrap: str, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    from kafka_client import Producer

    topic = make_topic(core_bootstrap, 1)
    p = Producer(core_bootstrap)
    for i in range(100):
        p.produce(topic, json.dumps({"n": i, "s": "x" * (i % 5)}).encode(), partition=0)
    p.flush(30)
    out = tmp_path / "out"
    assert main(["export", "-b", core_bootstrap, "--topic", topic, "--group", "js", "--out", str(out),
                 "--value-format", "json", "--until-caught-up"]) == 0
    import duckdb

    got = duckdb.sql(f"SELECT sum((value->>'n')::INT), typeof(any_value(value)) FROM "
                     f"read_parquet('{out}/**/*.parquet')").fetchall()
    assert got == [(sum(range(100)), "JSON")]
    # A value that is not JSON: the export stops, naming the record; nothing of it is committed.
    p.produce(topic, b"{not json", partition=0)
    p.produce(topic, b"{}", partition=0)
    p.flush(30)
    p.close()
    capsys.readouterr()
    rc = main(["export", "-b", core_bootstrap, "--topic", topic, "--group", "js", "--out", str(out),
               "--value-format", "json", "--until-caught-up"])
    err = capsys.readouterr().err
    assert rc == 1 and f"{topic}-0 offset 100" in err and "json" in err, err
    assert read_ledger(out, topic, 0) == [(0, 99)]


def test_include_regex_exports_matching_topics(core_bootstrap: str, tmp_path: Path) -> None:
    a, b = make_topic(core_bootstrap, 1), make_topic(core_bootstrap, 1)
    produce(core_bootstrap, a, 200, 1)
    produce(core_bootstrap, b, 300, 1)
    out = tmp_path / "out"
    s = run_export(core_bootstrap, "--include", f"({a}|{b})", "--group", "inc", "--out", str(out),
                   "--until-caught-up")
    assert sorted(s["topics"]) == sorted([a, b]) and s["records"] == 500
    assert {p.name for p in out.iterdir()} == {f"topic={a}", f"topic={b}", "_ledger"}


@pytest.mark.parametrize("argv, code, message", [
    (["--topic", "x", "--out", "o"], 2, "--group"),                                    # argparse
    (["--topic", "x", "--include", "y", "--group", "g", "--out", "o"], 2, "not allowed with"),
    (["--include", "(", "--group", "g", "--out", "o"], 2, "bad --include regex"),
    (["--topic", "x", "--group", "g", "--out", "o", "--value-format", "avro-schemaless"], 2, "--value-schema"),
    (["--topic", "x", "--group", "g", "--out", "o", "--value-schema", '"long"'], 2, "avro-schemaless"),
    (["--topic", "x", "--group", "g", "--out", "o", "--value-format", "avro-schemaless", "--value-schema",
      '["int", "string"]'], 2, "no union type"),
    (["--topic", "x", "--group", "g", "--out", "o", "--value-format", "avro-schemaless", "--value-schema",
      '{"type": "record"}'], 2, "bad Avro schema"),
    (["--topic", "x", "--group", "g", "--out", "o", "--value-format", "avro-schemaless", "--value-schema",
      '{"type": "record", "name": "L", "fields": [{"name": "next", "type": ["null", "L"]}]}'], 2, "recursive"),
    (["--topic", "x", "--group", "g", "--out", "o", "--value-format", "avro-schemaless", "--value-schema",
      "/no/such/schema.avsc"], 2, "cannot read --value-schema"),
    (["--topic", "x", "--group", "g", "--out", "o", "--roll-records", "0"], 2, "must be positive"),
    (["--topic", "x", "--group", "g", "--out", "o", "--compression", "lzma"], 2, "--compression"),
    (["--topic", "x", "--group", "g", "--out", "o", "-b", "127.0.0.1:1"], 1, "cannot connect"),
])
def test_bad_arguments(capsys, argv: list[str], code: int, message: str) -> None:  # type: ignore[no-untyped-def]
    try:
        rc = main(["export", *argv])
    except SystemExit as exc:     # argparse's own errors
        rc = int(exc.code or 0)
    err = capsys.readouterr().err
    assert rc == code and message in err, (rc, err)
    assert "Traceback" not in err


def test_unknown_topic(core_bootstrap: str, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    rc = main(["export", "-b", core_bootstrap, "--topic", "no-such-topic-here", "--group", "g", "--out",
               str(tmp_path), "--until-caught-up", "--json"])
    captured = capsys.readouterr()
    assert rc == 1 and "unknown topic" in captured.err and captured.out == ""


@pytest.mark.interop   # (the apache_kafka fixture marks it too: tests/conftest.py)
def test_export_from_apache_kafka(apache_kafka, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Apache Kafka 4.x as the source: the same files, the same exactness."""
    bootstrap = apache_kafka.bootstrap
    topic, truth = filled_topic(bootstrap, 30_000, 3)
    out = tmp_path / "out"
    s = run_export(bootstrap, "--topic", topic, "--group", "from-apache", "--out", str(out), "--until-caught-up",
                   "--roll-records", "4000")
    assert s["records"] == 30_000 and s["commit_failures"] == 0
    assert_exactly_once(truth, read_pyarrow(out, topic))
    assert_exactly_once(truth, read_duckdb(out, topic))
    # The group's offsets are Kafka's own: kafka-consumer-groups would show no lag.
    from kafka_client import Consumer, TopicPartition

    c = Consumer(bootstrap_servers=bootstrap, group_id="from-apache", enable_auto_commit=False)
    try:
        assert {p: c.committed(TopicPartition(topic, p)) for p in range(3)} == {p: 10_000 for p in range(3)}
    finally:
        c.close()


def test_continuous_rolls_by_time_and_survives_rebalances(core_bootstrap: str, tmp_path: Path) -> None:
    """Without --until-caught-up: files roll every --roll-seconds; a second exporter joining makes
    the first flush what it holds for the partitions it gives up; SIGTERM writes the open buffers
    and exits 0; the union stays exactly once."""
    topic = make_topic(core_bootstrap, 4)
    out = tmp_path / "out"
    cmd = export_cmd(core_bootstrap, "--topic", topic, "--group", "live", "--out", str(out), "--roll-seconds", "1",
                     "--json")

    def exported() -> int:
        return len(read_pyarrow_safe(out, topic))

    env = subprocess_env()
    a = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    produce(core_bootstrap, topic, 8_000, 4)
    _wait_for(lambda: exported() == 8_000, 60, "the first records in files (time-based roll)")
    b = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    produce(core_bootstrap, topic, 8_000, 4, start=8_000)
    _wait_for(lambda: exported() == 16_000, 60, "the records produced while the group rebalanced")
    a.send_signal(signal.SIGTERM)            # a leaves: b takes its partitions over
    sa, ea = a.communicate(timeout=60)
    assert a.returncode == 0, ea[-3000:]
    produce(core_bootstrap, topic, 8_000, 4, start=16_000)
    _wait_for(lambda: exported() == 24_000, 60, "the records after the first exporter left")
    b.send_signal(signal.SIGTERM)
    sb, eb = b.communicate(timeout=60)
    assert b.returncode == 0, eb[-3000:]
    ra, rb = json.loads(sa), json.loads(sb)
    assert ra["records"] > 0 and rb["records"] > 0 and ra["records"] + rb["records"] == 24_000
    truth = read_topic(core_bootstrap, topic)
    assert_exactly_once(truth, read_pyarrow(out, topic))
    assert_exactly_once(truth, read_duckdb(out, topic))


def test_second_exporter_joining_mid_run(core_bootstrap: str, tmp_path: Path) -> None:
    """A rebalance in the middle of an --until-caught-up export: the first exporter flushes and
    commits what it holds for the partitions it gives up, and does not take the moment it holds
    none for being done; the second resumes from the ledger.  Exactly once, both exit 0."""
    topic, truth = filled_topic(core_bootstrap, 90_000, 6)
    out = tmp_path / "out"
    cmd = export_cmd(core_bootstrap, "--topic", topic, "--group", "late", "--out", str(out), "--until-caught-up",
                     "--roll-records", "500", "--json")
    env = subprocess_env()
    a = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for(lambda: (out / "_ledger").exists() and any((out / "_ledger").rglob("*.done")), 60,
              "the first exporter's first range")
    b = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    results = summaries([a, b])
    assert results[0]["records"] > 0
    assert sum(r["records"] for r in results) == 90_000
    assert_exactly_once(truth, read_pyarrow(out, topic))


AVRO_SCHEMA = {
    "type": "record", "name": "Event", "namespace": "shop",
    "fields": [
        {"name": "id", "type": "long"},
        {"name": "name", "type": "string"},
        {"name": "tags", "type": {"type": "array", "items": "string"}},
        {"name": "score", "type": ["null", "double"]},
        {"name": "kind", "type": {"type": "enum", "name": "Kind", "symbols": ["VIEW", "BUY"]}},
        {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "attrs", "type": {"type": "map", "values": "long"}},
        {"name": "parent", "type": ["null", {"type": "record", "name": "Ref", "fields": [
            {"name": "id", "type": "long"}, {"name": "code", "type": {"type": "fixed", "name": "Code", "size": 2}}]}]},
        {"name": "sibling", "type": ["null", "Ref"]},
    ],
}


def _event(i: int) -> dict:  # type: ignore[type-arg]
    import datetime as dt

    return {"id": i, "name": f"n{i}", "tags": [f"t{j}" for j in range(i % 3)],
            "score": None if i % 4 == 0 else i / 2, "kind": "BUY" if i % 5 == 0 else "VIEW",
            "at": dt.datetime(2026, 12, 7, 10, 0, tzinfo=dt.UTC) + dt.timedelta(seconds=i),
            "attrs": {"a": i, "b": -i} if i % 2 else {},
            "parent": None if i % 7 else {"id": -i, "code": b"%02d" % (i % 100)},
            "sibling": {"id": i, "code": b"zz"} if i % 3 == 0 else None}


def test_avro_schemaless_values(core_bootstrap: str, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    import io

    import duckdb
    import fastavro
    from kafka_client import Producer

    parsed = fastavro.parse_schema(AVRO_SCHEMA)
    topic = make_topic(core_bootstrap, 2)
    p = Producer(core_bootstrap)
    for i in range(2_000):
        buf = io.BytesIO()
        fastavro.schemaless_writer(buf, parsed, _event(i))
        p.produce(topic, buf.getvalue() if i != 1_000 else None, partition=i % 2)   # and one tombstone
    p.flush(30)
    schema_file = tmp_path / "event.avsc"
    schema_file.write_text(json.dumps(AVRO_SCHEMA))
    out = tmp_path / "out"
    assert main(["export", "-b", core_bootstrap, "--topic", topic, "--group", "avro", "--out", str(out),
                 "--value-format", "avro-schemaless", "--value-schema", str(schema_file), "--until-caught-up"]) == 0
    rows = pq.read_table(out).to_pylist()
    assert len(rows) == 2_000
    by_id = {r["value"]["id"]: r["value"] for r in rows if r["value"] is not None}
    assert len(by_id) == 1_999 and 1_000 not in by_id
    for i, v in by_id.items():
        want = _event(i)
        want["attrs"] = list(want["attrs"].items())      # an Arrow map reads back as (key, value) pairs
        assert v == want, i
    got = duckdb.sql(f"SELECT count(*), sum(value.id), count(value.parent), max(value.at) FROM "
                     f"read_parquet('{out}/**/*.parquet') WHERE value.kind = 'BUY'").fetchall()[0]
    buys = [i for i in range(2_000) if i % 5 == 0 and i != 1_000]
    assert got[:3] == (len(buys), sum(buys), sum(1 for i in buys if i % 7 == 0))
    # JSON Lines: the decoded value as a JSON object (bytes in base64, times in ISO 8601).
    out2 = tmp_path / "jsonl"
    assert main(["export", "-b", core_bootstrap, "--topic", topic, "--group", "avro-j", "--out", str(out2),
                 "--format", "jsonl", "--value-format", "avro-schemaless", "--value-schema", str(schema_file),
                 "--until-caught-up"]) == 0
    lines = [json.loads(line) for f in visible_files(out2) for line in f.read_text().splitlines()]
    assert len(lines) == 2_000
    first = next(line["value"] for line in lines if line["value"] is not None and line["value"]["id"] == 21)
    assert first["at"] == "2026-12-07T10:00:21+00:00" and first["parent"] == {"id": -21, "code": "MjE="}
    # A value that is not Avro of the schema: the export stops at it, naming it.
    p.produce(topic, b"\x02", partition=0)          # id 1, then nothing: truncated
    p.flush(30)
    p.close()
    capsys.readouterr()
    rc = main(["export", "-b", core_bootstrap, "--topic", topic, "--group", "avro", "--out", str(out),
               "--value-format", "avro-schemaless", "--value-schema", json.dumps(AVRO_SCHEMA), "--until-caught-up"])
    err = capsys.readouterr().err
    assert rc == 1 and f"{topic}-0 offset 1000: not Avro" in err, err


def test_include_picks_up_new_topics_while_running(core_bootstrap: str, tmp_path: Path) -> None:
    """Continuous --include looks for new matching topics every metadata.max.age.ms, as the Java
    consumer's pattern subscription does."""
    prefix = f"inc-{os.getpid()}-{random.randrange(10**6)}"
    first = client_topic(core_bootstrap, f"{prefix}-a")
    produce(core_bootstrap, first, 100, 1)
    out = tmp_path / "out"
    proc = subprocess.Popen(export_cmd(core_bootstrap, "--include", f"{prefix}-.*", "--group", "grow", "--out",
                                       str(out), "--roll-seconds", "0.5", "--consumer-property",
                                       "metadata.max.age.ms=1000", "--json"),
                            env=subprocess_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for(lambda: len(read_pyarrow_safe(out, first)) == 100, 60, "the first topic's records")
        second = client_topic(core_bootstrap, f"{prefix}-b")
        produce(core_bootstrap, second, 50, 1)
        _wait_for(lambda: len(read_pyarrow_safe(out, second)) == 50, 60, "the new topic's records")
    finally:
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr[-3000:]
    assert sorted(json.loads(stdout)["topics"]) == [first, second]


def test_read_committed_stops_past_the_last_transaction_marker(core_bootstrap: str, tmp_path: Path) -> None:
    """A topic ending in transaction markers: no record lies at the end offset's last offsets, so
    --until-caught-up must tell from the consumer's position that it is there.  Aborted records
    are not exported under read_committed."""
    from kafka_client import Consumer, Producer, TopicPartition

    topic = make_topic(core_bootstrap, 1)
    p = Producer(core_bootstrap, transactional_id=f"tx-{topic}")
    p.init_transactions(30)
    for commit in (True, False, True):
        p.begin_transaction()
        for i in range(50):
            p.produce(topic, b"%d" % i, partition=0)
        if commit:
            p.commit_transaction(30)
        else:
            p.flush(30)               # on the log, then aborted
            p.abort_transaction(30)
    p.close()
    out = tmp_path / "out"
    s = run_export(core_bootstrap, "--topic", topic, "--group", "rc", "--out", str(out), "--until-caught-up",
                   "--isolation-level", "read_committed", timeout=60)
    assert s["records"] == 100
    offsets = sorted(r[0][1] for r in read_pyarrow(out, topic))
    assert offsets == list(range(50)) + list(range(102, 152))   # each marker takes an offset
    c = Consumer(bootstrap_servers=core_bootstrap, group_id="rc", enable_auto_commit=False)
    try:
        assert c.committed(TopicPartition(topic, 0)) == 153      # past the last COMMIT marker
    finally:
        c.close()


@pytest.mark.interop
def test_kafka_consumer_groups_sees_the_export_caught_up(core_bootstrap: str, tmp_path: Path) -> None:
    """Apache Kafka's own kafka-consumer-groups reads the exporter's committed offsets: every
    partition at its log end, lag 0."""
    import shutil

    from kafka_bench import apache_kafka as ak

    if shutil.which("java") is None:
        pytest.skip("java is installed by ./dev test")
    ak.ensure_jars()
    topic, _truth = filled_topic(core_bootstrap, 3_000, 3)
    run_export(core_bootstrap, "--topic", topic, "--group", "lag-check", "--out", str(tmp_path / "out"),
               "--until-caught-up")
    r = ak.java_main(ak.CONSUMER_GROUPS, ["--bootstrap-server", core_bootstrap, "--describe", "--group", "lag-check"],
                     timeout=90, check=False)
    out = r.stdout.decode(errors="replace")
    assert r.returncode == 0, out + r.stderr.decode(errors="replace")[-3000:]
    rows = [line.split() for line in out.splitlines() if line.startswith("lag-check ")]
    # GROUP TOPIC PARTITION CURRENT-OFFSET LOG-END-OFFSET LAG ...
    assert sorted((row[1], int(row[2]), row[3], row[4], row[5]) for row in rows) == [
        (topic, p, "1000", "1000", "0") for p in range(3)]
