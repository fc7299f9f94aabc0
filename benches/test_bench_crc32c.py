"""CRC-32C: kafka_core (hardware and portable) vs google-crc32c and crc32c.

1 MiB measures throughput; 200 B (a typical small record batch) measures
call overhead.  Compare the GB/s in extra_info; nothing is asserted.
"""

from __future__ import annotations

import os

import pytest

from kafka_core._crc32c import crc32c, crc32c_hardware, crc32c_impl, crc32c_portable

SIZES = {"1MiB": 1 << 20, "200B": 200}
DATA = {k: os.urandom(n) for k, n in SIZES.items()}


def _impls():
    out = [("kafka_core", crc32c), ("kafka_core_portable", crc32c_portable)]
    if crc32c_impl() == "sse4.2":
        out.append(("kafka_core_hw", crc32c_hardware))
    try:
        import google_crc32c

        out.append(("google_crc32c", google_crc32c.value))
    except ImportError:  # pragma: no cover
        pass
    try:
        import crc32c as crc32c_pkg

        out.append(("crc32c_pkg", crc32c_pkg.crc32c))
    except ImportError:  # pragma: no cover
        pass
    return out


@pytest.mark.parametrize("size", list(SIZES))
@pytest.mark.parametrize("name,fn", _impls(), ids=[n for n, _ in _impls()])
def test_crc32c(benchmark, throughput, name, fn, size) -> None:
    data = DATA[size]
    benchmark.group = f"crc32c-{size}"
    want = crc32c_portable(data)
    assert throughput(fn, data, nbytes=len(data)) == want
