/* kc_batch.h - Kafka RecordBatch (magic 2) scan, validation, offset
 * assignment, and record-level encode/decode.
 *
 * Batch header layout (offset:size, big-endian):
 *   baseOffset 0:8  batchLength 8:4  partitionLeaderEpoch 12:4  magic 16:1
 *   crc 17:4  attributes 21:2  lastOffsetDelta 23:4  baseTimestamp 27:8
 *   maxTimestamp 35:8  producerId 43:8  producerEpoch 51:2  baseSequence 53:4
 *   recordCount 57:4  records 61..
 * batchLength counts the bytes after the length field, so a batch takes
 * batchLength + 12 bytes.  CRC-32C covers byte 21 to the end: baseOffset,
 * batchLength, partitionLeaderEpoch and magic are outside it, which is why
 * the broker can assign offsets in place without recomputing it.
 *
 * Record (all varints zigzag): length, attributes i8, timestampDelta
 * (varlong), offsetDelta (varint), keyLength (-1 = null), key, valueLength
 * (-1 = null), value, headerCount, headers (keyLength, key, valueLength
 * (-1 = null), value).  When the codec bits are set, everything after
 * recordCount is compressed; record decode then works on the
 * decompressed bytes.
 */
#ifndef KC_BATCH_H
#define KC_BATCH_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define KC_BATCH_HEADER_SIZE 61      /* fixed part, up to recordCount */
#define KC_BATCH_LOG_OVERHEAD 12     /* baseOffset + batchLength */
#define KC_BATCH_MIN_LENGTH (KC_BATCH_HEADER_SIZE - KC_BATCH_LOG_OVERHEAD) /* 49 */
/* Byte offsets of the v2 batch header fields (DefaultRecordBatch): the one
 * definition of the layout, used by every file that reads or writes a header. */
#define KC_BATCH_OF_BASE_OFFSET 0
#define KC_BATCH_OF_LENGTH 8
#define KC_BATCH_OF_LEADER_EPOCH 12
#define KC_BATCH_OF_MAGIC 16
#define KC_BATCH_OF_CRC 17
#define KC_BATCH_OF_ATTRIBUTES 21
#define KC_BATCH_OF_LAST_OFFSET_DELTA 23
#define KC_BATCH_OF_BASE_TIMESTAMP 27
#define KC_BATCH_OF_MAX_TIMESTAMP 35
#define KC_BATCH_OF_PRODUCER_ID 43
#define KC_BATCH_OF_PRODUCER_EPOCH 51
#define KC_BATCH_OF_BASE_SEQUENCE 53
#define KC_BATCH_OF_RECORD_COUNT 57
#define KC_BATCH_CRC_START KC_BATCH_OF_ATTRIBUTES /* the CRC covers attributes to the end */

/* attributes */
#define KC_ATTR_CODEC_MASK 0x07
#define KC_CODEC_NONE 0
#define KC_CODEC_GZIP 1
#define KC_CODEC_SNAPPY 2
#define KC_CODEC_LZ4 3
#define KC_CODEC_ZSTD 4
#define KC_ATTR_LOG_APPEND_TIME 0x08
#define KC_ATTR_TRANSACTIONAL 0x10
#define KC_ATTR_CONTROL 0x20
#define KC_ATTR_DELETE_HORIZON 0x40

typedef struct kc_batch_info {
    int64_t base_offset;
    int32_t batch_length;          /* the length field: size - 12 */
    int32_t partition_leader_epoch;
    int8_t magic;
    uint32_t crc;                  /* stored CRC */
    int16_t attributes;
    int32_t last_offset_delta;
    int64_t base_timestamp;        /* first timestamp */
    int64_t max_timestamp;
    int64_t producer_id;
    int16_t producer_epoch;
    int32_t base_sequence;
    int32_t record_count;
    size_t position;               /* byte position of the batch in the scanned buffer */
    size_t size;                   /* whole batch in bytes: batch_length + 12 */
} kc_batch_info_t;

/* Scan flags */
#define KC_SCAN_VERIFY_CRC 0x1       /* check CRC32C of every batch */
#define KC_SCAN_ALLOW_PARTIAL 0x2    /* a truncated last batch ends the scan without error
                                        (fetch responses may end mid-batch) */
#define KC_SCAN_REJECT_CONTROL 0x4   /* control batches are KC_ERR_CONTROL_BATCH (produce path) */
#define KC_SCAN_ALLOW_COMPACTED 0x8  /* accept compacted batches: 0 <= recordCount <=
                                        lastOffsetDelta + 1 (log reads and recovery;
                                        never the produce path, which wants equality) */

/* Parse and sanity-check one batch header at buf[0..len): length fields,
 * magic, count vs lastOffsetDelta.  Does not check the CRC.
 * max_batch_size: reject batches larger than this (KC_ERR_BAD_LENGTH); 0 = no limit.
 * Errors: KC_ERR_TRUNCATED (fewer than 17 bytes, or fewer than the batch's size),
 * KC_ERR_BAD_LENGTH, KC_ERR_LEGACY_MAGIC, KC_ERR_BAD_MAGIC, KC_ERR_BAD_COUNT. */
int kc_batch_parse(const uint8_t *buf, size_t len, size_t max_batch_size, kc_batch_info_t *out);

/* Full check of one batch: kc_batch_parse + CRC32C. */
int kc_batch_validate(const uint8_t *buf, size_t len, size_t max_batch_size, kc_batch_info_t *out);

/* kc_batch_parse with scan flags: KC_SCAN_VERIFY_CRC adds the CRC check,
 * KC_SCAN_ALLOW_COMPACTED relaxes the count rule (other flags ignored). */
int kc_batch_check(const uint8_t *buf, size_t len, size_t max_batch_size, uint32_t flags,
                   kc_batch_info_t *out);

/* Scan consecutive batches in buf[0..len).
 * Fills up to cap infos (infos may be NULL when cap == 0: count only).
 * *n_out: batches found valid (may exceed cap: only cap are written).
 * *valid_len: bytes of the valid prefix (whole batches).
 * Returns KC_OK if the valid prefix is the whole buffer (or, with
 * KC_SCAN_ALLOW_PARTIAL, the rest is a truncated batch), else the error of
 * the first bad batch (which starts at *valid_len). */
int kc_batch_scan(const uint8_t *buf, size_t len, uint32_t flags, size_t max_batch_size,
                  kc_batch_info_t *infos, size_t cap, size_t *n_out, size_t *valid_len);

/* Summary of a validated produce buffer, as the log append needs it. */
typedef struct kc_batch_summary {
    size_t batches;
    int64_t records;               /* sum of record counts */
    int64_t offsets;               /* sum of lastOffsetDelta + 1 */
    int64_t max_timestamp;
    int32_t offset_delta_of_max_ts; /* relative to the first offset of the buffer */
    int64_t first_timestamp;
} kc_batch_summary_t;

/* Summarize n scanned batches (infos from kc_batch_scan) the way Kafka's
 * LogValidator does without per-record work: max_timestamp is the largest
 * batch maxTimestamp (-1 when none is larger than -1), and
 * offset_delta_of_max_ts the last offset delta (from the buffer's first
 * offset) of the first batch holding it, -1 when there is none.
 * first_timestamp is the first batch's baseTimestamp (-1 when n == 0). */
void kc_batch_summarize(const kc_batch_info_t *infos, size_t n, kc_batch_summary_t *out);

/* The write half of kc_batch_assign_offsets, for a buffer its caller has
 * already validated whole (kc_log_append): no header is parsed again. */
void kc_batch_stamp(uint8_t *buf, size_t len, int64_t base_offset, int32_t leader_epoch,
                    int64_t log_append_time, int64_t *next_offset);

/* Assign offsets in place to every batch of an already validated buffer:
 * baseOffset = next offset (starting at base_offset), partitionLeaderEpoch
 * = leader_epoch.  Neither is CRC-covered, so the CRC is left alone.
 * log_append_time >= 0: set the LogAppendTime attribute bit and
 * maxTimestamp = log_append_time, recomputing the CRC (covered bytes change).
 * On KC_OK *next_offset is the offset after the last record. */
int kc_batch_assign_offsets(uint8_t *buf, size_t len, int64_t base_offset, int32_t leader_epoch,
                            int64_t log_append_time, int64_t *next_offset);

/* Recompute and store the CRC of the batch at buf (size bytes). */
void kc_batch_update_crc(uint8_t *buf, size_t size);

/* ---- varints (zigzag, as in protobuf) ---- */
/* Encoders return bytes written (out needs 10 bytes for 64-bit, 5 for 32-bit). */
size_t kc_varint_put_u64(uint8_t *out, uint64_t v);
size_t kc_varint_put_i64(uint8_t *out, int64_t v);   /* zigzag */
size_t kc_varint_size_i64(int64_t v);
/* Decoders return bytes read (> 0) or KC_ERR_VARINT_UNDERFLOW / KC_ERR_VARINT_OVERFLOW. */
int kc_varint_get_u64(const uint8_t *buf, size_t len, uint64_t *v);
int kc_varint_get_i64(const uint8_t *buf, size_t len, int64_t *v);   /* zigzag varlong */
int kc_varint_get_i32(const uint8_t *buf, size_t len, int32_t *v);   /* zigzag varint, max 5 bytes */

/* ---- records (decode) ---- */
typedef struct kc_record {
    int8_t attributes;
    int64_t timestamp_delta;
    int32_t offset_delta;
    const uint8_t *key;     /* NULL when key_len == -1 */
    int32_t key_len;
    const uint8_t *value;   /* NULL when value_len == -1 */
    int32_t value_len;
    int32_t header_count;
    const uint8_t *headers; /* raw header bytes, decode with kc_header_next */
    size_t headers_len;
    size_t size;            /* whole record including its length varint */
} kc_record_t;

typedef struct kc_header {
    const uint8_t *key;
    int32_t key_len;        /* >= 0: header keys are never null */
    const uint8_t *value;   /* NULL when value_len == -1 */
    int32_t value_len;
} kc_header_t;

/* Decode the record at buf[*pos..len); advances *pos past it.  Checks that
 * the record uses exactly its declared length. */
int kc_record_next(const uint8_t *buf, size_t len, size_t *pos, kc_record_t *rec);
/* Decode the next header from rec->headers[*pos..headers_len). */
int kc_header_next(const uint8_t *buf, size_t len, size_t *pos, kc_header_t *hdr);

/* ---- record checks (produce path, Kafka's LogValidator) ---- */
#define KC_RECORDS_REQUIRE_KEYS 0x1  /* compacted topic: every record needs a non-null key */

/* Where kc_records_check stopped: on KC_OK, records = count and position =
 * len; on an error, records is the index of the offending record (count
 * for a count mismatch) and position its byte offset in the section. */
typedef struct kc_records_check {
    int32_t records;
    size_t position;
    int32_t offset_delta;   /* offset delta of the last record decoded (-1: none) */
} kc_records_check_t;

/* Walk an UNCOMPRESSED records section records[0..len) in one pass and
 * check what Kafka's LogValidator checks per record, without allocating:
 * exactly `count` records decode and use exactly len bytes, offset deltas
 * are >= 0, strictly increasing and <= last_offset_delta, and (flag
 * KC_RECORDS_REQUIRE_KEYS) no key is null.  Stops at the first problem.
 * Errors: KC_ERR_ARG (NULL with len > 0, count < 0), record decode errors
 * from kc_record_next (KC_ERR_TRUNCATED, KC_ERR_BAD_RECORD,
 * KC_ERR_VARINT_*), KC_ERR_BAD_COUNT (the section ends before count
 * records, or bytes remain after them), KC_ERR_BAD_RECORD also for an
 * offset delta out of order or range, KC_ERR_MISSING_KEY.  out may be NULL. */
int kc_records_check(const uint8_t *records, size_t len, int32_t count, int32_t last_offset_delta,
                     uint32_t flags, kc_records_check_t *out);

/* The same over one whole uncompressed batch at buf[0..len): header as
 * kc_batch_check(max_batch_size 0, scan_flags), the batch must be the
 * whole buffer (KC_ERR_ARG otherwise), then kc_records_check with its
 * recordCount and lastOffsetDelta (out->position counts from the batch
 * start).  A compressed batch is KC_ERR_UNSUPPORTED: decompress its records
 * and call kc_records_check. */
int kc_batch_check_records(const uint8_t *buf, size_t len, uint32_t scan_flags, uint32_t flags,
                           kc_records_check_t *out);

/* Write into out[0..cap) the batch `batch` (a checked batch, at least
 * KC_BATCH_HEADER_SIZE bytes) re-encoded around a new records section of
 * records_len bytes with codec `codec` (0..4): header copied, codec bits
 * replaced, batchLength set, CRC recomputed.  records may alias
 * out + KC_BATCH_HEADER_SIZE (already in place) or be separate.  Returns
 * the size written, or 0 if it does not fit cap / batchLength (int32) /
 * the codec is out of range. */
size_t kc_batch_rewrite(uint8_t *out, size_t cap, const uint8_t *batch, int codec,
                        const uint8_t *records, size_t records_len);

/* ---- batch builder (client side) ----
 * Writes records into a caller-owned buffer; the header is filled at
 * finish.  Records are never compressed here: a compressing producer
 * builds with KC_CODEC_NONE, compresses bytes [61, size) itself and calls
 * kc_builder_finish_compressed. */
typedef struct kc_builder {
    uint8_t *buf;
    size_t cap;
    size_t pos;
    int64_t base_timestamp;
    int64_t max_timestamp;
    int32_t count;
    int16_t attributes;
    int64_t producer_id;
    int16_t producer_epoch;
    int32_t base_sequence;
} kc_builder_t;

/* cap must be >= KC_BATCH_HEADER_SIZE. */
int kc_builder_init(kc_builder_t *b, uint8_t *buf, size_t cap, int64_t base_timestamp,
                    int16_t attributes, int64_t producer_id, int16_t producer_epoch,
                    int32_t base_sequence);
/* key_len/value_len -1 = null.  KC_ERR_TOO_LARGE if the record does not
 * fit (the builder is unchanged). */
int kc_builder_append(kc_builder_t *b, int64_t timestamp, const uint8_t *key, ssize_t key_len,
                      const uint8_t *value, ssize_t value_len, const kc_header_t *headers,
                      size_t header_count);
/* Fill baseOffset 0, lengths, counts, timestamps, CRC.  Returns the batch size. */
size_t kc_builder_finish(kc_builder_t *b);
/* After replacing bytes [61, ...) with compressed_len bytes of compressed
 * records: set the codec bits and lengths, compute the CRC; returns size. */
size_t kc_builder_finish_compressed(kc_builder_t *b, int codec, size_t compressed_len);

#endif
