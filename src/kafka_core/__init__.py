"""kafka_core: the C performance core of kafka-core, bound for Python.

Names are loaded lazily from the extension modules (``_crc32c``,
``_batch``, ``_log``, ``_transfer``) so that one missing during
development does not hide the others; ``kafka_core.check_build()``
imports every one and fails loudly when any is missing, as the test
suite does at start.
"""

from __future__ import annotations

import importlib
from typing import Any

from ._errors import *  # noqa: F403
from ._errors import KcError, error_for  # noqa: F401

_EXPORTS = {
    # CRC-32C
    "crc32c": "_crc32c",
    "crc32c_portable": "_crc32c",
    "crc32c_hardware": "_crc32c",
    "crc32c_impl": "_crc32c",
    # record batches and records
    "BatchInfo": "_batch",
    "BatchSummary": "_batch",
    "scan_batches": "_batch",
    "validate_batches": "_batch",
    "assign_offsets": "_batch",
    "iter_records": "_batch",
    "Record": "_batch",
    "BatchBuilder": "_batch",
    # partition log
    "Log": "_log",
    "FileSlice": "_log",
    "AppendInfo": "_log",
    "Position": "_log",
    "SegmentInfo": "_log",
    # zero-copy transfer
    "Transfer": "_transfer",
    "XFER_AUTO": "_transfer",
    "XFER_SENDFILE": "_transfer",
    "XFER_URING": "_transfer",
    "XFER_COPY": "_transfer",
    "uring_available": "_transfer",
    "auto_mode": "_transfer",
}

EXTENSIONS = ("_crc32c", "_batch", "_log", "_transfer")


def __getattr__(name: str) -> Any:
    mod = _EXPORTS.get(name)
    if mod is None:
        raise AttributeError(f"module 'kafka_core' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{mod}", __name__), name)
    globals()[name] = value
    return value


def check_build() -> dict[str, str]:
    """Import every compiled extension; raise ImportError naming any missing one."""
    missing = []
    for ext in EXTENSIONS:
        try:
            importlib.import_module(f".{ext}", __name__)
        except ImportError as e:  # pragma: no cover - a broken build
            missing.append(f"{ext} ({e})")
    if missing:
        raise ImportError(
            "kafka_core C extensions are not built: " + ", ".join(missing)
            + ". Run `pip install -e .` (needs gcc and Python headers)."
        )
    return {"crc32c": __getattr__("crc32c_impl")(), "transfer": str(__getattr__("auto_mode")())}


__all__ = sorted(_EXPORTS) + ["KcError", "check_build"]
