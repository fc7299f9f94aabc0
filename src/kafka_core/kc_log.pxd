# Declarations of csrc/kc_log.h (the partition log).
from libc.stdint cimport int32_t, int64_t, uint8_t, uint32_t


cdef extern from "kc_log.h" nogil:
    ctypedef struct kc_log_config_t:
        int64_t segment_bytes
        int64_t roll_ms
        int32_t index_interval_bytes
        int32_t max_index_bytes
        int64_t flush_interval_messages
        int32_t max_batch_size

    void kc_log_config_default(kc_log_config_t *cfg)

    ctypedef struct kc_log_t:
        pass

    ctypedef struct kc_recovery_info_t:
        int clean
        int64_t segments_scanned
        int64_t batches_scanned
        int64_t bytes_truncated
        int64_t segments_deleted
        int first_error

    int kc_log_open(const char *dir, const kc_log_config_t *cfg, int64_t now_ms, kc_log_t **out)
    void kc_log_recovery_info(const kc_log_t *l, kc_recovery_info_t *out)
    int kc_log_configure(kc_log_t *l, const kc_log_config_t *cfg)
    int kc_log_close(kc_log_t *l, int clean)
    int kc_log_delete(kc_log_t *l)

    ctypedef struct kc_append_info_t:
        int64_t first_offset
        int64_t last_offset
        int64_t max_timestamp
        int64_t offset_of_max_timestamp
        int64_t log_append_time
        int64_t batches
        int64_t records
        int64_t segment_base
        int64_t position
        int flush_due
        int64_t error_position
        int64_t error_batch

    enum:
        KC_APPEND_ASSIGN_OFFSETS
        KC_APPEND_SKIP_CRC

    int kc_log_append(kc_log_t *l, uint8_t *buf, size_t len, uint32_t flags, int32_t leader_epoch,
                      int64_t log_append_time, int64_t now_ms, kc_append_info_t *info)

    ctypedef struct kc_slice_t:
        int fd
        int pinned
        int64_t position
        int64_t length
        int64_t segment_base
        int64_t first_offset
        int64_t last_offset
        void *ref

    int kc_log_read(kc_log_t *l, int64_t offset, int64_t max_bytes, int64_t max_offset, kc_slice_t *out)
    int kc_log_read_ex(kc_log_t *l, int64_t offset, int64_t max_bytes, int64_t max_offset, uint32_t flags,
                       kc_slice_t *out)
    uint32_t KC_READ_SKIP_EMPTY
    uint32_t KC_READ_UNPINNED
    int kc_slice_pin(kc_slice_t *s)
    void kc_slice_unpin(kc_slice_t *s)
    void kc_slice_release(kc_slice_t *s)

    ctypedef struct kc_fd_stats_t:
        int64_t cap
        int64_t open
        int64_t opens
        int64_t evictions

    int64_t kc_log_fd_cap()
    void kc_log_set_fd_cap(int64_t cap)
    void kc_log_fd_stats(kc_fd_stats_t *out)

    ctypedef struct kc_position_t:
        int64_t segment_base
        int64_t position
        int64_t batch_base_offset
        int64_t batch_last_offset
        int64_t batch_max_timestamp
        int32_t batch_size

    int kc_log_lookup(kc_log_t *l, int64_t offset, kc_position_t *out)
    int kc_log_lookup_time(kc_log_t *l, int64_t ts, int64_t *offset, int64_t *found_ts, int *exact)
    int kc_log_max_timestamp(kc_log_t *l, int64_t *ts, int64_t *offset)

    int kc_log_flush(kc_log_t *l)
    int kc_log_checkpoint(kc_log_t *l)
    int kc_log_roll(kc_log_t *l, int64_t now_ms)
    int kc_log_truncate_to(kc_log_t *l, int64_t offset)
    int kc_log_truncate_fully(kc_log_t *l, int64_t offset)
    int kc_log_retention(kc_log_t *l, int64_t now_ms, int64_t retention_ms, int64_t retention_bytes,
                         int64_t upper_bound, int64_t *deleted)
    int kc_log_delete_records(kc_log_t *l, int64_t new_start_offset)

    int64_t kc_log_start_offset(kc_log_t *l)
    int64_t kc_log_end_offset(kc_log_t *l)
    int64_t kc_log_size_bytes(kc_log_t *l)
    int64_t kc_log_segment_count(kc_log_t *l)
    int64_t kc_log_recovery_point(kc_log_t *l)
    int64_t kc_log_unflushed_messages(kc_log_t *l)

    ctypedef struct kc_segment_info_t:
        int64_t base_offset
        int64_t size_bytes
        int64_t next_offset
        int64_t max_timestamp
        int64_t created_ms
        int64_t index_entries
        int64_t timeindex_entries

    int kc_log_segments(kc_log_t *l, kc_segment_info_t *out, size_t cap, size_t *n)


cdef extern from "kc_compact.h" nogil:
    ctypedef int (*kc_codec_fn)(void *ctx, int codec, const uint8_t *inp, size_t in_len, uint8_t **out,
                                size_t *out_len) noexcept

    ctypedef struct kc_aborted_txn_t:
        int64_t producer_id
        int64_t first_offset
        int64_t last_offset
        int64_t last_stable_offset

    ctypedef struct kc_compact_config_t:
        int64_t now_ms
        int64_t delete_retention_ms
        int64_t min_compaction_lag_ms
        int64_t max_map_bytes
        int64_t max_offset
        const kc_aborted_txn_t *aborted
        size_t n_aborted
        kc_codec_fn decompress
        kc_codec_fn compress
        void *codec_ctx
        int crash_after

    void kc_compact_config_default(kc_compact_config_t *cfg, int64_t now_ms)

    ctypedef struct kc_compact_stats_t:
        int64_t dirty_start
        int64_t end_offset
        int64_t map_entries
        int64_t segments_before
        int64_t segments_after
        int64_t bytes_before
        int64_t bytes_after
        int64_t records_read
        int64_t records_removed
        int64_t tombstones_removed
        int64_t batches_removed
        int64_t markers_removed
        int64_t compressed_kept_whole
        int aborted

    int kc_log_compact(kc_log_t *l, const kc_compact_config_t *cfg, kc_compact_stats_t *stats)
    int kc_log_cleanable_bytes(kc_log_t *l, int64_t now_ms, int64_t min_compaction_lag_ms,
                               int64_t max_offset, int64_t *clean_bytes, int64_t *dirty_bytes)
    int64_t kc_log_cleaner_checkpoint(kc_log_t *l)
