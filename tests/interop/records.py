"""Deterministic test records: keys, values (incl. binary and empty), headers."""

from __future__ import annotations

import random

CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]


def make_records(n: int, seed: int = 1, value_size: int = 100) -> list[tuple[bytes | None, bytes, list[tuple[str, bytes]]]]:
    rnd = random.Random(seed)
    out = []
    for i in range(n):
        key = None if i % 7 == 3 else f"key-{i}".encode()
        size = 0 if i % 11 == 5 else rnd.randint(1, value_size)
        value = bytes(rnd.getrandbits(8) for _ in range(size))
        headers = [("h1", f"v{i}".encode()), ("bin", bytes([i % 256, 0, 255]))] if i % 3 == 0 else []
        out.append((key, value, headers))
    return out
