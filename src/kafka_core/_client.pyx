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
"""

from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from libc.stdint cimport int32_t, int64_t, uint8_t

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
