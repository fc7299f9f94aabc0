/* kc_compact.h - log compaction (Kafka's LogCleaner) for topics with
 * cleanup.policy=compact (or compact,delete).
 *
 * One pass of kc_log_compact:
 *  1. The dirty section is [cleaner checkpoint, first uncleanable offset):
 *     never the active segment, no segment whose largest timestamp is
 *     newer than now - min_compaction_lag_ms (nor any after it), and only
 *     segments wholly below max_offset when one is given (a replicated log
 *     passes its high watermark: Kafka cleans no further than the last
 *     stable offset).
 *  2. A map key -> latest offset is built over the dirty section, whole
 *     segments at a time while they fit in max_map_bytes.  Keys are stored
 *     as a 128-bit hash (two 64-bit murmur3 lanes, like Kafka's MD5 map:
 *     no key bytes kept; a false match needs a 128-bit collision).
 *  3. Every segment from the log start to the end of the mapped range is
 *     rewritten, in groups of consecutive segments whose sizes add up to at
 *     most segment_bytes, into "<base>.log.cleaned" (+ indexes).  A record
 *     stays when it has no key, when its key is not in the map, or when it
 *     is the latest record of its key; a tombstone (null value) also goes
 *     once its segment's largest timestamp is older than now -
 *     delete_retention_ms (Kafka's delete horizon).  Offsets never change:
 *     a batch keeps its baseOffset and lastOffsetDelta and holds fewer
 *     records (recordCount <= lastOffsetDelta + 1, see
 *     KC_SCAN_ALLOW_COMPACTED).  A batch left empty is dropped, except the
 *     last batch of a group (so the group ends at the same next offset,
 *     which crash recovery relies on) and batches of idempotent/
 *     transactional producers (producerId >= 0: they carry producer
 *     state).  A transactional batch of an aborted transaction
 *     (cfg.aborted) is neither mapped nor kept: it stays as an empty batch
 *     (its producer state), its records go.  A COMMIT/ABORT marker stays
 *     while the pass sees records of its transaction; after that it gets a
 *     delete horizon (KIP-534) and goes in a pass after the horizon
 *     (kc_compact_txn.h).  The group's "<base>.txnindex" is rewritten with
 *     the aborted transactions whose markers stay because of records seen
 *     (Kafka's cleaned TransactionIndex); none left: the file goes.
 *  4. Swap, crash-safe as Kafka's replaceSegments: the .cleaned files are
 *     fsynced and renamed to ".swap" (the log file last; the .txnindex only
 *     when the group has entries); then, under the
 *     log's lock, the old segments' files are unlinked and the .swap files
 *     renamed over the group's first segment.  kc_log_open finishes an
 *     interrupted swap (a "<base>.log.swap" exists: every segment it
 *     covers is removed, the swap becomes the segment, its indexes are
 *     rebuilt) and removes leftover ".cleaned" files.
 *  5. The cleaner checkpoint (file "kc-cleaner-checkpoint") moves to the
 *     end of the mapped range.
 * Appends, reads, flushes and retention go on meanwhile: the cleaner reads
 * its own private mapping of immutable (non-active) segments and takes the
 * log lock only to swap; a slice of a swapped-out segment stays readable
 * until released.  truncate_to makes a running pass give up (it is
 * retried on the next call).  One pass at a time per log; the log must
 * not be closed while a pass runs.
 *
 * Compressed batches: C has no codecs, so the caller may supply hooks.
 * Without hooks (or when a hook fails) a compressed batch is kept whole and
 * its keys are not mapped (less compaction, never lost data).  With hooks
 * the records section is decompressed to read keys, filtered, and
 * recompressed with the same codec.  The Python binding supplies hooks
 * that call kafka_client.compression (cramjam) with the GIL taken only for
 * that batch.
 */
#ifndef KC_COMPACT_H
#define KC_COMPACT_H

#include <stddef.h>
#include <stdint.h>

#include "kc_log.h"

/* Codec hooks: turn in[0, in_len) into a malloc()ed buffer *out of
 * *out_len bytes (freed by the cleaner with free()).  Return KC_OK or a
 * negative kc_err. */
typedef int (*kc_codec_fn)(void *ctx, int codec, const uint8_t *in, size_t in_len, uint8_t **out,
                           size_t *out_len);

/* An aborted transaction of the log (the broker's aborted-transaction index):
 * the records of producer_id's transactional batches within
 * [first_offset, last_offset] are discarded by the cleaner, never mapped as a
 * key's latest value (Kafka's LogCleaner drops aborted transactional data). */
typedef struct kc_aborted_txn {
    int64_t producer_id;
    int64_t first_offset;
    int64_t last_offset;           /* the ABORT marker's offset */
    int64_t last_stable_offset;    /* as in the index entry (kept in the cleaned .txnindex) */
} kc_aborted_txn_t;

/* One .txnindex entry: version int16 (0), producerId, firstOffset,
 * lastOffset, lastStableOffset (int64 each), big-endian: Kafka's AbortedTxn. */
#define KC_TXN_ENTRY_SIZE 34

typedef struct kc_compact_config {
    int64_t now_ms;
    int64_t delete_retention_ms;   /* delete.retention.ms (default 86400000) */
    int64_t min_compaction_lag_ms; /* min.compaction.lag.ms (default 0) */
    int64_t max_map_bytes;         /* log.cleaner.dedupe.buffer.size share for this pass */
    int64_t max_offset;            /* -1 (default): no bound; else no offset at or above it is
                                      cleaned (the high watermark) */
    const kc_aborted_txn_t *aborted; /* sorted by last_offset; NULL: none */
    size_t n_aborted;
    kc_codec_fn decompress;        /* NULL: compressed batches kept whole */
    kc_codec_fn compress;
    void *codec_ctx;
    int crash_after;               /* tests only, 0 otherwise: simulate a crash in the first
                                      swap, after writing the .cleaned files (1), after renaming
                                      them to .swap (2), after unlinking the old segments (3);
                                      the pass then returns KC_ERR_AGAIN and the log must be
                                      closed uncleanly and reopened */
} kc_compact_config_t;

void kc_compact_config_default(kc_compact_config_t *cfg, int64_t now_ms);

typedef struct kc_compact_stats {
    int64_t dirty_start;           /* cleaner checkpoint before the pass */
    int64_t end_offset;            /* cleaner checkpoint after (= dirty_start if nothing done) */
    int64_t map_entries;           /* distinct keys mapped */
    int64_t segments_before, segments_after;
    int64_t bytes_before, bytes_after;
    int64_t records_read, records_removed, tombstones_removed;
    int64_t batches_removed;
    int64_t markers_removed;       /* COMMIT/ABORT markers dropped past their delete horizon */
    int64_t compressed_kept_whole; /* compressed batches left untouched (no or failing hooks) */
    int aborted;                   /* truncation interrupted the pass */
} kc_compact_stats_t;

/* One cleaning pass (see above).  KC_OK with end_offset == dirty_start
 * when nothing is cleanable.  KC_ERR_TOO_LARGE when max_map_bytes cannot
 * hold the records of even the first dirty segment. */
int kc_log_compact(kc_log_t *l, const kc_compact_config_t *cfg, kc_compact_stats_t *stats);

/* Bytes of the clean section (below the cleaner checkpoint) and of the
 * cleanable dirty section (same bounds as a pass would use).  The broker
 * cleans a log when dirty / (clean + dirty) > min.cleanable.dirty.ratio. */
int kc_log_cleanable_bytes(kc_log_t *l, int64_t now_ms, int64_t min_compaction_lag_ms, int64_t max_offset,
                           int64_t *clean_bytes,
                           int64_t *dirty_bytes);
/* The persisted cleaner checkpoint (0 for a log never cleaned). */
int64_t kc_log_cleaner_checkpoint(kc_log_t *l);

/* Called by kc_log_open before listing segments: finish or roll back an
 * interrupted swap, remove .cleaned leftovers.  *clean_offset = the
 * persisted cleaner checkpoint.  Not for other callers. */
int kc_compact_recover_dir(const char *dir, int64_t *clean_offset);
/* Lower the persisted checkpoint after a truncation (mu not held). */
int kc_compact_write_checkpoint(const char *dir, int64_t offset);

#endif
