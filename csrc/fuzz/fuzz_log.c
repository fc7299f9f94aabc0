/* fuzz_log.c - libFuzzer target for log recovery and reads (kc_log_open, kc_log_read,
 * kc_log_lookup, kc_log_lookup_time): the input is laid out as a partition directory - one
 * segment file, an offset index and a time index cut from it, a clean-shutdown marker or not -
 * and opened.  Whatever the bytes, opening must succeed or fail with an error code, the
 * recovered log must hold only whole batches (its end is past every batch it serves), and every
 * offset below the end must be readable and locatable.  Bugs show as sanitizer reports; the
 * invariants below abort on a logic error.
 *
 * Input: byte 0 = flags (bit 0: clean-shutdown marker, bit 1: write the indexes, bit 2: second
 * segment), bytes 1-2 = where the index bytes start, the rest the segment.  The directory is
 * in /dev/shm where there is one (the log fsyncs). */
#include <dirent.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../kc_common.h"
#include "../kc_log.h"

static char dir[64];

static void put(const char *name, const uint8_t *data, size_t len) {
    char path[128];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0644);
    if (fd < 0) abort();
    size_t done = 0;
    while (done < len) {
        ssize_t n = write(fd, data + done, len - done);
        if (n <= 0) abort();
        done += (size_t)n;
    }
    close(fd);
}

static void clear(void) {
    /* every file of the directory: the segments written, and whatever the open made */
    DIR *d = opendir(dir);
    if (!d) abort();
    struct dirent *e;
    char path[384];
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.' && (e->d_name[1] == 0 || (e->d_name[1] == '.' && e->d_name[2] == 0))) continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        unlink(path);
    }
    closedir(d);
}

static void remove_dir(void) {
    clear();
    rmdir(dir);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!dir[0]) {
        snprintf(dir, sizeof dir, "%s/kc-fuzz-log-%d", access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp",
                 (int)getpid());
        mkdir(dir, 0755);
        atexit(remove_dir);
    }
    if (size < 3) return 0;
    uint8_t flags = data[0];
    size_t idx_from = ((size_t)data[1] << 8 | data[2]) % (size - 2);
    const uint8_t *seg = data + 3;
    size_t seg_len = size - 3;
    clear();
    put("00000000000000000000.log", seg, seg_len);
    if (flags & 2) {
        size_t n = seg_len > idx_from ? seg_len - idx_from : 0;
        put("00000000000000000000.index", seg + idx_from, n & ~(size_t)7);
        put("00000000000000000000.timeindex", seg + idx_from, n % 36);
    }
    if (flags & 4) put("00000000000000000100.log", seg, seg_len / 2);
    if (flags & 1) put(".kafka_cleanshutdown", (const uint8_t *)"", 0);

    kc_log_config_t cfg;
    kc_log_config_default(&cfg);
    cfg.segment_bytes = 1 << 20;
    kc_log_t *l = NULL;
    if (kc_log_open(dir, &cfg, 1000, &l) != KC_OK) return 0;
    int64_t start = kc_log_start_offset(l), end = kc_log_end_offset(l);
    if (start < 0 || end < start) abort();
    for (int64_t off = start; off < end && off < start + 64; off++) {
        kc_slice_t s;
        int rc = kc_log_read(l, off, 1 << 16, -1, &s);
        if (rc == KC_OK) {
            if (s.length < 0) abort();
            kc_slice_release(&s);
        }
        kc_position_t pos;
        kc_log_lookup(l, off, &pos);
    }
    int64_t o, ts;
    int exact;
    kc_log_lookup_time(l, 0, &o, &ts, &exact);
    kc_log_max_timestamp(l, &ts, &o);
    kc_log_close(l, flags & 1);
    return 0;
}
