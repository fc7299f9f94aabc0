"""The kafka-core command as a shell user meets it: --version, the bootstrap default from the
environment, and a pipe closed by `head` (no traceback, no "Broken pipe" error)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

from .conftest import ROOT


def kc(*args: str, env: dict[str, str] | None = None, **kw) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kafka_cli", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=60, env=env, **kw)


def test_version():
    r = kc("--version")
    assert r.returncode == 0 and r.stdout.startswith("kafka-core ")


def test_bootstrap_from_the_environment(broker):
    topic = f"envboot-{uuid.uuid4().hex[:6]}"
    env = dict(os.environ, KAFKA_BOOTSTRAP_SERVERS=broker.bootstrap)
    assert kc("topic", "create", "--topic", topic, env=env).returncode == 0
    listed = kc("topic", "list", env=env)
    assert listed.returncode == 0 and topic in listed.stdout.split()
    # without it (and without the flag) the default is localhost:9092, where the suite runs nothing
    env.pop("KAFKA_BOOTSTRAP_SERVERS")
    r = kc("topic", "list", env=env)
    assert r.returncode == 1 and "cannot connect to any broker (localhost:9092" in r.stderr


def test_output_piped_into_head(broker):
    topic = f"pipe-{uuid.uuid4().hex[:6]}"
    lines = "".join(f"line-{i}\n" for i in range(20000))
    assert kc("produce", "-b", broker.bootstrap, "--topic", topic, input=lines).returncode == 0
    shell = (f"{sys.executable} -m kafka_cli consume -b {broker.bootstrap} --topic {topic} --from-beginning "
             f"--max-messages 20000 --timeout-ms 20000 | head -n 3")
    r = subprocess.run(["bash", "-o", "pipefail", "-c", shell], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.stdout.splitlines() == ["line-0", "line-1", "line-2"]
    assert "Broken pipe" not in r.stderr and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert r.returncode in (0, 141)


def test_console_produce_and_consume_are_bytes_safe(broker):
    """Input that is not UTF-8 reaches the topic byte for byte, and comes back out the same."""
    topic = f"bin-{uuid.uuid4().hex[:6]}"
    data = b"\xff\xfe-not-utf8\n\x80\x81:\xc3\x28\nplain:text\n"
    p = subprocess.run([sys.executable, "-m", "kafka_cli", "produce", "-b", broker.bootstrap, "--topic", topic,
                        "--property", "parse.key=true", "--property", "key.separator=:",
                        "--property", "ignore.error=true"], cwd=ROOT, input=data, capture_output=True, timeout=60)
    assert p.returncode == 0, p.stderr[-2000:]
    c = subprocess.run([sys.executable, "-m", "kafka_cli", "consume", "-b", broker.bootstrap, "--topic", topic,
                        "--from-beginning", "--max-messages", "3", "--timeout-ms", "20000",
                        "--property", "print.key=true", "--property", "key.separator=|"],
                       cwd=ROOT, capture_output=True, timeout=60)
    assert c.returncode == 0, c.stderr[-2000:]
    assert c.stdout == b"null|\xff\xfe-not-utf8\n\x80\x81|\xc3\x28\nplain|text\n"
    from kafka_client import Consumer, TopicPartition

    with Consumer(bootstrap_servers=broker.bootstrap, auto_offset_reset="earliest") as cons:
        cons.assign([TopicPartition(topic, 0)])
        got = []
        while len(got) < 3:
            for recs in cons.poll(5).values():
                got += [(r.key, r.value) for r in recs]
    assert got == [(None, b"\xff\xfe-not-utf8"), (b"\x80\x81", b"\xc3\x28"), (b"plain", b"text")]


def test_topic_list_and_describe_json(broker):
    import json

    topic = f"jsontopic-{uuid.uuid4().hex[:6]}"
    assert kc("topic", "create", "-b", broker.bootstrap, "--topic", topic, "--partitions", "2",
              "--config", "retention.ms=123456").returncode == 0
    listed = kc("topic", "list", "-b", broker.bootstrap, "--json")
    assert listed.returncode == 0 and topic in json.loads(listed.stdout)
    d = kc("topic", "describe", "-b", broker.bootstrap, "--topic", topic, "--json")
    assert d.returncode == 0
    (t,) = json.loads(d.stdout)
    assert t["topic"] == topic and t["partition_count"] == 2 and t["replication_factor"] == 1
    assert t["configs"] == {"retention.ms": "123456"}
    assert [p["partition"] for p in t["partitions"]] == [0, 1] and all(p["leader"] >= 0 for p in t["partitions"])


def test_ctrl_c_on_consume_prints_the_total(broker):
    import signal
    import time

    topic = f"intr-{uuid.uuid4().hex[:6]}"
    assert kc("produce", "-b", broker.bootstrap, "--topic", topic, input="a\nb\nc\n").returncode == 0
    p = subprocess.Popen([sys.executable, "-m", "kafka_cli", "consume", "-b", broker.bootstrap, "--topic", topic,
                          "--from-beginning"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert p.stdout is not None
    got = [p.stdout.readline() for _ in range(3)]    # all three arrived: the consumer now waits for more
    time.sleep(0.3)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=30)
    assert got == ["a\n", "b\n", "c\n"]
    assert p.returncode == 130 and "Processed a total of 3 messages" in err, err[-2000:]


def test_ctrl_c_on_perf_prints_the_summary(broker):
    """As Kafka's perf tools: Ctrl-C still prints what was done so far, and the exit status is 130."""
    import json
    import signal
    import time

    topic = f"perfintr-{uuid.uuid4().hex[:6]}"
    p = subprocess.Popen([sys.executable, "-m", "kafka_cli", "perf", "produce", "-b", broker.bootstrap, "--topic",
                          topic, "--num-records", "100000000", "--record-size", "100", "--throughput", "2000",
                          "--json"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(4)
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 130, err[-2000:]
    res = json.loads(out)
    assert 0 < res["records"] < 100000000 and "records sent" in err
    c = subprocess.Popen([sys.executable, "-m", "kafka_cli", "perf", "consume", "-b", broker.bootstrap, "--topic",
                          topic, "--messages", "100000000", "--timeout-ms", "60000", "--json"], cwd=ROOT,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(4)
    c.send_signal(signal.SIGINT)
    out, err = c.communicate(timeout=60)
    assert c.returncode == 130, err[-2000:]
    assert json.loads(out)["records"] == res["records"] and "data.consumed.in.MB" in err


def test_json_output_of_the_write_commands(broker):
    """issue 15: --json on topic create/alter-config/delete, produce and group delete: stdout holds one
    JSON document (human lines go to stderr), as the read commands already did."""
    import json

    topic = f"js-{uuid.uuid4().hex[:6]}"
    r = kc("topic", "create", "-b", broker.bootstrap, "--topic", topic, "--partitions", "2", "--json")
    assert r.returncode == 0 and json.loads(r.stdout) == {"topic": topic, "created": True, "partitions": 2,
                                                          "replication_factor": -1, "configs": {}}
    r = kc("topic", "create", "-b", broker.bootstrap, "--topic", topic, "--if-not-exists", "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["existed"] is True
    r = kc("topic", "alter-config", "-b", broker.bootstrap, "--topic", topic, "--add-config", "retention.ms=1000",
           "--delete-config", "segment.ms", "--json")
    assert r.returncode == 0 and json.loads(r.stdout) == {"topic": topic, "set": {"retention.ms": "1000"},
                                                          "deleted": ["segment.ms"]}
    r = kc("produce", "-b", broker.bootstrap, "--topic", topic, "--json", input="a\nb\nc\n")
    assert r.returncode == 0 and json.loads(r.stdout) == {"topic": topic, "records": 3}
    g = f"g-{uuid.uuid4().hex[:6]}"
    assert kc("consume", "-b", broker.bootstrap, "--topic", topic, "--group", g, "--from-beginning",
              "--max-messages", "3", "--timeout-ms", "20000").returncode == 0
    r = kc("group", "delete", "-b", broker.bootstrap, "--group", g, "--json")
    assert r.returncode == 0 and json.loads(r.stdout) == [{"group": g, "deleted": True, "error": None}]
    r = kc("topic", "delete", "-b", broker.bootstrap, "--topic", topic, "--json")
    assert r.returncode == 0 and json.loads(r.stdout) == [{"topic": topic, "deleted": True, "error": None}]


def test_an_unusable_log_dir_is_a_message_not_a_traceback(tmp_path):
    """issue 16: log.dirs naming a file (or an unwritable or full place) stops the broker with one
    line saying which directory and why, exit status 1."""
    f = tmp_path / "not-a-dir"
    f.write_text("x")
    r = kc("broker", "--set", f"log.dirs={f}", "--set", "listeners=PLAINTEXT://127.0.0.1:0")
    assert r.returncode == 1, r.stderr[-2000:]
    assert f"kafka-core: cannot use log.dirs {f}" in r.stderr and "Traceback" not in r.stderr, r.stderr[-2000:]


def test_broker_json_events(tmp_path):
    """issue 15: ``kafka-core broker --json``: stdout holds only JSON lines, a ``started`` event once
    it listens (a client can connect to what it names) and ``stopped`` after SIGTERM; a broker
    that cannot start says ``failed`` with the reason."""
    import json
    import signal
    import socket

    from kafka_broker.testing import free_port

    port = free_port()
    p = subprocess.Popen([sys.executable, "-m", "kafka_cli", "broker", "--json", "--set", f"log.dirs={tmp_path / 'd'}",
                          "--set", f"listeners=PLAINTEXT://127.0.0.1:{port}"], cwd=ROOT, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    try:
        assert p.stdout is not None
        started = json.loads(p.stdout.readline())
        assert started["event"] == "started" and started["listeners"] == [f"127.0.0.1:{port}"], started
        assert started["log_dirs"] == [str(tmp_path / "d")] and started["pid"] == p.pid and started["cluster_id"]
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
        p.send_signal(signal.SIGTERM)
        out, err = p.communicate(timeout=60)
    finally:
        p.kill()
    assert p.returncode == 0, err[-2000:]
    assert [json.loads(line) for line in out.splitlines()] == [{"event": "stopped", "status": 0}]
    assert "listening on" in err      # the log stays on stderr
    with socket.socket() as taken:    # the port is in use: the broker cannot listen
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        r = kc("broker", "--json", "--set", f"log.dirs={tmp_path / 'e'}", "--set", f"listeners=PLAINTEXT://127.0.0.1:{busy}")
    assert r.returncode == 1
    failed = json.loads(r.stdout)
    assert failed["event"] == "failed" and failed["status"] == 1 and "cannot listen" in failed["error"], failed
