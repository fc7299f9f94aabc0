/* kc_test_log.h - log configurations for the C tests that write logs. */
#ifndef KC_TEST_LOG_H
#define KC_TEST_LOG_H
#include <stdint.h>

#include "kc_log.h"

/* The default log config with small segments and indexes, so a test rolls
 * and indexes often. */
static inline kc_log_config_t kc_test_small_cfg(int64_t segment_bytes, int32_t index_interval_bytes,
                                                int32_t max_index_bytes) {
    kc_log_config_t c;
    kc_log_config_default(&c);
    c.segment_bytes = segment_bytes;
    c.index_interval_bytes = index_interval_bytes;
    c.max_index_bytes = max_index_bytes;
    return c;
}
#endif
