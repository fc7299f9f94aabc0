"""A real kafka-core broker for an application's tests: no Docker, no JVM, a temporary folder.

::

    from kafka_broker.testing import EmbeddedBroker

    with EmbeddedBroker() as broker:          # started, on a free loopback port
        producer = confluent_kafka.Producer({"bootstrap.servers": broker.bootstrap})
        ...                                   # stopped, its folder removed

With pytest the ``kafka_core_broker`` fixture (this module is a pytest plugin, registered by
kafka-core's ``pytest11`` entry point) gives each test a fresh broker the same way;
``kafka_core_broker_session`` shares one broker across a session.

The broker is ``python -m kafka_broker`` in a child process: the same broker as in production,
speaking the Kafka protocol to any client, with settings that suit tests (``TEST_SETTINGS``:
topics auto-created with one partition, groups formed without the initial rebalance delay, one
``__consumer_offsets`` partition); ``settings=`` overrides or adds any broker key.  It starts in
a fraction of a second (``benches/system/bench_embedded_start.py`` measures it against Apache
Kafka's).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

TEST_SETTINGS = {"num.partitions": "1", "auto.create.topics.enable": "true", "group.initial.rebalance.delay.ms": "0",
                 "offsets.topic.num.partitions": "1"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, timeout: float, proc: subprocess.Popen[Any] | None = None) -> None:
    """Until something accepts connections on 127.0.0.1:port (the broker listens only once its
    logs are open and its group coordinator runs)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.01)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


def package_paths(names: tuple[str, ...] = ("kafka_broker", "kafka_core", "kafka_protocol")) -> list[str]:
    """The folders this process imports ``names`` from (in a checkout: python/ and src/), so
    that the broker child runs the same code without ``pip install -e .``."""
    out: list[str] = []
    for name in names:
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.origin:
            d = str(Path(spec.origin).resolve().parents[1])
            if d not in out:
                out.append(d)
    return out


class EmbeddedBroker:
    """One kafka-core broker in a child process on a free loopback port, with its own folder
    (a temporary one unless ``data_dir`` is given), its log in ``<data_dir>/broker.log``."""

    DEFAULTS: dict[str, str] = TEST_SETTINGS
    PACKAGES: tuple[str, ...] = ("kafka_broker", "kafka_core", "kafka_protocol")

    def __init__(self, data_dir: str | Path | None = None, port: int | None = None,
                 settings: dict[str, str] | None = None) -> None:
        self.port = port or free_port()
        self._own_dir = data_dir is None
        self.data_dir = Path(data_dir or tempfile.mkdtemp(prefix="kafka-core-"))
        self.settings = settings or {}
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = self.data_dir / "broker.log"

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        sets = dict(self.DEFAULTS)
        sets.update({"listeners": f"PLAINTEXT://127.0.0.1:{self.port}", "log.dirs": str(self.data_dir / "logs")})
        sets.update(self.settings)
        cmd = [sys.executable, "-m", "kafka_broker"]
        for k, v in sets.items():
            cmd += ["--set", f"{k}={v}"]
        return cmd

    def cwd(self) -> Path:
        return self.data_dir

    def start(self, timeout: float = 30) -> EmbeddedBroker:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")
        path = package_paths(self.PACKAGES)
        if os.environ.get("PYTHONPATH"):
            path.append(os.environ["PYTHONPATH"])
        env = dict(os.environ, PYTHONUNBUFFERED="1", PYTHONPATH=os.pathsep.join(path))
        self.proc = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT, cwd=self.cwd(), env=env,
                                     start_new_session=True)
        log.close()
        try:
            wait_for_port(self.port, timeout, self.proc)
        except Exception:
            self.stop()
            sys.stderr.write(self.log_text()[-4000:])
            raise
        return self

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int | None:
        """Stop the broker (SIGTERM: clean; SIGKILL: crash) and return its exit code."""
        if self.proc is None:
            return None
        code = self.proc.poll()
        if code is None:
            self.proc.send_signal(sig)
            try:
                code = self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                code = self.proc.wait(10)
        self.proc = None
        return code

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def restart(self, sig: int = signal.SIGTERM) -> EmbeddedBroker:
        self.stop(sig)
        return self.start()

    def cleanup(self) -> None:
        """Stop it and remove its folder (when it made the folder)."""
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.cleanup()


# -- the pytest plugin ------------------------------------------------------------------

try:
    import pytest
except ImportError:  # pragma: no cover - the plugin needs pytest; EmbeddedBroker does not
    pass
else:
    @pytest.fixture
    def kafka_core_broker() -> Iterator[EmbeddedBroker]:
        """A fresh kafka-core broker for this test (``.bootstrap`` is its address)."""
        with EmbeddedBroker() as b:
            yield b

    @pytest.fixture(scope="session")
    def kafka_core_broker_session() -> Iterator[EmbeddedBroker]:
        """One kafka-core broker shared by the whole session."""
        with EmbeddedBroker() as b:
            yield b
