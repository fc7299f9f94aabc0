"""The four systems under test, each started on loopback in its own temp
folder and stopped again: kafka-core (this repo), Apache Kafka 4.x (KRaft,
jars from Maven Central), RabbitMQ and ActiveMQ (Debian packages, run as plain
child processes rather than system services)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from . import paths, procs
from .apache_kafka import POM, ApacheKafka, free_port, wait_for_port
from .kafka_core_broker import KafkaCoreBroker

ALL = ["kafka-core", "apache-kafka", "rabbitmq", "activemq"]


class StartError(RuntimeError):
    pass


def apt_install(pkg: str, probe: str) -> None:
    """Install a Debian package unless `probe` exists, without starting its service."""
    if Path(probe).exists():
        return
    if os.geteuid() != 0:
        raise StartError(f"{pkg} is not installed and this is not root: apt-get install {pkg}")
    policy = Path("/usr/sbin/policy-rc.d")
    had_policy = policy.exists()
    try:
        if not had_policy:  # keep dpkg from starting the packaged service
            policy.write_text("#!/bin/sh\nexit 101\n")
            policy.chmod(0o755)
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        r = subprocess.run(["apt-get", "install", "-y", "-q", pkg], env=env, capture_output=True, text=True)
        if r.returncode:
            subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True)
            r = subprocess.run(["apt-get", "install", "-y", "-q", pkg], env=env, capture_output=True, text=True)
        if r.returncode:
            raise StartError(f"apt-get install {pkg} failed: {r.stderr[-1500:]}")
    finally:
        if not had_policy:
            policy.unlink(missing_ok=True)


class System:
    name = ""
    protocol = "kafka"  # kafka | amqp | openwire
    version = ""
    client = ""
    settings: dict[str, str] = {}

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    @property
    def pid(self) -> int:
        raise NotImplementedError

    @property
    def port(self) -> int:
        raise NotImplementedError

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stats(self) -> procs.TreeStats:
        return procs.tree_stats(self.pid)

    def log_tail(self) -> str:
        return ""


class _ChildServer(System):
    """A Kafka-protocol server (kafka_core_broker.KafkaCoreBroker, apache_kafka.ApacheKafka):
    both have start(timeout), proc, port, cleanup()."""

    label = ""
    start_timeout = 60.0
    server: Any = None

    def make(self) -> Any:
        raise NotImplementedError  # subclasses say what to start

    def server_log(self) -> str:
        return ""

    def start(self) -> None:
        self.server = self.make()
        try:
            self.server.start(timeout=self.start_timeout)
        except Exception as e:
            tail = self.server_log()[-1500:]
            self.server.cleanup()
            raise StartError(f"{self.label} did not start: {e}\n{tail}") from e
        assert self.server.proc is not None
        procs.register(self.server.proc)

    def stop(self) -> None:
        if self.server is not None:
            if self.server.proc is not None:
                procs.terminate(self.server.proc)
            self.server.cleanup()
            self.server = None

    @property
    def pid(self) -> int:
        assert self.server is not None and self.server.proc is not None
        return self.server.proc.pid

    @property
    def port(self) -> int:
        assert self.server is not None
        return self.server.port

    def log_tail(self) -> str:
        return self.server_log()[-3000:] if self.server else ""


class KafkaCore(_ChildServer):
    name = "kafka-core"
    label = "kafka-core broker"
    client = "librdkafka (kc_loadgen)"

    def __init__(self) -> None:
        # One big segment size as in benches/system/bench_broker.py; everything else default.
        self.settings = {"log.segment.bytes": str(1 << 30)}
        self.version = _kafka_core_version()

    def make(self) -> KafkaCoreBroker:
        # KafkaCoreBroker puts this process's python/ and src/ on the child's PYTHONPATH
        return KafkaCoreBroker(settings=dict(self.settings))

    def server_log(self) -> str:
        return self.server.log_text() if self.server else ""


class ApacheKafkaSystem(_ChildServer):
    name = "apache-kafka"
    label = "Apache Kafka"
    client = "librdkafka (kc_loadgen); kafka-tools perf tools"
    start_timeout = 120.0

    def __init__(self) -> None:
        self.settings = {"heap": "-Xmx1g", "config": "single-node KRaft, defaults (kafka_bench/apache_kafka.py)"}
        self.version = _pom_kafka_version()

    def make(self) -> ApacheKafka:
        return ApacheKafka(heap="1g")

    def server_log(self) -> str:
        try:
            return self.server.log_path.read_text(errors="replace") if self.server else ""
        except OSError:
            return ""


class _TempDirServer(System):
    """A peer broker run from a temp folder: its process, folder and port."""

    def __init__(self) -> None:
        self.dir: Path | None = None
        self.proc: subprocess.Popen | None = None
        self._port = 0

    def _remove_dir(self) -> None:
        if self.dir:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def port(self) -> int:
        return self._port


class RabbitMQ(_TempDirServer):
    """rabbitmq-server (Debian) as root in a temp folder, with its own epmd."""

    name = "rabbitmq"
    protocol = "amqp"
    client = "RabbitMQ Java client (PeerBench)"

    def __init__(self) -> None:
        super().__init__()
        self.epmd: subprocess.Popen | None = None
        self.settings = {"queue": "classic, durable; persistent messages; publisher confirms",
                         "config": "package defaults, bound to 127.0.0.1"}

    def start(self) -> None:
        apt_install("rabbitmq-server", "/usr/lib/rabbitmq/bin/rabbitmq-server")
        self.version = _dpkg_version("rabbitmq-server")
        self.dir = Path(tempfile.mkdtemp(prefix="bench-rabbitmq-"))
        self._port, dist, epmd_port = free_port(), free_port(), free_port()
        node = f"bench{self._port}@localhost"
        env = dict(os.environ, HOME=str(self.dir), ERL_EPMD_PORT=str(epmd_port), ERL_EPMD_ADDRESS="127.0.0.1",
                   RABBITMQ_NODENAME=node, RABBITMQ_NODE_IP_ADDRESS="127.0.0.1",
                   RABBITMQ_NODE_PORT=str(self._port), RABBITMQ_DIST_PORT=str(dist),
                   RABBITMQ_MNESIA_BASE=str(self.dir / "mnesia"), RABBITMQ_LOG_BASE=str(self.dir / "log"),
                   RABBITMQ_CONFIG_FILE=str(self.dir / "rabbitmq"),
                   RABBITMQ_ADVANCED_CONFIG_FILE=str(self.dir / "advanced.config"),
                   RABBITMQ_ENABLED_PLUGINS_FILE=str(self.dir / "enabled_plugins"),
                   RABBITMQ_PID_FILE=str(self.dir / "rabbitmq.pid"), RABBITMQ_LOGS=str(self.dir / "rabbit.log"))
        (self.dir / "enabled_plugins").write_text("[].\n")
        (self.dir / "rabbitmq.conf").write_text("loopback_users.guest = true\n")
        erl_cookie = self.dir / ".erlang.cookie"
        erl_cookie.write_text("KAFKACOREBENCH")
        erl_cookie.chmod(0o400)
        epmd = shutil.which("epmd") or "epmd"
        self.epmd = procs.register(subprocess.Popen([epmd, "-port", str(epmd_port), "-address", "127.0.0.1"],
                                                    env=env, start_new_session=True,
                                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        log = open(self.dir / "stdout.log", "ab")
        self.proc = procs.register(subprocess.Popen(["/usr/lib/rabbitmq/bin/rabbitmq-server"], env=env,
                                                    cwd=self.dir, stdout=log, stderr=subprocess.STDOUT,
                                                    start_new_session=True))
        log.close()
        try:
            wait_for_port(self._port, 120, self.proc)
        except Exception as e:
            tail = self.log_tail()
            self.stop()
            raise StartError(f"RabbitMQ did not start: {e}\n{tail}") from e

    def stop(self) -> None:
        for p in (self.proc, self.epmd):
            if p is not None:
                procs.terminate(p, timeout=30)
        self.proc = self.epmd = None
        self._remove_dir()

    def log_tail(self) -> str:
        if not self.dir:
            return ""
        out = ""
        for f in ("stdout.log", "rabbit.log"):
            try:
                out += (self.dir / f).read_text(errors="replace")[-1500:]
            except OSError:
                pass
        return out


_ACTIVEMQ_XML = """<beans xmlns="http://www.springframework.org/schema/beans"
  xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
  xsi:schemaLocation="http://www.springframework.org/schema/beans http://www.springframework.org/schema/beans/spring-beans-2.0.xsd
  http://activemq.apache.org/schema/core http://activemq.apache.org/schema/core/activemq-core.xsd">
  <broker xmlns="http://activemq.apache.org/schema/core" useJmx="false" brokerName="bench"
          dataDirectory="{data}">
    <destinationPolicy><policyMap><policyEntries>
      <policyEntry queue="&gt;" producerFlowControl="false"/>
    </policyEntries></policyMap></destinationPolicy>
    <persistenceAdapter><kahaDB directory="{data}/kahadb"/></persistenceAdapter>
    <systemUsage><systemUsage>
      <memoryUsage><memoryUsage limit="512 mb"/></memoryUsage>
      <storeUsage><storeUsage limit="40 gb"/></storeUsage>
      <tempUsage><tempUsage limit="10 gb"/></tempUsage>
    </systemUsage></systemUsage>
    <transportConnectors>
      <transportConnector name="openwire" uri="tcp://127.0.0.1:{port}"/>
    </transportConnectors>
  </broker>
</beans>
"""

AMQ_HOME = Path("/usr/share/activemq")


class ActiveMQ(_TempDirServer):
    """ActiveMQ 5.x (Debian) run from its jars with a config in a temp folder."""

    name = "activemq"
    protocol = "openwire"
    client = "ActiveMQ OpenWire JMS client (PeerBench)"

    def __init__(self) -> None:
        super().__init__()
        self.settings = {"heap": "-Xms64M -Xmx1G (upstream's default; Debian's 512M ran out of heap)",
                         "store": "KahaDB, package defaults (journal fsync on); store limit 40 GB; "
                                  "memory limit 512 MB; producer flow control off (with it on, a producer "
                                  "blocked for good once the memory limit was reached)",
                         "queue": "persistent messages"}

    def start(self) -> None:
        apt_install("activemq", str(AMQ_HOME / "bin" / "activemq.jar"))
        self.version = _dpkg_version("activemq")
        self.dir = Path(tempfile.mkdtemp(prefix="bench-activemq-"))
        self._port = free_port()
        (self.dir / "activemq.xml").write_text(_ACTIVEMQ_XML.format(data=self.dir / "data", port=self._port))
        log4j = Path("/etc/activemq/instances-available/main/log4j2.properties")
        if log4j.exists():
            shutil.copy(log4j, self.dir / "log4j2.properties")
        cmd = [shutil.which("java") or "java", "-Xms64M", "-Xmx1G",
               "-Dorg.apache.activemq.UseDedicatedTaskRunner=true",
               "--add-opens", "java.base/java.lang=ALL-UNNAMED",
               "--add-opens", "java.base/java.util=ALL-UNNAMED",
               "--add-opens", "java.base/java.util.concurrent=ALL-UNNAMED",
               "--add-opens", "java.base/java.net=ALL-UNNAMED",
               "--add-opens", "java.naming/javax.naming.spi=ALL-UNNAMED",
               f"-Dactivemq.classpath={self.dir}:{AMQ_HOME / 'lib'}/",
               f"-Dactivemq.home={AMQ_HOME}", f"-Dactivemq.base={self.dir}",
               f"-Dactivemq.conf={self.dir}", f"-Dactivemq.data={self.dir / 'data'}",
               "-jar", str(AMQ_HOME / "bin" / "activemq.jar"), "start", f"xbean:file:{self.dir / 'activemq.xml'}"]
        log = open(self.dir / "stdout.log", "ab")
        self.proc = procs.register(subprocess.Popen(cmd, cwd=self.dir, stdout=log, stderr=subprocess.STDOUT,
                                                    start_new_session=True))
        log.close()
        try:
            wait_for_port(self._port, 120, self.proc)
        except Exception as e:
            tail = self.log_tail()
            self.stop()
            raise StartError(f"ActiveMQ did not start: {e}\n{tail}") from e

    def stop(self) -> None:
        if self.proc is not None:
            procs.terminate(self.proc, timeout=30)
        self.proc = None
        self._remove_dir()

    def log_tail(self) -> str:
        try:
            return (self.dir / "stdout.log").read_text(errors="replace")[-3000:] if self.dir else ""
        except OSError:
            return ""


def make(name: str) -> System:
    return {"kafka-core": KafkaCore, "apache-kafka": ApacheKafkaSystem, "rabbitmq": RabbitMQ,
            "activemq": ActiveMQ}[name]()


def _dpkg_version(pkg: str) -> str:
    r = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", pkg], capture_output=True, text=True)
    return r.stdout.strip()


def _pom_kafka_version() -> str:
    import re

    try:
        m = re.search(r"<kafka.version>([^<]+)<", POM.read_text())
        return m.group(1) if m else ""
    except OSError:
        return ""


def _kafka_core_version() -> str:
    """The checkout's pyproject.toml version, else the installed distribution's."""
    import re
    from importlib import metadata

    if paths.CHECKOUT is not None:
        try:
            m = re.search(r'^version\s*=\s*"([^"]+)"', (paths.CHECKOUT / "pyproject.toml").read_text(), re.M)
            return m.group(1) if m else ""
        except OSError:
            return ""
    try:
        return metadata.version("kafka-core")
    except metadata.PackageNotFoundError:
        return ""


def wait_idle(seconds: float = 1.0) -> None:
    time.sleep(seconds)
