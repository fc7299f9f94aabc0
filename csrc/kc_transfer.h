/* kc_transfer.h - send a response made of memory parts (encoded headers)
 * and file parts (segment slices) to a non-blocking socket without copying
 * file bytes through user space.
 *
 * Modes, chosen per call:
 *   KC_XFER_SENDFILE  writev for runs of memory parts, sendfile(2) for file parts
 *   KC_XFER_URING     io_uring: the same parts submitted as linked
 *                     operations in one io_uring_enter (splice through a
 *                     pipe for file parts); never waits for a full socket
 *   KC_XFER_COPY      pread + send through a user buffer (the TLS path; and
 *                     the baseline the benchmarks compare against)
 *   KC_XFER_AUTO      the fastest one available (kc_xfer_auto_mode())
 * The io_uring mode exists only when the build found liburing or the
 * kernel headers, and the running kernel allows it; else KC_ERR_UNSUPPORTED.
 *
 * kc_xfer_send sends as much as the socket takes and records the progress
 * in the kc_xfer_t; on KC_ERR_AGAIN the caller waits until the socket is
 * writable and calls again with the same kc_xfer_t.
 */
#ifndef KC_TRANSFER_H
#define KC_TRANSFER_H

#include <stddef.h>
#include <stdint.h>

enum { KC_XFER_AUTO = 0, KC_XFER_SENDFILE = 1, KC_XFER_URING = 2, KC_XFER_COPY = 3 };

typedef struct kc_xfer_part {
    const uint8_t *data;   /* memory part: used when fd < 0 */
    int fd;                /* file part when >= 0 */
    int64_t offset;        /* position in the file */
    size_t len;
} kc_xfer_part_t;

typedef struct kc_xfer {
    const kc_xfer_part_t *parts;
    size_t nparts;
    size_t idx;            /* current part */
    size_t off;            /* bytes of the current part already sent */
    uint64_t sent;         /* total bytes sent so far */
    uint64_t total;        /* total bytes of all parts */
} kc_xfer_t;

void kc_xfer_init(kc_xfer_t *x, const kc_xfer_part_t *parts, size_t nparts);
/* KC_OK: everything sent.  KC_ERR_AGAIN: socket full, progress kept.
 * KC_ERR_CLOSED: peer gone (EPIPE/ECONNRESET).  KC_ERR_IO: errno set
 * (a file part shorter than promised is KC_ERR_IO with EIO).
 * Never raises SIGPIPE. */
int kc_xfer_send(int sock, kc_xfer_t *x, int mode);
int kc_xfer_uring_available(void);
int kc_xfer_auto_mode(void);
const char *kc_xfer_mode_name(int mode);
/* Additions (backward compatible):
 * kc_xfer_set_uring_disabled(1) makes kc_xfer_uring_available() return 0
 * from now on (tests; the environment variable KC_NO_URING=1 read at the
 * first check does the same).  kc_xfer_thread_cleanup() frees the calling
 * thread's ring, pipe and copy buffer now rather than at thread exit. */
void kc_xfer_set_uring_disabled(int disabled);
void kc_xfer_thread_cleanup(void);

#endif
