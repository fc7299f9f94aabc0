/* kc_compact_recover.c - the cleaner's files across a crash: its
 * checkpoint ("kc-cleaner-checkpoint", written atomically) and, when a log
 * opens, finishing or discarding an interrupted swap (kc_compact.h, steps 4
 * and 5).  Apart from kc_compact.c so each stays a readable size. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kc_batch.h"
#include "kc_common.h"
#include "kc_compact.h"
#include "kc_segment.h"

#define CLEANER_CHECKPOINT "kc-cleaner-checkpoint"

static int read_clean_checkpoint(const char *dir, int64_t *off) {
    char p[4096];
    *off = 0;
    if (snprintf(p, sizeof p, "%s/%s", dir, CLEANER_CHECKPOINT) >= (int)sizeof p)
        return KC_ERR_ARG;
    FILE *f = fopen(p, "r");
    if (!f)
        return KC_OK;
    long long v;
    if (fscanf(f, "%lld", &v) == 1 && v >= 0)
        *off = v;
    fclose(f);
    return KC_OK;
}

int kc_compact_write_checkpoint(const char *dir, int64_t offset) {
    char p[4096], tmp[4100], line[32];
    if (snprintf(p, sizeof p, "%s/%s", dir, CLEANER_CHECKPOINT) >= (int)sizeof p)
        return KC_ERR_ARG;
    snprintf(tmp, sizeof tmp, "%s.tmp", p);
    int n = snprintf(line, sizeof line, "%lld\n", (long long)offset);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return KC_ERR_IO;
    int ok = write(fd, line, (size_t)n) == n && fsync(fd) == 0;
    close(fd);
    if (!ok || rename(tmp, p) != 0)
        return KC_ERR_IO;
    return kc_fsync_dir(dir);
}

/* ------------------------------------------------------- crash recovery */

static int is_base(const char *nm, const char *rest) {
    return strspn(nm, "0123456789") == 20 && strcmp(nm + 20, rest) == 0;
}

static int has_suffix(const char *nm, const char *suf) {
    size_t a = strlen(nm), b = strlen(suf);
    return a > b && strcmp(nm + a - b, suf) == 0;
}

/* Next offset after the valid batches of the file at fd (base if none). */
static int64_t file_next_offset(int fd, int64_t base) {
    struct stat st;
    int64_t next = base;
    if (fstat(fd, &st) != 0 || st.st_size == 0)
        return next;
    void *m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
    if (m == MAP_FAILED)
        return next;
    kc_batch_info_t bi;
    for (int64_t pos = 0; pos < st.st_size; pos += (int64_t)bi.size) {
        if (kc_batch_check((const uint8_t *)m + pos, (size_t)(st.st_size - pos), 0, KC_SCAN_ALLOW_COMPACTED,
                           &bi) != KC_OK)
            break;
        next = bi.base_offset + bi.last_offset_delta + 1;
    }
    munmap(m, (size_t)st.st_size);
    return next;
}

int kc_compact_recover_dir(const char *dir, int64_t *clean_offset) {
    int rc = read_clean_checkpoint(dir, clean_offset);
    DIR *d = opendir(dir);
    if (rc != KC_OK || !d) {
        if (d)
            closedir(d);
        return rc != KC_OK ? rc : KC_ERR_IO;
    }
    int changed = 0, dfd = dirfd(d);
    int64_t swaps[16];
    size_t nswaps = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        const char *nm = e->d_name;
        if (has_suffix(nm, ".cleaned") || has_suffix(nm, ".index.swap") || has_suffix(nm, ".timeindex.swap")) {
            unlinkat(dfd, nm, 0); /* unfinished output, or indexes we rebuild anyway */
            changed = 1;
        } else if (is_base(nm, ".log.swap") && nswaps < 16) {
            swaps[nswaps++] = strtoll(nm, NULL, 10);
        }
    }
    for (size_t i = 0; i < nswaps; i++) {
        char nm[64], to[64];
        snprintf(nm, sizeof nm, "%020lld.log.swap", (long long)swaps[i]);
        int fd = openat(dfd, nm, O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            rc = KC_ERR_IO;
            break;
        }
        int64_t next = file_next_offset(fd, swaps[i]);
        close(fd);
        /* the swap replaces every segment whose base is in [base, next) */
        rewinddir(d);
        while ((e = readdir(d)) != NULL) {
            if (!is_base(e->d_name, ".log"))
                continue;
            int64_t b = strtoll(e->d_name, NULL, 10);
            if (b <= swaps[i] || b >= next)
                continue;
            static const char *const exts[] = {".log", ".index", ".timeindex", ".txnindex"};
            for (size_t x = 0; x < 4; x++) {
                snprintf(to, sizeof to, "%020lld%s", (long long)b, exts[x]);
                unlinkat(dfd, to, 0);
            }
        }
        snprintf(to, sizeof to, "%020lld.index", (long long)swaps[i]);
        unlinkat(dfd, to, 0);
        snprintf(to, sizeof to, "%020lld.timeindex", (long long)swaps[i]);
        unlinkat(dfd, to, 0);
        /* the .txnindex is not rebuilt from the log: the swap's replaces the old one, and
         * a group without one had no aborted transaction left */
        char tx[64];
        snprintf(tx, sizeof tx, "%020lld.txnindex.swap", (long long)swaps[i]);
        snprintf(to, sizeof to, "%020lld.txnindex", (long long)swaps[i]);
        if (renameat(dfd, tx, dfd, to) != 0) {
            if (errno != ENOENT) {
                rc = KC_ERR_IO;
                break;
            }
            unlinkat(dfd, to, 0);
        }
        snprintf(to, sizeof to, "%020lld.log", (long long)swaps[i]);
        if (renameat(dfd, nm, dfd, to) != 0) {
            rc = KC_ERR_IO;
            break;
        }
        changed = 1;
    }
    /* a .txnindex.swap without its .log.swap: the swap never happened, the old segments stand */
    rewinddir(d);
    while (rc == KC_OK && (e = readdir(d)) != NULL) {
        if (is_base(e->d_name, ".txnindex.swap")) {
            unlinkat(dfd, e->d_name, 0);
            changed = 1;
        }
    }
    closedir(d);
    if (rc == KC_OK && changed)
        rc = kc_fsync_dir(dir);
    return rc;
}
