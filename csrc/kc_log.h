/* kc_log.h - a partition log: a directory of segments with sparse,
 * memory-mapped offset and time indexes, as Apache Kafka lays them out.
 *
 * Files in the directory:
 *   <20-digit base offset>.log        record batches exactly as on the wire
 *   <20-digit base offset>.index      8-byte entries {i32 lastOffset - base, i32 position}
 *   <20-digit base offset>.timeindex  12-byte entries {i64 maxTimestampSoFar, i32 offset - base}
 *   <20-digit base offset>.txnindex   34-byte aborted transactions (Kafka's TransactionIndex):
 *                                      written by the broker (kafka_broker/log/txn.py) and the
 *                                      cleaner; the core removes it with its segment, never
 *                                      rebuilds it
 *   .kafka_cleanshutdown               present only after kc_log_close(l, 1)
 *   kc-checkpoint                      "recovery_point log_start_offset\n"
 *   kc-cleaner-checkpoint              "offset\n": compacted below it (kc_compact.h)
 *   <base>.{log,index,timeindex,txnindex}.cleaned / .swap   a compaction swap in progress;
 *                                      open finishes or discards it
 * Batches may be compacted (fewer records than lastOffsetDelta + 1, even
 * none: KC_SCAN_ALLOW_COMPACTED); recovery and reads accept them, produce
 * appends (KC_APPEND_ASSIGN_OFFSETS) do not.
 * An index entry is added when more than index_interval_bytes were written
 * since the last one (Kafka's LogSegment.append).  Index files are
 * preallocated to max_index_bytes and mmapped while their segment is
 * active, trimmed when it rolls or the log closes cleanly.  They carry no
 * checksum: recovery rebuilds them from the log.  Files are opened lazily
 * and an index keeps no fd (kc_segment.h): an idle log holds no fd and no
 * mapping, a log in use one fd per segment read or written, and all logs
 * together at most kc_log_fd_cap() (the least recently used fd nobody pins
 * is closed to open another).
 *
 * Recovery: opening a log without the clean-shutdown marker re-reads every
 * segment from the one holding the recovery point, validating each batch
 * (lengths, magic, CRC32C, offsets increasing), rebuilds their indexes,
 * truncates the segment at the first bad byte and deletes later segments.
 *
 * Threads: every function may be called from any thread; a mutex inside
 * the log guards the segment list.  Appends come from one thread at a
 * time (the broker's event loop); flush and retention run elsewhere.
 * Nothing here blocks on anything but disk I/O.
 */
#ifndef KC_LOG_H
#define KC_LOG_H

#include <stddef.h>
#include <stdint.h>

typedef struct kc_log_config {
    int64_t segment_bytes;           /* log.segment.bytes (default 1 GiB) */
    int64_t roll_ms;                 /* log.roll.ms (default 168 h) */
    int32_t index_interval_bytes;    /* log.index.interval.bytes (4096) */
    int32_t max_index_bytes;         /* log.index.size.max.bytes (10 MiB) */
    int64_t flush_interval_messages; /* log.flush.interval.messages (INT64_MAX = leave it to the OS) */
    int32_t max_batch_size;          /* largest batch accepted by append, bytes (0 = no limit) */
} kc_log_config_t;

void kc_log_config_default(kc_log_config_t *cfg);

typedef struct kc_log kc_log_t;

typedef struct kc_recovery_info {
    int clean;                  /* 1: opened after a clean shutdown, nothing re-read */
    int64_t segments_scanned;
    int64_t batches_scanned;
    int64_t bytes_truncated;    /* invalid tail bytes removed */
    int64_t segments_deleted;   /* segments after the first bad byte */
    int first_error;            /* kc_err of the first bad batch, KC_OK if none */
} kc_recovery_info_t;

/* Open (creating the directory when missing) and recover if needed. */
int kc_log_open(const char *dir, const kc_log_config_t *cfg, int64_t now_ms, kc_log_t **out);
void kc_log_recovery_info(const kc_log_t *l, kc_recovery_info_t *out);
/* Change the settings of an open log (a topic's segment.bytes, segment.ms,
 * index.interval.bytes, flush.messages, max batch size altered live).  They
 * apply from the next append; max_index_bytes only to segments created
 * afterwards.  The active segment is not rolled by this call. */
int kc_log_configure(kc_log_t *l, const kc_log_config_t *cfg);

/* clean = 1: flush everything, write the checkpoint, trim indexes, write
 * the clean-shutdown marker.  clean = 0: just release (as a crash would,
 * minus losing the page cache).  Frees l either way. */
int kc_log_close(kc_log_t *l, int clean);
/* Close and remove every file of the log and its directory. */
int kc_log_delete(kc_log_t *l);

typedef struct kc_append_info {
    int64_t first_offset;
    int64_t last_offset;
    int64_t max_timestamp;
    int64_t offset_of_max_timestamp;
    int64_t log_append_time;    /* -1 unless stamped */
    int64_t batches;
    int64_t records;
    int64_t segment_base;       /* segment the bytes went to */
    int64_t position;           /* their position in it */
    int flush_due;              /* unflushed messages reached flush_interval_messages */
    /* on a validation error: the bad batch's byte position in buf and its index (-1 otherwise) */
    int64_t error_position;
    int64_t error_batch;
} kc_append_info_t;

#define KC_APPEND_ASSIGN_OFFSETS 0x1 /* produce: assign offsets from the log end.
                                        Without it offsets are kept (replica/compactor)
                                        and must start at or after the log end, and
                                        compacted batches are accepted. */
#define KC_APPEND_SKIP_CRC 0x2       /* caller already verified the CRC */

/* Validate buf (every batch: lengths, magic, CRC32C unless SKIP_CRC, count)
 * in one pass over the headers that also sums what the append needs (records,
 * batches, largest timestamp); on a bad batch info->error_position and
 * info->error_batch say which.  Then assign offsets in place, stamp LogAppendTime when log_append_time >= 0,
 * roll the active segment if needed, and write the whole buffer with one
 * write().  Nothing is written when validation fails.
 * Details: an empty buf is KC_ERR_ARG and a batch of 0 records
 * KC_ERR_BAD_COUNT; without ASSIGN_OFFSETS log_append_time is ignored and
 * offsets going back are KC_ERR_OFFSET_OUT_OF_RANGE.  offset_of_max_timestamp
 * is the last offset of the batch holding max_timestamp (Kafka's shallow
 * offset, as in the time index).  Time-based roll follows Kafka: the
 * append's largest timestamp minus the segment's first batch's timestamp,
 * or now_ms minus the creation time when the segment has no timestamps. */
int kc_log_append(kc_log_t *l, uint8_t *buf, size_t len, uint32_t flags, int32_t leader_epoch,
                  int64_t log_append_time, int64_t now_ms, kc_append_info_t *info);

/* A byte range of one segment file.  While a slice is held its segment's
 * file stays readable even if retention deletes the segment.  fd is valid
 * while the slice is pinned: kc_log_read pins it; kc_log_read_ex with
 * KC_READ_UNPINNED does not (fd -1), and the sender pins it with
 * kc_slice_pin only while it sends it, so a response of 5,000 slices holds
 * one fd at a time instead of 5,000. */
typedef struct kc_slice {
    int fd;
    int pinned;
    int64_t position;
    int64_t length;            /* 0: nothing to read (offset == end) */
    int64_t segment_base;
    int64_t first_offset;      /* base offset of the first batch in the slice */
    int64_t last_offset;       /* last offset of the last batch in the slice */
    void *ref;                 /* segment reference; kc_slice_release drops it */
} kc_slice_t;

/* Read from offset: whole batches of one segment, starting at the batch
 * that holds offset, ending on a batch boundary within max_bytes, but at
 * least one whole batch even if it alone is larger.  max_offset: exclusive
 * bound (high watermark / last stable offset), -1 = log end.
 * offset < start offset or > end offset: KC_ERR_OFFSET_OUT_OF_RANGE.
 * offset == end (or >= max_offset): KC_OK with length 0 and no reference held.
 * A batch reaching max_offset is not readable (its last offset must be
 * below it), so a batch straddling max_offset also gives length 0.
 * The slice's first batch is validated whole (lengths, magic, CRC32C): when
 * it fails (bytes damaged on disk), or a batch header on the way to it does
 * (KC_ERR_CORRUPT_INDEX), the error is its kc_err and out holds length -1
 * with the segment_base and position of the damaged batch. */
int kc_log_read(kc_log_t *l, int64_t offset, int64_t max_bytes, int64_t max_offset, kc_slice_t *out);
/* kc_log_read with flags.  KC_READ_SKIP_EMPTY (consumers): batches the cleaner left with no
 * record (recordCount 0) are skipped when they come first, across segments, as Kafka's read
 * moves past a segment cleaned empty; the slice then starts at the first batch holding a
 * record.  A consumer handed only empty batches sees no record at all, and librdkafka takes
 * that for a record too large to fetch.  At most KC_READ_SKIP_MAX batches are skipped (the
 * slice starts where that ends); when no batch holding a record follows below max_offset, the
 * read is the plain one. */
#define KC_READ_SKIP_EMPTY 1u
#define KC_READ_SKIP_MAX 4096
#define KC_READ_UNPINNED 2u
int kc_log_read_ex(kc_log_t *l, int64_t offset, int64_t max_bytes, int64_t max_offset, uint32_t flags,
                   kc_slice_t *out);
/* Pin (open when the pool closed it) the slice's fd: out->fd valid until
 * kc_slice_unpin or kc_slice_release.  No-op when pinned or empty. */
int kc_slice_pin(kc_slice_t *s);
void kc_slice_unpin(kc_slice_t *s);
/* Unpin and drop the segment reference. */
void kc_slice_release(kc_slice_t *s);

/* The process-wide pool of open segment files (kc_segment.h).  The cap is
 * derived from RLIMIT_NOFILE at first use (half the soft limit, the rest left
 * to sockets and short-lived files); kc_log_set_fd_cap(0) derives it again
 * (after setrlimit), n > 0 sets it (tests) and closes unpinned fds above it.
 * Pinned fds are never closed, so the count may exceed the cap while more
 * are pinned at once. */
typedef struct kc_fd_stats {
    int64_t cap;
    int64_t open;       /* segment fds open now */
    int64_t opens;      /* opened since start */
    int64_t evictions;  /* closed to make room */
} kc_fd_stats_t;
int64_t kc_log_fd_cap(void);
void kc_log_set_fd_cap(int64_t cap);
void kc_log_fd_stats(kc_fd_stats_t *out);

typedef struct kc_position {
    int64_t segment_base;
    int64_t position;          /* of the batch in the segment file */
    int64_t batch_base_offset;
    int64_t batch_last_offset;
    int64_t batch_max_timestamp;
    int32_t batch_size;
} kc_position_t;

/* The batch holding offset (the first batch whose last offset >= offset):
 * binary search over segments, then the offset index, then a short scan. */
int kc_log_lookup(kc_log_t *l, int64_t offset, kc_position_t *out);
/* First offset whose record timestamp >= ts (ListOffsets by time), and
 * that record's timestamp.  For compressed batches the answer is the
 * batch's base offset and *exact is 0.  KC_ERR_NOT_FOUND if none. */
int kc_log_lookup_time(kc_log_t *l, int64_t ts, int64_t *offset, int64_t *found_ts, int *exact);
/* Largest timestamp in the log and the offset holding it (-1, -1 if empty). */
int kc_log_max_timestamp(kc_log_t *l, int64_t *ts, int64_t *offset);

/* fsync every segment with unflushed data (and the directory after
 * creations/deletions); advances the recovery point. */
int kc_log_flush(kc_log_t *l);
/* Write kc-checkpoint (recovery point, log start offset) atomically. */
int kc_log_checkpoint(kc_log_t *l);
/* Roll a new active segment at the log end (no-op if the active one is empty). */
int kc_log_roll(kc_log_t *l, int64_t now_ms);
/* Remove every batch at or after offset (a batch holding it goes whole). */
int kc_log_truncate_to(kc_log_t *l, int64_t offset);

/* Drop every segment and start over with one empty segment at offset (which may lie past the
 * log end): a follower whose log ends before the leader's log start (Kafka's
 * truncateFullyAndStartAt).  Start and end offset become offset. */
int kc_log_truncate_fully(kc_log_t *l, int64_t offset);
/* Delete whole segments: by time (now - segment's largest timestamp >
 * retention_ms) and by size (oldest first while the log exceeds
 * retention_bytes); -1 disables each.  An expired active segment is rolled
 * first, so the log end offset never moves back.  A segment goes only when
 * all its offsets lie below upper_bound (-1: no bound): a replicated log
 * passes its high watermark, so nothing an in-sync replica may still lack
 * is deleted (Kafka's deletableSegments).  *deleted = segments removed. */
int kc_log_retention(kc_log_t *l, int64_t now_ms, int64_t retention_ms, int64_t retention_bytes,
                     int64_t upper_bound, int64_t *deleted);
/* Advance the log start offset (DeleteRecords); whole segments below it go. */
int kc_log_delete_records(kc_log_t *l, int64_t new_start_offset);

int64_t kc_log_start_offset(kc_log_t *l);
int64_t kc_log_end_offset(kc_log_t *l);        /* next offset to assign */
int64_t kc_log_size_bytes(kc_log_t *l);
int64_t kc_log_segment_count(kc_log_t *l);
int64_t kc_log_recovery_point(kc_log_t *l);
int64_t kc_log_unflushed_messages(kc_log_t *l);

typedef struct kc_segment_info {
    int64_t base_offset;
    int64_t size_bytes;
    int64_t next_offset;       /* offset after its last batch */
    int64_t max_timestamp;
    int64_t created_ms;
    int64_t index_entries;
    int64_t timeindex_entries;
} kc_segment_info_t;
/* Up to cap segments, oldest first; *n = total number of segments. */
int kc_log_segments(kc_log_t *l, kc_segment_info_t *out, size_t cap, size_t *n);

#endif
