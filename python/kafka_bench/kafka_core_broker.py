"""Start and stop a kafka-core broker in a subprocess, for tests and benchmarks."""

from __future__ import annotations

import signal
from pathlib import Path

from kafka_broker.testing import EmbeddedBroker
from kafka_broker.testing import package_paths as _package_paths

from . import paths


class KafkaCoreBroker(EmbeddedBroker):
    """``python -m kafka_cli broker`` (the CLI's path) on a free loopback port with its own data
    folder and no settings beyond the port and folder: the broker's own defaults."""

    DEFAULTS: dict[str, str] = {}
    PACKAGES = ("kafka_cli", "kafka_broker", "kafka_core", "kafka_protocol")

    def command(self) -> list[str]:
        cmd = super().command()
        i = cmd.index("kafka_broker")
        return [*cmd[:i], "kafka_cli", "broker", *cmd[i + 1:]]

    def cwd(self) -> Path:
        return paths.CHECKOUT or self.data_dir

    def start(self, timeout: float = 30) -> KafkaCoreBroker:
        super().start(timeout)
        return self

    def restart(self, sig: int = signal.SIGTERM) -> KafkaCoreBroker:
        self.stop(sig)
        return self.start()

    def __enter__(self) -> KafkaCoreBroker:
        return self.start()


def package_paths() -> list[str]:
    """The folders this process imports kafka_cli, kafka_broker and kafka_core from."""
    return _package_paths(KafkaCoreBroker.PACKAGES)
