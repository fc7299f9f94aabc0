# cython: language_level=3
"""RecordBatch v2 (csrc/kc_batch.c) for Python: scan, validate, assign
offsets in place, decode records, build batches.

Buffers come in through the buffer protocol and are never copied; the GIL
is dropped around C calls over more than GIL_RELEASE_MIN bytes.  Every C
error becomes ``kafka_core._errors.error_for(code, text, detail)`` where the
detail says which batch (index and byte position), which field, and bytes
wanted versus remaining.
"""

from cpython.buffer cimport PyBUF_SIMPLE, PyBUF_WRITABLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytearray cimport PyByteArray_AS_STRING, PyByteArray_FromStringAndSize
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_CheckExact, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.unicode cimport PyUnicode_DecodeUTF8
from libc.stdint cimport int16_t, int32_t, int64_t, uint8_t, uint32_t
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy
from kafka_core.kc_batch cimport ssize_t

from kafka_core.kc_batch cimport *
from kafka_core.kc_common cimport *
from kafka_core.kc_crc32c cimport kc_crc32c

from kafka_core._errors import CorruptRecordError, error_for

GIL_RELEASE_MIN = 4096
cdef size_t _GIL_MIN = 4096
cdef size_t _STACK_INFOS = 8

CODEC_NONE = KC_CODEC_NONE
CODEC_GZIP = KC_CODEC_GZIP
CODEC_SNAPPY = KC_CODEC_SNAPPY
CODEC_LZ4 = KC_CODEC_LZ4
CODEC_ZSTD = KC_CODEC_ZSTD
HEADER_SIZE = KC_BATCH_HEADER_SIZE


cdef object _err(int code, str detail):
    return error_for(code, kc_strerror(code).decode(), detail)


# ---------------------------------------------------------------- BatchInfo

cdef class BatchInfo:
    """Header of one batch (fields as kc_batch_info_t) and where it sits."""

    cdef kc_batch_info_t info

    @property
    def base_offset(self): return self.info.base_offset
    @property
    def batch_length(self): return self.info.batch_length
    @property
    def partition_leader_epoch(self): return self.info.partition_leader_epoch
    @property
    def magic(self): return self.info.magic
    @property
    def crc(self): return self.info.crc
    @property
    def attributes(self): return self.info.attributes
    @property
    def last_offset_delta(self): return self.info.last_offset_delta
    @property
    def base_timestamp(self): return self.info.base_timestamp
    @property
    def max_timestamp(self): return self.info.max_timestamp
    @property
    def producer_id(self): return self.info.producer_id
    @property
    def producer_epoch(self): return self.info.producer_epoch
    @property
    def base_sequence(self): return self.info.base_sequence
    @property
    def record_count(self): return self.info.record_count
    @property
    def position(self): return self.info.position
    @property
    def size(self): return self.info.size
    @property
    def last_offset(self): return self.info.base_offset + self.info.last_offset_delta
    @property
    def codec(self): return self.info.attributes & KC_ATTR_CODEC_MASK
    @property
    def is_transactional(self): return bool(self.info.attributes & KC_ATTR_TRANSACTIONAL)
    @property
    def is_control(self): return bool(self.info.attributes & KC_ATTR_CONTROL)
    @property
    def timestamp_type(self):
        """0 = CreateTime, 1 = LogAppendTime (Kafka's TimestampType ids)."""
        return 1 if self.info.attributes & KC_ATTR_LOG_APPEND_TIME else 0

    def __repr__(self):
        i = self.info
        return (f"BatchInfo(base_offset={i.base_offset}, last_offset={self.last_offset}, "
                f"record_count={i.record_count}, codec={self.codec}, position={i.position}, "
                f"size={i.size}, max_timestamp={i.max_timestamp})")

    def __eq__(self, other):
        if not isinstance(other, BatchInfo):
            return NotImplemented
        return self._key() == (<BatchInfo>other)._key()

    def __hash__(self):
        return hash(self._key())

    cdef tuple _key(self):
        i = self.info
        return (i.base_offset, i.batch_length, i.partition_leader_epoch, i.magic, i.crc, i.attributes,
                i.last_offset_delta, i.base_timestamp, i.max_timestamp, i.producer_id, i.producer_epoch,
                i.base_sequence, i.record_count, i.position, i.size)


cdef inline BatchInfo _info(const kc_batch_info_t *src):
    cdef BatchInfo bi = BatchInfo.__new__(BatchInfo)
    bi.info = src[0]
    return bi


cdef class BatchSummary:
    """What the produce path needs from validate_batches (kc_batch_summary_t)."""

    cdef readonly Py_ssize_t batches
    cdef readonly int64_t records
    cdef readonly int64_t offsets
    cdef readonly int64_t max_timestamp
    cdef readonly int32_t offset_delta_of_max_ts
    cdef readonly int64_t first_timestamp
    cdef readonly BatchInfo first

    def __repr__(self):
        return (f"BatchSummary(batches={self.batches}, records={self.records}, offsets={self.offsets}, "
                f"max_timestamp={self.max_timestamp}, offset_delta_of_max_ts={self.offset_delta_of_max_ts}, "
                f"first_timestamp={self.first_timestamp})")


# ---------------------------------------------------------------- errors

cdef str _batch_detail(const uint8_t *buf, size_t length, size_t pos, size_t index, int code,
                       size_t max_batch_size):
    """Explain why the batch at buf[pos..) failed (error path only)."""
    cdef size_t rem = length - pos
    cdef const uint8_t *b = buf + pos
    cdef int32_t blen, count, lod
    cdef int64_t size
    cdef uint32_t stored, computed
    where = f"batch {index} at byte {pos}"
    if rem < 17:
        return f"{where}: header field magic needs 17 bytes, {rem} remain"
    blen = <int32_t>kc_be32(b + 8)
    size = <int64_t>blen + KC_BATCH_LOG_OVERHEAD
    if code == KC_ERR_TRUNCATED:
        return f"{where}: field batchLength = {blen} needs {size} bytes, {rem} remain"
    if code == KC_ERR_LEGACY_MAGIC:
        return f"{where}: field magic = {b[16]} (message format v{b[16]}), expected 2"
    if code == KC_ERR_BAD_MAGIC:
        return f"{where}: field magic = {<int>(<signed char>b[16])}, expected 2"
    if code == KC_ERR_BAD_LENGTH:
        limit = f", max_batch_size {max_batch_size}" if max_batch_size else ""
        return f"{where}: field batchLength = {blen} (minimum {KC_BATCH_MIN_LENGTH}{limit})"
    if rem < KC_BATCH_HEADER_SIZE or size > <int64_t>rem:
        return where
    count = <int32_t>kc_be32(b + 57)
    lod = <int32_t>kc_be32(b + 23)
    if code == KC_ERR_BAD_COUNT:
        if count >= 0 and <int64_t>count == <int64_t>lod + 1:
            return (f"{where}: field recordCount = {count} but at most {(size - KC_BATCH_HEADER_SIZE) // 7} "
                    f"records fit in {size} bytes")
        return f"{where}: field recordCount = {count}, lastOffsetDelta = {lod} (want count = delta + 1 >= 0)"
    if code == KC_ERR_CORRUPT_CRC:
        stored = kc_be32(b + 17)
        computed = kc_crc32c(0, b + KC_BATCH_CRC_START, <size_t>size - KC_BATCH_CRC_START)
        return f"{where}: field crc = 0x{stored:08x}, computed 0x{computed:08x} over {size - 21} bytes"
    if code == KC_ERR_CONTROL_BATCH:
        return f"{where}: field attributes = 0x{kc_be16(b + 21):04x} marks a control batch"
    return where


cdef object _scan_error(int code, const uint8_t *buf, size_t length, size_t valid, size_t n,
                        size_t max_batch_size, list batches):
    e = _err(code, _batch_detail(buf, length, valid, n, code, max_batch_size))
    e.valid_len = valid
    e.batches = batches
    e.position = valid
    return e


# ---------------------------------------------------------------- scan / validate

cdef int _scan(const uint8_t *p, size_t n, uint32_t flags, size_t maxb, kc_batch_info_t *infos,
               size_t cap, size_t *nb, size_t *valid):
    cdef int rc
    if n >= _GIL_MIN:
        with nogil:
            rc = kc_batch_scan(p, n, flags, maxb, infos, cap, nb, valid)
    else:
        rc = kc_batch_scan(p, n, flags, maxb, infos, cap, nb, valid)
    return rc


cdef kc_batch_info_t *_scan2(const uint8_t *p, size_t n, uint32_t flags, size_t maxb,
                             kc_batch_info_t *stack, int *rc, size_t *nb, size_t *valid) except NULL:
    """Scan into stack (8 entries) or, for more batches, a malloc'd array the
    caller frees when it is not stack.  A headers-only pass sizes the array
    first (cheap), so CRCs are computed once; *nb never exceeds the array."""
    cdef size_t cap = _STACK_INFOS
    cdef kc_batch_info_t *infos = stack
    _scan(p, n, flags & ~(<uint32_t>KC_SCAN_VERIFY_CRC), maxb, NULL, 0, nb, valid)
    if nb[0] > cap:
        cap = nb[0]
    if cap > _STACK_INFOS:
        infos = <kc_batch_info_t *>malloc(cap * sizeof(kc_batch_info_t))
        if infos == NULL:
            raise MemoryError()
    rc[0] = _scan(p, n, flags, maxb, infos, cap, nb, valid)
    if nb[0] > cap:
        nb[0] = cap
    return infos


cdef inline uint32_t _scan_flags(bint verify_crc, bint allow_partial, bint reject_control,
                                 bint allow_compacted):
    """The KC_SCAN_* flags for the keyword arguments of the same names."""
    return ((KC_SCAN_VERIFY_CRC if verify_crc else 0) | (KC_SCAN_ALLOW_PARTIAL if allow_partial else 0)
            | (KC_SCAN_REJECT_CONTROL if reject_control else 0)
            | (KC_SCAN_ALLOW_COMPACTED if allow_compacted else 0))


def scan_batches(buf, *, bint verify_crc=True, bint allow_partial=False, bint reject_control=False,
                 size_t max_batch_size=0, bint allow_compacted=False):
    """Scan consecutive batches; returns (list[BatchInfo], valid_len).

    Raises the first bad batch's error (with ``.valid_len``, ``.batches``
    and ``.position``) unless allow_partial covers it (a truncated tail).
    allow_compacted: accept compacted batches (recordCount <= lastOffsetDelta
    + 1), as a log or a fetch response holds them; never on the produce path.
    """
    cdef Py_buffer view
    cdef kc_batch_info_t stack[8]
    cdef kc_batch_info_t *infos = stack
    cdef size_t nb = 0, valid = 0, i
    cdef uint32_t flags = 0
    cdef int rc
    cdef const uint8_t *p
    cdef size_t n
    flags = _scan_flags(verify_crc, allow_partial, reject_control, allow_compacted)
    PyObject_GetBuffer(buf, &view, PyBUF_SIMPLE)
    try:
        p = <const uint8_t *>view.buf
        n = <size_t>view.len
        infos = _scan2(p, n, flags, max_batch_size, stack, &rc, &nb, &valid)
        out = [_info(&infos[i]) for i in range(nb)]
        if rc != KC_OK:
            raise _scan_error(rc, p, n, valid, nb, max_batch_size, out)
        return out, valid
    finally:
        if infos != stack:
            free(infos)
        PyBuffer_Release(&view)


def validate_batches(buf, *, size_t max_batch_size=0, bint reject_control=True):
    """The produce path's check: every batch whole, magic 2, CRC valid, at
    least one record, no control batch (unless allowed).  Returns BatchSummary."""
    cdef Py_buffer view
    cdef kc_batch_info_t stack[8]
    cdef kc_batch_info_t *infos = stack
    cdef kc_batch_summary_t s
    cdef size_t nb = 0, valid = 0, i
    cdef uint32_t flags = KC_SCAN_VERIFY_CRC
    cdef int rc
    cdef const uint8_t *p
    cdef size_t n
    cdef BatchSummary out
    if reject_control:
        flags |= KC_SCAN_REJECT_CONTROL
    PyObject_GetBuffer(buf, &view, PyBUF_SIMPLE)
    try:
        p = <const uint8_t *>view.buf
        n = <size_t>view.len
        infos = _scan2(p, n, flags, max_batch_size, stack, &rc, &nb, &valid)
        if rc != KC_OK:
            raise _scan_error(rc, p, n, valid, nb, max_batch_size, [_info(&infos[i]) for i in range(nb)])
        if nb == 0:
            raise _err(KC_ERR_TRUNCATED, "empty buffer: a produce request needs at least one batch")
        for i in range(nb):
            if infos[i].record_count == 0:
                e = _err(KC_ERR_BAD_COUNT,
                         f"batch {i} at byte {infos[i].position}: field recordCount = 0 (empty batch)")
                e.valid_len = infos[i].position
                e.position = infos[i].position
                e.batches = [_info(&infos[j]) for j in range(i)]
                raise e
        kc_batch_summarize(infos, nb, &s)
        out = BatchSummary.__new__(BatchSummary)
        out.batches = s.batches
        out.records = s.records
        out.offsets = s.offsets
        out.max_timestamp = s.max_timestamp
        out.offset_delta_of_max_ts = s.offset_delta_of_max_ts
        out.first_timestamp = s.first_timestamp
        out.first = _info(&infos[0])
        return out
    finally:
        if infos != stack:
            free(infos)
        PyBuffer_Release(&view)


def assign_offsets(buf, int64_t base_offset, int32_t leader_epoch=-1, int64_t log_append_time=-1):
    """Write baseOffset/partitionLeaderEpoch of every batch in place (and
    LogAppendTime when >= 0, re-computing the CRC); returns the next offset."""
    cdef Py_buffer view
    cdef int64_t next_offset = base_offset
    cdef int rc
    cdef uint8_t *p
    cdef size_t n, nb = 0, valid = 0
    PyObject_GetBuffer(buf, &view, PyBUF_WRITABLE)
    try:
        p = <uint8_t *>view.buf
        n = <size_t>view.len
        if n >= _GIL_MIN:
            with nogil:
                rc = kc_batch_assign_offsets(p, n, base_offset, leader_epoch, log_append_time, &next_offset)
        else:
            rc = kc_batch_assign_offsets(p, n, base_offset, leader_epoch, log_append_time, &next_offset)
        if rc != KC_OK:
            kc_batch_scan(p, n, 0, 0, NULL, 0, &nb, &valid)
            raise _scan_error(rc, p, n, valid, nb, 0, [])
        return next_offset
    finally:
        PyBuffer_Release(&view)


# ---------------------------------------------------------------- records

cdef class Record:
    """One decoded record: offset, timestamp, key, value, headers, and the topic and partition it
    was fetched from (None and -1 when decoded from bytes alone)."""

    cdef readonly int64_t offset
    cdef readonly int64_t timestamp
    cdef readonly object key
    cdef readonly object value
    cdef readonly list headers
    cdef readonly object topic
    cdef readonly int32_t partition

    def __init__(self, int64_t offset, int64_t timestamp, key, value, headers=(), topic=None,
                 int32_t partition=-1):
        self.offset = offset
        self.timestamp = timestamp
        self.key = key
        self.value = value
        self.headers = list(headers)
        self.topic = topic
        self.partition = partition

    def __repr__(self):
        where = f"topic={self.topic!r}, partition={self.partition}, " if self.topic is not None else ""
        return (f"Record({where}offset={self.offset}, timestamp={self.timestamp}, key={self.key!r}, "
                f"value={self.value!r}, headers={self.headers!r})")

    def __eq__(self, other):
        if not isinstance(other, Record):
            return NotImplemented
        o = <Record>other
        return (self.offset == o.offset and self.timestamp == o.timestamp and self.key == o.key
                and self.value == o.value and self.headers == o.headers and self.topic == o.topic
                and self.partition == o.partition)

    __hash__ = None

    def __reduce__(self):
        return (Record, (self.offset, self.timestamp, self.key, self.value, self.headers, self.topic,
                         self.partition))


cdef str _record_detail(const uint8_t *buf, size_t length, size_t pos, Py_ssize_t index, size_t base):
    cdef int32_t rlen = 0
    cdef int nv = kc_varint_get_i32(buf + pos, length - pos, &rlen)
    where = f"record {index} at byte {base + pos}"
    if nv <= 0:
        return f"{where}: field length: varint needs more than the {length - pos} bytes remaining"
    return f"{where}: field length = {rlen}, {length - pos - <size_t>nv} bytes remain after it"


cdef list _decode_records(const uint8_t *buf, size_t length, int64_t base_offset, int64_t base_timestamp,
                          int64_t log_append_time, size_t base, object topic=None, int32_t partition=-1):
    """Records of buf[0..length): base is the section's byte position, for messages."""
    cdef size_t pos = 0, hpos, start
    cdef kc_record_t r
    cdef kc_header_t h
    cdef int rc
    cdef int32_t j
    cdef Record rec
    cdef list out = []
    cdef list hdrs
    cdef Py_ssize_t i = 0
    while pos < length:
        start = pos
        rc = kc_record_next(buf, length, &pos, &r)
        if rc != KC_OK:
            raise _err(rc, _record_detail(buf, length, start, i, base))
        rec = Record.__new__(Record)
        rec.offset = base_offset + r.offset_delta
        rec.timestamp = log_append_time if log_append_time >= 0 else base_timestamp + r.timestamp_delta
        rec.key = None if r.key == NULL else PyBytes_FromStringAndSize(<const char *>r.key, r.key_len)
        rec.value = None if r.value == NULL else PyBytes_FromStringAndSize(<const char *>r.value, r.value_len)
        hdrs = []
        if r.header_count:
            hpos = 0
            for j in range(r.header_count):
                rc = kc_header_next(r.headers, r.headers_len, &hpos, &h)
                if rc != KC_OK:  # already checked by kc_record_next; kept for safety
                    raise _err(rc, f"record {i} header {j}")
                hdrs.append((
                    PyUnicode_DecodeUTF8(<const char *>h.key, h.key_len, "surrogateescape"),
                    None if h.value == NULL else PyBytes_FromStringAndSize(<const char *>h.value, h.value_len),
                ))
        rec.headers = hdrs
        rec.topic = topic
        rec.partition = partition
        out.append(rec)
        i += 1
    return out


def iter_records(batch, base_offset=None, base_timestamp=None, *, int64_t log_append_time=-1,
                 bint verify_crc=False, topic=None, int32_t partition=-1):
    """Decode the records of ONE uncompressed batch (offsets and timestamps
    from its header), or of a decompressed records section when base_offset
    and base_timestamp are given.  Returns list[Record], each labelled with
    topic and partition."""
    cdef Py_buffer view
    cdef kc_batch_info_t bi
    cdef int rc
    cdef const uint8_t *p
    cdef size_t n
    cdef list out
    PyObject_GetBuffer(batch, &view, PyBUF_SIMPLE)
    try:
        p = <const uint8_t *>view.buf
        n = <size_t>view.len
        if base_offset is not None or base_timestamp is not None:
            if base_offset is None or base_timestamp is None:
                raise TypeError("iter_records: a records section needs both base_offset and base_timestamp")
            return _decode_records(p, n, base_offset, base_timestamp, log_append_time, 0, topic, partition)
        # a batch read from a log may be compacted (fewer records than offsets)
        _one_batch(p, n, _scan_flags(verify_crc, False, False, True), &bi)
        if bi.attributes & KC_ATTR_CODEC_MASK:
            raise _err(KC_ERR_UNSUPPORTED,
                       f"batch is compressed (codec {bi.attributes & KC_ATTR_CODEC_MASK}): decompress bytes "
                       f"[61:{bi.size}) and pass them with base_offset= and base_timestamp=")
        if bi.attributes & KC_ATTR_LOG_APPEND_TIME and log_append_time < 0:
            log_append_time = bi.max_timestamp
        out = _decode_records(p + KC_BATCH_HEADER_SIZE, n - KC_BATCH_HEADER_SIZE, bi.base_offset,
                              bi.base_timestamp, log_append_time, KC_BATCH_HEADER_SIZE, topic, partition)
        if len(out) != bi.record_count:
            raise _err(KC_ERR_BAD_COUNT,
                       f"batch at byte 0: field recordCount = {bi.record_count}, {len(out)} records decoded")
        return out
    finally:
        PyBuffer_Release(&view)


# ---------------------------------------------------------------- record checks / recompression

cdef str _check_detail(int code, const kc_records_check_t *st, int32_t count, int32_t lod, size_t n,
                       size_t base):
    """Explain a kc_records_check failure (error path only); base: byte position of the section."""
    where = f"record {st.records} at byte {base + st.position}"
    if code == KC_ERR_MISSING_KEY:
        return f"{where}: key is null (a compacted topic needs a key on every record)"
    if code == KC_ERR_BAD_COUNT:
        if st.records < count:
            return f"field recordCount = {count}, the {n}-byte records section ends after {st.records} records"
        return f"field recordCount = {count}, {n - st.position} bytes remain after record {count - 1}"
    if code == KC_ERR_BAD_RECORD:
        return (f"{where}: does not decode, or its offset delta is not above the previous one "
                f"({st.offset_delta}) and within lastOffsetDelta {lod}")
    return f"{where}: {n - st.position} bytes remain in the records section"


cdef int _check_section(const uint8_t *sec, size_t n, int32_t count, int32_t lod, uint32_t flags,
                        size_t base) except -1:
    cdef kc_records_check_t st
    cdef int rc
    if n >= _GIL_MIN:
        with nogil:
            rc = kc_records_check(sec, n, count, lod, flags, &st)
    else:
        rc = kc_records_check(sec, n, count, lod, flags, &st)
    if rc != KC_OK:
        e = _err(rc, _check_detail(rc, &st, count, lod, n, base))
        e.position = base + st.position
        e.record_index = st.records
        raise e
    return 0


cdef int _one_batch(const uint8_t *p, size_t n, uint32_t scan_flags, kc_batch_info_t *bi) except -1:
    cdef int rc = kc_batch_check(p, n, 0, scan_flags, bi)
    if rc != KC_OK:
        e = _err(rc, _batch_detail(p, n, 0, 0, rc, 0))
        e.valid_len = 0
        e.position = 0
        e.batches = []
        raise e
    if bi.size != n:
        raise _err(KC_ERR_ARG, f"one batch expected (iter_records, check_records): it is {bi.size} bytes, "
                               f"the buffer {n}")
    return 0


def check_records(batch, records=None, *, bint require_keys=False, bint verify_crc=False,
                  bint allow_compacted=False):
    """Check the records of ONE batch in one C pass (Kafka's LogValidator
    record checks): exactly recordCount records using exactly the section's
    bytes, offset deltas strictly increasing within lastOffsetDelta and,
    with require_keys (compacted topics), no null key.

    A compressed batch needs its decompressed records section as
    ``records``; it is checked against the batch header's counts (``records``
    may also be given for an uncompressed batch).  Returns the record count.
    Errors: MissingKeyError, InvalidRecordError (and its varint
    subclasses), InvalidRecordCountError, TruncatedBatchError, the header's
    errors, UnsupportedError (compressed without ``records``)."""
    cdef Py_buffer view, rview
    cdef bint has_rview = False
    cdef kc_batch_info_t bi
    cdef uint32_t scan_flags = 0
    cdef uint32_t flags = KC_RECORDS_REQUIRE_KEYS if require_keys else 0
    cdef const uint8_t *p
    cdef size_t n
    scan_flags = _scan_flags(verify_crc, False, False, allow_compacted)
    PyObject_GetBuffer(batch, &view, PyBUF_SIMPLE)
    try:
        p = <const uint8_t *>view.buf
        n = <size_t>view.len
        if n >= _GIL_MIN and verify_crc:
            _one_batch_nogil(p, n, scan_flags, &bi)   # the CRC pass: without the GIL
        else:
            _one_batch(p, n, scan_flags, &bi)
        if records is None:
            if bi.attributes & KC_ATTR_CODEC_MASK:
                raise _err(KC_ERR_UNSUPPORTED,
                           f"batch is compressed (codec {bi.attributes & KC_ATTR_CODEC_MASK}): pass its "
                           "decompressed records section as records=")
            _check_section(p + KC_BATCH_HEADER_SIZE, n - KC_BATCH_HEADER_SIZE, bi.record_count,
                           bi.last_offset_delta, flags, KC_BATCH_HEADER_SIZE)
        else:
            PyObject_GetBuffer(records, &rview, PyBUF_SIMPLE)
            has_rview = True
            _check_section(<const uint8_t *>rview.buf, <size_t>rview.len, bi.record_count,
                           bi.last_offset_delta, flags, 0)
        return bi.record_count
    finally:
        if has_rview:
            PyBuffer_Release(&rview)
        PyBuffer_Release(&view)


cdef int _one_batch_nogil(const uint8_t *p, size_t n, uint32_t scan_flags, kc_batch_info_t *bi) except -1:
    cdef int rc
    with nogil:
        rc = kc_batch_check(p, n, 0, scan_flags, bi)
    if rc != KC_OK:
        return _one_batch(p, n, scan_flags, bi)   # re-run with the GIL to raise the detailed error
    if bi.size != n:
        raise _err(KC_ERR_ARG, f"one batch expected: it is {bi.size} bytes, the buffer {n}")
    return 0


def recompress_batch(batch, int target_codec, level=None, *, compress=None, records=None,
                     bint require_keys=False, bint verify_crc=True):
    """ONE whole batch (any codec) rewritten with codec ``target_codec`` (0..4).

    Per batch, never per record: the records section is decompressed once
    (``kafka_core.compression.decompress`` on a memoryview slice; skipped
    when ``records`` already holds it), checked in C (``check_records``:
    count, offset deltas, keys with require_keys), compressed once
    (``compress(section)`` when given, else ``compression.compress(target,
    section[, level=level])``), and written with the copied header into one
    preallocated bytearray: codec bits, batchLength and CRC set in C.
    verify_crc: check the input batch's CRC first (never re-sign a corrupt
    batch).  A codec failure is CorruptRecordError (CORRUPT_MESSAGE)."""
    cdef Py_buffer view, bview
    cdef bint has_bview = False
    cdef kc_batch_info_t bi
    cdef uint32_t scan_flags = KC_SCAN_VERIFY_CRC if verify_crc else 0
    cdef uint32_t flags = KC_RECORDS_REQUIRE_KEYS if require_keys else 0
    cdef const uint8_t *p
    cdef const uint8_t *sp
    cdef size_t n, sn, size = 0, cap
    cdef int codec
    cdef bytearray out
    cdef uint8_t *op
    if target_codec < KC_CODEC_NONE or target_codec > KC_CODEC_ZSTD:
        raise _err(KC_ERR_ARG, f"target codec {target_codec} is not 0..4")
    PyObject_GetBuffer(batch, &view, PyBUF_SIMPLE)
    try:
        p = <const uint8_t *>view.buf
        n = <size_t>view.len
        if n >= _GIL_MIN and verify_crc:
            _one_batch_nogil(p, n, scan_flags, &bi)
        else:
            _one_batch(p, n, scan_flags, &bi)
        codec = bi.attributes & KC_ATTR_CODEC_MASK
        if records is not None:
            section = records
        elif codec:
            from kafka_core.compression import decompress
            try:
                section = decompress(codec, memoryview(batch).cast("B")[KC_BATCH_HEADER_SIZE:n])
            except Exception as e:  # any codec failure: the batch is corrupt
                raise CorruptRecordError(f"cannot decompress the records of a codec {codec} batch: {e}") from e
        else:
            section = memoryview(batch).cast("B")[KC_BATCH_HEADER_SIZE:n]
        PyObject_GetBuffer(section, &bview, PyBUF_SIMPLE)
        has_bview = True
        _check_section(<const uint8_t *>bview.buf, <size_t>bview.len, bi.record_count, bi.last_offset_delta,
                       flags, 0 if (records is not None or codec) else KC_BATCH_HEADER_SIZE)
        if target_codec != KC_CODEC_NONE:
            if compress is not None:
                body = compress(section)
            else:
                from kafka_core import compression
                body = (compression.compress(target_codec, section) if level is None
                        else compression.compress(target_codec, section, level=level))
            PyBuffer_Release(&bview)
            has_bview = False
            PyObject_GetBuffer(body, &bview, PyBUF_SIMPLE)
            has_bview = True
        sp = <const uint8_t *>bview.buf
        sn = <size_t>bview.len
        if sn > <size_t>0x7fffffff - KC_BATCH_MIN_LENGTH:
            raise _err(KC_ERR_TOO_LARGE, f"records section of {sn} bytes does not fit a batch")
        cap = KC_BATCH_HEADER_SIZE + sn
        # uninitialised: kc_batch_rewrite writes every byte
        out = PyByteArray_FromStringAndSize(NULL, <Py_ssize_t>cap)
        op = <uint8_t *>PyByteArray_AS_STRING(out)
        if cap >= _GIL_MIN:
            with nogil:
                size = kc_batch_rewrite(op, cap, p, target_codec, sp, sn)
        else:
            size = kc_batch_rewrite(op, cap, p, target_codec, sp, sn)
        if size != cap:
            raise _err(KC_ERR_TOO_LARGE, f"rewritten batch of {cap} bytes")
        return out
    finally:
        if has_bview:
            PyBuffer_Release(&bview)
        PyBuffer_Release(&view)


# ---------------------------------------------------------------- builder

cdef class _Blob:
    """A key/value/header operand: pointer + length, holding what owns them."""
    cdef const uint8_t *ptr
    cdef ssize_t length
    cdef object owner
    cdef Py_buffer view
    cdef bint has_view

    def __dealloc__(self):
        if self.has_view:
            PyBuffer_Release(&self.view)


cdef inline int _blob(object obj, const uint8_t **ptr, ssize_t *length, list keep) except -1:
    """bytes fast path; None = null; str = UTF-8; anything else via the buffer protocol."""
    cdef _Blob b
    if obj is None:
        ptr[0] = NULL
        length[0] = -1
        return 0
    if isinstance(obj, str):
        obj = (<str>obj).encode("utf-8", "surrogateescape")
        keep.append(obj)
    if PyBytes_CheckExact(obj):
        ptr[0] = <const uint8_t *>PyBytes_AS_STRING(obj)
        length[0] = PyBytes_GET_SIZE(obj)
        return 0
    b = _Blob.__new__(_Blob)
    PyObject_GetBuffer(obj, &b.view, PyBUF_SIMPLE)
    b.has_view = True
    keep.append(b)
    ptr[0] = <const uint8_t *>b.view.buf
    length[0] = b.view.len
    return 0


cdef int _header(object hk, object hv, kc_header_t *h, list keep) except -1:
    cdef const uint8_t *p
    cdef ssize_t n
    _blob(hk, &p, &n, keep)
    if n > 0x7fffffff:
        raise _err(KC_ERR_TOO_LARGE, "header key over 2 GiB")
    h.key = p
    h.key_len = <int32_t>n
    _blob(hv, &p, &n, keep)
    if n > 0x7fffffff:
        raise _err(KC_ERR_TOO_LARGE, "header value over 2 GiB")
    h.value = p
    h.value_len = <int32_t>n
    return 0


cdef class BatchBuilder:
    """Append records into a buffer of fixed capacity; finish() fills the
    61-byte header (lengths, counts, timestamps, CRC) and returns the batch
    as a memoryview of the builder's own buffer (no copy)."""

    cdef kc_builder_t b
    cdef bytearray _buf
    cdef bint _finished
    cdef size_t _size

    def __cinit__(self, Py_ssize_t capacity, *, int64_t base_timestamp, int64_t producer_id=-1,
                  int16_t producer_epoch=-1, int32_t base_sequence=-1, int16_t attributes=0):
        cdef int rc
        if capacity < KC_BATCH_HEADER_SIZE:
            raise _err(KC_ERR_TOO_LARGE, f"capacity {capacity} is below the {KC_BATCH_HEADER_SIZE}-byte header")
        self._buf = bytearray(capacity)
        rc = kc_builder_init(&self.b, <uint8_t *>PyByteArray_AS_STRING(self._buf), <size_t>capacity,
                             base_timestamp, attributes, producer_id, producer_epoch, base_sequence)
        if rc != KC_OK:
            raise _err(rc, f"BatchBuilder(capacity={capacity}, attributes=0x{attributes & 0xffff:x}): "
                           "codec bits must be 0 (compress with finish_compressed)")
        self._size = 0

    def append(self, int64_t timestamp, key, value, headers=()):
        """Add one record; False when it does not fit (the builder is unchanged).
        Raises TooLargeError when it cannot fit even in this empty builder."""
        cdef const uint8_t *kp
        cdef const uint8_t *vp
        cdef ssize_t kl, vl
        cdef kc_header_t hstack[8]
        cdef kc_header_t *hs = hstack
        cdef Py_ssize_t nh = 0, i
        cdef list keep = []
        cdef int rc
        if self._finished:
            raise _err(KC_ERR_ARG, "BatchBuilder.append after finish()")
        _blob(key, &kp, &kl, keep)
        _blob(value, &vp, &vl, keep)
        if headers:
            headers = headers if isinstance(headers, (list, tuple)) else list(headers)
            nh = len(headers)
            if nh > 8:
                hs = <kc_header_t *>malloc(nh * sizeof(kc_header_t))
                if hs == NULL:
                    raise MemoryError()
        try:
            for i in range(nh):
                hk, hv = headers[i]
                if hk is None:
                    raise TypeError(f"header {i}: key must be str or bytes, not None")
                _header(hk, hv, &hs[i], keep)
            rc = kc_builder_append(&self.b, timestamp, kp, kl, vp, vl, hs, <size_t>nh)
        finally:
            if hs != hstack:
                free(hs)
        if rc == KC_OK:
            return True
        if rc == KC_ERR_TOO_LARGE and self.b.count > 0:
            return False
        raise _err(rc, f"record {self.b.count}: key {kl} bytes, value {vl} bytes, {nh} headers; "
                       f"{self.b.cap - self.b.pos} of {self.b.cap} bytes free")

    def finish(self):
        """Fill the header and return the batch (memoryview of the builder's buffer)."""
        self._size = kc_builder_finish(&self.b)
        self._finished = True
        return memoryview(self._buf)[:self._size]

    def finish_compressed(self, int codec, compressed):
        """Replace the records with ``compressed`` (codec 1..4), fill the header, return the batch."""
        cdef const uint8_t *cp
        cdef ssize_t cl
        cdef list keep = []
        cdef size_t size
        _blob(compressed, &cp, &cl, keep)
        if cl < 0:
            raise TypeError("compressed must be a bytes-like object")
        if codec < KC_CODEC_GZIP or codec > KC_CODEC_ZSTD:
            raise _err(KC_ERR_ARG, f"codec {codec} is not 1..4 (gzip, snappy, lz4, zstd)")
        if <size_t>cl > self.b.cap - KC_BATCH_HEADER_SIZE:
            raise _err(KC_ERR_TOO_LARGE, f"compressed records {cl} bytes, room {self.b.cap - KC_BATCH_HEADER_SIZE}")
        memcpy(self.b.buf + KC_BATCH_HEADER_SIZE, cp, <size_t>cl)
        size = kc_builder_finish_compressed(&self.b, codec, <size_t>cl)
        self._size = size
        self._finished = True
        return memoryview(self._buf)[:size]

    def records_view(self):
        """The uncompressed records section (to compress); valid until finish_compressed."""
        return memoryview(self._buf)[KC_BATCH_HEADER_SIZE:self.b.pos]

    def __len__(self):
        return self._size if self._finished else self.b.pos

    @property
    def count(self):
        return self.b.count

    @property
    def capacity(self):
        return self.b.cap

    @property
    def max_timestamp(self):
        return self.b.max_timestamp
