"""ZooKeeper from Maven Central, for the ZooKeeper-mode cluster tests and benchmarks.

``ensure_jars()`` fetches ``org.apache.zookeeper:zookeeper`` 3.8.4 (the version Apache Kafka
3.9.1 uses; pom in kafka_bench/data/zookeeper/) with its dependencies into
``<cache>/zookeeper/libs`` once (``KC_ZOOKEEPER_CACHE`` overrides).  ``ZooKeeper`` is
kafka_broker.testing's ``EmbeddedZooKeeper`` (the server process: config, readiness, stop) on
those jars, with logback's warnings to its log:

    with ZooKeeper() as zk:
        KazooClient(zk.connect + "/my-chroot")

The process is registered with ``procs`` (stopped at interpreter exit) and started under
``procs.die_with_parent`` (killed when this process dies without exiting cleanly), so no test
session leaves a ZooKeeper behind.
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path
from typing import IO, Any

from kafka_broker.testing.zookeeper import JVM_FLAGS, MAIN, EmbeddedZooKeeper, ensure_path, four_letter

from . import paths, procs
from .apache_kafka import fetch_jars

__all__ = ["JVM_FLAGS", "MAIN", "ZooKeeper", "classpath", "ensure_jars", "ensure_path", "four_letter"]

POM = paths.DATA / "zookeeper" / "pom.xml"
CACHE = Path(os.environ.get("KC_ZOOKEEPER_CACHE", paths.CACHE / "zookeeper"))
LIBS = CACHE / "libs"

# logback (ZooKeeper's own binding): warnings and errors to stderr.  Parentheses group in a
# logback pattern, hence the brackets round the logger name.
_LOGBACK = """<configuration>
  <appender name="STDERR" class="ch.qos.logback.core.ConsoleAppender">
    <target>System.err</target>
    <encoder><pattern>[%d] %p %m [%c]%n</pattern></encoder>
  </appender>
  <root level="WARN"><appender-ref ref="STDERR"/></root>
</configuration>
"""


def ensure_jars() -> Path:
    """Fetch the jars with Maven unless already cached; return the libs folder."""
    return fetch_jars(POM, LIBS, {"logback.xml": _LOGBACK})


def classpath() -> str:
    """``java -cp`` of the fetched jars (what ``KAFKA_CORE_ZOOKEEPER_CLASSPATH`` takes)."""
    return str(ensure_jars() / "*")


class ZooKeeper(EmbeddedZooKeeper):
    """``EmbeddedZooKeeper`` on the Maven jars (fetched on first start), under ``procs``."""

    def classpath(self) -> str:
        return self._classpath or classpath()

    def jvm_options(self) -> list[str]:
        return [f"-Dlogback.configurationFile={ensure_jars() / 'logback.xml'}"]

    def _spawn(self, cmd: list[str], log: IO[Any]) -> subprocess.Popen[bytes]:
        return procs.register(subprocess.Popen(procs.die_with_parent(cmd), stdout=log, stderr=subprocess.STDOUT,
                                               stdin=subprocess.DEVNULL, start_new_session=True))

    def _signal(self, sig: int, timeout: float) -> None:
        if self.proc is not None:
            procs.terminate(self.proc, timeout=0 if sig == signal.SIGKILL else timeout, sig=sig)
        self.proc = None

    def start(self, timeout: float = 30) -> ZooKeeper:
        super().start(timeout)
        return self

    def __enter__(self) -> ZooKeeper:
        return self.start()
