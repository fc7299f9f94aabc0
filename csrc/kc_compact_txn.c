/* kc_compact_txn.c - transactions seen by a cleaning pass (see
 * kc_compact_txn.h).  The open transactions are a small array searched
 * linearly: it holds one entry per producer with a transaction open at the
 * point the pass has reached, which is bounded by the producers writing
 * transactions concurrently, not by the size of the log. */
#include "kc_compact_txn.h"

#include <stdlib.h>
#include <string.h>

#include "kc_common.h"

int kc_txn_meta_init(kc_txn_meta_t *m, const kc_aborted_txn_t *aborted, size_t n) {
    memset(m, 0, sizeof(*m));
    m->aborted = aborted;
    m->n_aborted = n;
    if (!n)
        return KC_OK;
    m->by_first = malloc(n * sizeof(*m->by_first));
    if (!m->by_first)
        return KC_ERR_NOMEM;
    /* already sorted by last offset; by first offset with the same order in almost every log
     * (transactions of one partition rarely interleave), so this sort is cheap */
    for (size_t i = 0; i < n; i++)
        m->by_first[i] = i;
    size_t sorted = 1;
    for (size_t i = 1; sorted && i < n; i++)
        sorted = aborted[i - 1].first_offset <= aborted[i].first_offset;
    if (!sorted) {
        /* insertion sort: the input is nearly sorted */
        for (size_t i = 1; i < n; i++) {
            size_t v = m->by_first[i], j = i;
            while (j > 0 && aborted[m->by_first[j - 1]].first_offset > aborted[v].first_offset) {
                m->by_first[j] = m->by_first[j - 1];
                j--;
            }
            m->by_first[j] = v;
        }
    }
    return KC_OK;
}

void kc_txn_meta_free(kc_txn_meta_t *m) {
    free(m->by_first);
    free(m->open);
    memset(m, 0, sizeof(*m));
}

static kc_txn_open_t *find_open(kc_txn_meta_t *m, int64_t pid, int aborted) {
    for (size_t i = 0; i < m->n_open; i++)
        if (m->open[i].producer_id == pid && (m->open[i].aborted != NULL) == aborted)
            return &m->open[i];
    return NULL;
}

static kc_txn_open_t *add_open(kc_txn_meta_t *m, int64_t pid, const kc_aborted_txn_t *a) {
    if (m->n_open == m->cap_open) {
        size_t cap = m->cap_open ? m->cap_open * 2 : 16;
        kc_txn_open_t *q = realloc(m->open, cap * sizeof(*q));
        if (!q)
            return NULL;
        m->open = q;
        m->cap_open = cap;
    }
    kc_txn_open_t *o = &m->open[m->n_open++];
    o->producer_id = pid;
    o->aborted = a;
    o->observed = 0;
    return o;
}

static void remove_open(kc_txn_meta_t *m, kc_txn_open_t *o) {
    *o = m->open[--m->n_open];
}

/* Take up the aborted transactions that begin at or before offset
 * (Kafka's consumeAbortedTxnsUpTo). */
static int take_up_to(kc_txn_meta_t *m, int64_t offset) {
    while (m->next < m->n_aborted && m->aborted[m->by_first[m->next]].first_offset <= offset) {
        const kc_aborted_txn_t *a = &m->aborted[m->by_first[m->next++]];
        if (!find_open(m, a->producer_id, 1) && !add_open(m, a->producer_id, a))
            return KC_ERR_NOMEM;
    }
    return KC_OK;
}

int kc_txn_meta_on_batch(kc_txn_meta_t *m, const kc_batch_info_t *bi) {
    int64_t last = bi->base_offset + bi->last_offset_delta;
    if (take_up_to(m, last) != KC_OK)
        return KC_ERR_NOMEM;
    if (!(bi->attributes & KC_ATTR_TRANSACTIONAL) || bi->producer_id < 0)
        return KC_OK;
    kc_txn_open_t *o = find_open(m, bi->producer_id, 1);
    if (!o)
        o = find_open(m, bi->producer_id, 0);
    if (!o && !(o = add_open(m, bi->producer_id, NULL)))
        return KC_ERR_NOMEM;
    if (bi->record_count > 0)
        o->observed = 1;
    return KC_OK;
}

void kc_txn_meta_on_control(kc_txn_meta_t *m, const kc_batch_info_t *bi, int kind, int *discardable,
                            const kc_aborted_txn_t **entry) {
    *entry = NULL;
    /* NOMEM here only loses the chance to settle an abort this pass: the marker stays */
    if (take_up_to(m, bi->base_offset + bi->last_offset_delta) != KC_OK) {
        *discardable = 0;
        return;
    }
    if (bi->record_count == 0) {
        *discardable = 1; /* a marker a previous pass emptied */
        return;
    }
    kc_txn_open_t *o;
    if (kind == 0) {
        o = find_open(m, bi->producer_id, 1);
        *discardable = !(o && o->observed);
        if (o && o->observed)
            *entry = o->aborted;
        if (o)
            remove_open(m, o);
        /* a committed-looking entry of the same producer is the same transaction */
        if ((o = find_open(m, bi->producer_id, 0)) != NULL) {
            if (o->observed && *discardable) {
                *discardable = 0; /* records the index did not know as aborted: keep the marker */
            }
            remove_open(m, o);
        }
    } else if (kind == 1) {
        o = find_open(m, bi->producer_id, 0);
        *discardable = !(o && o->observed);
        if (o)
            remove_open(m, o);
    } else {
        *discardable = 0;
    }
}

int kc_control_type(const uint8_t *b, const kc_batch_info_t *bi) {
    if (bi->record_count < 1 || (bi->attributes & KC_ATTR_CODEC_MASK) != KC_CODEC_NONE)
        return -1;
    size_t pos = 0;
    kc_record_t r;
    if (kc_record_next(b + KC_BATCH_HEADER_SIZE, bi->size - KC_BATCH_HEADER_SIZE, &pos, &r) != KC_OK ||
        !r.key || r.key_len < 4)
        return -1;
    int type = (int)(int16_t)(uint16_t)((unsigned)r.key[2] << 8 | r.key[3]);
    return type == 0 || type == 1 ? type : -1;
}

size_t kc_control_set_horizon(uint8_t *out, size_t cap, const uint8_t *b, const kc_batch_info_t *bi,
                              int64_t horizon_ms) {
    if (cap < KC_BATCH_HEADER_SIZE || (bi->attributes & KC_ATTR_CODEC_MASK) != KC_CODEC_NONE)
        return 0;
    memcpy(out, b, KC_BATCH_HEADER_SIZE);
    const uint8_t *recs = b + KC_BATCH_HEADER_SIZE;
    size_t len = bi->size - KC_BATCH_HEADER_SIZE, pos = 0, w = KC_BATCH_HEADER_SIZE;
    while (pos < len) {
        size_t start = pos;
        kc_record_t r;
        if (kc_record_next(recs, len, &pos, &r) != KC_OK)
            return 0;
        int64_t body_len;
        int n = kc_varint_get_i64(recs + start, len - start, &body_len);
        if (n <= 0)
            return 0;
        size_t ts_at = start + (size_t)n + 1; /* past the length and the attributes */
        size_t old_ts = kc_varint_size_i64(r.timestamp_delta);
        int64_t delta = bi->base_timestamp + r.timestamp_delta - horizon_ms;
        size_t rest = r.size - (ts_at - start) - old_ts;
        int64_t nbody = 1 + (int64_t)kc_varint_size_i64(delta) + (int64_t)rest;
        if (w + 10 + (size_t)nbody > cap)
            return 0;
        w += kc_varint_put_i64(out + w, nbody);
        out[w++] = recs[start + (size_t)n];
        w += kc_varint_put_i64(out + w, delta);
        memcpy(out + w, recs + ts_at + old_ts, rest);
        w += rest;
    }
    kc_put_be16(out + KC_BATCH_OF_ATTRIBUTES, (uint16_t)(bi->attributes | KC_ATTR_DELETE_HORIZON));
    kc_put_be64(out + KC_BATCH_OF_BASE_TIMESTAMP, (uint64_t)horizon_ms);
    kc_put_be32(out + KC_BATCH_OF_LENGTH, (uint32_t)(w - KC_BATCH_LOG_OVERHEAD));
    kc_batch_update_crc(out, w);
    return w;
}
