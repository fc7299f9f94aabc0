# cython: language_level=3, boundscheck=False, wraparound=False
"""The producer's record accumulator: one open batch per partition, in C.

``Accumulator.produce(topic, value, key=..., ...)`` is the whole per-record
path of kafka_client's producers: one C call picks the partition (explicit,
murmur2 of the key as in the Java client, or the sticky partition for
keyless records), appends the record to that partition's open batch
(``kc_builder_append``: varints into a C-owned buffer) and returns.  Python
runs per batch only: when a batch fills up (it is closed and queued for the
sender) or a new one is opened, the ``wake`` hook is called once.

Anything unusual (topic without metadata, buffer_memory full, a record too
large, a custom partitioner, a closed or failed producer) goes to the
``slow`` hook, which decides in Python (wait, raise) and retries with
``try_append``.

Thread safety: every method that touches the batches holds the
accumulator's own reentrant lock (a C-level lock: an uncontended acquire is
a few nanoseconds; a contended one waits with the GIL released).  The
producer engine uses the same object as its lock (``with accum:``), so the
caller's thread appends and the I/O thread sends under one lock and never
hop threads per record.

Delivery: a batch keeps a list of waiters only for records that asked for
one (a future or an ``on_delivery`` callback); ``Batch.resolve`` settles all
of them in one call per batch.  Fire-and-forget records cost nothing there.
"""

import collections
import logging

from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytearray cimport PyByteArray_AS_STRING, PyByteArray_Resize
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_CheckExact, PyBytes_GET_SIZE
from cpython.pythread cimport (
    NOWAIT_LOCK,
    WAIT_LOCK,
    PyThread_acquire_lock,
    PyThread_allocate_lock,
    PyThread_free_lock,
    PyThread_release_lock,
    PyThread_type_lock,
)
from libc.stdint cimport int16_t, int32_t, int64_t, uint8_t, uint32_t, uint64_t
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy
from posix.time cimport CLOCK_MONOTONIC, CLOCK_REALTIME, clock_gettime, timespec

from kafka_core.kc_batch cimport *
from kafka_core.kc_common cimport *

from kafka_core._errors import error_for

cdef extern from "pythread.h":
    unsigned long PyThread_get_thread_ident()

log = logging.getLogger("kafka_client.producer")

# Waiter kinds.
WAIT_FUTURE = 1      # has set_result / set_exception / done
WAIT_CALLBACK = 2    # called as cb(err, metadata)

# Reasons handed to the slow hook.
SLOW_CLOSED = 1
SLOW_TOPIC = 2
SLOW_MEMORY = 3
SLOW_TOO_LARGE = 4
SLOW_PARTITIONER = 5
SLOW_RANGE = 6
SLOW_NO_PARTITION = 7

# Flags of try_append.
SKIP_MEMORY = 1

cdef int _OVERHEAD = 32   # upper bound of a record's varints and attributes


cdef object _err(int code, str detail):
    return error_for(code, kc_strerror(code).decode(), detail)


cdef inline double _monotonic() noexcept nogil:
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return <double>ts.tv_sec + <double>ts.tv_nsec * 1e-9


cdef inline int64_t _now_ms() noexcept nogil:
    cdef timespec ts
    clock_gettime(CLOCK_REALTIME, &ts)
    return <int64_t>ts.tv_sec * 1000 + ts.tv_nsec // 1000000


# ------------------------------------------------------------------ murmur2

cdef int32_t _murmur2(const uint8_t *data, Py_ssize_t length) noexcept nogil:
    """Kafka's Utils.murmur2: 32-bit MurmurHash2, seed 0x9747b28c."""
    cdef uint32_t m = 0x5BD1E995
    cdef uint32_t h = <uint32_t>0x9747B28C ^ <uint32_t>length
    cdef uint32_t k
    cdef Py_ssize_t n4 = length & ~3
    cdef Py_ssize_t i = 0
    while i < n4:
        k = (<uint32_t>data[i] | (<uint32_t>data[i + 1] << 8) | (<uint32_t>data[i + 2] << 16)
             | (<uint32_t>data[i + 3] << 24))
        k *= m
        k ^= k >> 24
        k *= m
        h *= m
        h ^= k
        i += 4
    cdef int rem = length & 3
    if rem == 3:
        h ^= <uint32_t>data[n4 + 2] << 16
    if rem >= 2:
        h ^= <uint32_t>data[n4 + 1] << 8
    if rem >= 1:
        h ^= <uint32_t>data[n4]
        h *= m
    h ^= h >> 13
    h *= m
    h ^= h >> 15
    return <int32_t>h


def murmur2(data) -> int:
    """Kafka's ``Utils.murmur2`` of a bytes-like object (str: UTF-8), as a signed int32."""
    cdef _Span s
    data = _as_bytes(data)
    _span_get(data, &s)
    try:
        return _murmur2(s.ptr, s.len)
    finally:
        _span_release(&s)


def partition_for_key(key, int num_partitions) -> int:
    """``toPositive(murmur2(key)) % num_partitions`` (the Java client's keyed partitioning)."""
    if num_partitions <= 0:
        raise ValueError("num_partitions must be positive")
    return (murmur2(key) & 0x7FFFFFFF) % num_partitions


# ------------------------------------------------------------------ byte spans

cdef struct _Span:
    const uint8_t *ptr
    Py_ssize_t len      # -1 = null
    bint has_view
    Py_buffer view


cdef inline int _span_get(object obj, _Span *s) except -1:
    """bytes without a copy; None = null; anything else through the buffer protocol.
    (str is encoded by the caller, which keeps the bytes alive.)"""
    s.has_view = False
    if obj is None:
        s.ptr = NULL
        s.len = -1
        return 0
    if PyBytes_CheckExact(obj):
        s.ptr = <const uint8_t *>PyBytes_AS_STRING(obj)
        s.len = PyBytes_GET_SIZE(obj)
        return 0
    if isinstance(obj, str):
        raise TypeError("str must be encoded first")
    PyObject_GetBuffer(obj, &s.view, PyBUF_SIMPLE)
    s.has_view = True
    s.ptr = <const uint8_t *>s.view.buf
    s.len = s.view.len
    return 0


cdef inline void _span_release(_Span *s) noexcept:
    if s.has_view:
        PyBuffer_Release(&s.view)
        s.has_view = False


cdef inline object _as_bytes(object obj):
    if isinstance(obj, str):
        return (<str>obj).encode("utf-8", "surrogateescape")
    return obj


# ------------------------------------------------------------------ batch

cdef class Batch:
    """One batch of one partition: a C builder over its own buffer, the records' waiters, and
    the sender's bookkeeping (public attributes, used by kafka_client.producer)."""

    cdef kc_builder_t b
    cdef bytearray _buf
    cdef bint _finished
    cdef Py_ssize_t _size
    cdef public object part
    cdef public object data
    cdef public object stamped
    cdef public list waiters
    cdef public double id            # order of the batches of a partition (halves of a split batch sit between)
    cdef public double split_step
    cdef public double created
    cdef public double deadline
    cdef public double retry_at
    cdef public long long pid
    cdef public int epoch
    cdef public int base_seq
    cdef public int attempts
    cdef public bint done
    cdef public bint transactional  # the batch belongs to a transaction (attribute bit 4, set at finish)
    cdef readonly Py_ssize_t capacity

    def __init__(self, Py_ssize_t capacity, int64_t base_timestamp, Py_ssize_t initial=0):
        """``capacity``: the most the batch may hold; ``initial``: bytes allocated up front (the
        buffer doubles on demand up to ``capacity``, so a big batch.size costs little for batches
        that stay small, e.g. with linger.ms=0)."""
        cdef Py_ssize_t start = capacity if initial <= 0 or initial > capacity else initial
        if capacity < KC_BATCH_HEADER_SIZE:
            raise _err(KC_ERR_TOO_LARGE, f"capacity {capacity} is below the {KC_BATCH_HEADER_SIZE}-byte header")
        if start < KC_BATCH_HEADER_SIZE:
            start = KC_BATCH_HEADER_SIZE
        self._buf = bytearray(start)
        kc_builder_init(&self.b, <uint8_t *>PyByteArray_AS_STRING(self._buf), <size_t>start,
                        base_timestamp, 0, -1, -1, -1)
        self.capacity = capacity
        self.split_step = 1.0
        self.pid = -1
        self.epoch = -1
        self.base_seq = -1

    @property
    def count(self) -> int:
        return self.b.count

    @property
    def nbytes(self) -> int:
        return self._size if self._finished else self.b.pos

    def append(self, int64_t timestamp, key, value, headers=None) -> bool:
        """Append one record (tests and tools; the producer appends through Accumulator)."""
        cdef int rc = _append_grow(self, timestamp, _as_bytes(key), _as_bytes(value), headers)
        if rc == KC_OK:
            return True
        if rc == KC_ERR_TOO_LARGE and self.b.count > 0:
            return False
        raise _err(rc, f"record {self.b.count} does not fit in {self.b.cap} bytes")

    cdef inline void _stamp(self):
        if self.transactional:
            self.b.attributes = <int16_t>(self.b.attributes | KC_ATTR_TRANSACTIONAL)
        else:
            self.b.attributes = <int16_t>(self.b.attributes & ~KC_ATTR_TRANSACTIONAL)
        self.b.producer_id = self.pid
        self.b.producer_epoch = <int16_t>self.epoch
        self.b.base_sequence = self.base_seq

    def records_view(self):
        """The uncompressed records section (to compress)."""
        return memoryview(self._buf)[KC_BATCH_HEADER_SIZE:self.b.pos]

    def finish(self):
        """Fill the header (with this batch's pid/epoch/base_seq and transactional bit) and CRC; the batch as a
        memoryview of the builder's buffer (no copy)."""
        self._stamp()
        with nogil:
            self._size = kc_builder_finish(&self.b)
        self._finished = True
        return memoryview(self._buf)[:self._size]

    def finish_compressed(self, int codec, compressed):
        """Replace the records with ``compressed`` (codec 1..4), fill the header, return the batch."""
        cdef _Span s
        cdef size_t size
        if codec < KC_CODEC_GZIP or codec > KC_CODEC_ZSTD:
            raise _err(KC_ERR_ARG, f"codec {codec} is not 1..4 (gzip, snappy, lz4, zstd)")
        _span_get(compressed, &s)
        try:
            if s.len < 0 or <size_t>s.len > self.b.cap - KC_BATCH_HEADER_SIZE:
                raise _err(KC_ERR_TOO_LARGE, f"compressed records {s.len} bytes, room "
                                             f"{self.b.cap - KC_BATCH_HEADER_SIZE}")
            self._stamp()
            memcpy(self.b.buf + KC_BATCH_HEADER_SIZE, s.ptr, <size_t>s.len)
            with nogil:
                size = kc_builder_finish_compressed(&self.b, codec, <size_t>s.len)
        finally:
            _span_release(&s)
        self._size = size
        self._finished = True
        return memoryview(self._buf)[:size]

    def release(self) -> None:
        """Drop the buffer once the batch is settled (its memory goes back to buffer_memory)."""
        self.data = None

    cdef inline void _add_waiter(self, int kind, object waiter, int32_t idx, int64_t ts):
        if self.waiters is None:
            self.waiters = []
        self.waiters.append((kind, waiter, idx, ts))

    def add_waiter(self, int kind, waiter, int idx, int64_t ts) -> None:
        self._add_waiter(kind, waiter, idx, ts)

    def resolve(self, str topic, int partition, int64_t offset, int64_t log_append_time, err,
                metadata_type) -> int:
        """Settle every waiter of the batch: futures get ``metadata_type(topic, partition,
        offset, timestamp)`` or ``err``; callbacks are called as ``cb(err, metadata)``.
        A callback that raises is logged, never propagated.  Returns the number of waiters."""
        cdef list ws = self.waiters
        cdef int kind
        cdef int32_t idx
        cdef int64_t ts
        if not ws:
            return 0
        self.waiters = None
        for w in ws:
            kind, obj, idx, ts = w
            try:
                if err is not None:
                    if kind == WAIT_FUTURE:
                        if not obj.done():
                            obj.set_exception(err)
                    else:
                        obj(err, None)
                else:
                    md = metadata_type(topic, partition, offset + idx if offset >= 0 else -1,
                                       log_append_time if log_append_time >= 0 else ts)
                    if kind == WAIT_FUTURE:
                        if not obj.done():
                            obj.set_result(md)
                    else:
                        obj(None, md)
            except Exception:
                log.exception("delivery callback for %s-%d failed", topic, partition)
        return len(ws)


cdef int _append_record(Batch batch, int64_t ts, object key, object value, object headers) except -2:
    """Append to the batch's builder; returns the C status (KC_ERR_TOO_LARGE when full)."""
    cdef _Span ks, vs
    cdef kc_header_t hstack[8]
    cdef kc_header_t *hs = hstack
    cdef Py_ssize_t nh = 0, i
    cdef list keep = None
    cdef _Span hsp
    cdef int rc
    ks.has_view = False
    vs.has_view = False
    if headers:
        if not isinstance(headers, (list, tuple)):
            headers = list(headers)
        nh = len(headers)
        keep = []
        if nh > 8:
            hs = <kc_header_t *>malloc(nh * sizeof(kc_header_t))
            if hs == NULL:
                raise MemoryError()
    try:
        _span_get(key, &ks)
        _span_get(value, &vs)
        for i in range(nh):
            hk, hv = headers[i]
            if hk is None:
                raise TypeError(f"header {i}: key must be str or bytes, not None")
            hk = bytes(_as_bytes(hk))
            hv = _as_bytes(hv)
            if hv is not None and not PyBytes_CheckExact(hv):
                hv = bytes(hv)
            keep.append(hk)
            keep.append(hv)
            hs[i].key = <const uint8_t *>PyBytes_AS_STRING(hk)
            hs[i].key_len = <int32_t>PyBytes_GET_SIZE(hk)
            if hv is None:
                hs[i].value = NULL
                hs[i].value_len = -1
            else:
                hs[i].value = <const uint8_t *>PyBytes_AS_STRING(hv)
                hs[i].value_len = <int32_t>PyBytes_GET_SIZE(hv)
        rc = kc_builder_append(&batch.b, ts, ks.ptr, ks.len, vs.ptr, vs.len, hs, <size_t>nh)
    finally:
        _span_release(&ks)
        _span_release(&vs)
        if hs != hstack:
            free(hs)
    return rc


cdef int _append_grow(Batch batch, int64_t ts, object key, object value, object headers) except -2:
    """_append_record, doubling the batch's buffer (up to its capacity) while the record does not fit."""
    cdef int rc = _append_record(batch, ts, key, value, headers)
    cdef Py_ssize_t size
    while rc == KC_ERR_TOO_LARGE and <Py_ssize_t>batch.b.cap < batch.capacity:
        size = <Py_ssize_t>batch.b.cap * 2
        if size > batch.capacity:
            size = batch.capacity
        PyByteArray_Resize(batch._buf, size)   # no view is exported before finish()
        batch.b.buf = <uint8_t *>PyByteArray_AS_STRING(batch._buf)
        batch.b.cap = <size_t>size
        rc = _append_record(batch, ts, key, value, headers)
    return rc


cdef Py_ssize_t _headers_size(object headers) except -1:
    cdef Py_ssize_t n = 0
    for hk, hv in headers:
        n += 10 + len(hk) + (len(hv) if hv is not None else 0)
    return n


# ------------------------------------------------------------------ partitions and topics

cdef class PartState:
    """A partition's producer state: its open batch, closed batches waiting to be sent (``queue``,
    in sequence order), batches in flight, and idempotence sequences."""

    cdef public str topic
    cdef public int partition
    cdef public object open
    cdef public object queue
    cdef public list inflight
    cdef public int next_seq
    cdef public int last_acked

    def __init__(self, str topic, int partition):
        self.topic = topic
        self.partition = partition
        self.open = None
        self.queue = collections.deque()
        self.inflight = []
        self.next_seq = 0
        self.last_acked = -1


cdef class _Topic:
    cdef str name
    cdef int n
    cdef int *avail
    cdef int n_avail
    cdef int sticky
    cdef Py_ssize_t sticky_bytes
    cdef list parts

    def __cinit__(self):
        self.avail = NULL
        self.sticky = -1

    def __dealloc__(self):
        free(self.avail)


cdef class Accumulator:
    """Open batches of every partition, the per-record append, and the producer's lock."""

    cdef PyThread_type_lock _lk
    cdef unsigned long _owner
    cdef int _depth
    cdef dict _topics
    cdef uint64_t _rng
    cdef long long _next_id
    cdef public dict parts
    cdef public dict pending
    cdef public Py_ssize_t used
    cdef public Py_ssize_t buffer_memory
    cdef public Py_ssize_t batch_size
    cdef public Py_ssize_t max_request_size
    cdef public long long producer_id
    cdef public int producer_epoch
    cdef public bint idempotent
    cdef public bint closed
    cdef public double delivery_timeout
    cdef public object fatal
    cdef public object wake
    cdef public object slow
    cdef public object partitioner

    def __cinit__(self, *args, **kwargs):
        self._lk = PyThread_allocate_lock()
        if self._lk == NULL:
            raise MemoryError()

    def __init__(self, *, Py_ssize_t batch_size=16384, Py_ssize_t max_request_size=1048576,
                 Py_ssize_t buffer_memory=32 << 20, double delivery_timeout=120.0, bint idempotent=False,
                 wake=None, slow=None, partitioner=None, seed=None):
        self._topics = {}
        self.parts = {}
        self.pending = {}
        self.batch_size = max(1, batch_size)
        self.max_request_size = max_request_size
        self.buffer_memory = buffer_memory
        self.delivery_timeout = delivery_timeout
        self.idempotent = idempotent
        self.producer_id = -1
        self.producer_epoch = -1
        self.wake = wake
        self.slow = slow
        self.partitioner = partitioner
        if seed is None:
            self._rng = <uint64_t>(_monotonic() * 1e9) ^ <uint64_t><size_t><void *>self
        else:
            self._rng = <uint64_t>seed
        self._rng |= 1

    def __dealloc__(self):
        if self._lk != NULL:
            PyThread_free_lock(self._lk)

    # ---- the lock (reentrant; also the engine's lock) ----
    cdef inline int _acquire(self) except -1:
        cdef unsigned long me = PyThread_get_thread_ident()
        if self._depth and self._owner == me:
            self._depth += 1
            return 0
        if not PyThread_acquire_lock(self._lk, NOWAIT_LOCK):
            with nogil:
                PyThread_acquire_lock(self._lk, WAIT_LOCK)
        self._owner = me
        self._depth = 1
        return 0

    cdef inline void _release(self) noexcept:
        self._depth -= 1
        if self._depth == 0:
            self._owner = 0
            PyThread_release_lock(self._lk)

    def __enter__(self):
        self._acquire()
        return self

    def __exit__(self, *exc):
        if self._depth == 0 or self._owner != PyThread_get_thread_ident():
            raise RuntimeError("release of an accumulator lock this thread does not hold")
        self._release()
        return False

    def owned(self) -> bool:
        return self._depth > 0 and self._owner == PyThread_get_thread_ident()

    # ---- metadata ----
    def set_topic(self, str topic, int num_partitions, available=None) -> None:
        """Partition count and partitions with a leader (sticky choices come from these)."""
        cdef _Topic t
        cdef list av = sorted(set(available)) if available is not None else list(range(num_partitions))
        cdef int i
        av = [p for p in av if 0 <= p < num_partitions]
        self._acquire()
        try:
            t = self._topics.get(topic)
            if t is None:
                t = _Topic()
                t.name = topic
                t.parts = []
                self._topics[topic] = t
            free(t.avail)
            t.avail = NULL
            t.n_avail = 0
            if av:
                t.avail = <int *>malloc(len(av) * sizeof(int))
                if t.avail == NULL:
                    raise MemoryError()
                for i in range(len(av)):
                    t.avail[i] = av[i]
                t.n_avail = len(av)
            t.n = num_partitions
            while len(t.parts) < num_partitions:
                t.parts.append(None)
            if t.sticky >= num_partitions or (t.sticky >= 0 and av and t.sticky not in av):
                t.sticky = -1
        finally:
            self._release()

    def forget_topic(self, str topic) -> None:
        self._acquire()
        try:
            self._topics.pop(topic, None)
        finally:
            self._release()

    def num_partitions(self, str topic) -> int:
        t = self._topics.get(topic)
        return -1 if t is None else (<_Topic>t).n

    def sticky_partition(self, str topic) -> int:
        t = self._topics.get(topic)
        return -1 if t is None else (<_Topic>t).sticky

    cdef int _next_sticky(self, _Topic t, int prev) noexcept:
        """Pick a new sticky partition at random among those with a leader, not ``prev``."""
        cdef uint64_t x
        cdef int n = t.n_avail if t.n_avail > 0 else t.n
        cdef int i, m = n
        cdef bint has_prev = False
        if n <= 0:
            return -1
        # xorshift64*: the choice only has to spread load, not be unpredictable.
        x = self._rng
        x ^= x >> 12
        x ^= x << 25
        x ^= x >> 27
        self._rng = x
        x = x * <uint64_t>0x2545F4914F6CDD1D
        if prev >= 0 and n > 1:
            for i in range(n):
                if (t.avail[i] if t.n_avail > 0 else i) == prev:
                    has_prev = True
                    break
        if has_prev:
            m = n - 1
        else:
            prev = -1
        t.sticky = self._nth_after_skip(t, prev, <int>((x >> 33) % <uint64_t>m))
        t.sticky_bytes = 0
        return t.sticky

    cdef int _nth_after_skip(self, _Topic t, int skip, int nth) noexcept:
        cdef int i, p, seen = 0
        cdef int n = t.n_avail if t.n_avail > 0 else t.n
        for i in range(n):
            p = t.avail[i] if t.n_avail > 0 else i
            if p == skip:
                continue
            if seen == nth:
                return p
            seen += 1
        return skip

    # ---- batches ----
    cdef Batch _new_batch(self, PartState st, Py_ssize_t cap, int64_t ts, Py_ssize_t need):
        # Start small (16 KiB, or what the first record needs) and grow: see Batch.__init__.
        cdef Batch b = Batch(cap, ts, need if need > 16384 else 16384)
        cdef double now = _monotonic()
        b.part = st
        b.id = self._next_id
        self._next_id += 1
        b.created = now
        b.deadline = now + self.delivery_timeout
        b.pid = self.producer_id
        b.epoch = self.producer_epoch
        return b

    cdef inline void _close(self, PartState st):
        cdef Batch b = <Batch>st.open
        st.open = None
        if self.idempotent:
            b.pid = self.producer_id
            b.epoch = self.producer_epoch
            b.base_seq = st.next_seq
            st.next_seq = <int>((<uint32_t>st.next_seq + <uint32_t>b.b.count) & 0x7FFFFFFF)
        st.queue.append(b)

    def close_open(self, PartState st) -> None:
        """Close the partition's open batch: it gets its sequence numbers and joins the queue."""
        self._acquire()
        try:
            if st.open is not None:
                self._close(st)
        finally:
            self._release()

    cdef PartState _part(self, _Topic t, int p):
        cdef PartState st = t.parts[p]
        if st is None:
            st = self.parts.get((t.name, p))
            if st is None:
                st = PartState(t.name, p)
                self.parts[(t.name, p)] = st
            t.parts[p] = st
        return st

    cdef int _try_append(self, str topic, object value, object key, object headers, object partition,
                         object timestamp_ms, int kind, object waiter, int flags, bint *woke) except -1:
        """0 when appended, else a SLOW_* reason (nothing was changed)."""
        cdef _Topic t
        cdef int p, rc
        cdef int64_t ts
        cdef Py_ssize_t need, cap
        cdef PartState st
        cdef Batch b
        cdef _Span ks
        cdef bint sticky = False
        if self.closed or self.fatal is not None:
            return SLOW_CLOSED
        t = self._topics.get(topic)
        if t is None or t.n <= 0:
            return SLOW_TOPIC
        if not (flags & SKIP_MEMORY) and self.used >= self.buffer_memory:
            return SLOW_MEMORY
        if isinstance(key, str):
            key = (<str>key).encode("utf-8", "surrogateescape")
        if isinstance(value, str):
            value = (<str>value).encode("utf-8", "surrogateescape")
        need = _OVERHEAD
        if key is not None:
            need += len(key)
        if value is not None:
            need += len(value)
        if headers:
            if not isinstance(headers, (list, tuple)):
                headers = list(headers)
            need += _headers_size(headers)
        if need + KC_BATCH_HEADER_SIZE > self.max_request_size:
            return SLOW_TOO_LARGE
        if partition is not None:
            p = partition
            if p < 0 or p >= t.n:
                return SLOW_RANGE
        elif self.partitioner is not None:
            return SLOW_PARTITIONER
        elif key is not None:
            _span_get(key, &ks)
            p = (_murmur2(ks.ptr, ks.len) & 0x7FFFFFFF) % t.n
            _span_release(&ks)
        else:
            sticky = True
            p = -1
        ts = _now_ms() if timestamp_ms is None else <int64_t>timestamp_ms
        self._acquire()
        try:
            if sticky:
                p = t.sticky
                if p < 0 or p >= t.n:
                    p = self._next_sticky(t, -1)
                if p < 0:
                    return SLOW_NO_PARTITION
            st = self._part(t, p)
            b = <Batch>st.open
            if b is not None:
                rc = _append_grow(b, ts, key, value, headers)
                if rc != KC_OK:
                    if rc != KC_ERR_TOO_LARGE:
                        raise _err(rc, f"{topic}-{p}: bad record")
                    self._close(st)
                    woke[0] = True
                    b = None
            if b is None:
                cap = self.batch_size if self.batch_size > need + KC_BATCH_HEADER_SIZE else need + KC_BATCH_HEADER_SIZE
                b = self._new_batch(st, cap, ts, need + KC_BATCH_HEADER_SIZE)
                rc = _append_grow(b, ts, key, value, headers)
                if rc != KC_OK:
                    raise _err(rc, f"{topic}-{p}: record of {need} bytes does not fit an empty batch")
                self.used += cap
                st.open = b
                self.pending[(topic, p)] = st
                woke[0] = True
            if waiter is not None:
                b._add_waiter(kind, waiter, b.b.count - 1, ts)
            if sticky:
                t.sticky_bytes += need
                if t.sticky_bytes >= self.batch_size:
                    self._next_sticky(t, p)
        finally:
            self._release()
        return 0

    cdef inline object _produce(self, str topic, object value, object key, object headers, object partition,
                                object timestamp_ms, int kind, object waiter):
        cdef bint woke = False
        cdef int reason = self._try_append(topic, value, key, headers, partition, timestamp_ms, kind, waiter,
                                           0, &woke)
        if reason:
            self.slow(reason, topic, value, key, headers, partition, timestamp_ms, kind, waiter)
        elif woke and self.wake is not None:
            self.wake()
        return None

    def produce(self, str topic, value=None, key=None, headers=None, partition=None, timestamp_ms=None,
                on_delivery=None):
        """Append one record; ``on_delivery(err, metadata)`` is called once it is settled."""
        return self._produce(topic, value, key, headers, partition, timestamp_ms,
                             WAIT_CALLBACK, on_delivery)

    def produce_future(self, str topic, value, key, headers, partition, timestamp_ms, future):
        """Append one record; ``future`` gets its metadata or error."""
        return self._produce(topic, value, key, headers, partition, timestamp_ms, WAIT_FUTURE, future)

    def try_append(self, str topic, value, key, headers, partition, timestamp_ms, int kind, waiter,
                   int flags=0) -> int:
        """The append without hooks for the wake-up: 0 when appended, else the SLOW_* reason.
        Calls ``wake`` when a batch was opened or closed."""
        cdef bint woke = False
        cdef int reason = self._try_append(topic, value, key, headers, partition, timestamp_ms, kind,
                                           waiter, flags, &woke)
        if reason == 0 and woke and self.wake is not None:
            self.wake()
        return reason
