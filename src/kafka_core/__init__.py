"""kafka_core: the C performance core of kafka-core, bound for Python.

Names are loaded lazily from the extension modules (``_crc32c``,
``_batch``, ``_log``, ``_transfer``, ``_metadata``...) so that one missing during
development does not hide the others; ``kafka_core.check_build()``
imports every one and fails loudly when any is missing, as the test
suite does at start.

``KAFKA_CORE_NO_EXTENSIONS=1`` in the environment (as aiokafka's
``AIOKAFKA_NO_EXTENSIONS``) selects the pure-Python twins where the
packages have one: the broker sends file slices by ``pread`` + ``send``
instead of ``kafka_core.Transfer``, and the group coordinator builds and
reads ``__consumer_offsets`` batches with ``kafka_protocol._pyrecords``, and
Metadata's cold topic entries are encoded by
``kafka_broker.metadata_cache.encode_partitions_py`` (not ``_metadata``).
Nothing falls back silently: without the switch a missing extension is an
ImportError, and ``check_build()`` reports which path is in use.
"""

from __future__ import annotations

import importlib
import os
from typing import TYPE_CHECKING, Any

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
    # Metadata response topic entries
    "encode_partitions": "_metadata",
}

if TYPE_CHECKING:   # the lazily exported names, typed from the extensions' stubs
    # ruff: noqa: F401
    from ._batch import (
        BatchBuilder,
        BatchInfo,
        BatchSummary,
        Record,
        assign_offsets,
        iter_records,
        scan_batches,
        validate_batches,
    )
    from ._crc32c import crc32c, crc32c_hardware, crc32c_impl, crc32c_portable
    from ._log import AppendInfo, FileSlice, Log, Position, SegmentInfo
    from ._metadata import encode_partitions
    from ._transfer import (
        XFER_AUTO,
        XFER_COPY,
        XFER_SENDFILE,
        XFER_URING,
        Transfer,
        auto_mode,
        uring_available,
    )

EXTENSIONS = ("_crc32c", "_batch", "_log", "_transfer", "_accum", "_client", "_metadata")
ENV_NO_EXTENSIONS = "KAFKA_CORE_NO_EXTENSIONS"


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() not in ("", "0", "false", "no", "off")


# Read once at import: every module that has a pure-Python twin asks this, not the environment.
NO_EXTENSIONS: bool = _env_flag(ENV_NO_EXTENSIONS)


def __getattr__(name: str) -> Any:
    mod = _EXPORTS.get(name)
    if mod is None:
        raise AttributeError(f"module 'kafka_core' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{mod}", __name__), name)
    globals()[name] = value
    return value


def check_build() -> dict[str, str]:
    """Import every compiled extension; raise ImportError naming any missing one.

    ``extensions`` in the result says whether the pure-Python twins are selected
    (``KAFKA_CORE_NO_EXTENSIONS``); the extensions must be built either way."""
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
    return {"crc32c": __getattr__("crc32c_impl")(), "transfer": str(__getattr__("auto_mode")()),
            "extensions": f"off ({ENV_NO_EXTENSIONS})" if NO_EXTENSIONS else "on"}


__all__ = sorted(_EXPORTS) + ["KcError", "NO_EXTENSIONS", "check_build"]
