# cython: language_level=3
"""The client's compiled fast path for one awaited produce (csrc/kc_client.c).

``produce_frame`` encodes a whole one-topic/one-partition ProduceRequest frame
(size prefix, header, body) into one bytes object: one allocation, one
``transport.write``.  ``parse_produce_response`` reads the matching
ProduceResponse frame into a ``ProducePartitionResult`` (the fields of the
generated ``PartitionProduceResponse`` the producer reads), or returns None
for anything but that common shape -- the caller then uses the generated
codec, so a malformed frame raises exactly what it raised before.

Both take pre-encoded (UTF-8) names; the caller caches them.  The generated
codecs in kafka_protocol stay the one definition of the layouts
(tests/unit/test_client_fastpath.py compares both, every version).

``FrameSplitter`` is kafka_protocol.FrameReader's receive side compiled, for a
client connection's ``BufferedProtocol``: the socket reads into its chunk, and
one ``buffer_updated`` call per read splits every whole frame and hands each
to ``on_frame`` (a memoryview of the chunk, size prefix removed) -- no list of
frames, no Python frame per boundary.  The buffering rules are FrameReader's
(see its module docstring): frames handed out are never overwritten, a frame
that does not fit moves to a chunk that holds it, a size prefix above
``max_frame_size`` or negative is refused before anything is allocated for it.
"""

from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytearray cimport PyByteArray_AS_STRING, PyByteArray_GET_SIZE
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from libc.stdint cimport int32_t, int64_t, uint8_t, uint32_t

from kafka_core.kc_client cimport (
    KC_CLIENT_PRODUCE_FLEX_MIN,
    KC_CLIENT_PRODUCE_MAX_VERSION,
    KC_CLIENT_PRODUCE_MIN_VERSION,
    kc_client_produce_frame_size,
    kc_client_produce_frame_write,
    kc_client_produce_req,
    kc_client_produce_resp,
    kc_client_produce_resp_parse,
)
from kafka_core.kc_common cimport KC_OK

PRODUCE_MIN_VERSION = KC_CLIENT_PRODUCE_MIN_VERSION
PRODUCE_MAX_VERSION = KC_CLIENT_PRODUCE_MAX_VERSION
PRODUCE_FLEX_MIN = KC_CLIENT_PRODUCE_FLEX_MIN


cdef class ProducePartitionResult:
    """One partition's answer: the attributes of PartitionProduceResponse the producer reads
    (``record_errors`` is always empty here: a response with record errors takes the slow path)."""

    cdef kc_client_produce_resp r
    cdef readonly object error_message

    # The C struct as parsed; the attributes are the generated PartitionProduceResponse's names.
    correlation_id = property(lambda self: (<ProducePartitionResult>self).r.kcps_CorrelationId)
    error_code = property(lambda self: (<ProducePartitionResult>self).r.kcps_ErrorCode)
    base_offset = property(lambda self: (<ProducePartitionResult>self).r.kcps_BaseOffset)
    log_append_time_ms = property(lambda self: (<ProducePartitionResult>self).r.kcps_LogAppendTimeMs)
    log_start_offset = property(lambda self: (<ProducePartitionResult>self).r.kcps_LogStartOffset)
    throttle_time_ms = property(lambda self: (<ProducePartitionResult>self).r.kcps_ThrottleTimeMs)

    @property
    def record_errors(self):
        return []

    def __repr__(self):
        return (f"ProducePartitionResult(correlation_id={self.correlation_id}, error_code={self.error_code}, "
                f"base_offset={self.base_offset}, log_append_time_ms={self.log_append_time_ms}, "
                f"log_start_offset={self.log_start_offset}, throttle_time_ms={self.throttle_time_ms}, "
                f"error_message={self.error_message!r})")


def produce_frame(int version, int correlation_id, bytes client_id, bytes transactional_id, int acks,
                  int timeout_ms, bytes topic, int partition, records):
    """The whole request frame, or None when a field does not fit the fast path (the caller
    takes the generated codec, which reports it)."""
    cdef kc_client_produce_req r
    cdef Py_buffer view
    cdef size_t n
    cdef bytes out
    r.kcpr_ApiVersion = <short>version if KC_CLIENT_PRODUCE_MIN_VERSION <= version <= KC_CLIENT_PRODUCE_MAX_VERSION else 0
    r.kcpr_CorrelationId = correlation_id
    if client_id is None:
        r.kcpr_ClientId, r.kcpr_ClientId_len = NULL, -1
    else:
        r.kcpr_ClientId = <const uint8_t *>PyBytes_AS_STRING(client_id)
        r.kcpr_ClientId_len = <int32_t>min(PyBytes_GET_SIZE(client_id), 0x7FFFFFFF)
    if transactional_id is None:
        r.kcpr_TransactionalId, r.kcpr_TransactionalId_len = NULL, -1
    else:
        r.kcpr_TransactionalId = <const uint8_t *>PyBytes_AS_STRING(transactional_id)
        r.kcpr_TransactionalId_len = <int32_t>min(PyBytes_GET_SIZE(transactional_id), 0x7FFFFFFF)
    if not (-32768 <= acks <= 32767):
        return None
    r.kcpr_Acks = <short>acks
    r.kcpr_TimeoutMs = timeout_ms
    r.kcpr_Name = <const uint8_t *>PyBytes_AS_STRING(topic)
    r.kcpr_Name_len = <int32_t>min(PyBytes_GET_SIZE(topic), 0x7FFFFFFF)
    r.kcpr_Index = partition
    if records is None:
        r.kcpr_Records, r.kcpr_Records_len = NULL, -1
        n = kc_client_produce_frame_size(&r)
        if n == 0:
            return None
        out = PyBytes_FromStringAndSize(NULL, <Py_ssize_t>n)
        kc_client_produce_frame_write(&r, <uint8_t *>PyBytes_AS_STRING(out))
        return out
    PyObject_GetBuffer(records, &view, PyBUF_SIMPLE)
    try:
        r.kcpr_Records = <const uint8_t *>view.buf
        r.kcpr_Records_len = <int64_t>view.len
        n = kc_client_produce_frame_size(&r)
        if n == 0:
            return None
        out = PyBytes_FromStringAndSize(NULL, <Py_ssize_t>n)
        kc_client_produce_frame_write(&r, <uint8_t *>PyBytes_AS_STRING(out))
    finally:
        PyBuffer_Release(&view)
    return out


def parse_produce_response(frame, int version, bytes topic, int partition):
    """A ProducePartitionResult for a response frame (size prefix removed) of ``version`` that
    answers exactly (topic, partition) with no record errors and no tagged fields; else None."""
    cdef Py_buffer view
    cdef kc_client_produce_resp o
    cdef int rc
    cdef ProducePartitionResult res
    PyObject_GetBuffer(frame, &view, PyBUF_SIMPLE)
    try:
        rc = kc_client_produce_resp_parse(<const uint8_t *>view.buf, <size_t>view.len, version,
                                          <const uint8_t *>PyBytes_AS_STRING(topic),
                                          <size_t>PyBytes_GET_SIZE(topic), partition, &o)
        if rc != KC_OK:
            return None
        res = ProducePartitionResult.__new__(ProducePartitionResult)
        if o.kcps_ErrorMessage_len >= 0:
            try:
                res.error_message = (<const char *>view.buf)[o.kcps_ErrorMessage_off:
                                                             o.kcps_ErrorMessage_off + o.kcps_ErrorMessage_len
                                                             ].decode("utf-8")
            except UnicodeDecodeError:
                return None  # the generated codec reports it
    finally:
        PyBuffer_Release(&view)
    res.r = o
    return res


cdef class FrameSplitter:
    """Size-prefixed frames out of a byte stream, for ``BufferedProtocol.get_buffer`` /
    ``buffer_updated``: each whole frame goes to ``on_frame(memoryview)`` in the
    ``buffer_updated`` call that completes it; a bad size prefix goes to ``on_error(message)``
    once, and nothing more is read (``stopped``).  Set ``stopped`` to drop what comes after
    (the connection failed)."""

    cdef bytearray _buf
    cdef object _view
    cdef Py_ssize_t _start, _end
    cdef readonly Py_ssize_t max_frame_size
    cdef readonly Py_ssize_t chunk_size
    cdef object _on_frame, _on_error
    cdef public bint stopped

    def __init__(self, on_frame, on_error, Py_ssize_t max_frame_size=104857600, Py_ssize_t chunk_size=65536):
        if max_frame_size < 0 or chunk_size < 16:
            raise ValueError("max_frame_size must be >= 0 and chunk_size >= 16")
        self._on_frame = on_frame
        self._on_error = on_error
        self.max_frame_size = max_frame_size
        self.chunk_size = chunk_size
        self._buf = bytearray(min(chunk_size, 512))
        self._view = memoryview(self._buf)
        self._start = self._end = 0
        self.stopped = False

    @property
    def pending(self):
        """Bytes received that do not yet form a whole frame."""
        return self._end - self._start

    cdef inline Py_ssize_t _size_at(self, Py_ssize_t pos):
        cdef const uint8_t *p = <const uint8_t *>PyByteArray_AS_STRING(self._buf) + pos
        return <int32_t>((<uint32_t>p[0] << 24) | (<uint32_t>p[1] << 16) | (<uint32_t>p[2] << 8) | p[3])

    cdef int _refuse(self, Py_ssize_t size) except -1:
        self.stopped = True
        if size < 0:
            self._on_error(f"negative frame size {size}")
        else:
            self._on_error(f"frame of {size} bytes exceeds the limit of {self.max_frame_size} bytes")
        return 0

    def get_buffer(self, Py_ssize_t sizehint=-1):
        """A writable view to receive into."""
        cdef Py_ssize_t have = self._end - self._start
        cdef Py_ssize_t cap = PyByteArray_GET_SIZE(self._buf)
        cdef Py_ssize_t need = 4, size, target
        cdef bytearray new
        if self.stopped:
            return memoryview(bytearray(65536))   # read and dropped: the connection is closing
        if have >= 4:
            size = self._size_at(self._start)
            if size < 0 or size > self.max_frame_size:
                self._refuse(size)
                return memoryview(bytearray(65536))
            need = 4 + size
        # As FrameReader: a frame larger than a chunk gets room for twice what has arrived, up
        # to its size (a bare size prefix costs a chunk, a real large frame O(log size) copies).
        target = need if need <= self.chunk_size else min(need, max(self.chunk_size, 2 * have))
        if cap == self._end or self._start + target > cap:
            size = max(self.chunk_size, target, sizehint if sizehint > 0 else 0)
            if need > self.chunk_size:
                size = target
            new = bytearray(size)
            if have:
                new[:have] = self._view[self._start:self._end]
            self._buf = new
            self._view = memoryview(new)
            self._start = 0
            self._end = have
        return self._view[self._end:]

    def buffer_updated(self, Py_ssize_t nbytes):
        """``nbytes`` were written into the last ``get_buffer`` view: hand out the whole frames."""
        cdef Py_ssize_t start, stop, size, end
        cdef bint handed = False
        if self.stopped:
            return
        if nbytes < 0 or self._end + nbytes > PyByteArray_GET_SIZE(self._buf):
            raise ValueError("nbytes outside the buffer handed out")
        self._end += nbytes
        end = self._end
        view = self._view
        while end - self._start >= 4:
            start = self._start
            size = self._size_at(start)
            if size < 0 or size > self.max_frame_size:
                self._refuse(size)
                return
            stop = start + 4 + size
            if stop > end:
                break
            self._start = stop        # before the call: on_frame may read or stop us
            handed = True
            self._on_frame(view[start + 4:stop])
            if self.stopped:
                return
        if handed and self._start == self._end and PyByteArray_GET_SIZE(self._buf) - self._end < 4096:
            # Everything handed out and little room left: a fresh chunk next time (frames handed
            # out keep the old one alive, so its tail cannot be reused).
            self._buf = bytearray(self.chunk_size)
            self._view = memoryview(self._buf)
            self._start = self._end = 0
