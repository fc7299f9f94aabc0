/* kc_client.h - the client's compiled fast path for one awaited produce: a
 * ProduceRequest frame for ONE topic and ONE partition, and the matching
 * ProduceResponse, without building or walking Python message objects.
 *
 * Why: an awaited single send is ~100 us of Python on a 50 us round trip;
 * the generated codec builds five objects to encode a one-partition request
 * and six to decode its answer.  This does both in one pass each.
 *
 * The generated codecs in python/kafka_protocol stay the one definition of
 * the layouts: tests/unit/test_client_fastpath.py checks these frames byte
 * for byte against them at every version, and checks the schema fields
 * this file relies on against the generated classes.  Layouts (Produce v3-v12;
 * "flex" = v9+, compact strings/arrays as uvarint(n+1), tagged fields):
 *
 *   request  = Size int32 | ApiKey int16 (0) | ApiVersion int16 | CorrelationId int32
 *              | ClientId nullable int16-string (never compact) | [flex: header tags 0]
 *              | TransactionalId nullable string | Acks int16 | TimeoutMs int32
 *              | TopicData [1] { Name string | PartitionData [1] { Index int32
 *              | Records nullable bytes | [flex: tags 0] } | [flex: tags 0] } | [flex: tags 0]
 *   response = CorrelationId int32 | [flex: header tags] | Responses [] { Name string
 *              | PartitionResponses [] { Index int32 | ErrorCode int16 | BaseOffset int64
 *              | LogAppendTimeMs int64 | LogStartOffset int64 (v5+) | RecordErrors [] (v8+)
 *              | ErrorMessage nullable string (v8+) | [flex: tags] } | [flex: tags] }
 *              | ThrottleTimeMs int32 | [flex: tags]
 *
 * The response parser takes only the common shape: exactly one topic (the
 * one asked for) with exactly one partition (the one asked for), no record
 * errors, no tagged fields, nothing left over.  Anything else -- including a
 * truncated or malformed frame -- is KC_CLIENT_FALLBACK, never an error: the
 * caller then decodes with the generated codec, which raises exactly what it
 * always raised, so errors are the slow path's by construction.
 */
#ifndef KC_CLIENT_H
#define KC_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#define KC_CLIENT_PRODUCE_MIN_VERSION 3
#define KC_CLIENT_PRODUCE_MAX_VERSION 12   /* v13 names topics by id */
#define KC_CLIENT_PRODUCE_FLEX_MIN 9
#define KC_CLIENT_FALLBACK 1

/* A NULL pointer with length -1 is a null string / null records. */
typedef struct {
    int16_t kcpr_ApiVersion;
    int32_t kcpr_CorrelationId;
    const uint8_t *kcpr_ClientId;
    int32_t kcpr_ClientId_len;          /* -1: null */
    const uint8_t *kcpr_TransactionalId;
    int32_t kcpr_TransactionalId_len;   /* -1: null */
    int16_t kcpr_Acks;
    int32_t kcpr_TimeoutMs;
    const uint8_t *kcpr_Name;
    int32_t kcpr_Name_len;
    int32_t kcpr_Index;
    const uint8_t *kcpr_Records;
    int64_t kcpr_Records_len;           /* -1: null */
} kc_client_produce_req;

typedef struct {
    int32_t kcps_CorrelationId;
    int16_t kcps_ErrorCode;
    int64_t kcps_BaseOffset;
    int64_t kcps_LogAppendTimeMs;
    int64_t kcps_LogStartOffset;        /* -1 below v5 (the schema default) */
    int32_t kcps_ThrottleTimeMs;
    size_t kcps_ErrorMessage_off;       /* into the frame */
    int32_t kcps_ErrorMessage_len;      /* -1: null (always below v8) */
} kc_client_produce_resp;

/* Bytes of the whole frame, size prefix included; 0 when a field does not
 * fit its wire type or the version is outside 3-12 (the caller takes the
 * generated codec, which reports it). */
size_t kc_client_produce_frame_size(const kc_client_produce_req *r);

/* Write the frame into out (kc_client_produce_frame_size bytes); returns
 * the bytes written. */
size_t kc_client_produce_frame_write(const kc_client_produce_req *r, uint8_t *out);

/* Parse a response frame (size prefix removed) of version `version` for the
 * request's topic name / partition index: KC_OK and *out filled, or
 * KC_CLIENT_FALLBACK (see above). */
int kc_client_produce_resp_parse(const uint8_t *buf, size_t len, int version, const uint8_t *name,
                                 size_t name_len, int32_t index, kc_client_produce_resp *out);

#endif
