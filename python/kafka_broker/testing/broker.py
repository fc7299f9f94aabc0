"""One kafka-core broker in a child process, for tests (see the package docstring)."""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from .process import free_port, wait_for_port

TEST_SETTINGS = {"num.partitions": "1", "auto.create.topics.enable": "true", "group.initial.rebalance.delay.ms": "0",
                 "offsets.topic.num.partitions": "1"}


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
