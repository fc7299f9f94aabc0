# cython: language_level=3
"""The partitions array of a MetadataResponseTopic, encoded in one call (issue 16).

A Metadata response's cold topic entries (kafka_broker/metadata_cache.py) cost ~1 us of Python
per partition even in the specialized encoder there; this writes the same bytes with a C loop.
Layout per partition, from MetadataResponse.json (the broker's layout tables are checked against
it, and this against the Python twin ``metadata_cache.encode_partitions_py``, byte for byte):

    ErrorCode int16, PartitionIndex int32, LeaderId int32, LeaderEpoch int32 (v7+),
    ReplicaNodes []int32, IsrNodes []int32, OfflineReplicas []int32 (v5+), tagged fields (v9+)

Arrays are INT32 counts before the flexible versions (v9), unsigned varints of count + 1 from
there; the tagged fields of each partition are one 0 byte (none).  The three int32 arrays are
encoded once while a partition holds the same list objects as the one before it (on a single
node every healthy partition shares them), so the loop is a tuple unpack, three stores and a copy.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.tuple cimport PyTuple_GET_SIZE
from libc.stdint cimport int32_t, uint32_t
from libc.string cimport memcpy

cdef inline Py_ssize_t _put_uvarint(char *p, uint32_t v) noexcept:
    cdef Py_ssize_t n = 0
    while v >= 0x80:
        p[n] = <char>((v & 0x7F) | 0x80)
        v >>= 7
        n += 1
    p[n] = <char>v
    return n + 1


cdef inline void _put32(char *p, int32_t v) noexcept:
    cdef uint32_t u = <uint32_t>v
    p[0] = <char>(u >> 24)
    p[1] = <char>(u >> 16)
    p[2] = <char>(u >> 8)
    p[3] = <char>u


cdef inline int32_t _int32(object x) except? -1:
    return <int32_t>x       # an int outside int32: OverflowError, as struct.pack's error


cdef bytes _int32s(object xs, bint flex):
    cdef Py_ssize_t n = len(xs), i, pos
    cdef char head[5]
    pos = _put_uvarint(head, <uint32_t>(n + 1)) if flex else 4
    if not flex:
        _put32(head, <int32_t>n)
    out = PyBytes_FromStringAndSize(NULL, pos + 4 * n)
    cdef char *p = PyBytes_AS_STRING(out)
    memcpy(p, head, pos)
    for i in range(n):
        _put32(p + pos + 4 * i, _int32(xs[i]))
    return out


def encode_partitions(list parts, bint flex, bint with_epoch, bint with_offline):
    """The Partitions array (its count, then every entry) of ``parts``: a list of tuples
    (error code, index, leader, leader epoch, replicas, ISR, offline replicas)."""
    cdef Py_ssize_t n = len(parts), i, total, pos, hl = 14 if with_epoch else 10
    cdef char head[5]
    cdef Py_ssize_t cl = _put_uvarint(head, <uint32_t>(n + 1)) if flex else 4
    cdef object last_r = None, last_i = None, last_o = None, r, isr, off
    cdef bytes tail = b""
    cdef tuple t
    cdef list tails = [None] * n
    cdef int err
    if not flex:
        _put32(head, <int32_t>n)
    total = cl
    for i in range(n):
        t = <tuple?>parts[i]
        if PyTuple_GET_SIZE(t) != 7:
            raise ValueError(f"partition {i}: a tuple of 7 values, not {PyTuple_GET_SIZE(t)}")
        r, isr, off = t[4], t[5], t[6]
        if r is not last_r or isr is not last_i or off is not last_o:
            last_r, last_i, last_o = r, isr, off
            tail = (_int32s(r, flex) + _int32s(isr, flex) + (_int32s(off, flex) if with_offline else b"")
                    + (b"\x00" if flex else b""))
        tails[i] = tail
        total += hl + PyBytes_GET_SIZE(tail)
    out = PyBytes_FromStringAndSize(NULL, total)
    cdef char *p = PyBytes_AS_STRING(out)
    memcpy(p, head, cl)
    pos = cl
    for i in range(n):
        t = <tuple>parts[i]
        err = t[0]
        if err < -32768 or err > 32767:
            raise OverflowError(f"partition {i}: error code {err} is not an int16")
        p[pos] = <char>((<uint32_t>err) >> 8)
        p[pos + 1] = <char>err
        _put32(p + pos + 2, _int32(t[1]))
        _put32(p + pos + 6, _int32(t[2]))
        if with_epoch:
            _put32(p + pos + 10, _int32(t[3]))
        pos += hl
        tail = <bytes>tails[i]
        memcpy(p + pos, PyBytes_AS_STRING(tail), PyBytes_GET_SIZE(tail))
        pos += PyBytes_GET_SIZE(tail)
    return out
