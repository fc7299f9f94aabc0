"""Listening sockets and per-connection request/response handling.

Each connection owns its non-blocking socket directly (``loop.add_reader`` /
``add_writer``, which uvloop supports) rather than an asyncio transport:
responses holding file slices go out through ``kafka_core.Transfer``
(writev + sendfile on the socket fd), which a transport could not share.

Receiving: ``kafka_protocol.FrameReader`` (the framing the client uses
too) owns the receive buffer; the socket reads straight into it
(``get_buffer``/``buffer_updated``), and frames come out as memoryview
slices of chunks that are never reused once handed out, so a request's
``records`` stay slices of the received bytes (no copy) and the core can
assign offsets in place.  Request headers are decoded by
``kafka_protocol.decode_request_header`` and responses framed by
``encode_response_parts``: the broker has no wire code of its own.

Errors: a request that cannot be served raises ``ProtocolError`` (from the
decoders, the dispatcher, or a handler via ``CloseConnection``) carrying the
Kafka error code it earned; as Kafka's SocketServer does, the connection is
then closed, with a warning that names the code.  Where Kafka answers
instead (ApiVersions at a version it does not serve), the dispatcher
returns an answer rather than raising.

Ordering: every request gets a slot in a FIFO at dispatch; handlers run
their state-changing part synchronously at dispatch (so appends happen in
request order), may finish later (long-poll fetch, acks=all), and a
response leaves only when all earlier ones have.  With too many requests
in flight the connection stops reading until the queue drains.

Bounded buffering (issue 16): a client that pipelines requests and never reads its responses
must not make the broker hold them all.  Kafka mutes such a channel (one request at a time per
connection, the next read only once the response is sent); here a connection stops taking
requests once ``MAX_INFLIGHT`` are queued or the responses ready but unsent behind the one being
sent exceed ``MAX_UNSENT`` bytes, file slices counted at their length like buffered bytes (a
slice costs no memory, but the bound is on what the client is owed), and takes them again when
its queue has drained to half of both.  Frames already received when the bound is reached wait,
undecoded, in ``backlog`` (memoryviews of the receive buffer: no copy); so the bound holds even
for the hundreds of small requests one 64 KiB read may complete.

Idle connections (``connections.max.idle.ms``, as Kafka's Selector expires
them): one periodic sweep per server, not a timer per connection or per
request.  The sweep advances a tick counter every ``idle/4``; socket
activity (bytes received or sent) stamps the connection with the current
tick, and a connection whose stamp is more than ``idle`` old, with no
request still in flight, is closed.  So a connection goes after between
``idle`` and ``1.25 * idle`` without traffic, never before ``idle``.

Connection limits (Kafka's ConnectionQuotas): at accept, a peer address that already holds
``max.connections.per.ip`` connections (or its ``max.connections.per.ip.overrides`` count), or a
broker already holding ``max.connections``, has the new socket closed before any byte is read;
the refusal is logged at most every 10 s.  Counts follow opens and closes, O(1) each.
Connection-rate quotas (KIP-612, ``connection_creation_rate`` of an ``ip`` entity, quotas.py):
a connection over its address's rate is held unread and closed when its throttle time is up
(Kafka's Acceptor keeps such sockets as DelayedCloseSocket), so the client waits instead of
reconnecting at once.  Over ``max.connection.creation.rate`` (broker-wide, or a listener's
``listener.name.<l>.max.connection.creation.rate``) the listener instead stops accepting for the
throttle time and then serves the connection it holds, as Kafka's acceptor waits for a slot.
"""

from __future__ import annotations

import asyncio
import errno
import functools
import logging
import os
import socket
import ssl
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable
from typing import Any, TypeAlias

from kafka_protocol import (
    API_NAMES,
    FrameReader,
    Message,
    RequestHeader,
    decode_request_header,
    encode_response_parts,
)
from kafka_protocol.errors import ErrorCode, FrameTooLargeError, ProtocolError

import kafka_core

from .config import Listener
from .metrics import RequestMetrics

log = logging.getLogger("kafka_broker.server")

CHUNK = 64 * 1024
MAX_INFLIGHT = 128          # queued requests per connection before it stops reading
MAX_UNSENT = 4 << 20        # bytes of ready, unsent responses per connection before it stops reading
_BUFFER_TYPES = (bytes, bytearray, memoryview)

# How responses holding file slices are sent: kafka_core.Transfer (writev + sendfile/io_uring on the
# socket fd), or its pure-Python twin (pread the slices, one send) under KAFKA_CORE_NO_EXTENSIONS.
# Never a silent fallback: without the switch a missing extension fails the import.
if kafka_core.NO_EXTENSIONS:
    SEND_PATH = "copy"
else:
    from kafka_core import Transfer as _Transfer
    SEND_PATH = "transfer"


def _code_name(code: int) -> str:
    try:
        return ErrorCode(code).name
    except ValueError:
        return str(code)


class CloseConnection(ProtocolError):
    """Raised by a handler: log the reason and drop the connection (Kafka does the same, e.g. when
    an acks=0 produce fails, since there is no response to carry the error)."""

    def __init__(self, message: str, error_code: int = ErrorCode.UNKNOWN_SERVER_ERROR) -> None:
        super().__init__(message, error_code)


# What a handler returns: a response message, its body already encoded (bytes), an awaitable of
# either (long-poll fetch, acks=all, group joins), or None for no response (acks=0 produce).
Response: TypeAlias = "Message | bytes"
HandlerResult: TypeAlias = "Response | Awaitable[Response] | None"


class Slot:
    __slots__ = ("ctx", "parts", "ready", "task", "size")

    def __init__(self, ctx: RequestContext) -> None:
        self.ctx = ctx
        self.parts: list[Any] | None = None
        self.ready = False
        self.task: asyncio.Task[Any] | None = None
        self.size = 0       # bytes of the encoded response (counted in Connection.unsent)


class RequestContext:
    """What a handler knows about the request besides its body."""

    __slots__ = ("conn", "header", "listener", "response_version", "started")

    def __init__(self, conn: Connection, header: RequestHeader, started: float) -> None:
        self.conn = conn
        self.header = header
        self.started = started          # perf_counter() when its frame was taken
        self.listener = conn.listener
        # The version the response is encoded in: the request's, except where Kafka answers in
        # another (ApiVersions at an unsupported version gets a v0 UNSUPPORTED_VERSION reply).
        self.response_version = header.api_version

    @property
    def api_version(self) -> int:
        return self.header.api_version

    @property
    def client_id(self) -> str | None:
        return self.header.client_id

    def warn_once(self, code: int, what: str) -> None:
        """Log at WARNING a request error an operator should see (a corrupt or oversized batch, a
        producer out of sequence, a storage error...), once per client id, peer host, API and
        error code: a misbehaving client is named without flooding the log."""
        self.conn.server.warn_once(self, code, what)


Dispatch = Callable[[RequestContext, memoryview], HandlerResult]


class SaslState:
    """A SASL listener's connection: where its authentication stands (``kafka_broker.sasl``)."""

    __slots__ = ("listener", "server", "mechanism", "raw", "authenticated", "principal", "expires", "failed")

    def __init__(self, listener: Any) -> None:
        self.listener = listener            # sasl.ListenerSasl
        self.server: Any = None             # the mechanism's authenticator, after SaslHandshake
        self.mechanism = ""
        self.raw = False                    # SaslHandshake v0: tokens follow as raw frames
        self.authenticated = False
        self.principal = "User:ANONYMOUS"
        self.expires: float | None = None   # monotonic end of the session (connections.max.reauth.ms)
        self.failed = False


class Connection:
    def __init__(self, server: Server, sock: socket.socket, peer: Any, listener: Listener) -> None:
        self.server = server
        sl = server.sasl.get(listener.name)
        self.sasl: SaslState | None = SaslState(sl) if sl is not None else None
        self.close_when_sent = False    # close once every queued response is out (failed authentication)
        self.muted_until = 0.0          # loop time before which nothing is read (a quota's throttle)
        self._unmute_timer: asyncio.TimerHandle | None = None
        self.loop = server.loop
        self.sock = sock
        self.fd = sock.fileno()
        self.peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        self.host = str(peer[0]) if isinstance(peer, tuple) else str(peer)   # max.connections.per.ip counts by it
        self.listener = listener
        self.max_request = server.max_request
        self.reader = FrameReader(server.max_request, CHUNK)
        self.queue: deque[Slot] = deque()
        self.backlog: deque[memoryview] = deque()   # frames received, not dispatched (bounded buffering)
        self.unsent = 0         # bytes of ready responses in the queue (MAX_UNSENT)
        self._draining = False
        self.out: Any = None    # current Transfer or memoryview being sent
        self.writing = False
        self.reading = False
        self.closed = False
        self.last_tick = server.tick   # sweep tick of the last socket activity
        self._resume_read()

    # -- reading -------------------------------------------------------------

    def _resume_read(self) -> None:
        if not self.reading and not self.closed and self.loop.time() >= self.muted_until:
            self.loop.add_reader(self.fd, self._on_readable)
            self.reading = True

    def mute(self, ms: int) -> None:
        """Read nothing more from this client for ``ms`` (KIP-219: a throttled client's channel is
        muted after its response, which goes out at once with ``throttle_time_ms``)."""
        if ms <= 0 or self.closed:
            return
        until = self.loop.time() + ms / 1000
        if until <= self.muted_until:
            return
        self.muted_until = until
        self._pause_read()
        if self._unmute_timer is not None:
            self._unmute_timer.cancel()
        # the timer itself ends the mute (a timer may fire a hair before ``until`` by the clock)
        self._unmute_timer = self.loop.call_at(until, self._unmute)

    def _unmute(self) -> None:
        self._unmute_timer = None
        self.muted_until = 0.0
        if not self.closed and not self._full() and self._dispatch_backlog() and not self.backlog:
            self._resume_read()

    def _pause_read(self) -> None:
        if self.reading:
            self.loop.remove_reader(self.fd)
            self.reading = False

    def _on_readable(self) -> None:
        reader = self.reader
        try:
            n = self.sock.recv_into(reader.get_buffer())
        except (BlockingIOError, InterruptedError):
            return
        except FrameTooLargeError as e:     # the pending frame's size prefix, checked before reading more
            self._refuse_frame(e)
            return
        except OSError as e:
            self.close(f"receive failed: {e.strerror}")
            return
        if n == 0:
            self.close(None)
            return
        self.last_tick = self.server.tick
        self._received(n)

    def _full(self) -> bool:
        """The bounds of bounded buffering (module docstring) are reached."""
        return len(self.queue) >= MAX_INFLIGHT or self.unsent > MAX_UNSENT

    def _received(self, n: int) -> bool:
        """``n`` more bytes are in the reader's buffer: dispatch the frames they complete, as far
        as the bounds allow (the rest wait in ``backlog``).  False when the connection closed."""
        try:
            frames = self.reader.buffer_updated(n)
        except FrameTooLargeError as e:
            self._refuse_frame(e)
            return False
        self.backlog.extend(frames)
        return self._dispatch_backlog()

    def _dispatch_backlog(self) -> bool:
        """Dispatch waiting frames until none is left or a bound is reached (then stop reading).
        Not re-entered from the ``_pump`` a dispatch may run.  False when the connection closed."""
        if self._draining:
            return True
        self._draining = True
        try:
            backlog = self.backlog
            while backlog:
                if self._full():
                    self._pause_read()
                    return True
                self._dispatch(backlog.popleft())
                if self.closed:
                    return False
            return True
        finally:
            self._draining = False

    def _refuse_frame(self, e: FrameTooLargeError) -> None:
        # Kafka's Selector raises InvalidReceiveException and closes: nothing can be answered,
        # the frame's header was never read.
        log.warning("closing connection from %s: %s (socket.request.max.bytes is %d)", self.peer, e,
                    self.max_request)
        self.close(None)

    # -- dispatch ------------------------------------------------------------

    def _dispatch(self, frame: memoryview) -> None:
        if self.close_when_sent:       # after a failed authentication nothing more is read
            return
        if self.sasl is not None and self.sasl.raw:
            self._dispatch_raw_token(frame)
            return
        started = time.perf_counter()
        try:
            header = decode_request_header(frame)
        except ProtocolError as e:
            self._protocol_error(e, None)
            return
        ctx = RequestContext(self, header, started)
        try:
            result = self.server.dispatch(ctx, frame)
        except ProtocolError as e:
            self._protocol_error(e, header)
            return
        except Exception:
            log.exception("closing connection from %s: error handling api key %d v%d", self.peer,
                          header.api_key, header.api_version)
            self.close(None)
            return
        if result is None:   # no response (acks=0 produce)
            self.server.metrics.done(header.api_key, started)
            return
        slot = Slot(ctx)
        self.queue.append(slot)
        if isinstance(result, Awaitable):
            task = asyncio.ensure_future(result)
            slot.task = task
            task.add_done_callback(functools.partial(self._finished, slot))
        elif not self._set_response(slot, result):
            return
        if self._full():
            self._pause_read()
        if self.queue[0].ready:
            self._pump()

    def _dispatch_raw_token(self, frame: memoryview) -> None:
        """SaslHandshake v0: a SASL token as a raw size-prefixed frame, answered the same way
        (no Kafka header); a failed exchange closes the connection without an answer."""
        slot = Slot(None)  # type: ignore[arg-type]  # a raw token has no request context; done() sets it ready
        self.queue.append(slot)
        task = asyncio.ensure_future(self.server.sasl_token(self, bytes(frame)))
        slot.task = task

        def done(t: asyncio.Task[Any]) -> None:
            if self.closed:
                return
            if t.cancelled() or t.exception() is not None or t.result() is None:
                self.close(None)
                return
            tok = t.result()
            slot.parts = [len(tok).to_bytes(4, "big") + tok]
            slot.ready = True
            self._pump()
        task.add_done_callback(done)

    def _protocol_error(self, e: ProtocolError, header: RequestHeader | None) -> None:
        """A request that cannot be served: Kafka closes the connection (its SocketServer does so
        for undecodable headers and bodies, unknown api keys and versions it does not serve), so we
        do too, naming the error code the request earned."""
        what = (f"api key {header.api_key} v{header.api_version}, client {header.client_id}"
                if header is not None else "request header")
        log.warning("closing connection from %s (%s): %s [%s]", self.peer, what, e, e.error_code.name)
        self.close(None)

    def _finished(self, slot: Slot, task: asyncio.Task[Any]) -> None:
        if self.closed:
            return
        if task.cancelled():
            self.close(None)
            return
        exc = task.exception()
        if exc is not None:
            h = slot.ctx.header
            if isinstance(exc, ProtocolError):
                self._protocol_error(exc, h)
                return
            log.error("closing connection from %s: error handling api key %d v%d",
                      self.peer, h.api_key, h.api_version, exc_info=exc)
            self.close(None)
            return
        if self._set_response(slot, task.result()):
            self._pump()

    def _set_response(self, slot: Slot, body: Response) -> bool:
        h = slot.ctx.header
        version = slot.ctx.response_version
        try:
            slot.parts = encode_response_parts(h.api_key, version, h.correlation_id, body)
        except Exception:
            log.exception("closing connection from %s: cannot encode the response to api key %d v%d",
                          self.peer, h.api_key, version)
            self.close(None)
            return False
        slot.ready = True
        slot.size = size = sum(len(p) for p in slot.parts)
        self.unsent += size
        if self.unsent > MAX_UNSENT:
            self._pause_read()
        self.server.metrics.done(h.api_key, slot.ctx.started)
        return True

    # -- writing -------------------------------------------------------------

    def _next_out(self) -> bool:
        """Make the next ready response ``self.out``; False when none is ready."""
        if not self.queue or not self.queue[0].ready:
            return False
        slot = self.queue.popleft()
        self.unsent -= slot.size
        parts = slot.parts
        assert parts is not None
        if all(isinstance(p, _BUFFER_TYPES) for p in parts):
            self.out = memoryview(parts[0] if len(parts) == 1 else b"".join(parts))
        elif SEND_PATH == "transfer":
            self.out = _Transfer(parts)
        else:   # the pure-Python twin: copy the file slices
            self.out = memoryview(b"".join(
                p if isinstance(p, _BUFFER_TYPES) else p.read_bytes()   # pins the fd for this read only
                for p in parts))
        return True

    def _pump(self) -> None:
        """Send ready responses in request order until the socket is full."""
        self.last_tick = self.server.tick
        while True:
            if self.out is None and not self._next_out():
                break
            try:
                if isinstance(self.out, memoryview):
                    n = self.sock.send(self.out)
                    if n < len(self.out):
                        self.out = self.out[n:]
                        self._want_write()
                        return
                    self.out = None
                else:
                    if not self.out.send(self.fd):
                        self._want_write()
                        return
                    self.out = None
            except (BlockingIOError, InterruptedError):
                self._want_write()
                return
            except OSError as e:
                if e.errno not in (errno.EPIPE, errno.ECONNRESET) and not isinstance(e, ConnectionError):
                    log.info("send to %s failed: %s", self.peer, e)
                self.close(None)
                return
            except Exception as e:  # noqa: BLE001 - a core error while sending: drop this connection only
                log.error("send to %s failed: %s", self.peer, e)
                self.close(None)
                return
        if self.writing:
            self.loop.remove_writer(self.fd)
            self.writing = False
        if self.close_when_sent and not self.queue:
            self.close(None)
            return
        if (not self.reading and len(self.queue) < MAX_INFLIGHT // 2 and self.unsent <= MAX_UNSENT // 2
                and not self._draining):
            # the frames already received first, then the socket (unless they filled the bounds)
            if not self._dispatch_backlog():
                return
            if not self.backlog and not self._full():
                self._resume_read()

    def _want_write(self) -> None:
        if not self.writing:
            self.loop.add_writer(self.fd, self._pump)
            self.writing = True

    # -- closing -------------------------------------------------------------

    def close(self, reason: str | None) -> None:
        if self.closed:
            return
        self.closed = True
        if self._unmute_timer is not None:
            self._unmute_timer.cancel()
        if reason:
            log.info("connection from %s closed: %s", self.peer, reason)
        if self.reading:
            self.loop.remove_reader(self.fd)
            self.reading = False
        if self.writing:
            self.loop.remove_writer(self.fd)
            self.writing = False
        for slot in self.queue:
            if slot.task is not None and not slot.task.done():
                slot.task.cancel()
        self.queue.clear()
        self.backlog.clear()
        self.out = None
        try:
            self.sock.close()
        except OSError:
            pass
        if self in self.server.connections:
            self.server.connections.discard(self)
            self.server.forget_peer(self.host)


TLS_CHUNK = 256 * 1024     # plaintext encrypted per step of a response (bounds the copy held)


class TlsConnection(Connection):
    """A connection on an SSL listener: OpenSSL through an ``ssl.SSLObject`` on two memory BIOs,
    so the connection keeps driving its own non-blocking socket.  Ciphertext is read from the
    socket into the incoming BIO and the plaintext decrypted straight into the FrameReader's
    buffer; responses are encrypted ``TLS_CHUNK`` bytes at a time as the socket drains, file
    slices read with ``pread`` (bytes leave the page cache through user space: no sendfile under
    TLS, see tls.py).  Everything OpenSSL writes (handshake, session tickets, records) is queued
    in the order it was produced."""

    def __init__(self, server: Server, sock: socket.socket, peer: Any, listener: Listener,
                 context: ssl.SSLContext) -> None:
        self.inbio = ssl.MemoryBIO()
        self.outbio = ssl.MemoryBIO()
        self.tls = context.wrap_bio(self.inbio, self.outbio, server_side=True)
        self.handshaken = False
        self.principal = "User:ANONYMOUS"
        self.cipher: deque[bytes] = deque()     # ciphertext to send, in order
        self.plain: deque[Any] = deque()        # rest of the response being encrypted
        self.offset = 0                         # bytes of plain[0] already encrypted (a file slice)
        super().__init__(server, sock, peer, listener)

    def _on_readable(self) -> None:
        try:
            data = self.sock.recv(CHUNK)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as e:
            self.close(f"receive failed: {e.strerror}")
            return
        if not data:
            self.close(None)
            return
        self.last_tick = self.server.tick
        self.inbio.write(data)
        if not self.handshaken and not self._handshake():
            return
        self._decrypt()

    def _handshake(self) -> bool:
        try:
            self.tls.do_handshake()
        except ssl.SSLWantReadError:
            self._flush_tls()
            return False
        except (ssl.SSLError, ValueError) as e:
            self._flush_tls()      # the alert, if OpenSSL wrote one
            log.info("TLS handshake with %s on listener %s failed: %s", self.peer, self.listener.name,
                     getattr(e, "reason", None) or e)
            self._send_and_close()
            return False
        self.handshaken = True
        from .tls import NoMatchingRule, principal
        try:
            self.principal = principal(self.tls.getpeercert(), getattr(self.tls.context, "kc_principal_mapper", None))
        except NoMatchingRule as e:
            log.warning("closing TLS connection from %s on listener %s: %s", self.peer, self.listener.name, e)
            self._send_and_close()
            return False
        self._flush_tls()
        return True

    def _decrypt(self) -> None:
        reader = self.reader
        while self.reading and not self.closed:
            try:
                buf = reader.get_buffer()
                n: int = self.tls.read(len(buf), buf)  # type: ignore[assignment]  # int with a buffer
            except ssl.SSLWantReadError:
                break
            except FrameTooLargeError as e:
                self._refuse_frame(e)
                return
            except ssl.SSLZeroReturnError:     # close_notify
                self.close(None)
                return
            except ssl.SSLError as e:
                self.close(f"TLS error: {e.reason or e}")
                return
            if n == 0:
                self.close(None)
                return
            if not self._received(n):
                return
        self._flush_tls()

    def _resume_read(self) -> None:
        was = self.reading
        super()._resume_read()
        if not was and self.reading and self.handshaken:
            # plaintext OpenSSL already decrypted may be waiting: no socket event will announce it
            self.loop.call_soon(self._decrypt)

    def _flush_tls(self) -> None:
        data = self.outbio.read()
        if data:
            self.cipher.append(data)
            if not self.writing and not self.closed:
                self._pump()

    def _send_and_close(self) -> None:
        """Best effort: the handshake alert out, then close."""
        for data in self.cipher:
            try:
                self.sock.send(data)
            except OSError:
                break
        self.cipher.clear()
        self.close(None)

    def _next_out(self) -> bool:
        if not self.cipher:
            if not self.plain:
                if not self.handshaken or not self.queue or not self.queue[0].ready:
                    return False
                parts = self.queue.popleft().parts
                assert parts is not None
                self.plain.extend(parts)
                self.offset = 0
            self.tls.write(self._take_plain())
            self.cipher.append(self.outbio.read())
        self.out = memoryview(self.cipher.popleft())
        return True

    def _take_plain(self) -> bytes:
        """Up to TLS_CHUNK bytes of the response being sent (file slices read with pread)."""
        out: list[Any] = []
        room = TLS_CHUNK
        plain = self.plain
        while plain and room > 0:
            p = plain[0]
            if isinstance(p, _BUFFER_TYPES):
                out.append(p)
                room -= len(p)
                plain.popleft()
                continue
            n = min(len(p) - self.offset, room)
            out.append(os.pread(p.fd, n, p.position + self.offset))
            self.offset += n
            room -= n
            if self.offset >= len(p):
                plain.popleft()
                self.offset = 0
                p.unpin()   # sent: the segment fd pool may close its fd again (kafka_core FileSlice)
        return b"".join(out)

    def close(self, reason: str | None) -> None:
        self.plain.clear()
        self.cipher.clear()
        super().close(reason)


class Server:
    """Accepts connections on the listeners and hands frames to ``dispatch``."""

    def __init__(self, loop: asyncio.AbstractEventLoop, listeners: list[Listener], max_request: int,
                 dispatch: Dispatch, backlog: int = 128,
                 idle_ms: int = 600000, max_connections: int = 2**31 - 1, max_per_ip: int = 2**31 - 1,
                 per_ip_overrides: dict[str, int] | None = None,
                 tls: dict[str, ssl.SSLContext] | None = None, sasl: dict[str, Any] | None = None,
                 sasl_token: Callable[[Connection, bytes], Awaitable[bytes | None]] | None = None,
                 connection_throttle: Callable[[str], int] | None = None,
                 accept_throttle: Callable[[str], int] | None = None) -> None:
        self.loop = loop
        # a listener's new connection -> 0, else ms before it is served (max.connection.creation.rate)
        self.accept_throttle = accept_throttle
        # a new connection from an address -> 0 to accept it, else ms until it is closed unread
        self.connection_throttle = connection_throttle
        self.throttled: dict[socket.socket, asyncio.TimerHandle] = {}   # sockets waiting to be closed
        self.tls = tls or {}        # SSL listener name -> its context
        self.sasl = sasl or {}      # SASL listener name -> sasl.ListenerSasl
        self._sasl_token = sasl_token
        self.idle_ms = idle_ms      # connections.max.idle.ms; < 0: never close idle connections
        self.max_connections = max_connections   # max.connections: more are closed as they arrive
        self.max_per_ip = max_per_ip              # max.connections.per.ip, and its overrides by address
        self.per_ip_overrides = per_ip_overrides or {}
        self.per_ip: dict[str, int] = {}          # open connections by peer address
        self._refused_logged = 0.0
        self.tick = 0
        self._sweep_handle: asyncio.TimerHandle | None = None
        self.listeners = listeners
        self.max_request = max_request
        self.dispatch = dispatch
        self.backlog = backlog
        self.sockets: list[tuple[socket.socket, Listener]] = []
        self.connections: set[Connection] = set()
        self.metrics = RequestMetrics()
        self._warned: OrderedDict[tuple[str | None, str, int, int], None] = OrderedDict()

    def start(self) -> list[tuple[str, int]]:
        bound = []
        for ln in self.listeners:
            infos = socket.getaddrinfo(ln.host or None, ln.port, type=socket.SOCK_STREAM,
                                       flags=socket.AI_PASSIVE)
            family, _, _, _, addr = infos[0]
            s = socket.socket(family, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(addr)
            s.listen(max(self.backlog, 128))
            s.setblocking(False)
            self.loop.add_reader(s.fileno(), self._accept, s, ln)
            self.sockets.append((s, ln))
            bound.append(s.getsockname()[:2])
        if self.idle_ms >= 0 and self._sweep_handle is None:
            self._sweep_handle = self.loop.call_later(self._sweep_interval(), self._sweep)
        if SEND_PATH == "copy":
            log.warning("%s is set: file slices are sent by pread + send (the pure-Python path), "
                        "not kafka_core.Transfer", kafka_core.ENV_NO_EXTENSIONS)
        return bound

    def sasl_token(self, conn: Connection, token: bytes) -> Awaitable[bytes | None]:
        """A raw SASL token (SaslHandshake v0): the answer token, or None to close."""
        assert self._sasl_token is not None
        return self._sasl_token(conn, token)

    def warn_once(self, ctx: RequestContext, code: int, what: str) -> None:
        host = ctx.conn.peer.rsplit(":", 1)[0]
        key = (ctx.client_id, host, ctx.header.api_key, code)
        if key in self._warned:
            self._warned.move_to_end(key)
            return
        self._warned[key] = None
        if len(self._warned) > 4096:
            self._warned.popitem(last=False)
        log.warning("%s from client %r at %s: %s: %s (logged once per client and error)",
                    API_NAMES.get(ctx.header.api_key, ctx.header.api_key), ctx.client_id, ctx.conn.peer,
                    _code_name(code), what)

    # -- idle connections ------------------------------------------------------

    _SWEEP_TICKS = 4   # sweeps per idle period

    def _sweep_interval(self) -> float:
        return max(self.idle_ms / self._SWEEP_TICKS, 1) / 1000

    def _sweep(self) -> None:
        """Close connections idle for longer than connections.max.idle.ms (Kafka's
        Selector does the same, one connection per poll; we take all at once)."""
        self.tick += 1
        limit = self._SWEEP_TICKS if self.idle_ms > 0 else 0
        expired = [c for c in self.connections
                   if self.tick - c.last_tick > limit and not c.queue and c.out is None]
        for c in expired:
            log.info("closing connection from %s: idle for more than connections.max.idle.ms (%d ms)",
                     c.peer, self.idle_ms)
            c.close(None)
        self._sweep_handle = self.loop.call_later(self._sweep_interval(), self._sweep)

    def _accept(self, lsock: socket.socket, ln: Listener) -> None:
        for _ in range(64):
            try:
                sock, peer = lsock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                log.warning("accept failed: %s", e)
                return
            ms = self.accept_throttle(ln.name) if self.accept_throttle is not None else 0
            if ms > 0:
                # over max.connection.creation.rate: this connection waits, and the listener
                # accepts nothing more, until the rate allows (Kafka's waitForConnectionSlot)
                self.loop.remove_reader(lsock.fileno())
                self.loop.call_later(ms / 1000, self._accept_later, lsock, ln, sock, peer)
                return
            self._admit(sock, peer, ln)

    def _accept_later(self, lsock: socket.socket, ln: Listener, sock: socket.socket, peer: Any) -> None:
        if lsock.fileno() < 0:      # the server closed meanwhile
            sock.close()
            return
        self._admit(sock, peer, ln)
        self.loop.add_reader(lsock.fileno(), self._accept, lsock, ln)

    def _admit(self, sock: socket.socket, peer: Any, ln: Listener) -> None:
        """A new connection, once the listener's rate allows it: the per-address checks."""
        host = str(peer[0]) if isinstance(peer, tuple) else str(peer)
        limit = self.per_ip_overrides.get(host, self.max_per_ip)
        refused = None
        if self.per_ip.get(host, 0) >= limit:
            refused = f"{host} already has the configured maximum of {limit} connections (max.connections.per.ip)"
        elif len(self.connections) >= self.max_connections:
            refused = f"max.connections ({self.max_connections}) are open"
        if refused is not None:
            sock.close()
            now = time.monotonic()
            if now - self._refused_logged > 10:
                self._refused_logged = now
                log.warning("refusing a connection from %s: %s", peer, refused)
            return
        ms = self.connection_throttle(host) if self.connection_throttle is not None else 0
        if ms > 0:
            self.throttled[sock] = self.loop.call_later(ms / 1000, self._close_throttled, sock)
            return
        self.per_ip[host] = self.per_ip.get(host, 0) + 1
        sock.setblocking(False)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
        ctx = self.tls.get(ln.name)
        self.connections.add(Connection(self, sock, peer, ln) if ctx is None
                             else TlsConnection(self, sock, peer, ln, ctx))

    def _close_throttled(self, sock: socket.socket) -> None:
        self.throttled.pop(sock, None)
        sock.close()

    def forget_peer(self, host: str) -> None:
        n = self.per_ip.get(host, 0) - 1
        if n > 0:
            self.per_ip[host] = n
        else:
            self.per_ip.pop(host, None)

    def close(self) -> None:
        if self._sweep_handle is not None:
            self._sweep_handle.cancel()
            self._sweep_handle = None
        for s, _ in self.sockets:
            try:
                self.loop.remove_reader(s.fileno())
            except (ValueError, OSError):
                pass
            s.close()
        self.sockets.clear()
        for sock, timer in self.throttled.items():
            timer.cancel()
            sock.close()
        self.throttled.clear()
        for c in list(self.connections):
            c.close(None)
