/* test_compact.c - the log cleaner, under ASan+UBSan: dedupe against a
 * model, tombstones and the delete horizon, compacted batches in reads and
 * recovery, crash in the middle of a swap, appends during a pass. */
#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kc_batch.h"
#include "kc_common.h"
#include "kc_compact.h"
#include "kc_compact_txn.h"
#include "kc_log.h"
#include "kc_test.h"
#include "kc_test_fs.h"
#include "kc_test_log.h"

static const char *fresh_dir(const char *name) { return kc_test_fresh_dir("compact", name); }

static kc_log_config_t small_cfg(void) { return kc_test_small_cfg(2048, 128, 4096); }

#define MAXREC 4096
#define NKEYS 16

/* The model: every record appended, by offset. */
typedef struct model {
    int key[MAXREC];     /* -1: no key */
    int val[MAXREC];     /* -1: tombstone (null value) */
    int64_t n;
} model_t;

/* One batch of nrec records: key (off*7 % NKEYS) and value off, every
 * 5th a tombstone, every 11th keyless.  ts = record timestamp. */
static void append_batch(kc_log_t *l, model_t *m, int nrec, int64_t ts) {
    uint8_t buf[4096];
    kc_builder_t b;
    CHECK_EQ_INT(kc_builder_init(&b, buf, sizeof buf, ts, 0, -1, -1, -1), KC_OK);
    int64_t off0 = kc_log_end_offset(l);
    for (int i = 0; i < nrec; i++) {
        int64_t off = off0 + i;
        int key = off % 11 == 10 ? -1 : (int)(off * 7 % NKEYS), val = off % 5 == 4 ? -1 : (int)off;
        char k[16], v[32];
        int kl = snprintf(k, sizeof k, "key%d", key), vl = snprintf(v, sizeof v, "value-%d", val);
        CHECK_EQ_INT(kc_builder_append(&b, ts, key < 0 ? NULL : (uint8_t *)k, key < 0 ? -1 : kl,
                                       val < 0 ? NULL : (uint8_t *)v, val < 0 ? -1 : vl, NULL, 0),
                     KC_OK);
        m->key[off] = key;
        m->val[off] = val;
    }
    size_t sz = kc_builder_finish(&b);
    kc_append_info_t ai;
    CHECK_EQ_INT(kc_log_append(l, buf, sz, KC_APPEND_ASSIGN_OFFSETS, 0, -1, ts, &ai), KC_OK);
    CHECK_EQ_INT(ai.first_offset, off0);
    m->n = ai.last_offset + 1;
}

/* A fresh log in dir name under the small config, opened at 1000, and an empty model. */
static kc_log_t *open_fresh(const char *name, model_t *m) {
    kc_log_config_t cfg = small_cfg();
    kc_log_t *l = NULL;
    memset(m, 0, sizeof *m);
    CHECK_EQ_INT(kc_log_open(fresh_dir(name), &cfg, 1000, &l), KC_OK);
    return l;
}

/* nbatch batches of nrec records, at timestamps ts0, ts0 + 1, ... */
static void append_batches(kc_log_t *l, model_t *m, int nbatch, int nrec, int64_t ts0) {
    for (int i = 0; i < nbatch; i++)
        append_batch(l, m, nrec, ts0 + i);
}

/* Clean as of 2000 with a horizon that keeps every tombstone. */
static kc_compact_config_t young_tombstones_cfg(void) {
    kc_compact_config_t cc;
    kc_compact_config_default(&cc, 2000);
    cc.delete_retention_ms = 1000000;
    return cc;
}

/* Read the whole log back: present[off] = 1 for every record there, with
 * its key and value checked against the model. */
static void read_all(kc_log_t *l, const model_t *m, char *present) {
    memset(present, 0, MAXREC);
    int64_t off = kc_log_start_offset(l), prev = -1;
    while (off < kc_log_end_offset(l)) {
        kc_slice_t s;
        CHECK_EQ_INT(kc_log_read(l, off, 1 << 20, -1, &s), KC_OK);
        if (s.length == 0)
            break;
        uint8_t *buf = malloc((size_t)s.length);
        CHECK_EQ_INT(pread(s.fd, buf, (size_t)s.length, s.position), s.length);
        size_t nb = 0, valid = 0;
        CHECK_EQ_INT(kc_batch_scan(buf, (size_t)s.length, KC_SCAN_VERIFY_CRC | KC_SCAN_ALLOW_COMPACTED, 0, NULL, 0,
                                   &nb, &valid), KC_OK);
        for (size_t p = 0; p < (size_t)s.length;) {
            kc_batch_info_t bi;
            CHECK_EQ_INT(kc_batch_check(buf + p, (size_t)s.length - p, 0, KC_SCAN_ALLOW_COMPACTED, &bi), KC_OK);
            size_t rp = KC_BATCH_HEADER_SIZE;
            kc_record_t r;
            int32_t count = 0;
            while (rp < bi.size && kc_record_next(buf + p, bi.size, &rp, &r) == KC_OK) {
                int64_t o = bi.base_offset + r.offset_delta;
                CHECK(o > prev && o < m->n);
                prev = o;
                present[o] = 1;
                char k[16], v[32];
                int kl = snprintf(k, sizeof k, "key%d", m->key[o]), vl = snprintf(v, sizeof v, "value-%d", m->val[o]);
                CHECK(m->key[o] < 0 ? r.key == NULL : (r.key_len == kl && memcmp(r.key, k, (size_t)kl) == 0));
                CHECK(m->val[o] < 0 ? r.value == NULL : (r.value_len == vl && memcmp(r.value, v, (size_t)vl) == 0));
                count++;
            }
            CHECK_EQ_INT(count, bi.record_count);
            p += bi.size;
            off = bi.base_offset + bi.last_offset_delta + 1;
        }
        free(buf);
        kc_slice_release(&s);
    }
}

/* After cleaning [0, end) with the tombstone rule tomb_gone: every record
 * at or after end is there; below end, exactly the latest of each key
 * (minus expired tombstones) and every keyless record. */
static void check_model(kc_log_t *l, const model_t *m, int64_t end, int tomb_gone) {
    char present[MAXREC];
    read_all(l, m, present);
    int64_t latest[NKEYS];
    for (int k = 0; k < NKEYS; k++)
        latest[k] = -1;
    for (int64_t o = 0; o < end; o++)
        if (m->key[o] >= 0)
            latest[m->key[o]] = o;
    for (int64_t o = 0; o < m->n; o++) {
        int want = o >= end || m->key[o] < 0 || (latest[m->key[o]] == o && !(tomb_gone && m->val[o] < 0));
        if (present[o] != want)
            fprintf(stderr, "offset %lld: present %d want %d (key %d val %d end %lld)\n", (long long)o, present[o],
                    want, m->key[o], m->val[o], (long long)end);
        CHECK_EQ_INT(present[o], want);
    }
}

/* nrec records all with key k (value "v"), one batch at timestamp ts. */
static void append_same_key(kc_log_t *l, int k, int nrec, int64_t ts) {
    uint8_t buf[4096];
    kc_builder_t b;
    CHECK_EQ_INT(kc_builder_init(&b, buf, sizeof buf, ts, 0, -1, -1, -1), KC_OK);
    char key[16];
    int kl = snprintf(key, sizeof key, "key%d", k);
    for (int i = 0; i < nrec; i++)
        CHECK_EQ_INT(kc_builder_append(&b, ts, (uint8_t *)key, kl, (const uint8_t *)"v", 1, NULL, 0), KC_OK);
    kc_append_info_t ai;
    CHECK_EQ_INT(kc_log_append(l, buf, kc_builder_finish(&b), KC_APPEND_ASSIGN_OFFSETS, 0, -1, ts, &ai), KC_OK);
}

static int32_t first_batch_records(const kc_slice_t *s) {
    uint8_t h[KC_BATCH_HEADER_SIZE];
    CHECK_EQ_INT(pread(s->fd, h, sizeof h, s->position), (ssize_t)sizeof h);
    return (int32_t)kc_be32(h + KC_BATCH_OF_RECORD_COUNT);
}

/* A key overwritten again and again: the cleaner leaves empty batches (and whole segments of
 * them); a consumer's read (KC_READ_SKIP_EMPTY) starts at the first batch with a record. */
static void test_read_skips_empty_batches(void) {
    static model_t m;
    kc_log_t *l = open_fresh("skipempty", &m);
    for (int i = 0; i < 200; i++)
        append_same_key(l, 0, 4, 1000 + i);
    append_same_key(l, 1, 2, 1300);
    int64_t hot_end = kc_log_end_offset(l); /* the last key0 record is hot_end - 3 */
    kc_log_roll(l, 2000);
    CHECK(kc_log_segment_count(l) > 4);
    kc_compact_config_t cc = young_tombstones_cfg();
    kc_compact_stats_t st;
    CHECK_EQ_INT(kc_log_compact(l, &cc, &st), KC_OK);
    CHECK_EQ_INT(st.end_offset, hot_end);
    kc_slice_t s;
    CHECK_EQ_INT(kc_log_read(l, 0, 1 << 20, -1, &s), KC_OK);
    CHECK(s.length > 0);
    CHECK_EQ_INT(first_batch_records(&s), 0);     /* a plain read: the empty batches come first */
    int64_t plain_first = s.first_offset;
    kc_slice_release(&s);
    CHECK_EQ_INT(kc_log_read_ex(l, 0, 1 << 20, -1, KC_READ_SKIP_EMPTY, &s), KC_OK);
    CHECK_EQ_INT(first_batch_records(&s), 1);     /* the latest key0 record */
    CHECK_EQ_INT(s.first_offset, hot_end - 6);    /* its batch: 4 records before key1's 2 */
    CHECK(s.segment_base > 0);                     /* found past the first segment */
    kc_slice_release(&s);
    /* nothing with a record below max_offset: the plain read */
    CHECK_EQ_INT(kc_log_read_ex(l, 0, 1 << 20, hot_end - 6, KC_READ_SKIP_EMPTY, &s), KC_OK);
    CHECK_EQ_INT(s.first_offset, plain_first);
    CHECK_EQ_INT(first_batch_records(&s), 0);
    kc_slice_release(&s);
    CHECK_EQ_INT(kc_log_delete(l), KC_OK);
}

/* max_offset (a replicated log's high watermark): nothing at or above it is cleaned. */
static void test_max_offset(void) {
    static model_t m;
    kc_log_t *l = open_fresh("maxoff", &m);
    for (int i = 0; i < 120; i++)
        append_batch(l, &m, 1 + i % 4, 1000 + i);
    size_t n;
    kc_segment_info_t si[256];
    CHECK_EQ_INT(kc_log_segments(l, si, 256, &n), KC_OK);
    CHECK(n > 4);
    int64_t bound = si[3].base_offset + 1; /* inside segment 3: only 0..2 are cleanable */
    int64_t clean, dirty, want = si[0].size_bytes + si[1].size_bytes + si[2].size_bytes;
    CHECK_EQ_INT(kc_log_cleanable_bytes(l, 2000, 0, bound, &clean, &dirty), KC_OK);
    CHECK_EQ_INT(dirty, want);
    CHECK_EQ_INT(kc_log_cleanable_bytes(l, 2000, 0, 0, &clean, &dirty), KC_OK);
    CHECK_EQ_INT(dirty, 0);
    kc_compact_config_t cc = young_tombstones_cfg();
    cc.max_offset = bound;
    kc_compact_stats_t st;
    CHECK_EQ_INT(kc_log_compact(l, &cc, &st), KC_OK);
    CHECK_EQ_INT(st.end_offset, si[3].base_offset);
    check_model(l, &m, si[3].base_offset, 0);
    CHECK_EQ_INT(kc_log_delete(l), KC_OK);
}

/* One batch of one record key/value of producer pid (transactional when txn). */
static int64_t append_one(kc_log_t *l, const char *key, const char *val, int64_t pid, int txn) {
    uint8_t buf[512];
    kc_builder_t b;
    CHECK_EQ_INT(kc_builder_init(&b, buf, sizeof buf, 1000, txn ? KC_ATTR_TRANSACTIONAL : 0, pid, pid < 0 ? -1 : 0,
                                 pid < 0 ? -1 : 0), KC_OK);
    CHECK_EQ_INT(kc_builder_append(&b, 1000, key ? (const uint8_t *)key : NULL, key ? (int32_t)strlen(key) : -1,
                                   (const uint8_t *)val, (int32_t)strlen(val), NULL, 0), KC_OK);
    size_t sz = kc_builder_finish(&b);
    kc_append_info_t ai;
    CHECK_EQ_INT(kc_log_append(l, buf, sz, KC_APPEND_ASSIGN_OFFSETS, 0, -1, 1000, &ai), KC_OK);
    return ai.first_offset;
}

/* The offsets at which a record remains, and the record count of each batch, up to off_max. */
static void offsets_left(kc_log_t *l, int64_t off_max, char *left, int32_t *counts) {
    memset(left, 0, (size_t)off_max);
    kc_slice_t s;
    CHECK_EQ_INT(kc_log_read(l, kc_log_start_offset(l), 1 << 20, -1, &s), KC_OK);
    uint8_t *buf = malloc((size_t)s.length);
    CHECK_EQ_INT(pread(s.fd, buf, (size_t)s.length, s.position), s.length);
    for (size_t p = 0; p < (size_t)s.length;) {
        kc_batch_info_t bi;
        CHECK_EQ_INT(kc_batch_check(buf + p, (size_t)s.length - p, 0, KC_SCAN_ALLOW_COMPACTED | KC_SCAN_VERIFY_CRC, &bi), KC_OK);
        if (bi.base_offset < off_max)
            counts[bi.base_offset] = bi.record_count;
        size_t rp = KC_BATCH_HEADER_SIZE;
        kc_record_t r;
        while (rp < bi.size && kc_record_next(buf + p, bi.size, &rp, &r) == KC_OK)
            if (bi.base_offset + r.offset_delta < off_max)
                left[bi.base_offset + r.offset_delta] = 1;
        p += bi.size;
    }
    free(buf);
    kc_slice_release(&s);
}

/* An aborted transaction's records are dropped, never a key's latest value: the
 * committed value written before them stays; the aborted batch remains, empty. */
static void test_aborted_transactions_are_discarded(void) {
    static model_t m;
    for (int with = 0; with < 2; with++) {
        kc_log_t *l = open_fresh(with ? "aborted" : "aborted-none", &m);
        int64_t o_plain = append_one(l, "k", "committed", -1, 0);
        int64_t o_txn = append_one(l, "k", "aborted", 7, 1);
        int64_t o_other = append_one(l, "j", "other-producer", 8, 1);   /* pid 8: not aborted */
        for (int i = 0; i < 60; i++)                                     /* filler: roll segments */
            append_one(l, NULL, "filler-filler-filler-filler-filler-filler", -1, 0);
        kc_aborted_txn_t ab[] = {{3, 0, 0, -1}, {7, o_txn, o_txn + 1, -1}};       /* sorted by last offset */
        kc_compact_config_t cc = young_tombstones_cfg();
        if (with) {
            cc.aborted = ab;
            cc.n_aborted = 2;
        }
        kc_compact_stats_t st;
        CHECK_EQ_INT(kc_log_compact(l, &cc, &st), KC_OK);
        CHECK(st.end_offset > o_other);
        char left[8];
        int32_t counts[8] = {-1, -1, -1, -1, -1, -1, -1, -1};
        offsets_left(l, 8, left, counts);
        CHECK_EQ_INT(left[o_plain], with);       /* without the abort, the aborted value won */
        CHECK_EQ_INT(left[o_txn], !with);
        CHECK_EQ_INT(counts[o_txn], !with);      /* the empty batch stays (producer state) */
        CHECK_EQ_INT(left[o_other], 1);
        CHECK_EQ_INT(kc_log_delete(l), KC_OK);
    }
}

static void test_dedupe_and_tombstones(void) {
    kc_log_config_t cfg = small_cfg();
    static model_t m;
    kc_log_t *l = open_fresh("dedupe", &m);
    for (int i = 0; i < 120; i++)
        append_batch(l, &m, 1 + i % 4, 1000 + i);
    int64_t segs_before = kc_log_segment_count(l);
    CHECK(segs_before > 4);
    int64_t clean, dirty;
    CHECK_EQ_INT(kc_log_cleanable_bytes(l, 2000, 0, -1, &clean, &dirty), KC_OK);
    CHECK_EQ_INT(clean, 0);
    CHECK(dirty > 0);
    /* a lag longer than the log's age leaves nothing cleanable */
    CHECK_EQ_INT(kc_log_cleanable_bytes(l, 2000, 100000, -1, &clean, &dirty), KC_OK);
    CHECK_EQ_INT(dirty, 0);

    /* pass 1: tombstones are young (horizon before every timestamp) */
    kc_compact_config_t cc = young_tombstones_cfg();
    kc_compact_stats_t st;
    CHECK_EQ_INT(kc_log_compact(l, &cc, &st), KC_OK);
    int64_t end = st.end_offset;
    CHECK(end > 0 && end < m.n);
    CHECK_EQ_INT(end, kc_log_cleaner_checkpoint(l));
    CHECK(st.records_removed > 0);
    CHECK_EQ_INT(st.tombstones_removed, 0);
    CHECK(st.segments_after <= st.segments_before);
    CHECK_EQ_INT(kc_log_end_offset(l), m.n);
    check_model(l, &m, end, 0);
    CHECK_EQ_INT(kc_log_cleanable_bytes(l, 2000, 0, -1, &clean, &dirty), KC_OK);
    CHECK(clean > 0);
    CHECK_EQ_INT(dirty, 0);

    /* more data, then pass 2 with an expired horizon: tombstones go */
    append_batches(l, &m, 30, 3, 1100);
    kc_log_roll(l, 5000);
    cc.now_ms = 5000;
    cc.delete_retention_ms = 10;
    CHECK_EQ_INT(kc_log_compact(l, &cc, &st), KC_OK);
    CHECK(st.tombstones_removed > 0);
    CHECK_EQ_INT(st.end_offset, m.n);
    CHECK(st.segments_after < st.segments_before); /* small cleaned segments merge */
    CHECK(kc_log_segment_count(l) < segs_before);
    check_model(l, &m, m.n, 1);

    /* lookups hold: every offset maps to the batch holding it or the next */
    for (int64_t o = 0; o < m.n; o++) {
        kc_position_t pos;
        int rc = kc_log_lookup(l, o, &pos);
        CHECK(rc == KC_OK || rc == KC_ERR_NOT_FOUND);
        if (rc == KC_OK)
            CHECK(pos.batch_last_offset >= o);
    }
    /* reopen (clean and unclean): compacted batches are valid on disk */
    CHECK_EQ_INT(kc_log_close(l, 1), KC_OK);
    CHECK_EQ_INT(kc_log_open(g_dir, &cfg, 6000, &l), KC_OK);
    CHECK_EQ_INT(kc_log_cleaner_checkpoint(l), m.n);
    check_model(l, &m, m.n, 1);
    CHECK_EQ_INT(kc_log_close(l, 0), KC_OK);
    unlink(strcat(strcpy((char[300]){0}, g_dir), "/kc-checkpoint")); /* recover everything */
    CHECK_EQ_INT(kc_log_open(g_dir, &cfg, 6000, &l), KC_OK);
    kc_recovery_info_t ri;
    kc_log_recovery_info(l, &ri);
    CHECK_EQ_INT(ri.bytes_truncated, 0);
    CHECK_EQ_INT(ri.first_error, KC_OK);
    CHECK_EQ_INT(kc_log_end_offset(l), m.n);
    check_model(l, &m, m.n, 1);
    /* produce keeps the strict count rule */
    uint8_t buf[256];
    kc_builder_t b;
    kc_builder_init(&b, buf, sizeof buf, 1, 0, -1, -1, -1);
    kc_builder_append(&b, 1, (const uint8_t *)"k", 1, (const uint8_t *)"v", 1, NULL, 0);
    size_t sz = kc_builder_finish(&b);
    kc_put_be32(buf + 23, 3); /* lastOffsetDelta 3 for 1 record: a compacted shape */
    kc_batch_update_crc(buf, sz);
    kc_append_info_t ai;
    CHECK_EQ_INT(kc_log_append(l, buf, sz, KC_APPEND_ASSIGN_OFFSETS, 0, -1, 1, &ai), KC_ERR_BAD_COUNT);
    CHECK_EQ_INT(kc_batch_check(buf, sz, 0, KC_SCAN_ALLOW_COMPACTED | KC_SCAN_VERIFY_CRC, NULL), KC_OK);
    CHECK_EQ_INT(kc_log_delete(l), KC_OK);
}

/* A crash at each step of the first swap: reopening gives a valid log
 * holding either the old or the cleaned data, never a mix that loses the
 * latest value of a key. */
static void test_crash_mid_swap(void) {
    for (int step = 1; step <= 3; step++) {
        kc_log_config_t cfg = small_cfg();
        static model_t m;
        kc_log_t *l = open_fresh("crash", &m);
        append_batches(l, &m, 40, 2, 1000);
        CHECK_EQ_INT(kc_log_flush(l), KC_OK);
        kc_compact_config_t cc = young_tombstones_cfg();
        cc.crash_after = step;
        kc_compact_stats_t st;
        CHECK_EQ_INT(kc_log_compact(l, &cc, &st), KC_ERR_AGAIN);
        CHECK_EQ_INT(kc_log_close(l, 0), KC_OK);
        CHECK_EQ_INT(kc_log_open(g_dir, &cfg, 3000, &l), KC_OK);
        CHECK_EQ_INT(kc_log_end_offset(l), m.n);
        CHECK_EQ_INT(kc_log_cleaner_checkpoint(l), 0);
        char present[MAXREC];
        read_all(l, &m, present);
        /* the latest record of every key and every keyless one survive */
        for (int64_t o = 0; o < m.n; o++) {
            int latest = 1;
            for (int64_t q = o + 1; q < m.n && m.key[o] >= 0; q++)
                if (m.key[q] == m.key[o])
                    latest = 0;
            if (latest || m.key[o] < 0)
                CHECK(present[o]);
        }
        /* no .swap or .cleaned file is left */
        DIR *d = opendir(g_dir);
        struct dirent *e;
        while ((e = readdir(d)) != NULL)
            CHECK(!strstr(e->d_name, ".swap") && !strstr(e->d_name, ".cleaned"));
        closedir(d);
        /* and a full pass then works */
        cc.crash_after = 0;
        CHECK_EQ_INT(kc_log_compact(l, &cc, &st), KC_OK);
        check_model(l, &m, st.end_offset, 0);
        CHECK_EQ_INT(kc_log_delete(l), KC_OK);
    }
}

typedef struct appender {
    kc_log_t *l;
    model_t *m;
    int n;
} appender_t;

static void *append_thread(void *arg) {
    appender_t *a = arg;
    for (int i = 0; i < a->n; i++)
        append_batch(a->l, a->m, 2, 3000 + i);
    return NULL;
}

static void test_appends_during_compaction(void) {
    static model_t m;
    kc_log_t *l = open_fresh("concurrent", &m);
    append_batches(l, &m, 50, 3, 1000);
    kc_log_roll(l, 2000);
    int64_t before = m.n;
    appender_t a = {l, &m, 200};
    pthread_t t;
    pthread_create(&t, NULL, append_thread, &a);
    kc_compact_config_t cc = young_tombstones_cfg();
    kc_compact_stats_t st;
    int64_t end = 0;
    for (int i = 0; i < 5; i++) {
        CHECK_EQ_INT(kc_log_compact(l, &cc, &st), KC_OK);
        end = st.end_offset > end ? st.end_offset : end;
    }
    pthread_join(t, NULL);
    CHECK(end >= before);
    CHECK_EQ_INT(kc_log_end_offset(l), m.n);
    check_model(l, &m, kc_log_cleaner_checkpoint(l), 0);
    CHECK_EQ_INT(kc_log_delete(l), KC_OK);
}

static void test_small_map_and_truncate(void) {
    static model_t m;
    kc_log_t *l = open_fresh("smallmap", &m);
    append_batches(l, &m, 150, 4, 1000);
    kc_compact_config_t cc = young_tombstones_cfg();
    cc.max_map_bytes = 100; /* fewer than 16 entries */
    kc_compact_stats_t st;
    CHECK_EQ_INT(kc_log_compact(l, &cc, &st), KC_ERR_TOO_LARGE);
    cc.max_map_bytes = 24 * 128; /* 96 entries: more than a segment's records, and the 16 keys */
    int passes = 0;
    do {
        CHECK_EQ_INT(kc_log_compact(l, &cc, &st), KC_OK);
        passes++;
    } while (st.end_offset > st.dirty_start && passes < 50);
    CHECK_EQ_INT(passes, 2); /* the map holds distinct keys: one pass, then nothing dirty */
    CHECK_EQ_INT(st.end_offset, kc_log_cleaner_checkpoint(l));
    check_model(l, &m, kc_log_cleaner_checkpoint(l), 0);
    /* truncating below the checkpoint lowers it */
    int64_t cp = kc_log_cleaner_checkpoint(l);
    CHECK_EQ_INT(kc_log_truncate_to(l, cp / 2), KC_OK);
    CHECK(kc_log_cleaner_checkpoint(l) <= cp / 2);
    CHECK_EQ_INT(kc_log_delete(l), KC_OK);
}

/* A marker's delete horizon (KIP-534): attribute 0x40, baseTimestamp = the
 * horizon, the record's timestamp unchanged (its delta re-encoded, here from
 * 1 byte to 3), a valid CRC; the marker type still reads back. */
static void test_marker_delete_horizon(void) {
    uint8_t buf[256], out[256 + 16];
    kc_builder_t b;
    CHECK_EQ_INT(kc_builder_init(&b, buf, sizeof buf, 5000, KC_ATTR_TRANSACTIONAL | KC_ATTR_CONTROL, 42, 3, -1),
                 KC_OK);
    const uint8_t key[4] = {0, 0, 0, 1}, val[6] = {0, 0, 0, 0, 0, 9}; /* COMMIT, coordinator epoch 9 */
    CHECK_EQ_INT(kc_builder_append(&b, 5000, key, 4, val, 6, NULL, 0), KC_OK);
    size_t n = kc_builder_finish(&b);
    kc_batch_info_t bi, nb;
    CHECK_EQ_INT(kc_batch_check(buf, n, 0, KC_SCAN_VERIFY_CRC, &bi), KC_OK);
    CHECK_EQ_INT(kc_control_type(buf, &bi), 1);
    size_t m = kc_control_set_horizon(out, sizeof out, buf, &bi, 5000 + 86400000);
    CHECK(m > n);
    CHECK_EQ_INT(kc_batch_check(out, m, 0, KC_SCAN_VERIFY_CRC, &nb), KC_OK);
    CHECK(nb.attributes & KC_ATTR_DELETE_HORIZON);
    CHECK_EQ_INT(nb.base_timestamp, 5000 + 86400000);
    CHECK_EQ_INT(nb.max_timestamp, 5000);
    CHECK_EQ_INT(nb.record_count, 1);
    size_t rp = 0;
    kc_record_t r;
    CHECK_EQ_INT(kc_record_next(out + KC_BATCH_HEADER_SIZE, m - KC_BATCH_HEADER_SIZE, &rp, &r), KC_OK);
    CHECK_EQ_INT(rp, m - KC_BATCH_HEADER_SIZE);
    CHECK_EQ_INT(nb.base_timestamp + r.timestamp_delta, 5000);
    CHECK_EQ_INT(r.value_len, 6);
    CHECK_EQ_INT(kc_control_type(out, &nb), 1);
    CHECK_EQ_INT(kc_control_set_horizon(out, 40, buf, &bi, 1), 0); /* no room: refused, not overrun */
}

/* The pass's transaction bookkeeping: an abort is taken up at its first
 * offset, records seen keep its marker and index entry; a committed
 * transaction's marker stays only while records of it were seen. */
static void test_txn_meta(void) {
    kc_aborted_txn_t ab[] = {{7, 10, 20, 21}};
    kc_txn_meta_t m;
    CHECK_EQ_INT(kc_txn_meta_init(&m, ab, 1), KC_OK);
    kc_batch_info_t data = {.base_offset = 10, .last_offset_delta = 2, .attributes = KC_ATTR_TRANSACTIONAL,
                            .producer_id = 7, .record_count = 3};
    kc_batch_info_t other = data;
    other.base_offset = 13;
    other.producer_id = 8;
    other.record_count = 0; /* an emptied batch: no record of pid 8's transaction */
    CHECK_EQ_INT(kc_txn_meta_on_batch(&m, &data), KC_OK);
    CHECK_EQ_INT(kc_txn_meta_on_batch(&m, &other), KC_OK);
    kc_batch_info_t mk = {.base_offset = 20, .attributes = KC_ATTR_TRANSACTIONAL | KC_ATTR_CONTROL,
                          .producer_id = 7, .record_count = 1};
    int discard;
    const kc_aborted_txn_t *e;
    kc_txn_meta_on_control(&m, &mk, 0, &discard, &e);
    CHECK_EQ_INT(discard, 0);
    CHECK(e == &ab[0]);
    mk.base_offset = 21;
    mk.producer_id = 8;
    kc_txn_meta_on_control(&m, &mk, 1, &discard, &e);
    CHECK_EQ_INT(discard, 1);
    CHECK(e == NULL);
    CHECK_EQ_INT((int)m.n_open, 0);
    kc_txn_meta_free(&m);
}

int main(void) {
    RUN(test_dedupe_and_tombstones);
    RUN(test_max_offset);
    RUN(test_aborted_transactions_are_discarded);
    RUN(test_read_skips_empty_batches);
    RUN(test_crash_mid_swap);
    RUN(test_appends_during_compaction);
    RUN(test_small_map_and_truncate);
    RUN(test_marker_delete_horizon);
    RUN(test_txn_meta);
    TEST_MAIN_END();
}
