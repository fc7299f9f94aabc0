"""Kafka Streams exactly_once_v2 (the word count of tests/interop/test_streams.py) on the
three-broker kafka-core cluster, every topic replicated three times, and the broker that is the
transaction coordinator of the Streams producer killed (-9) mid-run: the new leader of its
``__transaction_state`` partition loads the transactional id, the producer finds it, its open
transaction is aborted or completed, and the final counts are still exact with no committed
count ever above them.  The markers of every transaction go to partition leaders on all three
brokers (the repartition, changelog and output partitions are spread over them)."""

from __future__ import annotations

import re
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient, NewTopic
from kafka_bench import streams
from kafka_bench.kafka_core_cluster import KafkaCoreCluster

from .faultkit import FAULT_SETTINGS
from .test_transactions import coordinator

pytestmark = [pytest.mark.interop,
              pytest.mark.skipif(shutil.which("javac") is None, reason="a JDK is installed by ./dev test")]

LINES = 20_000
PARTITIONS = 3


@pytest.fixture
def cluster(zk_chroot: str) -> Iterator[KafkaCoreCluster]:
    with KafkaCoreCluster(3, zk_chroot, settings={**FAULT_SETTINGS, "transaction.state.log.num.partitions": "3",
                                                  "group.initial.rebalance.delay.ms": "0"}) as c:
        c.wait_registered()
        yield c


def test_streams_word_count_survives_coordinator_kill(cluster: KafkaCoreCluster, tmp_path: Path) -> None:
    tag = uuid.uuid4().hex[:8]
    input_topic, output_topic, app_id = f"wc-lines-{tag}", f"wc-counts-{tag}", f"wc-{tag}"
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap})
    for f in admin.create_topics([NewTopic(input_topic, PARTITIONS, 3),
                                  NewTopic(output_topic, PARTITIONS, 3, config={"cleanup.policy": "compact"})],
                                 operation_timeout=20).values():
        f.result(30)
    lines, expected = streams.word_lines(LINES)
    streams.produce_lines(cluster.bootstrap, input_topic, lines, PARTITIONS)
    # No store cache: every count update is an output record, so the check below sees all of them.
    app = streams.WordCount(cluster.bootstrap, app_id, input_topic, output_topic, tmp_path, {
        "num.stream.threads": "1", "commit.interval.ms": "100", "repartition.purge.interval.ms": "100",
        "statestore.cache.max.bytes": "0", "replication.factor": "3", "producer.acks": "all",
        "consumer.session.timeout.ms": "6000", "consumer.heartbeat.interval.ms": "1500"}).start()
    out = streams.CountsReader(cluster.bootstrap, output_topic, PARTITIONS)
    try:
        streams.wait_until(app, out, lambda: len(out.records) >= 5000, 90, "5000 committed counts")
        tids = set(re.findall(r"transactionalId=([^,\]]+)", app.log_path.read_text()))
        assert len(tids) == 1, tids
        victim, _ = coordinator(cluster, tids.pop())
        cluster.kill(victim)
        assert out.latest != dict(expected), "the run finished before the coordinator was killed"
        streams.wait_until(app, out, lambda: out.latest == dict(expected), 120,
                           f"exact final counts after broker {victim} (the coordinator) was killed")
        assert app.stop() == 0, app.log_tail()
        out.poll(1.0)
        assert out.problems(expected) == []
    finally:
        app.stop()
        out.close()
