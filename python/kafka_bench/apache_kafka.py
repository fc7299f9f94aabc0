"""Apache Kafka from Maven Central, for interop tests and side-by-side benchmarks.

``ensure_jars()`` fetches ``org.apache.kafka:kafka_2.13``, ``kafka-tools`` and
``kafka-clients`` (version in kafka_bench/data/apache-kafka/pom.xml) with their
dependencies into ``<cache>/apache-kafka/libs`` once (``kafka_bench.paths.CACHE``;
``KC_APACHE_KAFKA_CACHE`` overrides).  ``java_main(cls, args)`` runs any
of their main classes (console producer/consumer, topics tool, perf tools).
``ApacheKafka`` starts a single-node KRaft broker on loopback and stops it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

from kafka_broker.testing import free_port, wait_for_port  # noqa: F401 - re-exported for the benches and tests

from . import paths

POM = paths.DATA / "apache-kafka" / "pom.xml"
CACHE = Path(os.environ.get("KC_APACHE_KAFKA_CACHE", paths.CACHE / "apache-kafka"))
LIBS = CACHE / "libs"

# Java main classes of Apache Kafka 4.x tools (what the bin/*.sh scripts run).
TOPICS = "org.apache.kafka.tools.TopicCommand"
CONSOLE_PRODUCER = "org.apache.kafka.tools.ConsoleProducer"
CONSOLE_CONSUMER = "org.apache.kafka.tools.consumer.ConsoleConsumer"
PRODUCER_PERF = "org.apache.kafka.tools.ProducerPerformance"
CONSUMER_PERF = "org.apache.kafka.tools.ConsumerPerformance"
CONSUMER_GROUPS = "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand"
CONFIGS = "kafka.admin.ConfigCommand"
GET_OFFSETS = "org.apache.kafka.tools.GetOffsetShell"
BROKER_API_VERSIONS = "org.apache.kafka.tools.BrokerApiVersionsCommand"
TRANSACTIONS = "org.apache.kafka.tools.TransactionsCommand"
STORAGE = "kafka.tools.StorageTool"
KAFKA = "kafka.Kafka"

_LOG4J2 = """Configuration:
  status: warn
  Appenders:
    Console:
      name: STDERR
      target: SYSTEM_ERR
      PatternLayout:
        pattern: "[%d] %p %m (%c)%n"
  Loggers:
    Root:
      level: warn
      AppenderRef:
        - ref: STDERR
"""


def java() -> str:
    j = shutil.which("java")
    if not j:
        raise RuntimeError("java not found: install a JDK (17+) to run Apache Kafka's tools")
    return j


def fetch_jars(pom: Path, libs: Path, files: dict[str, str] | None = None) -> Path:
    """Copy the dependencies of ``pom`` into ``libs`` with Maven unless already there (a
    ``.complete`` marker holds the pom it was fetched for); write ``files`` (name: text, e.g.
    a logging configuration) beside the jars; return ``libs``.  Shared by Apache Kafka 4.x,
    Apache Kafka 3.9 (apache_kafka_zk) and ZooKeeper (zookeeper)."""
    marker = libs / ".complete"
    if not (marker.exists() and marker.read_text() == pom.read_text()):
        mvn = shutil.which("mvn")
        if not mvn:
            raise RuntimeError(f"mvn not found: install Maven to fetch the jars of {pom} from Maven Central")
        libs.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix="jars-", dir=libs.parent))   # same file system: rename below
        try:
            subprocess.run([mvn, "-q", "-B", "-f", str(pom), "dependency:copy-dependencies",
                            f"-DoutputDirectory={tmp}"], check=True)
            if libs.exists():
                shutil.rmtree(libs)
            tmp.rename(libs)
            marker.write_text(pom.read_text())
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    for name, text in (files or {}).items():
        if not (libs / name).exists() or (libs / name).read_text() != text:
            (libs / name).write_text(text)
    return libs


def compiled_classpath(src: Path, sources: tuple[str, ...], cache: Path) -> str:
    """``src/pom.xml``'s jars fetched into ``cache/libs`` and ``src``'s Java ``sources`` compiled
    against them into ``cache/classes`` -- again only when a source changes (a stamp holds their
    hash), so a test run pays for javac once; the ``java -cp`` of both."""
    import hashlib

    libs = fetch_jars(src / "pom.xml", cache / "libs")
    classes = cache / "classes"
    digest = hashlib.sha256(b"".join((src / s).read_bytes() for s in sources)).hexdigest()
    stamp = classes / ".sources"
    if not (stamp.exists() and stamp.read_text() == digest):
        javac = shutil.which("javac")
        if not javac:
            raise RuntimeError(f"javac not found: install a JDK (17+) to build {', '.join(sources)}")
        shutil.rmtree(classes, ignore_errors=True)
        classes.mkdir(parents=True)
        subprocess.run([javac, "-nowarn", "-d", str(classes), "-cp", str(libs / "*"),
                        *[str(src / s) for s in sources]], check=True, capture_output=True)
        stamp.write_text(digest)
    return f"{classes}:{libs / '*'}"


def ensure_jars() -> Path:
    """Fetch the jars with Maven unless already cached; return the libs folder."""
    return fetch_jars(POM, LIBS, {"log4j2.yaml": _LOG4J2})


def classpath() -> str:
    libs = ensure_jars()
    return str(libs / "*")


def java_cmd(main: str, args: list[str], heap: str = "256m") -> list[str]:
    return [java(), f"-Xmx{heap}", f"-Dlog4j2.configurationFile={LIBS / 'log4j2.yaml'}",
            "-cp", classpath(), main, *args]


def java_main(main: str, args: list[str], *, input: bytes | None = None, timeout: float = 120,
              check: bool = True, heap: str = "256m") -> subprocess.CompletedProcess[bytes]:
    """Run an Apache Kafka main class to completion and return the result."""
    return subprocess.run(java_cmd(main, args, heap), input=input, capture_output=True,
                          timeout=timeout, check=check)


class ApacheKafka:
    """A single-node Apache Kafka (KRaft, combined broker+controller) on loopback."""

    def __init__(self, data_dir: str | Path | None = None, port: int | None = None,
                 heap: str = "1g", extra: dict[str, str] | None = None) -> None:
        self.port = port or free_port()
        self.controller_port = free_port()
        self._own_dir = data_dir is None
        self.data_dir = Path(data_dir or tempfile.mkdtemp(prefix="apache-kafka-"))
        self.heap = heap
        self.extra = extra or {}
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = self.data_dir / "server.log"

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def properties(self) -> dict[str, str]:
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@127.0.0.1:{self.controller_port}",
            "listeners": f"PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": str(self.data_dir / "logs"),
            "num.partitions": "1",
            "offsets.topic.replication.factor": "1",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
        }
        props.update(self.extra)
        return props

    def start(self, timeout: float = 90) -> ApacheKafka:
        cfg = self.data_dir / "server.properties"
        cfg.write_text("".join(f"{k}={v}\n" for k, v in self.properties().items()))
        if not (self.data_dir / "logs" / "meta.properties").exists():
            java_main(STORAGE, ["format", "-t", uuid.uuid4().hex[:22], "-c", str(cfg), "--ignore-formatted"],
                      heap="256m")
        log = open(self.log_path, "ab")
        cmd = java_cmd(KAFKA, [str(cfg)], heap=self.heap)
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        try:
            wait_for_port(self.port, timeout, self.proc)
        except Exception:
            self.stop()
            sys.stderr.write(self.log_path.read_text(errors="replace")[-4000:])
            raise
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None

    def cleanup(self) -> None:
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self) -> ApacheKafka:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.cleanup()
