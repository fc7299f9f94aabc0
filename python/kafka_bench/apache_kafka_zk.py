"""Apache Kafka 3.9 in ZooKeeper mode: a cluster of N brokers on loopback, for the tests of
kafka-core's ZooKeeper-mode cluster and side-by-side runs.

3.9 is the last Apache Kafka line with ZooKeeper mode (4.0 removed it), so it has its own jars,
apart from Apache Kafka 4.x's (apache_kafka.py): ``ensure_jars()`` fetches
``org.apache.kafka:kafka_2.13`` and ``kafka-tools`` 3.9.1 (pom in
kafka_bench/data/apache-kafka-3.9/) into ``<cache>/apache-kafka-3.9/libs`` once
(``KC_APACHE_KAFKA_39_CACHE`` overrides).  ``run_tool_39(cls, args)`` runs a 3.9 tool's main
class (the constants below are what the 3.9 bin/*.sh scripts run).

``ApacheKafkaZkCluster(n, zk_connect)`` starts brokers 1..N, each on a free port with its own
log folder, all under one ZooKeeper chroot (the one in ``zk_connect``, else a fresh
``/kafka-apache-<hex>``), and waits until every broker is registered in ``/brokers/ids``.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

from . import paths, procs
from .apache_kafka import fetch_jars, free_port, java, wait_for_port

POM = paths.DATA / "apache-kafka-3.9" / "pom.xml"
CACHE = Path(os.environ.get("KC_APACHE_KAFKA_39_CACHE", paths.CACHE / "apache-kafka-3.9"))
LIBS = CACHE / "libs"

# Java main classes of Apache Kafka 3.9 (what its bin/*.sh scripts run).
KAFKA = "kafka.Kafka"
TOPICS = "org.apache.kafka.tools.TopicCommand"
LEADER_ELECTION = "org.apache.kafka.tools.LeaderElectionCommand"
REASSIGN_PARTITIONS = "org.apache.kafka.tools.reassign.ReassignPartitionsCommand"
CONFIGS = "kafka.admin.ConfigCommand"
CONSOLE_PRODUCER = "kafka.tools.ConsoleProducer"
CONSOLE_CONSUMER = "org.apache.kafka.tools.consumer.ConsoleConsumer"
CONSUMER_GROUPS = "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand"
GET_OFFSETS = "org.apache.kafka.tools.GetOffsetShell"
ZOOKEEPER_SHELL = "org.apache.zookeeper.ZooKeeperMainWithTlsSupportForKafka"

# Kafka 3.9 logs through reload4j (log4j 1.x): warnings and errors to stderr.
_LOG4J = """log4j.rootLogger=WARN, stderr
log4j.appender.stderr=org.apache.log4j.ConsoleAppender
log4j.appender.stderr.Target=System.err
log4j.appender.stderr.layout=org.apache.log4j.PatternLayout
log4j.appender.stderr.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka.controller=INFO
log4j.logger.state.change.logger=WARN
"""

# Starting fast on two cores matters more here than peak speed: the serial collector, C1 only.
# (bin/kafka-run-class.sh uses G1 with a 20 ms pause goal; pass jvm_flags to get that.)
JVM_FLAGS = ["-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Djava.awt.headless=true"]


def ensure_jars() -> Path:
    """Fetch the jars with Maven unless already cached; return the libs folder."""
    return fetch_jars(POM, LIBS, {"log4j.properties": _LOG4J})


def java_cmd_39(main: str, args: list[str], heap: str = "256m", jvm_flags: list[str] | None = None) -> list[str]:
    libs = ensure_jars()
    return [java(), f"-Xmx{heap}", *(JVM_FLAGS if jvm_flags is None else jvm_flags),
            f"-Dlog4j.configuration=file:{libs / 'log4j.properties'}", "-cp", str(libs / "*"), main, *args]


def run_tool_39(main: str, args: list[str], *, input: bytes | None = None, timeout: float = 120,
                check: bool = True, heap: str = "256m") -> subprocess.CompletedProcess[str]:
    """Run an Apache Kafka 3.9 main class (e.g. ``TOPICS``) to completion; text output."""
    r = subprocess.run(java_cmd_39(main, args, heap), input=input.decode() if input is not None else None,
                       capture_output=True, text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise RuntimeError(f"{main} {' '.join(args)} exited with {r.returncode}:\n{r.stdout[-2000:]}"
                           f"{r.stderr[-4000:]}")
    return r


def split_chroot(zk_connect: str) -> tuple[str, str]:
    """``"127.0.0.1:2181/a/b"`` -> ``("127.0.0.1:2181", "/a/b")``; no chroot gives ``""``."""
    hosts, slash, chroot = zk_connect.partition("/")
    return hosts, (slash + chroot).rstrip("/")


class ApacheKafkaZkCluster:
    """Apache Kafka 3.9 brokers 1..N in ZooKeeper mode on 127.0.0.1.

    ``overrides`` go into every broker's server.properties (after the defaults below);
    ``broker_overrides[i]`` into broker i's only.  Broker ``i`` (1-based, = its broker.id) has
    ``ports[i - 1]`` and ``data_dir / f"broker-{i}"``.

    A cluster started again on the same ``data_dir`` needs the same chroot (pass it in
    ``zk_connect``): the log folders hold the cluster id, which lives in ``<chroot>/cluster/id``.
    """

    def __init__(self, n_brokers: int, zk_connect: str, data_dir: str | Path | None = None,
                 overrides: dict[str, str] | None = None, *, heap: str = "384m",
                 jvm_flags: list[str] | None = None,
                 broker_overrides: dict[int, dict[str, str]] | None = None) -> None:
        if n_brokers < 1:
            raise ValueError("n_brokers must be at least 1")
        self.n_brokers = n_brokers
        hosts, chroot = split_chroot(zk_connect)
        self.zk_hosts = hosts
        self.chroot = chroot or f"/kafka-apache-{uuid.uuid4().hex[:8]}"
        self._own_dir = data_dir is None
        self.data_dir = Path(data_dir or tempfile.mkdtemp(prefix="apache-kafka-zk-"))
        self.overrides = overrides or {}
        self.broker_overrides = broker_overrides or {}
        self.heap = heap
        self.jvm_flags = jvm_flags
        self.ports = [free_port() for _ in range(n_brokers)]
        self.procs: dict[int, subprocess.Popen[bytes]] = {}

    @property
    def zk_connect(self) -> str:
        """The connect string the brokers use, chroot included."""
        return self.zk_hosts + self.chroot

    @property
    def broker_ids(self) -> list[int]:
        return list(range(1, self.n_brokers + 1))

    @property
    def bootstrap(self) -> str:
        return ",".join(f"127.0.0.1:{p}" for p in self.ports)

    def address(self, i: int) -> str:
        return f"127.0.0.1:{self.ports[i - 1]}"

    def broker_dir(self, i: int) -> Path:
        return self.data_dir / f"broker-{i}"

    def log_path(self, i: int) -> Path:
        return self.broker_dir(i) / "server.log"

    def properties(self, i: int) -> dict[str, str]:
        rf = str(min(3, self.n_brokers))
        listener = f"PLAINTEXT://{self.address(i)}"
        props = {
            "broker.id": str(i),
            "listeners": listener,
            "advertised.listeners": listener,
            "log.dirs": str(self.broker_dir(i) / "logs"),
            "zookeeper.connect": self.zk_connect,
            "zookeeper.session.timeout.ms": "6000",   # a killed broker leaves /brokers/ids within 6 s
            "offsets.topic.replication.factor": rf,
            "transaction.state.log.replication.factor": rf,
            "transaction.state.log.min.isr": str(min(2, self.n_brokers)),
            "num.partitions": "1",
            "group.initial.rebalance.delay.ms": "0",
            # small machine: fewer threads than the defaults (3 network, 8 I/O), and a 16 MB
            # cleaner buffer instead of 128 MB, which would not fit a 384 MB heap three times over
            "num.network.threads": "2",
            "num.io.threads": "4",
            "log.cleaner.dedupe.buffer.size": str(16 << 20),
            # the last broker of a cluster has nobody to hand its leaderships to: its controlled
            # shutdown fails all 3 attempts, 5 s apart by default; 1 s keeps a whole-cluster stop short
            "controlled.shutdown.retry.backoff.ms": "1000",
        }
        props.update(self.overrides)
        props.update(self.broker_overrides.get(i, {}))
        return props

    def _launch(self, i: int) -> None:
        d = self.broker_dir(i)
        d.mkdir(parents=True, exist_ok=True)
        cfg = d / "server.properties"
        cfg.write_text("".join(f"{k}={v}\n" for k, v in self.properties(i).items()))
        flags = [f"-Xms{self.heap}", *(JVM_FLAGS if self.jvm_flags is None else self.jvm_flags)]
        cmd = java_cmd_39(KAFKA, [str(cfg)], heap=self.heap, jvm_flags=flags)
        with open(self.log_path(i), "ab") as log:
            self.procs[i] = procs.register(subprocess.Popen(procs.die_with_parent(cmd), stdout=log,
                                                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                                            start_new_session=True))

    def registered_ids(self) -> list[int]:
        """The broker ids in ``<chroot>/brokers/ids`` now."""
        from kazoo.client import KazooClient
        from kazoo.exceptions import NoNodeError

        zk = KazooClient(self.zk_hosts, timeout=5)
        zk.start(timeout=10)
        try:
            return sorted(int(c) for c in zk.get_children(f"{self.chroot}/brokers/ids"))
        except NoNodeError:
            return []
        finally:
            zk.stop()
            zk.close()

    def wait_registered(self, ids: list[int] | None = None, timeout: float = 90) -> None:
        """Until every broker of ``ids`` (default: all running) listens and is in /brokers/ids."""
        want = sorted(ids if ids is not None else self.procs)
        deadline = time.monotonic() + timeout
        for i in want:
            wait_for_port(self.ports[i - 1], max(deadline - time.monotonic(), 0.1), self.procs[i])
        while True:
            have = self.registered_ids()
            if set(want) <= set(have):
                return
            for i in want:
                if self.procs[i].poll() is not None:
                    raise RuntimeError(f"broker {i} exited with {self.procs[i].returncode}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"brokers {want} not all in {self.chroot}/brokers/ids after {timeout}s "
                                   f"(registered: {have})")
            time.sleep(0.1)

    def _failed(self, e: Exception) -> RuntimeError:
        tails = "".join(f"\n--- broker {i} ({self.log_path(i)}):\n"
                        f"{self.log_path(i).read_text(errors='replace')[-3000:]}"
                        for i in self.procs if self.log_path(i).exists())
        return RuntimeError(f"{e}{tails}")

    def start(self, timeout: float = 90) -> ApacheKafkaZkCluster:
        """Start every broker (together: they register in parallel) and wait until all are registered."""
        for i in self.broker_ids:
            self._launch(i)
        try:
            self.wait_registered(timeout=timeout)
        except Exception as e:
            err = self._failed(e)
            self.stop()
            raise err from e
        return self

    def stop_broker(self, i: int, timeout: float = 30) -> None:
        """SIGTERM broker i (a controlled shutdown: leaderships move first), SIGKILL after timeout."""
        p = self.procs.pop(i, None)
        if p is not None:
            procs.terminate(p, timeout=timeout)

    def kill(self, i: int) -> None:
        """SIGKILL broker i: a crash (its ZooKeeper session expires after zookeeper.session.timeout.ms)."""
        p = self.procs.pop(i, None)
        if p is not None:
            procs.terminate(p, timeout=0, sig=signal.SIGKILL)

    def restart(self, i: int, timeout: float = 90, kill: bool = False) -> None:
        """Stop broker i (SIGKILL if ``kill``) and start it again on the same port and log folder;
        returns once it is registered again."""
        (self.kill if kill else self.stop_broker)(i)
        # a killed broker's ephemeral node stays until its session expires: wait for it to go,
        # else "registered" below would be the dead broker's node
        deadline = time.monotonic() + timeout
        while i in self.registered_ids() and time.monotonic() < deadline:
            time.sleep(0.2)
        self._launch(i)
        try:
            self.wait_registered([i], timeout=max(deadline - time.monotonic(), 1))
        except Exception as e:
            raise self._failed(e) from e

    def stop(self, timeout: float = 30) -> None:
        """Stop every broker: SIGTERM to all at once, SIGKILL to any left after ``timeout``."""
        running = list(self.procs.values())
        self.procs.clear()
        for p in running:
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + timeout
        for p in running:
            procs.terminate(p, timeout=max(deadline - time.monotonic(), 0))

    def cleanup(self) -> None:
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self) -> ApacheKafkaZkCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.cleanup()
