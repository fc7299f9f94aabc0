"""Broker configuration: properties syntax, types, validation, topic defaults and synonyms."""

from __future__ import annotations

import pytest
from kafka_broker.config import (
    LONG_MAX,
    SOURCE_DEFAULT,
    SOURCE_STATIC_BROKER,
    BrokerConfig,
    ConfigError,
    load,
    parse_properties,
    validate_topic_configs,
)


def test_properties_syntax():
    text = "\n".join([
        "# comment",
        "! also a comment",
        "  num.partitions = 3",
        "log.dirs: /a,\\",
        "    /b",
        "listeners PLAINTEXT://127.0.0.1:9093",
        "broker.rack=r\\u0031\\tx",
        "empty.value=",
        "key\\=with\\:seps=v",
    ])
    got = {k: v for k, v, _ in parse_properties(text)}
    assert got == {"num.partitions": "3", "log.dirs": "/a,/b", "listeners": "PLAINTEXT://127.0.0.1:9093",
                   "broker.rack": "r1\tx", "empty.value": "", "key=with:seps": "v"}


def test_defaults():
    c = BrokerConfig({})
    assert c.node_id == 0
    assert c.log_dirs == ["./kafka-data"]
    assert [(ln.name, ln.host, ln.port) for ln in c.listeners] == [("PLAINTEXT", "127.0.0.1", 9092)]
    assert c["log.segment.bytes"] == 1 << 30
    assert c["log.retention.ms"] == 168 * 3600 * 1000
    assert c["message.max.bytes"] == 1048588
    assert c["log.flush.interval.messages"] == LONG_MAX
    assert c["auto.create.topics.enable"] is True
    d = c.topic_defaults()
    assert d["retention.ms"] == 604800000 and d["cleanup.policy"] == ["delete"] and d["segment.ms"] == 604800000


def test_retention_families_and_synonyms():
    c = BrokerConfig({"log.retention.minutes": "10"})
    assert c["log.retention.ms"] == 600000
    assert c.topic_default("retention.ms") == 600000
    assert c.topic_synonyms("retention.ms") == [("log.retention.minutes", "10", SOURCE_STATIC_BROKER),
                                                ("log.retention.hours", "168", SOURCE_DEFAULT)]
    c = BrokerConfig({"log.retention.ms": "-1", "log.retention.hours": "1"})
    assert c["log.retention.ms"] == -1          # the most specific key wins; -1 = forever
    assert BrokerConfig({"log.roll.hours": "2"})["log.roll.ms"] == 7200000


@pytest.mark.parametrize("key,value,fragment", [
    ("num.partitions", "zero", "integer"),
    ("num.partitions", "0", "at least 1"),
    ("auto.create.topics.enable", "yes", "true or false"),
    ("log.message.timestamp.type", "WallClock", "one of"),
    ("listeners", "localhost:9092", "NAME://host:port"),
    ("listeners", "SSL://localhost:9093", "needs a keystore"),
    ("authorizer.class.name", "com.example.MyAuthorizer", "must be one of"),
    ("listeners", "SASL_PLAINTEXT://localhost:9093", "not GSSAPI"),
    ("message.max.bytes", "99999999999", "out of range"),
    ("no.such.key", "1", "unknown configuration key"),
])
def test_invalid_settings_name_the_key(key, value, fragment):
    with pytest.raises(ConfigError) as ei:
        BrokerConfig({key: value})
    assert key in str(ei.value) or "listeners" in str(ei.value)
    assert fragment in str(ei.value)


@pytest.mark.parametrize("key, value, fragment", [
    ("zookeeper.ssl.client.enable", "true", "ZooKeeper client setting"),
    ("ssl.engine.factory.class", "com.example.Engine", "TLS provider"),
    ("sasl.kerberos.service.name", "kafka", "SASL"),
    ("metric.reporters", "com.example.Reporter", "metrics reporters"),
    ("share.coordinator.state.topic.replication.factor", "3 ", None),   # Kafka's default: accepted
    ("transaction.two.phase.commit.enable", "true", "transaction coordinator setting"),
    ("transaction.state.log.load.buffer.size", "1048576", "load buffer"),
    ("replica.high.watermark.checkpoint.interval.ms", "1000", "cluster setting"),
    ("fetch.max.bytes", "1048576", "fetch size limit"),
    ("group.consumer.assignors", "uniform", "group coordinator setting"),
    ("client.quota.callback.class", "com.example.Callback", "client quotas"),
])
def test_keys_we_do_not_honour_are_refused_at_start_up(key, value, fragment):
    """A Kafka key whose feature kafka-core lacks stops the broker, naming it (an operator must not
    believe TLS or a cluster is on); set to Kafka's default it changes nothing and is accepted."""
    if fragment is None:
        assert BrokerConfig({key: value}).inert == {key: value}
        return
    with pytest.raises(ConfigError) as ei:
        BrokerConfig({key: value})
    assert key in str(ei.value) and fragment in str(ei.value) and "does not implement" in str(ei.value)


def test_a_server_properties_copied_from_kafka_starts():
    """Apache Kafka 4's single-node config/server.properties (its keys and values) is accepted."""
    c = BrokerConfig({
        "process.roles": "broker,controller", "node.id": "1", "controller.quorum.bootstrap.servers": "localhost:9093",
        "listeners": "PLAINTEXT://:9092,CONTROLLER://:9093", "inter.broker.listener.name": "PLAINTEXT",
        "advertised.listeners": "PLAINTEXT://localhost:9092,CONTROLLER://localhost:9093",
        "controller.listener.names": "CONTROLLER",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:"
                                          "SASL_PLAINTEXT,SASL_SSL:SASL_SSL",
        "num.network.threads": "3", "num.io.threads": "8", "socket.send.buffer.bytes": "102400",
        "socket.receive.buffer.bytes": "102400", "socket.request.max.bytes": "104857600",
        "log.dirs": "/tmp/kraft-combined-logs", "num.partitions": "1", "num.recovery.threads.per.data.dir": "1",
        "offsets.topic.replication.factor": "1", "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1", "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1", "log.retention.hours": "168", "log.segment.bytes": "1073741824",
        "log.retention.check.interval.ms": "300000"})
    assert c["num.io.threads"] == 8 and c.node_id == 1
    assert set(c.inert) == {"share.coordinator.state.topic.replication.factor", "share.coordinator.state.topic.min.isr"}


def test_advertised_listeners():
    c = BrokerConfig({"listeners": "PLAINTEXT://0.0.0.0:9092",
                      "advertised.listeners": "PLAINTEXT://kafka.example:19092"})
    a = c.advertised["PLAINTEXT"]
    assert (a.host, a.port) == ("kafka.example", 19092)
    with pytest.raises(ConfigError):
        BrokerConfig({"advertised.listeners": "OTHER://h:1"})
    with pytest.raises(ConfigError, match="nonroutable"):
        BrokerConfig({"listeners": "PLAINTEXT://0.0.0.0:9092"})


def test_node_id_and_broker_id():
    assert BrokerConfig({"broker.id": "3"}).node_id == 3
    assert BrokerConfig({"node.id": "4", "broker.id": "4"}).node_id == 4
    with pytest.raises(ConfigError):
        BrokerConfig({"node.id": "1", "broker.id": "2"})


def test_load_file_and_overrides(tmp_path):
    p = tmp_path / "server.properties"
    p.write_text("num.partitions=3\nlog.dirs=/tmp/x\n")
    c = load(str(p), ["num.partitions=5"])
    assert c["num.partitions"] == 5 and c.log_dirs == ["/tmp/x"]
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        load(None, ["novalue"])
    with pytest.raises(ConfigError, match="cannot read"):
        load(str(tmp_path / "missing.properties"))
    p.write_text("num.partitionz=3\n")
    with pytest.raises(ConfigError, match=r"num\.partitionz.*server\.properties:1"):
        load(str(p))


def test_topic_config_validation():
    assert validate_topic_configs({"retention.ms": "-1", "cleanup.policy": "compact,delete"}) == {
        "retention.ms": -1, "cleanup.policy": ["compact", "delete"]}
    for bad in ({"retention.ms": "x"}, {"cleanup.policy": "shred"}, {"segment.bytes": "1"}, {"nope": "1"},
                {"message.timestamp.type": "Other"}):
        with pytest.raises(ConfigError):
            validate_topic_configs(bad)


def test_shipped_server_properties_documents_the_defaults():
    """config/server.properties (the README's first command) loads, and each key it sets holds
    kafka-core's default: deleting a line changes nothing."""
    from pathlib import Path

    from kafka_broker.config import load

    path = Path(__file__).resolve().parents[2] / "config" / "server.properties"
    shipped, defaults = load(str(path)), BrokerConfig({})
    assert len(shipped.explicit) >= 20
    assert {k: shipped.values[k] for k in shipped.explicit} == {k: defaults.values[k] for k in shipped.explicit}
