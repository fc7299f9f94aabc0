"""Helpers shared by the benchmark modules (not a test module)."""

from __future__ import annotations

import os

from kafka_core._batch import BatchBuilder


def make_batch(nbytes: int, value_size: int) -> bytes:
    """A RecordBatch of up to nbytes: as many records (key-<i>, one random value of value_size
    bytes) as fit, timestamps 1_700_000_000_000 + i."""
    b = BatchBuilder(nbytes, base_timestamp=1_700_000_000_000)
    value = os.urandom(value_size)
    i = 0
    while b.append(1_700_000_000_000 + i, b"key-%d" % i, value):
        i += 1
    return bytes(b.finish())
