/* kc_segment.h - one segment of a partition log (internal to the log and
 * its cleaner; not part of the public kc_log.h API).
 *
 * A segment is "<dir>/<20-digit base offset>" with .log, .index and
 * .timeindex files (layout in kc_log.h and kc_index.h).  It owns its fd,
 * a read-only mapping of the .log grown on demand, and its two indexes.
 * It is reference counted: the log's segment list holds one reference and
 * every file slice handed out holds one, so a deleted (or compacted away)
 * segment stays readable until the last slice is released.
 *
 * Files are opened lazily, so an idle partition costs no fd and no mapping
 * (issue 16: 50,000 partitions against a 20,000 fd limit and the 65,530
 * mappings of vm.max_map_count).  The .log's fd is held only while pinned
 * (kc_segment_pin: an append's write, a mapping, a flush, a slice being sent)
 * and belongs to one process-wide pool of open segment files with a cap
 * (kc_log_fd_cap in kc_log.h): opening one more past the cap closes the least
 * recently used unpinned one, so writing to more partitions than the fd limit
 * allows works where Kafka, which keeps every FileRecords open, fails with
 * "Too many open files".  Closing an fd loses nothing: written bytes are in
 * the page cache of the file (the inode, not the fd), and a later fdatasync
 * through a reopened fd writes them out; a mapping outlives its fd.  A
 * segment taken out of the list while someone still holds it (a slice of a
 * segment retention deleted, a segment the cleaner swapped out) would reopen
 * the wrong file or none by path, so kc_segment_unlink and
 * kc_segment_detach open it and keep it open until the last reference goes.
 * The indexes are opened when the first
 * entry is written or when a loaded file holds entries (Kafka's LazyIndex);
 * while they are not open the segment has no index entries, its kc_index_t
 * reads as empty (entries 0, max_entries the capacity it will get) and
 * whatever their files hold is discarded when they open.
 *
 * None of these functions lock: the caller (kc_log.c) holds the log's
 * locks as its header comment explains.
 */
#ifndef KC_SEGMENT_H
#define KC_SEGMENT_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "kc_index.h"
#include "kc_log.h"

typedef struct kc_segment {
    int64_t base_offset;
    int fd;                   /* the .log; valid only while pinned (the fd pool's lock guards it) */
    int fd_pins;              /* pins held: the pool never closes a pinned fd */
    int fd_keep;              /* 1: out of the list with holders left: never closed before the free */
    int fd_pooled;            /* 1: fd counted in the pool (0: the cleaner's private new segment) */
    struct kc_segment *lru_prev, *lru_next; /* the pool's list, most recently used first */
    int64_t size;             /* published length of the .log */
    int64_t next_offset;      /* offset after the last batch (base_offset when empty) */
    int64_t max_timestamp;    /* -1: no timestamp yet */
    int64_t offset_of_max_ts; /* last offset of the batch holding max_timestamp */
    int64_t first_batch_ts;   /* max timestamp of the first batch: time-based roll */
    int64_t created_ms;
    int64_t bytes_since_index;
    int64_t flushed_size;
    kc_index_t oidx, tidx;
    int64_t idx_bytes;        /* size the indexes get when opened lazily: max_index_bytes while active, else 0 */
    uint8_t *map;             /* read-only mapping of the .log, grown on demand */
    size_t map_len;
    atomic_long refs;
    char *path;               /* "<dir>/<20-digit base>" without extension */
} kc_segment_t;

/* A batch header read from a segment or an append buffer. */
typedef struct kc_hdr {
    int64_t base, last, first_ts, max_ts;
    int64_t size;
    int16_t attributes;
} kc_hdr_t;

/* Decode the header fields at p (at least KC_BATCH_HEADER_SIZE bytes). */
void kc_hdr_decode(const uint8_t *p, kc_hdr_t *h);

/* "<path><ext>" (malloc'd; NULL when out of memory). */
char *kc_segment_file(const kc_segment_t *s, const char *ext);
int kc_fsync_dir(const char *dir);

/* A segment object for "<dir>/<base>" with no file open (refs = 1). */
kc_segment_t *kc_segment_alloc(const char *dir, int64_t base);
void kc_segment_unref(kc_segment_t *s);
/* A new, empty segment: .log created or emptied (and closed again), its
 * indexes not opened and any stale index files removed. */
int kc_segment_create(const kc_log_config_t *cfg, const char *dir, int64_t base, int64_t now_ms,
                      kc_segment_t **out);
/* Open (fresh: create/truncate) the two index files of s. */
int kc_segment_open_indexes(const kc_log_config_t *cfg, kc_segment_t *s, int64_t bytes, int fresh);
/* Pin the .log's fd (opening it, and closing the least recently used
 * unpinned one when the pool is at its cap): s->fd stays valid and open
 * until kc_segment_unpin.  KC_ERR_IO with errno when it cannot be opened. */
int kc_segment_pin(kc_segment_t *s);
void kc_segment_unpin(kc_segment_t *s);
/* s leaves the log's list but may still be read through references held
 * elsewhere while its path is about to name another file (the cleaner's swap):
 * keep its fd open until it is freed.  A no-op without other holders. */
int kc_segment_detach(kc_segment_t *s);
/* Hand s's privately opened fd (the cleaner's new segment) to the pool. */
void kc_segment_adopt_fd(kc_segment_t *s);
/* Open the indexes if they are not (empty, sized s->idx_bytes). */
int kc_segment_indexes(kc_segment_t *s);
/* Close the indexes: the segment has no entries; they open again empty, of
 * size bytes, when the first entry comes. */
void kc_segment_indexes_unopened(kc_segment_t *s, int64_t bytes);
/* The indexes' files were renamed to s->path + ext (the cleaner's swap). */
int kc_segment_indexes_renamed(kc_segment_t *s);
/* Unlink the segment's files: .log, .index, .timeindex and the broker's
 * .txnindex (open fds and mappings stay valid; with holders left,
 * kc_segment_detach first, so its fd stays open for them). */
void kc_segment_unlink(kc_segment_t *s);
/* Make s->map cover [0, need). */
int kc_segment_map(const kc_log_config_t *cfg, kc_segment_t *s, int64_t need);
/* Header of the batch at pos, bounds-checked against limit. */
int kc_segment_hdr(const kc_segment_t *s, int64_t pos, int64_t limit, kc_hdr_t *h);
/* Account one appended batch: timestamps, next offset, sparse index entries. */
void kc_segment_account(const kc_log_config_t *cfg, kc_segment_t *s, const kc_hdr_t *h, int64_t pos, int index);
/* Walk bytes [from, size): validate = full check (kc_batch_check with
 * scan_flags) and offsets increasing, else header sanity only; index =
 * rebuild index entries.  *valid_end = start of the first bad batch. */
int kc_segment_walk(const kc_log_config_t *cfg, kc_segment_t *s, int64_t from, int64_t size, int validate,
                    int index, int64_t *prev_next, int64_t *valid_end, int64_t *batches);
/* Load a segment that needs no recovery (indexes checked, rebuilt if bad). */
int kc_segment_load(const kc_log_config_t *cfg, kc_segment_t *s, int active, int64_t *prev_next);
/* No longer active: final time-index entry, trim indexes. */
void kc_segment_deactivate(kc_segment_t *s);
/* Cut s at pos (a batch boundary). */
int kc_segment_truncate(const kc_log_config_t *cfg, kc_segment_t *s, int64_t pos);
/* The batch holding offset in s (first batch whose last offset >= offset).
 * KC_ERR_CORRUPT_INDEX: the header at *pos is damaged. */
int kc_segment_find(const kc_log_config_t *cfg, kc_segment_t *s, int64_t offset, int64_t *pos, kc_hdr_t *h);
/* Last offset of the batch that ends at end (> 0) in s. */
int kc_segment_last_before(const kc_log_config_t *cfg, kc_segment_t *s, int64_t start, int64_t end,
                           int64_t *last);
/* Re-read s fully (CRC, offsets), rebuild indexes, cut at the first bad
 * byte.  Returns 1 when cut, 0 when whole, -1 on I/O error (*err set). */
int kc_segment_recover(const kc_log_config_t *cfg, kc_segment_t *s, int64_t *prev_next, kc_recovery_info_t *rec,
                       int *err);

#endif
