"""Where kafka_bench finds the files it ships and keeps what it builds or downloads,
the same in a source checkout and in an installed package.

- ``DATA``: package data (``data/``): the Maven pom of Apache Kafka's jars, the
  kc_loadgen C source and the PeerBench Java client.
- ``CHECKOUT``: the repository root when running from a source tree (or an editable
  install), else None.
- ``CACHE``: built binaries and fetched jars: ``<checkout>/.cache`` in a checkout,
  ``$XDG_CACHE_HOME/kafka-core`` (``~/.cache/kafka-core``) otherwise.
- ``RESULTS``: benchmark results: ``<checkout>/benches/results`` in a checkout,
  ``./bench-results`` otherwise.
"""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
DATA = PACKAGE / "data"


def _checkout() -> Path | None:
    root = PACKAGE.parents[1]   # <root>/python/kafka_bench
    if (root / "pyproject.toml").is_file() and (root / "python" / "kafka_bench").is_dir():
        return root
    return None


CHECKOUT = _checkout()
if CHECKOUT is not None:
    CACHE = CHECKOUT / ".cache"
    RESULTS = CHECKOUT / "benches" / "results"
else:
    CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "kafka-core"
    RESULTS = Path("bench-results")
