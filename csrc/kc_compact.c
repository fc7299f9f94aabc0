/* kc_compact.c - the log cleaner (see kc_compact.h for what a pass does
 * and why it is crash-safe).
 *
 * The cleaner never touches the shared mapping or the indexes of the
 * segments it reads: it maps each source segment itself (read-only; the
 * segments are immutable once rolled, and truncate_to, the one thing that
 * could shrink them, waits on clean_mu), so the only shared state it
 * changes is the segment list, under mu, at the swap.
 */
#include "kc_compact.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kc_batch.h"
#include "kc_common.h"
#include "kc_compact_txn.h"
#include "kc_index.h"
#include "kc_log_internal.h"

void kc_compact_config_default(kc_compact_config_t *cfg, int64_t now_ms) {
    memset(cfg, 0, sizeof(*cfg));
    cfg->now_ms = now_ms;
    cfg->delete_retention_ms = 86400000;
    cfg->min_compaction_lag_ms = 0;
    cfg->max_map_bytes = 32 << 20;
    cfg->max_offset = -1;
}

/* ------------------------------------------------------- 128-bit key hash */

static inline uint64_t rotl64(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }

static inline uint64_t fmix64(uint64_t k) {
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdULL;
    k ^= k >> 33;
    k *= 0xc4ceb9fe1a85ec53ULL;
    return k ^ (k >> 33);
}

static inline uint64_t ld64(const uint8_t *p) {
    uint64_t v;
    memcpy(&v, p, 8); /* host order: the hash is never stored on disk */
    return v;
}

/* MurmurHash3 x64 128 (its tail folded through a zero-padded block). */
static void key_hash(const uint8_t *key, size_t len, uint64_t h[2]) {
    const uint64_t c1 = 0x87c37b91114253d5ULL, c2 = 0x4cf5ad432745937fULL;
    uint64_t h1 = 0x9368e53c2f6af274ULL, h2 = 0x586dcd208f7cd3fdULL, k1, k2;
    size_t i = 0;
    for (; i + 16 <= len; i += 16) {
        k1 = ld64(key + i) * c1;
        h1 ^= rotl64(k1, 31) * c2;
        h1 = rotl64(h1, 27) + h2;
        h1 = h1 * 5 + 0x52dce729;
        k2 = ld64(key + i + 8) * c2;
        h2 ^= rotl64(k2, 33) * c1;
        h2 = rotl64(h2, 31) + h1;
        h2 = h2 * 5 + 0x38495ab5;
    }
    uint8_t tail[16] = {0};
    if (len > i)
        memcpy(tail, key + i, len - i);
    h2 ^= rotl64(ld64(tail + 8) * c2, 33) * c1;
    h1 ^= rotl64(ld64(tail) * c1, 31) * c2;
    h1 ^= (uint64_t)len;
    h2 ^= (uint64_t)len;
    h1 += h2;
    h2 += h1;
    h1 = fmix64(h1);
    h2 = fmix64(h2);
    h1 += h2;
    h2 += h1;
    h[0] = h1;
    h[1] = h2;
}

/* ------------------------------------------------------------ offset map */

typedef struct map_entry {
    uint64_t h1, h2;
    int64_t offset; /* -1: empty slot */
} map_entry_t;

typedef struct offset_map {
    map_entry_t *e;
    size_t mask, used, limit;
} offset_map_t;

static int map_init(offset_map_t *m, int64_t max_bytes) {
    size_t cap = 16;
    if (max_bytes < (int64_t)(cap * sizeof(map_entry_t)))
        return KC_ERR_TOO_LARGE;
    while ((int64_t)(cap * 2 * sizeof(map_entry_t)) <= max_bytes)
        cap *= 2;
    m->e = malloc(cap * sizeof(map_entry_t));
    if (!m->e)
        return KC_ERR_NOMEM;
    memset(m->e, 0xff, cap * sizeof(map_entry_t)); /* offset -1 everywhere */
    m->mask = cap - 1;
    m->used = 0;
    m->limit = cap - cap / 4; /* linear probing stays short below 3/4 full */
    return KC_OK;
}

static map_entry_t *map_slot(const offset_map_t *m, const uint64_t h[2]) {
    size_t i = (size_t)h[0] & m->mask;
    while (m->e[i].offset >= 0 && (m->e[i].h1 != h[0] || m->e[i].h2 != h[1]))
        i = (i + 1) & m->mask;
    return &m->e[i];
}

static void map_put(offset_map_t *m, const uint64_t h[2], int64_t offset) {
    map_entry_t *e = map_slot(m, h);
    if (e->offset < 0)
        m->used++;
    e->h1 = h[0];
    e->h2 = h[1];
    e->offset = offset;
}

static int64_t map_get(const offset_map_t *m, const uint8_t *key, size_t len) {
    uint64_t h[2];
    key_hash(key, len, h);
    return map_slot(m, h)->offset;
}

/* ------------------------------------------------------------- the pass */

typedef struct src {
    kc_segment_t *seg;  /* a reference taken at the snapshot */
    int64_t size;
    const uint8_t *map; /* our own read-only mapping of [0, size) */
} src_t;

typedef struct pass {
    kc_log_t *l;
    const kc_compact_config_t *cfg;
    kc_compact_stats_t *st;
    src_t *src;
    size_t nsrc;        /* segments from the log start to the end of the mapped range */
    int64_t dirty_start, end;
    int64_t after_base; /* base of the segment after the cleanable ones */
    offset_map_t map;
    int opaque;         /* a batch whose keys are unknown: keep every tombstone */
    uint8_t *scratch;   /* kept records of one batch */
    size_t scratch_cap;
    kc_txn_meta_t txn;  /* transactions met so far (kc_compact_txn.h) */
    uint8_t *txi;       /* the .txnindex entries of the group being cleaned */
    size_t txi_used, txi_cap;
} pass_t;

/* The records section of the batch at b: in place, or decompressed by the
 * hook into *owned.  KC_ERR_UNSUPPORTED: compressed and no (working) hook. */
static int batch_records(const pass_t *p, const uint8_t *b, const kc_batch_info_t *bi, const uint8_t **recs,
                         size_t *len, uint8_t **owned) {
    *owned = NULL;
    int codec = bi->attributes & KC_ATTR_CODEC_MASK;
    if (codec == KC_CODEC_NONE) {
        *recs = b + KC_BATCH_HEADER_SIZE;
        *len = bi->size - KC_BATCH_HEADER_SIZE;
        return KC_OK;
    }
    if (!p->cfg->decompress)
        return KC_ERR_UNSUPPORTED;
    size_t n = 0;
    if (p->cfg->decompress(p->cfg->codec_ctx, codec, b + KC_BATCH_HEADER_SIZE, bi->size - KC_BATCH_HEADER_SIZE,
                           owned, &n) != KC_OK || !*owned) {
        free(*owned);
        *owned = NULL;
        return KC_ERR_UNSUPPORTED;
    }
    *recs = *owned;
    *len = n;
    return KC_OK;
}

/* Sum of the record counts of s's batches ending at or after from. */
static int64_t count_records(const src_t *s, int64_t from) {
    int64_t n = 0;
    kc_batch_info_t bi;
    for (int64_t pos = 0; pos < s->size; pos += (int64_t)bi.size) {
        if (kc_batch_check(s->map + pos, (size_t)(s->size - pos), 0, KC_SCAN_ALLOW_COMPACTED, &bi) != KC_OK)
            break;
        if (bi.base_offset + bi.last_offset_delta >= from)
            n += bi.record_count;
    }
    return n;
}

/* Whether the batch bi belongs to an aborted transaction of cfg.aborted:
 * transactional, and its producer's abort covers its base offset.  The
 * entries are sorted by last offset: bisect to the first that ends at or
 * after the batch, then look at those that could hold it. */
static int is_aborted(const kc_compact_config_t *cfg, const kc_batch_info_t *bi) {
    if (!cfg->n_aborted || !(bi->attributes & KC_ATTR_TRANSACTIONAL) || bi->producer_id < 0)
        return 0;
    size_t lo = 0, hi = cfg->n_aborted;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (cfg->aborted[mid].last_offset < bi->base_offset)
            lo = mid + 1;
        else
            hi = mid;
    }
    for (size_t i = lo; i < cfg->n_aborted; i++) {
        const kc_aborted_txn_t *a = &cfg->aborted[i];
        if (a->producer_id == bi->producer_id && a->first_offset <= bi->base_offset)
            return 1;
    }
    return 0;
}

/* Put every key of s at offsets >= from into the map. */
static void map_segment(pass_t *p, const src_t *s, int64_t from) {
    kc_batch_info_t bi;
    for (int64_t pos = 0; pos < s->size; pos += (int64_t)bi.size) {
        const uint8_t *b = s->map + pos;
        if (kc_batch_check(b, (size_t)(s->size - pos), 0, KC_SCAN_ALLOW_COMPACTED, &bi) != KC_OK)
            break;
        if ((bi.attributes & KC_ATTR_CONTROL) || bi.base_offset + bi.last_offset_delta < from ||
            is_aborted(p->cfg, &bi))
            continue;
        const uint8_t *recs;
        size_t len, rp = 0;
        uint8_t *owned;
        if (batch_records(p, b, &bi, &recs, &len, &owned) != KC_OK) {
            p->opaque = 1;
            continue;
        }
        kc_record_t r;
        while (rp < len && kc_record_next(recs, len, &rp, &r) == KC_OK) {
            int64_t off = bi.base_offset + r.offset_delta;
            if (off >= from && r.key) {
                uint64_t h[2];
                key_hash(r.key, (size_t)r.key_len, h);
                map_put(&p->map, h, off);
            }
        }
        free(owned);
    }
}

/* Buffered output of one cleaned segment. */
typedef struct out {
    kc_segment_t *ns;
    uint8_t *buf;
    size_t used, cap;
    int64_t pos;        /* bytes written to the file + buffered */
    int err;
} out_t;

static int write_all(int fd, const uint8_t *b, size_t n) {
    for (size_t done = 0; done < n;) {
        ssize_t w = write(fd, b + done, n - done);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return KC_ERR_IO;
        done += (size_t)w;
    }
    return KC_OK;
}

static void out_flush(out_t *o) {
    if (o->err == KC_OK && o->used)
        o->err = write_all(o->ns->fd, o->buf, o->used);
    o->used = 0;
}

/* Append one batch to the cleaned segment, indexing it as an append would. */
static void out_batch(pass_t *p, out_t *o, const uint8_t *b, size_t size) {
    if (o->err != KC_OK)
        return;
    kc_hdr_t h;
    kc_hdr_decode(b, &h);
    kc_segment_account(&p->l->cfg, o->ns, &h, o->pos, 1);
    if (o->used + size > o->cap)
        out_flush(o);
    if (size > o->cap) {
        if (o->err == KC_OK)
            o->err = write_all(o->ns->fd, b, size); /* large batch: straight from its source */
    } else {
        memcpy(o->buf + o->used, b, size);
        o->used += size;
    }
    o->pos += (int64_t)size;
}

static int scratch_reserve(pass_t *p, size_t n) {
    if (n <= p->scratch_cap)
        return KC_OK;
    uint8_t *q = realloc(p->scratch, n);
    if (!q)
        return KC_ERR_NOMEM;
    p->scratch = q;
    p->scratch_cap = n;
    return KC_OK;
}

/* Append one entry (Kafka's AbortedTxn: version 0, producerId,
 * firstOffset, lastOffset, lastStableOffset) to the group's .txnindex. */
static int txi_add(pass_t *p, const kc_aborted_txn_t *a) {
    if (p->txi_used + KC_TXN_ENTRY_SIZE > p->txi_cap) {
        size_t cap = p->txi_cap ? p->txi_cap * 2 : 64 * KC_TXN_ENTRY_SIZE;
        uint8_t *q = realloc(p->txi, cap);
        if (!q)
            return KC_ERR_NOMEM;
        p->txi = q;
        p->txi_cap = cap;
    }
    uint8_t *e = p->txi + p->txi_used;
    kc_put_be16(e, 0);
    kc_put_be64(e + 2, (uint64_t)a->producer_id);
    kc_put_be64(e + 10, (uint64_t)a->first_offset);
    kc_put_be64(e + 18, (uint64_t)a->last_offset);
    kc_put_be64(e + 26, (uint64_t)a->last_stable_offset);
    p->txi_used += KC_TXN_ENTRY_SIZE;
    return KC_OK;
}

/* A COMMIT/ABORT marker (kc_compact_txn.h): kept while records of its
 * transaction remain; then stamped with a delete horizon; dropped in a
 * pass after the horizon (emptied instead when it is the group's last
 * batch, which keeps the group's next offset). */
static int clean_marker(pass_t *p, out_t *o, const uint8_t *b, const kc_batch_info_t *bi, int last) {
    int discardable;
    const kc_aborted_txn_t *entry;
    kc_txn_meta_on_control(&p->txn, bi, kc_control_type(b, bi), &discardable, &entry);
    if (entry && txi_add(p, entry) != KC_OK)
        return KC_ERR_NOMEM;
    if (!discardable || bi->record_count == 0) {
        out_batch(p, o, b, bi->size);
        return KC_OK;
    }
    if (!(bi->attributes & KC_ATTR_DELETE_HORIZON)) {
        int rc = scratch_reserve(p, bi->size + 16);
        size_t n = rc == KC_OK ? kc_control_set_horizon(p->scratch, p->scratch_cap, b, bi,
                                                        p->cfg->now_ms + p->cfg->delete_retention_ms)
                               : 0;
        if (rc == KC_ERR_NOMEM)
            return rc;
        out_batch(p, o, n ? p->scratch : b, n ? n : bi->size);
        return KC_OK;
    }
    if (bi->base_timestamp > p->cfg->now_ms) { /* the horizon has not passed */
        out_batch(p, o, b, bi->size);
        return KC_OK;
    }
    p->st->records_read += bi->record_count;
    p->st->records_removed += bi->record_count;
    p->st->markers_removed++;
    if (!last) {
        p->st->batches_removed++;
        return KC_OK;
    }
    int rc = scratch_reserve(p, KC_BATCH_HEADER_SIZE);
    if (rc != KC_OK)
        return rc;
    memcpy(p->scratch, b, KC_BATCH_HEADER_SIZE);
    kc_put_be32(p->scratch + KC_BATCH_OF_LENGTH, (uint32_t)(KC_BATCH_HEADER_SIZE - KC_BATCH_LOG_OVERHEAD));
    kc_put_be32(p->scratch + KC_BATCH_OF_RECORD_COUNT, 0);
    kc_batch_update_crc(p->scratch, KC_BATCH_HEADER_SIZE);
    out_batch(p, o, p->scratch, KC_BATCH_HEADER_SIZE);
    return KC_OK;
}

/* Filter one batch into o.  last: the group's last batch (never dropped,
 * so the group keeps its next offset). */
static int clean_batch(pass_t *p, out_t *o, const uint8_t *b, const kc_batch_info_t *bi, int64_t seg_max_ts,
                       int last) {
    if (bi->attributes & KC_ATTR_CONTROL)
        return clean_marker(p, o, b, bi, last);
    if (kc_txn_meta_on_batch(&p->txn, bi) != KC_OK)
        return KC_ERR_NOMEM;
    if (is_aborted(p->cfg, bi)) {
        /* an aborted transaction's batch: its records go, the empty batch stays (producer
         * state, and the group's next offset) */
        if (bi->record_count == 0) {
            out_batch(p, o, b, bi->size);
            return KC_OK;
        }
        int rc0 = scratch_reserve(p, KC_BATCH_HEADER_SIZE);
        if (rc0 != KC_OK)
            return rc0;
        uint8_t *nb = p->scratch;
        memcpy(nb, b, KC_BATCH_HEADER_SIZE);
        kc_put_be16(nb + KC_BATCH_OF_ATTRIBUTES, (uint16_t)(bi->attributes & ~KC_ATTR_CODEC_MASK));
        kc_put_be32(nb + KC_BATCH_OF_LENGTH, (uint32_t)(KC_BATCH_HEADER_SIZE - KC_BATCH_LOG_OVERHEAD));
        kc_put_be32(nb + KC_BATCH_OF_RECORD_COUNT, 0);
        kc_batch_update_crc(nb, KC_BATCH_HEADER_SIZE);
        p->st->records_read += bi->record_count;
        p->st->records_removed += bi->record_count;
        out_batch(p, o, nb, KC_BATCH_HEADER_SIZE);
        return KC_OK;
    }
    const uint8_t *recs;
    size_t len, rp = 0, kept_len = 0;
    uint8_t *owned;
    if (batch_records(p, b, bi, &recs, &len, &owned) != KC_OK) {
        p->st->compressed_kept_whole++;
        out_batch(p, o, b, bi->size);
        return KC_OK;
    }
    int rc = scratch_reserve(p, KC_BATCH_HEADER_SIZE + len);
    int32_t kept = 0, seen = 0;
    int64_t horizon = p->cfg->now_ms - p->cfg->delete_retention_ms;
    kc_record_t r;
    while (rc == KC_OK && rp < len) {
        size_t start = rp;
        if (kc_record_next(recs, len, &rp, &r) != KC_OK) {
            rc = KC_ERR_BAD_RECORD; /* CRC-valid yet undecodable: keep it whole */
            break;
        }
        seen++;
        int64_t off = bi->base_offset + r.offset_delta;
        int keep = 1;
        if (r.key && off < p->end) {
            int64_t latest = map_get(&p->map, r.key, (size_t)r.key_len);
            if (latest > off)
                keep = 0;
        }
        if (keep && r.key && !r.value && !p->opaque && seg_max_ts < horizon) {
            keep = 0;
            p->st->tombstones_removed++;
        }
        if (keep) {
            memcpy(p->scratch + KC_BATCH_HEADER_SIZE + kept_len, recs + start, r.size);
            kept_len += r.size;
            kept++;
        }
    }
    p->st->records_read += seen;
    if (rc != KC_OK || kept == seen) {
        free(owned);
        if (rc == KC_ERR_NOMEM)
            return rc;
        out_batch(p, o, b, bi->size); /* unchanged: the original bytes, CRC and all */
        return KC_OK;
    }
    p->st->records_removed += seen - kept;
    if (kept == 0 && !last && bi->producer_id < 0) {
        free(owned);
        p->st->batches_removed++;
        return KC_OK;
    }
    uint8_t *nb = p->scratch;
    memcpy(nb, b, KC_BATCH_HEADER_SIZE);
    size_t size = KC_BATCH_HEADER_SIZE + kept_len;
    int codec = bi->attributes & KC_ATTR_CODEC_MASK;
    uint8_t *packed = NULL;
    if (codec != KC_CODEC_NONE && kept > 0) {
        size_t plen = 0;
        if (!p->cfg->compress ||
            p->cfg->compress(p->cfg->codec_ctx, codec, nb + KC_BATCH_HEADER_SIZE, kept_len, &packed, &plen) != KC_OK ||
            !packed || scratch_reserve(p, KC_BATCH_HEADER_SIZE + plen) != KC_OK) {
            free(packed);
            free(owned);
            p->st->records_removed -= seen - kept;
            p->st->compressed_kept_whole++;
            out_batch(p, o, b, bi->size);
            return KC_OK;
        }
        nb = p->scratch;
        memcpy(nb + KC_BATCH_HEADER_SIZE, packed, plen);
        size = KC_BATCH_HEADER_SIZE + plen;
        free(packed);
    } else if (codec != KC_CODEC_NONE) {
        /* no records left: an empty payload, marked uncompressed */
        kc_put_be16(nb + KC_BATCH_OF_ATTRIBUTES, (uint16_t)(bi->attributes & ~KC_ATTR_CODEC_MASK));
    }
    free(owned);
    kc_put_be32(nb + KC_BATCH_OF_LENGTH, (uint32_t)(size - KC_BATCH_LOG_OVERHEAD));
    kc_put_be32(nb + KC_BATCH_OF_RECORD_COUNT, (uint32_t)kept);
    kc_batch_update_crc(nb, size);
    out_batch(p, o, nb, size);
    return KC_OK;
}

static char *path_ext(const kc_segment_t *s, const char *ext, const char *suffix) {
    size_t n = strlen(s->path) + strlen(ext) + strlen(suffix) + 1;
    char *q = malloc(n);
    if (q)
        snprintf(q, n, "%s%s%s", s->path, ext, suffix);
    return q;
}

/* the log last: see kc_compact.h; the .txnindex (EXTS[2]) exists only for a group with entries */
static const char *const EXTS[] = {".index", ".timeindex", ".txnindex", ".log"};
#define TXNINDEX_EXT 2

/* Rename the files of s from suffix a to suffix b ("" = final name).  A
 * missing .txnindex is no error; renaming to the final names, it means the
 * group has no aborted transaction left, so an old one (the first
 * segment's, whose names the group takes over) is removed. */
static int rename_files(const kc_segment_t *s, const char *a, const char *b) {
    int rc = KC_OK;
    for (size_t i = 0; i < 4 && rc == KC_OK; i++) {
        char *x = path_ext(s, EXTS[i], a), *y = path_ext(s, EXTS[i], b);
        rc = !x || !y ? KC_ERR_NOMEM : rename(x, y) == 0 ? KC_OK : KC_ERR_IO;
        if (rc == KC_ERR_IO && i == TXNINDEX_EXT && errno == ENOENT) {
            rc = *b || unlink(y) == 0 || errno == ENOENT ? KC_OK : KC_ERR_IO;
        }
        free(x);
        free(y);
    }
    return rc;
}

static void unlink_files(const kc_segment_t *s, const char *suffix) {
    for (size_t i = 0; i < 4; i++) {
        char *x = path_ext(s, EXTS[i], suffix);
        if (x)
            unlink(x);
        free(x);
    }
}

/* Swap the cleaned segment ns in for src[g0, g1) (kc_compact.h, step 4). */
static int commit_group(pass_t *p, kc_segment_t *ns, size_t g0, size_t g1, int *taken) {
    kc_log_t *l = p->l;
    int crash = p->cfg->crash_after;
    if (crash == 1)
        return KC_ERR_AGAIN;
    int rc = rename_files(ns, ".cleaned", ".swap");
    if (rc == KC_OK)
        rc = kc_fsync_dir(l->dir);
    if (rc != KC_OK || crash == 2)
        return rc != KC_OK ? rc : KC_ERR_AGAIN;
    pthread_mutex_lock(&l->mu);
    size_t j = 0, k = g1 - g0;
    while (j < l->nsegs && l->segs[j] != p->src[g0].seg)
        j++;
    int present = j + k < l->nsegs; /* never the active segment */
    for (size_t i = 0; present && i < k; i++)
        present = l->segs[j + i] == p->src[g0 + i].seg;
    if (!present) {
        /* retention or DeleteRecords removed part of the group meanwhile */
        pthread_mutex_unlock(&l->mu);
        unlink_files(ns, ".swap");
        return KC_ERR_NOT_FOUND;
    }
    for (size_t i = 1; i < k; i++)
        kc_segment_unlink(l->segs[j + i]);
    if (crash == 3) {
        pthread_mutex_unlock(&l->mu);
        return KC_ERR_AGAIN;
    }
    /* the first replaced segment has ns's base: after the rename its path names ns's
     * files, so a reader still holding it must keep its own fd */
    if (kc_segment_detach(l->segs[j]) != KC_OK) { /* its holders get KC_ERR_IO from their pin */ }
    rc = rename_files(ns, ".swap", "");
    if (rc == KC_OK)
        rc = kc_segment_indexes_renamed(ns); /* its mapped indexes resize and sync by path */
    for (size_t i = 0; i < k; i++)
        kc_segment_unref(l->segs[j + i]); /* the list's references */
    l->segs[j] = ns; /* the list owns ns now, even if a rename failed: open finishes the swap */
    kc_segment_adopt_fd(ns); /* its fd, opened at the .cleaned name, joins the pool */
    *taken = 1;
    memmove(l->segs + j + 1, l->segs + j + k, (l->nsegs - j - k) * sizeof(*l->segs));
    l->nsegs -= k - 1;
    l->dir_dirty = 1;
    pthread_mutex_unlock(&l->mu);
    return rc == KC_OK ? kc_fsync_dir(l->dir) : rc;
}

/* "<base>.txnindex.cleaned" with the group's entries, fsynced. */
static int write_txnindex(const kc_segment_t *ns, const uint8_t *buf, size_t n) {
    char *x = path_ext(ns, ".txnindex", ".cleaned");
    if (!x)
        return KC_ERR_NOMEM;
    int fd = open(x, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    free(x);
    if (fd < 0)
        return KC_ERR_IO;
    int rc = write_all(fd, buf, n);
    if (rc == KC_OK && fdatasync(fd) != 0)
        rc = KC_ERR_IO;
    close(fd);
    return rc;
}

/* Rewrite src[g0, g1) into one cleaned segment and swap it in. */
static int clean_group(pass_t *p, size_t g0, size_t g1) {
    kc_log_t *l = p->l;
    kc_segment_t *ns = kc_segment_alloc(l->dir, p->src[g0].seg->base_offset);
    out_t o = {ns, NULL, 0, 1 << 20, 0, KC_OK};
    char *lp = ns ? path_ext(ns, ".log", ".cleaned") : NULL;
    char *op = ns ? path_ext(ns, ".index", ".cleaned") : NULL;
    char *tp = ns ? path_ext(ns, ".timeindex", ".cleaned") : NULL;
    int rc = lp && op && tp && (o.buf = malloc(o.cap)) ? KC_OK : KC_ERR_NOMEM;
    if (rc == KC_OK)
        rc = (ns->fd = open(lp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)) < 0 ? KC_ERR_IO : KC_OK;
    if (rc == KC_OK)
        rc = kc_index_open(&ns->oidx, op, KC_INDEX_OFFSET_ENTRY, ns->base_offset, l->cfg.max_index_bytes, 1);
    if (rc == KC_OK)
        rc = kc_index_open(&ns->tidx, tp, KC_INDEX_TIME_ENTRY, ns->base_offset, l->cfg.max_index_bytes, 1);
    free(lp);
    free(op);
    free(tp);
    for (size_t i = g0; rc == KC_OK && i < g1; i++) {
        const src_t *s = &p->src[i];
        kc_batch_info_t bi;
        p->st->bytes_before += s->size;
        for (int64_t pos = 0; rc == KC_OK && pos < s->size; pos += (int64_t)bi.size) {
            if (atomic_load(&l->clean_abort)) {
                rc = KC_ERR_CLOSED;
                break;
            }
            const uint8_t *b = s->map + pos;
            if ((rc = kc_batch_check(b, (size_t)(s->size - pos), 0, KC_SCAN_ALLOW_COMPACTED, &bi)) != KC_OK)
                break; /* cannot happen to a recovered segment; give up on the group */
            int last = i + 1 == g1 && pos + (int64_t)bi.size == s->size;
            rc = clean_batch(p, &o, b, &bi, s->seg->max_timestamp, last);
        }
    }
    if (rc == KC_OK) {
        out_flush(&o);
        rc = o.err;
    }
    free(o.buf);
    if (rc == KC_OK) {
        ns->size = ns->flushed_size = o.pos;
        ns->created_ms = p->src[g1 - 1].seg->created_ms;
        kc_segment_deactivate(ns);
        if (fdatasync(ns->fd) != 0 || kc_index_sync(&ns->oidx) != KC_OK || kc_index_sync(&ns->tidx) != KC_OK)
            rc = KC_ERR_IO;
    }
    if (rc == KC_OK && p->txi_used)
        rc = write_txnindex(ns, p->txi, p->txi_used);
    p->txi_used = 0;
    int taken = 0;
    if (rc == KC_OK)
        rc = commit_group(p, ns, g0, g1, &taken);
    if (taken)
        ns = NULL;
    if (rc == KC_OK) {
        p->st->bytes_after += o.pos;
        p->st->segments_after++;
        return KC_OK;
    }
    if (ns) {
        int e = errno;
        if (rc != KC_ERR_AGAIN) /* a simulated crash leaves its files behind */
            unlink_files(ns, ".cleaned");
        kc_segment_unref(ns);
        errno = e;
    }
    return rc == KC_ERR_NOT_FOUND ? KC_OK : rc;
}

/* The plan of a pass (mu held): segments [0, first_dirty) are clean,
 * [first_dirty, end_idx) dirty and cleanable. */
static void plan_locked(const kc_log_t *l, int64_t now_ms, int64_t lag_ms, int64_t max_offset,
                        int64_t *dirty_start, size_t *first_dirty, size_t *end_idx) {
    size_t n = l->nsegs - 1, i = 0; /* never the active segment */
    *dirty_start = l->clean_offset > l->start_offset ? l->clean_offset : l->start_offset;
    while (i < n && l->segs[i]->next_offset <= *dirty_start)
        i++;
    *first_dirty = i;
    while (i < n && !(lag_ms > 0 && l->segs[i]->max_timestamp > now_ms - lag_ms) &&
           (max_offset < 0 || l->segs[i + 1]->base_offset <= max_offset))
        i++;
    *end_idx = i;
}

int kc_log_cleanable_bytes(kc_log_t *l, int64_t now_ms, int64_t min_compaction_lag_ms, int64_t max_offset,
                           int64_t *clean_bytes,
                           int64_t *dirty_bytes) {
    if (!l || !clean_bytes || !dirty_bytes)
        return KC_ERR_ARG;
    pthread_mutex_lock(&l->mu);
    int64_t ds;
    size_t fd, end;
    plan_locked(l, now_ms, min_compaction_lag_ms, max_offset, &ds, &fd, &end);
    *clean_bytes = *dirty_bytes = 0;
    for (size_t i = 0; i < end; i++)
        *(i < fd ? clean_bytes : dirty_bytes) += l->segs[i]->size;
    pthread_mutex_unlock(&l->mu);
    return KC_OK;
}

int64_t kc_log_cleaner_checkpoint(kc_log_t *l) {
    pthread_mutex_lock(&l->mu);
    int64_t v = l->clean_offset;
    pthread_mutex_unlock(&l->mu);
    return v;
}

int kc_log_compact(kc_log_t *l, const kc_compact_config_t *cfg, kc_compact_stats_t *st) {
    if (!l || !cfg || !st)
        return KC_ERR_ARG;
    memset(st, 0, sizeof(*st));
    pthread_mutex_lock(&l->clean_mu);
    pass_t p = {.l = l, .cfg = cfg, .st = st};
    size_t first_dirty, end_idx;
    pthread_mutex_lock(&l->mu);
    plan_locked(l, cfg->now_ms, cfg->min_compaction_lag_ms, cfg->max_offset, &p.dirty_start, &first_dirty,
                &end_idx);
    st->dirty_start = st->end_offset = p.dirty_start;
    p.after_base = l->segs[end_idx]->base_offset; /* end_idx < nsegs: the active one at most */
    int rc = KC_OK;
    if (first_dirty < end_idx) {
        p.src = calloc(end_idx, sizeof(*p.src));
        if (!p.src)
            rc = KC_ERR_NOMEM;
        for (size_t i = 0; rc == KC_OK && i < end_idx; i++) {
            p.src[i].seg = l->segs[i];
            p.src[i].size = l->segs[i]->size;
            atomic_fetch_add(&l->segs[i]->refs, 1);
            p.nsrc = i + 1;
        }
    }
    pthread_mutex_unlock(&l->mu);
    for (size_t i = 0; rc == KC_OK && i < p.nsrc; i++) {
        src_t *s = &p.src[i];
        if (s->size == 0)
            continue;
        void *m = MAP_FAILED;
        if (kc_segment_pin(s->seg) == KC_OK) {
            m = mmap(NULL, (size_t)s->size, PROT_READ, MAP_SHARED, s->seg->fd, 0);
            kc_segment_unpin(s->seg);
        }
        if (m == MAP_FAILED)
            rc = KC_ERR_IO;
        else
            s->map = m;
    }
    if (rc == KC_OK && p.nsrc > 0)
        rc = map_init(&p.map, cfg->max_map_bytes);
    if (rc == KC_OK)
        rc = kc_txn_meta_init(&p.txn, cfg->aborted, cfg->n_aborted);
    /* map whole dirty segments while they fit */
    size_t mapped = first_dirty;
    for (; rc == KC_OK && mapped < p.nsrc; mapped++) {
        const src_t *s = &p.src[mapped];
        if (p.map.used + (size_t)count_records(s, p.dirty_start) > p.map.limit) {
            if (mapped == first_dirty)
                rc = KC_ERR_TOO_LARGE;
            break;
        }
        map_segment(&p, s, p.dirty_start);
    }
    if (rc == KC_OK && mapped > first_dirty) {
        p.end = mapped < p.nsrc ? p.src[mapped].seg->base_offset : p.after_base;
        st->map_entries = (int64_t)p.map.used;
        /* compressed batches without hooks elsewhere in the range hide keys too */
        for (size_t i = 0; !p.opaque && !cfg->decompress && i < mapped; i++) {
            kc_batch_info_t bi;
            for (int64_t pos = 0; pos < p.src[i].size; pos += (int64_t)bi.size) {
                if (kc_batch_check(p.src[i].map + pos, (size_t)(p.src[i].size - pos), 0, KC_SCAN_ALLOW_COMPACTED,
                                   &bi) != KC_OK)
                    break;
                if ((bi.attributes & KC_ATTR_CODEC_MASK) != KC_CODEC_NONE && !(bi.attributes & KC_ATTR_CONTROL))
                    p.opaque = 1;
            }
        }
        /* rewrite [log start, end) in groups of at most segment_bytes */
        for (size_t g0 = 0; rc == KC_OK && g0 < mapped;) {
            size_t g1 = g0 + 1;
            int64_t bytes = p.src[g0].size;
            while (g1 < mapped && bytes + p.src[g1].size <= l->cfg.segment_bytes &&
                   p.src[g1].seg->next_offset - p.src[g0].seg->base_offset <= INT32_MAX)
                bytes += p.src[g1++].size;
            st->segments_before += (int64_t)(g1 - g0);
            rc = clean_group(&p, g0, g1);
            g0 = g1;
        }
        if (rc == KC_ERR_CLOSED) {
            st->aborted = 1;
            rc = KC_OK;
        } else if (rc == KC_OK) {
            pthread_mutex_lock(&l->mu);
            l->clean_offset = p.end;
            pthread_mutex_unlock(&l->mu);
            st->end_offset = p.end;
            rc = kc_compact_write_checkpoint(l->dir, p.end);
        }
    }
    free(p.map.e);
    free(p.scratch);
    free(p.txi);
    kc_txn_meta_free(&p.txn);
    for (size_t i = 0; i < p.nsrc; i++) {
        if (p.src[i].map)
            munmap((void *)p.src[i].map, (size_t)p.src[i].size);
        kc_segment_unref(p.src[i].seg);
    }
    free(p.src);
    pthread_mutex_unlock(&l->clean_mu);
    return rc;
}
