/* kc_loadgen - a librdkafka load generator for kafka-core and Apache Kafka,
 * in the manner of rdkafka_performance / kafka-producer-perf-test.
 *
 *   kc_loadgen produce -b HOST:PORT -t TOPIC -n COUNT -s SIZE [-p PARTITION]
 *              [-X key=value ...] [--rate MSGS_PER_SEC] [--sync]
 *   kc_loadgen consume -b HOST:PORT -t TOPIC -n COUNT [-p PARTITION] [-X key=value ...]
 *   kc_loadgen e2e -b HOST:PORT -t TOPIC -n COUNT -s SIZE --rate MSGS_PER_SEC [-X key=value ...]
 *
 * produce --duration SECONDS stops after that long even if COUNT is not reached
 * (records then tells how many were sent); --max-outstanding N keeps at most N
 * messages produced but not yet acknowledged, so that a timed run does not
 * leave a long local queue to flush (and a window of one request in flight
 * with N = 2 x batch is a true stop-and-wait producer).  e2e produces COUNT messages at the
 * fixed rate with the send time in the first 8 payload bytes and consumes them
 * in the same process (one thread, both clients polled in turn), so the
 * latencies are produce->consume, measured on one monotonic clock; -X settings
 * go to both clients.  One second of warm-up messages at the same rate goes
 * first and is not counted (topic metadata, connections, broker JIT/caches).
 *
 * Prints one JSON object on the last line: records, seconds, records_per_sec,
 * mb_per_sec and, for produce, delivery latency avg/p50/p95/p99/p999 (ms).
 * --sync waits for each delivery before the next produce (one message per
 * request, the paper's "batch 1" test); otherwise linger/batch settings
 * given with -X decide the batching.  Build: cc -O2 -o kc_loadgen kc_loadgen.c -lrdkafka
 */
#define _GNU_SOURCE
#include <librdkafka/rdkafka.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int64_t now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void die(const char *msg, const char *detail) {
    fprintf(stderr, "kc_loadgen: %s%s%s\n", msg, detail ? ": " : "", detail ? detail : "");
    exit(1);
}

static int64_t *lat_us;
static int64_t delivered, failed;
static int64_t *sent_at;

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
    (void)rk; (void)opaque;
    if (m->err) {
        if (failed++ < 5) fprintf(stderr, "delivery failed: %s\n", rd_kafka_err2str(m->err));
        return;
    }
    int64_t idx = (int64_t)(intptr_t)m->_private;
    lat_us[delivered++] = now_us() - sent_at[idx];
}

static int cmp64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static double pct(int64_t *v, int64_t n, double p) {
    if (n == 0) return 0;
    int64_t i = (int64_t)(p * (double)(n - 1));
    return (double)v[i] / 1000.0;
}

/* e2e: see the header comment.  The consumer is assigned at the partition's
 * current end (queried, not OFFSET_END, so nothing produced after the query
 * can be skipped) before the first send. */
static int run_e2e(rd_kafka_conf_t *conf, const char *topic, int32_t partition, int64_t count, int64_t size,
                   int64_t rate) {
    char errstr[512];
    if (rate <= 0) die("e2e needs --rate", NULL);
    if (size < 8) size = 8;
    rd_kafka_conf_t *cconf = rd_kafka_conf_dup(conf);
    rd_kafka_conf_set(conf, "linger.ms", "0", errstr, sizeof errstr);
    rd_kafka_conf_set(cconf, "group.id", "kc-loadgen-e2e", errstr, sizeof errstr);
    rd_kafka_conf_set(cconf, "enable.auto.commit", "false", errstr, sizeof errstr);
    rd_kafka_conf_set(cconf, "fetch.wait.max.ms", "100", errstr, sizeof errstr);
    rd_kafka_conf_set(cconf, "fetch.error.backoff.ms", "10", errstr, sizeof errstr);
    rd_kafka_t *prk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
    if (!prk) die(errstr, NULL);
    rd_kafka_t *crk = rd_kafka_new(RD_KAFKA_CONSUMER, cconf, errstr, sizeof errstr);
    if (!crk) die(errstr, NULL);
    int64_t lo = 0, hi = 0;
    rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;
    for (int tries = 0; tries < 50; tries++) {
        err = rd_kafka_query_watermark_offsets(crk, topic, partition, &lo, &hi, 5000);
        if (!err) break;
        struct timespec ts = {0, 200000000};
        nanosleep(&ts, NULL);
    }
    if (err) die("watermark query failed", rd_kafka_err2str(err));
    rd_kafka_topic_partition_list_t *tps = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(tps, topic, partition)->offset = hi;
    if (rd_kafka_assign(crk, tps)) die("assign failed", NULL);
    /* Let the consumer connect and start fetching before the clock starts. */
    int64_t ready = now_us() + 1000000;
    while (now_us() < ready) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(crk, 10);
        if (m) rd_kafka_message_destroy(m);
    }
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(prk, topic, NULL);
    lat_us = calloc((size_t)count, sizeof *lat_us);
    char *payload = calloc(1, (size_t)size);
    int64_t warm = rate, total = count + warm, seen = 0;
    int64_t sent = 0, got = 0, t0 = now_us();
    int64_t deadline = t0 + total * 1000000 / rate + 60000000;
    while (got < count && now_us() < deadline) {
        int64_t now = now_us();
        if (sent < total && now >= t0 + sent * 1000000 / rate) {
            memcpy(payload, &now, sizeof now);
            if (rd_kafka_produce(rkt, partition, RD_KAFKA_MSG_F_COPY, payload, (size_t)size, NULL, 0, NULL) == 0)
                sent++;
            rd_kafka_poll(prk, 0);
            continue;
        }
        rd_kafka_poll(prk, 0);
        rd_kafka_message_t *m = rd_kafka_consumer_poll(crk, sent < total ? 1 : 100);
        if (!m) continue;
        if (!m->err && m->len >= sizeof(int64_t)) {
            int64_t at;
            memcpy(&at, m->payload, sizeof at);
            if (seen++ >= warm) lat_us[got++] = now_us() - at;
        } else if (m->err && m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            fprintf(stderr, "consume error: %s\n", rd_kafka_message_errstr(m));
        }
        rd_kafka_message_destroy(m);
    }
    double secs = (double)(now_us() - t0) / 1e6 - 1.0;
    qsort(lat_us, (size_t)got, sizeof *lat_us, cmp64);
    double sum = 0;
    for (int64_t i = 0; i < got; i++) sum += (double)lat_us[i];
    printf("{\"mode\": \"e2e\", \"records\": %lld, \"sent\": %lld, \"record_size\": %lld, \"rate\": %lld, "
           "\"seconds\": %.3f, \"records_per_sec\": %.1f, \"mb_per_sec\": %.3f, \"avg_latency_ms\": %.3f, "
           "\"p50_ms\": %.3f, \"p95_ms\": %.3f, \"p99_ms\": %.3f, \"p999_ms\": %.3f, \"max_ms\": %.3f}\n",
           (long long)got, (long long)(sent - warm), (long long)size, (long long)rate, secs, (double)got / secs,
           (double)got * (double)size / secs / 1048576.0, got ? sum / (double)got / 1000.0 : 0,
           pct(lat_us, got, 0.5), pct(lat_us, got, 0.95), pct(lat_us, got, 0.99), pct(lat_us, got, 0.999),
           pct(lat_us, got, 1.0));
    rd_kafka_topic_partition_list_destroy(tps);
    rd_kafka_topic_destroy(rkt);
    rd_kafka_flush(prk, 10000);
    rd_kafka_consumer_close(crk);
    rd_kafka_destroy(crk);
    rd_kafka_destroy(prk);
    return got < count ? 1 : 0;
}

int main(int argc, char **argv) {
    if (argc < 2) die("usage: kc_loadgen produce|consume -b BROKERS -t TOPIC -n COUNT [-s SIZE] ...", NULL);
    const char *mode = argv[1], *brokers = "127.0.0.1:9092", *topic = NULL;
    int64_t count = 100000, size = 200, rate = 0;
    double duration = 0;
    int64_t max_out = 0;
    int32_t partition = 0;
    int sync = 0;
    char errstr[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--sync")) { sync = 1; continue; }
        if (!v) die("missing value for", a);
        i++;
        if (!strcmp(a, "-b")) brokers = v;
        else if (!strcmp(a, "-t")) topic = v;
        else if (!strcmp(a, "-n")) count = atoll(v);
        else if (!strcmp(a, "-s")) size = atoll(v);
        else if (!strcmp(a, "-p")) partition = atoi(v);
        else if (!strcmp(a, "--rate")) rate = atoll(v);
        else if (!strcmp(a, "--duration")) duration = atof(v);
        else if (!strcmp(a, "--max-outstanding")) max_out = atoll(v);
        else if (!strcmp(a, "-X")) {
            char *kv = strdup(v), *eq = strchr(kv, '=');
            if (!eq) die("-X wants key=value", v);
            *eq = 0;
            if (rd_kafka_conf_set(conf, kv, eq + 1, errstr, sizeof errstr) != RD_KAFKA_CONF_OK) die(errstr, kv);
            free(kv);
        } else die("unknown option", a);
    }
    if (!topic) die("-t TOPIC is required", NULL);
    if (rd_kafka_conf_set(conf, "bootstrap.servers", brokers, errstr, sizeof errstr) != RD_KAFKA_CONF_OK)
        die(errstr, NULL);
    if (!strcmp(mode, "e2e")) return run_e2e(conf, topic, partition, count, size, rate);
    int64_t t0, t1, bytes = 0;
    if (!strcmp(mode, "produce")) {
        rd_kafka_conf_set_dr_msg_cb(conf, dr_cb);
        rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
        if (!rk) die(errstr, NULL);
        rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
        lat_us = calloc((size_t)count, sizeof *lat_us);
        sent_at = calloc((size_t)count, sizeof *sent_at);
        char *payload = malloc((size_t)size);
        for (int64_t i = 0; i < size; i++) payload[i] = (char)('a' + i % 26);
        t0 = now_us();
        int64_t stop_at = duration > 0 ? t0 + (int64_t)(duration * 1e6) : INT64_MAX;
        for (int64_t i = 0; i < count; i++) {
            if (now_us() >= stop_at) break;
            if (rate > 0) {
                int64_t due = t0 + i * 1000000 / rate;
                while (now_us() < due) rd_kafka_poll(rk, 0);
            }
            sent_at[i] = now_us();
            while (rd_kafka_produce(rkt, partition, RD_KAFKA_MSG_F_COPY, payload, (size_t)size, NULL, 0,
                                    (void *)(intptr_t)i) == -1) {
                if (rd_kafka_last_error() != RD_KAFKA_RESP_ERR__QUEUE_FULL)
                    die("produce failed", rd_kafka_err2str(rd_kafka_last_error()));
                rd_kafka_poll(rk, 10);
            }
            if (sync) {
                while (delivered + failed <= i) rd_kafka_poll(rk, 1);
            } else if (max_out > 0) {
                while (i + 1 - delivered - failed >= max_out) rd_kafka_poll(rk, 1);
            } else if ((i & 1023) == 0) {
                rd_kafka_poll(rk, 0);
            }
        }
        rd_kafka_flush(rk, 60000);
        t1 = now_us();
        bytes = delivered * size;
        qsort(lat_us, (size_t)delivered, sizeof *lat_us, cmp64);
        double sum = 0;
        for (int64_t i = 0; i < delivered; i++) sum += (double)lat_us[i];
        double secs = (double)(t1 - t0) / 1e6;
        printf("{\"mode\": \"produce\", \"records\": %lld, \"failed\": %lld, \"record_size\": %lld, "
               "\"seconds\": %.3f, \"records_per_sec\": %.1f, \"mb_per_sec\": %.3f, \"avg_latency_ms\": %.3f, "
               "\"p50_ms\": %.3f, \"p95_ms\": %.3f, \"p99_ms\": %.3f, \"p999_ms\": %.3f}\n",
               (long long)delivered, (long long)failed, (long long)size, secs, (double)delivered / secs,
               (double)bytes / secs / 1048576.0, delivered ? sum / (double)delivered / 1000.0 : 0,
               pct(lat_us, delivered, 0.5), pct(lat_us, delivered, 0.95), pct(lat_us, delivered, 0.99),
               pct(lat_us, delivered, 0.999));
        rd_kafka_topic_destroy(rkt);
        rd_kafka_destroy(rk);
        return failed ? 1 : 0;
    }
    if (!strcmp(mode, "consume")) {
        rd_kafka_conf_set(conf, "group.id", "kc-loadgen", errstr, sizeof errstr);
        rd_kafka_conf_set(conf, "enable.auto.commit", "false", errstr, sizeof errstr);
        rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof errstr);
        if (!rk) die(errstr, NULL);
        rd_kafka_topic_partition_list_t *tps = rd_kafka_topic_partition_list_new(1);
        rd_kafka_topic_partition_list_add(tps, topic, partition)->offset = RD_KAFKA_OFFSET_BEGINNING;
        if (rd_kafka_assign(rk, tps)) die("assign failed", NULL);
        int64_t got = 0;
        t0 = 0;
        int64_t deadline = now_us() + 120000000;
        while (got < count && now_us() < deadline) {
            rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
            if (!m) continue;
            if (!m->err) {
                if (!t0) t0 = now_us();
                got++;
                bytes += (int64_t)m->len;
            } else if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
                fprintf(stderr, "consume error: %s\n", rd_kafka_message_errstr(m));
            }
            rd_kafka_message_destroy(m);
        }
        t1 = now_us();
        double secs = t0 ? (double)(t1 - t0) / 1e6 : 0;
        printf("{\"mode\": \"consume\", \"records\": %lld, \"seconds\": %.3f, \"records_per_sec\": %.1f, "
               "\"mb_per_sec\": %.3f}\n", (long long)got, secs, secs ? (double)got / secs : 0,
               secs ? (double)bytes / secs / 1048576.0 : 0);
        rd_kafka_topic_partition_list_destroy(tps);
        rd_kafka_consumer_close(rk);
        rd_kafka_destroy(rk);
        return got < count ? 1 : 0;
    }
    die("mode must be produce, consume or e2e", mode);
    return 2;
}
