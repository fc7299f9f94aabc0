# cython: language_level=3
"""Send a response made of memory parts and file slices to a socket.

``Transfer(parts)`` holds the parts for as long as it lives: bytes-like
parts through a held Py_buffer (so the memory cannot move or be freed),
file parts as (fd, position, length) plus a reference to the object that
owns the fd (a ``FileSlice``).  An unpinned FileSlice's fd is pinned only
while its turn to be sent is near (PIN_WINDOW slices at a time) and
unpinned once sent: the segment fd pool (kc_segment.h) may close it
otherwise, and holding every slice's fd for a whole response would not fit
the cap.  ``send`` releases the GIL around
kc_xfer_send (csrc/kc_transfer.c), which moves the bytes with writev +
sendfile, io_uring or pread + send; no record byte passes through Python.
"""

from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_CheckBuffer, PyObject_GetBuffer
from cpython.mem cimport PyMem_Free, PyMem_Malloc
from libc.errno cimport errno
from libc.stdint cimport int64_t, uint8_t
from libc.string cimport memset

from kafka_core.kc_common cimport KC_ERR_AGAIN, KC_ERR_IO, KC_OK, kc_strerror
from kafka_core.kc_transfer cimport (
    kc_xfer_auto_mode,
    kc_xfer_init,
    kc_xfer_mode_name,
    kc_xfer_part_t,
    kc_xfer_send,
    kc_xfer_set_uring_disabled,
    kc_xfer_t,
    kc_xfer_uring_available,
)

from kafka_core._log cimport FileSlice

from kafka_core._errors import error_for

# FileSlice parts pinned at once (kc_log.h: a slice's fd is open only while
# pinned): a fetch response to 5,000 partitions holds 64 segment fds while it
# is sent, not 5,000, so the process-wide cap on open segment files holds.
# 64 slices are 64 sendfile calls: the pin/unpin per window costs nothing
# beside them, and MSG_MORE is lost only at a window's end.
cdef Py_ssize_t PIN_WINDOW = 64

XFER_AUTO = 0
XFER_SENDFILE = 1
XFER_URING = 2
XFER_COPY = 3


def uring_available():
    """True when io_uring works here (built with liburing, allowed by the kernel)."""
    return kc_xfer_uring_available() != 0


def auto_mode():
    """The mode XFER_AUTO uses."""
    return kc_xfer_auto_mode()


def mode_name(int mode):
    """"sendfile", "io_uring", "copy", "auto" or "unknown"."""
    return kc_xfer_mode_name(mode).decode()


def set_uring_disabled(bint disabled):
    """Make uring_available() False from now on (tests; KC_NO_URING=1 does it at start)."""
    kc_xfer_set_uring_disabled(disabled)


cdef class Transfer:
    """One response: a sequence of memory parts and file parts sent in order.

    Each part is a bytes-like object, a tuple ``(fd, position, length)`` or an
    object with integer attributes ``fd``, ``position``, ``length`` (a
    ``FileSlice``).  The Transfer keeps every part object alive.
    """

    cdef kc_xfer_t _x
    cdef kc_xfer_part_t *_parts
    cdef Py_buffer *_views
    cdef Py_ssize_t _nviews
    cdef list _keep
    cdef list _lazy         # per part: the FileSlice to pin while it is sent, or None
    cdef char *_mine        # per part: 1 while this Transfer holds its pin
    cdef Py_ssize_t _n, _lo  # parts; parts below _lo are unpinned
    cdef bint _busy

    def __cinit__(self, parts):
        cdef list items = list(parts)
        cdef Py_ssize_t n = len(items), i
        cdef kc_xfer_part_t *p
        cdef object fd, pos, length
        cdef FileSlice fs
        self._keep = items
        self._lazy = [None] * n
        self._n = n
        self._parts = <kc_xfer_part_t *>PyMem_Malloc((n if n else 1) * sizeof(kc_xfer_part_t))
        self._views = <Py_buffer *>PyMem_Malloc((n if n else 1) * sizeof(Py_buffer))
        self._mine = <char *>PyMem_Malloc(n if n else 1)
        if self._parts == NULL or self._views == NULL or self._mine == NULL:
            raise MemoryError()
        memset(self._parts, 0, (n if n else 1) * sizeof(kc_xfer_part_t))
        memset(self._mine, 0, n if n else 1)
        for i in range(n):
            obj = items[i]
            p = &self._parts[i]
            if isinstance(obj, FileSlice) and not obj.pinned and obj.length > 0:
                fs = <FileSlice>obj
                p.data = NULL
                p.fd = -1           # pinned by _window() when its turn comes
                p.offset = <int64_t>fs.position
                p.len = <size_t>fs.length
                self._lazy[i] = fs
                continue
            if isinstance(obj, tuple):
                if len(obj) != 3:
                    raise TypeError(f"part {i}: a file part tuple is (fd, position, length), got {len(obj)} items")
                fd, pos, length = obj
            elif PyObject_CheckBuffer(obj):
                PyObject_GetBuffer(obj, &self._views[self._nviews], PyBUF_SIMPLE)
                self._nviews += 1
                p.data = <const uint8_t *>self._views[self._nviews - 1].buf
                p.fd = -1
                p.offset = 0
                p.len = <size_t>self._views[self._nviews - 1].len
                continue
            else:
                try:
                    fd, pos, length = obj.fd, obj.position, obj.length
                except AttributeError:
                    raise TypeError(
                        f"part {i}: expected a bytes-like object, a (fd, position, length) tuple or a "
                        f"FileSlice, got {type(obj).__name__}"
                    ) from None
            if fd < 0 or pos < 0 or length < 0:
                raise ValueError(f"part {i}: fd={fd} position={pos} length={length} must all be >= 0")
            p.data = NULL
            p.fd = <int>fd
            p.offset = <int64_t>pos
            p.len = <size_t>length
        kc_xfer_init(&self._x, self._parts, <size_t>n)
        self._x.nparts = 0   # _window() opens the parts up to the next unpinned slice

    cdef int _window(self) except -1:
        """Unpin the slices already sent, pin up to PIN_WINDOW from the current
        part on, and let kc_xfer_send see the parts up to the first one unpinned."""
        cdef Py_ssize_t i, end, files = 0
        cdef FileSlice fs
        for i in range(self._lo, <Py_ssize_t>self._x.idx):
            if self._mine[i]:
                (<FileSlice>self._lazy[i]).unpin_fd()
                self._mine[i] = 0
                self._parts[i].fd = -1
        self._lo = <Py_ssize_t>self._x.idx
        end = self._lo
        while end < self._n:
            obj = self._lazy[end]
            if obj is not None:
                if files == PIN_WINDOW:
                    break
                files += 1
                if not self._mine[end]:
                    fs = <FileSlice>obj
                    self._parts[end].fd = fs.pin_fd()
                    self._mine[end] = 1
            end += 1
        self._x.nparts = <size_t>end
        return 0

    cdef void _unpin_all(self) noexcept:
        cdef Py_ssize_t i
        if self._mine == NULL or self._lazy is None:
            return
        for i in range(self._lo, self._n):
            if self._mine[i]:
                (<FileSlice>self._lazy[i]).unpin_fd()
                self._mine[i] = 0
        self._lo = self._n

    def __dealloc__(self):
        cdef Py_ssize_t i
        self._unpin_all()
        if self._views != NULL:
            for i in range(self._nviews):
                PyBuffer_Release(&self._views[i])
            PyMem_Free(self._views)
        PyMem_Free(self._parts)
        PyMem_Free(self._mine)

    def send(self, sock, int mode=XFER_AUTO):
        """Send as much as the socket takes.

        True when everything is sent; False when the socket is full (wait
        until it is writable and call again).  ``sock`` is a file descriptor
        or an object with ``fileno()``.  Raises ClosedError when the peer is
        gone, LogIOError (an OSError) for I/O errors, EIO when a file is
        shorter than its part, UnsupportedError for XFER_URING without io_uring.
        """
        cdef int fd = sock if isinstance(sock, int) else sock.fileno()
        cdef int rc, err = 0
        if self._busy:
            raise RuntimeError("Transfer.send is already running in another thread")
        self._busy = True
        try:
            while True:
                self._window()
                with nogil:
                    rc = kc_xfer_send(fd, &self._x, mode)
                    if rc == KC_ERR_IO:
                        err = errno
                if rc != KC_OK or <Py_ssize_t>self._x.nparts == self._n:
                    break
        finally:
            self._busy = False
        if rc == KC_OK:
            self._unpin_all()
            return True
        if rc == KC_ERR_AGAIN:
            return False
        detail = (f"mode {kc_xfer_mode_name(mode).decode()}, part {self._x.idx} of {self._n}, "
                  f"sent {self._x.sent} of {self._x.total} bytes")
        raise error_for(rc, kc_strerror(rc).decode(), detail, err)

    @property
    def sent(self):
        """Bytes the socket has accepted so far."""
        return self._x.sent

    @property
    def total(self):
        """Bytes of all parts."""
        return self._x.total

    @property
    def remaining(self):
        return self._x.total - self._x.sent

    @property
    def done(self):
        """True once every byte is sent."""
        return self._x.sent == self._x.total

    def __len__(self):
        return len(self._keep)

    def __repr__(self):
        return f"<Transfer parts={len(self._keep)} sent={self._x.sent}/{self._x.total}>"
