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
 *  - folding (inputs of 256 bytes and more, when the CPU has AVX-512 and
 *    VPCLMULQDQ): the CRC is the remainder of the message polynomial, so
 *    16-byte lanes can be carried forward ("folded") over any distance D
 *    with two carry-less multiplies by x^(8D+32) and x^(8D-32) mod P
 *    (Intel's "Fast CRC computation using PCLMULQDQ", reflected form).
 *    Four 64-byte registers (16 lanes) fold 256 bytes per step, are folded
 *    into one 16-byte lane at the end, and the crc32 instruction reduces
 *    that lane (and the last < 16 bytes) to the 32-bit CRC.  About twice
 *    the 3-stream crc32 speed; the constants are computed at load time.
 *    KC_CRC32C_DISABLE_AVX512=1 in the environment turns it off (tests run
 *    the 3-stream path that way too).
 *
 * The hardware code is compiled with __attribute__((target(...))) so the
 * rest of the build needs no -msse4.2 and still runs on CPUs without it;
 * __builtin_cpu_supports decides at run time.  Tables are built once by a
 * constructor at load time (a few microseconds), which makes every later
 * call lock-free and thread-safe.
 */
#include "kc_crc32c.h"

#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define KC_CRC_X86 1
#include <nmmintrin.h>
#if (defined(__clang__) && __clang_major__ >= 8) || (!defined(__clang__) && __GNUC__ >= 10)
#define KC_CRC_FOLD 1 /* the compiler knows VPCLMULQDQ and AVX-512 intrinsics */
#include <immintrin.h>
#endif
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
static int fold_available;                   /* ... and AVX-512F/VL + VPCLMULQDQ */
#define FOLD_MIN 256                         /* shorter inputs: the crc32 loops */
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

#ifdef KC_CRC_FOLD
static void fold_init(void);
#endif

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
#ifdef KC_CRC_FOLD
    const char *off = getenv("KC_CRC32C_DISABLE_AVX512");
    fold_available = hw_available && __builtin_cpu_supports("pclmul") && __builtin_cpu_supports("avx512f") &&
                     __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("vpclmulqdq") &&
                     !(off && *off && *off != '0');
    fold_init();
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

/* ---- hardware: AVX-512 VPCLMULQDQ folding ---- */

#ifdef KC_CRC_FOLD
/* Folding constants as {lo, hi} pairs: lo multiplies a lane's first 8
 * bytes (the higher-degree half in the reflected order), hi its last 8. */
static uint64_t fold_k[5][2];                /* distances 16, 32, 48, 64, 256 bytes */

/* x^n mod P in the normal bit order, bit-reflected to 32 bits, shifted
 * left by one (a reflected carry-less product comes out one bit short). */
static uint64_t xpow_mod_reflected(uint32_t n) {
    uint64_t r = 1;
    for (uint32_t i = 0; i < n; i++) {
        r <<= 1;
        if (r & (1ull << 32)) r ^= 0x11EDC6F41ull;   /* P = 0x1EDC6F41 + x^32 */
    }
    uint32_t rev = 0;
    for (int i = 0; i < 32; i++)
        if (r & (1ull << i)) rev |= 1u << (31 - i);
    return (uint64_t)rev << 1;
}

static void fold_init(void) {
    static const uint32_t bytes[5] = {16, 32, 48, 64, 256};
    for (int i = 0; i < 5; i++) {
        fold_k[i][0] = xpow_mod_reflected(8 * bytes[i] + 32);
        fold_k[i][1] = xpow_mod_reflected(8 * bytes[i] - 32);
    }
}

#define FOLD_TARGET __attribute__((target("avx512f,avx512vl,vpclmulqdq,pclmul,sse4.2")))

FOLD_TARGET static inline __m128i kpair(int i) {
    return _mm_set_epi64x((long long)fold_k[i][1], (long long)fold_k[i][0]);
}

/* x carried forward over the distance of k, xor data (four lanes at once). */
FOLD_TARGET static inline __m512i fold512(__m512i x, __m512i k, __m512i data) {
    return _mm512_ternarylogic_epi64(_mm512_clmulepi64_epi128(x, k, 0x00), _mm512_clmulepi64_epi128(x, k, 0x11),
                                     data, 0x96);
}

FOLD_TARGET static inline __m128i fold128(__m128i x, __m128i k, __m128i data) {
    return _mm_ternarylogic_epi64(_mm_clmulepi64_si128(x, k, 0x00), _mm_clmulepi64_si128(x, k, 0x11), data, 0x96);
}

/* len >= FOLD_MIN. */
FOLD_TARGET static uint32_t crc32c_fold(uint32_t crc, const uint8_t *p, size_t len) {
    __m512i x0 = _mm512_loadu_si512(p), x1 = _mm512_loadu_si512(p + 64);
    __m512i x2 = _mm512_loadu_si512(p + 128), x3 = _mm512_loadu_si512(p + 192);
    /* the incoming state is xored into the first four bytes (CRC linearity) */
    x0 = _mm512_xor_si512(x0, _mm512_zextsi128_si512(_mm_cvtsi32_si128((int)(crc ^ 0xFFFFFFFFu))));
    p += 256;
    len -= 256;
    __m512i k = _mm512_broadcast_i32x4(kpair(4));
    for (; len >= 256; p += 256, len -= 256) {
        x0 = fold512(x0, k, _mm512_loadu_si512(p));
        x1 = fold512(x1, k, _mm512_loadu_si512(p + 64));
        x2 = fold512(x2, k, _mm512_loadu_si512(p + 128));
        x3 = fold512(x3, k, _mm512_loadu_si512(p + 192));
    }
    k = _mm512_broadcast_i32x4(kpair(3));
    x1 = fold512(x0, k, x1);
    x2 = fold512(x1, k, x2);
    x3 = fold512(x2, k, x3);
    /* the four lanes of x3 into its last one */
    __m128i a = fold128(_mm512_extracti32x4_epi32(x3, 0), kpair(2), _mm512_extracti32x4_epi32(x3, 3));
    a = fold128(_mm512_extracti32x4_epi32(x3, 1), kpair(1), a);
    a = fold128(_mm512_extracti32x4_epi32(x3, 2), kpair(0), a);
    for (; len >= 16; p += 16, len -= 16)
        a = fold128(a, kpair(0), _mm_loadu_si128((const __m128i *)p));
    /* a is congruent to everything so far: its CRC from a zero state is the state */
    uint64_t c = _mm_crc32_u64(0, (uint64_t)_mm_cvtsi128_si64(a));
    c = _mm_crc32_u64(c, (uint64_t)_mm_extract_epi64(a, 1));
    while (len--) c = _mm_crc32_u8((uint32_t)c, *p++);
    return (uint32_t)c ^ 0xFFFFFFFFu;
}
#endif

uint32_t kc_crc32c_hw(uint32_t crc, const void *buf, size_t len) {
#ifdef KC_CRC_FOLD
    if (fold_available && len >= FOLD_MIN) return crc32c_fold(crc, buf, len);
#endif
#ifdef KC_CRC_X86
    if (hw_available) return crc32c_sse42(crc, buf, len);
#endif
    return kc_crc32c_sw(crc, buf, len);
}

int kc_crc32c_hw_available(void) { return hw_available; }

uint32_t kc_crc32c(uint32_t crc, const void *buf, size_t len) {
#ifdef KC_CRC_FOLD
    if (fold_available && len >= FOLD_MIN && !force_portable) return crc32c_fold(crc, buf, len);
#endif
#ifdef KC_CRC_X86
    if (hw_available && !force_portable) return crc32c_sse42(crc, buf, len);
#endif
    return kc_crc32c_sw(crc, buf, len);
}

const char *kc_crc32c_impl(void) {
    return hw_available && !force_portable ? "sse4.2" : "portable";
}

void kc_crc32c_force_portable(int on) { force_portable = on ? 1 : 0; }
