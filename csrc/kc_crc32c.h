/* kc_crc32c.h - CRC-32C (Castagnoli), the checksum of RecordBatch v2.
 *
 * kc_crc32c(0, "123456789", 9) == 0xE3069283.  The crc argument is the
 * value returned for the preceding bytes (0 to start), so
 * kc_crc32c(kc_crc32c(0, a, n), b, m) == crc of a||b: the same convention
 * as google-crc32c's extend().
 *
 * Two implementations give identical results: a hardware one (SSE4.2
 * crc32 instruction, three interleaved streams recombined by carry-less
 * shifts) and a portable slicing-by-8 table one.  kc_crc32c() picks the
 * hardware one at run time when the CPU has it.
 */
#ifndef KC_CRC32C_H
#define KC_CRC32C_H

#include <stddef.h>
#include <stdint.h>

uint32_t kc_crc32c(uint32_t crc, const void *buf, size_t len);
uint32_t kc_crc32c_sw(uint32_t crc, const void *buf, size_t len);
/* Only call when kc_crc32c_hw_available(); otherwise returns kc_crc32c_sw's result. */
uint32_t kc_crc32c_hw(uint32_t crc, const void *buf, size_t len);
int kc_crc32c_hw_available(void);
/* "sse4.2" or "portable": what kc_crc32c() uses now. */
const char *kc_crc32c_impl(void);
/* Tests and benchmarks: force the portable path (1) or restore the choice (0). */
void kc_crc32c_force_portable(int on);

#endif
