/* test_batch.c - RecordBatch v2: builder round trip, each parse error,
 * scan flags, offset assignment, summary, varints, record decode errors,
 * and a truncate/corrupt-everywhere loop (run under ASan+UBSan). */
#include <stdint.h>

#include "../kc_batch.h"
#include "../kc_common.h"
#include "../kc_crc32c.h"
#include "kc_test.h"

static uint8_t bufA[4096], bufB[4096];

/* A batch of n records: key "k<i>" (null for i == 1), value of i+3 bytes,
 * one header on even records.  Returns its size. */
static size_t build(uint8_t *buf, size_t cap, int n, int64_t ts0) {
    kc_builder_t b;
    CHECK_EQ_INT(kc_builder_init(&b, buf, cap, ts0, 0, 7, 1, 100), KC_OK);
    for (int i = 0; i < n; i++) {
        uint8_t key[8], val[64];
        int klen = snprintf((char *)key, sizeof key, "k%d", i);
        memset(val, 'a' + i % 26, sizeof val);
        kc_header_t h = {(const uint8_t *)"hk", 2, (const uint8_t *)"hv", 2};
        int rc = kc_builder_append(&b, ts0 + i * 10 - (i == 2 ? 50 : 0), i == 1 ? NULL : key,
                                   i == 1 ? -1 : klen, val, (i + 3) % 64, &h, (size_t)(i % 2 == 0));
        CHECK_EQ_INT(rc, KC_OK);
    }
    return kc_builder_finish(&b);
}

static void test_varints(void) {
    uint8_t out[10];
    int64_t vals[] = {0, 1, -1, 63, -64, 64, 300, -300, INT32_MAX, INT32_MIN, INT64_MAX, INT64_MIN};
    for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
        size_t n = kc_varint_put_i64(out, vals[i]);
        CHECK_EQ_INT(n, kc_varint_size_i64(vals[i]));
        int64_t v = 0;
        CHECK_EQ_INT(kc_varint_get_i64(out, n, &v), (int)n);
        CHECK_EQ_INT(v, vals[i]);
        CHECK_EQ_INT(kc_varint_get_i64(out, n - 1, &v), KC_ERR_VARINT_UNDERFLOW);
        if (vals[i] >= INT32_MIN && vals[i] <= INT32_MAX) {
            int32_t w = 0;
            CHECK_EQ_INT(kc_varint_get_i32(out, n, &w), (int)n);
            CHECK_EQ_INT(w, vals[i]);
        }
    }
    /* -1 zigzags to 1: one byte 0x01 */
    CHECK_EQ_INT(kc_varint_put_i64(out, -1), 1);
    CHECK_EQ_INT(out[0], 1);
    uint8_t over[11];
    memset(over, 0xFF, sizeof over);
    int32_t w;
    int64_t v;
    uint64_t u;
    CHECK_EQ_INT(kc_varint_get_i32(over, sizeof over, &w), KC_ERR_VARINT_OVERFLOW);
    CHECK_EQ_INT(kc_varint_get_i64(over, sizeof over, &v), KC_ERR_VARINT_OVERFLOW);
    CHECK_EQ_INT(kc_varint_get_u64(over, 3, &u), KC_ERR_VARINT_UNDERFLOW);
    CHECK_EQ_INT(kc_varint_get_u64(over, 0, &u), KC_ERR_VARINT_UNDERFLOW);
    CHECK_EQ_INT(kc_varint_put_u64(out, UINT64_MAX), 10);
    CHECK_EQ_INT(kc_varint_get_u64(out, 10, &u), 10);
    CHECK(u == UINT64_MAX);
}

static void test_builder_roundtrip(void) {
    size_t size = build(bufA, sizeof bufA, 5, 1000);
    kc_batch_info_t bi;
    CHECK_EQ_INT(kc_batch_validate(bufA, size, 0, &bi), KC_OK);
    CHECK_EQ_INT(bi.size, size);
    CHECK_EQ_INT(bi.batch_length, size - 12);
    CHECK_EQ_INT(bi.magic, 2);
    CHECK_EQ_INT(bi.record_count, 5);
    CHECK_EQ_INT(bi.last_offset_delta, 4);
    CHECK_EQ_INT(bi.base_timestamp, 1000);
    CHECK_EQ_INT(bi.max_timestamp, 1040);
    CHECK_EQ_INT(bi.producer_id, 7);
    CHECK_EQ_INT(bi.producer_epoch, 1);
    CHECK_EQ_INT(bi.base_sequence, 100);
    CHECK_EQ_INT(bi.partition_leader_epoch, -1);
    CHECK_EQ_INT(bi.crc, kc_crc32c(0, bufA + 21, size - 21));

    size_t pos = KC_BATCH_HEADER_SIZE;
    for (int i = 0; i < 5; i++) {
        kc_record_t r;
        CHECK_EQ_INT(kc_record_next(bufA, size, &pos, &r), KC_OK);
        CHECK_EQ_INT(r.offset_delta, i);
        CHECK_EQ_INT(r.timestamp_delta, i * 10 - (i == 2 ? 50 : 0));
        CHECK_EQ_INT(r.value_len, (i + 3) % 64);
        CHECK_EQ_INT(r.header_count, i % 2 == 0);
        if (i == 1) CHECK(r.key == NULL && r.key_len == -1);
        else CHECK(r.key_len >= 2 && r.key[0] == 'k');
        if (r.header_count) {
            size_t hp = 0;
            kc_header_t h;
            CHECK_EQ_INT(kc_header_next(r.headers, r.headers_len, &hp, &h), KC_OK);
            CHECK(h.key_len == 2 && memcmp(h.key, "hk", 2) == 0);
            CHECK(h.value_len == 2 && memcmp(h.value, "hv", 2) == 0);
            CHECK_EQ_INT(hp, r.headers_len);
        }
    }
    CHECK_EQ_INT(pos, size);

    /* empty batch: lastOffsetDelta -1, count 0 is consistent */
    kc_builder_t b;
    CHECK_EQ_INT(kc_builder_init(&b, bufB, sizeof bufB, 5, 0, -1, -1, -1), KC_OK);
    size = kc_builder_finish(&b);
    CHECK_EQ_INT(size, 61);
    CHECK_EQ_INT(kc_batch_validate(bufB, size, 0, &bi), KC_OK);
    CHECK_EQ_INT(bi.record_count, 0);

    /* full: TOO_LARGE, builder unchanged */
    uint8_t small[80];
    CHECK_EQ_INT(kc_builder_init(&b, small, sizeof small, 0, 0, -1, -1, -1), KC_OK);
    uint8_t val[32] = {0};
    CHECK_EQ_INT(kc_builder_append(&b, 0, NULL, -1, val, 10, NULL, 0), KC_OK);
    size_t before = b.pos;
    CHECK_EQ_INT(kc_builder_append(&b, 0, NULL, -1, val, 32, NULL, 0), KC_ERR_TOO_LARGE);
    CHECK_EQ_INT(b.pos, before);
    CHECK_EQ_INT(b.count, 1);
    CHECK_EQ_INT(kc_builder_append(&b, 0, NULL, -2, val, 1, NULL, 0), KC_ERR_ARG);
    CHECK_EQ_INT(kc_builder_init(&b, small, 60, 0, 0, -1, -1, -1), KC_ERR_TOO_LARGE);
    CHECK_EQ_INT(kc_builder_init(&b, small, 80, 0, KC_CODEC_GZIP, -1, -1, -1), KC_ERR_ARG);

    /* finish_compressed: codec bits, lengths, CRC over the given bytes */
    CHECK_EQ_INT(kc_builder_init(&b, bufB, sizeof bufB, 0, 0, -1, -1, -1), KC_OK);
    CHECK_EQ_INT(kc_builder_append(&b, 3, NULL, -1, val, 20, NULL, 0), KC_OK);
    memset(bufB + 61, 0xAB, 9);
    size = kc_builder_finish_compressed(&b, KC_CODEC_ZSTD, 9);
    CHECK_EQ_INT(size, 70);
    CHECK_EQ_INT(kc_batch_validate(bufB, size, 0, &bi), KC_OK);
    CHECK_EQ_INT(bi.attributes & KC_ATTR_CODEC_MASK, KC_CODEC_ZSTD);
    CHECK_EQ_INT(bi.record_count, 1);
    CHECK_EQ_INT(kc_builder_finish_compressed(&b, 9, 9), 0);
}

static void put32(uint8_t *p, int32_t v) { kc_put_be32(p, (uint32_t)v); }

static void test_parse_errors(void) {
    size_t size = build(bufA, sizeof bufA, 3, 0);
    kc_batch_info_t bi;
    memcpy(bufB, bufA, size);
    CHECK_EQ_INT(kc_batch_parse(bufB, 16, 0, &bi), KC_ERR_TRUNCATED);
    CHECK_EQ_INT(kc_batch_parse(bufB, size - 1, 0, &bi), KC_ERR_TRUNCATED);
    CHECK_EQ_INT(kc_batch_parse(bufB, size, size - 1, &bi), KC_ERR_BAD_LENGTH);
    CHECK_EQ_INT(kc_batch_parse(bufB, size, size, &bi), KC_OK);
    bufB[16] = 1;
    CHECK_EQ_INT(kc_batch_parse(bufB, size, 0, &bi), KC_ERR_LEGACY_MAGIC);
    bufB[16] = 0;
    CHECK_EQ_INT(kc_batch_parse(bufB, size, 0, &bi), KC_ERR_LEGACY_MAGIC);
    bufB[16] = 3;
    CHECK_EQ_INT(kc_batch_parse(bufB, size, 0, &bi), KC_ERR_BAD_MAGIC);
    bufB[16] = 0xFF;
    CHECK_EQ_INT(kc_batch_parse(bufB, size, 0, &bi), KC_ERR_BAD_MAGIC);
    bufB[16] = 2;
    put32(bufB + 8, -5);
    CHECK_EQ_INT(kc_batch_parse(bufB, size, 0, &bi), KC_ERR_BAD_LENGTH);
    put32(bufB + 8, 48);
    CHECK_EQ_INT(kc_batch_parse(bufB, size, 0, &bi), KC_ERR_BAD_LENGTH);
    put32(bufB + 8, INT32_MAX);   /* absurd: reads as truncated, never past the buffer */
    CHECK_EQ_INT(kc_batch_parse(bufB, size, 0, &bi), KC_ERR_TRUNCATED);
    CHECK_EQ_INT(kc_batch_parse(bufB, size, 1 << 20, &bi), KC_ERR_BAD_LENGTH);
    put32(bufB + 8, (int32_t)size - 12);
    put32(bufB + 57, -1);
    CHECK_EQ_INT(kc_batch_parse(bufB, size, 0, &bi), KC_ERR_BAD_COUNT);
    put32(bufB + 57, 4);
    CHECK_EQ_INT(kc_batch_parse(bufB, size, 0, &bi), KC_ERR_BAD_COUNT);
    put32(bufB + 57, INT32_MAX);
    put32(bufB + 23, INT32_MAX - 1);   /* consistent but absurd for the size */
    CHECK_EQ_INT(kc_batch_parse(bufB, size, 0, &bi), KC_ERR_BAD_COUNT);
    put32(bufB + 23, INT32_MAX);       /* lastOffsetDelta + 1 must not wrap */
    put32(bufB + 57, INT32_MIN);
    CHECK_EQ_INT(kc_batch_parse(bufB, size, 0, &bi), KC_ERR_BAD_COUNT);
    memcpy(bufB, bufA, size);
    CHECK_EQ_INT(kc_batch_validate(bufB, size, 0, &bi), KC_OK);
    bufB[size - 1] ^= 1;
    CHECK_EQ_INT(kc_batch_parse(bufB, size, 0, &bi), KC_OK);
    CHECK_EQ_INT(kc_batch_validate(bufB, size, 0, &bi), KC_ERR_CORRUPT_CRC);
    CHECK_EQ_INT(kc_batch_parse(NULL, 0, 0, &bi), KC_ERR_TRUNCATED);
}

static void test_scan(void) {
    size_t s1 = build(bufA, sizeof bufA, 3, 100);
    size_t s2 = build(bufA + s1, sizeof bufA - s1, 2, 500);
    size_t s3 = build(bufA + s1 + s2, sizeof bufA - s1 - s2, 4, 200);
    size_t total = s1 + s2 + s3;
    kc_batch_info_t infos[4];
    size_t n, valid;
    CHECK_EQ_INT(kc_batch_scan(bufA, total, KC_SCAN_VERIFY_CRC, 0, infos, 4, &n, &valid), KC_OK);
    CHECK_EQ_INT(n, 3);
    CHECK_EQ_INT(valid, total);
    CHECK_EQ_INT(infos[1].position, s1);
    CHECK_EQ_INT(infos[2].position, s1 + s2);
    /* count only */
    CHECK_EQ_INT(kc_batch_scan(bufA, total, 0, 0, NULL, 0, &n, &valid), KC_OK);
    CHECK_EQ_INT(n, 3);
    CHECK_EQ_INT(kc_batch_scan(bufA, total, 0, 0, infos, 1, &n, &valid), KC_OK);
    CHECK_EQ_INT(n, 3);
    /* partial tail */
    CHECK_EQ_INT(kc_batch_scan(bufA, total - 5, KC_SCAN_VERIFY_CRC, 0, infos, 4, &n, &valid),
                 KC_ERR_TRUNCATED);
    CHECK_EQ_INT(n, 2);
    CHECK_EQ_INT(valid, s1 + s2);
    CHECK_EQ_INT(kc_batch_scan(bufA, total - 5, KC_SCAN_VERIFY_CRC | KC_SCAN_ALLOW_PARTIAL, 0,
                               infos, 4, &n, &valid), KC_OK);
    CHECK_EQ_INT(n, 2);
    CHECK_EQ_INT(valid, s1 + s2);
    /* CRC only checked with the flag */
    bufA[s1 + 30] ^= 0x10;
    CHECK_EQ_INT(kc_batch_scan(bufA, total, 0, 0, infos, 4, &n, &valid), KC_OK);
    CHECK_EQ_INT(kc_batch_scan(bufA, total, KC_SCAN_VERIFY_CRC | KC_SCAN_ALLOW_PARTIAL, 0,
                               infos, 4, &n, &valid), KC_ERR_CORRUPT_CRC);
    CHECK_EQ_INT(n, 1);
    CHECK_EQ_INT(valid, s1);
    bufA[s1 + 30] ^= 0x10;
    /* max size */
    CHECK_EQ_INT(kc_batch_scan(bufA, total, 0, s1 - 1, infos, 4, &n, &valid), KC_ERR_BAD_LENGTH);
    CHECK_EQ_INT(n, 0);
    /* control batches */
    kc_builder_t b;
    CHECK_EQ_INT(kc_builder_init(&b, bufB, sizeof bufB, 0, KC_ATTR_CONTROL | KC_ATTR_TRANSACTIONAL,
                                 5, 0, -1), KC_OK);
    CHECK_EQ_INT(kc_builder_append(&b, 0, (const uint8_t *)"\0\0\0\0", 4, (const uint8_t *)"\0\0\0\0\0\0",
                                   6, NULL, 0), KC_OK);
    size_t sc = kc_builder_finish(&b);
    memcpy(bufA + total, bufB, sc);
    CHECK_EQ_INT(kc_batch_scan(bufA, total + sc, KC_SCAN_VERIFY_CRC, 0, infos, 4, &n, &valid), KC_OK);
    CHECK_EQ_INT(n, 4);
    CHECK_EQ_INT(kc_batch_scan(bufA, total + sc, KC_SCAN_REJECT_CONTROL, 0, infos, 4, &n, &valid),
                 KC_ERR_CONTROL_BATCH);
    CHECK_EQ_INT(n, 3);
    CHECK_EQ_INT(valid, total);
    CHECK_EQ_INT(kc_batch_scan(bufA, 0, KC_SCAN_VERIFY_CRC, 0, NULL, 0, &n, &valid), KC_OK);
    CHECK_EQ_INT(n, 0);
}

static void test_assign_and_summary(void) {
    size_t s1 = build(bufA, sizeof bufA, 3, 100);          /* max ts 120 */
    size_t s2 = build(bufA + s1, sizeof bufA - s1, 2, 500); /* max ts 510 */
    size_t s3 = build(bufA + s1 + s2, sizeof bufA - s1 - s2, 4, 200); /* max ts 230 */
    size_t total = s1 + s2 + s3;
    kc_batch_info_t infos[3];
    size_t n, valid;
    kc_batch_summary_t sum;
    CHECK_EQ_INT(kc_batch_scan(bufA, total, KC_SCAN_VERIFY_CRC, 0, infos, 3, &n, &valid), KC_OK);
    kc_batch_summarize(infos, n, &sum);
    CHECK_EQ_INT(sum.batches, 3);
    CHECK_EQ_INT(sum.records, 9);
    CHECK_EQ_INT(sum.offsets, 9);
    CHECK_EQ_INT(sum.max_timestamp, 510);
    CHECK_EQ_INT(sum.offset_delta_of_max_ts, 4);   /* last offset of batch 2: 3 + 1 */
    CHECK_EQ_INT(sum.first_timestamp, 100);
    kc_batch_summarize(infos, 0, &sum);
    CHECK_EQ_INT(sum.max_timestamp, -1);
    CHECK_EQ_INT(sum.offset_delta_of_max_ts, -1);

    uint32_t crc1 = infos[0].crc;
    int64_t next = 0;
    CHECK_EQ_INT(kc_batch_assign_offsets(bufA, total, 1000, 7, -1, &next), KC_OK);
    CHECK_EQ_INT(next, 1009);
    CHECK_EQ_INT(kc_batch_scan(bufA, total, KC_SCAN_VERIFY_CRC, 0, infos, 3, &n, &valid), KC_OK);
    CHECK_EQ_INT(infos[0].base_offset, 1000);
    CHECK_EQ_INT(infos[1].base_offset, 1003);
    CHECK_EQ_INT(infos[2].base_offset, 1005);
    CHECK_EQ_INT(infos[2].partition_leader_epoch, 7);
    CHECK_EQ_INT(infos[0].crc, crc1);   /* untouched: not CRC-covered */

    CHECK_EQ_INT(kc_batch_assign_offsets(bufA, total, 50, 8, 99999, &next), KC_OK);
    CHECK_EQ_INT(next, 59);
    CHECK_EQ_INT(kc_batch_scan(bufA, total, KC_SCAN_VERIFY_CRC, 0, infos, 3, &n, &valid), KC_OK);
    for (int i = 0; i < 3; i++) {
        CHECK(infos[i].attributes & KC_ATTR_LOG_APPEND_TIME);
        CHECK_EQ_INT(infos[i].max_timestamp, 99999);
    }
    CHECK(infos[0].crc != crc1);
    CHECK_EQ_INT(infos[0].base_timestamp, 100);

    /* error: nothing written */
    memcpy(bufB, bufA, total);
    bufB[s1 + 16] = 9;
    CHECK_EQ_INT(kc_batch_assign_offsets(bufB, total, 0, 0, -1, &next), KC_ERR_BAD_MAGIC);
    CHECK(memcmp(bufB, bufA, s1) == 0);
    CHECK_EQ_INT(kc_batch_assign_offsets(bufA, total - 1, 0, 0, -1, &next), KC_ERR_TRUNCATED);
}

/* Hand-made records section with one record of the given body. */
static size_t one_record(uint8_t *out, const uint8_t *body, size_t blen, int64_t declared) {
    size_t n = kc_varint_put_i64(out, declared);
    memcpy(out + n, body, blen);
    return n + blen;
}

/* kc_record_next's result on a records section of one record, body as given. */
static int next_rc(const uint8_t *body, size_t blen, int64_t declared) {
    uint8_t rec[64];
    kc_record_t r;
    size_t pos = 0, n = one_record(rec, body, blen, declared);
    return kc_record_next(rec, n, &pos, &r);
}

static void test_record_errors(void) {
    uint8_t rec[64], body[32];
    kc_record_t r;
    size_t pos, n;
    /* attrs 0, tsDelta 0, offDelta 0, key -1, value 1 byte 'x', 0 headers */
    const uint8_t good[] = {0, 0, 0, 1, 2, 'x', 0};
    n = one_record(rec, good, sizeof good, sizeof good);
    pos = 0;
    CHECK_EQ_INT(kc_record_next(rec, n, &pos, &r), KC_OK);
    CHECK_EQ_INT(pos, n);
    CHECK(r.key == NULL && r.value_len == 1 && r.value[0] == 'x');
    /* declared length longer than the fields: trailing byte */
    memcpy(body, good, sizeof good);
    body[sizeof good] = 0;
    n = one_record(rec, body, sizeof good + 1, sizeof good + 1);
    pos = 0;
    CHECK_EQ_INT(kc_record_next(rec, n, &pos, &r), KC_ERR_BAD_RECORD);
    /* declared length shorter: the header count runs past the record */
    CHECK_EQ_INT(next_rc(good, sizeof good, sizeof good - 1), KC_ERR_VARINT_UNDERFLOW);
    /* declared length past the buffer */
    CHECK_EQ_INT(next_rc(good, sizeof good, 100), KC_ERR_TRUNCATED);
    /* negative length */
    CHECK_EQ_INT(next_rc(good, sizeof good, -3), KC_ERR_BAD_RECORD);
    /* overlong varint in the timestamp */
    const uint8_t over[] = {0, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01, 0, 1, 1, 0};
    CHECK_EQ_INT(next_rc(over, sizeof over, sizeof over), KC_ERR_VARINT_OVERFLOW);
    /* key length -2, key length past the record, header count -1, header key null */
    const uint8_t badkey[] = {0, 0, 0, 3, 2, 'x', 0};
    CHECK_EQ_INT(next_rc(badkey, sizeof badkey, sizeof badkey), KC_ERR_BAD_RECORD);
    const uint8_t longkey[] = {0, 0, 0, 40, 2, 'x', 0};
    CHECK_EQ_INT(next_rc(longkey, sizeof longkey, sizeof longkey), KC_ERR_BAD_RECORD);
    const uint8_t badhc[] = {0, 0, 0, 1, 2, 'x', 1};
    CHECK_EQ_INT(next_rc(badhc, sizeof badhc, sizeof badhc), KC_ERR_BAD_RECORD);
    const uint8_t nullhk[] = {0, 0, 0, 1, 2, 'x', 2, 1, 1};
    CHECK_EQ_INT(next_rc(nullhk, sizeof nullhk, sizeof nullhk), KC_ERR_BAD_RECORD);
    /* empty record body */
    CHECK_EQ_INT(next_rc(good, 0, 0), KC_ERR_BAD_RECORD);
}

/* Every truncation of a valid batch is TRUNCATED; every single-byte change in
 * the CRC-covered region is caught; random bytes never crash. */
static void test_truncate_and_corrupt(void) {
    size_t size = build(bufA, sizeof bufA, 6, 12345);
    kc_batch_info_t bi;
    size_t n, valid;
    for (size_t len = 0; len < size; len++) {
        uint8_t *heap = malloc(len ? len : 1);
        memcpy(heap, bufA, len);   /* exact-size heap copy: ASan sees any read past len */
        CHECK_EQ_INT(kc_batch_validate(heap, len, 0, &bi), KC_ERR_TRUNCATED);
        CHECK_EQ_INT(kc_batch_scan(heap, len, KC_SCAN_VERIFY_CRC | KC_SCAN_ALLOW_PARTIAL, 0, &bi, 1,
                                   &n, &valid), KC_OK);
        CHECK_EQ_INT(valid, 0);
        size_t pos = KC_BATCH_HEADER_SIZE;
        kc_record_t r;
        int rc = KC_OK;
        while (len > KC_BATCH_HEADER_SIZE && pos < len && rc == KC_OK) rc = kc_record_next(heap, len, &pos, &r);
        free(heap);
    }
    for (size_t i = KC_BATCH_CRC_START; i < size; i++) {
        for (int bit = 0; bit < 8; bit++) {
            memcpy(bufB, bufA, size);
            bufB[i] ^= (uint8_t)(1u << bit);
            int rc = kc_batch_validate(bufB, size, 0, &bi);
            CHECK(rc != KC_OK);
        }
    }
}

/* Append one record (attrs 0, tsDelta 0, given offset delta, key of klen
 * bytes or null when klen < 0, 1-byte value, no headers) at p; returns bytes. */
static size_t put_rec(uint8_t *p, int32_t delta, int klen) {
    uint8_t body[64];
    size_t n = 0;
    body[n++] = 0;
    n += kc_varint_put_i64(body + n, 0);
    n += kc_varint_put_i64(body + n, delta);
    n += kc_varint_put_i64(body + n, klen < 0 ? -1 : klen);
    for (int i = 0; i < klen; i++) body[n++] = 'k';
    n += kc_varint_put_i64(body + n, 1);
    body[n++] = 'v';
    n += kc_varint_put_i64(body + n, 0);
    size_t h = kc_varint_put_i64(p, (int64_t)n);
    memcpy(p + h, body, n);
    return h + n;
}

/* A records section with the given deltas and key lengths. */
static size_t put_recs(uint8_t *p, const int32_t *deltas, const int *klens, int n) {
    size_t len = 0;
    for (int i = 0; i < n; i++) len += put_rec(p + len, deltas[i], klens[i]);
    return len;
}

static void test_records_check(void) {
    uint8_t sec[512];
    kc_records_check_t st;
    const int32_t d_ok[] = {0, 1, 2, 3};
    const int keys[] = {1, 2, 0, 3};   /* an empty key is a key, not null */
    size_t len = put_recs(sec, d_ok, keys, 4);
    CHECK_EQ_INT(kc_records_check(sec, len, 4, 3, KC_RECORDS_REQUIRE_KEYS, &st), KC_OK);
    CHECK_EQ_INT(st.records, 4);
    CHECK_EQ_INT(st.position, len);
    CHECK_EQ_INT(st.offset_delta, 3);
    CHECK_EQ_INT(kc_records_check(sec, len, 4, 3, 0, NULL), KC_OK);
    /* empty section, count 0; NULL buffer only when empty; negative count */
    CHECK_EQ_INT(kc_records_check(NULL, 0, 0, -1, KC_RECORDS_REQUIRE_KEYS, &st), KC_OK);
    CHECK_EQ_INT(st.records, 0);
    CHECK_EQ_INT(kc_records_check(NULL, 5, 0, -1, 0, &st), KC_ERR_ARG);
    CHECK_EQ_INT(kc_records_check(sec, len, -1, 3, 0, &st), KC_ERR_ARG);
    /* count mismatch both ways */
    CHECK_EQ_INT(kc_records_check(sec, len, 5, 4, 0, &st), KC_ERR_BAD_COUNT);
    CHECK_EQ_INT(st.records, 4);
    CHECK_EQ_INT(st.position, len);
    CHECK_EQ_INT(kc_records_check(sec, len, 3, 3, 0, &st), KC_ERR_BAD_COUNT);
    CHECK_EQ_INT(st.records, 3);
    CHECK(st.position < len);
    CHECK_EQ_INT(kc_records_check(sec, len, 0, -1, 0, &st), KC_ERR_BAD_COUNT);
    /* compacted shape: fewer records than lastOffsetDelta + 1, gaps allowed */
    const int32_t d_gap[] = {1, 5, 9};
    const int k3[] = {1, 1, 1};
    len = put_recs(sec, d_gap, k3, 3);
    CHECK_EQ_INT(kc_records_check(sec, len, 3, 9, 0, &st), KC_OK);
    CHECK_EQ_INT(kc_records_check(sec, len, 3, 8, 0, &st), KC_ERR_BAD_RECORD);   /* 9 > lastOffsetDelta */
    CHECK_EQ_INT(st.records, 2);
    CHECK_EQ_INT(st.offset_delta, 5);
    /* duplicate, decreasing, negative deltas: the index of the offender */
    const int32_t d_dup[] = {0, 1, 1};
    len = put_recs(sec, d_dup, k3, 3);
    CHECK_EQ_INT(kc_records_check(sec, len, 3, 2, 0, &st), KC_ERR_BAD_RECORD);
    CHECK_EQ_INT(st.records, 2);
    const int32_t d_dec[] = {1, 0, 2};
    len = put_recs(sec, d_dec, k3, 3);
    CHECK_EQ_INT(kc_records_check(sec, len, 3, 2, 0, &st), KC_ERR_BAD_RECORD);
    CHECK_EQ_INT(st.records, 1);
    const int32_t d_neg[] = {-1, 0, 1};
    len = put_recs(sec, d_neg, k3, 3);
    CHECK_EQ_INT(kc_records_check(sec, len, 3, 2, 0, &st), KC_ERR_BAD_RECORD);
    CHECK_EQ_INT(st.records, 0);
    CHECK_EQ_INT(st.position, 0);
    /* null key: only an error with the flag; first and last positions */
    const int32_t d3[] = {0, 1, 2};
    const int knull_last[] = {1, 1, -1};
    len = put_recs(sec, d3, knull_last, 3);
    CHECK_EQ_INT(kc_records_check(sec, len, 3, 2, 0, &st), KC_OK);
    CHECK_EQ_INT(kc_records_check(sec, len, 3, 2, KC_RECORDS_REQUIRE_KEYS, &st), KC_ERR_MISSING_KEY);
    CHECK_EQ_INT(st.records, 2);
    CHECK_EQ_INT(st.offset_delta, 1);
    const int knull_first[] = {-1, 1, 1};
    len = put_recs(sec, d3, knull_first, 3);
    CHECK_EQ_INT(kc_records_check(sec, len, 3, 2, KC_RECORDS_REQUIRE_KEYS, &st), KC_ERR_MISSING_KEY);
    CHECK_EQ_INT(st.records, 0);
    /* a decode error inside: record 1's length past the section */
    len = put_recs(sec, d3, k3, 3);
    size_t r0 = put_rec(sec + 200, 0, 1);   /* size of one record */
    sec[r0] = 0x7e;                          /* record 1 length 63: past the end */
    CHECK_EQ_INT(kc_records_check(sec, len, 3, 2, 0, &st), KC_ERR_TRUNCATED);
    CHECK_EQ_INT(st.records, 1);
    CHECK_EQ_INT(st.position, r0);
    sec[r0] = 0x01;                          /* length -1 */
    CHECK_EQ_INT(kc_records_check(sec, len, 3, 2, 0, &st), KC_ERR_BAD_RECORD);
    sec[r0] = 0xFF;                          /* a length varint running off the end of the buffer */
    CHECK_EQ_INT(kc_records_check(sec, r0 + 1, 3, 2, 0, &st), KC_ERR_VARINT_UNDERFLOW);
    /* Every truncation of a valid section fails (never OK, never reads past
     * len: exact-size heap copies under ASan); the error is a count or
     * decode error. */
    len = put_recs(sec, d_ok, keys, 4);
    for (size_t cut = 0; cut < len; cut++) {
        uint8_t *heap = malloc(cut ? cut : 1);
        memcpy(heap, sec, cut);
        int rc = kc_records_check(heap, cut, 4, 3, KC_RECORDS_REQUIRE_KEYS, &st);
        CHECK(rc == KC_ERR_BAD_COUNT || rc == KC_ERR_TRUNCATED || rc == KC_ERR_VARINT_UNDERFLOW ||
              rc == KC_ERR_BAD_RECORD);
        CHECK(st.position <= cut);
        free(heap);
    }
    /* Every byte flipped: any result, no crash; an OK still accounts for every byte. */
    for (size_t i = 0; i < len; i++) {
        for (int bit = 0; bit < 8; bit++) {
            uint8_t *heap = malloc(len);
            memcpy(heap, sec, len);
            heap[i] ^= (uint8_t)(1u << bit);
            if (kc_records_check(heap, len, 4, 3, 0, &st) == KC_OK) CHECK_EQ_INT(st.position, len);
            free(heap);
        }
    }
}

static void test_batch_check_records(void) {
    kc_records_check_t st;
    size_t size = build(bufA, sizeof bufA, 5, 1000);   /* record 1 has a null key */
    CHECK_EQ_INT(kc_batch_check_records(bufA, size, KC_SCAN_VERIFY_CRC, 0, &st), KC_OK);
    CHECK_EQ_INT(st.records, 5);
    CHECK_EQ_INT(st.position, size);
    CHECK_EQ_INT(kc_batch_check_records(bufA, size, KC_SCAN_VERIFY_CRC, KC_RECORDS_REQUIRE_KEYS, &st),
                 KC_ERR_MISSING_KEY);
    CHECK_EQ_INT(st.records, 1);
    CHECK(st.position > KC_BATCH_HEADER_SIZE && st.position < size);
    /* not exactly one batch, header errors, CRC only with the flag */
    CHECK_EQ_INT(kc_batch_check_records(bufA, size + 1, 0, 0, &st), KC_ERR_ARG);
    CHECK_EQ_INT(kc_batch_check_records(bufA, size - 1, 0, 0, &st), KC_ERR_TRUNCATED);
    CHECK_EQ_INT(kc_batch_check_records(NULL, 0, 0, 0, &st), KC_ERR_TRUNCATED);
    memcpy(bufB, bufA, size);
    bufB[size - 1] ^= 1;   /* last value byte: CRC-covered, still decodes */
    CHECK_EQ_INT(kc_batch_check_records(bufB, size, KC_SCAN_VERIFY_CRC, 0, &st), KC_ERR_CORRUPT_CRC);
    CHECK_EQ_INT(kc_batch_check_records(bufB, size, 0, 0, &st), KC_OK);
    memcpy(bufB, bufA, size);
    bufB[16] = 1;
    CHECK_EQ_INT(kc_batch_check_records(bufB, size, 0, 0, &st), KC_ERR_LEGACY_MAGIC);
    /* recordCount 6 with lastOffsetDelta 5: header fine, one record short */
    memcpy(bufB, bufA, size);
    kc_put_be32(bufB + 57, 6);
    kc_put_be32(bufB + 23, 5);
    CHECK_EQ_INT(kc_batch_check_records(bufB, size, 0, 0, &st), KC_ERR_BAD_COUNT);
    CHECK_EQ_INT(st.records, 5);
    /* compacted header (count 4 of 5 offsets) only with ALLOW_COMPACTED; then
     * bytes remain after 4 records */
    kc_put_be32(bufB + 57, 4);
    kc_put_be32(bufB + 23, 4);
    CHECK_EQ_INT(kc_batch_check_records(bufB, size, 0, 0, &st), KC_ERR_BAD_COUNT);
    CHECK_EQ_INT(kc_batch_check_records(bufB, size, KC_SCAN_ALLOW_COMPACTED, 0, &st), KC_ERR_BAD_COUNT);
    CHECK_EQ_INT(st.records, 4);
    /* compressed: the records must be decompressed first */
    memcpy(bufB, bufA, size);
    kc_put_be16(bufB + 21, KC_CODEC_GZIP);
    CHECK_EQ_INT(kc_batch_check_records(bufB, size, 0, 0, &st), KC_ERR_UNSUPPORTED);
}

static void test_batch_rewrite(void) {
    kc_batch_info_t a, b;
    size_t size = build(bufA, sizeof bufA, 4, 5000);
    CHECK_EQ_INT(kc_batch_validate(bufA, size, 0, &a), KC_OK);
    const uint8_t fake[] = "not really gzip, but the header does not care";
    size_t n = kc_batch_rewrite(bufB, sizeof bufB, bufA, KC_CODEC_GZIP, fake, sizeof fake);
    CHECK_EQ_INT(n, KC_BATCH_HEADER_SIZE + sizeof fake);
    CHECK_EQ_INT(kc_batch_validate(bufB, n, 0, &b), KC_OK);
    CHECK_EQ_INT(b.attributes, (a.attributes & ~KC_ATTR_CODEC_MASK) | KC_CODEC_GZIP);
    CHECK_EQ_INT(b.batch_length, (int64_t)n - 12);
    CHECK(b.base_timestamp == a.base_timestamp && b.max_timestamp == a.max_timestamp &&
          b.producer_id == a.producer_id && b.base_sequence == a.base_sequence &&
          b.record_count == a.record_count && b.last_offset_delta == a.last_offset_delta);
    CHECK(memcmp(bufB + KC_BATCH_HEADER_SIZE, fake, sizeof fake) == 0);
    /* back to uncompressed, in place: records already at out + 61 */
    memcpy(bufB + KC_BATCH_HEADER_SIZE, bufA + KC_BATCH_HEADER_SIZE, size - KC_BATCH_HEADER_SIZE);
    n = kc_batch_rewrite(bufB, sizeof bufB, bufB, KC_CODEC_NONE, bufB + KC_BATCH_HEADER_SIZE,
                         size - KC_BATCH_HEADER_SIZE);
    CHECK_EQ_INT(n, size);
    CHECK(memcmp(bufA, bufB, size) == 0);   /* byte-identical to the original */
    /* errors: no room, bad codec, NULL */
    CHECK_EQ_INT(kc_batch_rewrite(bufB, KC_BATCH_HEADER_SIZE + 3, bufA, 1, fake, 4), 0);
    CHECK_EQ_INT(kc_batch_rewrite(bufB, KC_BATCH_HEADER_SIZE - 1, bufA, 1, fake, 0), 0);
    CHECK_EQ_INT(kc_batch_rewrite(bufB, sizeof bufB, bufA, 5, fake, 4), 0);
    CHECK_EQ_INT(kc_batch_rewrite(bufB, sizeof bufB, bufA, -1, fake, 4), 0);
    CHECK_EQ_INT(kc_batch_rewrite(bufB, sizeof bufB, bufA, 1, NULL, 4), 0);
    CHECK_EQ_INT(kc_batch_rewrite(NULL, sizeof bufB, bufA, 1, fake, 4), 0);
    CHECK_EQ_INT(kc_batch_rewrite(bufB, sizeof bufB, NULL, 1, fake, 4), 0);
    /* exact fit */
    CHECK_EQ_INT(kc_batch_rewrite(bufB, KC_BATCH_HEADER_SIZE + 4, bufA, 1, fake, 4), KC_BATCH_HEADER_SIZE + 4);
}

int main(void) {
    RUN(test_varints);
    RUN(test_builder_roundtrip);
    RUN(test_parse_errors);
    RUN(test_scan);
    RUN(test_assign_and_summary);
    RUN(test_record_errors);
    RUN(test_truncate_and_corrupt);
    RUN(test_records_check);
    RUN(test_batch_check_records);
    RUN(test_batch_rewrite);
    TEST_MAIN_END();
}
