# cython: language_level=3
"""CRC-32C (Castagnoli) over any buffer, bound from csrc/kc_crc32c.c.

``crc32c(data, crc=0)`` continues from ``crc`` like google-crc32c's
``extend``: ``crc32c(b, crc32c(a)) == crc32c(a + b)``.  bytes objects take a
fast path with no buffer-protocol round trip; the GIL is released only
above GIL_RELEASE_MIN bytes, where the CRC outlasts the release/reacquire.
"""

from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_CheckExact, PyBytes_GET_SIZE
from libc.stdint cimport uint32_t

from kafka_core.kc_common cimport KC_ERR_UNSUPPORTED, kc_strerror
from kafka_core.kc_crc32c cimport (
    kc_crc32c,
    kc_crc32c_hw,
    kc_crc32c_hw_available,
    kc_crc32c_impl,
    kc_crc32c_sw,
)

from kafka_core._errors import error_for

# Below this many bytes the CRC (~1 ns per 30 B) is cheaper than dropping the GIL.
GIL_RELEASE_MIN = 4096

ctypedef uint32_t (*crc_fn)(uint32_t, const void *, size_t) noexcept nogil


cdef inline uint32_t _run(crc_fn fn, object data, uint32_t crc) except? 0xFFFFFFFF:
    cdef Py_buffer view
    cdef uint32_t out
    cdef const char *p
    cdef size_t n
    if PyBytes_CheckExact(data):
        p = PyBytes_AS_STRING(data)
        n = <size_t>PyBytes_GET_SIZE(data)
        if n < GIL_RELEASE_MIN:
            return fn(crc, p, n)
        with nogil:
            out = fn(crc, p, n)
        return out
    PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
    try:
        n = <size_t>view.len
        if n < GIL_RELEASE_MIN:
            out = fn(crc, view.buf, n)
        else:
            with nogil:
                out = fn(crc, view.buf, n)
    finally:
        PyBuffer_Release(&view)
    return out


def crc32c(data, uint32_t crc=0):
    """CRC-32C of ``data`` (any contiguous buffer), continuing from ``crc``."""
    return _run(kc_crc32c, data, crc)


def crc32c_portable(data, uint32_t crc=0):
    """CRC-32C with the portable slicing-by-8 code (tests, benchmarks)."""
    return _run(kc_crc32c_sw, data, crc)


def crc32c_hardware(data, uint32_t crc=0):
    """CRC-32C with the SSE4.2 code; UnsupportedError when the CPU lacks it."""
    if not kc_crc32c_hw_available():
        raise error_for(KC_ERR_UNSUPPORTED, kc_strerror(KC_ERR_UNSUPPORTED).decode(),
                        "crc32c_hardware: this CPU has no SSE4.2")
    return _run(kc_crc32c_hw, data, crc)


def crc32c_impl():
    """"sse4.2" or "portable": the implementation crc32c() uses."""
    return kc_crc32c_impl().decode()
