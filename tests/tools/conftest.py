"""kafka-core export against real brokers: kafka-core's (fast loop) and Apache Kafka 4.x (interop,
through the ``apache_kafka`` fixture, which tests/conftest.py marks)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kafka_bench.apache_kafka import ApacheKafka, ensure_jars
from kafka_bench.kafka_core_broker import KafkaCoreBroker

from tests.client.conftest import make_topic as client_make_topic

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def core_bootstrap() -> Iterator[str]:
    # No initial rebalance delay (as Kafka's own test configs): a lone exporter starts at once.
    b = KafkaCoreBroker(settings={"num.partitions": "1", "group.initial.rebalance.delay.ms": "0"})
    b.start()
    yield b.bootstrap
    b.cleanup()


@pytest.fixture(scope="session")
def apache_kafka() -> Iterator[ApacheKafka]:
    ensure_jars()
    k = ApacheKafka(heap="512m", extra={"num.partitions": "1"})
    k.start()
    yield k
    k.cleanup()


def make_topic(bootstrap: str, partitions: int) -> str:
    return client_make_topic(bootstrap, f"export-{uuid.uuid4().hex[:10]}", partitions)


def export_cmd(bootstrap: str, *args: str) -> list[str]:
    return [sys.executable, "-m", "kafka_cli", "export", "--bootstrap-server", bootstrap, *args]


def run_export(bootstrap: str, *args: str, timeout: float = 180) -> dict[str, Any]:
    """``kafka-core export ... --json`` in a subprocess; its summary."""
    import json

    r = subprocess.run(export_cmd(bootstrap, *args, "--json"), capture_output=True, text=True, timeout=timeout,
                       env=subprocess_env())
    assert r.returncode == 0, r.stderr[-4000:]
    return json.loads(r.stdout)  # type: ignore[no-any-return]


def subprocess_env() -> dict[str, str]:
    path = [str(ROOT / "python"), str(ROOT / "src")]
    if os.environ.get("PYTHONPATH"):
        path.append(os.environ["PYTHONPATH"])
    return dict(os.environ, PYTHONPATH=os.pathsep.join(path))
