/* kc_common.h - error codes and small helpers shared by every csrc module.
 *
 * Every fallible kc_* function returns an int: KC_OK (0) or a negative
 * kc_err code below.  KC_ERR_IO means errno holds the cause.  Codes are
 * stable: the Python binding (kafka_core._errors) maps each to an
 * exception class, and the broker maps them to Kafka error codes.
 */
#ifndef KC_COMMON_H
#define KC_COMMON_H

#include <stddef.h>
#include <stdint.h>

enum kc_err {
    KC_OK = 0,
    /* record batch format */
    KC_ERR_TRUNCATED = -1,        /* buffer ends inside a batch or field */
    KC_ERR_CORRUPT_CRC = -2,      /* stored CRC32C != computed */
    KC_ERR_BAD_MAGIC = -3,        /* magic byte is not 0, 1 or 2 */
    KC_ERR_LEGACY_MAGIC = -4,     /* magic 0 or 1: message format v0/v1 */
    KC_ERR_BAD_LENGTH = -5,       /* batch length below the v2 header or above the limit */
    KC_ERR_BAD_COUNT = -6,        /* record count < 0, or != lastOffsetDelta + 1 */
    KC_ERR_BAD_RECORD = -7,       /* a record inside the batch does not decode */
    KC_ERR_VARINT_UNDERFLOW = -8, /* varint runs past the end of the buffer */
    KC_ERR_VARINT_OVERFLOW = -9,  /* varint longer than 10 (or 5) bytes */
    KC_ERR_CONTROL_BATCH = -10,   /* control batch where none is allowed */
    KC_ERR_BAD_TIMESTAMP = -11,   /* timestamp rejected (LogAppendTime from a client, ...) */
    KC_ERR_MISSING_KEY = -12,     /* a record without key on a compacted topic */
    /* storage and transfer */
    KC_ERR_IO = -20,              /* system call failed; errno is set */
    KC_ERR_NOMEM = -21,
    KC_ERR_ARG = -22,             /* invalid argument from the caller */
    KC_ERR_OFFSET_OUT_OF_RANGE = -23,
    KC_ERR_AGAIN = -24,           /* socket would block; call again when writable */
    KC_ERR_UNSUPPORTED = -25,     /* feature absent at build or run time (io_uring) */
    KC_ERR_CLOSED = -26,          /* object closed or peer went away (EPIPE/ECONNRESET) */
    KC_ERR_TOO_LARGE = -27,       /* does not fit (builder buffer, segment, index) */
    KC_ERR_CORRUPT_INDEX = -28,   /* index file inconsistent with its log segment */
    KC_ERR_NOT_FOUND = -29,       /* lookup found nothing (timestamp past the end) */
};

/* Human-readable text for a kc_err code (static storage, never NULL). */
const char *kc_strerror(int err);

/* a + b + c in a malloc'd string (a path and a file name, a path and an
 * extension); NULL when out of memory. */
char *kc_concat3(const char *a, const char *b, const char *c);

/* Big-endian loads and stores (the Kafka wire byte order). */
static inline uint16_t kc_be16(const uint8_t *p) { return (uint16_t)((p[0] << 8) | p[1]); }
static inline uint32_t kc_be32(const uint8_t *p) {
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | (uint32_t)p[3];
}
static inline uint64_t kc_be64(const uint8_t *p) {
    return ((uint64_t)kc_be32(p) << 32) | (uint64_t)kc_be32(p + 4);
}
static inline void kc_put_be16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)(v >> 8); p[1] = (uint8_t)v; }
static inline void kc_put_be32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24); p[1] = (uint8_t)(v >> 16); p[2] = (uint8_t)(v >> 8); p[3] = (uint8_t)v;
}
static inline void kc_put_be64(uint8_t *p, uint64_t v) {
    kc_put_be32(p, (uint32_t)(v >> 32)); kc_put_be32(p + 4, (uint32_t)v);
}

#endif
