/* test_transfer.c - kc_xfer_send in every mode over a socketpair and a
 * loopback TCP pair with small buffers and a slow reader, so EAGAIN and
 * partial progress happen; the received stream is compared byte for byte.
 * SIGPIPE keeps its default action here: a transfer that raised it would
 * kill the test. */
#include "../kc_common.h"
#include "../kc_transfer.h"
#include "kc_test.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static void nap_us(long us) {
    struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
    nanosleep(&ts, NULL);
}

/* ---- socket pairs ---- */

static void set_nonblock(int fd) { fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK); }

static void small_bufs(int snd, int rcv) {
    int v = 4096;
    setsockopt(snd, SOL_SOCKET, SO_SNDBUF, &v, sizeof v);
    setsockopt(rcv, SOL_SOCKET, SO_RCVBUF, &v, sizeof v);
}

static int pair_unix(int fds[2]) {
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, fds) != 0) return -1;
    small_bufs(fds[0], fds[1]);
    set_nonblock(fds[0]);
    return 0;
}

static int pair_tcp(int fds[2]) {
    int l = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof a) || listen(l, 1) ||
        getsockname(l, (struct sockaddr *)&a, &al))
        return -1;
    int c = socket(AF_INET, SOCK_STREAM, 0);
    int v = 4096;
    setsockopt(c, SOL_SOCKET, SO_SNDBUF, &v, sizeof v);
    if (connect(c, (struct sockaddr *)&a, sizeof a) != 0) return -1;
    int s = accept(l, NULL, NULL);
    close(l);
    if (s < 0) return -1;
    /* Only the send side is small: a tiny receive window on loopback
     * stalls on delayed ACKs and zero-window probes (~50 KB/s). */
    set_nonblock(c);
    fds[0] = c;
    fds[1] = s;
    return 0;
}

/* ---- slow reader thread ---- */

typedef struct {
    int fd;
    uint8_t *buf;
    size_t cap, got;
    size_t close_after; /* close the socket after this many bytes (0: never) */
    int slow;
} reader_t;

static void *reader_main(void *arg) {
    reader_t *r = arg;
    for (;;) {
        static _Thread_local uint8_t extra[1 << 16]; /* bytes beyond cap: counted, dropped */
        size_t want = r->slow ? 1 + rnd() % 3000 : 1 << 16;
        if (r->got < r->cap && want > r->cap - r->got) want = r->cap - r->got;
        ssize_t n = read(r->fd, r->got < r->cap ? r->buf + r->got : extra, want);
        if (n <= 0) break;
        if (r->got >= r->cap) { r->got += (size_t)n; continue; }
        r->got += (size_t)n;
        if (r->close_after && r->got >= r->close_after) break;
        if (r->slow && rnd() % 4 == 0) nap_us(200);
    }
    close(r->fd);
    return NULL;
}

/* Start the reader thread on r (fd, cap and the knobs set), with a buffer for cap bytes. */
static pthread_t start_reader(reader_t *r) {
    pthread_t th;
    r->buf = malloc(r->cap + 1);
    pthread_create(&th, NULL, reader_main, r);
    return th;
}

/* Close the sending end, wait for the reader: it got total bytes, equal to want. */
static void finish_reader(reader_t *r, pthread_t th, int send_fd, const uint8_t *want, size_t total) {
    close(send_fd);
    pthread_join(th, NULL);
    CHECK_EQ_INT(r->got, total);
    if (r->got == total) CHECK(memcmp(r->buf, want, total) == 0);
    free(r->buf);
}

/* Send until done or error, waiting for POLLOUT on KC_ERR_AGAIN. */
static int send_all(int sock, kc_xfer_t *x, int mode, int *agains) {
    for (;;) {
        uint64_t before = x->sent;
        int rc = kc_xfer_send(sock, x, mode);
        if (x->sent < before) return -1000; /* progress went backwards */
        if (rc != KC_ERR_AGAIN) return rc;
        (*agains)++;
        struct pollfd p = {.fd = sock, .events = POLLOUT};
        if (poll(&p, 1, 1000) == 0) fprintf(stderr, "poll timeout mode %d sent %llu/%llu idx %zu\n", mode, (unsigned long long)x->sent, (unsigned long long)x->total, x->idx);
    }
}

/* ---- test data ---- */

#define FILE_SIZE (600 * 1024)
static uint8_t file_bytes[FILE_SIZE];
static uint8_t mem_bytes[64 * 1024];

static int make_file(const uint8_t *data, size_t len) {
    char path[] = "/tmp/kc_xfer_testXXXXXX";
    int fd = mkstemp(path);
    if (fd < 0) return -1;
    unlink(path);
    size_t done = 0;
    while (done < len) {
        ssize_t w = write(fd, data + done, len - done);
        if (w <= 0) { close(fd); return -1; }
        done += (size_t)w;
    }
    return fd;
}

/* A random mix of memory and file parts (zero-length ones too); the
 * expected stream goes to exp, its length is returned. */
static size_t random_parts(int fd, kc_xfer_part_t *parts, size_t n, uint8_t *exp) {
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        int kind = (int)(rnd() % 5);
        size_t len = kind == 0 ? 0 : (size_t)(rnd() % (kind == 4 ? 200000 : 3000));
        if (rnd() % 2) { /* memory */
            size_t o = (size_t)(rnd() % (sizeof mem_bytes - 3000));
            if (len > sizeof mem_bytes - o) len = sizeof mem_bytes - o;
            parts[i] = (kc_xfer_part_t){.data = mem_bytes + o, .fd = -1, .len = len};
            memcpy(exp + total, mem_bytes + o, len);
        } else {
            size_t o = (size_t)(rnd() % FILE_SIZE);
            if (len > FILE_SIZE - o) len = FILE_SIZE - o;
            parts[i] = (kc_xfer_part_t){.fd = fd, .offset = (int64_t)o, .len = len};
            memcpy(exp + total, file_bytes + o, len);
        }
        total += len;
    }
    return total;
}

static const int modes[] = {KC_XFER_SENDFILE, KC_XFER_URING, KC_XFER_COPY, KC_XFER_AUTO};

static int mode_usable(int mode) { return mode != KC_XFER_URING || kc_xfer_uring_available(); }

#define MAXP 40
static uint8_t expect_buf[MAXP * 200000];

static void roundtrip(int (*mkpair)(int[2]), int mode, int slow, int *agains_total) {
    int fd = make_file(file_bytes, FILE_SIZE);
    CHECK(fd >= 0);
    kc_xfer_part_t parts[MAXP];
    size_t np = 1 + rnd() % MAXP;
    size_t total = random_parts(fd, parts, np, expect_buf);
    int s[2];
    CHECK_EQ_INT(mkpair(s), 0);
    reader_t r = {.fd = s[1], .cap = total, .slow = slow};
    pthread_t th = start_reader(&r);
    kc_xfer_t x;
    kc_xfer_init(&x, parts, np);
    CHECK_EQ_INT(x.total, total);
    int agains = 0;
    int rc = send_all(s[0], &x, mode, &agains);
    CHECK_EQ_INT(rc, KC_OK);
    CHECK_EQ_INT(x.sent, total);
    CHECK_EQ_INT(x.idx, np);
    finish_reader(&r, th, s[0], expect_buf, total);
    *agains_total += agains;
    close(fd);
}

static void test_roundtrip_all_modes(void) {
    for (size_t m = 0; m < sizeof modes / sizeof *modes; m++) {
        if (!mode_usable(modes[m])) continue;
        int agains = 0;
        for (int i = 0; i < 16; i++) {
            roundtrip(pair_unix, modes[m], i % 2, &agains);
            roundtrip(pair_tcp, modes[m], i % 2, &agains);
        }
        fprintf(stderr, "    %s: %d EAGAIN\n", kc_xfer_mode_name(modes[m]), agains);
        CHECK(agains > 0); /* the small buffers did force partial progress */
    }
}

/* Switching mode between calls resumes at the same byte. */
static void test_mode_switch_midway(void) {
    int fd = make_file(file_bytes, FILE_SIZE);
    kc_xfer_part_t parts[MAXP];
    size_t total = random_parts(fd, parts, MAXP, expect_buf);
    int s[2];
    CHECK_EQ_INT(pair_tcp(s), 0);
    reader_t r = {.fd = s[1], .cap = total, .slow = 1};
    pthread_t th = start_reader(&r);
    kc_xfer_t x;
    kc_xfer_init(&x, parts, MAXP);
    int rc, calls = 0;
    do {
        int mode = modes[calls++ % 4];
        if (!mode_usable(mode)) mode = KC_XFER_COPY;
        rc = kc_xfer_send(s[0], &x, mode);
        if (rc == KC_ERR_AGAIN) {
            struct pollfd p = {.fd = s[0], .events = POLLOUT};
            poll(&p, 1, 1000);
        }
    } while (rc == KC_ERR_AGAIN);
    CHECK_EQ_INT(rc, KC_OK);
    finish_reader(&r, th, s[0], expect_buf, total);
    close(fd);
}

static void test_empty(void) {
    int s[2];
    CHECK_EQ_INT(pair_unix(s), 0);
    kc_xfer_t x;
    kc_xfer_init(&x, NULL, 0);
    for (size_t m = 0; m < 4; m++)
        if (mode_usable(modes[m])) CHECK_EQ_INT(kc_xfer_send(s[0], &x, modes[m]), KC_OK);
    kc_xfer_part_t zero[3] = {{.fd = -1}, {.fd = 5, .len = 0}, {.data = mem_bytes, .fd = -1}};
    kc_xfer_init(&x, zero, 3);
    for (size_t m = 0; m < 4; m++)
        if (mode_usable(modes[m])) CHECK_EQ_INT(kc_xfer_send(s[0], &x, modes[m]), KC_OK);
    CHECK_EQ_INT(x.total, 0);
    kc_xfer_part_t bad = {.data = NULL, .fd = -1, .len = 3};
    kc_xfer_init(&x, &bad, 1);
    CHECK_EQ_INT(kc_xfer_send(s[0], &x, KC_XFER_SENDFILE), KC_ERR_ARG);
    CHECK_EQ_INT(kc_xfer_send(s[0], &x, 99), KC_ERR_ARG);
    CHECK_EQ_INT(kc_xfer_send(-1, &x, KC_XFER_AUTO), KC_ERR_ARG);
    close(s[0]);
    close(s[1]);
}

/* The peer reads a little and closes: KC_ERR_CLOSED, and no SIGPIPE. */
static void test_peer_closes(void) {
    for (size_t m = 0; m < 4; m++) {
        if (!mode_usable(modes[m])) continue;
        for (int tcp = 0; tcp < 2; tcp++) {
            int fd = make_file(file_bytes, FILE_SIZE);
            kc_xfer_part_t parts[4] = {
                {.data = mem_bytes, .fd = -1, .len = 100},
                {.fd = fd, .offset = 0, .len = FILE_SIZE},
                {.data = mem_bytes, .fd = -1, .len = 5000},
                {.fd = fd, .offset = 7, .len = FILE_SIZE - 7},
            };
            int s[2];
            CHECK_EQ_INT(tcp ? pair_tcp(s) : pair_unix(s), 0);
            reader_t r = {.fd = s[1], .cap = 2 * FILE_SIZE, .close_after = 20000};
            pthread_t th = start_reader(&r);
            kc_xfer_t x;
            kc_xfer_init(&x, parts, 4);
            int agains = 0;
            int rc = send_all(s[0], &x, modes[m], &agains);
            CHECK_EQ_INT(rc, KC_ERR_CLOSED);
            CHECK(x.sent < x.total);
            pthread_join(th, NULL);
            /* And again on the dead socket: still CLOSED, still alive. */
            CHECK_EQ_INT(kc_xfer_send(s[0], &x, modes[m]), KC_ERR_CLOSED);
            close(s[0]);
            free(r.buf);
            close(fd);
        }
    }
}

/* The peer is gone before the first byte and the first part is a file
 * part: sendfile/splice get EPIPE and raise SIGPIPE, which must not reach
 * the default action. */
static void test_closed_before_file(void) {
    for (size_t m = 0; m < 4; m++) {
        if (!mode_usable(modes[m])) continue;
        for (int tcp = 0; tcp < 2; tcp++) {
            int fd = make_file(file_bytes, 10000);
            kc_xfer_part_t parts[2] = {{.fd = fd, .offset = 0, .len = 5000},
                                       {.data = mem_bytes, .fd = -1, .len = 10}};
            int s[2];
            CHECK_EQ_INT(tcp ? pair_tcp(s) : pair_unix(s), 0);
            close(s[1]);
            kc_xfer_t x;
            kc_xfer_init(&x, parts, 2);
            int rc = kc_xfer_send(s[0], &x, modes[m]);
            if (tcp && rc == KC_OK) rc = kc_xfer_send(s[0], &x, modes[m]); /* FIN only: first write may pass */
            if (tcp && rc == KC_OK) {
                /* the RST for the first write arrives asynchronously */
                nap_us(20000);
                kc_xfer_init(&x, parts, 2);
                rc = kc_xfer_send(s[0], &x, modes[m]);
            }
            CHECK_EQ_INT(rc, KC_ERR_CLOSED);
            sigset_t pend;
            sigpending(&pend);
            CHECK(!sigismember(&pend, SIGPIPE));
            close(s[0]);
            close(fd);
        }
    }
}

static volatile sig_atomic_t sigpipe_handled;
static void on_sigpipe(int sig) { (void)sig; sigpipe_handled++; }

/* The guard takes a shortcut when SIGPIPE is ignored (no mask change) and
 * the full path for a handler: with either, a closed peer is CLOSED, no
 * SIGPIPE is left pending or delivered, and the thread's mask is as it
 * was. */
static void test_sigpipe_dispositions(void) {
    struct sigaction ign = {.sa_handler = SIG_IGN}, hnd = {.sa_handler = on_sigpipe}, dfl = {.sa_handler = SIG_DFL};
    const struct sigaction *disp[2] = {&ign, &hnd};
    for (int d = 0; d < 2; d++) {
        sigset_t before, after;
        pthread_sigmask(SIG_SETMASK, NULL, &before);
        CHECK_EQ_INT(sigaction(SIGPIPE, disp[d], NULL), 0);
        sigpipe_handled = 0;
        test_closed_before_file();
        CHECK_EQ_INT((int)sigpipe_handled, 0);
        pthread_sigmask(SIG_SETMASK, NULL, &after);
        CHECK_EQ_INT(sigismember(&after, SIGPIPE), sigismember(&before, SIGPIPE));
        CHECK_EQ_INT(sigaction(SIGPIPE, &dfl, NULL), 0);
    }
}

/* A part longer than its file: KC_ERR_IO with EIO after the bytes there are. */
static void test_short_file(void) {
    for (size_t m = 0; m < 4; m++) {
        if (!mode_usable(modes[m])) continue;
        int fd = make_file(file_bytes, 10000);
        kc_xfer_part_t parts[2] = {
            {.data = mem_bytes, .fd = -1, .len = 10},
            {.fd = fd, .offset = 4000, .len = 9000}, /* 6000 exist */
        };
        int s[2];
        CHECK_EQ_INT(pair_unix(s), 0);
        reader_t r = {.fd = s[1], .cap = 20000};
        pthread_t th = start_reader(&r);
        kc_xfer_t x;
        kc_xfer_init(&x, parts, 2);
        int agains = 0;
        errno = 0;
        int rc = send_all(s[0], &x, modes[m], &agains);
        CHECK_EQ_INT(rc, KC_ERR_IO);
        CHECK_EQ_INT(errno, EIO);
        CHECK_EQ_INT(x.sent, 6010);
        close(s[0]);
        pthread_join(th, NULL);
        CHECK_EQ_INT(r.got, 6010);
        if (r.got == 6010) CHECK(memcmp(r.buf + 10, file_bytes + 4000, 6000) == 0);
        free(r.buf);
        close(fd);
    }
}

/* The file shrinks while the transfer waits for the socket. */
static void test_truncated_under_transfer(void) {
    for (size_t m = 0; m < 4; m++) {
        if (!mode_usable(modes[m])) continue;
        int fd = make_file(file_bytes, FILE_SIZE);
        kc_xfer_part_t part = {.fd = fd, .offset = 0, .len = FILE_SIZE};
        int s[2];
        CHECK_EQ_INT(pair_unix(s), 0);
        kc_xfer_t x;
        kc_xfer_init(&x, &part, 1);
        /* nobody reads yet: the socket fills */
        CHECK_EQ_INT(kc_xfer_send(s[0], &x, modes[m]), KC_ERR_AGAIN);
        CHECK(x.sent > 0 && x.sent < FILE_SIZE);
        CHECK_EQ_INT(ftruncate(fd, (off_t)x.sent + 100), 0);
        reader_t r = {.fd = s[1], .cap = FILE_SIZE};
        pthread_t th = start_reader(&r);
        int agains = 0;
        errno = 0;
        int rc = send_all(s[0], &x, modes[m], &agains);
        CHECK_EQ_INT(rc, KC_ERR_IO);
        CHECK_EQ_INT(errno, EIO);
        close(s[0]);
        pthread_join(th, NULL);
        CHECK_EQ_INT(r.got, x.sent);
        free(r.buf);
        close(fd);
    }
}

static void test_uring_disabled(void) {
    kc_xfer_set_uring_disabled(1);
    CHECK_EQ_INT(kc_xfer_uring_available(), 0);
    int s[2];
    CHECK_EQ_INT(pair_unix(s), 0);
    kc_xfer_part_t p = {.data = mem_bytes, .fd = -1, .len = 10};
    kc_xfer_t x;
    kc_xfer_init(&x, &p, 1);
    CHECK_EQ_INT(kc_xfer_send(s[0], &x, KC_XFER_URING), KC_ERR_UNSUPPORTED);
    CHECK_EQ_INT(x.sent, 0);
    int agains = 0;
    roundtrip(pair_tcp, KC_XFER_AUTO, 1, &agains);
    CHECK_EQ_INT(kc_xfer_send(s[0], &x, KC_XFER_AUTO), KC_OK);
    close(s[0]);
    close(s[1]);
    kc_xfer_set_uring_disabled(0);
}

static void test_names(void) {
    CHECK(strcmp(kc_xfer_mode_name(KC_XFER_SENDFILE), "sendfile") == 0);
    CHECK(strcmp(kc_xfer_mode_name(KC_XFER_URING), "io_uring") == 0);
    CHECK(strcmp(kc_xfer_mode_name(KC_XFER_COPY), "copy") == 0);
    CHECK(strcmp(kc_xfer_mode_name(42), "unknown") == 0);
    int a = kc_xfer_auto_mode();
    CHECK(a == KC_XFER_SENDFILE || a == KC_XFER_URING || a == KC_XFER_COPY);
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}
#define TRUN(fn) do { double t0_ = now_s(); RUN(fn); fprintf(stderr, "    %.2fs\n", now_s() - t0_); } while (0)

int main(void) {
    for (size_t i = 0; i < FILE_SIZE; i++) file_bytes[i] = (uint8_t)rnd();
    for (size_t i = 0; i < sizeof mem_bytes; i++) mem_bytes[i] = (uint8_t)rnd();
    fprintf(stderr, "io_uring available: %d, auto: %s\n", kc_xfer_uring_available(),
            kc_xfer_mode_name(kc_xfer_auto_mode()));
    TRUN(test_names);
    TRUN(test_empty);
    TRUN(test_roundtrip_all_modes);
    TRUN(test_mode_switch_midway);
    TRUN(test_peer_closes);
    TRUN(test_closed_before_file);
    TRUN(test_sigpipe_dispositions);
    TRUN(test_short_file);
    TRUN(test_truncated_under_transfer);
    TRUN(test_uring_disabled);
    kc_xfer_thread_cleanup();
    TEST_MAIN_END();
}
