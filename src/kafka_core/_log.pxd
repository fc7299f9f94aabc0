# FileSlice for other Cython modules (kafka_core._transfer cimports it to
# send a slice with sendfile without going through Python attributes).
from kafka_core.kc_log cimport kc_slice_t


cdef class FileSlice:
    cdef kc_slice_t _s
    cdef readonly int fd
    cdef readonly long long position
    cdef readonly long long length
    cdef readonly long long segment_base
    cdef readonly long long first_offset
    cdef readonly long long last_offset
    cdef object __weakref__
