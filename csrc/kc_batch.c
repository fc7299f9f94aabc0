/* kc_batch.c - RecordBatch v2: header parse/validate, scan, in-place
 * offset assignment, varints, record decode and the batch builder.
 *
 * Every read is checked against the bytes remaining first: the input is
 * whatever a client or a disk handed us.  Lengths read from the wire are
 * signed 32-bit values and are compared as such before any arithmetic, so
 * absurd or negative values become a distinct error code, never a wild
 * read or a huge allocation (there are no allocations here at all).
 *
 * The builder follows librdkafka's msgset writer: records are appended
 * after a 61-byte placeholder header, which kc_builder_finish fills in
 * (lengths, counts, timestamps) before computing the CRC.
 */
#include "kc_batch.h"

#include <string.h>

#include "kc_common.h"
#include "kc_crc32c.h"

/* Smallest possible encoded record: length varint (1) + attributes (1) +
 * timestampDelta, offsetDelta, keyLength, valueLength, headerCount (1 each).
 * Bounds the record count of an uncompressed batch by its size. */
#define MIN_RECORD_SIZE 7

/* ---- header ---- */

static int batch_parse(const uint8_t *buf, size_t len, size_t max_batch_size, uint32_t flags,
                       kc_batch_info_t *out) {
    kc_batch_info_t bi;
    /* baseOffset, batchLength, partitionLeaderEpoch, magic: enough to tell the
     * format (legacy message sets have a different layout after byte 16). */
    if (buf == NULL || len < 17) return KC_ERR_TRUNCATED;
    bi.base_offset = (int64_t)kc_be64(buf);
    bi.batch_length = (int32_t)kc_be32(buf + KC_BATCH_OF_LENGTH);
    bi.partition_leader_epoch = (int32_t)kc_be32(buf + KC_BATCH_OF_LEADER_EPOCH);
    bi.magic = (int8_t)buf[KC_BATCH_OF_MAGIC];
    if (bi.magic == 0 || bi.magic == 1) return KC_ERR_LEGACY_MAGIC;
    if (bi.magic != 2) return KC_ERR_BAD_MAGIC;
    if (bi.batch_length < KC_BATCH_MIN_LENGTH) return KC_ERR_BAD_LENGTH;
    bi.size = (size_t)bi.batch_length + KC_BATCH_LOG_OVERHEAD;
    if (max_batch_size && bi.size > max_batch_size) return KC_ERR_BAD_LENGTH;
    if (bi.size > len) return KC_ERR_TRUNCATED;
    bi.crc = kc_be32(buf + KC_BATCH_OF_CRC);
    bi.attributes = (int16_t)kc_be16(buf + KC_BATCH_OF_ATTRIBUTES);
    bi.last_offset_delta = (int32_t)kc_be32(buf + KC_BATCH_OF_LAST_OFFSET_DELTA);
    bi.base_timestamp = (int64_t)kc_be64(buf + KC_BATCH_OF_BASE_TIMESTAMP);
    bi.max_timestamp = (int64_t)kc_be64(buf + KC_BATCH_OF_MAX_TIMESTAMP);
    bi.producer_id = (int64_t)kc_be64(buf + KC_BATCH_OF_PRODUCER_ID);
    bi.producer_epoch = (int16_t)kc_be16(buf + KC_BATCH_OF_PRODUCER_EPOCH);
    bi.base_sequence = (int32_t)kc_be32(buf + KC_BATCH_OF_BASE_SEQUENCE);
    bi.record_count = (int32_t)kc_be32(buf + KC_BATCH_OF_RECORD_COUNT);
    bi.position = 0;
    /* count == lastOffsetDelta + 1, computed in 64 bits: INT32_MAX + 1 must not wrap.
     * A compacted batch keeps its lastOffsetDelta (so its offsets stay
     * owned) but may hold fewer records, even none (Kafka's filterTo). */
    if (bi.record_count < 0)
        return KC_ERR_BAD_COUNT;
    if (flags & KC_SCAN_ALLOW_COMPACTED) {
        if (bi.last_offset_delta < 0 || (int64_t)bi.record_count > (int64_t)bi.last_offset_delta + 1)
            return KC_ERR_BAD_COUNT;
    } else if ((int64_t)bi.record_count != (int64_t)bi.last_offset_delta + 1) {
        return KC_ERR_BAD_COUNT;
    }
    /* Uncompressed: every record takes at least MIN_RECORD_SIZE bytes, so a
     * larger count is a lie that would make a reader loop or allocate. */
    if ((bi.attributes & KC_ATTR_CODEC_MASK) == KC_CODEC_NONE &&
        (uint64_t)bi.record_count * MIN_RECORD_SIZE > bi.size - KC_BATCH_HEADER_SIZE)
        return KC_ERR_BAD_COUNT;
    if (out) *out = bi;
    return KC_OK;
}

int kc_batch_parse(const uint8_t *buf, size_t len, size_t max_batch_size, kc_batch_info_t *out) {
    return batch_parse(buf, len, max_batch_size, 0, out);
}

int kc_batch_check(const uint8_t *buf, size_t len, size_t max_batch_size, uint32_t flags,
                   kc_batch_info_t *out) {
    kc_batch_info_t bi;
    int rc = batch_parse(buf, len, max_batch_size, flags, &bi);
    if (rc != KC_OK) return rc;
    if ((flags & KC_SCAN_VERIFY_CRC) &&
        kc_crc32c(0, buf + KC_BATCH_CRC_START, bi.size - KC_BATCH_CRC_START) != bi.crc)
        return KC_ERR_CORRUPT_CRC;
    if (out) *out = bi;
    return KC_OK;
}

int kc_batch_validate(const uint8_t *buf, size_t len, size_t max_batch_size, kc_batch_info_t *out) {
    return kc_batch_check(buf, len, max_batch_size, KC_SCAN_VERIFY_CRC, out);
}

int kc_batch_scan(const uint8_t *buf, size_t len, uint32_t flags, size_t max_batch_size,
                  kc_batch_info_t *infos, size_t cap, size_t *n_out, size_t *valid_len) {
    size_t pos = 0, n = 0;
    int rc = KC_OK;
    if (buf == NULL && len) return KC_ERR_ARG;
    while (pos < len) {
        kc_batch_info_t bi;
        rc = kc_batch_check(buf + pos, len - pos, max_batch_size, flags, &bi);
        if (rc == KC_ERR_TRUNCATED && (flags & KC_SCAN_ALLOW_PARTIAL)) {
            rc = KC_OK;   /* a fetch response may end mid-batch: stop at the last whole one */
            break;
        }
        if (rc != KC_OK) break;
        if ((flags & KC_SCAN_REJECT_CONTROL) && (bi.attributes & KC_ATTR_CONTROL)) {
            rc = KC_ERR_CONTROL_BATCH;
            break;
        }
        bi.position = pos;
        if (infos && n < cap) infos[n] = bi;
        n++;
        pos += bi.size;
    }
    if (n_out) *n_out = n;
    if (valid_len) *valid_len = pos;
    return rc;
}

void kc_batch_summarize(const kc_batch_info_t *infos, size_t n, kc_batch_summary_t *out) {
    kc_batch_summary_t s = {0, 0, 0, -1, -1, -1};
    for (size_t i = 0; i < n; i++) {
        const kc_batch_info_t *bi = &infos[i];
        int64_t next = s.offsets + (int64_t)bi->last_offset_delta + 1;
        if (i == 0) s.first_timestamp = bi->base_timestamp;
        /* Kafka (LogValidator, in-place v2 path): strictly greater, so the
         * first batch holding the maximum wins; its last offset is used. */
        if (bi->max_timestamp > s.max_timestamp) {
            s.max_timestamp = bi->max_timestamp;
            s.offset_delta_of_max_ts = (int32_t)(next - 1);
        }
        s.records += bi->record_count;
        s.offsets = next;
        s.batches++;
    }
    *out = s;
}

void kc_batch_update_crc(uint8_t *buf, size_t size) {
    if (size < KC_BATCH_HEADER_SIZE) return;
    kc_put_be32(buf + KC_BATCH_OF_CRC, kc_crc32c(0, buf + KC_BATCH_CRC_START, size - KC_BATCH_CRC_START));
}

int kc_batch_assign_offsets(uint8_t *buf, size_t len, int64_t base_offset, int32_t leader_epoch,
                            int64_t log_append_time, int64_t *next_offset) {
    size_t pos;
    if (buf == NULL && len) return KC_ERR_ARG;
    /* First pass: headers only, so an error leaves the buffer untouched. */
    for (pos = 0; pos < len;) {
        kc_batch_info_t bi;
        int rc = kc_batch_parse(buf + pos, len - pos, 0, &bi);
        if (rc != KC_OK) return rc;
        pos += bi.size;
    }
    kc_batch_stamp(buf, len, base_offset, leader_epoch, log_append_time, next_offset);
    return KC_OK;
}

void kc_batch_stamp(uint8_t *buf, size_t len, int64_t base_offset, int32_t leader_epoch,
                    int64_t log_append_time, int64_t *next_offset) {
    int64_t next = base_offset;
    for (size_t pos = 0; pos < len;) {
        uint8_t *b = buf + pos;
        size_t size = (size_t)(int32_t)kc_be32(b + KC_BATCH_OF_LENGTH) + KC_BATCH_LOG_OVERHEAD;
        int32_t last_offset_delta = (int32_t)kc_be32(b + KC_BATCH_OF_LAST_OFFSET_DELTA);
        kc_put_be64(b, (uint64_t)next);
        kc_put_be32(b + KC_BATCH_OF_LEADER_EPOCH, (uint32_t)leader_epoch);
        if (log_append_time >= 0) {
            uint16_t attrs = kc_be16(b + KC_BATCH_OF_ATTRIBUTES);
            if (!(attrs & KC_ATTR_LOG_APPEND_TIME) || (int64_t)kc_be64(b + KC_BATCH_OF_MAX_TIMESTAMP) != log_append_time) {
                kc_put_be16(b + KC_BATCH_OF_ATTRIBUTES, (uint16_t)(attrs | KC_ATTR_LOG_APPEND_TIME));
                kc_put_be64(b + KC_BATCH_OF_MAX_TIMESTAMP, (uint64_t)log_append_time);
                kc_batch_update_crc(b, size);
            }
        }
        next += (int64_t)last_offset_delta + 1;
        pos += size;
    }
    if (next_offset) *next_offset = next;
}

/* ---- varints ---- */

size_t kc_varint_put_u64(uint8_t *out, uint64_t v) {
    size_t n = 0;
    while (v >= 0x80) {
        out[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    out[n++] = (uint8_t)v;
    return n;
}

static inline uint64_t zigzag64(int64_t v) { return ((uint64_t)v << 1) ^ (uint64_t)(v >> 63); }

size_t kc_varint_put_i64(uint8_t *out, int64_t v) { return kc_varint_put_u64(out, zigzag64(v)); }

size_t kc_varint_size_i64(int64_t v) {
    uint64_t u = zigzag64(v);
    size_t n = 1;
    while (u >= 0x80) { u >>= 7; n++; }
    return n;
}

/* Reads at most max_bytes; the buffer ending first is underflow, a
 * continuation bit on the last allowed byte is overflow (as Kafka's
 * ByteUtils, which also ignores bits shifted past the top). */
static int varint_get(const uint8_t *buf, size_t len, size_t max_bytes, uint64_t *v) {
    uint64_t r = 0;
    for (size_t i = 0; i < max_bytes; i++) {
        if (i >= len) return KC_ERR_VARINT_UNDERFLOW;
        uint8_t b = buf[i];
        r |= (uint64_t)(b & 0x7f) << (7 * i);
        if (!(b & 0x80)) {
            *v = r;
            return (int)(i + 1);
        }
    }
    return KC_ERR_VARINT_OVERFLOW;
}

int kc_varint_get_u64(const uint8_t *buf, size_t len, uint64_t *v) { return varint_get(buf, len, 10, v); }

int kc_varint_get_i64(const uint8_t *buf, size_t len, int64_t *v) {
    uint64_t u;
    int n = varint_get(buf, len, 10, &u);
    if (n > 0) *v = (int64_t)(u >> 1) ^ -(int64_t)(u & 1);
    return n;
}

int kc_varint_get_i32(const uint8_t *buf, size_t len, int32_t *v) {
    uint64_t u;
    int n = varint_get(buf, len, 5, &u);
    if (n > 0) {
        uint32_t w = (uint32_t)u;
        *v = (int32_t)(w >> 1) ^ -(int32_t)(w & 1);
    }
    return n;
}

/* ---- records ---- */

/* Read a zigzag varint from [*p, end); advance *p. */
#define GET_I32(p, end, dst) do { int _n = kc_varint_get_i32((p), (size_t)((end) - (p)), (dst)); \
    if (_n < 0) { return _n; } (p) += _n; } while (0)
#define GET_I64(p, end, dst) do { int _n = kc_varint_get_i64((p), (size_t)((end) - (p)), (dst)); \
    if (_n < 0) { return _n; } (p) += _n; } while (0)

/* One header at [*pp, end): key length >= 0, value length >= -1. */
static int header_decode(const uint8_t **pp, const uint8_t *end, kc_header_t *hdr) {
    const uint8_t *p = *pp;
    int32_t klen, vlen;
    GET_I32(p, end, &klen);
    if (klen < 0 || (size_t)klen > (size_t)(end - p)) return KC_ERR_BAD_RECORD;
    hdr->key = p;
    hdr->key_len = klen;
    p += klen;
    GET_I32(p, end, &vlen);
    if (vlen < -1 || (vlen > 0 && (size_t)vlen > (size_t)(end - p))) return KC_ERR_BAD_RECORD;
    hdr->value = vlen < 0 ? NULL : p;
    hdr->value_len = vlen;
    if (vlen > 0) p += vlen;
    *pp = p;
    return KC_OK;
}

int kc_record_next(const uint8_t *buf, size_t len, size_t *pos, kc_record_t *rec) {
    int32_t length;
    int n;
    if (buf == NULL || *pos > len) return KC_ERR_ARG;
    n = kc_varint_get_i32(buf + *pos, len - *pos, &length);
    if (n < 0) return n;
    if (length < 0) return KC_ERR_BAD_RECORD;
    if ((size_t)length > len - *pos - (size_t)n) return KC_ERR_TRUNCATED;
    /* The body is decoded against its own declared end: a field running past
     * it is a varint underflow / bad record, never a read of the next record. */
    const uint8_t *p = buf + *pos + n, *end = p + length;
    int32_t klen, vlen, hcount;
    if (p >= end) return KC_ERR_BAD_RECORD;
    rec->attributes = (int8_t)*p++;
    GET_I64(p, end, &rec->timestamp_delta);
    GET_I32(p, end, &rec->offset_delta);
    GET_I32(p, end, &klen);
    if (klen < -1 || (klen > 0 && (size_t)klen > (size_t)(end - p))) return KC_ERR_BAD_RECORD;
    rec->key = klen < 0 ? NULL : p;
    rec->key_len = klen;
    if (klen > 0) p += klen;
    GET_I32(p, end, &vlen);
    if (vlen < -1 || (vlen > 0 && (size_t)vlen > (size_t)(end - p))) return KC_ERR_BAD_RECORD;
    rec->value = vlen < 0 ? NULL : p;
    rec->value_len = vlen;
    if (vlen > 0) p += vlen;
    GET_I32(p, end, &hcount);
    if (hcount < 0) return KC_ERR_BAD_RECORD;
    rec->header_count = hcount;
    rec->headers = p;
    for (int32_t i = 0; i < hcount; i++) {
        kc_header_t h;
        int rc = header_decode(&p, end, &h);
        if (rc != KC_OK) return rc;
    }
    rec->headers_len = (size_t)(p - rec->headers);
    if (p != end) return KC_ERR_BAD_RECORD;   /* declared length longer than the fields */
    rec->size = (size_t)n + (size_t)length;
    *pos += rec->size;
    return KC_OK;
}

int kc_header_next(const uint8_t *buf, size_t len, size_t *pos, kc_header_t *hdr) {
    if (buf == NULL || *pos >= len) return KC_ERR_VARINT_UNDERFLOW;
    const uint8_t *p = buf + *pos;
    int rc = header_decode(&p, buf + len, hdr);
    if (rc != KC_OK) return rc;
    *pos = (size_t)(p - buf);
    return KC_OK;
}

/* ---- record checks ---- */

int kc_records_check(const uint8_t *records, size_t len, int32_t count, int32_t last_offset_delta,
                     uint32_t flags, kc_records_check_t *out) {
    kc_records_check_t st = {0, 0, -1};
    int rc = KC_OK;
    if ((records == NULL && len) || count < 0) return KC_ERR_ARG;
    /* One pass, no allocation: each record is decoded in place and only the
     * fields Kafka's LogValidator looks at are kept. */
    while (st.records < count) {
        kc_record_t r;
        size_t pos = st.position;
        if (pos == len) {   /* the section ends before count records */
            rc = KC_ERR_BAD_COUNT;
            break;
        }
        rc = kc_record_next(records, len, &pos, &r);
        if (rc != KC_OK) break;
        /* Deltas strictly increasing from >= 0 and never past lastOffsetDelta:
         * otherwise offsets assigned from the header would overlap the next
         * batch's or go backwards (Kafka: "Invalid offset"). */
        if (r.offset_delta < 0 || r.offset_delta <= st.offset_delta || r.offset_delta > last_offset_delta) {
            rc = KC_ERR_BAD_RECORD;
            break;
        }
        if ((flags & KC_RECORDS_REQUIRE_KEYS) && r.key == NULL) {
            rc = KC_ERR_MISSING_KEY;
            break;
        }
        st.offset_delta = r.offset_delta;
        st.position = pos;
        st.records++;
    }
    /* count records decoded but bytes remain: the header under-declares. */
    if (rc == KC_OK && st.position != len) rc = KC_ERR_BAD_COUNT;
    if (out) *out = st;
    return rc;
}

int kc_batch_check_records(const uint8_t *buf, size_t len, uint32_t scan_flags, uint32_t flags,
                           kc_records_check_t *out) {
    kc_batch_info_t bi;
    kc_records_check_t st = {0, 0, -1};
    int rc = kc_batch_check(buf, len, 0, scan_flags, &bi);
    if (rc == KC_OK && bi.size != len) rc = KC_ERR_ARG;   /* exactly one batch */
    if (rc == KC_OK && (bi.attributes & KC_ATTR_CODEC_MASK)) rc = KC_ERR_UNSUPPORTED;
    if (rc == KC_OK) {
        rc = kc_records_check(buf + KC_BATCH_HEADER_SIZE, len - KC_BATCH_HEADER_SIZE, bi.record_count,
                              bi.last_offset_delta, flags, &st);
        st.position += KC_BATCH_HEADER_SIZE;
    }
    if (out) *out = st;
    return rc;
}

size_t kc_batch_rewrite(uint8_t *out, size_t cap, const uint8_t *batch, int codec,
                        const uint8_t *records, size_t records_len) {
    if (out == NULL || batch == NULL || (records == NULL && records_len)) return 0;
    if (codec < KC_CODEC_NONE || codec > KC_CODEC_ZSTD) return 0;
    if (cap < KC_BATCH_HEADER_SIZE || records_len > cap - KC_BATCH_HEADER_SIZE) return 0;
    size_t size = KC_BATCH_HEADER_SIZE + records_len;
    /* batchLength is an int32 on the wire. */
    if (size - KC_BATCH_LOG_OVERHEAD > (size_t)INT32_MAX) return 0;
    /* Records first: they may sit in out already (compressed in place), and
     * memmove handles any overlap with the caller's buffers. */
    if (records_len && records != out + KC_BATCH_HEADER_SIZE)
        memmove(out + KC_BATCH_HEADER_SIZE, records, records_len);
    if (batch != out) memmove(out, batch, KC_BATCH_HEADER_SIZE);
    uint16_t attrs = kc_be16(out + KC_BATCH_OF_ATTRIBUTES);
    kc_put_be16(out + KC_BATCH_OF_ATTRIBUTES, (uint16_t)((attrs & ~KC_ATTR_CODEC_MASK) | (unsigned)codec));
    kc_put_be32(out + KC_BATCH_OF_LENGTH, (uint32_t)(size - KC_BATCH_LOG_OVERHEAD));
    kc_batch_update_crc(out, size);
    return size;
}

/* ---- builder ---- */

int kc_builder_init(kc_builder_t *b, uint8_t *buf, size_t cap, int64_t base_timestamp,
                    int16_t attributes, int64_t producer_id, int16_t producer_epoch,
                    int32_t base_sequence) {
    if (b == NULL || buf == NULL) return KC_ERR_ARG;
    if (cap < KC_BATCH_HEADER_SIZE) return KC_ERR_TOO_LARGE;
    /* The builder writes plain records; codecs come via finish_compressed. */
    if (attributes & KC_ATTR_CODEC_MASK) return KC_ERR_ARG;
    /* batchLength is an int32: never let a batch outgrow it. */
    if (cap > (size_t)INT32_MAX) cap = (size_t)INT32_MAX;
    b->buf = buf;
    b->cap = cap;
    b->pos = KC_BATCH_HEADER_SIZE;
    b->base_timestamp = base_timestamp;
    b->max_timestamp = -1;
    b->count = 0;
    b->attributes = attributes;
    b->producer_id = producer_id;
    b->producer_epoch = producer_epoch;
    b->base_sequence = base_sequence;
    return KC_OK;
}

static inline size_t vsize32(int64_t v) { return kc_varint_size_i64(v); }

int kc_builder_append(kc_builder_t *b, int64_t timestamp, const uint8_t *key, ssize_t key_len,
                      const uint8_t *value, ssize_t value_len, const kc_header_t *headers,
                      size_t header_count) {
    if (b == NULL || b->buf == NULL) return KC_ERR_ARG;
    if (key_len < -1 || value_len < -1 || (key_len > 0 && !key) || (value_len > 0 && !value) ||
        (header_count && !headers))
        return KC_ERR_ARG;
    if (key_len > INT32_MAX || value_len > INT32_MAX || header_count > INT32_MAX ||
        b->count == INT32_MAX)
        return KC_ERR_TOO_LARGE;
    /* The subtraction cannot overflow in practice (timestamps are ms), but
     * compute it unsigned so a hostile caller cannot trigger UB. */
    int64_t ts_delta = (int64_t)((uint64_t)timestamp - (uint64_t)b->base_timestamp);
    size_t room = b->cap - b->pos;
    /* Body size with every length checked against the room left, so the sum
     * stays small and cannot wrap. */
    uint64_t body = 1 + kc_varint_size_i64(ts_delta) + vsize32(b->count) + vsize32(key_len) +
                    vsize32(value_len) + vsize32((int64_t)header_count);
    if (key_len > 0) body += (uint64_t)key_len;
    if (value_len > 0) body += (uint64_t)value_len;
    for (size_t i = 0; i < header_count && body <= room; i++) {
        const kc_header_t *h = &headers[i];
        if (h->key_len < 0 || h->value_len < -1 || (h->key_len > 0 && !h->key) ||
            (h->value_len > 0 && !h->value))
            return KC_ERR_ARG;
        body += vsize32(h->key_len) + (uint64_t)h->key_len + vsize32(h->value_len);
        if (h->value_len > 0) body += (uint64_t)h->value_len;
    }
    if (body > INT32_MAX || body + vsize32((int64_t)body) > room) return KC_ERR_TOO_LARGE;

    uint8_t *p = b->buf + b->pos;
    p += kc_varint_put_i64(p, (int64_t)body);
    *p++ = 0;   /* record attributes: unused, always 0 */
    p += kc_varint_put_i64(p, ts_delta);
    p += kc_varint_put_i64(p, b->count);
    p += kc_varint_put_i64(p, key_len);
    if (key_len > 0) { memcpy(p, key, (size_t)key_len); p += key_len; }
    p += kc_varint_put_i64(p, value_len);
    if (value_len > 0) { memcpy(p, value, (size_t)value_len); p += value_len; }
    p += kc_varint_put_i64(p, (int64_t)header_count);
    for (size_t i = 0; i < header_count; i++) {
        const kc_header_t *h = &headers[i];
        p += kc_varint_put_i64(p, h->key_len);
        if (h->key_len > 0) { memcpy(p, h->key, (size_t)h->key_len); p += h->key_len; }
        p += kc_varint_put_i64(p, h->value_len);
        if (h->value_len > 0) { memcpy(p, h->value, (size_t)h->value_len); p += h->value_len; }
    }
    b->pos = (size_t)(p - b->buf);
    b->count++;
    if (timestamp > b->max_timestamp) b->max_timestamp = timestamp;
    return KC_OK;
}

static size_t builder_write_header(kc_builder_t *b, int16_t attributes, size_t size) {
    uint8_t *h = b->buf;
    kc_put_be64(h, 0);                                   /* baseOffset: the broker assigns it */
    kc_put_be32(h + KC_BATCH_OF_LENGTH, (uint32_t)(size - KC_BATCH_LOG_OVERHEAD));
    kc_put_be32(h + KC_BATCH_OF_LEADER_EPOCH, (uint32_t)-1);                   /* partitionLeaderEpoch: broker's */
    h[KC_BATCH_OF_MAGIC] = 2;
    kc_put_be16(h + KC_BATCH_OF_ATTRIBUTES, (uint16_t)attributes);
    kc_put_be32(h + KC_BATCH_OF_LAST_OFFSET_DELTA, (uint32_t)(b->count - 1));       /* lastOffsetDelta (-1 when empty) */
    kc_put_be64(h + KC_BATCH_OF_BASE_TIMESTAMP, (uint64_t)b->base_timestamp);
    kc_put_be64(h + KC_BATCH_OF_MAX_TIMESTAMP, (uint64_t)b->max_timestamp);        /* -1 when empty, as Kafka */
    kc_put_be64(h + KC_BATCH_OF_PRODUCER_ID, (uint64_t)b->producer_id);
    kc_put_be16(h + KC_BATCH_OF_PRODUCER_EPOCH, (uint16_t)b->producer_epoch);
    kc_put_be32(h + KC_BATCH_OF_BASE_SEQUENCE, (uint32_t)b->base_sequence);
    kc_put_be32(h + KC_BATCH_OF_RECORD_COUNT, (uint32_t)b->count);
    kc_batch_update_crc(h, size);
    return size;
}

size_t kc_builder_finish(kc_builder_t *b) {
    return builder_write_header(b, b->attributes, b->pos);
}

size_t kc_builder_finish_compressed(kc_builder_t *b, int codec, size_t compressed_len) {
    if (codec < KC_CODEC_GZIP || codec > KC_CODEC_ZSTD) return 0;
    if (compressed_len > b->cap - KC_BATCH_HEADER_SIZE) return 0;
    int16_t attrs = (int16_t)((b->attributes & ~KC_ATTR_CODEC_MASK) | codec);
    return builder_write_header(b, attrs, KC_BATCH_HEADER_SIZE + compressed_len);
}
