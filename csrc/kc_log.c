/* kc_log.c - the partition log (see kc_log.h for the on-disk layout):
 * the segment list, append, read, lookups, flush, roll, truncation and
 * retention.  Opening, recovery and closing are in kc_log_open.c, one
 * segment's files in kc_segment.c, compaction in kc_compact.c; the locks
 * are described in kc_log_internal.h.
 *
 * An append writes its bytes with pwrite() past the published end while
 * holding only append_mu, then publishes the new end and the index entries
 * under mu, so a reader never sees part of a batch.
 *
 * Segments are reference counted: the list holds one reference and every
 * file slice handed out holds one, so deleting a segment (retention,
 * truncation, compaction) unlinks its files at once but closes its fd only
 * when the last slice is released.  Every use of a segment's fd pins it
 * (kc_segment_pin) for just that use: the process-wide fd pool of
 * kc_segment.c may close an unpinned one at any time.
 */
#include "kc_log.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kc_batch.h"
#include "kc_common.h"
#include "kc_compact.h"
#include "kc_log_internal.h"

/* ------------------------------------------------------------ the list */

int kc_log_list_push(kc_log_t *l, kc_segment_t *s) {
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
void kc_log_list_delete(kc_log_t *l, size_t from, size_t n) {
    for (size_t i = from; i < from + n; i++) {
        kc_segment_unlink(l->segs[i]);
        kc_segment_unref(l->segs[i]);
    }
    memmove(l->segs + from, l->segs + from + n, (l->nsegs - from - n) * sizeof(*l->segs));
    l->nsegs -= n;
    if (n)
        l->dir_dirty = 1;
}

/* Index of the last segment whose base <= offset (0 if none). */
size_t kc_log_list_floor(const kc_log_t *l, int64_t offset) {
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
int kc_log_roll_locked(kc_log_t *l, int64_t base, int64_t now_ms) {
    kc_segment_t *s;
    int rc = kc_segment_create(&l->cfg, l->dir, base, now_ms, &s);
    if (rc != KC_OK)
        return rc;
    rc = kc_log_list_push(l, s);
    if (rc != KC_OK) {
        kc_segment_unlink(s);
        kc_segment_unref(s);
        return rc;
    }
    kc_segment_deactivate(l->segs[l->nsegs - 2]);
    return KC_OK;
}

/* The batch holding offset in the log (mu held). */
static int kc_log_find(const kc_log_t *l, int64_t offset, size_t *si, int64_t *pos, kc_hdr_t *h) {
    for (size_t i = kc_log_list_floor(l, offset); i < l->nsegs; i++) {
        int rc = kc_segment_find(&l->cfg, l->segs[i], offset, pos, h);
        if (rc == KC_OK || rc == KC_ERR_CORRUPT_INDEX)
            *si = i; /* corrupt: *pos is the header that failed */
        if (rc != KC_ERR_NOT_FOUND)
            return rc;
    }
    return KC_ERR_NOT_FOUND;
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
    if (!info)
        return KC_ERR_ARG;
    memset(info, 0, sizeof(*info));
    info->error_position = info->error_batch = -1;
    if (!l || !buf || len == 0 || len > INT32_MAX)
        return KC_ERR_ARG;
    uint32_t sflags = (flags & KC_APPEND_SKIP_CRC) ? 0 : KC_SCAN_VERIFY_CRC;
    /* produce wants count == lastOffsetDelta + 1; a replica copies whatever
     * the leader's log holds, compacted batches included */
    if (!(flags & KC_APPEND_ASSIGN_OFFSETS))
        sflags |= KC_SCAN_ALLOW_COMPACTED;
    size_t max_batch = (size_t)(l->cfg.max_batch_size > 0 ? l->cfg.max_batch_size : 0);
    int assign = (flags & KC_APPEND_ASSIGN_OFFSETS) != 0;
    /* The one pass over the headers: validate each batch and sum what the
     * append needs (records, batches, largest timestamp). */
    int64_t records = 0, batches = 0, max_ts = -1;
    int rc = KC_OK;
    for (size_t p = 0; p < len;) {
        kc_batch_info_t bi;
        rc = kc_batch_check(buf + p, len - p, max_batch, sflags, &bi);
        /* an empty batch (count 0, lastOffsetDelta -1) would own no offset
         * and break "offsets strictly increase"; Kafka's produce path refuses it too */
        if (rc == KC_OK && bi.last_offset_delta < 0)
            rc = KC_ERR_BAD_COUNT;
        if (rc != KC_OK) {
            info->error_position = (int64_t)p;
            info->error_batch = batches;
            return rc;
        }
        records += bi.record_count;
        if (bi.max_timestamp > max_ts)
            max_ts = bi.max_timestamp;
        batches++;
        p += bi.size;
    }
    if (assign && log_append_time >= 0)
        max_ts = log_append_time;   /* every batch gets stamped with it */
    pthread_mutex_lock(&l->append_mu);
    int64_t first = l->end_offset, next = first;
    if (assign) {
        kc_batch_stamp(buf, len, first, leader_epoch, log_append_time, &next);
    } else {
        /* replica/compactor bytes keep their offsets: they must increase */
        kc_hdr_t h;
        kc_hdr_decode(buf, &h);
        first = h.base;
        for (size_t p = 0; p < len && rc == KC_OK; p += (size_t)h.size) {
            kc_hdr_decode(buf + p, &h);
            if (h.base < next || h.last < h.base)
                rc = KC_ERR_OFFSET_OUT_OF_RANGE;
            next = h.last + 1;
        }
    }
    if (rc != KC_OK) {
        pthread_mutex_unlock(&l->append_mu);
        return rc;
    }
    pthread_mutex_lock(&l->mu);
    kc_segment_t *s = kc_log_active(l);
    if (need_roll(l, s, (int64_t)len, next - 1, max_ts, now_ms)) {
        rc = kc_log_roll_locked(l, first, now_ms);
        s = kc_log_active(l);
    }
    int pinned = 0;
    if (rc == KC_OK && (rc = kc_segment_pin(s)) == KC_OK) /* opened lazily, held for the write (kc_segment.h) */
        pinned = 1;
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
    if (pinned)
        kc_segment_unpin(s);
    if (rc != KC_OK) {
        pthread_mutex_unlock(&l->append_mu);
        return rc;
    }
    info->first_offset = first;
    info->last_offset = next - 1;
    info->max_timestamp = info->offset_of_max_timestamp = -1;
    info->log_append_time = assign && log_append_time >= 0 ? log_append_time : -1;
    info->segment_base = s->base_offset;
    info->position = pos;
    info->records = records;
    info->batches = batches;
    pthread_mutex_lock(&l->mu);
    /* index accounting needs each batch's final offsets: the one read of the
     * headers after the write (they are in cache) */
    for (size_t p = 0; p < len;) {
        kc_hdr_t h;
        kc_hdr_decode(buf + p, &h);
        if (h.max_ts > info->max_timestamp) {
            info->max_timestamp = h.max_ts;
            info->offset_of_max_timestamp = h.last;
        }
        kc_segment_account(&l->cfg, s, &h, pos + (int64_t)p, 1);
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

static int32_t batch_records(const kc_segment_t *s, int64_t pos) {
    return (int32_t)kc_be32(s->map + pos + KC_BATCH_OF_RECORD_COUNT);
}

/* From the batch h at (*si, *pos): the first batch holding a record (see KC_READ_SKIP_EMPTY).
 * Leaves the position as it was when none follows below max_offset (mu held). */
static void skip_empty(kc_log_t *l, int64_t max_offset, size_t *si, int64_t *pos, kc_hdr_t *h) {
    size_t i = *si;
    int64_t p = *pos;
    kc_hdr_t cur = *h;
    if (kc_segment_map(&l->cfg, l->segs[i], l->segs[i]->size) != KC_OK)
        return;
    for (int n = 0; batch_records(l->segs[i], p) == 0 && n < KC_READ_SKIP_MAX; n++) {
        p += cur.size;
        while (p >= l->segs[i]->size) {
            if (++i >= l->nsegs)
                return;
            p = 0;
        }
        kc_segment_t *s = l->segs[i];
        if (kc_segment_map(&l->cfg, s, s->size) != KC_OK || kc_segment_hdr(s, p, s->size, &cur) != KC_OK ||
            (max_offset >= 0 && cur.last >= max_offset))
            return;
    }
    *si = i;
    *pos = p;
    *h = cur;
}

int kc_log_read(kc_log_t *l, int64_t offset, int64_t max_bytes, int64_t max_offset, kc_slice_t *out) {
    return kc_log_read_ex(l, offset, max_bytes, max_offset, 0, out);
}

int kc_log_read_ex(kc_log_t *l, int64_t offset, int64_t max_bytes, int64_t max_offset, uint32_t flags,
                   kc_slice_t *out) {
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
    kc_hdr_t h0;
    if ((rc = kc_log_find(l, offset, &si, &start, &h0)) != KC_OK) {
        if (rc == KC_ERR_NOT_FOUND)
            rc = KC_OK; /* a gap up to the end (compacted tail): nothing to read */
        if (rc == KC_ERR_CORRUPT_INDEX) {
            /* a batch header on the way is damaged (or the index points off a batch) */
            out->segment_base = l->segs[si]->base_offset;
            out->position = start;
            out->length = -1;
        }
        goto done;
    }
    if ((flags & KC_READ_SKIP_EMPTY) && !(max_offset >= 0 && h0.last >= max_offset))
        skip_empty(l, max_offset, &si, &start, &h0);
    kc_segment_t *s = l->segs[si];
    /* a batch that reaches max_offset is not readable yet */
    if (max_offset >= 0 && h0.last >= max_offset)
        goto done;
    /* The first batch is checked whole, CRC included (one batch, not the slice).  Bytes damaged
     * on disk under a clean-shutdown marker are not re-read at open; without this check a
     * client that cannot parse them fetches the same offset again forever (issue 16).  A client
     * fetching past the good batches before the damage lands here and gets an error. */
    kc_batch_info_t bi;
    if ((rc = kc_batch_check(s->map + start, (size_t)(s->size - start), 0,
                             KC_SCAN_ALLOW_COMPACTED | KC_SCAN_VERIFY_CRC, &bi)) != KC_OK) {
        out->segment_base = s->base_offset;
        out->position = start;
        out->length = -1; /* where the damage is (kc_log.h) */
        goto done;
    }
    int64_t limit = s->size, mpos;
    kc_hdr_t hm;
    if (max_offset >= 0 && max_offset < s->next_offset && kc_segment_find(&l->cfg, s, max_offset, &mpos, &hm) == KC_OK)
        limit = mpos;
    int64_t want = start + (max_bytes > 0 ? max_bytes : 0), end;
    if (want >= limit) {
        end = limit;
    } else {
        /* a batch boundary <= want: from the index entry below it, walk */
        int64_t eo, p;
        kc_index_lookup_position(&s->oidx, want, &eo, &p);
        end = p > start ? p : start;
        kc_hdr_t h;
        while (end < limit && kc_segment_hdr(s, end, limit, &h) == KC_OK && end + h.size <= want)
            end += h.size;
        if (end == start)
            end = start + h0.size; /* at least one whole batch */
    }
    int64_t last;
    if (end == s->size)
        last = s->next_offset - 1;
    else if ((rc = kc_segment_last_before(&l->cfg, s, start, end, &last)) != KC_OK)
        goto done;
    if (!(flags & KC_READ_UNPINNED)) {
        if ((rc = kc_segment_pin(s)) != KC_OK)
            goto done;
        out->fd = s->fd;
        out->pinned = 1;
    }
    atomic_fetch_add(&s->refs, 1);
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

int kc_slice_pin(kc_slice_t *s) {
    if (!s)
        return KC_ERR_ARG;
    if (s->pinned || !s->ref)
        return KC_OK;
    kc_segment_t *seg = s->ref;
    int rc = kc_segment_pin(seg);
    if (rc == KC_OK) {
        s->fd = seg->fd;
        s->pinned = 1;
    }
    return rc;
}

void kc_slice_unpin(kc_slice_t *s) {
    if (s && s->pinned) {
        kc_segment_unpin(s->ref);
        s->pinned = 0;
        s->fd = -1;
    }
}

void kc_slice_release(kc_slice_t *s) {
    if (s && s->ref) {
        kc_slice_unpin(s);
        kc_segment_unref(s->ref);
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
        kc_hdr_t h;
        rc = kc_log_find(l, offset, &si, &pos, &h);
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
static void batch_find_time(const kc_segment_t *s, int64_t p, const kc_hdr_t *h, int64_t ts, int64_t min_off,
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
        if ((rc = kc_segment_map(&l->cfg, s, s->size)) != KC_OK)
            break;
        int64_t t, o, eo, p = 0;
        if (kc_index_lookup_time(&s->tidx, ts, &t, &o))
            kc_index_lookup_offset(&s->oidx, o, &eo, &p);
        rc = KC_ERR_NOT_FOUND;
        kc_hdr_t h;
        for (; p < s->size && kc_segment_hdr(s, p, s->size, &h) == KC_OK; p += h.size) {
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
    /* an empty log has no entry worth syncing yet: its first flush with data does it */
    int dir = l->dir_dirty && end > 0;
    if (dir)
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
        /* a segment whose fd the pool closed is reopened: its written pages
         * are the file's, and fdatasync through any fd writes them */
        if (rc == KC_OK && kc_segment_pin(todo[i]) != KC_OK) {
            e = errno;
            rc = KC_ERR_IO;
        } else if (rc == KC_OK) {
            int synced = fdatasync(todo[i]->fd) == 0;
            e = errno;
            kc_segment_unpin(todo[i]);
            if (!synced)
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
    if (rc == KC_OK && dir && kc_fsync_dir(l->dir) != KC_OK) {
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
        kc_segment_unref(todo[i]);
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
    return kc_log_write_checkpoint(l, rp, lso);
}

int kc_log_roll(kc_log_t *l, int64_t now_ms) {
    if (!l)
        return KC_ERR_ARG;
    pthread_mutex_lock(&l->append_mu);
    pthread_mutex_lock(&l->mu);
    int rc = kc_log_active(l)->size == 0 ? KC_OK : kc_log_roll_locked(l, l->end_offset, now_ms);
    pthread_mutex_unlock(&l->mu);
    pthread_mutex_unlock(&l->append_mu);
    return rc;
}

static int truncate_impl(kc_log_t *l, int64_t offset, int fully);

int kc_log_truncate_to(kc_log_t *l, int64_t offset) { return truncate_impl(l, offset, 0); }

int kc_log_truncate_fully(kc_log_t *l, int64_t offset) { return truncate_impl(l, offset, 1); }

static int truncate_impl(kc_log_t *l, int64_t offset, int fully) {
    if (!l || offset < 0)
        return KC_ERR_ARG;
    /* a running cleaner maps segments this may shrink: make it give up */
    atomic_store(&l->clean_abort, 1);
    pthread_mutex_lock(&l->clean_mu);
    atomic_store(&l->clean_abort, 0);
    pthread_mutex_lock(&l->append_mu);
    pthread_mutex_lock(&l->flush_mu);
    pthread_mutex_lock(&l->mu);
    int rc = KC_OK, lower_clean = 0;
    if (offset >= l->end_offset && !fully)
        goto done;
    if (fully || offset <= l->segs[0]->base_offset || offset < l->start_offset) {
        /* nothing stays: start over with an empty segment at offset */
        kc_segment_t *s;
        if ((rc = kc_segment_create(&l->cfg, l->dir, offset, now_wall_ms(), &s)) != KC_OK)
            goto done;
        /* a segment with the same base was just emptied by kc_segment_create */
        for (size_t i = 0; i < l->nsegs; i++)
            if (l->segs[i]->base_offset == offset) {
                kc_segment_unref(l->segs[i]);
                l->segs[i] = NULL;
            }
        for (size_t i = 0; i < l->nsegs; i++)
            if (l->segs[i]) {
                kc_segment_unlink(l->segs[i]);
                kc_segment_unref(l->segs[i]);
            }
        l->nsegs = 0;
        kc_log_list_push(l, s); /* cap >= 1 already: cannot fail */
        l->start_offset = offset;
    } else {
        size_t i = kc_log_list_floor(l, offset);
        kc_segment_t *s = l->segs[i];
        int64_t pos = s->size;
        kc_hdr_t h;
        int frc = kc_segment_find(&l->cfg, s, offset, &pos, &h);
        if (frc != KC_OK && frc != KC_ERR_NOT_FOUND) {
            rc = frc;
            goto done;
        }
        kc_log_list_delete(l, i + 1, l->nsegs - i - 1);
        if ((rc = kc_segment_truncate(&l->cfg, s, pos)) != KC_OK)
            goto done;
    }
    l->end_offset = kc_log_active(l)->next_offset;
    if (l->start_offset > l->end_offset)
        l->start_offset = l->end_offset;
    if (l->recovery_point > l->end_offset)
        l->recovery_point = l->end_offset;
    if (l->recovery_point >= l->end_offset)
        l->unflushed = 0;
    if (l->clean_offset > l->end_offset) {
        l->clean_offset = l->end_offset;
        lower_clean = 1;
    }
done:
    pthread_mutex_unlock(&l->mu);
    if (rc == KC_OK)
        rc = kc_log_checkpoint(l);
    if (rc == KC_OK && lower_clean)
        rc = kc_compact_write_checkpoint(l->dir, l->end_offset);
    pthread_mutex_unlock(&l->flush_mu);
    pthread_mutex_unlock(&l->append_mu);
    pthread_mutex_unlock(&l->clean_mu);
    return rc;
}

/* Delete the oldest n segments (mu and append_mu held); when that takes
 * every segment, roll first so the log keeps its end offset. */
static int delete_prefix(kc_log_t *l, size_t n, int64_t now_ms, int64_t *count) {
    if (n == 0)
        return KC_OK;
    if (n >= l->nsegs) {
        n = l->nsegs;
        if (kc_log_active(l)->size == 0)
            n--; /* an empty active segment stays: nothing to gain */
        else {
            int rc = kc_log_roll_locked(l, l->end_offset, now_ms);
            if (rc != KC_OK)
                return rc;
        }
    }
    kc_log_list_delete(l, 0, n);
    *count += (int64_t)n;
    if (l->segs[0]->base_offset > l->start_offset)
        l->start_offset = l->segs[0]->base_offset;
    return KC_OK;
}

/* The longest prefix of the first n segments that ends at or below upper (-1: all n). */
static size_t below_bound(const kc_log_t *l, size_t n, int64_t upper) {
    if (upper < 0)
        return n;
    while (n > 0 && (n < l->nsegs ? l->segs[n]->base_offset : l->end_offset) > upper)
        n--;
    return n;
}

int kc_log_retention(kc_log_t *l, int64_t now_ms, int64_t retention_ms, int64_t retention_bytes,
                     int64_t upper_bound, int64_t *deleted) {
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
        rc = delete_prefix(l, below_bound(l, n, upper_bound), now_ms, &gone);
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
        rc = delete_prefix(l, below_bound(l, n, upper_bound), now_ms, &gone);
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
        kc_log_list_delete(l, 0, n);
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
