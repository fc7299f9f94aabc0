# Declarations of csrc/kc_client.h.
from libc.stdint cimport int16_t, int32_t, int64_t, uint8_t


cdef extern from "kc_client.h" nogil:
    int KC_CLIENT_PRODUCE_MIN_VERSION
    int KC_CLIENT_PRODUCE_MAX_VERSION
    int KC_CLIENT_PRODUCE_FLEX_MIN
    int KC_CLIENT_FALLBACK

    ctypedef struct kc_client_produce_req:
        int16_t kcpr_ApiVersion
        int32_t kcpr_CorrelationId
        const uint8_t *kcpr_ClientId
        int32_t kcpr_ClientId_len
        const uint8_t *kcpr_TransactionalId
        int32_t kcpr_TransactionalId_len
        int16_t kcpr_Acks
        int32_t kcpr_TimeoutMs
        const uint8_t *kcpr_Name
        int32_t kcpr_Name_len
        int32_t kcpr_Index
        const uint8_t *kcpr_Records
        int64_t kcpr_Records_len

    ctypedef struct kc_client_produce_resp:
        int32_t kcps_CorrelationId
        int16_t kcps_ErrorCode
        int64_t kcps_BaseOffset
        int64_t kcps_LogAppendTimeMs
        int64_t kcps_LogStartOffset
        int32_t kcps_ThrottleTimeMs
        size_t kcps_ErrorMessage_off
        int32_t kcps_ErrorMessage_len

    size_t kc_client_produce_frame_size(const kc_client_produce_req *r)
    size_t kc_client_produce_frame_write(const kc_client_produce_req *r, uint8_t *out)
    int kc_client_produce_resp_parse(const uint8_t *buf, size_t len, int version, const uint8_t *name,
                                     size_t name_len, int32_t index, kc_client_produce_resp *out)
