"""``kafka-core cluster status`` and ``kafka-core cluster up`` (kafka_cli/cluster.py), with this
repo's own client only (so not interop): status of a healthy cluster, then of one with a broker
killed (under-replicated, exit 1); ``cluster up --brokers 3`` as a subprocess, records through it,
SIGINT, everything gone and exit status 0."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from kafka_bench.apache_kafka import free_port
from kafka_bench.kafka_core_cluster import KafkaCoreCluster
from kafka_bench.procs import tree_pids
from kafka_cli.main import main
from kafka_client import AdminClient, Consumer, NewTopic, Producer

ROOT = Path(__file__).resolve().parents[2]
FAST = {"replica.lag.time.max.ms": "3000", "zookeeper.session.timeout.ms": "4000",
        "controlled.shutdown.retry.backoff.ms": "200", "replica.fetch.backoff.ms": "200"}


def _status(bootstrap: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, dict]:
    capsys.readouterr()
    rc = main(["cluster", "status", "--bootstrap-server", bootstrap, "--json"])
    return rc, json.loads(capsys.readouterr().out)


def _until(fn, timeout: float, what: str):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        got = fn()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.3)


@pytest.fixture
def cluster(zk_chroot: str) -> Iterator[KafkaCoreCluster]:
    with KafkaCoreCluster(3, zk_chroot, settings=FAST, racks=["r1", "r2", "r3"]) as c:
        c.wait_registered()
        yield c


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_status_healthy_then_under_replicated(cluster: KafkaCoreCluster, capsys: pytest.CaptureFixture[str]) -> None:
    with AdminClient(cluster.bootstrap) as a:
        a.create_topics([NewTopic("st", 6, 3)], raise_on_error=True)
    # (the broker asked may learn of the new topic a moment after the one that created it)
    rc, st = _until(lambda: (r := _status(cluster.bootstrap, capsys))[0] == 0 and r[1]["partitions"] >= 6 and r,
                    30, "a healthy status with the new topic")
    assert st["healthy"] and st["under_replicated"] == [] and st["offline"] == []
    assert [(b["id"], b["rack"]) for b in st["brokers"]] == [(1, "r1"), (2, "r2"), (3, "r3")]
    assert st["controller"] in (1, 2, 3)
    # the table form says the same
    capsys.readouterr()
    assert main(["cluster", "status", "-b", cluster.bootstrap]) == 0
    text = capsys.readouterr().out
    assert "Under-replicated partitions: 0" in text and "Healthy." in text and "r2" in text

    cluster.kill(3)
    live = ",".join(b.bootstrap for i, b in cluster.brokers.items() if i != 3)
    every = {("st", p) for p in range(6)}      # broker 3 has a replica of each: all leave the ISR, one by one
    rc, st = _until(lambda: (r := _status(live, capsys)) and
                    {(u["topic"], u["partition"]) for u in r[1]["under_replicated"]} >= every and r, 60,
                    "every partition of st under-replicated after broker 3 was killed")
    assert rc == 1 and not st["healthy"]
    assert all(3 in r["replicas"] and 3 not in r["isr"] for r in st["under_replicated"])
    assert st["offline"] == []     # RF=3: every partition still has a leader
    _until(lambda: 3 not in {b["id"] for b in _status(live, capsys)[1]["brokers"]}, 30, "broker 3 to leave")
    capsys.readouterr()
    assert main(["cluster", "status", "-b", live]) == 1
    assert "NOT healthy." in capsys.readouterr().out


def test_status_of_nothing_listening_is_an_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["cluster", "status", "-b", f"127.0.0.1:{free_port()}"]) == 1
    assert "error" in capsys.readouterr().err


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "python"), str(ROOT / "src"), env.get("PYTHONPATH", "")])
    return env


def _up(args: list[str]) -> tuple[subprocess.Popen[str], list[str]]:
    """Start ``cluster up`` and read its output until the bootstrap line."""
    p = subprocess.Popen([sys.executable, "-m", "kafka_cli", "cluster", "up", *args], cwd=ROOT, env=_env(),
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    assert p.stdout is not None
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        line = p.stdout.readline()
        if not line:
            break
        lines.append(line.rstrip())
        if line.startswith("bootstrap: "):
            return p, lines
    p.kill()
    p.wait()
    raise AssertionError("cluster up printed no bootstrap line:\n" + "\n".join(lines))


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _round_trip(bootstrap: str) -> None:
    with AdminClient(bootstrap) as a:
        a.create_topics([NewTopic("up", 3, 3, configs={"min.insync.replicas": "2"})], raise_on_error=True)
    with Producer(bootstrap, acks="all", linger_ms=0) as pr:
        for i in range(9):
            pr.send("up", f"v{i}".encode(), partition=i % 3)
        pr.flush()
    got = []
    with Consumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest") as c:
        c.assign([("up", p) for p in range(3)])
        deadline = time.monotonic() + 30
        while len(got) < 9 and time.monotonic() < deadline:
            for _tp, recs in c.poll(0.5).items():
                got += [bytes(r.value) for r in recs]
    assert sorted(got) == sorted(f"v{i}".encode() for i in range(9))


def _check_up_and_stop(p: subprocess.Popen[str], lines: list[str], expect_children: int) -> None:
    bootstrap = lines[-1].split(": ", 1)[1]
    assert len(bootstrap.split(",")) == 3
    assert sum(ln.startswith("broker ") and "log " in ln for ln in lines) == 3
    children = [pid for pid in tree_pids(p.pid) if pid != p.pid]
    assert len(children) >= expect_children, children
    try:
        _round_trip(bootstrap)
    finally:
        p.send_signal(signal.SIGINT)
        out, _ = p.communicate(timeout=120)
    assert p.returncode == 0, "\n".join(lines) + out
    assert "stopped" in out
    assert not [pid for pid in children if _alive(pid)]


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_cluster_up_on_a_given_zookeeper_with_json(zk_chroot: str, tmp_path: Path) -> None:
    """Also ``--json`` (issue 15): stdout holds only the ``started`` and ``stopped`` events, the
    human lines go to stderr."""
    p = subprocess.Popen([sys.executable, "-m", "kafka_cli", "cluster", "up", "--json", "--brokers", "3",
                          "--zookeeper", zk_chroot, "--dir", str(tmp_path), "--port", str(free_port()),
                          "--set", "zookeeper.session.timeout.ms=4000"], cwd=ROOT, env=_env(),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert p.stdout is not None
        started = json.loads(p.stdout.readline() or "null")
        assert started and started["event"] == "started", started
        assert started["zookeeper_connect"] == zk_chroot and started["data"] == str(tmp_path)
        assert [b["id"] for b in started["brokers"]] == [1, 2, 3]
        assert ",".join(b["bootstrap"] for b in started["brokers"]) == started["bootstrap"]
        _round_trip(started["bootstrap"])
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=120)
    finally:
        p.kill()
    assert p.returncode == 0, err[-3000:]
    assert [json.loads(line) for line in out.splitlines()] == [{"event": "stopped", "status": 0}]
    assert "bootstrap: " in err and "stopped" in err
    assert (tmp_path / "broker-1" / "broker.log").exists()     # --dir is kept


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_cluster_up_with_its_own_zookeeper(zookeeper: object, tmp_path: Path) -> None:
    # (the session ZooKeeper fixture is only there to have the jars fetched; this one starts its own)
    p, lines = _up(["--brokers", "3", "--dir", str(tmp_path / "c"), "--port", str(free_port())])
    assert lines[0].startswith("ZooKeeper: 127.0.0.1:")
    _check_up_and_stop(p, lines, 4)     # ZooKeeper and three brokers
