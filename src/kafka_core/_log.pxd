# FileSlice for other Cython modules (kafka_core._transfer cimports it to
# pin a slice's fd only while it sends it, without going through Python).
from kafka_core.kc_log cimport kc_slice_t


cdef class FileSlice:
    cdef kc_slice_t _s
    cdef int pin_fd(self) except -1
    cdef void unpin_fd(self) noexcept
    cdef readonly long long position
    cdef readonly long long length
    cdef readonly long long segment_base
    cdef readonly long long first_offset
    cdef readonly long long last_offset
    cdef object __weakref__
