"""Apache Kafka 4.x's own Java clients and CLI tools (from Maven Central)
against kafka-core: topics, configs, console producer/consumer, the
idempotent producer of ProducerPerformance, offsets by time."""

from __future__ import annotations

import shutil

import pytest
from kafka_bench import apache_kafka as ak

pytestmark = pytest.mark.skipif(shutil.which("java") is None, reason="java is installed by ./dev test")


def run(main: str, *args: str, input: bytes | None = None, timeout: float = 120) -> str:
    r = ak.java_main(main, list(args), input=input, timeout=timeout, check=False)
    out = r.stdout.decode(errors="replace")
    assert r.returncode == 0, out + r.stderr.decode(errors="replace")[-3000:]
    return out


def test_api_versions_parse(broker):
    out = run(ak.BROKER_API_VERSIONS, "--bootstrap-server", broker.bootstrap)
    assert "Produce(0):" in out and "Fetch(1):" in out and "ApiVersions(18):" in out
    assert "UNSUPPORTED" not in out.split("Produce(0):")[1].split(",")[0]


def test_topics_tool(broker, topic_name):
    b = broker.bootstrap
    run(ak.TOPICS, "--bootstrap-server", b, "--create", "--topic", topic_name, "--partitions", "3",
        "--config", "retention.ms=86400000")
    assert topic_name in run(ak.TOPICS, "--bootstrap-server", b, "--list").split()
    desc = run(ak.TOPICS, "--bootstrap-server", b, "--describe", "--topic", topic_name)
    assert "PartitionCount: 3" in desc and "retention.ms=86400000" in desc
    run(ak.TOPICS, "--bootstrap-server", b, "--alter", "--topic", topic_name, "--partitions", "5")
    assert "PartitionCount: 5" in run(ak.TOPICS, "--bootstrap-server", b, "--describe", "--topic", topic_name)
    run(ak.CONFIGS, "--bootstrap-server", b, "--entity-type", "topics", "--entity-name", topic_name,
        "--alter", "--add-config", "retention.bytes=1048576")
    cfg = run(ak.CONFIGS, "--bootstrap-server", b, "--entity-type", "topics", "--entity-name", topic_name,
              "--describe")
    assert "retention.bytes=1048576" in cfg
    run(ak.TOPICS, "--bootstrap-server", b, "--delete", "--topic", topic_name)


def test_console_producer_consumer_round_trip(broker, topic):
    lines = "".join(f"k{i}:value-{i}\n" for i in range(50)).encode()
    run(ak.CONSOLE_PRODUCER, "--bootstrap-server", broker.bootstrap, "--topic", topic,
        "--property", "parse.key=true", "--property", "key.separator=:", input=lines)
    out = run(ak.CONSOLE_CONSUMER, "--bootstrap-server", broker.bootstrap, "--topic", topic,
              "--partition", "0", "--offset", "earliest", "--max-messages", "50",
              "--property", "print.key=true", "--property", "key.separator=:", "--timeout-ms", "20000")
    assert out.encode() == lines


def test_producer_performance_idempotent(broker, topic):
    out = run(ak.PRODUCER_PERF, "--topic", topic, "--num-records", "20000", "--record-size", "200",
              "--throughput", "-1", "--producer-props", f"bootstrap.servers={broker.bootstrap}",
              "acks=all", "enable.idempotence=true", "compression.type=lz4")
    assert "20000 records sent" in out
    offsets = run(ak.GET_OFFSETS, "--bootstrap-server", broker.bootstrap, "--topic", topic, "--time", "-1")
    assert offsets.strip() == f"{topic}:0:20000"
    earliest = run(ak.GET_OFFSETS, "--bootstrap-server", broker.bootstrap, "--topic", topic, "--time", "-2")
    assert earliest.strip() == f"{topic}:0:0"
