/* test_log.c - the partition log and its indexes, under ASan+UBSan. */
#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kc_batch.h"
#include "kc_common.h"
#include "kc_index.h"
#include "kc_log.h"
#include "kc_test.h"
#include "kc_test_fs.h"
#include "kc_test_log.h"

static const char *fresh_dir(const char *name) { return kc_test_fresh_dir("log", name); }

/* One batch of nrec records with values of vlen bytes, timestamps ts, ts+1, ... */
static size_t make_batch(uint8_t *buf, size_t cap, int nrec, int64_t ts, size_t vlen) {
    kc_builder_t b;
    uint8_t val[4096];
    memset(val, 'v', sizeof val);
    if (kc_builder_init(&b, buf, cap, ts, 0, -1, -1, -1) != KC_OK)
        return 0;
    for (int i = 0; i < nrec; i++)
        if (kc_builder_append(&b, ts + i, (const uint8_t *)"k", 1, val, (ssize_t)vlen, NULL, 0) != KC_OK)
            return 0;
    return kc_builder_finish(&b);
}

static kc_log_config_t small_cfg(void) { return kc_test_small_cfg(4096, 256, 1024); }

/* A fresh log in dir name under the small config (kept in *c, for reopening). */
static kc_log_t *open_small(const char *name, kc_log_config_t *c) {
    kc_log_t *l = NULL;
    *c = small_cfg();
    CHECK_EQ_INT(kc_log_open(fresh_dir(name), c, 0, &l), KC_OK);
    return l;
}

static int64_t append_n(kc_log_t *l, int n, int64_t ts0) {
    uint8_t buf[8192];
    int64_t last = -1;
    for (int i = 0; i < n; i++) {
        size_t sz = make_batch(buf, sizeof buf, 1 + i % 3, ts0 + i * 10, 40);
        kc_append_info_t ai;
        int rc = kc_log_append(l, buf, sz, KC_APPEND_ASSIGN_OFFSETS, 5, -1, ts0 + i * 10, &ai);
        CHECK_EQ_INT(rc, KC_OK);
        if (rc != KC_OK)
            return -1;
        CHECK(ai.first_offset == last + 1 || last == -1);
        CHECK_EQ_INT(ai.last_offset - ai.first_offset, i % 3);
        last = ai.last_offset;
    }
    return last;
}

/* Every offset in [start, end) is found, in a batch holding it. */
static void check_lookups(kc_log_t *l) {
    int64_t start = kc_log_start_offset(l), end = kc_log_end_offset(l);
    int bad = 0;
    for (int64_t o = start; o < end; o++) {
        kc_position_t p;
        if (kc_log_lookup(l, o, &p) != KC_OK || p.batch_base_offset > o || p.batch_last_offset < o)
            bad++;
    }
    CHECK_EQ_INT(bad, 0);
    kc_position_t p;
    CHECK_EQ_INT(kc_log_lookup(l, end, &p), KC_ERR_OFFSET_OUT_OF_RANGE);
}

static void test_index_basic(void) {
    const char *d = fresh_dir("index");
    mkdir(d, 0755);
    char p[512];
    snprintf(p, sizeof p, "%s/x.index", d);
    kc_index_t ix;
    CHECK_EQ_INT(kc_index_open(&ix, p, KC_INDEX_OFFSET_ENTRY, 100, 80, 1), KC_OK);
    CHECK_EQ_INT(ix.max_entries, 10);
    for (int i = 0; i < 10; i++)
        CHECK_EQ_INT(kc_index_append_offset(&ix, 100 + i * 10 + 5, 1000 * (i + 1)), KC_OK);
    CHECK_EQ_INT(kc_index_append_offset(&ix, 500, 99999), KC_ERR_TOO_LARGE);
    int64_t o, pos;
    kc_index_lookup_offset(&ix, 50, &o, &pos);
    CHECK(o == 100 && pos == 0);
    kc_index_lookup_offset(&ix, 126, &o, &pos);
    CHECK(o == 125 && pos == 3000);
    kc_index_lookup_position(&ix, 3999, &o, &pos);
    CHECK(o == 125 && pos == 3000);
    CHECK_EQ_INT(kc_index_check_offset(&ix, 20000, 200), KC_OK);
    CHECK_EQ_INT(kc_index_check_offset(&ix, 5000, 200), KC_ERR_CORRUPT_INDEX);
    kc_index_truncate_position(&ix, 3000);
    CHECK_EQ_INT(ix.entries, 2);
    CHECK_EQ_INT(kc_index_resize(&ix, 0), KC_OK);
    kc_index_close(&ix);
    struct stat st;
    stat(p, &st);
    CHECK_EQ_INT(st.st_size, 16);
    /* a zero-filled (preallocated, not trimmed) tail fails the check */
    CHECK_EQ_INT(kc_index_open(&ix, p, KC_INDEX_OFFSET_ENTRY, 100, 80, 0), KC_OK);
    CHECK_EQ_INT(ix.entries, 2);
    kc_index_close(&ix);
    CHECK_EQ_INT(kc_index_open(&ix, p, KC_INDEX_OFFSET_ENTRY, 100, 0, 0), KC_OK);
    CHECK_EQ_INT(ix.entries, 10);
    CHECK_EQ_INT(kc_index_check_offset(&ix, 20000, 200), KC_ERR_CORRUPT_INDEX);
    kc_index_close(&ix);

    snprintf(p, sizeof p, "%s/x.timeindex", d);
    CHECK_EQ_INT(kc_index_open(&ix, p, KC_INDEX_TIME_ENTRY, 100, 120, 1), KC_OK);
    CHECK_EQ_INT(kc_index_append_time(&ix, 1000, 105), KC_OK);
    CHECK_EQ_INT(kc_index_append_time(&ix, 900, 107), KC_OK); /* not larger: skipped */
    CHECK_EQ_INT(kc_index_append_time(&ix, 2000, 110), KC_OK);
    CHECK_EQ_INT(ix.entries, 2);
    int64_t t;
    CHECK_EQ_INT(kc_index_lookup_time(&ix, 1000, &t, &o), 0);
    CHECK_EQ_INT(kc_index_lookup_time(&ix, 1001, &t, &o), 1);
    CHECK(t == 1000 && o == 105);
    CHECK_EQ_INT(kc_index_check_time(&ix, 111), KC_OK);
    kc_index_truncate_time(&ix, 110);
    CHECK_EQ_INT(ix.entries, 1);
    kc_index_close(&ix);
    rm_rf(d);
}

static void test_append_read(void) {
    kc_log_config_t c = small_cfg();
    kc_log_t *l;
    CHECK_EQ_INT(kc_log_open(fresh_dir("ar"), &c, 1000, &l), KC_OK);
    kc_recovery_info_t ri;
    kc_log_recovery_info(l, &ri);
    CHECK_EQ_INT(ri.first_error, KC_OK);
    CHECK_EQ_INT(kc_log_end_offset(l), 0);
    kc_slice_t s;
    CHECK_EQ_INT(kc_log_read(l, 0, 100, -1, &s), KC_OK);
    CHECK_EQ_INT(s.length, 0);
    int64_t last = append_n(l, 200, 1000);
    CHECK_EQ_INT(kc_log_end_offset(l), last + 1);
    CHECK(kc_log_segment_count(l) > 5); /* rolled by size */
    check_lookups(l);

    /* read every offset: starts on the batch holding it, ends on a boundary */
    int bad = 0;
    for (int64_t o = 0; o <= last; o += 7) {
        int64_t mb = 50 + (o * 37) % 1500;
        if (kc_log_read(l, o, mb, -1, &s) != KC_OK) {
            bad++;
            continue;
        }
        uint8_t buf[8192];
        if (s.length <= 0 || s.length > (int64_t)sizeof buf ||
            pread(s.fd, buf, (size_t)s.length, s.position) != s.length) {
            bad++;
            kc_slice_release(&s);
            continue;
        }
        size_t n, valid;
        kc_batch_info_t bi[64];
        if (kc_batch_scan(buf, (size_t)s.length, KC_SCAN_VERIFY_CRC, 0, bi, 64, &n, &valid) != KC_OK || n == 0)
            bad++;
        else if (bi[0].base_offset > o || bi[0].base_offset + bi[0].last_offset_delta < o)
            bad++; /* does not start on the batch holding o */
        else if (n > 1 && s.length > mb)
            bad++; /* more than one batch over max_bytes */
        else if (s.first_offset != bi[0].base_offset ||
                 s.last_offset != bi[n - 1].base_offset + bi[n - 1].last_offset_delta)
            bad++;
        kc_slice_release(&s);
    }
    CHECK_EQ_INT(bad, 0);
    /* max_offset: nothing at or past it */
    CHECK_EQ_INT(kc_log_read(l, 10, 1 << 20, 10, &s), KC_OK);
    CHECK_EQ_INT(s.length, 0);
    CHECK_EQ_INT(kc_log_read(l, 0, 1 << 20, 4, &s), KC_OK);
    CHECK(s.last_offset < 4 && s.length > 0);
    kc_slice_release(&s);
    CHECK_EQ_INT(kc_log_read(l, last + 2, 100, -1, &s), KC_ERR_OFFSET_OUT_OF_RANGE);
    CHECK_EQ_INT(kc_log_read(l, last + 1, 100, -1, &s), KC_OK);
    CHECK_EQ_INT(s.length, 0);

    /* a slice survives deletion of its segment */
    CHECK_EQ_INT(kc_log_read(l, 0, 100, -1, &s), KC_OK);
    int64_t del;
    CHECK_EQ_INT(kc_log_retention(l, 1000, -1, 0, -1, &del), KC_OK);
    CHECK(del > 0);
    uint8_t b8[8];
    CHECK_EQ_INT(pread(s.fd, b8, 8, s.position), 8);
    kc_slice_release(&s);
    CHECK_EQ_INT(kc_log_end_offset(l), last + 1); /* never goes back */
    CHECK_EQ_INT(kc_log_start_offset(l), last + 1);
    CHECK_EQ_INT(kc_log_size_bytes(l), 0);
    CHECK_EQ_INT(append_n(l, 1, 5000), last + 1);
    CHECK_EQ_INT(kc_log_delete(l), KC_OK);
}

/* A replica's append (no KC_APPEND_ASSIGN_OFFSETS) keeps each batch's offsets and
 * partitionLeaderEpoch as the leader wrote them; the leader_epoch argument stamps only
 * batches whose offsets the log assigns. */
static void test_replica_append_keeps_epochs(void) {
    kc_log_config_t c = small_cfg();
    kc_log_t *l;
    CHECK_EQ_INT(kc_log_open(fresh_dir("repl"), &c, 1000, &l), KC_OK);
    uint8_t buf[2048], back[2048];
    size_t n1 = make_batch(buf, sizeof buf, 3, 1000, 10);
    size_t n2 = make_batch(buf + n1, sizeof buf - n1, 2, 1003, 10);
    CHECK(n1 > 0 && n2 > 0);
    int64_t next;
    CHECK_EQ_INT(kc_batch_assign_offsets(buf, n1, 5, 7, -1, &next), KC_OK);
    CHECK_EQ_INT(kc_batch_assign_offsets(buf + n1, n2, next, 9, -1, &next), KC_OK);
    CHECK_EQ_INT(next, 10);
    kc_append_info_t info;
    CHECK_EQ_INT(kc_log_append(l, buf, n1 + n2, 0, 3, -1, 1000, &info), KC_OK);
    CHECK_EQ_INT(info.first_offset, 5);
    CHECK_EQ_INT(info.last_offset, 9);
    CHECK_EQ_INT(kc_log_end_offset(l), 10);
    CHECK_EQ_INT((int32_t)kc_be32(buf + KC_BATCH_OF_LEADER_EPOCH), 7); /* the caller's bytes untouched */
    kc_slice_t s;
    CHECK_EQ_INT(kc_log_read(l, 5, 1 << 20, -1, &s), KC_OK);
    CHECK_EQ_INT(s.length, (int64_t)(n1 + n2));
    CHECK_EQ_INT(pread(s.fd, back, (size_t)s.length, s.position), s.length);
    kc_slice_release(&s);
    CHECK(memcmp(back, buf, n1 + n2) == 0);
    CHECK_EQ_INT((int32_t)kc_be32(back + KC_BATCH_OF_LEADER_EPOCH), 7);
    CHECK_EQ_INT((int32_t)kc_be32(back + n1 + KC_BATCH_OF_LEADER_EPOCH), 9);
    /* the leader's own append does stamp its epoch */
    size_t n3 = make_batch(buf, sizeof buf, 1, 1005, 10);
    CHECK_EQ_INT(kc_log_append(l, buf, n3, KC_APPEND_ASSIGN_OFFSETS, 11, -1, 1000, &info), KC_OK);
    CHECK_EQ_INT(info.first_offset, 10);
    CHECK_EQ_INT((int32_t)kc_be32(buf + KC_BATCH_OF_LEADER_EPOCH), 11);
    CHECK_EQ_INT(kc_log_delete(l), KC_OK);
}

static void test_bad_input(void) {
    kc_log_config_t c;
    kc_log_t *l = open_small("bad", &c);
    uint8_t buf[1024];
    size_t sz = make_batch(buf, sizeof buf, 2, 100, 10);
    kc_append_info_t ai;
    buf[sz - 1] ^= 1;
    CHECK_EQ_INT(kc_log_append(l, buf, sz, KC_APPEND_ASSIGN_OFFSETS, 0, -1, 0, &ai), KC_ERR_CORRUPT_CRC);
    CHECK_EQ_INT(ai.error_batch, 0);
    CHECK_EQ_INT(ai.error_position, 0);
    {   /* a good batch, then the corrupt one: the error names the second, nothing is written */
        uint8_t two[2048];
        size_t gsz = make_batch(two, sizeof two, 1, 100, 10);
        memcpy(two + gsz, buf, sz);
        CHECK_EQ_INT(kc_log_append(l, two, gsz + sz, KC_APPEND_ASSIGN_OFFSETS, 0, -1, 0, &ai), KC_ERR_CORRUPT_CRC);
        CHECK_EQ_INT(ai.error_batch, 1);
        CHECK_EQ_INT(ai.error_position, (int64_t)gsz);
        CHECK_EQ_INT(kc_log_end_offset(l), 0);
    }
    CHECK_EQ_INT(kc_log_append(l, buf, sz, KC_APPEND_ASSIGN_OFFSETS | KC_APPEND_SKIP_CRC, 0, -1, 0, &ai), KC_OK);
    CHECK_EQ_INT(kc_log_append(l, buf, sz - 1, KC_APPEND_ASSIGN_OFFSETS, 0, -1, 0, &ai), KC_ERR_TRUNCATED);
    CHECK_EQ_INT(kc_log_end_offset(l), 2);
    /* without assignment offsets must not go back */
    sz = make_batch(buf, sizeof buf, 2, 100, 10);
    kc_put_be64(buf, 1);
    CHECK_EQ_INT(kc_log_append(l, buf, sz, 0, 0, -1, 0, &ai), KC_ERR_OFFSET_OUT_OF_RANGE);
    kc_put_be64(buf, 10);
    CHECK_EQ_INT(kc_log_append(l, buf, sz, 0, 0, -1, 0, &ai), KC_OK);
    CHECK_EQ_INT(kc_log_end_offset(l), 12);
    kc_position_t p;
    CHECK_EQ_INT(kc_log_lookup(l, 5, &p), KC_OK); /* gap: the next batch */
    CHECK_EQ_INT(p.batch_base_offset, 10);
    /* log append time */
    sz = make_batch(buf, sizeof buf, 3, 100, 10);
    CHECK_EQ_INT(kc_log_append(l, buf, sz, KC_APPEND_ASSIGN_OFFSETS, 0, 777, 0, &ai), KC_OK);
    CHECK_EQ_INT(ai.max_timestamp, 777);
    CHECK_EQ_INT(ai.log_append_time, 777);
    CHECK_EQ_INT(kc_log_close(l, 1), KC_OK);
    CHECK_EQ_INT(kc_log_open(g_dir, &c, 0, &l), KC_OK);
    CHECK_EQ_INT(kc_log_end_offset(l), 15);
    CHECK_EQ_INT(kc_log_delete(l), KC_OK);
}

static void test_lookup_time(void) {
    kc_log_config_t c;
    kc_log_t *l = open_small("time", &c);
    append_n(l, 100, 1000); /* batch i: timestamps 1000 + 10 i + (0..i%3) */
    int64_t off, ts;
    int exact;
    CHECK_EQ_INT(kc_log_lookup_time(l, 0, &off, &ts, &exact), KC_OK);
    CHECK(off == 0 && ts == 1000 && exact);
    CHECK_EQ_INT(kc_log_lookup_time(l, 1001, &off, &ts, &exact), KC_OK);
    CHECK(ts == 1010 && exact);
    kc_position_t p;
    kc_log_lookup(l, off, &p);
    CHECK_EQ_INT(p.batch_base_offset, off);
    CHECK_EQ_INT(kc_log_lookup_time(l, 1502, &off, &ts, &exact), KC_OK); /* batch 50 = 1500,1501,1502 */
    CHECK(ts == 1502 && exact);
    kc_log_lookup(l, off, &p);
    CHECK_EQ_INT(off, p.batch_base_offset + 2);
    CHECK_EQ_INT(kc_log_lookup_time(l, 1000000, &off, &ts, &exact), KC_ERR_NOT_FOUND);
    CHECK_EQ_INT(kc_log_max_timestamp(l, &ts, &off), KC_OK);
    CHECK_EQ_INT(ts, 1990 + 0);
    CHECK_EQ_INT(off, kc_log_end_offset(l) - 1);
    CHECK_EQ_INT(kc_log_delete(l), KC_OK);
}

static void test_truncate_and_delete_records(void) {
    kc_log_config_t c;
    kc_log_t *l = open_small("trunc", &c);
    int64_t last = append_n(l, 150, 1000);
    kc_position_t p;
    kc_log_lookup(l, 100, &p);
    CHECK_EQ_INT(kc_log_truncate_to(l, 100), KC_OK);
    CHECK_EQ_INT(kc_log_end_offset(l), p.batch_base_offset);
    check_lookups(l);
    int64_t end = kc_log_end_offset(l);
    CHECK_EQ_INT(append_n(l, 1, 0), end);
    CHECK_EQ_INT(kc_log_delete_records(l, 50), KC_OK);
    CHECK_EQ_INT(kc_log_start_offset(l), 50);
    kc_slice_t s;
    CHECK_EQ_INT(kc_log_read(l, 49, 10, -1, &s), KC_ERR_OFFSET_OUT_OF_RANGE);
    CHECK_EQ_INT(kc_log_delete_records(l, last + 100), KC_ERR_OFFSET_OUT_OF_RANGE);
    size_t n;
    kc_segment_info_t si[64];
    CHECK_EQ_INT(kc_log_segments(l, si, 64, &n), KC_OK);
    CHECK(si[0].base_offset <= 50 && si[0].next_offset > 50);
    CHECK_EQ_INT(kc_log_close(l, 1), KC_OK);
    CHECK_EQ_INT(kc_log_open(g_dir, &c, 0, &l), KC_OK);
    CHECK_EQ_INT(kc_log_start_offset(l), 50);
    CHECK_EQ_INT(kc_log_end_offset(l), end + 1);
    check_lookups(l);
    CHECK_EQ_INT(kc_log_truncate_to(l, 0), KC_OK);
    CHECK_EQ_INT(kc_log_end_offset(l), 0);
    CHECK_EQ_INT(kc_log_segment_count(l), 1);
    CHECK_EQ_INT(kc_log_delete(l), KC_OK);
}

static void test_truncate_fully(void) {
    kc_log_config_t c;
    kc_log_t *l = open_small("trfull", &c);
    int64_t last = append_n(l, 150, 1000);
    /* past the end: a follower far behind its leader's log start starts over there */
    CHECK_EQ_INT(kc_log_truncate_fully(l, last + 500), KC_OK);
    CHECK_EQ_INT(kc_log_start_offset(l), last + 500);
    CHECK_EQ_INT(kc_log_end_offset(l), last + 500);
    CHECK_EQ_INT(kc_log_segment_count(l), 1);
    CHECK_EQ_INT(append_n(l, 3, 0), last + 505); /* 1 + 2 + 3 records from last + 500 */
    CHECK_EQ_INT(kc_log_close(l, 1), KC_OK);
    CHECK_EQ_INT(kc_log_open(g_dir, &c, 0, &l), KC_OK);
    CHECK_EQ_INT(kc_log_start_offset(l), last + 500);
    CHECK_EQ_INT(kc_log_end_offset(l), last + 506);
    check_lookups(l);
    /* inside the log: nothing stays either */
    CHECK_EQ_INT(kc_log_truncate_fully(l, last + 501), KC_OK);
    CHECK_EQ_INT(kc_log_end_offset(l), last + 501);
    CHECK_EQ_INT(kc_log_start_offset(l), last + 501);
    CHECK_EQ_INT(kc_log_delete(l), KC_OK);
}

static void test_retention_time(void) {
    kc_log_config_t c;
    kc_log_t *l = open_small("ret", &c);
    append_n(l, 100, 1000); /* max ts 1990 */
    int64_t segs = kc_log_segment_count(l), del, end = kc_log_end_offset(l);
    size_t n;
    kc_segment_info_t si[64];
    kc_log_segments(l, si, 64, &n);
    /* everything older than segment 2's largest timestamp goes */
    CHECK_EQ_INT(kc_log_retention(l, si[2].max_timestamp + 99, 99, -1, -1, &del), KC_OK);
    CHECK_EQ_INT(del, 2);
    CHECK_EQ_INT(kc_log_segment_count(l), segs - 2);
    CHECK_EQ_INT(kc_log_start_offset(l), si[2].base_offset);
    /* all expired: the active one is rolled first and the end stays */
    CHECK_EQ_INT(kc_log_retention(l, 100000, 99, -1, -1, &del), KC_OK);
    CHECK_EQ_INT(del, segs - 2);
    CHECK_EQ_INT(kc_log_end_offset(l), end);
    CHECK_EQ_INT(kc_log_segment_count(l), 1);
    CHECK_EQ_INT(kc_log_close(l, 0), KC_OK);
    CHECK_EQ_INT(kc_log_open(g_dir, &c, 0, &l), KC_OK);
    CHECK_EQ_INT(kc_log_end_offset(l), end);
    CHECK_EQ_INT(kc_log_start_offset(l), end);
    CHECK_EQ_INT(kc_log_delete(l), KC_OK);
}

/* A replicated log passes its high watermark: no segment holding an offset at or above it goes. */
static void test_retention_upper_bound(void) {
    kc_log_config_t c;
    kc_log_t *l = open_small("retub", &c);
    append_n(l, 100, 1000);
    int64_t segs = kc_log_segment_count(l), del, end = kc_log_end_offset(l);
    size_t n;
    kc_segment_info_t si[64];
    kc_log_segments(l, si, 64, &n);
    CHECK(n >= 4);
    /* all expired, but the bound lies inside segment 2: segments 0 and 1 go */
    CHECK_EQ_INT(kc_log_retention(l, 100000, 99, -1, si[2].base_offset + 1, &del), KC_OK);
    CHECK_EQ_INT(del, 2);
    CHECK_EQ_INT(kc_log_start_offset(l), si[2].base_offset);
    /* a bound exactly at a segment's end lets it go */
    CHECK_EQ_INT(kc_log_retention(l, 100000, 99, -1, si[3].base_offset, &del), KC_OK);
    CHECK_EQ_INT(del, 1);
    /* by size too: everything is over a 0-byte budget, the bound holds the rest */
    CHECK_EQ_INT(kc_log_retention(l, 0, -1, 0, si[3].base_offset, &del), KC_OK);
    CHECK_EQ_INT(del, 0);
    CHECK_EQ_INT(kc_log_segment_count(l), segs - 3);
    /* a bound at the log end: the active segment is rolled and goes as before */
    CHECK_EQ_INT(kc_log_retention(l, 100000, 99, -1, end, &del), KC_OK);
    CHECK_EQ_INT(del, segs - 3);
    CHECK_EQ_INT(kc_log_end_offset(l), end);
    CHECK_EQ_INT(kc_log_start_offset(l), end);
    CHECK_EQ_INT(kc_log_delete(l), KC_OK);
}

static void corrupt(const char *dir, int64_t base, int64_t from_end, int truncate) {
    char p[512];
    snprintf(p, sizeof p, "%s/%020lld.log", dir, (long long)base);
    int fd = open(p, O_RDWR);
    struct stat st;
    fstat(fd, &st);
    if (truncate) {
        CHECK_EQ_INT(ftruncate(fd, st.st_size - from_end), 0);
    } else {
        uint8_t b;
        CHECK_EQ_INT(pread(fd, &b, 1, st.st_size - from_end), 1);
        b ^= 0x40;
        CHECK_EQ_INT(pwrite(fd, &b, 1, st.st_size - from_end), 1);
    }
    close(fd);
}

static void test_recovery(void) {
    kc_log_config_t c;
    kc_log_t *l = open_small("rec", &c);
    append_n(l, 120, 1000);
    int64_t end = kc_log_end_offset(l);
    size_t n;
    kc_segment_info_t si[64];
    kc_log_segments(l, si, 64, &n);
    CHECK_EQ_INT(kc_log_close(l, 1), KC_OK);
    /* clean reopen: nothing scanned */
    CHECK_EQ_INT(kc_log_open(g_dir, &c, 0, &l), KC_OK);
    kc_recovery_info_t ri;
    kc_log_recovery_info(l, &ri);
    CHECK_EQ_INT(ri.clean, 1);
    CHECK_EQ_INT(ri.segments_scanned, 0);
    CHECK_EQ_INT(kc_log_end_offset(l), end);
    check_lookups(l);
    CHECK_EQ_INT(kc_log_close(l, 0), KC_OK); /* crash */

    /* torn last batch: cut 5 bytes off the active segment */
    corrupt(g_dir, si[n - 1].base_offset, 5, 1);
    CHECK_EQ_INT(kc_log_open(g_dir, &c, 0, &l), KC_OK);
    kc_log_recovery_info(l, &ri);
    CHECK_EQ_INT(ri.clean, 0);
    CHECK(ri.segments_scanned >= 1);
    CHECK_EQ_INT(ri.first_error, KC_ERR_TRUNCATED);
    CHECK(kc_log_end_offset(l) < end);
    check_lookups(l);
    int64_t end2 = kc_log_end_offset(l);
    CHECK_EQ_INT(kc_log_close(l, 0), KC_OK);

    /* a flipped bit in a middle segment: it is cut, later ones dropped.
     * The checkpoint says everything was flushed, so remove it to make
     * recovery re-read from the start. */
    char cp[512];
    snprintf(cp, sizeof cp, "%s/kc-checkpoint", g_dir);
    unlink(cp);
    corrupt(g_dir, si[2].base_offset, 3, 0);
    /* and a missing index file is rebuilt */
    snprintf(cp, sizeof cp, "%s/%020lld.index", g_dir, (long long)si[1].base_offset);
    unlink(cp);
    CHECK_EQ_INT(kc_log_open(g_dir, &c, 0, &l), KC_OK);
    kc_log_recovery_info(l, &ri);
    CHECK_EQ_INT(ri.first_error, KC_ERR_CORRUPT_CRC);
    CHECK_EQ_INT(ri.segments_deleted, (int64_t)n - 3);
    CHECK_EQ_INT(kc_log_segment_count(l), 3);
    CHECK(kc_log_end_offset(l) < si[2].next_offset && kc_log_end_offset(l) > si[2].base_offset);
    CHECK(end2 > kc_log_end_offset(l));
    check_lookups(l);
    kc_log_segments(l, si, 64, &n);
    CHECK(si[1].index_entries > 0);
    /* appends continue at the recovered end */
    int64_t e3 = kc_log_end_offset(l);
    CHECK_EQ_INT(append_n(l, 1, 0), e3);
    CHECK_EQ_INT(kc_log_delete(l), KC_OK);
}

typedef struct {
    kc_log_t *l;
    volatile int stop;
    int errors;
} flusher_t;

static void *flusher(void *arg) {
    flusher_t *f = arg;
    while (!f->stop) {
        if (kc_log_flush(f->l) != KC_OK)
            f->errors++;
        kc_slice_t s;
        if (kc_log_read(f->l, kc_log_start_offset(f->l), 1000, -1, &s) != KC_OK)
            f->errors++;
        kc_slice_release(&s);
    }
    return NULL;
}

static void test_concurrent_flush(void) {
    kc_log_config_t c = small_cfg();
    c.flush_interval_messages = 10;
    kc_log_t *l;
    CHECK_EQ_INT(kc_log_open(fresh_dir("conc"), &c, 0, &l), KC_OK);
    flusher_t f = {l, 0, 0};
    pthread_t t;
    pthread_create(&t, NULL, flusher, &f);
    append_n(l, 300, 1000);
    int64_t del;
    for (int i = 0; i < 5; i++)
        kc_log_retention(l, 0, -1, 20000, -1, &del);
    f.stop = 1;
    pthread_join(t, NULL);
    CHECK_EQ_INT(f.errors, 0);
    CHECK_EQ_INT(kc_log_flush(l), KC_OK);
    CHECK_EQ_INT(kc_log_recovery_point(l), kc_log_end_offset(l));
    CHECK_EQ_INT(kc_log_unflushed_messages(l), 0);
    check_lookups(l);
    CHECK_EQ_INT(kc_log_delete(l), KC_OK);
}

static void test_index_full_rolls(void) {
    kc_log_config_t c = kc_test_small_cfg(1 << 20, 0, 64); /* 8 offset entries, 5 time entries */
    kc_log_t *l;
    CHECK_EQ_INT(kc_log_open(fresh_dir("full"), &c, 0, &l), KC_OK);
    append_n(l, 40, 1000);
    CHECK(kc_log_segment_count(l) >= 5);
    check_lookups(l);
    size_t n;
    kc_segment_info_t si[64];
    kc_log_segments(l, si, 64, &n);
    CHECK(si[0].timeindex_entries <= 5 && si[0].index_entries <= 8);
    /* explicit roll */
    int64_t before = kc_log_segment_count(l);
    uint8_t buf[512];
    kc_append_info_t ai;
    CHECK_EQ_INT(kc_log_roll(l, 0), KC_OK);
    CHECK_EQ_INT(kc_log_segment_count(l), before + 1);
    CHECK_EQ_INT(kc_log_roll(l, 0), KC_OK); /* empty active: no-op */
    CHECK_EQ_INT(kc_log_segment_count(l), before + 1);
    CHECK_EQ_INT(kc_log_delete(l), KC_OK);

    /* roll by time: the append's timestamp against the first batch's */
    c.roll_ms = 10;
    CHECK_EQ_INT(kc_log_open(fresh_dir("rolltime"), &c, 0, &l), KC_OK);
    int64_t ts[] = {100, 105, 110, 111, 200};
    int64_t segs[] = {1, 1, 1, 2, 3};
    for (int i = 0; i < 5; i++) {
        size_t sz = make_batch(buf, sizeof buf, 1, ts[i], 10);
        CHECK_EQ_INT(kc_log_append(l, buf, sz, KC_APPEND_ASSIGN_OFFSETS, 0, -1, 0, &ai), KC_OK);
        CHECK_EQ_INT(kc_log_segment_count(l), segs[i]);
    }
    CHECK_EQ_INT(ai.position, 0);
    CHECK_EQ_INT(kc_log_delete(l), KC_OK);
}

/* Mappings of files of the lazy test's logs (the allocator's own come and go). */
static int count_maps(void) {
    FILE *f = fopen("/proc/self/maps", "r");
    char line[1024], pre[64];
    snprintf(pre, sizeof pre, "/tmp/kc_test_log_%d_lazy", (int)getpid());
    int n = 0;
    while (f && fgets(line, sizeof line, f))
        n += strstr(line, pre) != NULL;
    if (f)
        fclose(f);
    return n;
}

static int count_fds(void) {
    DIR *d = opendir("/proc/self/fd");
    int n = 0;
    while (d && readdir(d))
        n++;
    if (d)
        closedir(d);
    return n;
}

/* Files are opened lazily (kc_segment.h): an idle log holds no fd and no
 * mapping, after creation and after a clean or unclean reopen; a used one
 * holds its active .log's fd and never an index fd. */
#define LAZY_LOGS 64
static void test_lazy_files(void) {
    kc_log_config_t c = small_cfg();
    char dirs[LAZY_LOGS][256];
    kc_log_t *logs[LAZY_LOGS];
    int fds0 = count_fds(), maps0 = count_maps();
    CHECK_EQ_INT(maps0, 0);
    for (int i = 0; i < LAZY_LOGS; i++) {
        char name[32];
        snprintf(name, sizeof name, "lazy%d", i);
        snprintf(dirs[i], sizeof dirs[i], "%s", fresh_dir(name));
        CHECK_EQ_INT(kc_log_open(dirs[i], &c, 0, &logs[i]), KC_OK);
    }
    CHECK_EQ_INT(count_fds(), fds0);
    CHECK_EQ_INT(count_maps(), maps0);
    /* one log used: the .log of each segment written is open (as Kafka
     * keeps them), its indexes mapped once they hold an entry, and no index
     * fd is kept */
    append_n(logs[0], 60, 1000);
    int64_t nseg = kc_log_segment_count(logs[0]);
    CHECK(nseg > 1);
    CHECK_EQ_INT(count_fds(), fds0 + nseg);
    CHECK(count_maps() > 0);
    check_lookups(logs[0]);
    int64_t end0 = kc_log_end_offset(logs[0]);
    for (int i = 0; i < LAZY_LOGS; i++)
        CHECK_EQ_INT(kc_log_close(logs[i], i % 2), KC_OK); /* half clean, half as a crash */
    CHECK_EQ_INT(count_fds(), fds0);
    CHECK_EQ_INT(count_maps(), maps0);
    for (int i = 1; i < LAZY_LOGS; i++)
        CHECK_EQ_INT(kc_log_open(dirs[i], &c, 0, &logs[i]), KC_OK);
    CHECK_EQ_INT(count_fds(), fds0);
    CHECK_EQ_INT(count_maps(), maps0);
    /* the used log recovers (no clean marker) and serves every offset */
    CHECK_EQ_INT(kc_log_open(dirs[0], &c, 0, &logs[0]), KC_OK);
    CHECK_EQ_INT(kc_log_end_offset(logs[0]), end0);
    check_lookups(logs[0]);
    /* appending to an idle reopened log opens it then */
    CHECK_EQ_INT(append_n(logs[1], 3, 5000), 5);
    CHECK_EQ_INT(count_fds(), fds0 + 1 + nseg);
    for (int i = 0; i < LAZY_LOGS; i++)
        CHECK_EQ_INT(kc_log_delete(logs[i]), KC_OK);
    CHECK_EQ_INT(count_fds(), fds0);
}

/* The slice's bytes are whole valid batches (read through its pinned fd). */
static int slice_valid(kc_slice_t *s) {
    uint8_t buf[8192];
    if (s->length <= 0 || s->length > (int64_t)sizeof buf || kc_slice_pin(s) != KC_OK ||
        pread(s->fd, buf, (size_t)s->length, s->position) != s->length)
        return 0;
    size_t n, valid;
    kc_batch_info_t bi[64];
    return kc_batch_scan(buf, (size_t)s->length, KC_SCAN_VERIFY_CRC, 0, bi, 64, &n, &valid) == KC_OK && n > 0 &&
           (int64_t)valid == s->length;
}

/* The process-wide pool of segment fds (kc_segment.h): with a cap of 8, 40
 * logs of several segments each are written, read, flushed, and a slice of a
 * segment deleted by retention is read after its fd would have been evicted
 * many times over; segment fds never exceed the cap, nothing is lost. */
#define POOL_LOGS 40
#define POOL_CAP 8
static void test_fd_pool(void) {
    kc_log_config_t c = small_cfg();
    kc_log_t *logs[POOL_LOGS];
    char dirs[POOL_LOGS][256];
    kc_log_set_fd_cap(POOL_CAP);
    CHECK_EQ_INT(kc_log_fd_cap(), POOL_CAP);
    kc_fd_stats_t st0, st;
    kc_log_fd_stats(&st0);
    int fds0 = count_fds() - (int)st0.open, over = 0;
    for (int i = 0; i < POOL_LOGS; i++) {
        char name[32];
        snprintf(name, sizeof name, "pool%d", i);
        snprintf(dirs[i], sizeof dirs[i], "%s", fresh_dir(name));
        CHECK_EQ_INT(kc_log_open(dirs[i], &c, 0, &logs[i]), KC_OK);
    }
    for (int round = 0; round < 3; round++)
        for (int i = 0; i < POOL_LOGS; i++) {
            append_n(logs[i], 20, 1000 + round * 1000);
            over += count_fds() - fds0 > POOL_CAP;
        }
    CHECK_EQ_INT(over, 0);
    /* unpinned slices of every log hold no fd; each is pinned only to be read */
    kc_slice_t held[POOL_LOGS];
    int bad = 0;
    for (int i = 0; i < POOL_LOGS; i++) {
        CHECK_EQ_INT(kc_log_read_ex(logs[i], 0, 1000, -1, KC_READ_UNPINNED, &held[i]), KC_OK);
        CHECK_EQ_INT(held[i].fd, -1);
    }
    over += count_fds() - fds0 > POOL_CAP;
    for (int i = 0; i < POOL_LOGS; i++) {
        bad += !slice_valid(&held[i]);
        kc_slice_unpin(&held[i]);
        CHECK_EQ_INT(held[i].fd, -1);
    }
    /* every offset of every log, pinned reads, as the C API's kc_log_read gives them */
    for (int i = 0; i < POOL_LOGS; i++) {
        int64_t end = kc_log_end_offset(logs[i]);
        for (int64_t o = 0; o < end; o += 5) {
            kc_slice_t s;
            if (kc_log_read(logs[i], o, 600, -1, &s) != KC_OK || s.first_offset > o || s.last_offset < o ||
                !slice_valid(&s))
                bad++;
            kc_slice_release(&s);
            over += count_fds() - fds0 > POOL_CAP;
        }
        check_lookups(logs[i]);
    }
    CHECK_EQ_INT(bad, 0);
    /* retention deletes log 0's first segment while held[0] reads it */
    int64_t first_end;
    {
        kc_segment_info_t si[1];
        size_t n;
        CHECK_EQ_INT(kc_log_segments(logs[0], si, 1, &n), KC_OK);
        first_end = si[0].next_offset;
    }
    CHECK_EQ_INT(kc_log_delete_records(logs[0], first_end), KC_OK);
    CHECK_EQ_INT(kc_log_start_offset(logs[0]), first_end);
    for (int i = 1; i < POOL_LOGS; i++)
        append_n(logs[i], 3, 9000); /* churn: every other fd is evicted meanwhile */
    CHECK(slice_valid(&held[0]));
    for (int i = 0; i < POOL_LOGS; i++)
        kc_slice_release(&held[i]);
    for (int i = 0; i < POOL_LOGS; i++) {
        CHECK_EQ_INT(kc_log_flush(logs[i]), KC_OK);
        CHECK_EQ_INT(kc_log_recovery_point(logs[i]), kc_log_end_offset(logs[i]));
        over += count_fds() - fds0 > POOL_CAP;
    }
    CHECK_EQ_INT(over, 0);
    kc_log_fd_stats(&st);
    CHECK(st.evictions - st0.evictions > POOL_LOGS);
    CHECK(st.open <= POOL_CAP);
    /* half closed cleanly, half as a crash: the bytes written through evicted fds are all there */
    int64_t ends[POOL_LOGS];
    for (int i = 0; i < POOL_LOGS; i++) {
        ends[i] = kc_log_end_offset(logs[i]);
        CHECK_EQ_INT(kc_log_close(logs[i], i % 2), KC_OK);
    }
    for (int i = 0; i < POOL_LOGS; i++) {
        CHECK_EQ_INT(kc_log_open(dirs[i], &c, 0, &logs[i]), KC_OK);
        CHECK_EQ_INT(kc_log_end_offset(logs[i]), ends[i]);
        check_lookups(logs[i]);
        over += count_fds() - fds0 > POOL_CAP;
    }
    CHECK_EQ_INT(over, 0);
    for (int i = 0; i < POOL_LOGS; i++)
        CHECK_EQ_INT(kc_log_delete(logs[i]), KC_OK);
    kc_log_fd_stats(&st);
    CHECK_EQ_INT(st.open, 0);
    kc_log_set_fd_cap(0); /* derived from RLIMIT_NOFILE again */
    CHECK(kc_log_fd_cap() >= 16);
}

/* A preallocated index is sparse; its pages get blocks (fallocate) before an entry is stored in
 * them, so that a store on a full disk cannot be SIGBUS (kc_index.h). */
static void test_index_reserves_before_storing(void) {
    const char *d = fresh_dir("index_reserve");
    mkdir(d, 0755);
    char p[512];
    snprintf(p, sizeof p, "%s/r.index", d);
    kc_index_t ix;
    CHECK_EQ_INT(kc_index_open(&ix, p, KC_INDEX_OFFSET_ENTRY, 0, 1 << 20, 1), KC_OK);
    struct stat st;
    CHECK_EQ_INT(stat(p, &st), 0);
    CHECK_EQ_INT(st.st_size, 1 << 20);
    int64_t before = (int64_t)st.st_blocks * 512;
    CHECK_EQ_INT(kc_index_append_offset(&ix, 1, 100), KC_OK);
    CHECK_EQ_INT(stat(p, &st), 0);
    if (before == 0) /* a file system with sparse files and fallocate (tmpfs, ext4, xfs) */
        CHECK((int64_t)st.st_blocks * 512 >= KC_INDEX_RESERVE);
    CHECK_EQ_INT(ix.reserved, KC_INDEX_RESERVE);
    /* entries up to the reserved end need no more; the next one reserves the next chunk */
    int64_t n = KC_INDEX_RESERVE / KC_INDEX_OFFSET_ENTRY;
    for (int64_t i = 1; i < n; i++)
        CHECK_EQ_INT(kc_index_append_offset(&ix, 1 + i, 100 + i), KC_OK);
    CHECK_EQ_INT(ix.reserved, KC_INDEX_RESERVE);
    CHECK_EQ_INT(kc_index_append_offset(&ix, 1 + n, 100 + n), KC_OK);
    CHECK_EQ_INT(ix.reserved, 2 * KC_INDEX_RESERVE);
    /* trimmed at roll: never more reserved than the file holds */
    CHECK_EQ_INT(kc_index_resize(&ix, 0), KC_OK);
    CHECK((size_t)ix.reserved <= ix.map_len);
    kc_index_close(&ix);
}

int main(void) {
    RUN(test_lazy_files);
    RUN(test_fd_pool);
    RUN(test_index_basic);
    RUN(test_index_reserves_before_storing);
    RUN(test_retention_upper_bound);
    RUN(test_append_read);
    RUN(test_bad_input);
    RUN(test_replica_append_keeps_epochs);
    RUN(test_lookup_time);
    RUN(test_truncate_and_delete_records);
    RUN(test_truncate_fully);
    RUN(test_retention_time);
    RUN(test_recovery);
    RUN(test_concurrent_flush);
    RUN(test_index_full_rolls);
    TEST_MAIN_END();
}
