/* kc_segment.c - one segment of a partition log: its files, the mapping
 * of its .log, batch headers, index upkeep (Kafka's LogSegment.append),
 * the walk that rebuilds indexes, and the recovery scan of one segment.
 */
#include "kc_segment.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kc_batch.h"
#include "kc_common.h"

/* ---------------------------------------------------------------- files */

char *kc_segment_file(const kc_segment_t *s, const char *ext) {
    return kc_concat3(s->path, "", ext);
}

int kc_fsync_dir(const char *dir) {
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return KC_ERR_IO;
    int rc = fsync(fd) == 0 ? KC_OK : KC_ERR_IO;
    close(fd);
    return rc;
}
/* -------------------------------------------------------------- fd pool */

/* One pool for the process (kc_segment.h): every log's segments share the
 * fd limit.  pool_mu is the innermost lock: taken under a log's mu, it never
 * takes a log lock itself, so evicting another log's segment cannot
 * deadlock; it guards every segment's fd, fd_pins, fd_keep and lru links. */
static pthread_mutex_t pool_mu = PTHREAD_MUTEX_INITIALIZER;
static kc_segment_t *lru_head, *lru_tail; /* head: most recently used */
static int64_t pool_open, pool_cap, pool_opens, pool_evictions; /* cap 0: not derived yet */

/* Half the soft RLIMIT_NOFILE: the other half is headroom for sockets (a
 * broker's connections, its replica fetchers), the index and checkpoint files
 * opened for one call and closed again, and whatever else the process opens.
 * Kafka has no such setting (it keeps every segment open), so none is added:
 * the operator's ulimit is the one knob, as for Kafka. */
static int64_t derive_cap(void) {
    struct rlimit r;
    if (getrlimit(RLIMIT_NOFILE, &r) != 0 || r.rlim_cur == RLIM_INFINITY || r.rlim_cur > (1u << 30))
        return 1 << 20;
    int64_t cap = (int64_t)r.rlim_cur / 2;
    return cap < 16 ? 16 : cap;
}

static void lru_remove(kc_segment_t *s) {
    if (s->lru_prev)
        s->lru_prev->lru_next = s->lru_next;
    else
        lru_head = s->lru_next;
    if (s->lru_next)
        s->lru_next->lru_prev = s->lru_prev;
    else
        lru_tail = s->lru_prev;
    s->lru_prev = s->lru_next = NULL;
}

static void lru_push(kc_segment_t *s) {
    s->lru_prev = NULL;
    s->lru_next = lru_head;
    if (lru_head)
        lru_head->lru_prev = s;
    lru_head = s;
    if (!lru_tail)
        lru_tail = s;
}

/* Close the least recently used fd nobody pins (pool_mu held); 0 if none. */
static int evict_one(void) {
    for (kc_segment_t *v = lru_tail; v; v = v->lru_prev) {
        if (v->fd_pins > 0 || v->fd_keep)
            continue;
        lru_remove(v);
        close(v->fd);
        v->fd = -1;
        v->fd_pooled = 0;
        pool_open--;
        pool_evictions++;
        return 1;
    }
    return 0;
}

int kc_segment_pin(kc_segment_t *s) {
    char *lp = kc_segment_file(s, ".log");
    if (!lp)
        return KC_ERR_NOMEM;
    int rc = KC_OK;
    pthread_mutex_lock(&pool_mu);
    if (s->fd >= 0) {
        if (s->fd_pooled && s != lru_head) {
            lru_remove(s);
            lru_push(s);
        }
    } else {
        if (pool_cap == 0)
            pool_cap = derive_cap();
        while (pool_open >= pool_cap && evict_one()) {
        }
        int fd;
        /* the cap is soft (pinned fds are never closed); the hard limit may
         * still be reached with other files open: make room and retry */
        while ((fd = open(lp, O_RDWR | O_CLOEXEC)) < 0 && (errno == EMFILE || errno == ENFILE) && evict_one()) {
        }
        if (fd < 0) {
            rc = KC_ERR_IO;
        } else {
            s->fd = fd;
            s->fd_pooled = 1;
            pool_open++;
            pool_opens++;
            lru_push(s);
        }
    }
    if (rc == KC_OK)
        s->fd_pins++;
    int e = errno;
    pthread_mutex_unlock(&pool_mu);
    free(lp);
    errno = e;
    return rc;
}

void kc_segment_unpin(kc_segment_t *s) {
    pthread_mutex_lock(&pool_mu);
    s->fd_pins--;
    pthread_mutex_unlock(&pool_mu);
}

int kc_segment_detach(kc_segment_t *s) {
    if (atomic_load(&s->refs) <= 1)
        return KC_OK; /* the list's reference is the last: nobody reads it again */
    int rc = kc_segment_pin(s);
    if (rc == KC_OK) {
        pthread_mutex_lock(&pool_mu);
        s->fd_keep = 1;
        s->fd_pins--;
        pthread_mutex_unlock(&pool_mu);
    }
    return rc;
}

void kc_segment_adopt_fd(kc_segment_t *s) {
    pthread_mutex_lock(&pool_mu);
    if (s->fd >= 0 && !s->fd_pooled) {
        s->fd_pooled = 1;
        pool_open++;
        pool_opens++;
        lru_push(s);
    }
    pthread_mutex_unlock(&pool_mu);
}

static void pool_forget(kc_segment_t *s) {
    if (s->fd < 0)
        return;
    pthread_mutex_lock(&pool_mu);
    if (s->fd_pooled) {
        lru_remove(s);
        pool_open--;
    }
    pthread_mutex_unlock(&pool_mu);
    close(s->fd);
    s->fd = -1;
}

int64_t kc_log_fd_cap(void) {
    pthread_mutex_lock(&pool_mu);
    if (pool_cap == 0)
        pool_cap = derive_cap();
    int64_t c = pool_cap;
    pthread_mutex_unlock(&pool_mu);
    return c;
}

void kc_log_set_fd_cap(int64_t cap) {
    pthread_mutex_lock(&pool_mu);
    pool_cap = cap > 0 ? cap : derive_cap();
    while (pool_open > pool_cap && evict_one()) {
    }
    pthread_mutex_unlock(&pool_mu);
}

void kc_log_fd_stats(kc_fd_stats_t *out) {
    pthread_mutex_lock(&pool_mu);
    if (pool_cap == 0)
        pool_cap = derive_cap();
    out->cap = pool_cap;
    out->open = pool_open;
    out->opens = pool_opens;
    out->evictions = pool_evictions;
    pthread_mutex_unlock(&pool_mu);
}

/* ------------------------------------------------------------- segments */

void kc_segment_unref(kc_segment_t *s) {
    if (atomic_fetch_sub(&s->refs, 1) != 1)
        return;
    kc_index_close(&s->oidx);
    kc_index_close(&s->tidx);
    if (s->map)
        munmap(s->map, s->map_len);
    pool_forget(s);
    free(s->path);
    free(s);
}

kc_segment_t *kc_segment_alloc(const char *dir, int64_t base) {
    kc_segment_t *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    size_t n = strlen(dir) + 24;
    s->path = malloc(n);
    if (!s->path) {
        free(s);
        return NULL;
    }
    snprintf(s->path, n, "%s/%020lld", dir, (long long)base);
    s->base_offset = base;
    s->next_offset = base;
    s->fd = -1;
    s->oidx.entry_size = KC_INDEX_OFFSET_ENTRY;
    s->tidx.entry_size = KC_INDEX_TIME_ENTRY;
    s->oidx.base_offset = s->tidx.base_offset = base;
    s->max_timestamp = s->offset_of_max_ts = s->first_batch_ts = -1;
    atomic_init(&s->refs, 1);
    return s;
}

/* Open (fresh: create/truncate) the two index files of s. */
int kc_segment_open_indexes(const kc_log_config_t *cfg, kc_segment_t *s, int64_t bytes, int fresh) {
    char *op = kc_segment_file(s, ".index"), *tp = kc_segment_file(s, ".timeindex");
    int rc = KC_ERR_NOMEM;
    if (op && tp) {
        kc_index_close(&s->oidx);
        kc_index_close(&s->tidx);
        rc = kc_index_open(&s->oidx, op, KC_INDEX_OFFSET_ENTRY, s->base_offset, bytes, fresh);
        if (rc == KC_OK)
            rc = kc_index_open(&s->tidx, tp, KC_INDEX_TIME_ENTRY, s->base_offset, bytes, fresh);
        if (rc != KC_OK)
            kc_segment_indexes_unopened(s, bytes);
        s->idx_bytes = bytes;
    }
    (void)cfg;
    free(op);
    free(tp);
    return rc;
}

int kc_segment_indexes(kc_segment_t *s) {
    if (kc_index_is_open(&s->oidx) && kc_index_is_open(&s->tidx))
        return KC_OK;
    return kc_segment_open_indexes(NULL, s, s->idx_bytes, 1);
}

void kc_segment_indexes_unopened(kc_segment_t *s, int64_t bytes) {
    kc_index_close(&s->oidx);
    kc_index_close(&s->tidx);
    s->idx_bytes = bytes;
    s->oidx.max_entries = bytes / KC_INDEX_OFFSET_ENTRY;
    s->tidx.max_entries = bytes / KC_INDEX_TIME_ENTRY;
}

/* Remove the index files and leave the indexes unopened (no entries). */
static int indexes_discard(kc_segment_t *s, int64_t bytes) {
    kc_segment_indexes_unopened(s, bytes);
    char *op = kc_segment_file(s, ".index"), *tp = kc_segment_file(s, ".timeindex");
    int rc = op && tp ? KC_OK : KC_ERR_NOMEM;
    if (rc == KC_OK && ((unlink(op) != 0 && errno != ENOENT) || (unlink(tp) != 0 && errno != ENOENT)))
        rc = KC_ERR_IO;
    free(op);
    free(tp);
    return rc;
}

static int set_path(kc_index_t *ix, char *path) {
    if (!path)
        return KC_ERR_NOMEM;
    free(ix->path);
    ix->path = path;
    return KC_OK;
}

int kc_segment_indexes_renamed(kc_segment_t *s) {
    if (!kc_index_is_open(&s->oidx))
        return KC_OK;
    int rc = set_path(&s->oidx, kc_segment_file(s, ".index"));
    return rc == KC_OK ? set_path(&s->tidx, kc_segment_file(s, ".timeindex")) : rc;
}

/* A new, empty segment (see kc_segment.h). */
int kc_segment_create(const kc_log_config_t *cfg, const char *dir, int64_t base, int64_t now_ms, kc_segment_t **out) {
    kc_segment_t *s = kc_segment_alloc(dir, base);
    if (!s)
        return KC_ERR_NOMEM;
    char *lp = kc_segment_file(s, ".log");
    int rc = KC_ERR_NOMEM;
    if (lp) {
        int fd = open(lp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        rc = fd < 0 ? KC_ERR_IO : KC_OK;
        if (fd >= 0)
            close(fd);
    }
    free(lp);
    /* stale indexes of an earlier segment at this base must not be loaded with this one */
    if (rc == KC_OK)
        rc = indexes_discard(s, cfg->max_index_bytes);
    if (rc != KC_OK) {
        int e = errno;
        kc_segment_unref(s);
        errno = e;
        return rc;
    }
    s->created_ms = now_ms;
    *out = s;
    return KC_OK;
}

void kc_segment_unlink(kc_segment_t *s) {
    /* a holder reading it later needs the unlinked file, not a reopen by path */
    if (kc_segment_detach(s) != KC_OK) { /* its holders get KC_ERR_IO from their pin */ }
    const char *exts[] = {".log", ".index", ".timeindex", ".txnindex"}; /* the broker's .txnindex too */
    for (size_t i = 0; i < 4; i++) {
        char *p = kc_segment_file(s, exts[i]);
        if (p)
            unlink(p);
        free(p);
    }
}

/* Make the read-only mapping cover [0, need).  Mapping past the end of the
 * file is allowed as long as those pages are never touched, so the active
 * segment's map grows geometrically instead of on every append. */
int kc_segment_map(const kc_log_config_t *cfg, kc_segment_t *s, int64_t need) {
    if ((size_t)need <= s->map_len)
        return KC_OK;
    size_t page = 4096, len = (size_t)need;
    size_t grow = s->map_len * 2 > (1u << 20) ? s->map_len * 2 : (1u << 20);
    size_t cap = (size_t)(cfg->segment_bytes > need ? cfg->segment_bytes : need);
    if (grow > cap)
        grow = cap;
    if (grow > len)
        len = grow;
    len = (len + page - 1) & ~(page - 1);
    if (kc_segment_pin(s) != KC_OK)
        return KC_ERR_IO;
    void *p = mmap(NULL, len, PROT_READ, MAP_SHARED, s->fd, 0); /* the mapping outlives the fd */
    kc_segment_unpin(s);
    if (p == MAP_FAILED)
        return KC_ERR_IO;
    if (s->map)
        munmap(s->map, s->map_len);
    s->map = p;
    s->map_len = len;
    return KC_OK;
}

void kc_hdr_decode(const uint8_t *p, kc_hdr_t *h) {
    h->base = (int64_t)kc_be64(p);
    h->size = (int64_t)(int32_t)kc_be32(p + KC_BATCH_OF_LENGTH) + KC_BATCH_LOG_OVERHEAD;
    h->attributes = (int16_t)kc_be16(p + KC_BATCH_OF_ATTRIBUTES);
    /* base offset and delta are not covered by the CRC: garbage that overflows gives a last
     * offset below the base, which every caller refuses as an offset range */
    if (__builtin_add_overflow(h->base, (int64_t)(int32_t)kc_be32(p + KC_BATCH_OF_LAST_OFFSET_DELTA), &h->last))
        h->last = INT64_MIN;
    h->first_ts = (int64_t)kc_be64(p + KC_BATCH_OF_BASE_TIMESTAMP);
    h->max_ts = (int64_t)kc_be64(p + KC_BATCH_OF_MAX_TIMESTAMP);
}

/* Header of the batch at pos of a segment whose bytes up to limit were
 * validated when written; the bounds checks guard against a stale index. */
int kc_segment_hdr(const kc_segment_t *s, int64_t pos, int64_t limit, kc_hdr_t *h) {
    if (pos < 0 || limit - pos < KC_BATCH_HEADER_SIZE)
        return KC_ERR_CORRUPT_INDEX;
    kc_hdr_decode(s->map + pos, h);
    if (h->size < KC_BATCH_HEADER_SIZE || h->size > limit - pos)
        return KC_ERR_CORRUPT_INDEX;
    return KC_OK;
}

/* Account one batch at pos as LogSegment.append does: track the largest
 * timestamp, and add index entries when more than index_interval_bytes
 * were written since the last entry. */
void kc_segment_account(const kc_log_config_t *cfg, kc_segment_t *s, const kc_hdr_t *h, int64_t pos, int index) {
    if (pos == 0)
        s->first_batch_ts = h->max_ts;
    if (h->max_ts > s->max_timestamp) {
        s->max_timestamp = h->max_ts;
        s->offset_of_max_ts = h->last;
    }
    if (index && s->bytes_since_index > cfg->index_interval_bytes) {
        /* full index, an offset beyond i32, or indexes that cannot be opened:
         * skip the entry (the index is sparse; the next append rolls a full one) */
        if (kc_segment_indexes(s) == KC_OK && kc_index_append_offset(&s->oidx, h->last, pos) == KC_OK &&
            s->max_timestamp >= 0)
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
int kc_segment_walk(const kc_log_config_t *cfg, kc_segment_t *s, int64_t from, int64_t size, int validate, int index,
                    int64_t *prev_next, int64_t *valid_end, int64_t *batches) {
    int rc = size > 0 ? kc_segment_map(cfg, s, size) : KC_OK;
    int64_t pos = from;
    while (rc == KC_OK && pos < size) {
        kc_batch_info_t bi;
        /* the log holds compacted batches (fewer records than offsets) */
        rc = kc_batch_check(s->map + pos, (size_t)(size - pos), 0,
                            KC_SCAN_ALLOW_COMPACTED | (validate ? KC_SCAN_VERIFY_CRC : 0), &bi);
        if (rc != KC_OK)
            break;
        kc_hdr_t h;
        kc_hdr_decode(s->map + pos, &h);
        if (h.base < s->base_offset || h.base < *prev_next || h.last < h.base ||
            h.last - s->base_offset > INT32_MAX) {
            rc = KC_ERR_BAD_COUNT; /* offsets must increase and belong to this segment */
            break;
        }
        kc_segment_account(cfg, s, &h, pos, index);
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
int kc_segment_load(const kc_log_config_t *cfg, kc_segment_t *s, int active, int64_t *prev_next) {
    int64_t b = 0, end = 0, bytes = active ? cfg->max_index_bytes : 0;
    char *op = kc_segment_file(s, ".index"), *tp = kc_segment_file(s, ".timeindex");
    struct stat so, st;
    int missing = !op || !tp || stat(op, &so) != 0 || stat(tp, &st) != 0;
    /* no entries in either: nothing to map until the first entry comes */
    int empty = !missing && so.st_size < KC_INDEX_OFFSET_ENTRY && st.st_size < KC_INDEX_TIME_ENTRY;
    free(op);
    free(tp);
    int rc = KC_OK;
    if (s->size == 0 || empty)
        kc_segment_indexes_unopened(s, bytes);
    else if ((rc = kc_segment_open_indexes(cfg, s, bytes, 0)) != KC_OK)
        return rc;
    if (s->size == 0)
        return KC_OK;
    int ok = !missing && kc_index_check_offset(&s->oidx, s->size, INT64_MAX) == KC_OK &&
             kc_index_check_time(&s->tidx, INT64_MAX) == KC_OK;
    int64_t from = 0, eoff = s->base_offset;
    if (ok && s->oidx.entries > 0) {
        kc_index_offset_entry(&s->oidx, s->oidx.entries - 1, &eoff, &from);
        kc_hdr_t h;
        ok = kc_segment_map(cfg, s, s->size) == KC_OK && kc_segment_hdr(s, from, s->size, &h) == KC_OK && h.last == eoff;
    }
    if (ok) {
        kc_hdr_t h0;
        if (kc_segment_map(cfg, s, s->size) != KC_OK || kc_segment_hdr(s, 0, s->size, &h0) != KC_OK)
            return KC_ERR_CORRUPT_INDEX;
        if (s->tidx.entries > 0)
            kc_index_time_entry(&s->tidx, s->tidx.entries - 1, &s->max_timestamp, &s->offset_of_max_ts);
        /* the batch at an index entry starts at or before the entry's offset */
        int64_t pn = from > 0 ? s->base_offset : *prev_next;
        rc = kc_segment_walk(cfg, s, from, s->size, 0, 0, &pn, &end, &b);
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
    rc = indexes_discard(s, cfg->max_index_bytes); /* opened by the walk's first entry */
    if (rc == KC_OK)
        rc = kc_segment_walk(cfg, s, 0, s->size, 0, 1, prev_next, &end, &b);
    if (rc == KC_OK && !active) {
        if (kc_index_is_open(&s->oidx)) {
            kc_index_resize(&s->oidx, 0);
            kc_index_resize(&s->tidx, 0);
        }
        s->idx_bytes = 0;
    }
    return rc;
}

/* The segment is no longer active: final time-index entry (Kafka's
 * onBecomeInactiveSegment), trim indexes. */
void kc_segment_deactivate(kc_segment_t *s) {
    if (!kc_index_is_open(&s->oidx) && s->max_timestamp < 0) {
        kc_segment_indexes_unopened(s, 0); /* no entry to write: stay unopened */
        return;
    }
    if (s->max_timestamp >= 0 && kc_segment_indexes(s) == KC_OK)
        kc_index_append_time(&s->tidx, s->max_timestamp, s->offset_of_max_ts);
    if (!kc_index_is_open(&s->oidx)) {
        kc_segment_indexes_unopened(s, 0);
        return;
    }
    s->idx_bytes = 0;
    kc_index_resize(&s->oidx, 0);
    kc_index_resize(&s->tidx, 0);
}

/* Cut s at pos (a batch boundary) and recompute what depends on its tail. */
int kc_segment_truncate(const kc_log_config_t *cfg, kc_segment_t *s, int64_t pos) {
    if (kc_segment_pin(s) != KC_OK)
        return KC_ERR_IO;
    int cut = ftruncate(s->fd, pos);
    kc_segment_unpin(s);
    if (cut != 0)
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
    (void)eoff; /* the batch at from starts at or before eoff: pn stays at the base */
    int rc = kc_segment_walk(cfg, s, from, pos, 0, 0, &pn, &end, &b);
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
    if (!kc_index_is_open(&s->oidx)) {
        kc_segment_indexes_unopened(s, cfg->max_index_bytes);
        return KC_OK;
    }
    s->idx_bytes = cfg->max_index_bytes;
    return kc_index_resize(&s->oidx, cfg->max_index_bytes) == KC_OK
               ? kc_index_resize(&s->tidx, cfg->max_index_bytes)
               : KC_ERR_IO;
}

/* The batch holding offset inside s (first batch whose last offset >=
 * offset): offset index, then a walk of at most index_interval_bytes. */
int kc_segment_find(const kc_log_config_t *cfg, kc_segment_t *s, int64_t offset, int64_t *pos, kc_hdr_t *h) {
    if (offset >= s->next_offset || s->size == 0)
        return KC_ERR_NOT_FOUND;
    int rc = kc_segment_map(cfg, s, s->size);
    if (rc != KC_OK)
        return rc;
    int64_t eo, p;
    kc_index_lookup_offset(&s->oidx, offset, &eo, &p);
    while (p < s->size) {
        if ((rc = kc_segment_hdr(s, p, s->size, h)) != KC_OK) {
            *pos = p; /* where the damage is */
            return rc;
        }
        if (h->last >= offset) {
            *pos = p;
            return KC_OK;
        }
        p += h->size;
    }
    return KC_ERR_NOT_FOUND;
}

/* Last offset of the batch that ends at end (> 0) in s. */
int kc_segment_last_before(const kc_log_config_t *cfg, kc_segment_t *s, int64_t start, int64_t end, int64_t *last) {
    int64_t eo, p;
    kc_index_lookup_position(&s->oidx, end - 1, &eo, &p);
    if (p < start)
        p = start;
    kc_hdr_t h = {.last = s->base_offset - 1};
    while (p < end) {
        int rc = kc_segment_hdr(s, p, end, &h);
        if (rc != KC_OK)
            return rc;
        p += h.size;
    }
    (void)cfg;
    *last = h.last;
    return KC_OK;
}

/* Re-read segment s (CRC and offsets), rebuilding its indexes; cut it at
 * the first bad byte.  Returns 1 when it was cut (later segments must go). */
int kc_segment_recover(const kc_log_config_t *cfg, kc_segment_t *s, int64_t *prev_next, kc_recovery_info_t *rec,
                       int *err) {
    int64_t end = 0;
    rec->segments_scanned++;
    if (s->size == 0) { /* nothing to re-read: stay unopened (kc_segment.h) */
        *err = indexes_discard(s, cfg->max_index_bytes);
        return *err == KC_OK ? 0 : -1;
    }
    s->idx_bytes = cfg->max_index_bytes;
    *err = kc_segment_open_indexes(cfg, s, cfg->max_index_bytes, 1);
    if (*err != KC_OK)
        return -1;
    int rc = kc_segment_walk(cfg, s, 0, s->size, 1, 1, prev_next, &end, &rec->batches_scanned);
    if (rc == KC_ERR_IO || rc == KC_ERR_NOMEM) {
        *err = rc;
        return -1;
    }
    if ((*err = kc_segment_pin(s)) != KC_OK)
        return -1;
    int cut = rc != KC_OK;
    if (cut) {
        if (rec->first_error == KC_OK)
            rec->first_error = rc;
        rec->bytes_truncated += s->size - end;
        if (ftruncate(s->fd, end) != 0) {
            kc_segment_unpin(s);
            *err = KC_ERR_IO;
            return -1;
        }
        s->size = end;
    }
    /* recovered bytes are made durable now so the recovery point can move */
    int synced = fdatasync(s->fd) == 0;
    kc_segment_unpin(s);
    if (!synced) {
        *err = KC_ERR_IO;
        return -1;
    }
    *err = KC_OK;
    return cut;
}
