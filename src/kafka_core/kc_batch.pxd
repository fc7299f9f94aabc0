# Declarations of csrc/kc_batch.h.
from libc.stdint cimport int8_t, int16_t, int32_t, int64_t, uint8_t, uint32_t, uint64_t

cdef extern from "<sys/types.h>":
    ctypedef long ssize_t


cdef extern from "kc_batch.h" nogil:
    enum:
        KC_BATCH_HEADER_SIZE
        KC_BATCH_LOG_OVERHEAD
        KC_BATCH_MIN_LENGTH
        KC_BATCH_CRC_START
        KC_ATTR_CODEC_MASK
        KC_CODEC_NONE
        KC_CODEC_GZIP
        KC_CODEC_SNAPPY
        KC_CODEC_LZ4
        KC_CODEC_ZSTD
        KC_ATTR_LOG_APPEND_TIME
        KC_ATTR_TRANSACTIONAL
        KC_ATTR_CONTROL
        KC_ATTR_DELETE_HORIZON
        KC_SCAN_VERIFY_CRC
        KC_SCAN_ALLOW_PARTIAL
        KC_SCAN_REJECT_CONTROL
        KC_SCAN_ALLOW_COMPACTED

    ctypedef struct kc_batch_info_t:
        int64_t base_offset
        int32_t batch_length
        int32_t partition_leader_epoch
        int8_t magic
        uint32_t crc
        int16_t attributes
        int32_t last_offset_delta
        int64_t base_timestamp
        int64_t max_timestamp
        int64_t producer_id
        int16_t producer_epoch
        int32_t base_sequence
        int32_t record_count
        size_t position
        size_t size

    ctypedef struct kc_batch_summary_t:
        size_t batches
        int64_t records
        int64_t offsets
        int64_t max_timestamp
        int32_t offset_delta_of_max_ts
        int64_t first_timestamp

    int kc_batch_parse(const uint8_t *buf, size_t len, size_t max_batch_size, kc_batch_info_t *out)
    int kc_batch_validate(const uint8_t *buf, size_t len, size_t max_batch_size, kc_batch_info_t *out)
    int kc_batch_check(const uint8_t *buf, size_t len, size_t max_batch_size, uint32_t flags,
                       kc_batch_info_t *out)
    int kc_batch_scan(const uint8_t *buf, size_t len, uint32_t flags, size_t max_batch_size,
                      kc_batch_info_t *infos, size_t cap, size_t *n_out, size_t *valid_len)
    void kc_batch_summarize(const kc_batch_info_t *infos, size_t n, kc_batch_summary_t *out)
    int kc_batch_assign_offsets(uint8_t *buf, size_t len, int64_t base_offset, int32_t leader_epoch,
                                int64_t log_append_time, int64_t *next_offset)
    void kc_batch_update_crc(uint8_t *buf, size_t size)

    size_t kc_varint_put_u64(uint8_t *out, uint64_t v)
    size_t kc_varint_put_i64(uint8_t *out, int64_t v)
    size_t kc_varint_size_i64(int64_t v)
    int kc_varint_get_u64(const uint8_t *buf, size_t len, uint64_t *v)
    int kc_varint_get_i64(const uint8_t *buf, size_t len, int64_t *v)
    int kc_varint_get_i32(const uint8_t *buf, size_t len, int32_t *v)

    ctypedef struct kc_record_t:
        int8_t attributes
        int64_t timestamp_delta
        int32_t offset_delta
        const uint8_t *key
        int32_t key_len
        const uint8_t *value
        int32_t value_len
        int32_t header_count
        const uint8_t *headers
        size_t headers_len
        size_t size

    ctypedef struct kc_header_t:
        const uint8_t *key
        int32_t key_len
        const uint8_t *value
        int32_t value_len

    int kc_record_next(const uint8_t *buf, size_t len, size_t *pos, kc_record_t *rec)
    int kc_header_next(const uint8_t *buf, size_t len, size_t *pos, kc_header_t *hdr)

    enum:
        KC_RECORDS_REQUIRE_KEYS

    ctypedef struct kc_records_check_t:
        int32_t records
        size_t position
        int32_t offset_delta

    int kc_records_check(const uint8_t *records, size_t len, int32_t count, int32_t last_offset_delta,
                         uint32_t flags, kc_records_check_t *out)
    int kc_batch_check_records(const uint8_t *buf, size_t len, uint32_t scan_flags, uint32_t flags,
                               kc_records_check_t *out)
    size_t kc_batch_rewrite(uint8_t *out, size_t cap, const uint8_t *batch, int codec,
                            const uint8_t *records, size_t records_len)

    ctypedef struct kc_builder_t:
        uint8_t *buf
        size_t cap
        size_t pos
        int64_t base_timestamp
        int64_t max_timestamp
        int32_t count
        int16_t attributes
        int64_t producer_id
        int16_t producer_epoch
        int32_t base_sequence

    int kc_builder_init(kc_builder_t *b, uint8_t *buf, size_t cap, int64_t base_timestamp,
                        int16_t attributes, int64_t producer_id, int16_t producer_epoch,
                        int32_t base_sequence)
    int kc_builder_append(kc_builder_t *b, int64_t timestamp, const uint8_t *key, ssize_t key_len,
                          const uint8_t *value, ssize_t value_len, const kc_header_t *headers,
                          size_t header_count)
    size_t kc_builder_finish(kc_builder_t *b)
    size_t kc_builder_finish_compressed(kc_builder_t *b, int codec, size_t compressed_len)


cdef extern from "kc_common.h" nogil:
    enum:
        KC_ERR_MISSING_KEY
