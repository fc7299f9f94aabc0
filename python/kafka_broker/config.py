"""Broker configuration: Apache Kafka's ``server.properties`` keys, types and defaults.

Sources of a value, lowest precedence first: the default below, the
properties file (``--config``), ``--set KEY=VALUE`` overrides.  Keys we act
on are in ``BROKER_CONFIGS``; Kafka keys we accept but ignore (security,
ZooKeeper/KRaft, replication, quotas...) are logged once at start-up; any
other key, or a value of the wrong type or out of range, is a
``ConfigError`` naming the key, so a typo never passes silently.

Per-topic configs (``retention.ms`` ...) are in ``TOPIC_CONFIGS`` with the
broker key that supplies their default, which is how DescribeConfigs
reports synonyms and sources (``ConfigSource`` in DescribeConfigsResponse).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("kafka_broker.config")

LONG_MAX = (1 << 63) - 1
INT_MAX = (1 << 31) - 1


class ConfigError(ValueError):
    """A configuration key or value the broker cannot start with."""


# ConfigType in DescribeConfigsResponse v3+
CONFIG_TYPE = {"boolean": 1, "string": 2, "int": 3, "short": 4, "long": 5, "double": 6,
               "list": 7, "class": 8, "password": 9}

# ConfigSource in DescribeConfigsResponse
SOURCE_UNKNOWN = 0
SOURCE_TOPIC = 1
SOURCE_DYNAMIC_BROKER = 2
SOURCE_DYNAMIC_DEFAULT_BROKER = 3
SOURCE_STATIC_BROKER = 4
SOURCE_DEFAULT = 5


@dataclass(frozen=True)
class ConfigDef:
    name: str
    type: str                      # boolean, string, int, short, long, double, list, class, password
    default: Any                   # parsed value; None = no default (null)
    check: Callable[[Any], str | None] | None = None  # returns an error text or None
    doc: str = ""
    dynamic: bool = False          # alterable at run time (read_only = not dynamic)
    sensitive: bool = False


def at_least(n: int) -> Callable[[Any], str | None]:
    return lambda v: None if v is None or v >= n else f"must be at least {n}"


def between(lo: float, hi: float) -> Callable[[Any], str | None]:
    return lambda v: None if v is None or lo <= v <= hi else f"must be between {lo} and {hi}"


def one_of(*choices: str, multi: bool = False) -> Callable[[Any], str | None]:
    def check(v: Any) -> str | None:
        items = v if multi else [v]
        bad = [x for x in items if x not in choices]
        return f"must be one of {', '.join(choices)}" if bad else None
    return check


def _check_listeners(v: Any) -> str | None:
    for item in v:
        if not re.fullmatch(r"[A-Za-z0-9_]+://(\[[0-9a-fA-F:.]+\]|[^:/\[\]]*):\d{1,5}", item):
            return f"bad listener {item!r}: expected NAME://host:port"
        port = int(item.rsplit(":", 1)[1])
        if port > 65535:
            return f"bad port in {item!r}"
    return None


def _parse(defn: ConfigDef, raw: str) -> Any:
    """Parse the text form of a value as Kafka's ConfigDef does."""
    t = defn.type
    s = raw.strip()
    if t in ("int", "long", "short"):
        try:
            v = int(s)
        except ValueError:
            raise ConfigError(f"invalid value {raw!r} for {defn.name}: expected an integer") from None
        lim = {"int": (-(1 << 31), INT_MAX), "long": (-(1 << 63), LONG_MAX), "short": (-(1 << 15), (1 << 15) - 1)}[t]
        if not lim[0] <= v <= lim[1]:
            raise ConfigError(f"invalid value {raw!r} for {defn.name}: out of range for {t}")
        return v
    if t == "double":
        try:
            return float(s)
        except ValueError:
            raise ConfigError(f"invalid value {raw!r} for {defn.name}: expected a number") from None
    if t == "boolean":
        if s.lower() == "true":
            return True
        if s.lower() == "false":
            return False
        raise ConfigError(f"invalid value {raw!r} for {defn.name}: expected true or false")
    if t == "list":
        return [x.strip() for x in s.split(",") if x.strip()]
    return raw.strip() if t != "password" else raw


def render(defn: ConfigDef, value: Any) -> str | None:
    """The text Kafka shows for a value (DescribeConfigs)."""
    if value is None:
        return None
    if defn.type == "boolean":
        return "true" if value else "false"
    if defn.type == "list":
        return ",".join(value)
    if defn.type == "double":
        return repr(float(value))
    return str(value)


def parse_value(defn: ConfigDef, raw: str | None) -> Any:
    if raw is None:
        return None
    v = _parse(defn, raw)
    if defn.check is not None:
        err = defn.check(v)
        if err:
            raise ConfigError(f"invalid value {raw!r} for {defn.name}: {err}")
    return v


def _ip_overrides(v: str | None) -> tuple[dict[str, int], str | None]:
    """``max.connections.per.ip.overrides``: ``host:count`` pairs, comma-separated (Kafka's
    ``getMap``); the hosts as given, resolved at start-up."""
    out: dict[str, int] = {}
    for item in (v or "").split(","):
        item = item.strip()
        if not item:
            continue
        host, sep, count = item.rpartition(":")
        if not sep or not host.strip() or not count.strip().isdigit():
            return {}, f"{item!r} is not host:count"
        out[host.strip().strip("[]")] = int(count)
    return out, None


def _check_metrics_listener(v: str) -> str | None:
    from .metrics import parse_listener

    try:
        parse_listener(v)
    except ValueError as e:
        return str(e)
    return None


def _defs(*items: ConfigDef) -> dict[str, ConfigDef]:
    return {d.name: d for d in items}


C = ConfigDef
TIMESTAMP_TYPES = ("CreateTime", "LogAppendTime")
COMPRESSION_TYPES = ("uncompressed", "zstd", "lz4", "snappy", "gzip", "producer")

# Broker keys the broker acts on (or reports faithfully).
BROKER_CONFIGS: dict[str, ConfigDef] = _defs(
    C("listeners", "list", ["PLAINTEXT://127.0.0.1:9092"], _check_listeners, "Listener URIs"),
    C("advertised.listeners", "list", None, _check_listeners, "Listeners given to clients"),
    C("listener.security.protocol.map", "list",
      ["PLAINTEXT:PLAINTEXT", "SSL:SSL", "SASL_PLAINTEXT:SASL_PLAINTEXT", "SASL_SSL:SASL_SSL"]),
    C("node.id", "int", -1, at_least(-1)),
    C("broker.id", "int", -1, at_least(-1)),
    C("broker.rack", "string", None),
    C("log.format", "string", "text", one_of("text", "json"),
      "the broker's log lines: text, or json (one object per line; kafka-core's own key)"),
    C("metrics.listener", "string", "", _check_metrics_listener,
      "http://HOST:PORT of the Prometheus endpoint (/metrics); empty: none (kafka-core's own key)"),
    C("cluster.id", "string", None),
    C("log.dirs", "list", None),
    C("log.dir", "list", ["./kafka-data"]),
    C("num.partitions", "int", 1, at_least(1), dynamic=True),
    C("default.replication.factor", "int", 1, at_least(1)),
    C("offsets.topic.replication.factor", "short", 3, at_least(1)),
    C("offsets.topic.num.partitions", "int", 50, at_least(1)),
    # The cluster on ZooKeeper (kafka_broker/cluster): off unless zookeeper.connect is set.
    C("zookeeper.connect", "string", None, None, "host:port[,host:port...][/chroot] of the ZooKeeper ensemble"),
    C("zookeeper.session.timeout.ms", "int", 18000, at_least(1)),
    C("zookeeper.connection.timeout.ms", "int", None, at_least(1)),
    C("inter.broker.listener.name", "string", None),
    C("num.replica.fetchers", "int", 1, at_least(1)),
    C("replica.lag.time.max.ms", "long", 30000, at_least(1)),
    C("replica.fetch.max.bytes", "int", 1048576, at_least(0)),
    C("replica.fetch.min.bytes", "int", 1, at_least(1)),
    C("replica.fetch.wait.max.ms", "int", 500, at_least(0)),
    C("replica.fetch.response.max.bytes", "int", 10485760, at_least(0)),
    C("replica.fetch.backoff.ms", "int", 1000, at_least(0)),
    C("replica.socket.timeout.ms", "int", 30000, at_least(1)),
    C("controlled.shutdown.enable", "boolean", True),
    C("auto.leader.rebalance.enable", "boolean", True),
    C("leader.imbalance.check.interval.seconds", "long", 300, at_least(1)),
    C("leader.imbalance.per.broker.percentage", "int", 10, at_least(0)),
    C("controlled.shutdown.max.retries", "int", 3, at_least(1)),
    C("controlled.shutdown.retry.backoff.ms", "long", 5000, at_least(0)),
    C("transaction.state.log.replication.factor", "short", 3, at_least(1)),
    C("transaction.state.log.min.isr", "int", 2, at_least(1)),
    C("transaction.state.log.num.partitions", "int", 50, at_least(1)),
    C("transaction.state.log.segment.bytes", "int", 104857600, at_least(1)),
    C("transaction.max.timeout.ms", "int", 900000, at_least(1)),
    C("transaction.abort.timed.out.transaction.cleanup.interval.ms", "int", 10000, at_least(1)),
    C("transaction.remove.expired.transaction.cleanup.interval.ms", "int", 3600000, at_least(1)),
    C("log.segment.bytes", "int", 1 << 30, at_least(14), dynamic=True),
    C("log.roll.ms", "long", None, at_least(1), dynamic=True),
    C("log.roll.hours", "int", 168, at_least(1)),
    C("log.roll.jitter.ms", "long", None, dynamic=True),
    C("log.roll.jitter.hours", "int", 0, at_least(0)),
    C("log.retention.ms", "long", None, dynamic=True),
    C("log.retention.minutes", "int", None),
    C("log.retention.hours", "int", 168),
    C("log.retention.bytes", "long", -1, dynamic=True),
    C("log.retention.check.interval.ms", "long", 300000, at_least(1)),
    C("log.index.interval.bytes", "int", 4096, at_least(0), dynamic=True),
    C("log.index.size.max.bytes", "int", 10 << 20, at_least(4), dynamic=True),
    C("log.flush.interval.messages", "long", LONG_MAX, at_least(1), dynamic=True),
    C("log.flush.interval.ms", "long", None, dynamic=True),
    C("log.flush.scheduler.interval.ms", "long", LONG_MAX),
    C("log.flush.offset.checkpoint.interval.ms", "int", 60000, at_least(0)),
    C("log.flush.start.offset.checkpoint.interval.ms", "int", 60000, at_least(0)),
    C("log.cleanup.policy", "list", ["delete"], one_of("delete", "compact", multi=True), dynamic=True),
    C("log.cleaner.enable", "boolean", True),
    C("log.cleaner.delete.retention.ms", "long", 86400000, at_least(0), dynamic=True),
    C("log.cleaner.min.compaction.lag.ms", "long", 0, at_least(0), dynamic=True),
    C("log.cleaner.max.compaction.lag.ms", "long", LONG_MAX, at_least(1), dynamic=True),
    C("log.cleaner.min.cleanable.ratio", "double", 0.5, between(0, 1), dynamic=True),
    C("log.segment.delete.delay.ms", "long", 60000, at_least(0), dynamic=True),
    C("log.preallocate", "boolean", False, dynamic=True),
    C("log.message.timestamp.type", "string", "CreateTime", one_of(*TIMESTAMP_TYPES), dynamic=True),
    C("log.message.timestamp.before.max.ms", "long", LONG_MAX, at_least(0), dynamic=True),
    C("log.message.timestamp.after.max.ms", "long", 3600000, at_least(0), dynamic=True),
    C("log.local.retention.ms", "long", -2, at_least(-2), dynamic=True),
    C("log.local.retention.bytes", "long", -2, at_least(-2), dynamic=True),
    C("message.max.bytes", "int", 1048588, at_least(0), dynamic=True),
    C("socket.request.max.bytes", "int", 104857600, at_least(1)),
    C("socket.send.buffer.bytes", "int", 102400),
    C("socket.receive.buffer.bytes", "int", 102400),
    C("socket.listen.backlog.size", "int", 50, at_least(1)),
    C("connections.max.idle.ms", "long", 600000, at_least(-1)),  # -1: never close idle connections
    C("auto.create.topics.enable", "boolean", True),
    C("delete.topic.enable", "boolean", True),
    C("compression.type", "string", "producer", one_of(*COMPRESSION_TYPES), dynamic=True),
    # Kafka 3.8+ (KIP-390): levels used when the broker recompresses (compression.type != producer).
    C("compression.gzip.level", "int", -1,
      lambda v: None if v is None or v == -1 or 1 <= v <= 9 else "must be -1 or between 1 and 9", dynamic=True),
    C("compression.lz4.level", "int", 9, between(1, 17), dynamic=True),
    C("compression.zstd.level", "int", 3, between(-131072, 22), dynamic=True),
    C("min.insync.replicas", "int", 1, at_least(1), dynamic=True),
    C("unclean.leader.election.enable", "boolean", False, dynamic=True),
    C("group.initial.rebalance.delay.ms", "int", 3000, at_least(0)),
    C("group.min.session.timeout.ms", "int", 6000),
    C("group.max.session.timeout.ms", "int", 1800000),
    C("group.max.size", "int", INT_MAX, at_least(1)),
    C("group.consumer.heartbeat.interval.ms", "int", 5000, at_least(1)),
    C("group.consumer.session.timeout.ms", "int", 45000, at_least(1)),
    C("group.consumer.min.session.timeout.ms", "int", 45000, at_least(1)),
    C("group.consumer.max.session.timeout.ms", "int", 60000, at_least(1)),
    C("offsets.retention.minutes", "int", 10080, at_least(1)),
    C("offsets.retention.check.interval.ms", "long", 600000, at_least(1)),
    C("offsets.topic.segment.bytes", "int", 104857600, at_least(1)),
    C("offset.metadata.max.bytes", "int", 4096, at_least(0)),
    C("log.cleaner.threads", "int", 1, at_least(0)),
    C("log.cleaner.dedupe.buffer.size", "long", 134217728, at_least(1 << 20)),
    C("log.cleaner.backoff.ms", "long", 15000, at_least(0)),
    C("num.network.threads", "int", 3, at_least(1), dynamic=True),
    C("num.io.threads", "int", 8, at_least(1), dynamic=True),
    C("num.recovery.threads.per.data.dir", "int", 2, at_least(1), dynamic=True),
    C("background.threads", "int", 10, at_least(1), dynamic=True),
    C("request.timeout.ms", "int", 30000),
    C("process.roles", "list", [], one_of("broker", "controller", multi=True)),
    C("controller.quorum.voters", "list", []),
    C("controller.quorum.bootstrap.servers", "list", []),
    C("controller.listener.names", "list", None),
    C("inter.broker.listener.name", "string", None),
    C("remote.log.storage.system.enable", "boolean", False),
    C("producer.id.expiration.ms", "int", 86400000, at_least(1), dynamic=True),
    C("transactional.id.expiration.ms", "int", 604800000, at_least(1)),
    C("transaction.partition.verification.enable", "boolean", True, None,
      "TV1 transactional produce: the leader asks the coordinator whether the partition is in the transaction"),
    C("transaction.version", "int", 2, between(0, 2),
      "the finalized transaction.version feature (KIP-890; Kafka 4.x's default for a new cluster is 2): "
      "2 lets Java 4.x clients bump the epoch per transaction and add partitions implicitly; 0 or 1 keeps "
      "them on TV1 (kafka-core's own key: Kafka sets the feature with kafka-storage/kafka-features)"),
    C("max.connections", "int", INT_MAX, at_least(0), dynamic=True),
    C("max.connections.per.ip", "int", INT_MAX, at_least(0)),
    C("max.connections.per.ip.overrides", "string", "", lambda v: _ip_overrides(v)[1]),
    # KIP-612 (server.py): new connections per second, broker-wide (not on the inter-broker
    # listener) and per listener as listener.name.<l>.max.connection.creation.rate
    C("max.connection.creation.rate", "int", INT_MAX, at_least(0)),
    # TLS (kafka_broker/tls.py): broker-wide, and per listener as listener.name.<l>.ssl.*
    C("security.inter.broker.protocol", "string", "PLAINTEXT",
      one_of("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")),
    C("ssl.keystore.type", "string", "JKS", one_of("JKS", "PKCS12", "PEM")),
    C("ssl.keystore.location", "string", None),
    C("ssl.keystore.password", "password", None, sensitive=True),
    C("ssl.key.password", "password", None, sensitive=True),
    C("ssl.keystore.key", "password", None, sensitive=True),
    C("ssl.keystore.certificate.chain", "password", None, sensitive=True),
    C("ssl.truststore.type", "string", "JKS", one_of("JKS", "PKCS12", "PEM")),
    C("ssl.truststore.location", "string", None),
    C("ssl.truststore.password", "password", None, sensitive=True),
    C("ssl.truststore.certificates", "password", None, sensitive=True),
    C("ssl.client.auth", "string", "none", one_of("none", "requested", "required")),
    C("ssl.enabled.protocols", "list", ["TLSv1.2", "TLSv1.3"], one_of("TLSv1.2", "TLSv1.3", multi=True)),
    C("ssl.protocol", "string", "TLSv1.3", one_of("TLSv1.2", "TLSv1.3", "TLS")),
    C("ssl.cipher.suites", "list", []),
    C("ssl.endpoint.identification.algorithm", "string", "https"),
    C("ssl.principal.mapping.rules", "string", "DEFAULT"),
    # SASL (kafka_broker/sasl.py): per listener as listener.name.<l>.sasl.enabled.mechanisms and
    # listener.name.<l>.<mechanism>.sasl.jaas.config
    C("sasl.enabled.mechanisms", "list", ["GSSAPI"]),
    C("sasl.mechanism.inter.broker.protocol", "string", "GSSAPI"),
    C("sasl.server.max.receive.size", "int", 524288, at_least(1)),
    C("connections.max.reauth.ms", "long", 0, at_least(0)),
    C("connection.failed.authentication.delay.ms", "int", 100, at_least(0)),
    # ACLs (kafka_broker/acl.py, authz.py)
    C("authorizer.class.name", "string", "", one_of("", "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
                                                     "kafka.security.authorizer.AclAuthorizer")),
    C("super.users", "string", ""),
    C("allow.everyone.if.no.acl.found", "boolean", False),
    # client quotas (kafka_broker/quotas.py)
    C("quota.window.num", "int", 11, at_least(1)),
    C("quota.window.size.seconds", "int", 1, at_least(1)),
)
SSL_KEYS = tuple(k for k in BROKER_CONFIGS if k.startswith("ssl."))
LISTENER_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")

# Kafka keys this broker does not implement.  At Kafka's default (as a server.properties copied from
# Kafka leaves them) they change nothing here and are accepted; any other value stops the broker at
# start-up with a message naming what is missing, so that nobody believes a feature is on that is
# not.  key -> the values accepted (Kafka's default first; "1" for replication factors and min ISR
# of internal topics, which one broker satisfies).
_CLUSTER = "this cluster setting (the cluster on ZooKeeper does not have it yet)"
_KRAFT = "KRaft controller quorums (kafka-core runs as one combined node; its metadata is kc-metadata.json)"
_METRICS = "metrics reporters and JMX"
_TXN = "this transaction coordinator setting"
_QUOTAS = "client quotas"
_NOT_IMPLEMENTED: tuple[tuple[str, dict[str, tuple[str, ...]]], ...] = (
    (_CLUSTER, {
        "replica.high.watermark.checkpoint.interval.ms": ("5000",),
        "socket.connection.setup.timeout.ms": ("10000",),
        "socket.connection.setup.timeout.max.ms": ("30000",), "num.replica.alter.log.dirs.threads": (),
    }),
    (_KRAFT, {
        "controller.quorum.election.timeout.ms": ("1000",), "controller.quorum.fetch.timeout.ms": ("2000",),
        "controller.quorum.election.backoff.max.ms": ("1000",), "controller.quorum.request.timeout.ms": ("2000",),
        "controller.quorum.retry.backoff.ms": ("20",), "controller.quorum.append.linger.ms": ("25",),
        "metadata.log.dir": (), "metadata.log.segment.bytes": ("1073741824",),
        "metadata.log.segment.ms": ("604800000",), "metadata.max.retention.bytes": ("104857600",),
        "metadata.max.retention.ms": ("604800000",),
        "metadata.log.max.record.bytes.between.snapshots": ("20971520",),
        "initial.broker.registration.timeout.ms": ("60000",), "broker.heartbeat.interval.ms": ("2000",),
        "broker.session.timeout.ms": ("9000",),
    }),
    ("a load buffer for __transaction_state (it is read in whole 1 MiB chunks of batches)", {
        "transaction.state.log.load.buffer.size": ("5242880",),
    }),
    ("share groups (KIP-932)", {
        "share.coordinator.state.topic.replication.factor": ("3", "1"),
        "share.coordinator.state.topic.min.isr": ("2", "1"),
    }),
    (_METRICS, {
        "metric.reporters": ("", "org.apache.kafka.common.metrics.JmxReporter"), "metrics.num.samples": ("2",),
        "metrics.sample.window.ms": ("30000",), "metrics.recording.level": ("INFO",),
        "auto.include.jmx.reporter": ("true",), "kafka.metrics.reporters": ("",),
        "kafka.metrics.polling.interval.secs": ("10",),
    }),
    ("Java's TLS provider settings (TLS is OpenSSL's, through Python's ssl)", {
        "ssl.keymanager.algorithm": ("SunX509",), "ssl.trustmanager.algorithm": ("PKIX",),
        "ssl.secure.random.implementation": (), "ssl.provider": (), "ssl.engine.factory.class": (),
        "ssl.allow.dn.changes": ("false",), "ssl.allow.san.changes": ("false",),
    }),
    ("the offsets topic's write timeout, load buffer and compression (offsets are written uncompressed, "
     "acknowledged once appended)", {
        "offsets.commit.timeout.ms": ("5000",), "offsets.load.buffer.size": ("5242880",),
        "offsets.topic.compression.codec": ("0",),
    }),
    ("log cleaner I/O buffers and throttling", {
        "log.cleaner.io.buffer.size": ("524288",), "log.cleaner.io.buffer.load.factor": ("0.9",),
        "log.cleaner.io.max.bytes.per.second": ("1.7976931348623157E308",),
    }),
    ("purgatory tuning (this broker keeps no purgatory lists to purge)", {
        "fetch.purgatory.purge.interval.requests": ("1000",), "producer.purgatory.purge.interval.requests": ("1000",),
        "delete.records.purgatory.purge.interval.requests": ("1",),
    }),
    ("the fetch session cache size and the broker-side fetch size limit", {
        "max.incremental.fetch.session.cache.slots": ("1000",), "fetch.max.bytes": ("57671680",),
    }),
    ("choosing the group protocols (both classic and consumer are served)", {
        "group.coordinator.rebalance.protocols": ("classic,consumer", "consumer,classic"),
    }),
    ("unstable API versions", {"unstable.api.versions.enable": ("false",)}),
    ("a broker-wide request queue bound (requests are bounded per connection: 128 queued)", {
        "queued.max.requests": ("500",),
    }),
)
NOT_IMPLEMENTED: dict[str, tuple[tuple[str, ...], str]] = {
    key: (accepted, feature) for feature, keys in _NOT_IMPLEMENTED for key, accepted in keys.items()}
# Key families that ask for a missing feature by being set at all: always refused.
REFUSED_PREFIXES: tuple[tuple[str, str], ...] = (
    ("zookeeper.", "this ZooKeeper client setting (TLS/SASL to ZooKeeper, ACLs on znodes)"),
    ("sasl.", "SASL"), ("sasl_", "SASL"), ("security.", "TLS and SASL"),
    ("listener.name.", "this per-listener setting (only ssl.*, sasl.enabled.mechanisms, "
                       "<mechanism>.sasl.jaas.config and max.connection.creation.rate are per listener)"),
    ("principal.", "authentication"),
    ("connection.failed.authentication", "authentication"), ("password.encoder.", "dynamic password configs"),
    ("delegation.token.", "delegation tokens"), ("replica.", _CLUSTER), ("controller.", _KRAFT),
    ("metadata.", _KRAFT), ("transaction.", _TXN), ("share.", "share groups (KIP-932)"),
    ("quota.", _QUOTAS), ("client.quota.", _QUOTAS), ("metric.", _METRICS), ("metrics.", _METRICS),
    ("kafka.metrics.", _METRICS), ("remote.log.", "tiered storage"), ("log4j.", "log4j settings"),
    ("confluent.", "Confluent Server settings"), ("config.providers", "config providers"),
    ("early.start.listeners", "early start listeners"), ("alter.config.policy", "config policies"),
    ("create.topic.policy", "topic policies"), ("client.telemetry.", "client telemetry (KIP-714)"),
    ("group.", "this group coordinator setting"), ("offsets.", "this offsets setting"),
)


def not_implemented_error(key: str, raw: str) -> str | None:
    """Why ``key=raw`` cannot be honoured, or None when it changes nothing here."""
    entry = NOT_IMPLEMENTED.get(key)
    if entry is not None:
        accepted, feature = entry
        if raw.strip() in accepted or raw.strip().lower() in accepted:
            return None
        default = f" (Kafka's default {accepted[0]!r} is accepted)" if accepted else ""
        return f"{key}={raw}: kafka-core does not implement {feature}; remove the key{default}"
    for prefix, feature in REFUSED_PREFIXES:
        if key.startswith(prefix):
            return f"{key}: kafka-core does not implement {feature}; remove the key"
    return None


# Per-topic configs: name -> (definition, broker key that supplies the default).
@dataclass(frozen=True)
class TopicConfigDef:
    defn: ConfigDef
    broker_key: str | None         # the server.properties synonym (None: no broker default)


def _t(name: str, broker_key: str | None, typ: str | None = None, default: Any = None,
       check: Callable[[Any], str | None] | None = None) -> TopicConfigDef:
    base = BROKER_CONFIGS.get(broker_key or "")
    return TopicConfigDef(ConfigDef(name, typ or (base.type if base else "string"),
                                    default if base is None else base.default,
                                    check if check is not None else (base.check if base else None),
                                    dynamic=True), broker_key)


TOPIC_CONFIGS: dict[str, TopicConfigDef] = {
    t.defn.name: t for t in (
        _t("cleanup.policy", "log.cleanup.policy"),
        _t("compression.type", "compression.type"),
        _t("compression.gzip.level", "compression.gzip.level"),
        _t("compression.lz4.level", "compression.lz4.level"),
        _t("compression.zstd.level", "compression.zstd.level"),
        _t("delete.retention.ms", "log.cleaner.delete.retention.ms"),
        _t("file.delete.delay.ms", "log.segment.delete.delay.ms"),
        _t("flush.messages", "log.flush.interval.messages", check=at_least(1)),
        _t("flush.ms", "log.flush.interval.ms", "long", LONG_MAX, at_least(0)),
        _t("follower.replication.throttled.replicas", None, "list", []),
        _t("index.interval.bytes", "log.index.interval.bytes"),
        _t("leader.replication.throttled.replicas", None, "list", []),
        _t("local.retention.bytes", "log.local.retention.bytes"),
        _t("local.retention.ms", "log.local.retention.ms"),
        _t("max.compaction.lag.ms", "log.cleaner.max.compaction.lag.ms"),
        _t("max.message.bytes", "message.max.bytes"),
        _t("message.timestamp.after.max.ms", "log.message.timestamp.after.max.ms"),
        _t("message.timestamp.before.max.ms", "log.message.timestamp.before.max.ms"),
        _t("message.timestamp.type", "log.message.timestamp.type"),
        _t("min.cleanable.dirty.ratio", "log.cleaner.min.cleanable.ratio"),
        _t("min.compaction.lag.ms", "log.cleaner.min.compaction.lag.ms"),
        _t("min.insync.replicas", "min.insync.replicas"),
        _t("preallocate", "log.preallocate"),
        _t("remote.storage.enable", None, "boolean", False),
        _t("retention.bytes", "log.retention.bytes"),
        _t("retention.ms", "log.retention.ms", "long", 604800000, at_least(-1)),
        _t("segment.bytes", "log.segment.bytes"),
        _t("segment.index.bytes", "log.index.size.max.bytes"),
        _t("segment.jitter.ms", "log.roll.jitter.ms", "long", 0, at_least(0)),
        _t("segment.ms", "log.roll.ms", "long", 604800000, at_least(1)),
        _t("unclean.leader.election.enable", "unclean.leader.election.enable"),
    )
}

# Broker keys whose value comes from a family of synonyms (most specific first).
_MS_FAMILIES = {
    "log.retention.ms": (("log.retention.ms", 1), ("log.retention.minutes", 60000), ("log.retention.hours", 3600000)),
    "log.roll.ms": (("log.roll.ms", 1), ("log.roll.hours", 3600000)),
    "log.roll.jitter.ms": (("log.roll.jitter.ms", 1), ("log.roll.jitter.hours", 3600000)),
}


# ---------------------------------------------------------------------------
# java.util.Properties syntax

def parse_properties(text: str) -> list[tuple[str, str, int]]:
    """Parse java .properties text into (key, value, line number) triples.

    Comments start with ``#`` or ``!``; the key ends at the first unescaped
    ``=``, ``:`` or whitespace; a line ending in an odd number of
    backslashes continues on the next (leading blanks dropped); ``\\t``,
    ``\\n``, ``\\uXXXX`` and escaped separators are unescaped.
    """
    out: list[tuple[str, str, int]] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        start = i + 1
        line = lines[i].lstrip(" \t\f")
        i += 1
        if not line or line[0] in "#!":
            continue
        while _continues(line) and i < len(lines):
            line = line[:-1] + lines[i].lstrip(" \t\f")
            i += 1
        if _continues(line):
            line = line[:-1]
        key, value = _split_kv(line)
        out.append((_unescape(key), _unescape(value), start))
    return out


def _continues(line: str) -> bool:
    n = len(line) - len(line.rstrip("\\"))
    return n % 2 == 1


def _split_kv(line: str) -> tuple[str, str]:
    j = 0
    while j < len(line):
        ch = line[j]
        if ch == "\\":
            j += 2
            continue
        if ch in "=: \t\f":
            break
        j += 1
    key = line[:j]
    rest = line[j:].lstrip(" \t\f")
    if rest[:1] in ("=", ":"):
        rest = rest[1:].lstrip(" \t\f")
    return key, rest


_ESC = {"t": "\t", "n": "\n", "r": "\r", "f": "\f"}


def _unescape(s: str) -> str:
    if "\\" not in s:
        return s
    out = []
    j = 0
    while j < len(s):
        ch = s[j]
        if ch == "\\" and j + 1 < len(s):
            nxt = s[j + 1]
            if nxt == "u" and re.fullmatch(r"[0-9a-fA-F]{4}", s[j + 2:j + 6]):
                out.append(chr(int(s[j + 2:j + 6], 16)))
                j += 6
                continue
            out.append(_ESC.get(nxt, nxt))
            j += 2
            continue
        out.append(ch)
        j += 1
    return "".join(out)


# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Listener:
    name: str
    host: str
    port: int
    security_protocol: str = "PLAINTEXT"     # listener.security.protocol.map's value for ``name``

    @classmethod
    def parse(cls, uri: str) -> Listener:
        name, rest = uri.split("://", 1)
        host, port = rest.rsplit(":", 1)
        return cls(name, host.strip("[]"), int(port))


class BrokerConfig:
    """Parsed, validated broker configuration.

    ``values`` holds every known broker key (defaults filled in);
    ``explicit`` the keys the operator set, with their text, for
    DescribeConfigs sources.
    """

    def __init__(self, settings: Mapping[str, str] | Iterable[tuple[str, str]] = (), *,
                 origin: Mapping[str, str] | None = None) -> None:
        items = list(settings.items()) if isinstance(settings, Mapping) else list(settings)
        self.explicit: dict[str, str] = {}
        self.inert: dict[str, str] = {}     # not-implemented keys set to a value that changes nothing
        self.values: dict[str, Any] = {k: d.default for k, d in BROKER_CONFIGS.items()}
        origin = origin or {}
        self.listener_ssl: dict[str, dict[str, Any]] = {}    # listener name -> its own ssl.* values
        self.listener_sasl: dict[str, dict[str, Any]] = {}   # listener name -> sasl.enabled.mechanisms
        self.listener_jaas: dict[str, dict[str, str]] = {}   # listener name -> mechanism -> JAAS config
        self.listener_conn_rate: dict[str, int] = {}       # listener name -> max.connection.creation.rate
        for key, raw in items:
            key = key.strip()
            if key.startswith("listener.name."):
                lname, _, sub = key[len("listener.name."):].partition(".")
                sdef = BROKER_CONFIGS.get(sub)
                if sub in SSL_KEYS and sdef is not None:
                    self.listener_ssl.setdefault(lname.upper(), {})[sub] = parse_value(sdef, raw)
                    self.explicit[key] = raw
                    continue
                if sub == "max.connection.creation.rate" and sdef is not None:
                    self.listener_conn_rate[lname.upper()] = parse_value(sdef, raw)
                    self.explicit[key] = raw
                    continue
                if sub == "sasl.enabled.mechanisms" and sdef is not None:
                    self.listener_sasl.setdefault(lname.upper(), {})[sub] = parse_value(sdef, raw)
                    self.explicit[key] = raw
                    continue
                mech, _, rest = sub.rpartition(".sasl.")
                if rest == "jaas.config" and mech:
                    self.listener_jaas.setdefault(lname.upper(), {})[mech.upper()] = raw.strip()
                    self.explicit[key] = raw
                    continue
            defn = BROKER_CONFIGS.get(key)
            if defn is None:
                where = f" ({origin[key]})" if key in origin else ""
                why = not_implemented_error(key, raw)
                if why is not None:
                    raise ConfigError(why + where)
                if key in NOT_IMPLEMENTED:
                    self.inert[key] = raw
                    continue
                raise ConfigError(f"unknown configuration key {key!r}{where}")
            self.values[key] = parse_value(defn, raw)
            self.explicit[key] = raw
        self._derive()

    def _connections_per_ip(self) -> dict[str, int]:
        """``max.connections.per.ip.overrides`` by IP address (Kafka resolves each host once, at
        start-up, as ConnectionQuotas does; a host that does not resolve stops the start)."""
        import socket

        overrides, _ = _ip_overrides(self.values["max.connections.per.ip.overrides"])
        if self.values["max.connections.per.ip"] == 0 and not overrides:
            raise ConfigError("max.connections.per.ip can be set to zero only if max.connections.per.ip.overrides "
                              "property is set.")
        out: dict[str, int] = {}
        for host, count in overrides.items():
            try:
                infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
            except OSError as e:
                raise ConfigError(f"max.connections.per.ip.overrides: host {host!r} does not resolve: {e}") from None
            for info in infos:
                out[str(info[4][0])] = count
        return out

    def _derive(self) -> None:
        v = self.values
        node = v["node.id"] if v["node.id"] >= 0 else v["broker.id"]
        if v["node.id"] >= 0 and v["broker.id"] >= 0 and v["node.id"] != v["broker.id"]:
            raise ConfigError(f"node.id ({v['node.id']}) and broker.id ({v['broker.id']}) differ")
        self.node_id: int = max(node, 0)
        dirs = v["log.dirs"] if v["log.dirs"] else v["log.dir"]
        if not dirs:
            raise ConfigError("log.dirs must name at least one directory")
        self.log_dirs: list[str] = list(dirs)
        if not v["listeners"]:
            raise ConfigError("listeners must name at least one listener")
        self.connections_per_ip = self._connections_per_ip()
        self.listeners = [Listener.parse(u) for u in v["listeners"]]
        names = [ln.name for ln in self.listeners]
        if len(set(names)) != len(names):
            raise ConfigError("listeners: each listener needs a distinct name")
        proto_map = dict(x.split(":", 1) for x in v["listener.security.protocol.map"] if ":" in x)
        protos: dict[str, str] = {}
        for ln in self.listeners:
            proto = proto_map.get(ln.name, ln.name)
            if proto not in LISTENER_PROTOCOLS:
                raise ConfigError(f"listeners: {ln.name} uses {proto}, which is not a security protocol "
                                  "(listener.security.protocol.map: PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL)")
            protos[ln.name] = proto
        for what, per in (("ssl.*", self.listener_ssl), ("sasl.*", self.listener_sasl),
                          ("<mechanism>.sasl.jaas.config", self.listener_jaas),
                          ("max.connection.creation.rate", self.listener_conn_rate)):
            unknown_l = set(per) - set(names)
            if unknown_l:
                raise ConfigError(f"listener.name.*.{what} names unknown listener(s) {sorted(unknown_l)}")
        self.listeners = [Listener(ln.name, ln.host, ln.port, protos[ln.name]) for ln in self.listeners]
        self.tls_contexts: dict[str, Any] = {}     # SSL / SASL_SSL listener name -> ssl.SSLContext
        self.sasl_listeners: dict[str, Any] = {}   # SASL listener name -> sasl.ListenerSasl
        for ln in self.listeners:
            if ln.security_protocol in ("SSL", "SASL_SSL"):
                from .tls import TlsConfigError, server_context
                try:
                    self.tls_contexts[ln.name] = server_context(self.ssl_settings(ln.name), ln.name)
                except TlsConfigError as e:
                    raise ConfigError(str(e)) from None
            if ln.security_protocol.startswith("SASL_"):
                from .sasl import SaslConfigError, listener_sasl
                mechs = self.listener_sasl.get(ln.name, {}).get("sasl.enabled.mechanisms",
                                                                  v["sasl.enabled.mechanisms"])
                try:
                    self.sasl_listeners[ln.name] = listener_sasl(ln.name, mechs, self.listener_jaas.get(ln.name, {}))
                except SaslConfigError as e:
                    raise ConfigError(f"listeners: {e}") from None
        if "security.inter.broker.protocol" in self.explicit and v.get("inter.broker.listener.name"):
            raise ConfigError("Only one of inter.broker.listener.name and security.inter.broker.protocol "
                              "should be set.")
        # The listener brokers use to reach each other (Kafka: inter.broker.listener.name, else the
        # listener named after security.inter.broker.protocol)
        ibl = v.get("inter.broker.listener.name")
        if ibl:
            if ibl not in protos:
                raise ConfigError(f"inter.broker.listener.name={ibl} is not one of the listeners {names}")
            self.inter_broker_listener: str = ibl
        elif "security.inter.broker.protocol" in self.explicit:
            want = v["security.inter.broker.protocol"]
            if want not in protos:
                raise ConfigError(f"security.inter.broker.protocol={want}: no listener is named {want} "
                                  f"(listeners {names}); name one so, or set inter.broker.listener.name")
            self.inter_broker_listener = want
        else:
            self.inter_broker_listener = "PLAINTEXT" if "PLAINTEXT" in protos else names[0]
        inter_proto = protos[self.inter_broker_listener]
        if inter_proto.startswith("SASL_"):
            mech = v["sasl.mechanism.inter.broker.protocol"]
            sl = self.sasl_listeners[self.inter_broker_listener]
            if mech not in sl.mechanisms:
                raise ConfigError(f"sasl.mechanism.inter.broker.protocol={mech} is not enabled on the inter-broker "
                                  f"listener {self.inter_broker_listener} (sasl.enabled.mechanisms: "
                                  f"{','.join(sl.mechanisms)})")
            from .sasl import parse_jaas
            jaas = self.listener_jaas.get(self.inter_broker_listener, {}).get(mech)
            opts = parse_jaas(jaas)[1] if jaas else {}
            if not opts.get("username") or "password" not in opts:
                raise ConfigError(f"the inter-broker listener {self.inter_broker_listener} uses SASL/{mech}: its "
                                  f"listener.name.{self.inter_broker_listener.lower()}.{mech.lower()}.sasl.jaas.config "
                                  "needs username=\"...\" password=\"...\" for this broker's own connections")
            self.inter_broker_sasl: tuple[str, str, str] | None = (mech, opts["username"], opts["password"])
        else:
            self.inter_broker_sasl = None
        adv = [Listener.parse(u) for u in (v["advertised.listeners"] or [])]
        by_name = {a.name: a for a in adv}
        unknown = set(by_name) - set(names)
        if unknown:
            raise ConfigError(f"advertised.listeners names unknown listener(s) {sorted(unknown)}")
        self.advertised: dict[str, Listener] = {}
        for ln in self.listeners:
            a = by_name.get(ln.name, ln)
            host = a.host
            if host in ("0.0.0.0", "::"):
                raise ConfigError(f"advertised.listeners cannot use the nonroutable meta-address {host} "
                                  f"(listener {ln.name}); set advertised.listeners to a routable address")
            if not host:
                import socket
                host = socket.getfqdn()
            self.advertised[ln.name] = Listener(ln.name, host, a.port, ln.security_protocol)
        for key in ("log.retention.ms", "log.roll.ms", "log.roll.jitter.ms"):
            self.values[key] = self.resolved_ms(key)

    def ssl_settings(self, listener: str) -> dict[str, Any]:
        """The ``ssl.*`` values of ``listener``: ``listener.name.<listener>.ssl.*`` over the
        broker-wide keys (Kafka's per-listener prefix)."""
        out = {k: self.values[k] for k in SSL_KEYS}
        out.update(self.listener_ssl.get(listener.upper(), {}))
        return out

    def resolved_ms(self, key: str) -> int | None:
        fam = _MS_FAMILIES[key]
        for name, mult in fam:
            if name in self.explicit:
                val = self.values[name]
                return -1 if val is not None and val < 0 and key == "log.retention.ms" else val * mult
        name, mult = fam[-1]
        d = BROKER_CONFIGS[name].default
        return d * mult if d is not None else None

    def __getitem__(self, key: str) -> Any:
        return self.values[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)

    def log_unused(self) -> None:
        if not self.tls_contexts and any(k.startswith("ssl.keystore") or k.startswith("ssl.truststore")
                                         for k in self.explicit):
            log.warning("ssl.* keystore/truststore settings are given but no listener is SSL or SASL_SSL: "
                        "every listener is without TLS (listeners=%s)",
                        ",".join(f"{ln.name}://{ln.host}:{ln.port}" for ln in self.listeners))
        for key in sorted(self.inert):
            log.info("config %s=%s is Kafka's default for a feature kafka-core does not implement: no effect",
                     key, self.inert[key])
        for key in ("num.network.threads", "num.io.threads", "background.threads",
                    "num.recovery.threads.per.data.dir"):
            if key in self.explicit:
                log.info("config %s=%s accepted; this broker runs one event loop plus flush and "
                         "retention threads", key, self.explicit[key])

    # -- per-topic configs --------------------------------------------------

    def topic_default(self, name: str) -> Any:
        t = TOPIC_CONFIGS[name]
        if t.broker_key is None:
            return t.defn.default
        if name == "flush.ms":
            v = self.values["log.flush.interval.ms"]
            return v if v is not None else self.values["log.flush.scheduler.interval.ms"]
        if name == "segment.jitter.ms":
            return self.values["log.roll.jitter.ms"] or 0
        return self.values[t.broker_key]

    def topic_defaults(self) -> dict[str, Any]:
        return {name: self.topic_default(name) for name in TOPIC_CONFIGS}

    def topic_synonyms(self, name: str) -> list[tuple[str, str | None, int]]:
        """Broker-level synonyms of a topic config, as DescribeConfigs lists them."""
        t = TOPIC_CONFIGS[name]
        out: list[tuple[str, str | None, int]] = []
        if t.broker_key is None:
            return out
        fam = _MS_FAMILIES.get(t.broker_key, ((t.broker_key, 1),))
        if name == "flush.ms":
            fam = (("log.flush.interval.ms", 1), ("log.flush.scheduler.interval.ms", 1))
        for key, _mult in fam:
            if key in self.explicit:
                out.append((key, render(BROKER_CONFIGS[key], self.values[key]
                                        if key not in _MS_FAMILIES else self._raw_value(key)),
                            SOURCE_STATIC_BROKER))
        for key, _mult in fam:
            d = BROKER_CONFIGS[key].default
            if d is not None:
                out.append((key, render(BROKER_CONFIGS[key], d), SOURCE_DEFAULT))
                break
        return out

    def _raw_value(self, key: str) -> Any:
        return parse_value(BROKER_CONFIGS[key], self.explicit[key])


def validate_topic_configs(configs: Mapping[str, str | None]) -> dict[str, Any]:
    """Parse a topic's config overrides; ConfigError names the bad one."""
    out: dict[str, Any] = {}
    for name, raw in configs.items():
        t = TOPIC_CONFIGS.get(name)
        if t is None:
            raise ConfigError(f"Unknown topic config name: {name}")
        if raw is None:
            raise ConfigError(f"Null value not supported for topic config {name}")
        out[name] = parse_value(t.defn, raw)
    return out


def load(config_file: str | None, overrides: Iterable[str] = ()) -> BrokerConfig:
    """Read ``config_file`` (java .properties) and apply ``KEY=VALUE`` overrides."""
    settings: dict[str, str] = {}
    origin: dict[str, str] = {}
    if config_file:
        try:
            with open(config_file, encoding="latin-1") as f:
                text = f.read()
        except OSError as e:
            raise ConfigError(f"cannot read config file {config_file}: {e.strerror}") from None
        for key, value, line in parse_properties(text):
            settings[key] = value
            origin[key] = f"{config_file}:{line}"
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE")
        key, value = item.split("=", 1)
        settings[key.strip()] = value
        origin[key.strip()] = "--set"
    return BrokerConfig(settings, origin=origin)
