/* test_crc32c.c - known vectors, hardware == portable on every length,
 * alignment and chaining split. */
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include "../kc_crc32c.h"
#include "kc_test.h"

static uint64_t rng = 0x243F6A8885A308D3ull;
static uint64_t rnd(void) { rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17; return rng; }

static void test_vectors(void) {
    CHECK_EQ_INT(kc_crc32c(0, "123456789", 9), 0xE3069283u);
    CHECK_EQ_INT(kc_crc32c_sw(0, "123456789", 9), 0xE3069283u);
    CHECK_EQ_INT(kc_crc32c_hw(0, "123456789", 9), 0xE3069283u);
    CHECK_EQ_INT(kc_crc32c(0, "", 0), 0);
    CHECK_EQ_INT(kc_crc32c(0, NULL, 0), 0);
    /* RFC 3720 (iSCSI) B.4: 32 bytes of zeros, of 0xFF, ascending. */
    uint8_t buf[32];
    memset(buf, 0, sizeof buf);
    CHECK_EQ_INT(kc_crc32c(0, buf, 32), 0x8A9136AAu);
    memset(buf, 0xFF, sizeof buf);
    CHECK_EQ_INT(kc_crc32c(0, buf, 32), 0x62A8AB43u);
    for (int i = 0; i < 32; i++) buf[i] = (uint8_t)i;
    CHECK_EQ_INT(kc_crc32c(0, buf, 32), 0x46DD794Eu);
    CHECK_EQ_INT(kc_crc32c_sw(0, buf, 32), 0x46DD794Eu);
}

static void test_hw_equals_sw(void) {
    enum { MAX = 10240 + 8 };
    static uint8_t data[MAX + 8];
    for (size_t i = 0; i < sizeof data; i++) data[i] = (uint8_t)rnd();
    for (int round = 0; round < 2000; round++) {
        size_t len = (size_t)(rnd() % 10241);
        size_t off = (size_t)(rnd() % 8);
        uint32_t seed = (round & 1) ? (uint32_t)rnd() : 0;
        uint32_t s = kc_crc32c_sw(seed, data + off, len);
        CHECK_EQ_INT(kc_crc32c_hw(seed, data + off, len), s);
        CHECK_EQ_INT(kc_crc32c(seed, data + off, len), s);
        /* chaining: crc(a||b) == crc(crc(a), b) at a random split */
        size_t cut = len ? (size_t)(rnd() % (len + 1)) : 0;
        CHECK_EQ_INT(kc_crc32c(kc_crc32c(seed, data + off, cut), data + off + cut, len - cut), s);
        CHECK_EQ_INT(kc_crc32c_sw(kc_crc32c_sw(seed, data + off, cut), data + off + cut, len - cut), s);
    }
    /* every length 0..1024 at every alignment 0..7 */
    for (size_t len = 0; len <= 1024; len++)
        for (size_t off = 0; off < 8; off++)
            if (kc_crc32c_hw(0, data + off, len) != kc_crc32c_sw(0, data + off, len)) {
                CHECK(0);
                return;
            }
}

static void test_large(void) {
    /* exercises the 3 x 8 KiB interleaved blocks and their combine */
    size_t n = (1u << 20) + 13;
    uint8_t *big = malloc(n);
    if (!big) { CHECK(0); return; }
    for (size_t i = 0; i < n; i++) big[i] = (uint8_t)rnd();
    uint32_t s = kc_crc32c_sw(0, big, n);
    CHECK_EQ_INT(kc_crc32c_hw(0, big, n), s);
    CHECK_EQ_INT(kc_crc32c_hw(0, big + 3, n - 3), kc_crc32c_sw(0, big + 3, n - 3));
    CHECK_EQ_INT(kc_crc32c(kc_crc32c(0, big, 70000), big + 70000, n - 70000), s);
    free(big);
}

static void test_force_portable(void) {
    if (kc_crc32c_hw_available()) CHECK(strcmp(kc_crc32c_impl(), "sse4.2") == 0);
    kc_crc32c_force_portable(1);
    CHECK(strcmp(kc_crc32c_impl(), "portable") == 0);
    CHECK_EQ_INT(kc_crc32c(0, "123456789", 9), 0xE3069283u);
    kc_crc32c_force_portable(0);
    CHECK(strcmp(kc_crc32c_impl(), kc_crc32c_hw_available() ? "sse4.2" : "portable") == 0);
}

/* The folding path (>= 256 bytes with AVX-512 VPCLMULQDQ): lengths around
 * its block sizes, uniform bytes (a wrong constant shows on zeros and on
 * 0xFF alike), and chaining into and out of it. */
static void test_fold_edges(void) {
    static uint8_t data[4200];
    static const size_t lens[] = {255, 256, 257, 271, 272, 319, 320, 511, 512, 513, 767, 768, 1023, 1024,
                                  1025, 1279, 1280, 4095, 4096, 4097};
    for (int fill = 0; fill < 3; fill++) {
        for (size_t i = 0; i < sizeof data; i++) data[i] = fill == 0 ? 0 : fill == 1 ? 0xFF : (uint8_t)rnd();
        for (size_t j = 0; j < sizeof lens / sizeof lens[0]; j++)
            for (size_t off = 0; off < 3; off++) {
                uint32_t seed = (uint32_t)rnd();
                uint32_t s = kc_crc32c_sw(seed, data + off, lens[j]);
                CHECK_EQ_INT(kc_crc32c(seed, data + off, lens[j]), s);
                CHECK_EQ_INT(kc_crc32c_hw(seed, data + off, lens[j]), s);
                if (lens[j] > 300) /* split inside the folded part */
                    CHECK_EQ_INT(kc_crc32c(kc_crc32c(seed, data + off, 300), data + off + 300, lens[j] - 300), s);
            }
    }
}

int main(int argc, char **argv) {
    RUN(test_vectors);
    RUN(test_hw_equals_sw);
    RUN(test_large);
    RUN(test_fold_edges);
    RUN(test_force_portable);
    /* run once more with the folding path off, so the 3-stream crc32 code
     * is tested on CPUs that have AVX-512 too */
    if (argc > 0 && !getenv("KC_CRC32C_DISABLE_AVX512")) {
        printf("%d checks, %d failed (AVX-512 folding allowed)\n", kc_test_checks, kc_test_failures);
        fflush(stdout);
        if (kc_test_failures)
            return 1;
        setenv("KC_CRC32C_DISABLE_AVX512", "1", 1);
        execv(argv[0], argv);
        perror("execv");
        return 1;
    }
    TEST_MAIN_END();
}
