/* kc_transfer.c - send memory parts and file parts to a non-blocking socket.
 *
 * Progress lives in the caller's kc_xfer_t (idx/off/sent) and counts only
 * bytes the socket accepted, so any call may stop at any byte and the next
 * call resumes exactly there, in any mode.
 *
 * Three ways to move the bytes (see kc_transfer.h):
 *   sendfile  runs of memory parts in one sendmsg (MSG_MORE when a file part
 *             follows, so the header does not go out as a small packet),
 *             file parts with sendfile(2): page cache -> socket, no copy.
 *   uring     the same stream as one chain of linked io_uring operations per
 *             io_uring_enter: sendmsg for memory runs, and for file parts
 *             splice file -> pipe then pipe -> socket.  Everything is
 *             non-blocking on the socket (MSG_DONTWAIT, O_NONBLOCK socket),
 *             so the wait for completions never waits for the peer.
 *   copy      pread into a per-thread buffer + sendmsg: the baseline, and
 *             the shape the TLS path will take.
 *
 * SIGPIPE: sends pass MSG_NOSIGNAL.  sendfile(2) and splice(2) cannot, and
 * raise SIGPIPE on a closed peer, so around them SIGPIPE is blocked in the
 * calling thread and a signal they raised is consumed with sigtimedwait
 * before the old mask comes back (Python ignores SIGPIPE anyway; C callers
 * and the C tests do not).
 */
#include "kc_transfer.h"

#include "kc_common.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#ifdef KC_HAVE_LIBURING
#include <liburing.h>
#endif

/* Memory parts gathered into one sendmsg; well under IOV_MAX (1024). */
#define KC_XFER_IOV 64
/* Copy mode buffer: big enough that syscall count does not dominate, small
 * enough to stay in L2 between pread and send. */
#define KC_XFER_COPY_BUF (256 * 1024)
/* sendfile(2) moves at most 0x7ffff000 bytes per call anyway. */
#define KC_XFER_SENDFILE_MAX ((size_t)0x7ffff000)

/* ---- per-thread state: copy buffer, io_uring ring and splice pipe ---- */

#define KC_URING_ENTRIES 64

typedef struct kc_xfer_tls {
    uint8_t *buf; /* copy mode buffer, KC_XFER_COPY_BUF bytes */
#ifdef KC_HAVE_LIBURING
    int ring_state;  /* 0 untried, 1 ready, -1 failed */
    struct io_uring ring;
    int pipefd[2];
    size_t pipe_cap; /* bytes the pipe holds (F_GETPIPE_SZ) */
    /* sendmsg arguments must live until the operation completes */
    struct iovec iov[KC_URING_ENTRIES][KC_XFER_IOV];
    struct msghdr msg[KC_URING_ENTRIES];
#endif
} kc_xfer_tls_t;

static pthread_key_t tls_key;
static pthread_once_t tls_once = PTHREAD_ONCE_INIT;
static _Thread_local kc_xfer_tls_t *tls_cur;

static void tls_free(void *p) {
    kc_xfer_tls_t *t = p;
    if (!t) return;
#ifdef KC_HAVE_LIBURING
    if (t->ring_state == 1) {
        io_uring_queue_exit(&t->ring);
        close(t->pipefd[0]);
        close(t->pipefd[1]);
    }
#endif
    free(t->buf);
    free(t);
}

static void tls_key_init(void) { (void)pthread_key_create(&tls_key, tls_free); }

static kc_xfer_tls_t *tls_get(void) {
    if (tls_cur) return tls_cur;
    pthread_once(&tls_once, tls_key_init);
    kc_xfer_tls_t *t = calloc(1, sizeof *t);
    if (!t) return NULL;
    /* The key's destructor frees it when the thread exits. */
    if (pthread_setspecific(tls_key, t) != 0) { free(t); return NULL; }
    tls_cur = t;
    return t;
}

void kc_xfer_thread_cleanup(void) {
    if (!tls_cur) return;
    tls_free(tls_cur);
    tls_cur = NULL;
    (void)pthread_setspecific(tls_key, NULL);
}

/* ---- SIGPIPE guard ---- */

typedef struct { sigset_t old; int active; } sigpipe_guard_t;

static void sigpipe_block(sigpipe_guard_t *g) {
    /* Ignored SIGPIPE (every Python process) is discarded by the kernel
     * when not blocked, so there is nothing to guard: one sigaction query
     * instead of two mask changes per call, which matters for the many
     * small responses a broker sends.  (A thread that switches SIGPIPE
     * back to SIG_DFL while another is inside a send is not covered.) */
    struct sigaction sa;
    if (sigaction(SIGPIPE, NULL, &sa) == 0 && !(sa.sa_flags & SA_SIGINFO) && sa.sa_handler == SIG_IGN) {
        g->active = 0;
        return;
    }
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, SIGPIPE);
    g->active = pthread_sigmask(SIG_BLOCK, &s, &g->old) == 0 && !sigismember(&g->old, SIGPIPE);
}

static void sigpipe_unblock(sigpipe_guard_t *g, int rc) {
    if (!g->active) return; /* the caller blocks SIGPIPE itself: leave it */
    if (rc == KC_ERR_CLOSED) {
        /* EPIPE from sendfile/splice left a SIGPIPE pending on this thread:
         * take it before unblocking, or it would kill the process. */
        sigset_t s;
        sigemptyset(&s);
        sigaddset(&s, SIGPIPE);
        struct timespec zero = {0, 0};
        int saved = errno;
        while (sigtimedwait(&s, NULL, &zero) == SIGPIPE) {}
        errno = saved;
    }
    pthread_sigmask(SIG_SETMASK, &g->old, NULL);
}

/* ---- progress ---- */

static void skip_empty(kc_xfer_t *x) {
    while (x->idx < x->nparts && x->off >= x->parts[x->idx].len) {
        x->idx++;
        x->off = 0;
    }
}

/* Record n bytes accepted by the socket, crossing part boundaries. */
static void advance(kc_xfer_t *x, size_t n) {
    x->sent += n;
    while (n > 0 && x->idx < x->nparts) {
        size_t left = x->parts[x->idx].len - x->off;
        if (n < left) { x->off += n; return; }
        n -= left;
        x->idx++;
        x->off = 0;
    }
    skip_empty(x);
}

static int errno_code(int e) {
    if (e == EAGAIN || e == EWOULDBLOCK) return KC_ERR_AGAIN;
    if (e == EPIPE || e == ECONNRESET) return KC_ERR_CLOSED;
    errno = e;
    return KC_ERR_IO;
}

/* Is there a non-empty file part after the memory run starting at i? */
static int file_follows(const kc_xfer_t *x, size_t i) {
    for (; i < x->nparts; i++) {
        if (x->parts[i].len == 0) continue;
        if (x->parts[i].fd >= 0) return 1;
    }
    return 0;
}

/* Gather the memory run at the current position into iov; returns count
 * and sets *next to the index of the first part not gathered. */
static int gather_memory(const kc_xfer_t *x, size_t idx, size_t off, struct iovec *iov, int max,
                         size_t *next) {
    int n = 0;
    size_t i = idx;
    for (; i < x->nparts && n < max; i++) {
        const kc_xfer_part_t *p = &x->parts[i];
        if (p->len == 0) continue;
        if (p->fd >= 0) break;
        size_t o = i == idx ? off : 0;
        iov[n].iov_base = (void *)(p->data + o);
        iov[n].iov_len = p->len - o;
        n++;
    }
    *next = i;
    return n;
}

/* One sendmsg of the memory run at the current position. */
static int send_memory_run(int sock, kc_xfer_t *x, int more_file) {
    struct iovec iov[KC_XFER_IOV];
    size_t next;
    int n = gather_memory(x, x->idx, x->off, iov, KC_XFER_IOV, &next);
    struct msghdr m = {.msg_iov = iov, .msg_iovlen = (size_t)n};
    int flags = MSG_NOSIGNAL | MSG_DONTWAIT;
    /* A file part comes next: let TCP merge the header with its bytes. */
    if (more_file || next < x->nparts) flags |= MSG_MORE;
    for (;;) {
        ssize_t r = sendmsg(sock, &m, flags);
        if (r >= 0) { advance(x, (size_t)r); return KC_OK; }
        if (errno != EINTR) return errno_code(errno);
    }
}

static int send_file_part(int sock, kc_xfer_t *x) {
    const kc_xfer_part_t *p = &x->parts[x->idx];
    for (;;) {
        size_t left = p->len - x->off;
        if (left > KC_XFER_SENDFILE_MAX) left = KC_XFER_SENDFILE_MAX;
        off_t pos = (off_t)(p->offset + (int64_t)x->off);
        ssize_t r = sendfile(sock, p->fd, &pos, left);
        if (r > 0) { advance(x, (size_t)r); return KC_OK; }
        if (r == 0) { errno = EIO; return KC_ERR_IO; } /* file ends before the part */
        if (errno != EINTR) return errno_code(errno);
    }
}

static int has_file_part(const kc_xfer_t *x) {
    for (size_t i = x->idx; i < x->nparts; i++)
        if (x->parts[i].fd >= 0 && x->parts[i].len > 0) return 1;
    return 0;
}

static int xfer_sendfile(int sock, kc_xfer_t *x) {
    sigpipe_guard_t g = {.active = 0};
    int guard = has_file_part(x);
    if (guard) sigpipe_block(&g);
    int rc = KC_OK;
    skip_empty(x);
    while (rc == KC_OK && x->idx < x->nparts) {
        if (x->parts[x->idx].fd < 0)
            rc = send_memory_run(sock, x, file_follows(x, x->idx));
        else
            rc = send_file_part(sock, x);
    }
    if (guard) sigpipe_unblock(&g, rc);
    return rc;
}

/* ---- copy mode ---- */

static int xfer_copy(int sock, kc_xfer_t *x) {
    kc_xfer_tls_t *t = tls_get();
    if (!t) return KC_ERR_NOMEM;
    if (!t->buf && !(t->buf = malloc(KC_XFER_COPY_BUF))) return KC_ERR_NOMEM;
    skip_empty(x);
    while (x->idx < x->nparts) {
        struct iovec iov[KC_XFER_IOV + 1];
        size_t next = x->idx;
        int n = 0;
        if (x->parts[x->idx].fd < 0) n = gather_memory(x, x->idx, x->off, iov, KC_XFER_IOV, &next);
        /* Put the start of the next file part in the same sendmsg, so the
         * header and the data leave together. */
        while (next < x->nparts && x->parts[next].len == 0) next++;
        int more = 0;
        size_t after = next; /* first part not in this sendmsg */
        if (next < x->nparts && x->parts[next].fd >= 0) {
            const kc_xfer_part_t *p = &x->parts[next];
            size_t o = next == x->idx ? x->off : 0;
            size_t want = p->len - o;
            if (want > KC_XFER_COPY_BUF) { want = KC_XFER_COPY_BUF; more = 1; }
            ssize_t r;
            do r = pread(p->fd, t->buf, want, (off_t)(p->offset + (int64_t)o));
            while (r < 0 && errno == EINTR);
            if (r < 0) return KC_ERR_IO; /* errno from pread */
            if (r == 0) {
                /* Memory before it can still go; the next call reports EIO. */
                if (n == 0) { errno = EIO; return KC_ERR_IO; }
            } else {
                iov[n].iov_base = t->buf;
                iov[n].iov_len = (size_t)r;
                n++;
                if ((size_t)r < p->len - o) more = 1;
                else after = next + 1;
            }
        }
        for (size_t i = after; !more && i < x->nparts; i++) more = x->parts[i].len > 0;
        size_t expect = 0;
        for (int i = 0; i < n; i++) expect += iov[i].iov_len;
        struct msghdr m = {.msg_iov = iov, .msg_iovlen = (size_t)n};
        int flags = MSG_NOSIGNAL | MSG_DONTWAIT | (more ? MSG_MORE : 0);
        ssize_t s;
        do s = sendmsg(sock, &m, flags);
        while (s < 0 && errno == EINTR);
        if (s < 0) return errno_code(errno);
        advance(x, (size_t)s);
        /* Bytes read but not accepted are read again next time. */
        if ((size_t)s < expect) return KC_ERR_AGAIN;
    }
    return KC_OK;
}

/* ---- io_uring mode ---- */

static atomic_int uring_forced_off;

void kc_xfer_set_uring_disabled(int disabled) { atomic_store(&uring_forced_off, disabled != 0); }

#ifdef KC_HAVE_LIBURING

static atomic_int uring_state; /* 0 unknown, 1 available, -1 not */

static int uring_probe(void) {
    const char *env = getenv("KC_NO_URING");
    if (env && *env && strcmp(env, "0") != 0) return -1;
    struct io_uring r;
    /* Fails on old kernels, with kernel.io_uring_disabled, under seccomp. */
    if (io_uring_queue_init(4, &r, 0) != 0) return -1;
    struct io_uring_probe *p = io_uring_get_probe_ring(&r);
    int ok = p && io_uring_opcode_supported(p, IORING_OP_SPLICE) &&
             io_uring_opcode_supported(p, IORING_OP_SENDMSG);
    if (p) io_uring_free_probe(p);
    io_uring_queue_exit(&r);
    return ok ? 1 : -1;
}

int kc_xfer_uring_available(void) {
    if (atomic_load(&uring_forced_off)) return 0;
    int s = atomic_load(&uring_state);
    if (s == 0) {
        s = uring_probe();
        atomic_store(&uring_state, s);
    }
    return s == 1;
}

static int ring_get(kc_xfer_tls_t *t) {
    if (t->ring_state == 1) return KC_OK;
    if (t->ring_state < 0) return KC_ERR_UNSUPPORTED;
    t->ring_state = -1;
    if (io_uring_queue_init(KC_URING_ENTRIES, &t->ring, 0) != 0) return KC_ERR_UNSUPPORTED;
    if (pipe2(t->pipefd, O_NONBLOCK | O_CLOEXEC) != 0) {
        io_uring_queue_exit(&t->ring);
        return KC_ERR_UNSUPPORTED;
    }
    /* 1 MiB is the unprivileged maximum by default; a bigger pipe means
     * fewer splice pairs per file part.  Keep whatever the kernel grants. */
    (void)fcntl(t->pipefd[1], F_SETPIPE_SZ, 1 << 20);
    int cap = fcntl(t->pipefd[1], F_GETPIPE_SZ);
    t->pipe_cap = cap > 0 ? (size_t)cap : 65536;
    t->ring_state = 1;
    return KC_OK;
}

/* After a failed submit: drop the ring and pipe; the next call makes new
 * ones (the kernel cancels anything still queued when the ring closes). */
static void ring_reset(kc_xfer_tls_t *t) {
    if (t->ring_state != 1) return;
    io_uring_queue_exit(&t->ring);
    close(t->pipefd[0]);
    close(t->pipefd[1]);
    t->ring_state = 0;
}

/* Throw away what is left in the pipe: those bytes were never counted as
 * sent, so the next call splices them from the file again. */
static void pipe_discard(kc_xfer_tls_t *t) {
    char scratch[4096];
    uint8_t *b = t->buf ? t->buf : (uint8_t *)scratch;
    size_t cap = t->buf ? KC_XFER_COPY_BUF : sizeof scratch;
    int saved = errno; /* keep the cause of the error being returned */
    while (read(t->pipefd[0], b, cap) > 0) {}
    errno = saved;
}

enum { OP_SEND, OP_SPLICE_IN, OP_SPLICE_OUT };
typedef struct { int kind; size_t len; } uop_t;

static int xfer_uring(int sock, kc_xfer_t *x) {
    if (!kc_xfer_uring_available()) return KC_ERR_UNSUPPORTED;
    kc_xfer_tls_t *t = tls_get();
    if (!t) return KC_ERR_NOMEM;
    int rc = ring_get(t);
    if (rc != KC_OK) return rc;
    sigpipe_guard_t g;
    sigpipe_block(&g);
    uop_t ops[KC_URING_ENTRIES];
    skip_empty(x);
    while (rc == KC_OK && x->idx < x->nparts) {
        /* Build one chain from the current position without touching x. */
        int nops = 0;
        size_t idx = x->idx, off = x->off;
        struct io_uring_sqe *last = NULL;
        while (idx < x->nparts && nops + 2 <= KC_URING_ENTRIES) {
            const kc_xfer_part_t *p = &x->parts[idx];
            if (p->len == 0) { idx++; off = 0; continue; }
            struct io_uring_sqe *sqe;
            if (p->fd < 0) {
                size_t next;
                struct iovec *iov = t->iov[nops];
                int n = gather_memory(x, idx, off, iov, KC_XFER_IOV, &next);
                size_t len = 0;
                for (int i = 0; i < n; i++) len += iov[i].iov_len;
                struct msghdr *m = &t->msg[nops];
                memset(m, 0, sizeof *m);
                m->msg_iov = iov;
                m->msg_iovlen = (size_t)n;
                sqe = io_uring_get_sqe(&t->ring);
                /* WAITALL + DONTWAIT: a short send completes with the bytes
                 * it moved and fails the link, so nothing after it runs;
                 * DONTWAIT also keeps io_uring from arming a poll and
                 * waiting for the socket. */
                io_uring_prep_sendmsg(sqe, sock, m,
                                      MSG_NOSIGNAL | MSG_DONTWAIT | MSG_WAITALL |
                                          (next < x->nparts ? MSG_MORE : 0));
                sqe->user_data = (uint64_t)nops;
                sqe->flags |= IOSQE_IO_LINK;
                ops[nops++] = (uop_t){OP_SEND, len};
                idx = next;
                off = 0;
            } else {
                /* At most one pipe's worth; an unaligned start needs one
                 * more page slot in the pipe, so take it off the chunk. */
                size_t pos = (size_t)(p->offset + (int64_t)off);
                size_t chunk = t->pipe_cap - (pos & 4095);
                if (chunk > p->len - off) chunk = p->len - off;
                sqe = io_uring_get_sqe(&t->ring);
                io_uring_prep_splice(sqe, p->fd, (int64_t)pos, t->pipefd[1], -1, (unsigned)chunk,
                                     SPLICE_F_NONBLOCK);
                sqe->user_data = (uint64_t)nops;
                sqe->flags |= IOSQE_IO_LINK;
                ops[nops++] = (uop_t){OP_SPLICE_IN, chunk};
                off += chunk;
                if (off >= p->len) { idx++; off = 0; }
                /* The socket is O_NONBLOCK, so this never waits for it; a
                 * short splice fails the link like a short send. */
                sqe = io_uring_get_sqe(&t->ring);
                io_uring_prep_splice(sqe, t->pipefd[0], -1, sock, -1, (unsigned)chunk,
                                     SPLICE_F_NONBLOCK | (idx < x->nparts ? SPLICE_F_MORE : 0));
                sqe->user_data = (uint64_t)nops;
                sqe->flags |= IOSQE_IO_LINK;
                ops[nops++] = (uop_t){OP_SPLICE_OUT, chunk};
            }
            last = sqe;
        }
        if (!last) break; /* only empty parts were left */
        last->flags &= (uint8_t)~IOSQE_IO_LINK;
        int sr;
        do sr = io_uring_submit_and_wait(&t->ring, (unsigned)nops);
        while (sr == -EINTR);
        if (sr < 0) { rc = errno_code(-sr); ring_reset(t); break; }
        /* Operations the kernel did not take count as never run. */
        int res[KC_URING_ENTRIES];
        for (int i = 0; i < nops; i++) res[i] = -ECANCELED;
        for (int got = 0; got < sr;) {
            struct io_uring_cqe *cqe;
            int w = io_uring_wait_cqe(&t->ring, &cqe);
            if (w == -EINTR) continue;
            if (w < 0) { rc = errno_code(-w); ring_reset(t); goto out; }
            if (cqe->user_data < (uint64_t)nops) res[cqe->user_data] = cqe->res;
            io_uring_cqe_seen(&t->ring, cqe);
            got++;
        }
        if (sr < nops) ring_reset(t); /* drops the unsubmitted tail */
        /* Walk the chain in order: progress is what reached the socket. */
        size_t in_pipe = 0;
        int i = 0;
        for (; i < nops && rc == KC_OK; i++) {
            int r = res[i];
            if (r == -ECANCELED) break; /* an earlier op cut the chain, or not submitted */
            if (ops[i].kind == OP_SPLICE_IN) {
                if (r == 0) { errno = EIO; rc = KC_ERR_IO; break; } /* file too short */
                if (r < 0) { rc = errno_code(-r); break; }
                in_pipe = (size_t)r;
                if ((size_t)r < ops[i].len) break; /* short: flush below, resume */
                continue;
            }
            if (r < 0) { rc = errno_code(-r); break; }
            advance(x, (size_t)r);
            if (ops[i].kind == OP_SPLICE_OUT) in_pipe -= (size_t)r;
            if ((size_t)r < ops[i].len) { rc = KC_ERR_AGAIN; break; } /* socket full */
        }
        if (in_pipe > 0) {
            /* A completed splice-in whose bytes did not all leave: send
             * them now (the socket may have room), else drop them. */
            if (rc == KC_OK) {
                ssize_t s;
                do s = splice(t->pipefd[0], NULL, sock, NULL, in_pipe, SPLICE_F_NONBLOCK);
                while (s < 0 && errno == EINTR);
                if (s > 0) { advance(x, (size_t)s); in_pipe -= (size_t)s; }
                if (s < 0) rc = errno_code(errno);
                else if (in_pipe > 0) rc = KC_ERR_AGAIN;
            }
            if (in_pipe > 0) pipe_discard(t);
        } else if (i < nops && t->ring_state == 1) {
            /* The chain was cut: nothing after the cut ran, so the pipe is
             * empty; make sure, since stale bytes would corrupt the next
             * stream (one read on the error path only). */
            pipe_discard(t);
        }
        if (t->ring_state != 1) { if (rc == KC_OK) rc = KC_ERR_AGAIN; break; }
    }
out:
    sigpipe_unblock(&g, rc);
    return rc;
}

#else /* !KC_HAVE_LIBURING */

int kc_xfer_uring_available(void) { return 0; }

static int xfer_uring(int sock, kc_xfer_t *x) {
    (void)sock;
    (void)x;
    return KC_ERR_UNSUPPORTED;
}

#endif

/* ---- public ---- */

void kc_xfer_init(kc_xfer_t *x, const kc_xfer_part_t *parts, size_t nparts) {
    x->parts = parts;
    x->nparts = nparts;
    x->idx = 0;
    x->off = 0;
    x->sent = 0;
    x->total = 0;
    for (size_t i = 0; i < nparts; i++) x->total += parts[i].len;
}

int kc_xfer_auto_mode(void) {
    /* sendfile.  benches/test_bench_transfer.py (64 MiB file range to a
     * loopback TCP socket drained by a reader process; 2-core VM shared
     * with other builds, kernel 6.18, 10 rounds; copy = 256 KiB buffer;
     * CPU s/GB; "both" = sending process + reader process):
     *                     MB/s  sender thread  sender process  reader  both
     *   copy     bbr      3127      0.151          0.150        0.108  0.259
     *   sendfile bbr      2272      0.137          0.136        0.190  0.326
     *   io_uring bbr      3860      0.007          0.191        0.068  0.259
     *   copy     cubic    6077      0.092          0.091        0.054  0.146
     *   sendfile cubic    2642      0.060          0.060        0.163  0.222
     *   io_uring cubic    2589      0.024          0.095        0.163  0.258
     * Earlier runs: copy 0.163-0.166, sendfile 0.146-0.153, io_uring
     * process 0.198-0.221 (sender, bbr).  Run to run the sender figure
     * swings by 2x, because over loopback the sending thread also runs the
     * receiver's TCP input in softirq whenever the reader is asleep; bbr
     * without an fq qdisc adds a pacing hrtimer per packet (~0.08 s/GB)
     * in every mode.  With those fixed costs, what sendfile saves (two
     * memory copies) shows as 0.9x copy's sender CPU under bbr and ~0.65x
     * under cubic; the reader then copies cold page-cache pages instead of
     * freshly written skbs and pays it back, so on loopback the sum is no
     * better.  On a NIC the saving stays with the sender.  io_uring moves
     * bytes fast but its splices always run in io-wq kernel threads, so
     * the process pays more per GB than sendfile on a second core.  A
     * broker with many connections is CPU bound, so AUTO takes the mode
     * with the least sender CPU per byte.
     * Not used: MSG_ZEROCOPY / IORING_OP_SEND_ZC from an mmapped range.
     * Nothing waits for the peer there (the pages are read-only page
     * cache, pinned by the kernel until ACKed), but loopback must copy
     * zerocopy frags for a local receiver and reported COPIED for ~70% of
     * sends: measured 0.21-0.29 s/GB sender, the worst mode here; and it
     * needs an mmap per segment plus error-queue draining per call.
     * SO_SNDBUF: do not set it; autotuning already reaches tcp_wmem's max
     * (4 MiB here), sendfile moves 1-16 MB per call before EAGAIN, and a
     * fixed SO_SNDBUF turns autotuning off. */
    return KC_XFER_SENDFILE;
}

const char *kc_xfer_mode_name(int mode) {
    switch (mode) {
    case KC_XFER_AUTO: return "auto";
    case KC_XFER_SENDFILE: return "sendfile";
    case KC_XFER_URING: return "io_uring";
    case KC_XFER_COPY: return "copy";
    default: return "unknown";
    }
}

int kc_xfer_send(int sock, kc_xfer_t *x, int mode) {
    if (!x || (x->nparts && !x->parts) || sock < 0) return KC_ERR_ARG;
    if (x->idx > x->nparts) return KC_ERR_ARG;
    for (size_t i = x->idx; i < x->nparts; i++)
        if (x->parts[i].fd < 0 && x->parts[i].len && !x->parts[i].data) return KC_ERR_ARG;
    if (mode == KC_XFER_AUTO) mode = kc_xfer_auto_mode();
    switch (mode) {
    case KC_XFER_SENDFILE: return xfer_sendfile(sock, x);
    case KC_XFER_URING: return xfer_uring(sock, x);
    case KC_XFER_COPY: return xfer_copy(sock, x);
    default: return KC_ERR_ARG;
    }
}
