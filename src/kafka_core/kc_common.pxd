# Declarations of csrc/kc_common.h (error codes, kc_strerror).
from libc.stdint cimport int64_t, uint8_t, uint16_t, uint32_t, uint64_t


cdef extern from "kc_common.h" nogil:
    enum kc_err:
        KC_OK
        KC_ERR_TRUNCATED
        KC_ERR_CORRUPT_CRC
        KC_ERR_BAD_MAGIC
        KC_ERR_LEGACY_MAGIC
        KC_ERR_BAD_LENGTH
        KC_ERR_BAD_COUNT
        KC_ERR_BAD_RECORD
        KC_ERR_VARINT_UNDERFLOW
        KC_ERR_VARINT_OVERFLOW
        KC_ERR_CONTROL_BATCH
        KC_ERR_BAD_TIMESTAMP
        KC_ERR_IO
        KC_ERR_NOMEM
        KC_ERR_ARG
        KC_ERR_OFFSET_OUT_OF_RANGE
        KC_ERR_AGAIN
        KC_ERR_UNSUPPORTED
        KC_ERR_CLOSED
        KC_ERR_TOO_LARGE
        KC_ERR_CORRUPT_INDEX
        KC_ERR_NOT_FOUND

    const char *kc_strerror(int err)
    uint16_t kc_be16(const uint8_t *p)
    uint32_t kc_be32(const uint8_t *p)
    uint64_t kc_be64(const uint8_t *p)
