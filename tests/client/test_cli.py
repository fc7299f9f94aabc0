"""``kafka-core`` client subcommands (kafka_cli.client) against both brokers."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import time
import uuid

import pytest
from kafka_cli.client import LineParser, Progress, TextFormatter, _split_configs
from kafka_cli.main import main

from .helpers import consume, flat


def run(capsys, argv: list[str], stdin: str | None = None, monkeypatch=None) -> tuple[int, str, str]:  # type: ignore[no-untyped-def]
    if stdin is not None:
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    rc = main(argv)
    out, err = capsys.readouterr()
    return rc, out, err


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def name() -> str:
    return f"cli-{uuid.uuid4().hex[:8]}"


# ---------------------------------------------------------------- no broker

def test_line_parser_console_producer_format() -> None:
    p = LineParser({"parse.key": "true", "key.separator": ":", "parse.headers": "true",
                    "headers.delimiter": "|", "headers.separator": ";", "headers.key.separator": "=",
                    "null.marker": "<null>"})
    assert p.parse("a=1;b=2|k:v:w", 1) == (b"k", b"v:w", [("a", b"1"), ("b", b"2")])
    assert p.parse("a=<null>;c|<null>:v", 2) == (None, b"v", [("a", None), ("c", None)])
    assert LineParser({}).parse("just a value\twith tab", 1) == (None, b"just a value\twith tab", [])
    with pytest.raises(Exception, match="no key separator"):
        LineParser({"parse.key": "true"}).parse("novalue", 7)
    assert LineParser({"parse.key": "true", "ignore.error": "true"}).parse("novalue", 7) == (None, b"novalue", [])


def test_split_configs_and_formatter() -> None:
    assert _split_configs("a=1,b=[x,y],c=2") == ["a=1", "b=x,y", "c=2"]

    class R:
        offset, timestamp, key, value, headers = 5, 99, None, b"v", [("h", b"1")]

    f = TextFormatter({"print.key": "true", "print.offset": "true", "print.headers": "true",
                       "key.separator": "|"})
    assert f("t", 0, R()) == "Offset:5|h:1|null|v"


def test_progress_only_on_terminals() -> None:
    buf = io.StringIO()
    p = Progress(100, stream=buf)
    p.update(50)
    p.close()
    assert buf.getvalue() == ""  # not a terminal: nothing
    p = Progress(100, stream=buf, force=True)
    p.update(50)
    p.bar.refresh()
    shown = buf.getvalue()
    p.close()
    assert "50/100" in shown and "50%" in shown, shown


def test_bad_flags_and_unreachable_broker(capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    # --bootstrap-server missing: $KAFKA_BOOTSTRAP_SERVERS, else localhost:9092 (issue 15), where the
    # suite runs no broker; main() reads the environment when it builds its parser
    monkeypatch.delenv("KAFKA_BOOTSTRAP_SERVERS", raising=False)
    rc, _, err = run(capsys, ["topic", "create", "--topic", "x"])
    assert rc == 1 and "cannot connect to any broker (localhost:9092" in err
    rc, _, err = run(capsys, ["consume", "-b", "127.0.0.1:1", "--topic", "t", "--offset", "3"])
    assert rc == 2 and err.count("\n") == 1 and "--offset needs --partition" in err
    t0 = time.monotonic()
    rc, _, err = run(capsys, ["topic", "list", "--bootstrap-server", "127.0.0.1:1"])
    assert rc == 1 and "cannot connect to any broker" in err and err.count("\n") == 1
    assert time.monotonic() - t0 < 10
    rc, _, err = run(capsys, ["topic", "create", "-b", "127.0.0.1:1", "--topic", "x", "--config", "novalue"])
    assert rc == 2 and "KEY=VALUE" in err


# ---------------------------------------------------------------- with a broker

def test_topic_lifecycle(capsys, bootstrap: str, kafka) -> None:  # type: ignore[no-untyped-def]
    t = name()
    rc, out, _ = run(capsys, ["topic", "create", "--bootstrap-server", bootstrap, "--topic", t, "--partitions", "3",
                              "--replication-factor", "1", "--config", "retention.ms=100000"])
    assert rc == 0 and f"Created topic {t}." in out
    rc, _, err = run(capsys, ["topic", "create", "-b", bootstrap, "--topic", t])
    assert rc == 1 and "TOPIC_ALREADY_EXISTS" in err and err.count("\n") == 1
    assert run(capsys, ["topic", "create", "-b", bootstrap, "--topic", t, "--if-not-exists"])[0] == 0
    rc, out, _ = run(capsys, ["topic", "list", "-b", bootstrap])
    assert rc == 0 and t in out.split()
    rc, out, _ = run(capsys, ["topic", "describe", "-b", bootstrap, "--topic", t])
    lines = out.splitlines()
    assert rc == 0 and "PartitionCount: 3" in lines[0] and "retention.ms=100000" in lines[0]
    assert len(lines) == 4 and all("Leader:" in x for x in lines[1:])
    rc, out, _ = run(capsys, ["topic", "alter-config", "-b", bootstrap, "--topic", t,
                              "--add-config", "retention.ms=5000,max.message.bytes=20000"])
    assert rc == 0
    out = run(capsys, ["topic", "describe", "-b", bootstrap, "--topic", t])[1].splitlines()[0]
    assert "retention.ms=5000" in out and "max.message.bytes=20000" in out
    assert run(capsys, ["topic", "alter-config", "-b", bootstrap, "--topic", t, "--delete-config", "retention.ms"])[0] == 0
    out = run(capsys, ["topic", "describe", "-b", bootstrap, "--topic", t])[1].splitlines()[0]
    assert "retention.ms" not in out and "max.message.bytes=20000" in out
    rc, _, err = run(capsys, ["topic", "alter-config", "-b", bootstrap, "--topic", t + "-nope", "--add-config", "a=b"])
    assert rc == 1 and "unknown topic" in err
    rc, out, _ = run(capsys, ["topic", "delete", "-b", bootstrap, "--topic", t])
    assert rc == 0 and f"Deleted topic {t}." in out
    rc, _, err = run(capsys, ["topic", "delete", "-b", bootstrap, "--topic", t])
    assert rc == 1 and "unknown topic" in err
    assert run(capsys, ["topic", "delete", "-b", bootstrap, "--topic", t, "--if-exists"])[0] == 0
    rc, _, err = run(capsys, ["topic", "describe", "-b", bootstrap, "--topic", t])
    assert rc == 1 and "unknown topic" in err


def test_produce_and_consume_formats(capsys, monkeypatch, bootstrap: str, new_topic) -> None:  # type: ignore[no-untyped-def]
    t = new_topic(2)
    lines = "h1:a,h2:b\tk1:v1\n\tk2:v2\nh3:c\tk3:v3 with spaces\n"
    rc, _, err = run(capsys, ["produce", "-b", bootstrap, "--topic", t, "--partition", "1",
                              "--property", "parse.key=true", "--property", "key.separator=:",
                              "--property", "parse.headers=true"], stdin=lines, monkeypatch=monkeypatch)
    assert rc == 0, err
    recs = flat(consume(bootstrap, t, 3, partitions=2))
    assert [(r.key, r.value, r.headers) for r in recs] == [
        (b"k1", b"v1", [("h1", b"a"), ("h2", b"b")]), (b"k2", b"v2", []), (b"k3", b"v3 with spaces", [("h3", b"c")])]
    rc, out, err = run(capsys, ["consume", "-b", bootstrap, "--topic", t, "--from-beginning", "--max-messages", "3",
                                "--format", "json", "--timeout-ms", "20000"])
    assert rc == 0 and "Processed a total of 3 messages" in err
    objs = [json.loads(x) for x in out.splitlines()]
    assert [(o["partition"], o["offset"], o["key"], o["value"]) for o in objs] == [
        (1, 0, "k1", "v1"), (1, 1, "k2", "v2"), (1, 2, "k3", "v3 with spaces")]
    assert objs[0]["headers"] == [{"key": "h1", "value": "a"}, {"key": "h2", "value": "b"}]
    assert all(isinstance(o["timestamp"], int) and o["timestamp"] > 0 for o in objs)
    # Plain values, one per line; --offset on one partition; --timeout-ms ends the run.
    rc, out, _ = run(capsys, ["consume", "-b", bootstrap, "--topic", t, "--partition", "1", "--offset", "1",
                              "--timeout-ms", "1500"])
    assert rc == 0 and out.splitlines() == ["v2", "v3 with spaces"]
    rc, out, _ = run(capsys, ["consume", "-b", bootstrap, "--topic", t, "--from-beginning", "--timeout-ms", "1500",
                              "--property", "print.key=true", "--property", "print.partition=true"])
    assert rc == 0 and out.splitlines()[0] == "Partition:1\tk1\tv1"
    rc, _, err = run(capsys, ["consume", "-b", bootstrap, "--topic", t, "--partition", "7", "--timeout-ms", "100"])
    assert rc == 1 and "no partition 7" in err
    rc, _, err = run(capsys, ["consume", "-b", bootstrap, "--topic", t + "-missing", "--timeout-ms", "100"])
    assert rc == 1 and "unknown topic" in err and err.count("\n") == 1


def test_consume_timestamp_and_group(capsys, monkeypatch, bootstrap: str, new_topic, kafka) -> None:  # type: ignore[no-untyped-def]
    from .conftest import require_api

    t = new_topic()
    from kafka_client import Producer

    with Producer(bootstrap, linger_ms=0) as p:
        for i in range(10):
            p.send(t, b"v%d" % i, timestamp_ms=1_000_000 + i * 10).result(30)
    rc, out, _ = run(capsys, ["consume", "-b", bootstrap, "--topic", t, "--timestamp", str(1_000_000 + 65),
                              "--timeout-ms", "1500"])
    assert rc == 0 and out.splitlines() == ["v7", "v8", "v9"]
    require_api(kafka, 11, "JoinGroup")
    g = f"g-{uuid.uuid4().hex[:6]}"
    rc, out, _ = run(capsys, ["consume", "-b", bootstrap, "--topic", t, "--group", g, "--from-beginning",
                              "--max-messages", "4", "--timeout-ms", "30000"])
    assert rc == 0 and out.splitlines() == ["v0", "v1", "v2", "v3"]
    rc, out, _ = run(capsys, ["consume", "-b", bootstrap, "--topic", t, "--group", g, "--max-messages", "6",
                              "--timeout-ms", "30000"])
    assert rc == 0 and out.splitlines() == [f"v{i}" for i in range(4, 10)]  # continues from the commit


def test_perf_produce_and_consume_json(capsys, bootstrap: str, new_topic) -> None:  # type: ignore[no-untyped-def]
    t = new_topic()
    rc, out, err = run(capsys, ["perf", "produce", "-b", bootstrap, "--topic", t, "--num-records", "3000",
                                "--record-size", "100", "--throughput", "-1", "--producer-props", "acks=1",
                                "linger.ms=2", "--json"])
    assert rc == 0, err
    res = json.loads(out)     # --json: stdout holds the JSON alone, the human line goes to stderr
    assert res["records"] == 3000 and res["records_per_sec"] > 0 and res["mb_per_sec"] > 0
    assert 0 <= res["p50_ms"] <= res["p95_ms"] <= res["p99_ms"] <= res["p999_ms"] <= res["max_latency_ms"]
    assert res["avg_latency_ms"] > 0
    assert "records sent" in err.splitlines()[-1]
    rc, out, err = run(capsys, ["perf", "consume", "-b", bootstrap, "--topic", t, "--messages", "3000", "--json"])
    assert rc == 0, err
    res = json.loads(out)
    assert "data.consumed.in.MB" in err
    assert res["records"] == 3000 and res["bytes"] == 300000 and res["records_per_sec"] > 0 and res["mb_per_sec"] > 0
    rc, out, err = run(capsys, ["perf", "consume", "-b", bootstrap, "--topic", t, "--messages", "3001",
                                "--timeout-ms", "1000", "--json"])
    assert rc == 1 and "only 3000 of 3001" in err


def test_perf_produce_counts_failures_of_records_it_does_not_time(capsys, bootstrap: str, new_topic) -> None:  # type: ignore[no-untyped-def]
    """perf produce times one record in every num_records / 10,000 with a callback; the others'
    failures still count (the producer's record-error-total): batches too large for the topic's
    max.message.bytes (even one record alone) fail and the run says how many records."""
    t = new_topic(config={"max.message.bytes": "100"})
    rc, out, err = run(capsys, ["perf", "produce", "-b", bootstrap, "--topic", t, "--num-records", "20000",
                                "--record-size", "100", "--throughput", "-1", "--producer-props", "acks=1",
                                "batch.size=1000000"])
    assert rc == 1, err
    assert "20000 of 20000 records failed" in err      # 10,000 of them timed
    res_rc, out, err = run(capsys, ["perf", "produce", "-b", bootstrap, "--topic", new_topic(), "--num-records",
                                    "50000", "--record-size", "100", "--throughput", "-1", "--json"])
    assert res_rc == 0, err
    res = json.loads(out)
    assert res["latency_samples"] == 10_000 and res["records"] == 50000


def test_broker_health(capsys, bootstrap: str, new_topic) -> None:  # type: ignore[no-untyped-def]
    """Healthy: exit 0 and one line; --json parses; nothing listening: exit 1 with the reason."""
    new_topic(partitions=2)
    rc, out, err = run(capsys, ["broker-health", "-b", bootstrap])
    assert rc == 0 and out.startswith("healthy: ") and "none offline" in out, out + err
    rc, out, _ = run(capsys, ["broker-health", "-b", bootstrap, "--json"])
    res = json.loads(out)
    assert rc == 0 and res["healthy"] is True and res["offline"] == 0 and res["partitions"] >= 2
    dead = f"127.0.0.1:{_free_port()}"
    rc, out, err = run(capsys, ["broker-health", "-b", dead, "--json"])
    assert rc == 1 and json.loads(out)["healthy"] is False and dead in json.loads(out)["error"]
    rc, out, err = run(capsys, ["broker-health", "-b", dead])
    assert rc == 1 and "cannot connect" in err and dead in err


def test_subprocess_pipe_is_machine_readable(bootstrap: str, new_topic) -> None:  # type: ignore[no-untyped-def]
    """Run as a program with pipes: no progress bar or escape codes, the exit status tells."""
    t = new_topic()
    code = "import sys; from kafka_cli.main import main; sys.exit(main(sys.argv[1:]))"
    env = {"PYTHONPATH": ":".join(sys.path), "PATH": "/usr/bin:/bin"}
    data = "".join(f"line {i}\n" for i in range(5000))
    r = subprocess.run([sys.executable, "-c", code, "produce", "--bootstrap-server", bootstrap, "--topic", t],
                       input=data, capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    r = subprocess.run([sys.executable, "-c", code, "consume", "--bootstrap-server", bootstrap, "--topic", t,
                        "--from-beginning", "--max-messages", "5000", "--timeout-ms", "30000"],
                       capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 0
    assert r.stdout.splitlines() == [f"line {i}" for i in range(5000)]
    assert "\r" not in r.stderr and "\x1b" not in r.stderr
    r = subprocess.run([sys.executable, "-c", code, "topic", "list", "--bootstrap-server", "127.0.0.1:1"],
                       capture_output=True, text=True, timeout=60, env=env)
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and r.stdout == ""
