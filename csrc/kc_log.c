/* kc_log.c - the partition log (see kc_log.h for the on-disk layout).
 *
 * Locks, always taken in this order:
 *   append_mu  one writer at a time: append, roll, truncate, retention,
 *              delete_records (anything that changes the active segment)
 *   flush_mu   one flusher at a time (fsync runs without mu held)
 *   mu         the segment list and every published field; held only for
 *              short in-memory work (index search, header walks over the
 *              mmapped log), never across write() or fsync()
 * An append writes its bytes with pwrite() past the published end while
 * holding only append_mu, then publishes the new end and the index entries
 * under mu, so a reader never sees part of a batch.
 *
 * Segments are reference counted: the list holds one reference and every
 * file slice handed out holds one, so deleting a segment (retention,
 * truncation) unlinks its files at once but closes its fd only when the
 * last slice is released.
 */
#include "kc_log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "kc_batch.h"
#include "kc_common.h"
#include "kc_index.h"

#define CLEAN_MARKER ".kafka_cleanshutdown"
#define CHECKPOINT "kc-checkpoint"

typedef struct kc_segment {
    int64_t base_offset;
    int fd;
    int64_t size;             /* published length of the .log */
    int64_t next_offset;      /* offset after the last batch (base_offset when empty) */
    int64_t max_timestamp;    /* -1: no timestamp yet */
    int64_t offset_of_max_ts; /* last offset of the batch holding max_timestamp */
    int64_t first_batch_ts;   /* max timestamp of the first batch: time-based roll */
    int64_t created_ms;
    int64_t bytes_since_index;
    int64_t flushed_size;
    kc_index_t oidx, tidx;
    uint8_t *map;             /* read-only mapping of the .log, grown on demand */
    size_t map_len;
    atomic_long refs;
    char *path;               /* "<dir>/<20-digit base>" without extension */
} kc_segment_t;

struct kc_log {
    char *dir;
    kc_log_config_t cfg;
    pthread_mutex_t mu, append_mu, flush_mu;
    kc_segment_t **segs;
    size_t nsegs, cap;
    int64_t start_offset, end_offset, recovery_point, unflushed;
    int dir_dirty;
    kc_recovery_info_t rec;
};

/* A batch header read from a segment or an append buffer. */
typedef struct hdr {
    int64_t base, last, first_ts, max_ts;
    int64_t size;
    int16_t attributes;
} hdr_t;

void kc_log_config_default(kc_log_config_t *cfg) {
    cfg->segment_bytes = 1LL << 30;
    cfg->roll_ms = 168LL * 3600 * 1000;
    cfg->index_interval_bytes = 4096;
    cfg->max_index_bytes = 10 << 20;
    cfg->flush_interval_messages = INT64_MAX;
    cfg->max_batch_size = 0;
}

/* ---------------------------------------------------------------- files */

static char *seg_file(const kc_segment_t *s, const char *ext) {
    size_t n = strlen(s->path) + strlen(ext) + 1;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%s%s", s->path, ext);
    return p;
}

static int fsync_dir(const char *dir) {
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return KC_ERR_IO;
    int rc = fsync(fd) == 0 ? KC_OK : KC_ERR_IO;
    close(fd);
    return rc;
}

static int mkdir_p(const char *dir) {
    char *tmp = strdup(dir);
    if (!tmp)
        return KC_ERR_NOMEM;
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = 0;
        if (mkdir(tmp, 0755) != 0 && errno != EEXIST) {
            free(tmp);
            return KC_ERR_IO;
        }
        *p = '/';
    }
    int rc = (mkdir(tmp, 0755) == 0 || errno == EEXIST) ? KC_OK : KC_ERR_IO;
    free(tmp);
    return rc;
}

static char *dir_file(const kc_log_t *l, const char *name) {
    size_t n = strlen(l->dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%s/%s", l->dir, name);
    return p;
}

/* ------------------------------------------------------------- segments */

static void seg_unref(kc_segment_t *s) {
    if (atomic_fetch_sub(&s->refs, 1) != 1)
        return;
    kc_index_close(&s->oidx);
    kc_index_close(&s->tidx);
    if (s->map)
        munmap(s->map, s->map_len);
    if (s->fd >= 0)
        close(s->fd);
    free(s->path);
    free(s);
}

static kc_segment_t *seg_alloc(const kc_log_t *l, int64_t base) {
    kc_segment_t *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    size_t n = strlen(l->dir) + 24;
    s->path = malloc(n);
    if (!s->path) {
        free(s);
        return NULL;
    }
    snprintf(s->path, n, "%s/%020lld", l->dir, (long long)base);
    s->base_offset = base;
    s->next_offset = base;
    s->fd = -1;
    s->oidx.fd = s->tidx.fd = -1;
    s->max_timestamp = s->offset_of_max_ts = s->first_batch_ts = -1;
    atomic_init(&s->refs, 1);
    return s;
}

/* Open (fresh: create/truncate) the two index files of s. */
static int seg_open_indexes(const kc_log_t *l, kc_segment_t *s, int64_t bytes, int fresh) {
    char *op = seg_file(s, ".index"), *tp = seg_file(s, ".timeindex");
    int rc = KC_ERR_NOMEM;
    if (op && tp) {
        kc_index_close(&s->oidx);
        kc_index_close(&s->tidx);
        rc = kc_index_open(&s->oidx, op, KC_INDEX_OFFSET_ENTRY, s->base_offset, bytes, fresh);
        if (rc == KC_OK)
            rc = kc_index_open(&s->tidx, tp, KC_INDEX_TIME_ENTRY, s->base_offset, bytes, fresh);
    }
    (void)l;
    free(op);
    free(tp);
    return rc;
}

/* A new, empty segment (files created or emptied). */
static int seg_create(kc_log_t *l, int64_t base, int64_t now_ms, kc_segment_t **out) {
    kc_segment_t *s = seg_alloc(l, base);
    if (!s)
        return KC_ERR_NOMEM;
    char *lp = seg_file(s, ".log");
    int rc = KC_ERR_NOMEM;
    if (lp) {
        s->fd = open(lp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        rc = s->fd < 0 ? KC_ERR_IO : seg_open_indexes(l, s, l->cfg.max_index_bytes, 1);
    }
    free(lp);
    if (rc != KC_OK) {
        int e = errno;
        seg_unref(s);
        errno = e;
        return rc;
    }
    s->created_ms = now_ms;
    l->dir_dirty = 1;
    *out = s;
    return KC_OK;
}

static void seg_unlink(kc_segment_t *s) {
    static const char *exts[] = {".log", ".index", ".timeindex"};
    for (size_t i = 0; i < 3; i++) {
        char *p = seg_file(s, exts[i]);
        if (p)
            unlink(p);
        free(p);
    }
}

/* Make the read-only mapping cover [0, need).  Mapping past the end of the
 * file is allowed as long as those pages are never touched, so the active
 * segment's map grows geometrically instead of on every append. */
static int seg_map(const kc_log_t *l, kc_segment_t *s, int64_t need) {
    if ((size_t)need <= s->map_len)
        return KC_OK;
    size_t page = 4096, len = (size_t)need;
    size_t grow = s->map_len * 2 > (1u << 20) ? s->map_len * 2 : (1u << 20);
    size_t cap = (size_t)(l->cfg.segment_bytes > need ? l->cfg.segment_bytes : need);
    if (grow > cap)
        grow = cap;
    if (grow > len)
        len = grow;
    len = (len + page - 1) & ~(page - 1);
    void *p = mmap(NULL, len, PROT_READ, MAP_SHARED, s->fd, 0);
    if (p == MAP_FAILED)
        return KC_ERR_IO;
    if (s->map)
        munmap(s->map, s->map_len);
    s->map = p;
    s->map_len = len;
    return KC_OK;
}

static void hdr_decode(const uint8_t *p, hdr_t *h) {
    h->base = (int64_t)kc_be64(p);
    h->size = (int64_t)(int32_t)kc_be32(p + 8) + KC_BATCH_LOG_OVERHEAD;
    h->attributes = (int16_t)kc_be16(p + 21);
    h->last = h->base + (int32_t)kc_be32(p + 23);
    h->first_ts = (int64_t)kc_be64(p + 27);
    h->max_ts = (int64_t)kc_be64(p + 35);
}

/* Header of the batch at pos of a segment whose bytes up to limit were
 * validated when written; the bounds checks guard against a stale index. */
static int seg_hdr(const kc_segment_t *s, int64_t pos, int64_t limit, hdr_t *h) {
    if (pos < 0 || limit - pos < KC_BATCH_HEADER_SIZE)
        return KC_ERR_CORRUPT_INDEX;
    hdr_decode(s->map + pos, h);
    if (h->size < KC_BATCH_HEADER_SIZE || h->size > limit - pos)
        return KC_ERR_CORRUPT_INDEX;
    return KC_OK;
}

/* Account one batch at pos as LogSegment.append does: track the largest
 * timestamp, and add index entries when more than index_interval_bytes
 * were written since the last entry. */
static void seg_account(const kc_log_t *l, kc_segment_t *s, const hdr_t *h, int64_t pos, int index) {
    if (pos == 0)
        s->first_batch_ts = h->max_ts;
    if (h->max_ts > s->max_timestamp) {
        s->max_timestamp = h->max_ts;
        s->offset_of_max_ts = h->last;
    }
    if (index && s->bytes_since_index > l->cfg.index_interval_bytes) {
        /* full index or an offset beyond i32: skip the entry (the index is
         * sparse; the next append rolls the segment) */
        if (kc_index_append_offset(&s->oidx, h->last, pos) == KC_OK && s->max_timestamp >= 0)
            kc_index_append_time(&s->tidx, s->max_timestamp, s->offset_of_max_ts);
        s->bytes_since_index = 0;
    }
    s->bytes_since_index += h->size;
    s->next_offset = h->last + 1;
}

/* Walk the file bytes [from, size) of s.  validate: full check of every
 * batch (kc_batch_validate: lengths, magic, CRC) and offsets increasing
 * from *prev_next; otherwise header sanity only.  index: rebuild index
 * entries.  Stops at the first bad batch: *valid_end is where it starts. */
static int seg_walk(kc_log_t *l, kc_segment_t *s, int64_t from, int64_t size, int validate, int index,
                    int64_t *prev_next, int64_t *valid_end, int64_t *batches) {
    int rc = size > 0 ? seg_map(l, s, size) : KC_OK;
    int64_t pos = from;
    while (rc == KC_OK && pos < size) {
        kc_batch_info_t bi;
        rc = validate ? kc_batch_validate(s->map + pos, (size_t)(size - pos), 0, &bi)
                      : kc_batch_parse(s->map + pos, (size_t)(size - pos), 0, &bi);
        if (rc != KC_OK)
            break;
        hdr_t h;
        hdr_decode(s->map + pos, &h);
        if (h.base < s->base_offset || h.base < *prev_next || h.last < h.base ||
            h.last - s->base_offset > INT32_MAX) {
            rc = KC_ERR_BAD_COUNT; /* offsets must increase and belong to this segment */
            break;
        }
        seg_account(l, s, &h, pos, index);
        *prev_next = h.last + 1;
        pos += h.size;
        (*batches)++;
    }
    *valid_end = pos;
    return rc;
}

/* Load a segment that needs no recovery: trust its bytes, check its
 * indexes (rebuilding them when they fail), and walk the tail after the
 * last index entry to find its next offset and largest timestamp. */
static int seg_load(kc_log_t *l, kc_segment_t *s, int active, int64_t *prev_next) {
    int64_t b = 0, end = 0;
    char *op = seg_file(s, ".index"), *tp = seg_file(s, ".timeindex");
    int missing = !op || !tp || access(op, F_OK) != 0 || access(tp, F_OK) != 0;
    free(op);
    free(tp);
    int rc = seg_open_indexes(l, s, active ? l->cfg.max_index_bytes : 0, 0);
    if (rc != KC_OK)
        return rc;
    if (s->size == 0)
        return KC_OK;
    int ok = !missing && kc_index_check_offset(&s->oidx, s->size, INT64_MAX) == KC_OK &&
             kc_index_check_time(&s->tidx, INT64_MAX) == KC_OK;
    int64_t from = 0, eoff = s->base_offset;
    if (ok && s->oidx.entries > 0) {
        kc_index_offset_entry(&s->oidx, s->oidx.entries - 1, &eoff, &from);
        hdr_t h;
        ok = seg_map(l, s, s->size) == KC_OK && seg_hdr(s, from, s->size, &h) == KC_OK && h.last == eoff;
    }
    if (ok) {
        hdr_t h0;
        if (seg_map(l, s, s->size) != KC_OK || seg_hdr(s, 0, s->size, &h0) != KC_OK)
            return KC_ERR_CORRUPT_INDEX;
        if (s->tidx.entries > 0)
            kc_index_time_entry(&s->tidx, s->tidx.entries - 1, &s->max_timestamp, &s->offset_of_max_ts);
        int64_t pn = from > 0 ? eoff : *prev_next;
        rc = seg_walk(l, s, from, s->size, 0, 0, &pn, &end, &b);
        s->first_batch_ts = h0.max_ts;
        if (rc == KC_OK && kc_index_check_time(&s->tidx, s->next_offset) == KC_OK) {
            *prev_next = s->next_offset;
            return KC_OK;
        }
    }
    /* rebuild both indexes from the log (headers only) */
    s->max_timestamp = s->offset_of_max_ts = -1;
    s->bytes_since_index = 0;
    s->next_offset = s->base_offset;
    rc = seg_open_indexes(l, s, l->cfg.max_index_bytes, 1);
    if (rc == KC_OK)
        rc = seg_walk(l, s, 0, s->size, 0, 1, prev_next, &end, &b);
    if (rc == KC_OK && !active) {
        kc_index_resize(&s->oidx, 0);
        kc_index_resize(&s->tidx, 0);
    }
    return rc;
}

/* The segment is no longer active: final time-index entry, trim indexes. */
static void seg_deactivate(kc_segment_t *s) {
    if (s->max_timestamp >= 0)
        kc_index_append_time(&s->tidx, s->max_timestamp, s->offset_of_max_ts);
    kc_index_resize(&s->oidx, 0);
    kc_index_resize(&s->tidx, 0);
}

/* Cut s at pos (a batch boundary) and recompute what depends on its tail. */
static int seg_truncate(kc_log_t *l, kc_segment_t *s, int64_t pos) {
    if (ftruncate(s->fd, pos) != 0)
        return KC_ERR_IO;
    s->size = pos;
    if (s->flushed_size > pos)
        s->flushed_size = pos;
    kc_index_truncate_position(&s->oidx, pos);
    int64_t from = 0, eoff = s->base_offset, pn = s->base_offset, end, b = 0;
    if (s->oidx.entries > 0)
        kc_index_offset_entry(&s->oidx, s->oidx.entries - 1, &eoff, &from);
    /* the time index may name offsets at or after the cut */
    s->next_offset = s->base_offset;
    s->max_timestamp = s->offset_of_max_ts = -1;
    s->bytes_since_index = 0;
    if (from > 0)
        pn = eoff;
    int rc = seg_walk(l, s, from, pos, 0, 0, &pn, &end, &b);
    if (rc != KC_OK)
        return rc;
    kc_index_truncate_time(&s->tidx, s->next_offset);
    if (s->tidx.entries > 0) {
        int64_t t, o;
        kc_index_time_entry(&s->tidx, s->tidx.entries - 1, &t, &o);
        if (t > s->max_timestamp) {
            s->max_timestamp = t;
            s->offset_of_max_ts = o;
        }
    }
    if (pos == 0)
        s->first_batch_ts = -1;
    return kc_index_resize(&s->oidx, l->cfg.max_index_bytes) == KC_OK
               ? kc_index_resize(&s->tidx, l->cfg.max_index_bytes)
               : KC_ERR_IO;
}

/* ------------------------------------------------------------ the list */

static kc_segment_t *active(const kc_log_t *l) { return l->segs[l->nsegs - 1]; }

static int list_push(kc_log_t *l, kc_segment_t *s) {
    if (l->nsegs == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 8;
        kc_segment_t **p = realloc(l->segs, cap * sizeof(*p));
        if (!p)
            return KC_ERR_NOMEM;
        l->segs = p;
        l->cap = cap;
    }
    l->segs[l->nsegs++] = s;
    return KC_OK;
}

/* Remove segments [from, from + n) from the list and the disk. */
static void list_delete(kc_log_t *l, size_t from, size_t n) {
    for (size_t i = from; i < from + n; i++) {
        seg_unlink(l->segs[i]);
        seg_unref(l->segs[i]);
    }
    memmove(l->segs + from, l->segs + from + n, (l->nsegs - from - n) * sizeof(*l->segs));
    l->nsegs -= n;
    if (n)
        l->dir_dirty = 1;
}

/* Index of the last segment whose base <= offset (0 if none). */
static size_t list_floor(const kc_log_t *l, int64_t offset) {
    size_t lo = 0, hi = l->nsegs;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (l->segs[mid]->base_offset <= offset)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo ? lo - 1 : 0;
}

/* Roll a new active segment at base (mu held). */
static int roll_locked(kc_log_t *l, int64_t base, int64_t now_ms) {
    kc_segment_t *s;
    int rc = seg_create(l, base, now_ms, &s);
    if (rc != KC_OK)
        return rc;
    rc = list_push(l, s);
    if (rc != KC_OK) {
        seg_unlink(s);
        seg_unref(s);
        return rc;
    }
    seg_deactivate(l->segs[l->nsegs - 2]);
    return KC_OK;
}

/* The batch holding offset inside s (first batch whose last offset >=
 * offset): offset index, then a walk of at most index_interval_bytes. */
static int seg_find(const kc_log_t *l, kc_segment_t *s, int64_t offset, int64_t *pos, hdr_t *h) {
    if (offset >= s->next_offset || s->size == 0)
        return KC_ERR_NOT_FOUND;
    int rc = seg_map(l, s, s->size);
    if (rc != KC_OK)
        return rc;
    int64_t eo, p;
    kc_index_lookup_offset(&s->oidx, offset, &eo, &p);
    while (p < s->size) {
        if ((rc = seg_hdr(s, p, s->size, h)) != KC_OK)
            return rc;
        if (h->last >= offset) {
            *pos = p;
            return KC_OK;
        }
        p += h->size;
    }
    return KC_ERR_NOT_FOUND;
}

/* The batch holding offset in the log (mu held). */
static int log_find(const kc_log_t *l, int64_t offset, size_t *si, int64_t *pos, hdr_t *h) {
    for (size_t i = list_floor(l, offset); i < l->nsegs; i++) {
        int rc = seg_find(l, l->segs[i], offset, pos, h);
        if (rc == KC_OK)
            *si = i;
        if (rc != KC_ERR_NOT_FOUND)
            return rc;
    }
    return KC_ERR_NOT_FOUND;
}

/* Last offset of the batch that ends at end (> 0) in s. */
static int seg_last_before(const kc_log_t *l, kc_segment_t *s, int64_t start, int64_t end, int64_t *last) {
    int64_t eo, p;
    kc_index_lookup_position(&s->oidx, end - 1, &eo, &p);
    if (p < start)
        p = start;
    hdr_t h = {.last = s->base_offset - 1};
    while (p < end) {
        int rc = seg_hdr(s, p, end, &h);
        if (rc != KC_OK)
            return rc;
        p += h.size;
    }
    (void)l;
    *last = h.last;
    return KC_OK;
}

/* ------------------------------------------------------ open and close */

static int read_checkpoint(const kc_log_t *l, int64_t *rp, int64_t *lso) {
    *rp = *lso = 0;
    char *p = dir_file(l, CHECKPOINT);
    if (!p)
        return KC_ERR_NOMEM;
    FILE *f = fopen(p, "r");
    free(p);
    if (!f)
        return KC_OK; /* none yet: recover everything */
    long long a, b;
    if (fscanf(f, "%lld %lld", &a, &b) == 2 && a >= 0 && b >= 0) {
        *rp = a;
        *lso = b;
    }
    fclose(f);
    return KC_OK;
}

static int write_checkpoint(kc_log_t *l, int64_t rp, int64_t lso) {
    char *p = dir_file(l, CHECKPOINT), *tmp = dir_file(l, CHECKPOINT ".tmp");
    int rc = KC_ERR_NOMEM;
    if (p && tmp) {
        char line[64];
        int n = snprintf(line, sizeof line, "%lld %lld\n", (long long)rp, (long long)lso);
        int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        rc = KC_ERR_IO;
        if (fd >= 0) {
            int ok = write(fd, line, (size_t)n) == n && fsync(fd) == 0;
            close(fd);
            /* write-then-rename: a crash leaves the old or the new file, whole */
            if (ok && rename(tmp, p) == 0)
                rc = fsync_dir(l->dir);
        }
    }
    free(p);
    free(tmp);
    return rc;
}

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Base offsets of the "<20 digits>.log" files in the directory, sorted. */
static int list_bases(const kc_log_t *l, int64_t **out, size_t *n) {
    DIR *d = opendir(l->dir);
    if (!d)
        return KC_ERR_IO;
    size_t cap = 16, k = 0;
    int64_t *v = malloc(cap * sizeof(*v));
    struct dirent *e;
    while (v && (e = readdir(d)) != NULL) {
        const char *nm = e->d_name;
        if (strlen(nm) != 24 || strcmp(nm + 20, ".log") != 0 || strspn(nm, "0123456789") != 20)
            continue;
        if (k == cap) {
            int64_t *nv = realloc(v, (cap *= 2) * sizeof(*v));
            if (!nv) {
                free(v);
                v = NULL;
                break;
            }
            v = nv;
        }
        v[k++] = strtoll(nm, NULL, 10);
    }
    closedir(d);
    if (!v)
        return KC_ERR_NOMEM;
    qsort(v, k, sizeof(*v), cmp_i64);
    *out = v;
    *n = k;
    return KC_OK;
}

/* Re-read segment s (CRC and offsets), rebuilding its indexes; cut it at
 * the first bad byte.  Returns 1 when it was cut (later segments must go). */
static int seg_recover(kc_log_t *l, kc_segment_t *s, int64_t *prev_next, int *err) {
    int64_t end = 0;
    *err = seg_open_indexes(l, s, l->cfg.max_index_bytes, 1);
    if (*err != KC_OK)
        return -1;
    l->rec.segments_scanned++;
    int rc = seg_walk(l, s, 0, s->size, 1, 1, prev_next, &end, &l->rec.batches_scanned);
    if (rc == KC_ERR_IO || rc == KC_ERR_NOMEM) {
        *err = rc;
        return -1;
    }
    int cut = rc != KC_OK;
    if (cut) {
        if (l->rec.first_error == KC_OK)
            l->rec.first_error = rc;
        l->rec.bytes_truncated += s->size - end;
        if (ftruncate(s->fd, end) != 0) {
            *err = KC_ERR_IO;
            return -1;
        }
        s->size = end;
    }
    /* recovered bytes are made durable now so the recovery point can move */
    if (fdatasync(s->fd) != 0) {
        *err = KC_ERR_IO;
        return -1;
    }
    *err = KC_OK;
    return cut;
}

static int open_segments(kc_log_t *l, int clean, int64_t rp, int64_t lso, int64_t now_ms) {
    int64_t *bases = NULL;
    size_t n = 0;
    int rc = list_bases(l, &bases, &n);
    if (rc != KC_OK)
        return rc;
    for (size_t i = 0; i < n && rc == KC_OK; i++) {
        kc_segment_t *s = seg_alloc(l, bases[i]);
        char *lp = s ? seg_file(s, ".log") : NULL;
        struct stat st;
        if (!lp) {
            rc = KC_ERR_NOMEM;
        } else if ((s->fd = open(lp, O_RDWR | O_CLOEXEC)) < 0 || fstat(s->fd, &st) != 0) {
            rc = KC_ERR_IO;
        } else {
            s->size = st.st_size;
            s->created_ms = (int64_t)st.st_mtim.tv_sec * 1000 + st.st_mtim.tv_nsec / 1000000;
            rc = list_push(l, s);
        }
        free(lp);
        if (rc != KC_OK && s)
            seg_unref(s);
    }
    free(bases);
    if (rc != KC_OK)
        return rc;
    if (l->nsegs == 0) {
        kc_segment_t *s;
        rc = seg_create(l, lso, now_ms, &s);
        if (rc == KC_OK && (rc = list_push(l, s)) != KC_OK)
            seg_unref(s);
        return rc;
    }
    /* Segments before the one holding the recovery point were flushed:
     * trust them.  The rest are re-read. */
    size_t rstart = clean ? l->nsegs : list_floor(l, rp);
    int64_t prev_next = l->segs[0]->base_offset;
    for (size_t i = 0; i < l->nsegs; i++) {
        kc_segment_t *s = l->segs[i];
        int last = i + 1 == l->nsegs;
        if (i < rstart) {
            int64_t pn = prev_next;
            rc = seg_load(l, s, last, &pn);
            if (rc == KC_ERR_IO || rc == KC_ERR_NOMEM)
                return rc;
            if (rc == KC_OK) {
                prev_next = pn;
                continue;
            }
            rstart = i; /* inconsistent: recover from here on */
            l->rec.clean = 0;
        }
        int err, cut = seg_recover(l, s, &prev_next, &err);
        if (cut < 0)
            return err;
        if (cut && !last) {
            l->rec.segments_deleted += (int64_t)(l->nsegs - i - 1);
            list_delete(l, i + 1, l->nsegs - i - 1);
            last = 1;
        }
        if (!last) {
            seg_deactivate(s);
        }
    }
    return KC_OK;
}

int kc_log_open(const char *dir, const kc_log_config_t *cfg, int64_t now_ms, kc_log_t **out) {
    if (!dir || !out)
        return KC_ERR_ARG;
    *out = NULL;
    int rc = mkdir_p(dir);
    if (rc != KC_OK)
        return rc;
    kc_log_t *l = calloc(1, sizeof(*l));
    if (!l || !(l->dir = strdup(dir))) {
        free(l);
        return KC_ERR_NOMEM;
    }
    if (cfg)
        l->cfg = *cfg;
    else
        kc_log_config_default(&l->cfg);
    if (l->cfg.segment_bytes <= 0)
        l->cfg.segment_bytes = 1LL << 30;
    if (l->cfg.index_interval_bytes < 0)
        l->cfg.index_interval_bytes = 0;
    if (l->cfg.max_index_bytes < 2 * KC_INDEX_TIME_ENTRY)
        l->cfg.max_index_bytes = 2 * KC_INDEX_TIME_ENTRY; /* at least one entry of each */
    if (l->cfg.flush_interval_messages <= 0)
        l->cfg.flush_interval_messages = INT64_MAX;
    pthread_mutex_init(&l->mu, NULL);
    pthread_mutex_init(&l->append_mu, NULL);
    pthread_mutex_init(&l->flush_mu, NULL);

    int64_t rp, lso;
    char *marker = dir_file(l, CLEAN_MARKER);
    rc = marker ? read_checkpoint(l, &rp, &lso) : KC_ERR_NOMEM;
    int clean = marker && access(marker, F_OK) == 0;
    l->rec.clean = clean;
    if (rc == KC_OK)
        rc = open_segments(l, clean, rp, lso, now_ms);
    /* remove the marker only now: a crash during recovery recovers again */
    if (rc == KC_OK && clean && unlink(marker) != 0)
        rc = KC_ERR_IO;
    free(marker);
    if (rc == KC_OK) {
        l->end_offset = active(l)->next_offset;
        l->start_offset = lso > l->segs[0]->base_offset ? lso : l->segs[0]->base_offset;
        if (l->start_offset > l->end_offset)
            l->start_offset = l->end_offset;
        for (size_t i = 0; i < l->nsegs; i++)
            l->segs[i]->flushed_size = l->segs[i]->size;
        l->recovery_point = l->end_offset;
        if (active(l)->size == 0)
            active(l)->created_ms = now_ms;
        rc = fsync_dir(l->dir);
        l->dir_dirty = 0;
        if (rc == KC_OK)
            rc = write_checkpoint(l, l->recovery_point, l->start_offset);
    }
    if (rc != KC_OK) {
        int e = errno;
        kc_log_close(l, 0);
        errno = e;
        return rc;
    }
    *out = l;
    return KC_OK;
}

void kc_log_recovery_info(const kc_log_t *l, kc_recovery_info_t *out) { *out = l->rec; }

static void log_free(kc_log_t *l) {
    for (size_t i = 0; i < l->nsegs; i++)
        seg_unref(l->segs[i]);
    free(l->segs);
    pthread_mutex_destroy(&l->mu);
    pthread_mutex_destroy(&l->append_mu);
    pthread_mutex_destroy(&l->flush_mu);
    free(l->dir);
    free(l);
}

int kc_log_close(kc_log_t *l, int clean) {
    if (!l)
        return KC_ERR_ARG;
    int rc = KC_OK;
    if (clean && l->nsegs > 0) {
        rc = kc_log_flush(l);
        kc_segment_t *s = active(l);
        seg_deactivate(s);
        for (size_t i = 0; rc == KC_OK && i < l->nsegs; i++) {
            if ((rc = kc_index_sync(&l->segs[i]->oidx)) == KC_OK)
                rc = kc_index_sync(&l->segs[i]->tidx);
        }
        if (rc == KC_OK)
            rc = write_checkpoint(l, l->recovery_point, l->start_offset);
        if (rc == KC_OK) {
            char *m = dir_file(l, CLEAN_MARKER);
            int fd = m ? open(m, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644) : -1;
            rc = fd >= 0 && fsync(fd) == 0 ? KC_OK : KC_ERR_IO;
            if (fd >= 0)
                close(fd);
            free(m);
            if (rc == KC_OK)
                rc = fsync_dir(l->dir);
        }
    }
    int e = errno;
    log_free(l);
    errno = e;
    return rc;
}

int kc_log_delete(kc_log_t *l) {
    if (!l)
        return KC_ERR_ARG;
    char *dir = strdup(l->dir);
    log_free(l);
    if (!dir)
        return KC_ERR_NOMEM;
    int rc = KC_OK;
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            if (unlinkat(dirfd(d), e->d_name, 0) != 0)
                rc = KC_ERR_IO;
        }
        closedir(d);
    }
    if (rc == KC_OK && rmdir(dir) != 0)
        rc = KC_ERR_IO;
    free(dir);
    return rc;
}

/* --------------------------------------------------------------- append */

/* Kafka's LogSegment.shouldRoll.  Time: with record timestamps, the
 * append's largest timestamp against the segment's first batch (so
 * producer and broker clocks are never mixed); without, wall time since
 * the segment was created. */
static int need_roll(const kc_log_t *l, const kc_segment_t *s, int64_t len, int64_t last, int64_t max_ts,
                     int64_t now_ms) {
    if (s->size == 0)
        return 0;
    int64_t waited = s->first_batch_ts >= 0 ? max_ts - s->first_batch_ts : now_ms - s->created_ms;
    return s->size + len > l->cfg.segment_bytes || s->size + len > INT32_MAX ||
           last - s->base_offset > INT32_MAX || kc_index_full(&s->oidx) || kc_index_full(&s->tidx) ||
           (l->cfg.roll_ms >= 0 && waited > l->cfg.roll_ms);
}

int kc_log_append(kc_log_t *l, uint8_t *buf, size_t len, uint32_t flags, int32_t leader_epoch,
                  int64_t log_append_time, int64_t now_ms, kc_append_info_t *info) {
    if (!l || !buf || len == 0 || !info || len > INT32_MAX)
        return KC_ERR_ARG;
    size_t nb = 0, valid = 0;
    uint32_t sflags = (flags & KC_APPEND_SKIP_CRC) ? 0 : KC_SCAN_VERIFY_CRC;
    int rc = kc_batch_scan(buf, len, sflags, (size_t)(l->cfg.max_batch_size > 0 ? l->cfg.max_batch_size : 0),
                           NULL, 0, &nb, &valid);
    if (rc != KC_OK)
        return rc;
    if (nb == 0)
        return KC_ERR_TRUNCATED;
    /* an empty batch (count 0, lastOffsetDelta -1) would own no offset
     * and break "offsets strictly increase"; Kafka's produce path refuses it too */
    for (size_t p = 0; p < len; p += (size_t)(int32_t)kc_be32(buf + p + 8) + KC_BATCH_LOG_OVERHEAD)
        if ((int32_t)kc_be32(buf + p + 23) < 0)
            return KC_ERR_BAD_COUNT;
    pthread_mutex_lock(&l->append_mu);
    int assign = (flags & KC_APPEND_ASSIGN_OFFSETS) != 0;
    int64_t first = l->end_offset, next = first;
    if (assign) {
        rc = kc_batch_assign_offsets(buf, len, first, leader_epoch, log_append_time, &next);
    } else {
        /* replica/compactor bytes keep their offsets: they must increase */
        hdr_t h;
        hdr_decode(buf, &h);
        first = h.base;
        for (size_t p = 0; p < len && rc == KC_OK; p += (size_t)h.size) {
            hdr_decode(buf + p, &h);
            if (h.base < next || h.last < h.base)
                rc = KC_ERR_OFFSET_OUT_OF_RANGE;
            next = h.last + 1;
        }
    }
    if (rc != KC_OK) {
        pthread_mutex_unlock(&l->append_mu);
        return rc;
    }
    int64_t max_ts = -1;
    for (size_t p = 0; p < len; p += (size_t)(int32_t)kc_be32(buf + p + 8) + KC_BATCH_LOG_OVERHEAD)
        if ((int64_t)kc_be64(buf + p + 35) > max_ts)
            max_ts = (int64_t)kc_be64(buf + p + 35);
    pthread_mutex_lock(&l->mu);
    kc_segment_t *s = active(l);
    if (need_roll(l, s, (int64_t)len, next - 1, max_ts, now_ms)) {
        rc = roll_locked(l, first, now_ms);
        s = active(l);
    }
    int64_t pos = s->size;
    pthread_mutex_unlock(&l->mu);
    /* the active segment cannot go away: every remover holds append_mu */
    for (size_t done = 0; rc == KC_OK && done < len;) {
        ssize_t w = pwrite(s->fd, buf + done, len - done, pos + (off_t)done);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            int e = w < 0 ? errno : EIO;
            if (ftruncate(s->fd, pos) != 0) { /* drop a partial batch; best effort */ }
            errno = e;
            rc = KC_ERR_IO;
        }
        done += w > 0 ? (size_t)w : 0;
    }
    if (rc != KC_OK) {
        pthread_mutex_unlock(&l->append_mu);
        return rc;
    }
    memset(info, 0, sizeof(*info));
    info->first_offset = first;
    info->last_offset = next - 1;
    info->max_timestamp = info->offset_of_max_timestamp = -1;
    info->log_append_time = assign && log_append_time >= 0 ? log_append_time : -1;
    info->segment_base = s->base_offset;
    info->position = pos;
    pthread_mutex_lock(&l->mu);
    for (size_t p = 0; p < len;) {
        hdr_t h;
        hdr_decode(buf + p, &h);
        if (h.max_ts > info->max_timestamp) {
            info->max_timestamp = h.max_ts;
            info->offset_of_max_timestamp = h.last;
        }
        info->records += (int32_t)kc_be32(buf + p + 57);
        info->batches++;
        seg_account(l, s, &h, pos + (int64_t)p, 1);
        p += (size_t)h.size;
    }
    s->size = pos + (int64_t)len; /* publish: readers now see the new batches */
    l->end_offset = s->next_offset;
    l->unflushed += info->records;
    info->flush_due = l->unflushed >= l->cfg.flush_interval_messages;
    pthread_mutex_unlock(&l->mu);
    pthread_mutex_unlock(&l->append_mu);
    return KC_OK;
}

/* ---------------------------------------------------------------- reads */

int kc_log_read(kc_log_t *l, int64_t offset, int64_t max_bytes, int64_t max_offset, kc_slice_t *out) {
    if (!l || !out)
        return KC_ERR_ARG;
    memset(out, 0, sizeof(*out));
    out->fd = -1;
    out->first_offset = out->last_offset = -1;
    pthread_mutex_lock(&l->mu);
    int rc = KC_OK;
    if (offset < l->start_offset || offset > l->end_offset) {
        rc = KC_ERR_OFFSET_OUT_OF_RANGE;
        goto done;
    }
    if (offset == l->end_offset || (max_offset >= 0 && offset >= max_offset))
        goto done;
    size_t si;
    int64_t start;
    hdr_t h0;
    if ((rc = log_find(l, offset, &si, &start, &h0)) != KC_OK) {
        if (rc == KC_ERR_NOT_FOUND)
            rc = KC_OK; /* a gap up to the end (compacted tail): nothing to read */
        goto done;
    }
    kc_segment_t *s = l->segs[si];
    /* a batch that reaches max_offset is not readable yet */
    if (max_offset >= 0 && h0.last >= max_offset)
        goto done;
    int64_t limit = s->size, mpos;
    hdr_t hm;
    if (max_offset >= 0 && max_offset < s->next_offset && seg_find(l, s, max_offset, &mpos, &hm) == KC_OK)
        limit = mpos;
    int64_t want = start + (max_bytes > 0 ? max_bytes : 0), end;
    if (want >= limit) {
        end = limit;
    } else {
        /* a batch boundary <= want: from the index entry below it, walk */
        int64_t eo, p;
        kc_index_lookup_position(&s->oidx, want, &eo, &p);
        end = p > start ? p : start;
        hdr_t h;
        while (end < limit && seg_hdr(s, end, limit, &h) == KC_OK && end + h.size <= want)
            end += h.size;
        if (end == start)
            end = start + h0.size; /* at least one whole batch */
    }
    int64_t last;
    if (end == s->size)
        last = s->next_offset - 1;
    else if ((rc = seg_last_before(l, s, start, end, &last)) != KC_OK)
        goto done;
    atomic_fetch_add(&s->refs, 1);
    out->fd = s->fd;
    out->position = start;
    out->length = end - start;
    out->segment_base = s->base_offset;
    out->first_offset = h0.base;
    out->last_offset = last;
    out->ref = s;
done:
    pthread_mutex_unlock(&l->mu);
    return rc;
}

void kc_slice_release(kc_slice_t *s) {
    if (s && s->ref) {
        seg_unref(s->ref);
        s->ref = NULL;
        s->fd = -1;
    }
}

int kc_log_lookup(kc_log_t *l, int64_t offset, kc_position_t *out) {
    if (!l || !out)
        return KC_ERR_ARG;
    pthread_mutex_lock(&l->mu);
    int rc = KC_ERR_OFFSET_OUT_OF_RANGE;
    if (offset >= l->start_offset && offset < l->end_offset) {
        size_t si;
        int64_t pos;
        hdr_t h;
        rc = log_find(l, offset, &si, &pos, &h);
        if (rc == KC_OK) {
            out->segment_base = l->segs[si]->base_offset;
            out->position = pos;
            out->batch_base_offset = h.base;
            out->batch_last_offset = h.last;
            out->batch_max_timestamp = h.max_ts;
            out->batch_size = (int32_t)h.size;
        }
    }
    pthread_mutex_unlock(&l->mu);
    return rc;
}

/* First record of the batch at p (header h) whose timestamp >= ts. */
static void batch_find_time(const kc_segment_t *s, int64_t p, const hdr_t *h, int64_t ts, int64_t min_off,
                            int64_t *offset, int64_t *found_ts, int *exact) {
    *offset = h->base > min_off ? h->base : min_off;
    *found_ts = h->max_ts;
    *exact = 0;
    if (h->attributes & KC_ATTR_LOG_APPEND_TIME) {
        *exact = 1; /* every record carries maxTimestamp */
        return;
    }
    if ((h->attributes & KC_ATTR_CODEC_MASK) != KC_CODEC_NONE)
        return; /* records are compressed: the batch is the answer */
    const uint8_t *rb = s->map + p;
    size_t pos = KC_BATCH_HEADER_SIZE, len = (size_t)h->size;
    kc_record_t r;
    while (pos < len && kc_record_next(rb, len, &pos, &r) == KC_OK) {
        int64_t o = h->base + r.offset_delta, t = h->first_ts + r.timestamp_delta;
        if (t >= ts && o >= min_off) {
            *offset = o;
            *found_ts = t;
            *exact = 1;
            return;
        }
    }
}

int kc_log_lookup_time(kc_log_t *l, int64_t ts, int64_t *offset, int64_t *found_ts, int *exact) {
    if (!l || !offset || !found_ts || !exact)
        return KC_ERR_ARG;
    pthread_mutex_lock(&l->mu);
    int rc = KC_ERR_NOT_FOUND;
    for (size_t i = 0; i < l->nsegs && rc == KC_ERR_NOT_FOUND; i++) {
        kc_segment_t *s = l->segs[i];
        if (s->max_timestamp < ts || s->size == 0 || s->next_offset <= l->start_offset)
            continue;
        if ((rc = seg_map(l, s, s->size)) != KC_OK)
            break;
        int64_t t, o, eo, p = 0;
        if (kc_index_lookup_time(&s->tidx, ts, &t, &o))
            kc_index_lookup_offset(&s->oidx, o, &eo, &p);
        rc = KC_ERR_NOT_FOUND;
        hdr_t h;
        for (; p < s->size && seg_hdr(s, p, s->size, &h) == KC_OK; p += h.size) {
            if (h.max_ts >= ts && h.last >= l->start_offset) {
                batch_find_time(s, p, &h, ts, l->start_offset, offset, found_ts, exact);
                rc = KC_OK;
                break;
            }
        }
    }
    pthread_mutex_unlock(&l->mu);
    return rc;
}

int kc_log_max_timestamp(kc_log_t *l, int64_t *ts, int64_t *offset) {
    if (!l || !ts || !offset)
        return KC_ERR_ARG;
    pthread_mutex_lock(&l->mu);
    *ts = *offset = -1;
    for (size_t i = 0; i < l->nsegs; i++) {
        if (l->segs[i]->max_timestamp > *ts) {
            *ts = l->segs[i]->max_timestamp;
            *offset = l->segs[i]->offset_of_max_ts;
        }
    }
    pthread_mutex_unlock(&l->mu);
    return KC_OK;
}

/* ------------------------------------------------------- flush, roll, cut */

static int64_t now_wall_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int kc_log_flush(kc_log_t *l) {
    if (!l)
        return KC_ERR_ARG;
    pthread_mutex_lock(&l->flush_mu);
    pthread_mutex_lock(&l->mu);
    /* snapshot under mu: every byte below end is in some segment's size */
    int64_t end = l->end_offset, msgs = l->unflushed;
    int dir = l->dir_dirty;
    l->dir_dirty = 0;
    size_t n = 0;
    kc_segment_t **todo = malloc((l->nsegs ? l->nsegs : 1) * sizeof(*todo));
    int64_t *sizes = malloc((l->nsegs ? l->nsegs : 1) * sizeof(*sizes));
    int rc = todo && sizes ? KC_OK : KC_ERR_NOMEM;
    size_t rolled = 0; /* todo[0, rolled) are no longer active: their indexes are final */
    for (size_t i = 0; rc == KC_OK && i < l->nsegs; i++) {
        kc_segment_t *s = l->segs[i];
        if (s->flushed_size < s->size) {
            atomic_fetch_add(&s->refs, 1);
            sizes[n] = s->size;
            todo[n++] = s;
            if (i + 1 < l->nsegs)
                rolled = n;
        }
    }
    pthread_mutex_unlock(&l->mu);
    int e = 0;
    for (size_t i = 0; i < n; i++) {
        if (rc == KC_OK && fdatasync(todo[i]->fd) != 0) {
            e = errno;
            rc = KC_ERR_IO;
        }
        /* a rolled segment before the recovery point is trusted at open,
         * so its (trimmed, final) indexes must be durable too; only
         * truncate_to changes them again and it holds flush_mu */
        if (rc == KC_OK && i < rolled &&
            (kc_index_sync(&todo[i]->oidx) != KC_OK || kc_index_sync(&todo[i]->tidx) != KC_OK)) {
            e = errno;
            rc = KC_ERR_IO;
        }
    }
    if (rc == KC_OK && dir && fsync_dir(l->dir) != KC_OK) {
        e = errno;
        rc = KC_ERR_IO;
    }
    pthread_mutex_lock(&l->mu);
    if (rc == KC_OK) {
        for (size_t i = 0; i < n; i++) {
            kc_segment_t *s = todo[i];
            int64_t f = sizes[i] < s->size ? sizes[i] : s->size; /* truncated meanwhile */
            if (f > s->flushed_size)
                s->flushed_size = f;
        }
        if (end > l->recovery_point)
            l->recovery_point = end < l->end_offset ? end : l->end_offset;
        l->unflushed -= msgs;
        if (l->unflushed < 0)
            l->unflushed = 0;
    } else {
        l->dir_dirty |= dir;
    }
    pthread_mutex_unlock(&l->mu);
    for (size_t i = 0; i < n; i++)
        seg_unref(todo[i]);
    free(todo);
    free(sizes);
    pthread_mutex_unlock(&l->flush_mu);
    if (rc == KC_ERR_IO)
        errno = e;
    return rc;
}

int kc_log_checkpoint(kc_log_t *l) {
    if (!l)
        return KC_ERR_ARG;
    pthread_mutex_lock(&l->mu);
    int64_t rp = l->recovery_point, lso = l->start_offset;
    pthread_mutex_unlock(&l->mu);
    return write_checkpoint(l, rp, lso);
}

int kc_log_roll(kc_log_t *l, int64_t now_ms) {
    if (!l)
        return KC_ERR_ARG;
    pthread_mutex_lock(&l->append_mu);
    pthread_mutex_lock(&l->mu);
    int rc = active(l)->size == 0 ? KC_OK : roll_locked(l, l->end_offset, now_ms);
    pthread_mutex_unlock(&l->mu);
    pthread_mutex_unlock(&l->append_mu);
    return rc;
}

int kc_log_truncate_to(kc_log_t *l, int64_t offset) {
    if (!l || offset < 0)
        return KC_ERR_ARG;
    pthread_mutex_lock(&l->append_mu);
    pthread_mutex_lock(&l->flush_mu);
    pthread_mutex_lock(&l->mu);
    int rc = KC_OK;
    if (offset >= l->end_offset)
        goto done;
    if (offset <= l->segs[0]->base_offset || offset < l->start_offset) {
        /* nothing stays: start over with an empty segment at offset */
        kc_segment_t *s;
        if ((rc = seg_create(l, offset, now_wall_ms(), &s)) != KC_OK)
            goto done;
        /* a segment with the same base was just emptied by seg_create */
        for (size_t i = 0; i < l->nsegs; i++)
            if (l->segs[i]->base_offset == offset) {
                seg_unref(l->segs[i]);
                l->segs[i] = NULL;
            }
        for (size_t i = 0; i < l->nsegs; i++)
            if (l->segs[i]) {
                seg_unlink(l->segs[i]);
                seg_unref(l->segs[i]);
            }
        l->nsegs = 0;
        list_push(l, s); /* cap >= 1 already: cannot fail */
        l->start_offset = offset;
    } else {
        size_t i = list_floor(l, offset);
        kc_segment_t *s = l->segs[i];
        int64_t pos = s->size;
        hdr_t h;
        int frc = seg_find(l, s, offset, &pos, &h);
        if (frc != KC_OK && frc != KC_ERR_NOT_FOUND) {
            rc = frc;
            goto done;
        }
        list_delete(l, i + 1, l->nsegs - i - 1);
        if ((rc = seg_truncate(l, s, pos)) != KC_OK)
            goto done;
    }
    l->end_offset = active(l)->next_offset;
    if (l->start_offset > l->end_offset)
        l->start_offset = l->end_offset;
    if (l->recovery_point > l->end_offset)
        l->recovery_point = l->end_offset;
    if (l->recovery_point >= l->end_offset)
        l->unflushed = 0;
done:
    pthread_mutex_unlock(&l->mu);
    if (rc == KC_OK)
        rc = kc_log_checkpoint(l);
    pthread_mutex_unlock(&l->flush_mu);
    pthread_mutex_unlock(&l->append_mu);
    return rc;
}

/* Delete the oldest n segments (mu and append_mu held); when that takes
 * every segment, roll first so the log keeps its end offset. */
static int delete_prefix(kc_log_t *l, size_t n, int64_t now_ms, int64_t *count) {
    if (n == 0)
        return KC_OK;
    if (n >= l->nsegs) {
        n = l->nsegs;
        if (active(l)->size == 0)
            n--; /* an empty active segment stays: nothing to gain */
        else {
            int rc = roll_locked(l, l->end_offset, now_ms);
            if (rc != KC_OK)
                return rc;
        }
    }
    list_delete(l, 0, n);
    *count += (int64_t)n;
    if (l->segs[0]->base_offset > l->start_offset)
        l->start_offset = l->segs[0]->base_offset;
    return KC_OK;
}

int kc_log_retention(kc_log_t *l, int64_t now_ms, int64_t retention_ms, int64_t retention_bytes,
                     int64_t *deleted) {
    if (!l)
        return KC_ERR_ARG;
    int64_t gone = 0;
    pthread_mutex_lock(&l->append_mu);
    pthread_mutex_lock(&l->mu);
    int rc = KC_OK;
    if (retention_ms >= 0) {
        size_t n = 0;
        while (n < l->nsegs) {
            const kc_segment_t *s = l->segs[n];
            int64_t ts = s->max_timestamp >= 0 ? s->max_timestamp : s->created_ms;
            if (s->size == 0 || now_ms - ts <= retention_ms)
                break;
            n++;
        }
        rc = delete_prefix(l, n, now_ms, &gone);
    }
    if (rc == KC_OK && retention_bytes >= 0) {
        int64_t total = 0;
        for (size_t i = 0; i < l->nsegs; i++)
            total += l->segs[i]->size;
        size_t n = 0;
        for (int64_t diff = total - retention_bytes; n < l->nsegs && l->segs[n]->size > 0 &&
                                                     diff - l->segs[n]->size >= 0;
             n++)
            diff -= l->segs[n]->size;
        rc = delete_prefix(l, n, now_ms, &gone);
    }
    int dir = l->dir_dirty;
    pthread_mutex_unlock(&l->mu);
    pthread_mutex_unlock(&l->append_mu);
    if (deleted)
        *deleted = gone;
    if (rc == KC_OK && dir)
        rc = kc_log_checkpoint(l);
    return rc;
}

int kc_log_delete_records(kc_log_t *l, int64_t new_start_offset) {
    if (!l)
        return KC_ERR_ARG;
    pthread_mutex_lock(&l->append_mu);
    pthread_mutex_lock(&l->mu);
    int rc = KC_OK;
    if (new_start_offset > l->end_offset || new_start_offset < 0) {
        rc = KC_ERR_OFFSET_OUT_OF_RANGE;
    } else if (new_start_offset > l->start_offset) {
        l->start_offset = new_start_offset;
        size_t n = 0; /* segments wholly below the new start; never the active one */
        while (n + 1 < l->nsegs && l->segs[n + 1]->base_offset <= new_start_offset)
            n++;
        list_delete(l, 0, n);
    }
    pthread_mutex_unlock(&l->mu);
    pthread_mutex_unlock(&l->append_mu);
    if (rc == KC_OK)
        rc = kc_log_checkpoint(l); /* the new start must survive a crash */
    return rc;
}

/* ------------------------------------------------------------- getters */

#define LOG_GETTER(name, expr)                 \
    int64_t kc_log_##name(kc_log_t *l) {       \
        pthread_mutex_lock(&l->mu);            \
        int64_t v = (expr);                    \
        pthread_mutex_unlock(&l->mu);          \
        return v;                              \
    }

static int64_t log_size(const kc_log_t *l) {
    int64_t t = 0;
    for (size_t i = 0; i < l->nsegs; i++)
        t += l->segs[i]->size;
    return t;
}

LOG_GETTER(start_offset, l->start_offset)
LOG_GETTER(end_offset, l->end_offset)
LOG_GETTER(size_bytes, log_size(l))
LOG_GETTER(segment_count, (int64_t)l->nsegs)
LOG_GETTER(recovery_point, l->recovery_point)
LOG_GETTER(unflushed_messages, l->unflushed)

int kc_log_segments(kc_log_t *l, kc_segment_info_t *out, size_t cap, size_t *n) {
    if (!l || !n || (cap && !out))
        return KC_ERR_ARG;
    pthread_mutex_lock(&l->mu);
    *n = l->nsegs;
    for (size_t i = 0; i < l->nsegs && i < cap; i++) {
        const kc_segment_t *s = l->segs[i];
        out[i] = (kc_segment_info_t){s->base_offset, s->size, s->next_offset, s->max_timestamp,
                                     s->created_ms, s->oidx.entries, s->tidx.entries};
    }
    pthread_mutex_unlock(&l->mu);
    return KC_OK;
}
