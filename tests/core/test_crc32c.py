"""kafka_core._crc32c against known vectors, the Python oracle and google-crc32c."""

from __future__ import annotations

import random

import pytest
from kafka_protocol import _pyrecords

from kafka_core import _errors
from kafka_core._crc32c import crc32c, crc32c_hardware, crc32c_impl, crc32c_portable

HW = crc32c_impl() == "sse4.2"


@pytest.mark.parametrize("fn", [crc32c, crc32c_portable] + ([crc32c_hardware] if HW else []))
def test_known_vectors(fn) -> None:
    assert fn(b"123456789") == 0xE3069283
    assert fn(b"") == 0
    assert fn(bytes(32)) == 0x8A9136AA            # RFC 3720 B.4
    assert fn(b"\xff" * 32) == 0x62A8AB43
    assert fn(bytes(range(32))) == 0x46DD794E


def test_oracle_vector() -> None:
    assert _pyrecords.crc32c(b"123456789") == 0xE3069283


def test_impl_name() -> None:
    assert crc32c_impl() in ("sse4.2", "portable")


def test_random_lengths_alignments_and_chaining() -> None:
    rnd = random.Random(1234)
    data = rnd.randbytes(10_300)
    mv = memoryview(data)
    for _ in range(400):
        n = rnd.randrange(0, 10_241)
        off = rnd.randrange(0, 8)
        piece = mv[off:off + n]
        want = crc32c_portable(piece)
        assert crc32c(piece) == want
        if HW:
            assert crc32c_hardware(piece) == want
        cut = rnd.randrange(0, n + 1)
        assert crc32c(piece[cut:], crc32c(piece[:cut])) == want
        assert crc32c_portable(piece[cut:], crc32c_portable(piece[:cut])) == want


def test_matches_oracle_small() -> None:
    rnd = random.Random(7)
    for n in (0, 1, 7, 8, 9, 63, 200, 777):
        b = rnd.randbytes(n)
        assert crc32c(b) == _pyrecords.crc32c(b)


def test_matches_google_crc32c() -> None:
    google_crc32c = pytest.importorskip("google_crc32c")
    rnd = random.Random(3)
    for n in (1, 100, 4095, 4096, 4097, 70_000, 1 << 20):
        b = rnd.randbytes(n)
        assert crc32c(b) == google_crc32c.value(b)
        assert crc32c(b[n // 3:], crc32c(b[:n // 3])) == google_crc32c.extend(google_crc32c.value(b[:n // 3]), b[n // 3:])


def test_buffer_types() -> None:
    b = b"hello world" * 1000
    want = crc32c(b)
    assert crc32c(bytearray(b)) == want
    assert crc32c(memoryview(b)) == want
    assert crc32c(memoryview(b"xx" + b)[2:]) == want
    import array
    assert crc32c(array.array("B", b)) == want


def test_bad_arguments() -> None:
    with pytest.raises(TypeError):
        crc32c("text")  # type: ignore[arg-type]
    with pytest.raises(OverflowError):
        crc32c(b"x", -1)
    with pytest.raises(OverflowError):
        crc32c(b"x", 1 << 32)


def test_hardware_unsupported_message() -> None:
    if HW:
        pytest.skip("this CPU has SSE4.2")
    with pytest.raises(_errors.UnsupportedError):
        crc32c_hardware(b"x")
