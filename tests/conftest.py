"""Suite-wide set-up: the compiled core must be present (never a silent fallback)."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # makes `tests.support` importable
    sys.path.insert(0, str(ROOT))


def pytest_report_header(config):  # noqa: ARG001
    import kafka_core

    try:
        info = kafka_core.check_build()
    except ImportError as e:
        return f"kafka_core: NOT BUILT ({e})"
    return f"kafka_core: crc32c={info['crc32c']} transfer={info['transfer']}"
