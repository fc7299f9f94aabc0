/* kc_crc32c.c - CRC-32C (Castagnoli, reflected polynomial 0x82F63B78).
 *
 * Two implementations that must agree bit for bit:
 *  - portable: slicing-by-8 tables (about 1.5 GB/s), used when the CPU has
 *    no SSE4.2 or when a test forces it;
 *  - hardware: the SSE4.2 crc32 instruction.  One crc32 has a latency of
 *    three cycles but the CPU can start one per cycle, so a single dependent
 *    chain runs at a third of the possible speed.  Large inputs are therefore
 *    cut into three adjacent blocks whose CRCs are computed in parallel
 *    (three independent chains), then combined: crc(A||B) is crc(A) "shifted"
 *    over len(B) zero bytes, xor crc(B) computed from a zero state.  The
 *    shift is a linear map over GF(2), precomputed as four 256-entry tables
 *    per block length (the zlib crc32_combine idea, tabulated), so a combine
 *    costs four loads.
 *
 * The hardware code is compiled with __attribute__((target("sse4.2"))) so the
 * rest of the build needs no -msse4.2 and still runs on CPUs without it;
 * __builtin_cpu_supports decides at run time.  Tables are built once by a
 * constructor at load time (a few microseconds), which makes every later
 * call lock-free and thread-safe.
 */
#include "kc_crc32c.h"

#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define KC_CRC_X86 1
#include <nmmintrin.h>
#endif

#define POLY 0x82F63B78u

/* Block lengths of the interleaved hardware loop.  LONG_BLOCK * 3 bytes are
 * processed per combine; 8 KiB keeps the three streams inside L1/L2 and makes
 * the combine cost (2 x 4 table loads) negligible.  SHORT_BLOCK handles the
 * 768..24K tail the same way. */
#define LONG_BLOCK 8192
#define SHORT_BLOCK 256

static uint32_t crc_table[8][256];           /* slicing-by-8 */
static uint32_t crc_long[4][256];            /* shift by LONG_BLOCK zero bytes */
static uint32_t crc_short[4][256];           /* shift by SHORT_BLOCK zero bytes */
static int hw_available;                     /* CPU has SSE4.2 */
static volatile int force_portable;          /* tests/benchmarks only */

/* ---- GF(2) matrices for the zero-byte shift operator ---- */

static uint32_t gf2_matrix_times(const uint32_t *mat, uint32_t vec) {
    uint32_t sum = 0;
    while (vec) {
        if (vec & 1) sum ^= *mat;
        vec >>= 1;
        mat++;
    }
    return sum;
}

static void gf2_matrix_square(uint32_t *square, const uint32_t *mat) {
    for (int n = 0; n < 32; n++) square[n] = gf2_matrix_times(mat, mat[n]);
}

/* Operator that advances a raw CRC state over len zero bytes (len a power
 * of two >= 1, which both block sizes are). */
static void zeros_op(uint32_t *even, size_t len) {
    uint32_t odd[32];
    uint32_t row = 1;
    odd[0] = POLY;                  /* one zero bit */
    for (int n = 1; n < 32; n++) { odd[n] = row; row <<= 1; }
    gf2_matrix_square(even, odd);   /* two zero bits */
    gf2_matrix_square(odd, even);   /* four zero bits */
    /* each square doubles: odd holds 4 bits = half a byte; square until len bytes */
    do {
        gf2_matrix_square(even, odd);
        len >>= 1;
        if (len == 0) return;
        gf2_matrix_square(odd, even);
        len >>= 1;
    } while (len);
    memcpy(even, odd, sizeof odd);
}

static void zeros_tables(uint32_t zeros[4][256], size_t len) {
    uint32_t op[32];
    zeros_op(op, len);
    for (uint32_t n = 0; n < 256; n++) {
        zeros[0][n] = gf2_matrix_times(op, n);
        zeros[1][n] = gf2_matrix_times(op, n << 8);
        zeros[2][n] = gf2_matrix_times(op, n << 16);
        zeros[3][n] = gf2_matrix_times(op, n << 24);
    }
}

static inline uint32_t crc_shift(uint32_t zeros[4][256], uint32_t crc) {
    return zeros[0][crc & 0xff] ^ zeros[1][(crc >> 8) & 0xff] ^
           zeros[2][(crc >> 16) & 0xff] ^ zeros[3][crc >> 24];
}

__attribute__((constructor)) static void kc_crc32c_init(void) {
    for (uint32_t n = 0; n < 256; n++) {
        uint32_t crc = n;
        for (int k = 0; k < 8; k++) crc = crc & 1 ? (crc >> 1) ^ POLY : crc >> 1;
        crc_table[0][n] = crc;
    }
    for (uint32_t n = 0; n < 256; n++) {
        uint32_t crc = crc_table[0][n];
        for (int k = 1; k < 8; k++) {
            crc = crc_table[0][crc & 0xff] ^ (crc >> 8);
            crc_table[k][n] = crc;
        }
    }
    zeros_tables(crc_long, LONG_BLOCK);
    zeros_tables(crc_short, SHORT_BLOCK);
#ifdef KC_CRC_X86
    __builtin_cpu_init();
    hw_available = __builtin_cpu_supports("sse4.2") ? 1 : 0;
#endif
}

/* ---- portable: slicing-by-8 ---- */

static inline uint64_t load64le(const uint8_t *p) {
    uint64_t v;
    memcpy(&v, p, 8);   /* unaligned-safe; one mov on x86 */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    v = __builtin_bswap64(v);
#endif
    return v;
}

uint32_t kc_crc32c_sw(uint32_t crc, const void *buf, size_t len) {
    const uint8_t *p = buf;
    uint64_t c = crc ^ 0xFFFFFFFFu;
    while (len && ((uintptr_t)p & 7)) {
        c = crc_table[0][(c ^ *p++) & 0xff] ^ (c >> 8);
        len--;
    }
    while (len >= 8) {
        c ^= load64le(p);
        c = crc_table[7][c & 0xff] ^ crc_table[6][(c >> 8) & 0xff] ^
            crc_table[5][(c >> 16) & 0xff] ^ crc_table[4][(c >> 24) & 0xff] ^
            crc_table[3][(c >> 32) & 0xff] ^ crc_table[2][(c >> 40) & 0xff] ^
            crc_table[1][(c >> 48) & 0xff] ^ crc_table[0][c >> 56];
        p += 8;
        len -= 8;
    }
    while (len--) c = crc_table[0][(c ^ *p++) & 0xff] ^ (c >> 8);
    return (uint32_t)c ^ 0xFFFFFFFFu;
}

/* ---- hardware: SSE4.2, three interleaved streams ---- */

#ifdef KC_CRC_X86
__attribute__((target("sse4.2")))
static uint32_t crc32c_sse42(uint32_t crc, const uint8_t *p, size_t len) {
    uint64_t c0 = crc ^ 0xFFFFFFFFu, c1, c2;
    /* Align so the 8-byte loads never straddle a cache line. */
    while (len && ((uintptr_t)p & 7)) {
        c0 = _mm_crc32_u8((uint32_t)c0, *p++);
        len--;
    }
    while (len >= 3 * LONG_BLOCK) {
        const uint8_t *end = p + LONG_BLOCK;
        c1 = c2 = 0;
        do {
            c0 = _mm_crc32_u64(c0, load64le(p));
            c1 = _mm_crc32_u64(c1, load64le(p + LONG_BLOCK));
            c2 = _mm_crc32_u64(c2, load64le(p + 2 * LONG_BLOCK));
            p += 8;
        } while (p < end);
        c0 = crc_shift(crc_long, (uint32_t)c0) ^ (uint32_t)c1;
        c0 = crc_shift(crc_long, (uint32_t)c0) ^ (uint32_t)c2;
        p += 2 * LONG_BLOCK;
        len -= 3 * LONG_BLOCK;
    }
    while (len >= 3 * SHORT_BLOCK) {
        const uint8_t *end = p + SHORT_BLOCK;
        c1 = c2 = 0;
        do {
            c0 = _mm_crc32_u64(c0, load64le(p));
            c1 = _mm_crc32_u64(c1, load64le(p + SHORT_BLOCK));
            c2 = _mm_crc32_u64(c2, load64le(p + 2 * SHORT_BLOCK));
            p += 8;
        } while (p < end);
        c0 = crc_shift(crc_short, (uint32_t)c0) ^ (uint32_t)c1;
        c0 = crc_shift(crc_short, (uint32_t)c0) ^ (uint32_t)c2;
        p += 2 * SHORT_BLOCK;
        len -= 3 * SHORT_BLOCK;
    }
    while (len >= 8) {
        c0 = _mm_crc32_u64(c0, load64le(p));
        p += 8;
        len -= 8;
    }
    while (len--) c0 = _mm_crc32_u8((uint32_t)c0, *p++);
    return (uint32_t)c0 ^ 0xFFFFFFFFu;
}
#endif

uint32_t kc_crc32c_hw(uint32_t crc, const void *buf, size_t len) {
#ifdef KC_CRC_X86
    if (hw_available) return crc32c_sse42(crc, buf, len);
#endif
    return kc_crc32c_sw(crc, buf, len);
}

int kc_crc32c_hw_available(void) { return hw_available; }

uint32_t kc_crc32c(uint32_t crc, const void *buf, size_t len) {
#ifdef KC_CRC_X86
    if (hw_available && !force_portable) return crc32c_sse42(crc, buf, len);
#endif
    return kc_crc32c_sw(crc, buf, len);
}

const char *kc_crc32c_impl(void) {
    return hw_available && !force_portable ? "sse4.2" : "portable";
}

void kc_crc32c_force_portable(int on) { force_portable = on ? 1 : 0; }
