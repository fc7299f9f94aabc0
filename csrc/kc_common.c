/* kc_common.c - error texts, small string helpers. */
#include "kc_common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *kc_strerror(int err) {
    switch (err) {
    case KC_OK: return "success";
    case KC_ERR_TRUNCATED: return "truncated: the buffer ends inside a record batch";
    case KC_ERR_CORRUPT_CRC: return "corrupt: CRC32C mismatch";
    case KC_ERR_BAD_MAGIC: return "invalid magic byte (not a Kafka record batch)";
    case KC_ERR_LEGACY_MAGIC: return "legacy message format v0/v1 (magic 0 or 1) is not supported";
    case KC_ERR_BAD_LENGTH: return "invalid batch length";
    case KC_ERR_BAD_COUNT: return "invalid record count (negative or != lastOffsetDelta + 1)";
    case KC_ERR_BAD_RECORD: return "a record in the batch does not decode";
    case KC_ERR_VARINT_UNDERFLOW: return "varint runs past the end of the buffer";
    case KC_ERR_VARINT_OVERFLOW: return "varint too long";
    case KC_ERR_CONTROL_BATCH: return "control batch not allowed here";
    case KC_ERR_BAD_TIMESTAMP: return "invalid timestamp";
    case KC_ERR_MISSING_KEY: return "compacted topic cannot accept a record without key";
    case KC_ERR_IO: return "I/O error";
    case KC_ERR_NOMEM: return "out of memory";
    case KC_ERR_ARG: return "invalid argument";
    case KC_ERR_OFFSET_OUT_OF_RANGE: return "offset out of range";
    case KC_ERR_AGAIN: return "would block";
    case KC_ERR_UNSUPPORTED: return "not supported on this build or kernel";
    case KC_ERR_CLOSED: return "closed";
    case KC_ERR_TOO_LARGE: return "too large";
    case KC_ERR_CORRUPT_INDEX: return "corrupt index";
    case KC_ERR_NOT_FOUND: return "not found";
    default: return "unknown error";
    }
}

char *kc_concat3(const char *a, const char *b, const char *c) {
    size_t n = strlen(a) + strlen(b) + strlen(c) + 1;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%s%s%s", a, b, c);
    return p;
}
