"""``kafka-core mirror`` with Apache Kafka 4.x (KRaft, jars from Maven) as the source and as the
target, the other side a kafka-core broker (issue 13).  Apache Kafka's own console consumer reads
the copy it received, and a group moved to Apache Kafka with translate-offsets resumes there."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from kafka_bench.apache_kafka import CONSOLE_CONSUMER, ApacheKafka, ensure_jars, java_main
from kafka_broker.testing import EmbeddedBroker
from kafka_client import AdminClient, ConfigResource, ConfigResourceType, NewTopic, Producer, TopicPartition

from .mirror_helpers import kafka_core, read_partitions, wait_until

pytestmark = pytest.mark.interop


@pytest.fixture(scope="module")
def apache() -> Iterator[ApacheKafka]:
    ensure_jars()
    k = ApacheKafka(heap="512m", extra={"auto.create.topics.enable": "false"})
    k.start()
    try:
        yield k
    finally:
        k.cleanup()


@pytest.fixture
def core() -> Iterator[EmbeddedBroker]:
    with EmbeddedBroker() as b:
        yield b


def _produce(bootstrap: str, topic: str, partitions: int, n: int, start: int = 0) -> None:
    with Producer(bootstrap) as p:
        for i in range(start, start + n):
            p.produce(topic, b"%d:%d" % (i % partitions, i), key=b"k%d" % i, headers=[("i", b"%d" % i)],
                      partition=i % partitions, timestamp_ms=1_700_000_000_000 + i)
        p.flush()


def _wait_leaders(bootstrap: str, topic: str, n: int) -> None:
    def ready() -> bool:
        with AdminClient(bootstrap) as admin:
            meta = admin.describe_topics([topic]).get(topic)
            return meta is not None and meta.num_partitions == n and all(p.leader >= 0 for p in meta.partitions.values())
    wait_until(ready, 30, f"{topic}'s leaders")


def _same(src: dict[int, list], tgt: dict[int, list]) -> None:
    for p in src:
        assert [(r.key, r.value, list(r.headers), r.timestamp) for r in tgt[p]] == \
            [(r.key, r.value, list(r.headers), r.timestamp) for r in src[p]], p


def test_apache_kafka_source_to_kafka_core(apache: ApacheKafka, core: EmbeddedBroker) -> None:
    with AdminClient(apache.bootstrap) as admin:
        admin.create_topics([NewTopic("ak.orders", 6, 1, {"cleanup.policy": "compact", "retention.ms": "7200000"})],
                            raise_on_error=True)
    _wait_leaders(apache.bootstrap, "ak.orders", 6)
    _produce(apache.bootstrap, "ak.orders", 6, 3000)
    r = kafka_core("mirror", "--source-bootstrap", apache.bootstrap, "--target-bootstrap", core.bootstrap,
                   "--include", r"ak\..*", "--rename", "{source}.{topic}", "--source-alias", "ak",
                   "--group", "mirror-from-ak", "--until-caught-up", "--json")
    assert r.returncode == 0, r.stderr[-3000:]
    assert json.loads(r.stdout)["records"] == 3000
    with AdminClient(core.bootstrap) as admin:
        res = ConfigResource(ConfigResourceType.TOPIC, "ak.ak.orders")
        cfg = admin.describe_configs([res])[res]
        assert cfg["cleanup.policy"].value == "compact" and cfg["retention.ms"].value == "7200000"
        assert admin.describe_topics(["ak.ak.orders"])["ak.ak.orders"].num_partitions == 6
    _same(read_partitions(apache.bootstrap, "ak.orders", 6), read_partitions(core.bootstrap, "ak.ak.orders", 6))


def test_kafka_core_source_to_apache_kafka_and_move_a_group(apache: ApacheKafka, core: EmbeddedBroker) -> None:
    with AdminClient(core.bootstrap) as admin:
        admin.create_topics([NewTopic("kc.events", 3, 1)], raise_on_error=True)
    _produce(core.bootstrap, "kc.events", 3, 1500)
    args = ["mirror", "--source-bootstrap", core.bootstrap, "--target-bootstrap", apache.bootstrap,
            "--include", r"kc\..*", "--source-alias", "kc", "--group", "mirror-to-ak", "--until-caught-up", "--json"]
    r = kafka_core(*args)
    assert r.returncode == 0, r.stderr[-3000:]
    _same(read_partitions(core.bootstrap, "kc.events", 3), read_partitions(apache.bootstrap, "kc.events", 3))
    # Apache Kafka's console consumer reads the copy.
    out = java_main(CONSOLE_CONSUMER, ["--bootstrap-server", apache.bootstrap, "--topic", "kc.events",
                                       "--from-beginning", "--max-messages", "1500", "--timeout-ms", "30000"],
                    timeout=90)
    assert len(out.stdout.decode().split()) == 1500
    # An application group read 300 records of each partition on kafka-core; it moves to Apache Kafka.
    with AdminClient(core.bootstrap) as admin:
        admin.alter_group_offsets("app", {TopicPartition("kc.events", p): 300 for p in range(3)})
    r = kafka_core("mirror", "translate-offsets", "--source-bootstrap", core.bootstrap,
                   "--target-bootstrap", apache.bootstrap, "--source-alias", "kc", "--group", "app",
                   "--execute", "--json")
    assert r.returncode == 0, r.stderr[-3000:]
    rows = json.loads(r.stdout)["offsets"]
    assert len(rows) == 3 and all(row["target_offset"] <= 300 for row in rows), rows
    with AdminClient(apache.bootstrap) as admin:
        moved = admin.list_group_offsets("app")
    assert {tp.partition: om.offset for tp, om in moved.items()} == {row["partition"]: row["target_offset"]
                                                                     for row in rows}


def test_exactly_once_into_apache_kafka(apache: ApacheKafka, core: EmbeddedBroker) -> None:
    """--exactly-once with Apache Kafka's transaction coordinator on the target: the progress is
    the offsets of kc-mirror.<alias>.<group> there, and a read_committed reader sees each record once."""
    with AdminClient(core.bootstrap) as admin:
        admin.create_topics([NewTopic("kc.pay", 3, 1)], raise_on_error=True)
    _produce(core.bootstrap, "kc.pay", 3, 1500)
    args = ["mirror", "--source-bootstrap", core.bootstrap, "--target-bootstrap", apache.bootstrap,
            "--include", r"kc\.pay", "--source-alias", "kce", "--group", "eos", "--exactly-once",
            "--until-caught-up", "--json"]
    r = kafka_core(*args)
    assert r.returncode == 0, r.stderr[-3000:]
    with AdminClient(apache.bootstrap) as admin:
        progress = admin.list_group_offsets("kc-mirror.kce.eos")
    assert {tp.partition: om.offset for tp, om in progress.items()} == {0: 500, 1: 500, 2: 500}
    src = read_partitions(core.bootstrap, "kc.pay", 3)
    got = read_partitions(apache.bootstrap, "kc.pay", 3, read_committed={p: 500 for p in range(3)})
    _same(src, got)
    r = kafka_core(*args)             # a rerun resumes from the progress on the target: nothing again
    assert r.returncode == 0 and json.loads(r.stdout)["records"] == 0, r.stderr[-2000:]
