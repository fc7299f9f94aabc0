# Declarations of csrc/kc_transfer.h.
from libc.stdint cimport int64_t, uint8_t, uint64_t


cdef extern from "kc_transfer.h" nogil:
    enum:
        KC_XFER_AUTO
        KC_XFER_SENDFILE
        KC_XFER_URING
        KC_XFER_COPY

    ctypedef struct kc_xfer_part_t:
        const uint8_t *data
        int fd
        int64_t offset
        size_t len

    ctypedef struct kc_xfer_t:
        const kc_xfer_part_t *parts
        size_t nparts
        size_t idx
        size_t off
        uint64_t sent
        uint64_t total

    void kc_xfer_init(kc_xfer_t *x, const kc_xfer_part_t *parts, size_t nparts)
    int kc_xfer_send(int sock, kc_xfer_t *x, int mode)
    int kc_xfer_uring_available()
    int kc_xfer_auto_mode()
    const char *kc_xfer_mode_name(int mode)
    void kc_xfer_set_uring_disabled(int disabled)
    void kc_xfer_thread_cleanup()
