/* kc_index.c - memory-mapped offset and time indexes (see kc_index.h). */
#include "kc_index.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kc_common.h"

/* Map [0, map_len) of the file open at fd (the mapping outlives the fd). */
static int index_map(kc_index_t *ix, int fd) {
    ix->map = NULL;
    ix->max_entries = (int64_t)(ix->map_len / (size_t)ix->entry_size);
    if (ix->map_len == 0)
        return KC_OK; /* mmap refuses length 0; an empty index needs no mapping */
    void *p = mmap(NULL, ix->map_len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED)
        return KC_ERR_IO;
    ix->map = p;
    return KC_OK;
}

static void close_keep_errno(int fd) {
    int e = errno;
    close(fd);
    errno = e;
}

/* Give [ix->reserved, end) of the file blocks before an entry is stored
 * there (kc_index.h: a store into a hole of a full disk is SIGBUS).  A chunk
 * of KC_INDEX_RESERVE at a time; on ENOSPC, just the pages the entry needs. */
static int index_reserve(kc_index_t *ix, int64_t end) {
    const int64_t page = 4096;
    int64_t from = ix->reserved - ix->reserved % page;
    int64_t to = end + KC_INDEX_RESERVE - 1;
    to -= to % KC_INDEX_RESERVE;
    if (to > (int64_t)ix->map_len)
        to = (int64_t)ix->map_len;
    if (end > to)
        return KC_ERR_ARG;
    int fd = open(ix->path, O_RDWR | O_CLOEXEC);
    if (fd < 0)
        return KC_ERR_IO;
    int rc = fallocate(fd, 0, from, to - from);
    if (rc != 0 && errno == ENOSPC) {
        /* end is at most one entry past reserved: this is a page or two */
        to = end + page - 1;
        to -= to % page;
        if (to > (int64_t)ix->map_len)
            to = (int64_t)ix->map_len;
        rc = fallocate(fd, 0, from, to - from);
    }
    if (rc != 0 && (errno == EOPNOTSUPP || errno == ENOSYS)) {
        to = (int64_t)ix->map_len; /* no fallocate here: stores fault in as they always did */
        rc = 0;
    }
    close_keep_errno(fd);
    if (rc != 0)
        return KC_ERR_IO;
    ix->reserved = to;
    return KC_OK;
}

/* Room for entry number ix->entries: reserved, or KC_ERR_IO. */
static inline int index_room(kc_index_t *ix) {
    int64_t end = (ix->entries + 1) * ix->entry_size;
    return end <= ix->reserved ? KC_OK : index_reserve(ix, end);
}

int kc_index_open(kc_index_t *ix, const char *path, int entry_size, int64_t base_offset,
                  int64_t bytes, int fresh) {
    ix->path = NULL;
    ix->map = NULL;
    ix->map_len = 0;
    ix->entries = 0;
    ix->max_entries = 0;
    ix->entry_size = entry_size;
    ix->base_offset = base_offset;
    ix->reserved = 0;
    if (!(ix->path = strdup(path)))
        return KC_ERR_NOMEM;
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | (fresh ? O_TRUNC : 0), 0644);
    struct stat st;
    int rc = fd >= 0 && fstat(fd, &st) == 0 ? KC_OK : KC_ERR_IO;
    if (rc == KC_OK) {
        ix->entries = (int64_t)st.st_size / entry_size;
        int64_t want = bytes > 0 ? bytes : ix->entries * entry_size;
        want -= want % entry_size;
        if (want < ix->entries * entry_size)
            want = ix->entries * entry_size;
        if (want != st.st_size && ftruncate(fd, want) != 0)
            rc = KC_ERR_IO;
        ix->map_len = (size_t)want;
        /* reserved stays 0 even for existing entries: a file a crash left preallocated counts
         * its zero-filled holes as entries until the check trims them.  Reserving pages that
         * already have blocks costs one fallocate and changes nothing. */
        if (rc == KC_OK)
            rc = index_map(ix, fd);
    }
    if (fd >= 0)
        close_keep_errno(fd);
    if (rc != KC_OK) {
        int e = errno;
        kc_index_close(ix);
        errno = e;
    }
    return rc;
}

void kc_index_close(kc_index_t *ix) {
    if (ix->map)
        munmap(ix->map, ix->map_len);
    free(ix->path);
    ix->path = NULL;
    ix->map = NULL;
    ix->map_len = 0;
    ix->entries = ix->max_entries = 0;
    ix->reserved = 0;
}

int kc_index_resize(kc_index_t *ix, int64_t bytes) {
    int64_t want = bytes > 0 ? bytes : ix->entries * ix->entry_size;
    want -= want % ix->entry_size;
    if (want < ix->entries * ix->entry_size)
        want = ix->entries * ix->entry_size;
    if ((size_t)want == ix->map_len)
        return KC_OK;
    if (!ix->path)
        return KC_ERR_ARG;
    /* no O_CREAT: a file renamed or deleted under us is an error, not a new file */
    int fd = open(ix->path, O_RDWR | O_CLOEXEC);
    if (fd < 0)
        return KC_ERR_IO;
    if (ix->map)
        munmap(ix->map, ix->map_len);
    ix->map = NULL;
    int rc = KC_OK;
    if (ftruncate(fd, want) != 0)
        rc = KC_ERR_IO; /* keep a usable (if stale-sized) index: remap the old length */
    else
        ix->map_len = (size_t)want;
    if ((size_t)ix->reserved > ix->map_len)
        ix->reserved = (int64_t)ix->map_len;
    int mrc = index_map(ix, fd);
    close_keep_errno(fd);
    return rc != KC_OK ? rc : mrc;
}

int kc_index_sync(kc_index_t *ix) {
    if (!ix->path)
        return KC_OK;
    if (ix->map && ix->entries > 0 &&
        msync(ix->map, (size_t)(ix->entries * ix->entry_size), MS_SYNC) != 0)
        return KC_ERR_IO;
    /* fsync of any fd of the file covers its size change (ftruncate) too */
    int fd = open(ix->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) /* deleted meanwhile (retention, truncation): nothing left to make durable */
        return errno == ENOENT ? KC_OK : KC_ERR_IO;
    int rc = fsync(fd) == 0 ? KC_OK : KC_ERR_IO;
    close_keep_errno(fd);
    return rc;
}

/* ---- offset index ---- */

static inline int64_t off_rel(const kc_index_t *ix, int64_t i) {
    return (int32_t)kc_be32(ix->map + i * KC_INDEX_OFFSET_ENTRY);
}
static inline int64_t off_pos(const kc_index_t *ix, int64_t i) {
    return (int32_t)kc_be32(ix->map + i * KC_INDEX_OFFSET_ENTRY + 4);
}

int kc_index_append_offset(kc_index_t *ix, int64_t offset, int64_t position) {
    if (kc_index_full(ix))
        return KC_ERR_TOO_LARGE;
    int64_t rel = offset - ix->base_offset;
    if (rel < 0 || rel > INT32_MAX || position < 0 || position > INT32_MAX)
        return KC_ERR_ARG;
    if (ix->entries > 0 && (rel <= off_rel(ix, ix->entries - 1) || position <= off_pos(ix, ix->entries - 1)))
        return KC_ERR_ARG;
    if (index_room(ix) != KC_OK)
        return KC_ERR_IO;
    uint8_t *p = ix->map + ix->entries * KC_INDEX_OFFSET_ENTRY;
    kc_put_be32(p, (uint32_t)rel);
    kc_put_be32(p + 4, (uint32_t)position);
    ix->entries++;
    return KC_OK;
}

void kc_index_offset_entry(const kc_index_t *ix, int64_t i, int64_t *offset, int64_t *position) {
    *offset = ix->base_offset + off_rel(ix, i);
    *position = off_pos(ix, i);
}

/* The last entry whose field (relative offset, or position) is <= key; the
 * segment's start (base offset, position 0) when there is none. */
static void floor_entry(const kc_index_t *ix, int64_t key, int by_position, int64_t *offset, int64_t *position) {
    int64_t lo = 0, hi = ix->entries; /* find the first entry with field > key */
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        if ((by_position ? off_pos(ix, mid) : off_rel(ix, mid)) <= key)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == 0) {
        *offset = ix->base_offset;
        *position = 0;
    } else {
        kc_index_offset_entry(ix, lo - 1, offset, position);
    }
}

void kc_index_lookup_offset(const kc_index_t *ix, int64_t target, int64_t *offset, int64_t *position) {
    floor_entry(ix, target - ix->base_offset, 0, offset, position);
}

void kc_index_lookup_position(const kc_index_t *ix, int64_t pos, int64_t *offset, int64_t *position) {
    floor_entry(ix, pos, 1, offset, position);
}

void kc_index_truncate_position(kc_index_t *ix, int64_t pos) {
    while (ix->entries > 0 && off_pos(ix, ix->entries - 1) >= pos)
        ix->entries--;
}

int kc_index_check_offset(const kc_index_t *ix, int64_t log_size, int64_t next_offset) {
    int64_t prev_rel = -1, prev_pos = 0;
    for (int64_t i = 0; i < ix->entries; i++) {
        int64_t rel = off_rel(ix, i), pos = off_pos(ix, i);
        /* position 0 never gets an entry (the first batch of a segment is
         * never indexed), so a zero-filled preallocated tail fails here */
        if (rel <= prev_rel || pos <= prev_pos || pos >= log_size || ix->base_offset + rel >= next_offset)
            return KC_ERR_CORRUPT_INDEX;
        prev_rel = rel;
        prev_pos = pos;
    }
    return KC_OK;
}

/* ---- time index ---- */

void kc_index_time_entry(const kc_index_t *ix, int64_t i, int64_t *ts, int64_t *offset) {
    const uint8_t *p = ix->map + i * KC_INDEX_TIME_ENTRY;
    *ts = (int64_t)kc_be64(p);
    *offset = ix->base_offset + (int32_t)kc_be32(p + 8);
}

int kc_index_append_time(kc_index_t *ix, int64_t ts, int64_t offset) {
    int64_t rel = offset - ix->base_offset;
    if (rel < 0 || rel > INT32_MAX)
        return KC_ERR_ARG;
    if (ix->entries > 0) {
        int64_t last_ts, last_off;
        kc_index_time_entry(ix, ix->entries - 1, &last_ts, &last_off);
        if (ts <= last_ts)
            return KC_OK;
        if (offset < last_off)
            return KC_ERR_ARG;
    } else if (ts < 0) {
        return KC_OK; /* -1: no timestamp; nothing to index */
    }
    if (kc_index_full(ix))
        return KC_ERR_TOO_LARGE;
    if (index_room(ix) != KC_OK)
        return KC_ERR_IO;
    uint8_t *p = ix->map + ix->entries * KC_INDEX_TIME_ENTRY;
    kc_put_be64(p, (uint64_t)ts);
    kc_put_be32(p + 8, (uint32_t)rel);
    ix->entries++;
    return KC_OK;
}

int kc_index_lookup_time(const kc_index_t *ix, int64_t ts, int64_t *found_ts, int64_t *offset) {
    int64_t lo = 0, hi = ix->entries; /* first entry with timestamp >= ts */
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        int64_t t = (int64_t)kc_be64(ix->map + mid * KC_INDEX_TIME_ENTRY);
        if (t < ts)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == 0) {
        *found_ts = -1;
        *offset = ix->base_offset;
        return 0;
    }
    kc_index_time_entry(ix, lo - 1, found_ts, offset);
    return 1;
}

void kc_index_truncate_time(kc_index_t *ix, int64_t offset) {
    while (ix->entries > 0) {
        int64_t t, o;
        kc_index_time_entry(ix, ix->entries - 1, &t, &o);
        if (o < offset)
            break;
        ix->entries--;
    }
}

int kc_index_check_time(const kc_index_t *ix, int64_t next_offset) {
    int64_t prev_ts = INT64_MIN, prev_off = ix->base_offset;
    for (int64_t i = 0; i < ix->entries; i++) {
        int64_t t, o;
        kc_index_time_entry(ix, i, &t, &o);
        if ((i > 0 && t <= prev_ts) || t < 0 || o < prev_off || o >= next_offset)
            return KC_ERR_CORRUPT_INDEX;
        prev_ts = t;
        prev_off = o;
    }
    return KC_OK;
}
