"""kcat (librdkafka's CLI) against kafka-core: metadata, produce, consume."""

from __future__ import annotations

import shutil
import subprocess

import pytest

pytestmark = pytest.mark.skipif(shutil.which("kcat") is None, reason="kcat is installed by ./dev test")


def kcat(*args: str, input: bytes | None = None, timeout: float = 30) -> bytes:
    r = subprocess.run(["kcat", *args], input=input, capture_output=True, timeout=timeout)
    assert r.returncode == 0, r.stderr.decode()
    return r.stdout


def test_metadata_listing(broker, topic3):
    out = kcat("-b", broker.bootstrap, "-L", "-t", topic3).decode()
    assert f'topic "{topic3}" with 3 partitions' in out
    assert "leader 0" in out


@pytest.mark.parametrize("codec", ["none", "gzip", "snappy", "lz4", "zstd"])
def test_produce_consume_keys(broker, topic, codec):
    lines = b"".join(b"key%d:value %d \xf0\x9f\x98\x80\n" % (i, i) for i in range(100))
    kcat("-b", broker.bootstrap, "-t", topic, "-P", "-K:", "-p", "0", "-z", codec, input=lines)
    out = kcat("-b", broker.bootstrap, "-t", topic, "-C", "-p", "0", "-o", "beginning", "-e",
               "-f", "%k:%s\n")
    assert out == lines
    tail = kcat("-b", broker.bootstrap, "-t", topic, "-C", "-p", "0", "-o", "-3", "-e", "-f", "%o %s\n")
    assert tail.splitlines()[0].startswith(b"97 value 97")
