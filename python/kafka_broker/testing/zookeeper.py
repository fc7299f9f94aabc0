"""A standalone ZooKeeper server on loopback, for clusters started by tests.

``EmbeddedZooKeeper(classpath)`` runs ``ZooKeeperServerMain`` from ZooKeeper's jars on
127.0.0.1 with its own data folder; ``classpath`` is what ``java -cp`` takes (``dir/*`` for a
folder of jars).  kafka-core does not ship ZooKeeper: the jars come from wherever the
application has them (Maven, a ZooKeeper or Kafka 3.x download, ``KAFKA_CORE_ZOOKEEPER_CLASSPATH``
for the pytest fixture).  kafka_bench.zookeeper is this class with jars fetched from Maven.

Ready means serving: ``srvr`` answers with a ``Mode:`` line.  ``ruok`` is not enough, it says
``imok`` while the server is still loading (or has failed to load) its database.

tickTime is 500 ms so that the session timeouts a test wants (1 s to 60 s) are all inside the
server's [minSessionTimeout, maxSessionTimeout], which are set explicitly (ZooKeeper's defaults
are 2 and 20 ticks).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import IO, Any

from .process import free_port, terminate_group

MAIN = "org.apache.zookeeper.server.ZooKeeperServerMain"
# A small server starts fastest on C1 alone with the serial collector (~0.3 s to serving).
JVM_FLAGS = ["-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Djava.awt.headless=true"]


def java() -> str:
    """The ``java`` of ``JAVA_HOME``, else the one on PATH."""
    home = os.environ.get("JAVA_HOME")
    j = str(Path(home) / "bin" / "java") if home and (Path(home) / "bin" / "java").exists() else shutil.which("java")
    if not j:
        raise RuntimeError("java not found: ZooKeeper needs a JDK or JRE (17+) on PATH or in JAVA_HOME")
    return j


def four_letter(port: int, cmd: str, timeout: float = 2.0) -> str:
    """Send a four-letter command (``srvr``, ``stat``, ``mntr``, ``ruok``...) and return the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(cmd.encode())
        s.shutdown(socket.SHUT_WR)
        out = b""
        while chunk := s.recv(65536):
            out += chunk
    return out.decode(errors="replace")


def ensure_path(connect: str, path: str) -> None:
    """Create ``path`` (e.g. a chroot for a cluster) on the ZooKeeper at ``connect`` unless it exists."""
    from kazoo.client import KazooClient

    zk = KazooClient(connect, timeout=5)
    zk.start(timeout=10)
    try:
        zk.ensure_path(path)
    finally:
        zk.stop()
        zk.close()


class EmbeddedZooKeeper:
    """``ZooKeeperServerMain`` on 127.0.0.1 (a free port unless given) with a data folder
    (a temporary one, removed on cleanup, unless given), its output in ``zookeeper.log``."""

    def __init__(self, classpath: str | None = None, port: int | None = None, data_dir: str | Path | None = None,
                 heap: str = "128m", tick_ms: int = 500, min_session_timeout_ms: int = 1000,
                 max_session_timeout_ms: int = 60000, extra: dict[str, str] | None = None) -> None:
        self._classpath = classpath
        self.port = port or free_port()
        self._own_dir = data_dir is None
        self.data_dir = Path(data_dir or tempfile.mkdtemp(prefix="zookeeper-"))
        self.heap = heap
        self.config = {
            "tickTime": str(tick_ms),
            "minSessionTimeout": str(min_session_timeout_ms),
            "maxSessionTimeout": str(max_session_timeout_ms),
            "dataDir": str(self.data_dir / "data"),
            "clientPort": str(self.port),
            "clientPortAddress": "127.0.0.1",
            "maxClientCnxns": "0",            # no per-IP limit: every test client comes from 127.0.0.1
            "admin.enableServer": "false",    # the AdminServer would take port 8080
            "4lw.commands.whitelist": "*",
            **(extra or {}),
        }
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = self.data_dir / "zookeeper.log"

    @property
    def connect(self) -> str:
        """The connect string, without a chroot: ``127.0.0.1:PORT``."""
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def classpath(self) -> str:
        if not self._classpath:
            raise RuntimeError("no ZooKeeper classpath: give EmbeddedZooKeeper(classpath='DIR/*') the folder of "
                               "ZooKeeper's jars (org.apache.zookeeper:zookeeper with its dependencies)")
        return self._classpath

    def jvm_options(self) -> list[str]:
        return []

    def command(self) -> list[str]:
        return [java(), f"-Xms{self.heap}", f"-Xmx{self.heap}", *JVM_FLAGS, *self.jvm_options(),
                "-cp", self.classpath(), MAIN, str(self.data_dir / "zoo.cfg")]

    def _spawn(self, cmd: list[str], log: IO[Any]) -> subprocess.Popen[bytes]:
        return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)

    def start(self, timeout: float = 30) -> EmbeddedZooKeeper:
        (self.data_dir / "data").mkdir(parents=True, exist_ok=True)
        (self.data_dir / "zoo.cfg").write_text("".join(f"{k}={v}\n" for k, v in self.config.items()))
        cmd = self.command()
        with open(self.log_path, "ab") as log:
            self.proc = self._spawn(cmd, log)
        try:
            self._wait_serving(timeout)
        except Exception as e:
            self.stop()
            raise RuntimeError(f"{e}; ZooKeeper log {self.log_path}:\n{self.log_tail()}") from e
        return self

    def _wait_serving(self, timeout: float) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"ZooKeeper exited with {self.proc.returncode} before serving")
            try:
                if "Mode: " in four_letter(self.port, "srvr", timeout=1):
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise TimeoutError(f"ZooKeeper is not serving on {self.connect} after {timeout}s")

    def log_tail(self, n: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def _signal(self, sig: int, timeout: float) -> None:
        """``sig`` to the server's process group; SIGKILL after ``timeout``."""
        if self.proc is not None:
            terminate_group(self.proc, timeout=timeout, sig=sig)
        self.proc = None

    def stop(self, timeout: float = 10) -> None:
        """SIGTERM (SIGKILL after ``timeout``); returns once the process is gone."""
        self._signal(signal.SIGTERM, timeout)

    def kill(self) -> None:
        """SIGKILL: a crash, the data folder stays as it was."""
        self._signal(signal.SIGKILL, 10)

    def cleanup(self) -> None:
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self) -> EmbeddedZooKeeper:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.cleanup()
