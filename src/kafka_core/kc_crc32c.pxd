# Declarations of csrc/kc_crc32c.h.
from libc.stdint cimport uint32_t


cdef extern from "kc_crc32c.h" nogil:
    uint32_t kc_crc32c(uint32_t crc, const void *buf, size_t len)
    uint32_t kc_crc32c_sw(uint32_t crc, const void *buf, size_t len)
    uint32_t kc_crc32c_hw(uint32_t crc, const void *buf, size_t len)
    int kc_crc32c_hw_available()
    const char *kc_crc32c_impl()
    void kc_crc32c_force_portable(int on)
