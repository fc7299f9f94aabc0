"""The compiled core is what runs: no silent pure-Python fallback (aiokafka #514)."""

from __future__ import annotations

from pathlib import Path

import kafka_core


def test_every_extension_is_built():
    info = kafka_core.check_build()
    assert set(info) == {"crc32c", "transfer", "extensions"}
    # every compiled module under src/kafka_core is one check_build imports (it once left out _accum)
    built = {p.name.split(".")[0] for p in Path(kafka_core.__file__).parent.glob("_*.so")}
    assert built == set(kafka_core.EXTENSIONS), built ^ set(kafka_core.EXTENSIONS)
    sources = {p.stem for p in Path(kafka_core.__file__).parent.glob("_*.pyx")}
    assert sources == set(kafka_core.EXTENSIONS)


def test_hardware_crc_is_used_when_the_cpu_has_it():
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    expected = "sse4.2" if " sse4_2" in flags else "portable"
    assert kafka_core.crc32c_impl() == expected
