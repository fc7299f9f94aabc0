"""Incremental framing of the Kafka byte stream: int32 size prefix, then that many bytes.

Goals (after h11's ``_receivebuffer.py``): no I/O; the copying is O(n) in the bytes received,
however the stream is split; frames come out as memoryviews that stay valid after later reads;
a size prefix above ``max_frame_size`` (or negative) is refused before anything is allocated
for it, and memory follows the bytes that arrived, not the size a prefix claims.

How: bytes land in a chunk (a bytearray). Whole frames inside the chunk are handed out as
memoryview slices of it; the chunk is never written below its fill mark, so handed-out
frames are never overwritten. When a frame does not fit in the space left, it moves to a new
chunk: one that holds it whole when it is at most ``chunk_size`` (those bytes never move
again), else one of twice what has arrived of it, up to its size (a frame larger than a chunk
is copied O(log size) times as it arrives, at most twice its size in all; a client that
sends a 100 MB prefix and nothing more costs one chunk).

Two ways to feed it:
- ``feed(data) -> list[memoryview]``: copy ``data`` in (one copy).
- ``get_buffer(sizehint) / buffer_updated(nbytes)``: the asyncio ``BufferedProtocol`` pair,
  so the socket reads straight into the chunk (no copy at all for frames read whole).
"""

from __future__ import annotations

import struct

from .errors import FrameTooLargeError

__all__ = ["FrameReader", "DEFAULT_MAX_FRAME_SIZE"]

INITIAL_BUFFER = 512
# Kafka's socket.request.max.bytes default (100 MiB).
DEFAULT_MAX_FRAME_SIZE = 104857600
_SIZE = struct.Struct(">i")


class FrameReader:
    """Split a byte stream into Kafka frames (the bytes after each int32 size prefix)."""

    __slots__ = ("max_frame_size", "chunk_size", "_buf", "_view", "_start", "_end", "_frames_out")

    def __init__(self, max_frame_size: int = DEFAULT_MAX_FRAME_SIZE, chunk_size: int = 65536) -> None:
        if max_frame_size < 0 or chunk_size < 16:
            raise ValueError("max_frame_size must be >= 0 and chunk_size >= 16")
        self.max_frame_size = max_frame_size
        self.chunk_size = chunk_size
        # A new stream starts in a small buffer: a connection that never sends (or sends one small
        # request, such as a long-poll fetch, and waits) holds 512 bytes, not a chunk; the first
        # frame that does not fit moves to a chunk as any frame does.
        self._buf = bytearray(min(chunk_size, INITIAL_BUFFER))
        self._view = memoryview(self._buf)
        self._start = 0  # first byte not yet handed out
        self._end = 0  # fill mark

    @property
    def pending(self) -> int:
        """Bytes received that do not yet form a whole frame."""
        return self._end - self._start

    def _needed(self) -> int:
        """Bytes the current (partial) frame needs in total, size prefix included."""
        avail = self._end - self._start
        if avail < 4:
            return 4
        (size,) = _SIZE.unpack_from(self._buf, self._start)
        self._check_size(size)
        return 4 + size

    def _check_size(self, size: int) -> None:
        if size < 0:
            raise FrameTooLargeError(f"negative frame size {size}")
        if size > self.max_frame_size:
            raise FrameTooLargeError(
                f"frame of {size} bytes exceeds the limit of {self.max_frame_size} bytes"
            )

    def get_buffer(self, sizehint: int = -1) -> memoryview:
        """A writable view to receive into (``BufferedProtocol.get_buffer``)."""
        free = len(self._buf) - self._end
        need = self._needed()
        have = self._end - self._start
        # A frame larger than a chunk gets room for twice what has arrived, up to its size: a size
        # prefix alone (a client that claims 100 MB and sends 24 bytes) costs a chunk, not 100 MB,
        # and a real large frame is copied O(log size) times as it arrives.
        target = need if need <= self.chunk_size else min(need, max(self.chunk_size, 2 * have))
        if free == 0 or self._start + target > len(self._buf):
            # The current frame does not fit in what is left: move it to a chunk that holds it.
            size = max(self.chunk_size, target, sizehint if sizehint > 0 else 0)
            if need > self.chunk_size:
                size = target  # one frame (all of it once target == need: never copied again)
            new = bytearray(size)
            new[:have] = self._view[self._start:self._end]
            self._buf = new
            self._view = memoryview(new)
            self._start = 0
            self._end = have
        return self._view[self._end:]

    def buffer_updated(self, nbytes: int) -> list[memoryview]:
        """Account for ``nbytes`` written into the last ``get_buffer`` view; return whole frames."""
        if nbytes < 0 or self._end + nbytes > len(self._buf):
            raise ValueError("nbytes outside the buffer handed out")
        self._end += nbytes
        frames: list[memoryview] = []
        buf = self._buf
        start = self._start
        end = self._end
        while end - start >= 4:
            (size,) = _SIZE.unpack_from(buf, start)
            self._check_size(size)
            stop = start + 4 + size
            if stop > end:
                break
            frames.append(self._view[start + 4:stop])
            start = stop
        self._start = start
        if start == end and not frames:
            pass
        elif start == end:
            # Everything handed out: start a fresh chunk next time rather than reuse this one's
            # tail (the frames handed out keep the old chunk alive, so no reuse is possible).
            if len(buf) - end < 4096:
                self._buf = bytearray(self.chunk_size)
                self._view = memoryview(self._buf)
                self._start = self._end = 0
        return frames

    def feed(self, data: bytes | bytearray | memoryview) -> list[memoryview]:
        """Copy ``data`` in and return the frames it completes."""
        src = memoryview(data).cast("B") if not isinstance(data, bytes) else memoryview(data)
        frames: list[memoryview] = []
        pos = 0
        total = len(src)
        while pos < total:
            dst = self.get_buffer(total - pos)
            n = min(len(dst), total - pos)
            dst[:n] = src[pos:pos + n]
            pos += n
            frames += self.buffer_updated(n)
        return frames
