/* kc_log_internal.h - the log object shared by kc_log.c (append, read,
 * lookup, flush, retention), kc_log_open.c (open, recovery, close) and
 * kc_compact.c (the cleaner).  Not a public header.
 *
 * Locks, always taken in this order:
 *   clean_mu   one cleaner at a time; truncate_to takes it too, so a
 *              segment never shrinks under the cleaner's private mapping
 *   append_mu  one writer at a time: append, roll, truncate, retention,
 *              delete_records (anything that changes the active segment)
 *   flush_mu   one flusher at a time (fsync runs without mu held)
 *   mu         the segment list and every published field; held only for
 *              short in-memory work (index search, header walks over the
 *              mmapped log, the cleaner's renames), never across write()
 *              or fsync()
 */
#ifndef KC_LOG_INTERNAL_H
#define KC_LOG_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include "kc_log.h"
#include "kc_segment.h"

#define KC_LOG_CLEAN_MARKER ".kafka_cleanshutdown"
#define KC_LOG_CHECKPOINT "kc-checkpoint"

struct kc_log {
    char *dir;
    kc_log_config_t cfg;
    pthread_mutex_t mu, append_mu, flush_mu, clean_mu;
    kc_segment_t **segs;
    size_t nsegs, cap;
    int64_t start_offset, end_offset, recovery_point, unflushed;
    int64_t clean_offset;     /* cleaner checkpoint: offsets below it were compacted */
    atomic_int clean_abort;   /* set by truncate_to: a running cleaner gives up */
    int dir_dirty;
    int64_t ckpt_rp, ckpt_lso; /* what kc-checkpoint holds (-1: unknown): close skips an unchanged one */
    kc_recovery_info_t rec;
};

static inline kc_segment_t *kc_log_active(const kc_log_t *l) { return l->segs[l->nsegs - 1]; }

/* mu held for all of these. */
int kc_log_list_push(kc_log_t *l, kc_segment_t *s);
void kc_log_list_delete(kc_log_t *l, size_t from, size_t n);
size_t kc_log_list_floor(const kc_log_t *l, int64_t offset);
int kc_log_roll_locked(kc_log_t *l, int64_t base, int64_t now_ms);

char *kc_log_dir_file(const kc_log_t *l, const char *name);
int kc_log_write_checkpoint(kc_log_t *l, int64_t rp, int64_t lso);

#endif
