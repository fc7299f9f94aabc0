/* test_client.c - the one-partition Produce fast path: frame layout at a
 * non-flexible and a flexible version, and a response parse that takes the
 * common shape and falls back on everything else (every truncation, tags,
 * two partitions, another topic), under ASan/UBSan.  The byte-for-byte check
 * against the generated codecs is tests/unit/test_client_fastpath.py. */
#include <stdint.h>
#include <string.h>

#include "../kc_client.h"
#include "../kc_common.h"
#include "kc_test.h"

static kc_client_produce_req req(int16_t version) {
    static const uint8_t recs[3] = {7, 8, 9};
    kc_client_produce_req r = {version, 42, (const uint8_t *)"cid", 3, NULL, -1, -1, 30000,
                               (const uint8_t *)"t", 1, 5, recs, 3};
    return r;
}

static void test_frame_v3(void) {
    kc_client_produce_req r = req(3);
    uint8_t out[128];
    size_t n = kc_client_produce_frame_size(&r);
    CHECK_EQ_INT(kc_client_produce_frame_write(&r, out), n);
    static const uint8_t want[] = {0, 0, 0, 43, 0, 0, 0, 3, 0, 0, 0, 42, 0, 3, 'c', 'i', 'd',
                                   0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0x75, 0x30, 0, 0, 0, 1, 0, 1, 't',
                                   0, 0, 0, 1, 0, 0, 0, 5, 0, 0, 0, 3, 7, 8, 9};
    CHECK_EQ_INT(n, sizeof want);
    CHECK(memcmp(out, want, sizeof want) == 0);
}

static void test_frame_v9(void) {
    kc_client_produce_req r = req(9);
    r.kcpr_TransactionalId = (const uint8_t *)"tx";
    r.kcpr_TransactionalId_len = 2;
    uint8_t out[128];
    size_t n = kc_client_produce_frame_size(&r);
    CHECK_EQ_INT(kc_client_produce_frame_write(&r, out), n);
    static const uint8_t want[] = {0, 0, 0, 38, 0, 0, 0, 9, 0, 0, 0, 42, 0, 3, 'c', 'i', 'd', 0,
                                   3, 't', 'x', 0xFF, 0xFF, 0, 0, 0x75, 0x30, 2, 2, 't',
                                   2, 0, 0, 0, 5, 4, 7, 8, 9, 0, 0, 0};
    CHECK_EQ_INT(n, sizeof want);
    CHECK(memcmp(out, want, sizeof want) == 0);
    r.kcpr_ApiVersion = 13;
    CHECK_EQ_INT(kc_client_produce_frame_size(&r), 0);
    r.kcpr_ApiVersion = 2;
    CHECK_EQ_INT(kc_client_produce_frame_size(&r), 0);
}

/* v9 response: cid 42, topic "t", partition 5, error 0, base 100, lat -1, lso 0, msg null. */
static const uint8_t resp9[] = {0, 0, 0, 42, 0, 2, 2, 't', 2, 0, 0, 0, 5, 0, 0,
                                0, 0, 0, 0, 0, 0, 0, 100, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
                                0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0};

static void test_parse(void) {
    kc_client_produce_resp o;
    CHECK_EQ_INT(kc_client_produce_resp_parse(resp9, sizeof resp9, 9, (const uint8_t *)"t", 1, 5, &o), KC_OK);
    CHECK_EQ_INT(o.kcps_CorrelationId, 42);
    CHECK_EQ_INT(o.kcps_ErrorCode, 0);
    CHECK_EQ_INT(o.kcps_BaseOffset, 100);
    CHECK_EQ_INT(o.kcps_LogAppendTimeMs, -1);
    CHECK_EQ_INT(o.kcps_LogStartOffset, 0);
    CHECK_EQ_INT(o.kcps_ErrorMessage_len, -1);
    CHECK_EQ_INT(o.kcps_ThrottleTimeMs, 0);
    for (size_t n = 0; n < sizeof resp9; n++) {   /* every truncation: a fallback, no overread */
        uint8_t *copy = malloc(n ? n : 1);
        memcpy(copy, resp9, n);
        CHECK_EQ_INT(kc_client_produce_resp_parse(copy, n, 9, (const uint8_t *)"t", 1, 5, &o), KC_CLIENT_FALLBACK);
        free(copy);
    }
    CHECK_EQ_INT(kc_client_produce_resp_parse(resp9, sizeof resp9, 9, (const uint8_t *)"u", 1, 5, &o),
                 KC_CLIENT_FALLBACK);
    CHECK_EQ_INT(kc_client_produce_resp_parse(resp9, sizeof resp9, 9, (const uint8_t *)"t", 1, 4, &o),
                 KC_CLIENT_FALLBACK);
    uint8_t m[sizeof resp9];
    memcpy(m, resp9, sizeof m);
    m[4] = 1;                                      /* header tags present */
    CHECK_EQ_INT(kc_client_produce_resp_parse(m, sizeof m, 9, (const uint8_t *)"t", 1, 5, &o), KC_CLIENT_FALLBACK);
    memcpy(m, resp9, sizeof m);
    m[8] = 3;                                      /* two partitions */
    CHECK_EQ_INT(kc_client_produce_resp_parse(m, sizeof m, 9, (const uint8_t *)"t", 1, 5, &o), KC_CLIENT_FALLBACK);
    memcpy(m, resp9, sizeof m);
    m[39] = 2;                                     /* a record error */
    CHECK_EQ_INT(kc_client_produce_resp_parse(m, sizeof m, 9, (const uint8_t *)"t", 1, 5, &o), KC_CLIENT_FALLBACK);
    CHECK_EQ_INT(kc_client_produce_resp_parse(resp9, sizeof resp9, 13, (const uint8_t *)"t", 1, 5, &o),
                 KC_CLIENT_FALLBACK);
}

int main(void) {
    RUN(test_frame_v3);
    RUN(test_frame_v9);
    RUN(test_parse);
    TEST_MAIN_END();
}
