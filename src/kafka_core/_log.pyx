# cython: language_level=3
"""The partition log (csrc/kc_log.c) for Python.

A ``Log`` is one partition directory in Kafka's on-disk layout.  Every
call that may touch the disk (append, read, lookup, flush, retention,
truncation, open/recovery, close) drops the GIL; record bytes never pass
through Python: ``append`` takes the caller's buffer through the buffer
protocol and ``read`` returns a ``FileSlice`` (fd, position, length) for
sendfile.  A FileSlice keeps its segment file readable (even if retention
deletes it) until it is released or garbage collected; its fd is open only
while pinned, under the process-wide cap of fd_cap() (kc_segment.h).
"""

import os
import time

from cpython.buffer cimport PyBUF_SIMPLE, PyBUF_WRITABLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.memoryview cimport PyMemoryView_FromMemory
from libc.string cimport memcpy
from libc.errno cimport errno
from libc.stdint cimport int32_t, int64_t, uint8_t, uint32_t
from libc.stdlib cimport free, malloc

from kafka_core.kc_common cimport (KC_ERR_ARG, KC_ERR_CLOSED, KC_ERR_IO, KC_ERR_NOMEM, KC_ERR_NOT_FOUND,
                                   KC_ERR_UNSUPPORTED,
                                   kc_strerror)
from kafka_core.kc_log cimport *

from kafka_core._errors import error_for

cdef int64_t _INT64_MAX = 0x7FFFFFFFFFFFFFFF
cdef int _PyBUF_READ = 0x100


cdef int _codec_call(void *ctx, int codec, const uint8_t *inp, size_t in_len, uint8_t **out,
                     size_t *out_len, bint decompress) noexcept nogil:
    """Run the Python codec hook on one compressed batch (GIL taken only here).
    The input is lent as a memoryview over the cleaner's mapping and released
    before returning; the result is copied into malloc'd memory the C cleaner frees."""
    cdef Py_buffer view
    cdef int rc = KC_ERR_UNSUPPORTED
    with gil:
        hooks = <object>ctx
        mv = PyMemoryView_FromMemory(<char *>inp, <Py_ssize_t>in_len, _PyBUF_READ)
        try:
            res = (hooks.decompress if decompress else hooks.compress)(codec, mv)
            PyObject_GetBuffer(res, &view, PyBUF_SIMPLE)
            try:
                out[0] = <uint8_t *>malloc(view.len if view.len > 0 else 1)
                if out[0] != NULL:
                    memcpy(out[0], view.buf, view.len)
                    out_len[0] = view.len
                    rc = 0
                else:
                    rc = KC_ERR_NOMEM
            finally:
                PyBuffer_Release(&view)
        except Exception:
            rc = KC_ERR_UNSUPPORTED  # the cleaner keeps the batch whole
        finally:
            mv.release()
    return rc


cdef int _decompress_hook(void *ctx, int codec, const uint8_t *inp, size_t in_len, uint8_t **out,
                          size_t *out_len) noexcept nogil:
    return _codec_call(ctx, codec, inp, in_len, out, out_len, True)


cdef int _compress_hook(void *ctx, int codec, const uint8_t *inp, size_t in_len, uint8_t **out,
                        size_t *out_len) noexcept nogil:
    return _codec_call(ctx, codec, inp, in_len, out, out_len, False)


def _default_codec():
    """kafka_core.compression, the codecs the whole project uses.  Its decompress() stops at
    DEFAULT_LIMIT, so a decompression bomb in a log is kept whole (counted), never inflated."""
    from kafka_core import compression
    return compression


cdef object _err(int code, str detail, int err=0):
    return error_for(code, kc_strerror(code).decode(), detail, err)


cdef inline int64_t _now(object now_ms):
    if now_ms is None:
        return <int64_t>(time.time() * 1000)
    return <int64_t>now_ms


cdef class AppendInfo:
    """What one append did (kc_append_info_t)."""

    cdef readonly long long first_offset, last_offset, max_timestamp, offset_of_max_timestamp
    cdef readonly long long log_append_time, batches, records, segment_base, position
    cdef readonly bint flush_due

    def __repr__(self):
        return (f"AppendInfo(first_offset={self.first_offset}, last_offset={self.last_offset}, "
                f"max_timestamp={self.max_timestamp}, batches={self.batches}, records={self.records}, "
                f"segment_base={self.segment_base}, position={self.position}, flush_due={self.flush_due})")


cdef class Position:
    """Where the batch holding an offset is (kc_position_t)."""

    cdef readonly long long segment_base, position, batch_base_offset, batch_last_offset
    cdef readonly long long batch_max_timestamp
    cdef readonly int batch_size

    def __repr__(self):
        return (f"Position(segment_base={self.segment_base}, position={self.position}, "
                f"batch_base_offset={self.batch_base_offset}, batch_last_offset={self.batch_last_offset}, "
                f"batch_size={self.batch_size})")


cdef class SegmentInfo:
    """One segment of the log (kc_segment_info_t)."""

    cdef readonly long long base_offset, size_bytes, next_offset, max_timestamp, created_ms
    cdef readonly long long index_entries, timeindex_entries

    def __repr__(self):
        return (f"SegmentInfo(base_offset={self.base_offset}, size_bytes={self.size_bytes}, "
                f"next_offset={self.next_offset}, max_timestamp={self.max_timestamp})")


cdef class FileSlice:
    """Whole batches of one segment file: (fd, position, length).

    Holds a reference on the segment: its file stays readable (even if
    retention deletes it) until release().  Its fd is pinned only while used:
    ``fd`` pins it until release() (or unpin()); a Transfer pins each slice
    just while it sends it, so the process-wide cap on open segment files
    (fd_cap()) holds however many slices a response carries."""

    def __cinit__(self):
        self._s.fd = -1
        self._s.pinned = 0
        self._s.ref = NULL

    cdef int pin_fd(self) except -1:
        cdef int rc, e = 0
        if self._s.ref == NULL:
            raise ValueError("FileSlice already released")
        with nogil:
            rc = kc_slice_pin(&self._s)
            if rc != 0:
                e = errno
        if rc != 0:
            raise _err(rc, f"open of segment {self.segment_base:020d}.log for a slice", e)
        return self._s.fd

    cdef void unpin_fd(self) noexcept:
        kc_slice_unpin(&self._s)

    @property
    def fd(self):
        """The segment's fd, pinned (kept open) until release() or unpin()."""
        return self.pin_fd()

    @property
    def pinned(self):
        return self._s.pinned != 0

    def pin(self):
        """Pin the fd (see ``fd``) and return it."""
        return self.pin_fd()

    def unpin(self):
        """Let the fd pool close the fd again (the slice stays readable)."""
        kc_slice_unpin(&self._s)

    def __len__(self):
        return self.length

    def __bool__(self):
        return self.length > 0

    def release(self):
        """Drop the segment reference; the fd may close after this."""
        kc_slice_release(&self._s)

    def read_bytes(self) -> bytes:
        """The slice's bytes (tests, the pure-Python send path; the broker sends the fd).
        Pins the fd only for the read unless it was pinned already."""
        if self.length == 0:
            return b""
        cdef bint was = self._s.pinned != 0
        fd = self.pin_fd()
        try:
            data = os.pread(fd, self.length, self.position)
        finally:
            if not was:
                kc_slice_unpin(&self._s)
        if len(data) != self.length:
            raise _err(KC_ERR_IO, f"short read of slice: {len(data)} of {self.length} bytes "
                       f"at position {self.position} of segment {self.segment_base}")
        return data

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()

    def __dealloc__(self):
        kc_slice_release(&self._s)

    def __repr__(self):
        return (f"FileSlice(pinned={self._s.pinned != 0}, position={self.position}, length={self.length}, "
                f"segment_base={self.segment_base}, first_offset={self.first_offset}, "
                f"last_offset={self.last_offset})")


def fd_cap():
    """The cap on segment files open at once in this process (kc_log.h): half the
    soft RLIMIT_NOFILE unless set_fd_cap() set it."""
    return kc_log_fd_cap()


def set_fd_cap(long long cap):
    """Set the cap (tests); 0 derives it from RLIMIT_NOFILE again (after setrlimit)."""
    kc_log_set_fd_cap(cap)


def fd_stats():
    """{"cap", "open", "opens", "evictions"} of the segment fd pool."""
    cdef kc_fd_stats_t st
    kc_log_fd_stats(&st)
    return {"cap": st.cap, "open": st.open, "opens": st.opens, "evictions": st.evictions}


cdef void _fill_config(kc_log_config_t *cfg, long long segment_bytes, long long roll_ms,
                       int index_interval_bytes, int max_index_bytes, object flush_interval_messages,
                       int max_batch_size) except *:
    kc_log_config_default(cfg)
    cfg.segment_bytes = segment_bytes
    cfg.roll_ms = roll_ms
    cfg.index_interval_bytes = index_interval_bytes
    cfg.max_index_bytes = max_index_bytes
    cfg.flush_interval_messages = _INT64_MAX if flush_interval_messages is None else flush_interval_messages
    cfg.max_batch_size = max_batch_size


cdef class Log:
    """A partition log directory (see docs/DESIGN.md, ``_log``)."""

    cdef kc_log_t *_l
    cdef readonly str path
    cdef int _compacting

    def __cinit__(self, path, *, long long segment_bytes=1 << 30, long long roll_ms=168 * 3600 * 1000,
                  int index_interval_bytes=4096, int max_index_bytes=10 << 20,
                  flush_interval_messages=None, int max_batch_size=0, now_ms=None):
        cdef kc_log_config_t cfg
        cdef int rc, e = 0
        cdef int64_t now = _now(now_ms)
        self._l = NULL
        self.path = os.fspath(path)
        _fill_config(&cfg, segment_bytes, roll_ms, index_interval_bytes, max_index_bytes,
                     flush_interval_messages, max_batch_size)
        cdef bytes bpath = os.fsencode(self.path)
        cdef const char *cpath = bpath
        with nogil:
            rc = kc_log_open(cpath, &cfg, now, &self._l)
            if rc != 0:
                e = errno
        if rc != 0:
            raise _err(rc, f"opening log {self.path!r}", e)

    def __dealloc__(self):
        # garbage collected without close(): release like a crash would;
        # the next open recovers (no fsync from a finalizer)
        if self._l != NULL:
            kc_log_close(self._l, 0)
            self._l = NULL

    cdef inline kc_log_t *_log(self) except NULL:
        if self._l == NULL:
            raise _err(KC_ERR_CLOSED, f"log {self.path!r} is closed")
        return self._l

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self._l != NULL:
            self.close(True)

    cdef _check_idle(self, str what):
        if self._compacting:
            raise _err(KC_ERR_ARG, f"{what} of {self.path!r} while compact() runs in another thread")

    @property
    def closed(self) -> bool:
        return self._l == NULL

    def close(self, bint clean=True):
        """clean: flush, checkpoint, trim indexes, write the clean-shutdown marker."""
        cdef kc_log_t *l = self._l
        cdef int rc, e = 0
        if l == NULL:
            return
        self._check_idle("close")
        self._l = NULL
        with nogil:
            rc = kc_log_close(l, clean)
            if rc != 0:
                e = errno
        if rc != 0:
            raise _err(rc, f"closing log {self.path!r}", e)

    def delete(self):
        """Close and remove the log's files and directory."""
        cdef kc_log_t *l = self._log()
        cdef int rc, e = 0
        self._check_idle("delete")
        self._l = NULL
        with nogil:
            rc = kc_log_delete(l)
            if rc != 0:
                e = errno
        if rc != 0:
            raise _err(rc, f"deleting log {self.path!r}", e)

    def append(self, buf, *, int leader_epoch=0, long long log_append_time=-1, now_ms=None,
               bint assign_offsets=True, bint verify_crc=True):
        """Validate, assign offsets in place (buf must be writable then), write."""
        cdef kc_log_t *l = self._log()
        cdef Py_buffer view
        cdef kc_append_info_t info
        cdef uint32_t flags = 0
        cdef int rc, e = 0
        cdef int64_t now = _now(now_ms)
        if assign_offsets:
            flags |= KC_APPEND_ASSIGN_OFFSETS
            try:
                PyObject_GetBuffer(buf, &view, PyBUF_WRITABLE)
            except BufferError:
                raise TypeError("append(assign_offsets=True) needs a writable buffer "
                                f"(bytearray or memoryview of one), not {type(buf).__name__}") from None
        else:
            # the log writes into buf only to assign offsets
            PyObject_GetBuffer(buf, &view, PyBUF_SIMPLE)
        if not verify_crc:
            flags |= KC_APPEND_SKIP_CRC
        cdef Py_ssize_t blen = view.len
        try:
            with nogil:
                rc = kc_log_append(l, <uint8_t *>view.buf, <size_t>view.len, flags, leader_epoch,
                                   log_append_time, now, &info)
                if rc != 0:
                    e = errno
        finally:
            PyBuffer_Release(&view)
        if rc != 0:
            where = (f": batch {info.error_batch} at byte {info.error_position}"
                     if info.error_position >= 0 else "")
            raise _err(rc, f"append of {blen} bytes to {self.path!r}{where}", e)
        cdef AppendInfo ai = AppendInfo.__new__(AppendInfo)
        ai.first_offset = info.first_offset
        ai.last_offset = info.last_offset
        ai.max_timestamp = info.max_timestamp
        ai.offset_of_max_timestamp = info.offset_of_max_timestamp
        ai.log_append_time = info.log_append_time
        ai.batches = info.batches
        ai.records = info.records
        ai.segment_base = info.segment_base
        ai.position = info.position
        ai.flush_due = info.flush_due
        return ai

    def read(self, long long offset, long long max_bytes, long long max_offset=-1, bint skip_empty=False):
        """Whole batches from the one holding offset, within max_bytes (at least one).
        skip_empty (consumers): leading batches compaction left without a record are passed
        over (kc_log.h, KC_READ_SKIP_EMPTY)."""
        cdef kc_log_t *l = self._log()
        cdef FileSlice fs = FileSlice.__new__(FileSlice)
        cdef int rc, e = 0
        cdef uint32_t flags = (KC_READ_SKIP_EMPTY if skip_empty else 0) | KC_READ_UNPINNED
        with nogil:
            rc = kc_log_read_ex(l, offset, max_bytes, max_offset, flags, &fs._s)
            if rc != 0:
                e = errno
        if rc != 0:
            where = ""
            if fs._s.length < 0:
                where = (f": the batch at position {fs._s.position} of segment "
                         f"{fs._s.segment_base:020d}.log is damaged")
            raise _err(rc, f"read at offset {offset} of {self.path!r} (log start "
                       f"{kc_log_start_offset(l)}, end {kc_log_end_offset(l)}){where}", e)
        fs.position = fs._s.position
        fs.length = fs._s.length
        fs.segment_base = fs._s.segment_base
        fs.first_offset = fs._s.first_offset
        fs.last_offset = fs._s.last_offset
        return fs

    def lookup(self, long long offset):
        """Position of the batch holding offset."""
        cdef kc_log_t *l = self._log()
        cdef kc_position_t p
        cdef int rc
        with nogil:
            rc = kc_log_lookup(l, offset, &p)
        if rc != 0:
            raise _err(rc, f"lookup of offset {offset} in {self.path!r} (log start "
                       f"{kc_log_start_offset(l)}, end {kc_log_end_offset(l)})")
        cdef Position pos = Position.__new__(Position)
        pos.segment_base = p.segment_base
        pos.position = p.position
        pos.batch_base_offset = p.batch_base_offset
        pos.batch_last_offset = p.batch_last_offset
        pos.batch_max_timestamp = p.batch_max_timestamp
        pos.batch_size = p.batch_size
        return pos

    def lookup_time(self, long long ts):
        """(offset, timestamp, exact) of the first record with timestamp >= ts, or None."""
        cdef kc_log_t *l = self._log()
        cdef int64_t off = -1, found = -1
        cdef int exact = 0, rc
        with nogil:
            rc = kc_log_lookup_time(l, ts, &off, &found, &exact)
        if rc == KC_ERR_NOT_FOUND:
            return None
        if rc != 0:
            raise _err(rc, f"lookup of timestamp {ts} in {self.path!r}")
        return (off, found, bool(exact))

    def max_timestamp(self):
        """(largest timestamp, offset of its batch's last record); (-1, -1) when empty."""
        cdef int64_t ts, off
        kc_log_max_timestamp(self._log(), &ts, &off)
        return (ts, off)

    def configure(self, *, long long segment_bytes=1 << 30, long long roll_ms=168 * 3600 * 1000,
                  int index_interval_bytes=4096, int max_index_bytes=10 << 20,
                  flush_interval_messages=None, int max_batch_size=0):
        """Change the settings of the open log (same keywords as the constructor).

        They apply from the next append; max_index_bytes only to segments
        created afterwards.  A topic's segment.bytes / segment.ms /
        index.interval.bytes / flush.messages altered live land here."""
        cdef kc_log_t *l = self._log()
        cdef kc_log_config_t cfg
        cdef int rc
        _fill_config(&cfg, segment_bytes, roll_ms, index_interval_bytes, max_index_bytes,
                     flush_interval_messages, max_batch_size)
        with nogil:
            rc = kc_log_configure(l, &cfg)
        if rc != 0:
            raise _err(rc, f"configuring {self.path!r}")

    def flush(self):
        cdef kc_log_t *l = self._log()
        cdef int rc, e = 0
        with nogil:
            rc = kc_log_flush(l)
            if rc != 0:
                e = errno
        if rc != 0:
            raise _err(rc, f"flush of {self.path!r}", e)

    def checkpoint(self):
        cdef kc_log_t *l = self._log()
        cdef int rc, e = 0
        with nogil:
            rc = kc_log_checkpoint(l)
            if rc != 0:
                e = errno
        if rc != 0:
            raise _err(rc, f"checkpoint of {self.path!r}", e)

    def roll(self, now_ms=None):
        cdef kc_log_t *l = self._log()
        cdef int64_t now = _now(now_ms)
        cdef int rc, e = 0
        with nogil:
            rc = kc_log_roll(l, now)
            if rc != 0:
                e = errno
        if rc != 0:
            raise _err(rc, f"roll of {self.path!r}", e)

    def truncate_to(self, long long offset):
        """Remove every batch at or after offset (a batch holding it goes whole)."""
        cdef kc_log_t *l = self._log()
        cdef int rc, e = 0
        with nogil:
            rc = kc_log_truncate_to(l, offset)
            if rc != 0:
                e = errno
        if rc != 0:
            raise _err(rc, f"truncate of {self.path!r} to offset {offset}", e)

    def truncate_fully(self, long long offset):
        """Drop every batch and start over, empty, at offset (which may be past the end)."""
        cdef kc_log_t *l = self._log()
        cdef int rc, e = 0
        with nogil:
            rc = kc_log_truncate_fully(l, offset)
            if rc != 0:
                e = errno
        if rc != 0:
            raise _err(rc, f"full truncate of {self.path!r} to start at {offset}", e)

    def retention(self, now_ms, long long retention_ms=-1, long long retention_bytes=-1,
                  long long upper_bound=-1) -> int:
        """Delete expired / excess whole segments, none holding an offset at or above
        upper_bound (-1: no bound; a replicated log passes its high watermark); returns how
        many went."""
        cdef kc_log_t *l = self._log()
        cdef int64_t now = _now(now_ms), deleted = 0
        cdef int rc, e = 0
        with nogil:
            rc = kc_log_retention(l, now, retention_ms, retention_bytes, upper_bound, &deleted)
            if rc != 0:
                e = errno
        if rc != 0:
            raise _err(rc, f"retention of {self.path!r}", e)
        return deleted

    def delete_records(self, long long offset):
        """Advance the log start offset to offset (DeleteRecords)."""
        cdef kc_log_t *l = self._log()
        cdef int rc, e = 0
        with nogil:
            rc = kc_log_delete_records(l, offset)
            if rc != 0:
                e = errno
        if rc != 0:
            raise _err(rc, f"delete_records({offset}) on {self.path!r} (log start "
                       f"{kc_log_start_offset(l)}, end {kc_log_end_offset(l)})", e)

    def compact(self, now_ms=None, *, long long delete_retention_ms=86400000,
                long long min_compaction_lag_ms=0, long long max_map_bytes=32 << 20,
                long long max_offset=-1, codec="auto", aborted=(),
                int _crash_after=0) -> dict:
        """One log-cleaner pass (cleanup.policy=compact; csrc/kc_compact.h).

        Keeps the latest record of every key up to the first uncleanable
        offset (never the active segment, nor segments newer than
        min_compaction_lag_ms, nor any offset at or above max_offset when it is
        not -1: a replicated log passes its high watermark), drops tombstones whose segment is older than
        delete_retention_ms, keeps offsets, swaps the cleaned segments in
        crash-safely.  The GIL is released for the pass; appends and reads may
        go on from other threads.  aborted: (producer id, first offset, last
        offset[, last stable offset]) of the log's aborted transactions: their
        batches' records are discarded, never a key's latest value; markers
        whose transaction has no records left get a delete horizon and go
        after it; each cleaned segment's .txnindex keeps the entries whose
        markers stay (kc_compact_txn.h).  codec: an object with compress(codec, data)
        and decompress(codec, data) used for compressed batches ("auto":
        kafka_core.compression; None: compressed batches are
        kept whole and tombstones stay while any exists).  Returns the pass's
        statistics (dirty_start/end_offset are the cleaner checkpoint before
        and after)."""
        cdef kc_log_t *l = self._log()
        cdef kc_compact_config_t cfg
        cdef kc_compact_stats_t st
        cdef int rc, e = 0
        cdef kc_aborted_txn_t *arr = NULL
        if codec == "auto":
            codec = _default_codec()
        kc_compact_config_default(&cfg, _now(now_ms))
        cfg.delete_retention_ms = delete_retention_ms
        cfg.min_compaction_lag_ms = min_compaction_lag_ms
        cfg.max_map_bytes = max_map_bytes
        cfg.max_offset = max_offset
        cfg.crash_after = _crash_after
        ab = sorted((int(x[2]), int(x[0]), int(x[1]), int(x[3]) if len(x) > 3 else -1) for x in aborted)
        if ab:
            arr = <kc_aborted_txn_t *>malloc(len(ab) * sizeof(kc_aborted_txn_t))
            if arr == NULL:
                raise MemoryError()
            for i, (last, pid, first, lso) in enumerate(ab):
                arr[i].producer_id = pid
                arr[i].first_offset = first
                arr[i].last_offset = last
                arr[i].last_stable_offset = lso
            cfg.aborted = arr
            cfg.n_aborted = len(ab)
        if codec is not None:
            cfg.decompress = _decompress_hook
            cfg.compress = _compress_hook
            cfg.codec_ctx = <void *>codec  # kept alive by this frame for the whole pass
        self._compacting += 1
        try:
            with nogil:
                rc = kc_log_compact(l, &cfg, &st)
                if rc != 0:
                    e = errno
        finally:
            self._compacting -= 1
            free(arr)
        if rc != 0:
            raise _err(rc, f"compaction of {self.path!r} (max_map_bytes={max_map_bytes})", e)
        return {"dirty_start": st.dirty_start, "end_offset": st.end_offset, "map_entries": st.map_entries,
                "segments_before": st.segments_before, "segments_after": st.segments_after,
                "bytes_before": st.bytes_before, "bytes_after": st.bytes_after,
                "records_read": st.records_read, "records_removed": st.records_removed,
                "tombstones_removed": st.tombstones_removed, "batches_removed": st.batches_removed,
                "markers_removed": st.markers_removed, "compressed_kept_whole": st.compressed_kept_whole, "aborted": bool(st.aborted)}

    def cleanable_bytes(self, now_ms=None, long long min_compaction_lag_ms=0, long long max_offset=-1) -> tuple:
        """(clean bytes below the cleaner checkpoint, dirty cleanable bytes)."""
        cdef kc_log_t *l = self._log()
        cdef int64_t clean = 0, dirty = 0, now = _now(now_ms)
        with nogil:
            kc_log_cleanable_bytes(l, now, min_compaction_lag_ms, max_offset, &clean, &dirty)
        return (clean, dirty)

    def dirty_ratio(self, now_ms=None, long long min_compaction_lag_ms=0, long long max_offset=-1) -> float:
        """dirty / (clean + dirty): the broker cleans when it exceeds
        min.cleanable.dirty.ratio (0.5).  0.0 for an empty log."""
        clean, dirty = self.cleanable_bytes(now_ms, min_compaction_lag_ms, max_offset)
        return dirty / (clean + dirty) if clean + dirty else 0.0

    @property
    def cleaner_checkpoint(self) -> int:
        """Offsets below it have been compacted (persisted in kc-cleaner-checkpoint)."""
        return kc_log_cleaner_checkpoint(self._log())

    @property
    def start_offset(self) -> int:
        return kc_log_start_offset(self._log())

    @property
    def end_offset(self) -> int:
        return kc_log_end_offset(self._log())

    @property
    def size_bytes(self) -> int:
        return kc_log_size_bytes(self._log())

    @property
    def segment_count(self) -> int:
        return kc_log_segment_count(self._log())

    @property
    def recovery_point(self) -> int:
        return kc_log_recovery_point(self._log())

    @property
    def unflushed_messages(self) -> int:
        return kc_log_unflushed_messages(self._log())

    @property
    def recovery(self) -> dict:
        cdef kc_recovery_info_t r
        kc_log_recovery_info(self._log(), &r)
        return {"clean": bool(r.clean), "segments_scanned": r.segments_scanned,
                "batches_scanned": r.batches_scanned, "bytes_truncated": r.bytes_truncated,
                "segments_deleted": r.segments_deleted, "first_error": r.first_error}

    def segments(self) -> list:
        cdef kc_log_t *l = self._log()
        cdef size_t n = 0, cap, i
        cdef kc_segment_info_t *v
        cdef SegmentInfo si
        kc_log_segments(l, NULL, 0, &n)
        while True:
            cap = n + 4  # a roll may add one meanwhile
            v = <kc_segment_info_t *>malloc(cap * sizeof(kc_segment_info_t))
            if v == NULL:
                raise MemoryError()
            kc_log_segments(l, v, cap, &n)
            if n <= cap:
                break
            free(v)
        out = []
        try:
            for i in range(n):
                si = SegmentInfo.__new__(SegmentInfo)
                si.base_offset = v[i].base_offset
                si.size_bytes = v[i].size_bytes
                si.next_offset = v[i].next_offset
                si.max_timestamp = v[i].max_timestamp
                si.created_ms = v[i].created_ms
                si.index_entries = v[i].index_entries
                si.timeindex_entries = v[i].timeindex_entries
                out.append(si)
        finally:
            free(v)
        return out

    def __repr__(self):
        if self._l == NULL:
            return f"Log({self.path!r}, closed)"
        return (f"Log({self.path!r}, start_offset={self.start_offset}, end_offset={self.end_offset}, "
                f"segments={self.segment_count})")
