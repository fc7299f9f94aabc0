"""Suite-wide set-up: the compiled core must be present (never a silent fallback)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # makes the helpers of tests/*/conftest.py importable
    sys.path.insert(0, str(ROOT))


def pytest_report_header(config):  # noqa: ARG001
    import kafka_core

    try:
        info = kafka_core.check_build()
    except ImportError as e:
        return f"kafka_core: NOT BUILT ({e})"
    return f"kafka_core: crc32c={info['crc32c']} transfer={info['transfer']}"


INTEROP_DIR = ROOT / "tests" / "interop"


# Fixtures that start Apache Kafka (tests/client/conftest.py, tests/cluster/conftest.py).
APACHE_FIXTURES = {"apache_kafka", "apache_zk_cluster"}


def pytest_collection_modifyitems(config, items):  # noqa: ARG001
    """Everything under tests/interop uses real third-party clients: mark it ``interop`` here,
    since a ``pytestmark`` in a conftest.py is ignored by pytest. Tests that take an Apache
    Kafka fixture directly are interop tests too."""
    for item in items:
        if INTEROP_DIR in Path(str(item.path)).parents or APACHE_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.interop)
