"""A connection from this broker to another: the controller's channel to each broker and a
follower's channel to its leader (Kafka's ``NetworkClient`` in those roles).

Requests are pipelined and answered in order (Kafka answers in request order on a
connection); versions are fixed by the caller, because both ends are kafka-core brokers of
one release (Kafka pins them with ``inter.broker.protocol.version``).  A response frame is
decoded in place: a Fetch response's ``records`` are memoryviews into the received frame, so a
follower appends them without a copy in Python.  A timeout or a broken connection fails every
request in flight with ``ChannelError`` and closes the channel; the owner reconnects.
"""

from __future__ import annotations

import asyncio
import collections
import socket
from typing import Any

import kafka_protocol as kp


class ChannelError(Exception):
    """The connection failed (refused, lost, timed out, or an undecodable response)."""


class _Proto(asyncio.BufferedProtocol):
    def __init__(self, ch: Channel) -> None:
        self.ch = ch
        self.reader = kp.FrameReader(max_frame_size=ch.max_frame_size)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def get_buffer(self, sizehint: int) -> memoryview:
        try:
            return self.reader.get_buffer(sizehint)
        except kp.ProtocolError as e:
            self.ch.fail(ChannelError(f"{self.ch}: {e}"))
            return memoryview(bytearray(65536))

    def buffer_updated(self, nbytes: int) -> None:
        try:
            frames = self.reader.buffer_updated(nbytes)
        except kp.ProtocolError as e:
            self.ch.fail(ChannelError(f"{self.ch}: {e}"))
            return
        for f in frames:
            self.ch.on_frame(f)

    def eof_received(self) -> bool | None:
        self.ch.fail(ChannelError(f"{self.ch}: closed by the peer"))
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.ch.fail(ChannelError(f"{self.ch}: connection lost ({exc or 'closed'})"))


class ChannelSecurity:
    """How this broker reaches the others: the inter-broker listener's TLS client context and SASL
    credentials (``security.inter.broker.protocol`` / ``inter.broker.listener.name``,
    ``sasl.mechanism.inter.broker.protocol`` with the username/password of that listener's
    ``<mechanism>.sasl.jaas.config``, as Kafka's brokers take theirs)."""

    __slots__ = ("ssl", "sasl")

    def __init__(self, ssl: Any = None, sasl: tuple[str, str, str] | None = None) -> None:
        self.ssl = ssl          # ssl.SSLContext or None
        self.sasl = sasl        # (mechanism, username, password) or None


PLAINTEXT = ChannelSecurity()


class Channel:
    def __init__(self, host: str, port: int, *, client_id: str, node_id: int = -1,
                 request_timeout_ms: int = 30000, max_frame_size: int = 104857600,
                 security: ChannelSecurity = PLAINTEXT) -> None:
        self.host, self.port = host, port
        self.security = security
        self.client_id = client_id
        self.node_id = node_id
        self.request_timeout = request_timeout_ms / 1000
        self.max_frame_size = max_frame_size
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self._pending: collections.deque[tuple[int, int, int, asyncio.Future[Any], Any]] = collections.deque()
        self._cid = 0

    def __repr__(self) -> str:
        return f"<Channel to broker {self.node_id} at {self.host}:{self.port}>"

    async def connect(self, timeout: float = 10.0) -> Channel:
        loop = asyncio.get_running_loop()
        sec = self.security
        try:
            tr, _ = await asyncio.wait_for(loop.create_connection(
                lambda: _Proto(self), self.host, self.port, ssl=sec.ssl,
                server_hostname=self.host if sec.ssl is not None else None), timeout)
        except (OSError, TimeoutError) as e:
            self.closed = True
            raise ChannelError(f"{self}: cannot connect: {e or 'timed out'}") from None
        self.transport = tr
        if sec.sasl is not None:
            from kafka_protocol.sasl import AuthenticationFailed, authenticate
            mech, user, password = sec.sasl
            try:
                await asyncio.wait_for(authenticate(self.send, mech, user, password), timeout)
            except (AuthenticationFailed, TimeoutError, ChannelError) as e:
                self.close()
                raise ChannelError(f"{self}: SASL/{mech} authentication as {user!r} failed: {e}") from None
        return self

    def send(self, req: kp.Message, version: int, timeout: float | None = None) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Any] = loop.create_future()
        if self.closed or self.transport is None:
            fut.set_exception(ChannelError(f"{self}: not connected"))
            return fut
        self._cid = cid = (self._cid + 1) & 0x7FFFFFFF
        api = req.API_KEY
        hdr = kp.encode_request_header(api, version, cid, self.client_id)
        parts = req.encode_parts(version)
        size = len(hdr) + sum(len(p) for p in parts)
        self.transport.writelines([size.to_bytes(4, "big") + hdr, *parts])
        t = self.request_timeout if timeout is None else timeout
        timer = loop.call_later(t, self._timed_out, cid, t)
        self._pending.append((cid, api, version, fut, timer))
        return fut

    def _timed_out(self, cid: int, t: float) -> None:
        if any(p[0] == cid for p in self._pending):
            self.fail(ChannelError(f"{self}: request timed out after {t:.1f}s"))

    def on_frame(self, frame: memoryview) -> None:
        if not self._pending:
            self.fail(ChannelError(f"{self}: a response with no request in flight"))
            return
        cid, api, version, fut, timer = self._pending.popleft()
        timer.cancel()
        try:
            got, pos = kp.decode_response_header(frame, api, version)
            if got != cid:
                raise ChannelError(f"{self}: correlation id {got}, expected {cid}")
            body, _ = kp.RESPONSES[api].decode(frame, version, pos)
        except (kp.ProtocolError, ChannelError) as e:
            err = e if isinstance(e, ChannelError) else ChannelError(f"{self}: bad response: {e}")
            if not fut.done():
                fut.set_exception(err)
            self.fail(err)
            return
        if not fut.done():
            fut.set_result(body)

    def fail(self, err: ChannelError) -> None:
        if self.closed and not self._pending:
            return
        self.closed = True
        pending, self._pending = self._pending, collections.deque()
        for _cid, _api, _v, fut, timer in pending:
            timer.cancel()
            if not fut.done():
                fut.set_exception(err)
        if self.transport is not None:
            self.transport.abort()

    def close(self) -> None:
        self.fail(ChannelError(f"{self}: closed"))
