/* kc_client.c - see kc_client.h. */
#include "kc_client.h"

#include <string.h>

#include "kc_common.h"

static size_t uvarint_len(uint64_t v) {
    size_t n = 1;
    while (v >= 0x80) { v >>= 7; n++; }
    return n;
}

static uint8_t *put_uvarint(uint8_t *p, uint64_t v) {
    while (v >= 0x80) { *p++ = (uint8_t)(v | 0x80); v >>= 7; }
    *p++ = (uint8_t)v;
    return p;
}

/* A string (or bytes) field: int16 (int32 for bytes) length or uvarint(len + 1). */
static size_t str_len(int flex, int64_t len, int wide) {
    size_t body = len > 0 ? (size_t)len : 0;
    if (flex) return uvarint_len(len < 0 ? 0 : (uint64_t)len + 1) + body;
    return (wide ? 4u : 2u) + body;
}

static uint8_t *put_str(uint8_t *p, int flex, const uint8_t *s, int64_t len, int wide) {
    if (flex) {
        p = put_uvarint(p, len < 0 ? 0 : (uint64_t)len + 1);
    } else if (wide) {
        kc_put_be32(p, (uint32_t)(int32_t)(len < 0 ? -1 : len));
        p += 4;
    } else {
        kc_put_be16(p, (uint16_t)(int16_t)(len < 0 ? -1 : len));
        p += 2;
    }
    if (len > 0) {
        memcpy(p, s, (size_t)len);
        p += len;
    }
    return p;
}

size_t kc_client_produce_frame_size(const kc_client_produce_req *r) {
    int v = r->kcpr_ApiVersion;
    if (v < KC_CLIENT_PRODUCE_MIN_VERSION || v > KC_CLIENT_PRODUCE_MAX_VERSION) return 0;
    if (r->kcpr_ClientId_len > INT16_MAX || r->kcpr_TransactionalId_len > INT16_MAX ||
        r->kcpr_Name_len > INT16_MAX || r->kcpr_Name_len < 0 || r->kcpr_Records_len > INT32_MAX - 1)
        return 0;
    int flex = v >= KC_CLIENT_PRODUCE_FLEX_MIN;
    size_t n = 4 + 2 + 2 + 4 + str_len(0, r->kcpr_ClientId_len, 0) + (flex ? 1u : 0u);
    n += str_len(flex, r->kcpr_TransactionalId_len, 0) + 2 + 4;
    n += flex ? 1u : 4u;                                   /* TopicData: one */
    n += str_len(flex, r->kcpr_Name_len, 0);
    n += flex ? 1u : 4u;                                   /* PartitionData: one */
    n += 4 + str_len(flex, r->kcpr_Records_len, 1);
    n += flex ? 3u : 0u;                                   /* partition, topic, body tags */
    if (n - 4 > INT32_MAX) return 0;
    return n;
}

size_t kc_client_produce_frame_write(const kc_client_produce_req *r, uint8_t *out) {
    size_t total = kc_client_produce_frame_size(r);
    if (total == 0) return 0;
    int flex = r->kcpr_ApiVersion >= KC_CLIENT_PRODUCE_FLEX_MIN;
    uint8_t *p = out;
    kc_put_be32(p, (uint32_t)(total - 4));
    kc_put_be16(p + 4, 0);                                 /* ApiKey: Produce */
    kc_put_be16(p + 6, (uint16_t)r->kcpr_ApiVersion);
    kc_put_be32(p + 8, (uint32_t)r->kcpr_CorrelationId);
    p += 12;
    p = put_str(p, 0, r->kcpr_ClientId, r->kcpr_ClientId_len, 0);   /* header ClientId: never compact */
    if (flex) *p++ = 0;
    p = put_str(p, flex, r->kcpr_TransactionalId, r->kcpr_TransactionalId_len, 0);
    kc_put_be16(p, (uint16_t)r->kcpr_Acks);
    kc_put_be32(p + 2, (uint32_t)r->kcpr_TimeoutMs);
    p += 6;
    if (flex) { *p++ = 2; } else { kc_put_be32(p, 1); p += 4; }
    p = put_str(p, flex, r->kcpr_Name, r->kcpr_Name_len, 0);
    if (flex) { *p++ = 2; } else { kc_put_be32(p, 1); p += 4; }
    kc_put_be32(p, (uint32_t)r->kcpr_Index);
    p += 4;
    p = put_str(p, flex, r->kcpr_Records, r->kcpr_Records_len, 1);
    if (flex) { *p++ = 0; *p++ = 0; *p++ = 0; }
    return (size_t)(p - out);
}

/* A bounds-checked cursor: any short read sets bad, and the parse falls back. */
typedef struct { const uint8_t *b; size_t len, pos; int bad; } cur;

static const uint8_t *take(cur *c, size_t n) {
    if (c->bad || c->len - c->pos < n) { c->bad = 1; return NULL; }
    const uint8_t *p = c->b + c->pos;
    c->pos += n;
    return p;
}
static int32_t rd32(cur *c) { const uint8_t *p = take(c, 4); return p ? (int32_t)kc_be32(p) : 0; }
static int16_t rd16(cur *c) { const uint8_t *p = take(c, 2); return p ? (int16_t)kc_be16(p) : 0; }
static int64_t rd64(cur *c) { const uint8_t *p = take(c, 8); return p ? (int64_t)kc_be64(p) : 0; }

static uint64_t rduv(cur *c) {
    uint64_t v = 0;
    for (int shift = 0; shift < 35; shift += 7) {
        const uint8_t *p = take(c, 1);
        if (!p) return 0;
        v |= (uint64_t)(*p & 0x7F) << shift;
        if (!(*p & 0x80)) return v;
    }
    c->bad = 1;
    return 0;
}

/* Array count or string length: -1 for null. */
static int64_t rdlen(cur *c, int flex, int wide) {
    if (flex) return (int64_t)rduv(c) - 1;
    return wide ? rd32(c) : rd16(c);
}

/* Tagged fields must be absent (a zero count): anything tagged is the generated codec's. */
static void no_tags(cur *c) {
    const uint8_t *p = take(c, 1);
    if (p && *p != 0) c->bad = 1;
}

int kc_client_produce_resp_parse(const uint8_t *buf, size_t len, int version, const uint8_t *name,
                                 size_t name_len, int32_t index, kc_client_produce_resp *out) {
    if (version < KC_CLIENT_PRODUCE_MIN_VERSION || version > KC_CLIENT_PRODUCE_MAX_VERSION)
        return KC_CLIENT_FALLBACK;
    int flex = version >= KC_CLIENT_PRODUCE_FLEX_MIN;
    cur c = {buf, len, 0, 0};
    out->kcps_CorrelationId = rd32(&c);
    if (flex) no_tags(&c);
    if (rdlen(&c, flex, 1) != 1) return KC_CLIENT_FALLBACK;           /* one topic */
    if (rdlen(&c, flex, 0) != (int64_t)name_len) return KC_CLIENT_FALLBACK;
    const uint8_t *n = take(&c, name_len);
    if (!n || (name_len && memcmp(n, name, name_len) != 0)) return KC_CLIENT_FALLBACK;
    if (rdlen(&c, flex, 1) != 1) return KC_CLIENT_FALLBACK;           /* one partition */
    if (rd32(&c) != index) return KC_CLIENT_FALLBACK;
    out->kcps_ErrorCode = rd16(&c);
    out->kcps_BaseOffset = rd64(&c);
    out->kcps_LogAppendTimeMs = rd64(&c);
    out->kcps_LogStartOffset = version >= 5 ? rd64(&c) : -1;
    out->kcps_ErrorMessage_len = -1;
    out->kcps_ErrorMessage_off = 0;
    if (version >= 8) {
        if (rdlen(&c, flex, 1) != 0) return KC_CLIENT_FALLBACK;       /* record errors: none */
        int64_t mlen = rdlen(&c, flex, 0);
        if (mlen < -1) return KC_CLIENT_FALLBACK;
        if (mlen >= 0) {
            out->kcps_ErrorMessage_off = c.pos;
            out->kcps_ErrorMessage_len = (int32_t)mlen;
            if (!take(&c, (size_t)mlen)) return KC_CLIENT_FALLBACK;
        }
    }
    if (flex) { no_tags(&c); no_tags(&c); }                            /* partition, topic */
    out->kcps_ThrottleTimeMs = rd32(&c);
    if (flex) no_tags(&c);
    if (c.bad || c.pos != len) return KC_CLIENT_FALLBACK;
    return KC_OK;
}
