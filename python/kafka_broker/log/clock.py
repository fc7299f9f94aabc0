"""Wall-clock milliseconds, as Kafka's ``time.milliseconds()`` (record timestamps, flush.ms)."""

from __future__ import annotations

import time


def now_ms() -> int:
    return time.time_ns() // 1_000_000
