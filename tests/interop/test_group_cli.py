"""``kafka-core group list|describe|reset-offsets|delete`` against a kafka-core broker,
with groups made by confluent-kafka consumers (classic and KIP-848)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from typing import Any

import pytest
from kafka_bench.kafka_core_broker import KafkaCoreBroker

from tests.interop.conftest import create_topic

pytestmark = pytest.mark.interop


@pytest.fixture(scope="module")
def cb():
    with KafkaCoreBroker(settings={"group.initial.rebalance.delay.ms": "0", "offsets.topic.num.partitions": "3"}) as b:
        yield b


def kc(capsys: Any, *args: str) -> tuple[int, str, str]:
    from kafka_cli.main import main

    rc = main(["group", *args])
    out, err = capsys.readouterr()
    return rc, out, err


def setup_group(bootstrap: str, per_partition: int = 10, commits: dict[int, int] | None = None) -> tuple[str, str]:
    from confluent_kafka import Consumer, Producer, TopicPartition

    topic = f"cli-{uuid.uuid4().hex[:8]}"
    create_topic(bootstrap, topic, 3)
    p = Producer({"bootstrap.servers": bootstrap})
    for part in range(3):
        for i in range(per_partition):
            p.produce(topic, value=f"v{i}".encode(), partition=part)
    assert p.flush(20) == 0
    group = f"cg-{uuid.uuid4().hex[:8]}"
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    commits = commits if commits is not None else {0: 3, 1: 5, 2: 10}
    if commits:
        c.commit(offsets=[TopicPartition(topic, part, o) for part, o in commits.items()], asynchronous=False)
    c.close()
    return topic, group


def describe_json(capsys: Any, bootstrap: str, group: str) -> dict[tuple[str, int], dict[str, Any]]:
    rc, out, err = kc(capsys, "describe", "--bootstrap-server", bootstrap, "--group", group, "--json")
    assert rc == 0, err
    return {(r["topic"], r["partition"]): r for r in json.loads(out)}


def test_list_and_describe_lag(cb, capsys):
    topic, group = setup_group(cb.bootstrap)
    rc, out, _ = kc(capsys, "list", "--bootstrap-server", cb.bootstrap)
    assert rc == 0 and group in out.split()
    rc, out, _ = kc(capsys, "list", "--bootstrap-server", cb.bootstrap, "--state")
    assert any(line.split()[:3] == [group, "Empty", "classic"] for line in out.splitlines())
    rc, out, _ = kc(capsys, "describe", "--bootstrap-server", cb.bootstrap, "--group", group)
    assert rc == 0
    rows = {tuple(line.split()[1:3]): line.split()[3:6] for line in out.splitlines() if line.startswith(group)}
    assert rows == {(topic, "0"): ["3", "10", "7"], (topic, "1"): ["5", "10", "5"], (topic, "2"): ["10", "10", "0"]}
    assert "has no active members" in out


def test_describe_active_members(cb, capsys):
    from confluent_kafka import Consumer

    topic, group = setup_group(cb.bootstrap)
    c = Consumer({"bootstrap.servers": cb.bootstrap, "group.id": group, "enable.auto.commit": False,
                  "session.timeout.ms": 6000, "client.id": "cli-member"})
    c.subscribe([topic])
    try:
        deadline = time.monotonic() + 30
        while len(c.assignment()) < 3 and time.monotonic() < deadline:
            c.poll(0.1)
        rc, out, _ = kc(capsys, "describe", "--bootstrap-server", cb.bootstrap, "--group", group, "--members")
        assert rc == 0 and "cli-member" in out and f"{topic}-0" in out
        rows = describe_json(capsys, cb.bootstrap, group)
        assert {r["client_id"] for r in rows.values()} == {"cli-member"}
        rc, _, err = kc(capsys, "reset-offsets", "--bootstrap-server", cb.bootstrap, "--group", group,
                        "--topic", topic, "--to-earliest", "--execute")
        assert rc == 1 and "inactive" in err
        rc, out, _ = kc(capsys, "describe", "--bootstrap-server", cb.bootstrap, "--group", group, "--state")
        assert "Stable" in out
    finally:
        c.close()


def test_reset_offsets_variants(cb, capsys):
    topic, group = setup_group(cb.bootstrap)
    b = cb.bootstrap

    def cur() -> dict[int, int]:
        return {p: r["current_offset"] for (_, p), r in describe_json(capsys, b, group).items()}

    rc, out, err = kc(capsys, "reset-offsets", "--bootstrap-server", b, "--group", group, "--topic", topic,
                      "--to-earliest")
    assert rc == 0 and f"{group} {topic} 0 0".split() in [line.split() for line in out.splitlines()]
    assert "dry run" in err and "Applied" not in err
    assert cur() == {0: 3, 1: 5, 2: 10}     # dry run by default
    rc, out, err = kc(capsys, "reset-offsets", "--bootstrap-server", b, "--group", group, "--topic", topic,
                      "--to-earliest", "--execute")
    assert rc == 0 and f"Applied: 3 partition offset(s) of group(s) {group}" in err and "dry run" not in err
    assert cur() == {0: 0, 1: 0, 2: 0}
    assert kc(capsys, "reset-offsets", "--bootstrap-server", b, "--group", group, "--topic", f"{topic}:1,2",
              "--shift-by", "4", "--execute")[0] == 0
    assert cur() == {0: 0, 1: 4, 2: 4}
    assert kc(capsys, "reset-offsets", "--bootstrap-server", b, "--group", group, "--all-topics",
              "--to-offset", "99", "--execute")[0] == 0
    assert cur() == {0: 10, 1: 10, 2: 10}   # clamped to the log end
    assert kc(capsys, "reset-offsets", "--bootstrap-server", b, "--group", group, "--topic", f"{topic}:0",
              "--shift-by", "-3", "--execute")[0] == 0
    assert cur() == {0: 7, 1: 10, 2: 10}
    assert kc(capsys, "reset-offsets", "--bootstrap-server", b, "--group", group, "--topic", topic,
              "--to-datetime", "2000-01-01T00:00:00.000", "--execute")[0] == 0
    assert cur() == {0: 0, 1: 0, 2: 0}
    assert kc(capsys, "reset-offsets", "--bootstrap-server", b, "--group", group, "--topic", topic,
              "--to-latest", "--execute")[0] == 0
    assert cur() == {0: 10, 1: 10, 2: 10}


def test_delete_group_and_offsets(cb, capsys):
    topic, group = setup_group(cb.bootstrap)
    rc, out, _ = kc(capsys, "delete", "--bootstrap-server", cb.bootstrap, "--group", group, "--topic", f"{topic}:2")
    assert rc == 0 and "Successful" in out
    assert set(describe_json(capsys, cb.bootstrap, group)) == {(topic, 0), (topic, 1)}
    rc, out, _ = kc(capsys, "delete", "--bootstrap-server", cb.bootstrap, "--group", group)
    assert rc == 0 and "successful" in out
    rc, _, err = kc(capsys, "describe", "--bootstrap-server", cb.bootstrap, "--group", group)
    assert rc == 1 and "does not exist" in err
    rc, out, _ = kc(capsys, "list", "--bootstrap-server", cb.bootstrap)
    assert group not in out.split()


def test_kip848_group_described(cb, capsys):
    from confluent_kafka import Consumer

    topic, group = setup_group(cb.bootstrap, commits={})
    c = Consumer({"bootstrap.servers": cb.bootstrap, "group.id": group, "group.protocol": "consumer",
                  "client.id": "kip848-member", "auto.offset.reset": "earliest"})
    c.subscribe([topic])
    try:
        deadline = time.monotonic() + 30
        while len(c.assignment()) < 3 and time.monotonic() < deadline:
            c.poll(0.1)
        rc, out, _ = kc(capsys, "list", "--bootstrap-server", cb.bootstrap, "--state")
        assert any(line.split()[:1] == [group] and "consumer" in line.split()[2] for line in out.splitlines())
        rc, out, _ = kc(capsys, "describe", "--bootstrap-server", cb.bootstrap, "--group", group, "--members")
        assert rc == 0 and "kip848-member" in out and "3" in out.split("kip848-member")[1].split()[:1]
    finally:
        c.close()


def test_console_entry_point(cb):
    """The installed ``kafka-core`` entry point (kafka_cli.main:main) runs the subcommand."""
    r = subprocess.run([sys.executable, "-c", "import sys; from kafka_cli.main import main; sys.exit(main())",
                        "group", "list", "--bootstrap-server", cb.bootstrap], capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr
    r = subprocess.run([sys.executable, "-c", "import sys; from kafka_cli.main import main; sys.exit(main())",
                        "group", "describe", "--bootstrap-server", cb.bootstrap], capture_output=True, timeout=60)
    assert r.returncode == 2   # --group or --all-groups is required
