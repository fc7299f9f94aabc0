/* replay.c - drive a libFuzzer target without libFuzzer: every file in
 * the corpus directory given as argv[1], then a fixed number of
 * pseudo-random mutations of each, so CI exercises the target under the
 * sanitizers with gcc alone.  Build the target with clang -fsanitize=fuzzer
 * instead of this file for real fuzzing. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static uint64_t next_rand(void) { rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17; return rng; }

static void run_mutations(const uint8_t *seed, size_t n, int rounds) {
    uint8_t *buf = malloc(n + 64);
    if (!buf) return;
    for (int r = 0; r < rounds; r++) {
        size_t len = n;
        memcpy(buf, seed, n);
        int edits = 1 + (int)(next_rand() % 4);
        for (int e = 0; e < edits; e++) {
            uint64_t op = next_rand() % 3;
            if (op == 0 && len) buf[next_rand() % len] ^= (uint8_t)(1u << (next_rand() % 8));
            else if (op == 1 && len) len = (size_t)(next_rand() % len);
            else if (op == 2 && len) buf[next_rand() % len] = (uint8_t)next_rand();
        }
        LLVMFuzzerTestOneInput(buf, len);
    }
    free(buf);
}

int main(int argc, char **argv) {
    int files = 0;
    if (argc > 1) {
        DIR *d = opendir(argv[1]);
        struct dirent *de;
        while (d && (de = readdir(d))) {
            if (de->d_name[0] == '.') continue;
            char path[4096];
            snprintf(path, sizeof path, "%s/%s", argv[1], de->d_name);
            FILE *f = fopen(path, "rb");
            if (!f) continue;
            uint8_t *data = malloc(1 << 20);
            size_t n = data ? fread(data, 1, 1 << 20, f) : 0;
            fclose(f);
            if (!data) continue;
            LLVMFuzzerTestOneInput(data, n);
            run_mutations(data, n, 2000);
            free(data);
            files++;
        }
        if (d) closedir(d);
    }
    for (int i = 0; i < 5000; i++) {   /* random inputs too */
        uint8_t buf[256];
        size_t n = (size_t)(next_rand() % sizeof buf);
        for (size_t j = 0; j < n; j++) buf[j] = (uint8_t)next_rand();
        LLVMFuzzerTestOneInput(buf, n);
    }
    printf("replayed %d corpus files (+mutations, +5000 random inputs)\n", files);
    return 0;
}
