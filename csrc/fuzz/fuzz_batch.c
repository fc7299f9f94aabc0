/* fuzz_batch.c - libFuzzer target for kc_batch: scan with every flag
 * combination, then decode every record and header of each valid batch,
 * and run assign_offsets on a copy.  Bugs show as sanitizer reports; the
 * invariants below abort on a logic error. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../kc_batch.h"
#include "../kc_common.h"

static void decode_records(const uint8_t *buf, size_t len) {
    size_t pos = 0;
    kc_record_t r;
    while (pos < len) {
        size_t before = pos;
        if (kc_record_next(buf, len, &pos, &r) != KC_OK) return;
        if (pos <= before || pos > len) abort();   /* progress, in bounds */
        size_t hp = 0;
        kc_header_t h;
        for (int32_t i = 0; i < r.header_count; i++)
            if (kc_header_next(r.headers, r.headers_len, &hp, &h) != KC_OK) abort();
        if (hp != r.headers_len) abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* exact-size heap copy so reads past the end are caught */
    uint8_t *buf = malloc(size ? size : 1);
    if (!buf) return 0;
    memcpy(buf, data, size);
    kc_batch_info_t infos[8];
    size_t n = 0, valid = 0;
    for (uint32_t flags = 0; flags < 8; flags++) {
        int rc = kc_batch_scan(buf, size, flags, flags & 1 ? 4096 : 0, infos, 8, &n, &valid);
        if (valid > size) abort();
        if (rc == KC_OK && !(flags & KC_SCAN_ALLOW_PARTIAL) && valid != size) abort();
    }
    kc_batch_scan(buf, size, 0, 0, infos, 8, &n, &valid);
    for (size_t i = 0; i < n && i < 8; i++) {
        const kc_batch_info_t *bi = &infos[i];
        if (bi->position + bi->size > size) abort();
        if ((bi->attributes & KC_ATTR_CODEC_MASK) == KC_CODEC_NONE)
            decode_records(buf + bi->position + KC_BATCH_HEADER_SIZE, bi->size - KC_BATCH_HEADER_SIZE);
    }
    if (valid) {
        int64_t next;
        if (kc_batch_assign_offsets(buf, valid, 10, 1, (size & 1) ? 777 : -1, &next) != KC_OK) abort();
        kc_batch_scan(buf, valid, KC_SCAN_VERIFY_CRC, 0, NULL, 0, &n, &valid);
    }
    decode_records(buf, size);   /* raw bytes as a records section */
    free(buf);
    return 0;
}
