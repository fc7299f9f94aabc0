"""Start and stop a kafka-core broker in a subprocess, for tests and benchmarks."""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from . import paths
from .apache_kafka import free_port, wait_for_port


def package_paths() -> list[str]:
    """The folders this process imports kafka_cli, kafka_broker and kafka_core from (in a
    checkout: python/ and src/), so that the broker child runs the same code without
    `pip install -e .`."""
    out: list[str] = []
    for name in ("kafka_cli", "kafka_broker", "kafka_core"):
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.origin:
            d = str(Path(spec.origin).resolve().parents[1])
            if d not in out:
                out.append(d)
    return out


class KafkaCoreBroker:
    """``python -m kafka_cli broker`` on a free loopback port with its own data folder."""

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
        sets = {"listeners": f"PLAINTEXT://127.0.0.1:{self.port}", "log.dirs": str(self.data_dir / "logs")}
        sets.update(self.settings)
        cmd = [sys.executable, "-m", "kafka_cli", "broker"]
        for k, v in sets.items():
            cmd += ["--set", f"{k}={v}"]
        return cmd

    def start(self, timeout: float = 30) -> KafkaCoreBroker:
        log = open(self.log_path, "ab")
        # this process's packages first, so a source tree works without `pip install -e .`
        path = package_paths()
        if os.environ.get("PYTHONPATH"):
            path.append(os.environ["PYTHONPATH"])
        env = dict(os.environ, PYTHONUNBUFFERED="1", PYTHONPATH=os.pathsep.join(path))
        self.proc = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT,
                                     cwd=paths.CHECKOUT or self.data_dir, env=env, start_new_session=True)
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

    def restart(self, sig: int = signal.SIGTERM) -> KafkaCoreBroker:
        self.stop(sig)
        return self.start()

    def cleanup(self) -> None:
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self) -> KafkaCoreBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.cleanup()
