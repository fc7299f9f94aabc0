"""One asyncio connection to one broker: framing, correlation ids, pipelining,
ApiVersions negotiation and per-request timeouts.

Requests are written as soon as they are sent (pipelined); Kafka answers in
request order on a connection, so responses are matched against the head of
the in-flight queue and a correlation id out of order is a broken connection.
Like the Java client, a request that times out closes the connection (its
response may still arrive and would shift every later one), failing
everything else in flight with a retriable error.

Every write holds the connection's write lock (``_wlock``, uncontended on the
loop): ``send_produce_one_threadsafe`` writes a Produce frame from another
thread (the sync Producer's caller) with a plain non-blocking ``os.write`` on
the socket, so writes never interleave, the in-flight entry is queued before
its bytes leave, and bytes a short write left (``_tail``) go out on the loop
before anything else.  That path is only taken on plaintext connections
without SASL (TLS and SASL bytes belong to the transport) while the
transport holds no unsent bytes; otherwise the caller hops to the loop.

Bytes are received straight into a frame splitter (``BufferedProtocol``): the
compiled kafka_core._client.FrameSplitter, whose get_buffer/buffer_updated the
transport calls directly (one call per read hands every whole frame to
``_on_frame``), or kafka_protocol's FrameReader under KAFKA_CORE_NO_EXTENSIONS.
A frame read whole is never copied, and decoded ``records`` fields are
memoryviews into it.

The producer's common request, one batch for one partition, takes a compiled fast path
(``send_produce_one``, kafka_core._client over csrc/kc_client.c): the whole frame is encoded in
one pass into one buffer and its answer is read without building message objects; any answer
outside that shape is decoded by the generated codec, exactly as before.  It works on every
transport (plaintext, TLS, after SASL): it only changes which bytes are built, not how they go.
Under KAFKA_CORE_NO_EXTENSIONS kafka_core._client is not imported (``FAST_PATH == "python"``)
and every request and answer takes the generated codec.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import math
import os
import socket
import ssl
import threading
import time
from collections.abc import Callable
from typing import Any

import kafka_protocol as kp

import kafka_core

from .errors import (
    BadResponseError,
    KafkaConnectionError,
    KafkaError,
    KafkaTimeoutError,
    SslAuthenticationError,
    UnsupportedVersionError,
    for_code,
)
from .security import Security

__all__ = ["BrokerConnection", "CLIENT_VERSIONS", "ApiKey"]

log = logging.getLogger("kafka_client")

# The compiled Produce frame builder / parser and frame splitter, or (KAFKA_CORE_NO_EXTENSIONS)
# None: every request and response then takes the generated codec and kafka_protocol.FrameReader.
if kafka_core.NO_EXTENSIONS:
    _fast: Any = None
else:
    from kafka_core import _client as _fast
FAST_PATH = "python" if _fast is None else "c"


class ApiKey:
    PRODUCE = 0
    FETCH = 1
    LIST_OFFSETS = 2
    METADATA = 3
    OFFSET_COMMIT = 8
    OFFSET_FETCH = 9
    FIND_COORDINATOR = 10
    JOIN_GROUP = 11
    HEARTBEAT = 12
    LEAVE_GROUP = 13
    SYNC_GROUP = 14
    DESCRIBE_GROUPS = 15
    LIST_GROUPS = 16
    API_VERSIONS = 18
    CREATE_TOPICS = 19
    DELETE_TOPICS = 20
    INIT_PRODUCER_ID = 22
    ADD_PARTITIONS_TO_TXN = 24
    ADD_OFFSETS_TO_TXN = 25
    END_TXN = 26
    TXN_OFFSET_COMMIT = 28
    DESCRIBE_CONFIGS = 32
    CREATE_PARTITIONS = 37
    DELETE_GROUPS = 42
    INCREMENTAL_ALTER_CONFIGS = 44
    OFFSET_DELETE = 47
    DESCRIBE_CLUSTER = 60


# Versions this client speaks, per API: the highest common version with the broker is used.
# Upper bounds stop before versions that address topics by id only (Produce 13, Fetch 13,
# OffsetCommit 10, DeleteTopics 6) or change a request's shape we do not build
# (OffsetFetch 8: groups array).
CLIENT_VERSIONS: dict[int, tuple[int, int]] = {
    ApiKey.PRODUCE: (3, 12),
    ApiKey.FETCH: (4, 12),
    ApiKey.LIST_OFFSETS: (1, 9),
    ApiKey.METADATA: (1, 12),
    ApiKey.OFFSET_COMMIT: (2, 9),
    ApiKey.OFFSET_FETCH: (1, 7),
    ApiKey.FIND_COORDINATOR: (0, 6),
    ApiKey.JOIN_GROUP: (0, 9),
    ApiKey.HEARTBEAT: (0, 4),
    ApiKey.LEAVE_GROUP: (0, 5),
    ApiKey.SYNC_GROUP: (0, 5),
    ApiKey.DESCRIBE_GROUPS: (0, 5),
    ApiKey.LIST_GROUPS: (0, 5),
    ApiKey.API_VERSIONS: (0, 4),
    ApiKey.CREATE_TOPICS: (2, 7),
    ApiKey.DELETE_TOPICS: (1, 5),
    ApiKey.INIT_PRODUCER_ID: (0, 5),
    # Transactions as transaction version 1 (see kafka_client.transaction): AddPartitionsToTxn
    # v4+ is the brokers' batched form, EndTxn/TxnOffsetCommit v5 mean KIP-890 part 2.
    ApiKey.ADD_PARTITIONS_TO_TXN: (0, 3),
    ApiKey.ADD_OFFSETS_TO_TXN: (0, 4),
    ApiKey.END_TXN: (0, 4),
    ApiKey.TXN_OFFSET_COMMIT: (0, 4),
    ApiKey.DESCRIBE_CONFIGS: (1, 4),
    ApiKey.CREATE_PARTITIONS: (0, 3),
    ApiKey.DELETE_GROUPS: (0, 2),
    ApiKey.INCREMENTAL_ALTER_CONFIGS: (0, 1),
    ApiKey.OFFSET_DELETE: (0, 0),
    ApiKey.DESCRIBE_CLUSTER: (0, 1),
}



SOFTWARE_NAME = "kafka-core-python"
SOFTWARE_VERSION = "0.1.0"


class _Pending:
    """A request in flight: its response settles ``future``, or goes to ``callback(body, exc)``
    (called from the frame's loop turn, one turn sooner than a future's done callbacks)."""

    __slots__ = ("correlation_id", "api_key", "version", "future", "callback", "deadline", "timeout", "fast")

    def __init__(self, correlation_id: int, api_key: int, version: int, future: asyncio.Future[Any] | None,
                 callback: Callable[[Any, BaseException | None], None] | None, deadline: float,
                 timeout: float, fast: tuple[bytes, int] | None = None) -> None:
        self.fast = fast             # (topic, partition) of a send_produce_one request
        self.correlation_id = correlation_id
        self.api_key = api_key
        self.version = version
        self.future = future
        self.callback = callback
        self.deadline = deadline     # loop time; inf without a timeout
        self.timeout = timeout

    def settle(self, body: Any, exc: BaseException | None) -> None:
        if self.callback is not None:
            cb, self.callback = self.callback, None
            cb(body, exc)
            return
        fut = self.future
        if fut is None or fut.done():
            return
        if exc is not None:
            fut.set_exception(exc)
        else:
            fut.set_result(body)


class _Protocol(asyncio.BufferedProtocol):
    def __init__(self, conn: BrokerConnection, max_frame_size: int) -> None:
        self.conn = conn
        self.transport: asyncio.Transport | None = None
        self._drain_waiters: list[asyncio.Future[None]] = []
        self._paused = False
        self.reader: Any
        if _fast is not None:
            # One compiled call per read splits the frames and hands each to the connection: the
            # transport calls the splitter's methods directly (the two below are the Python path).
            self.reader = _fast.FrameSplitter(conn._on_frame, self._bad_frame, max_frame_size)
            self.get_buffer = self.reader.get_buffer  # type: ignore[method-assign]
            self.buffer_updated = self.reader.buffer_updated  # type: ignore[method-assign]
        else:
            self.reader = kp.FrameReader(max_frame_size=max_frame_size)

    def _bad_frame(self, message: str) -> None:
        # An absurd size prefix: refused before allocating; the connection is unusable.
        self.conn._fail(BadResponseError(f"{self.conn}: {message}"))

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass

    def get_buffer(self, sizehint: int) -> memoryview:
        try:
            return self.reader.get_buffer(sizehint)
        except kp.ProtocolError as exc:
            # An absurd size prefix: refuse before allocating; the connection is unusable.
            self.conn._fail(BadResponseError(f"{self.conn}: {exc}"))
            return memoryview(bytearray(65536))

    def buffer_updated(self, nbytes: int) -> None:
        if self.conn.closed:
            return
        try:
            frames = self.reader.buffer_updated(nbytes)
        except kp.ProtocolError as exc:
            self.conn._fail(BadResponseError(f"{self.conn}: {exc}"))
            return
        for frame in frames:
            self.conn._on_frame(frame)
            if self.conn.closed:
                return

    def eof_received(self) -> bool | None:
        self.conn._fail(KafkaConnectionError(f"{self.conn}: connection closed by the broker"))
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        if isinstance(exc, ssl.SSLError):
            # TLS 1.3: the client's side of the handshake is done before the broker has checked
            # the client's certificate, so a refused (or missing) one arrives as an alert on the
            # first read -- an authentication failure all the same, not worth a retry
            self.conn._fail(SslAuthenticationError(f"{self.conn}: TLS refused by the broker: {exc}"))
        else:
            self.conn._fail(KafkaConnectionError(f"{self.conn}: connection lost ({exc or 'closed'})"))
        for w in self._drain_waiters:
            if not w.done():
                w.set_result(None)
        self._drain_waiters.clear()

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        for w in self._drain_waiters:
            if not w.done():
                w.set_result(None)
        self._drain_waiters.clear()

    async def drain(self) -> None:
        if self._paused:
            fut = asyncio.get_running_loop().create_future()
            self._drain_waiters.append(fut)
            await fut


class BrokerConnection:
    """A connection to ``host:port``; ``await connect()`` before sending."""

    def __init__(self, host: str, port: int, *, node_id: int = -1, client_id: str = "kafka-core-python",
                 request_timeout_ms: int = 30000, connect_timeout_ms: int = 10000,
                 max_frame_size: int = kp.DEFAULT_MAX_FRAME_SIZE, security: Security | None = None) -> None:
        self.host = host
        self.security = security or Security()
        self.port = port
        self.node_id = node_id
        self.client_id = client_id
        self._client_id_raw = None if client_id is None else client_id.encode()
        self.request_timeout = request_timeout_ms / 1000
        self.connect_timeout = connect_timeout_ms / 1000
        self.max_frame_size = max_frame_size
        self.versions: dict[int, int] = {}
        self.broker_versions: dict[int, tuple[int, int]] = {}
        self.closed = False
        self.close_reason: KafkaError | None = None
        self._protocol: _Protocol | None = None
        self._transport: asyncio.Transport | None = None
        self._pending: collections.deque[_Pending] = collections.deque()
        self._correlation_id = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._close_callbacks: list[Any] = []
        self._timer: asyncio.TimerHandle | None = None
        # Writes hold _wlock: the loop's transport writes and send_produce_one_threadsafe's plain
        # socket write from another thread (plaintext without SASL only: _direct_fd >= 0) never
        # interleave, and a direct write's unsent tail (_tail) goes out before anything else.
        self._wlock = threading.RLock()
        self._direct_fd = -1
        self._tail: bytes | None = None

    def __repr__(self) -> str:
        return f"<BrokerConnection node={self.node_id} {self.host}:{self.port}>"

    @property
    def in_flight(self) -> int:
        return len(self._pending)

    @property
    def connected(self) -> bool:
        return self._transport is not None and not self.closed

    def on_close(self, cb: Any) -> None:
        self._close_callbacks.append(cb)

    async def connect(self) -> BrokerConnection:
        self._loop = asyncio.get_running_loop()
        try:
            ctx = self.security.context
            transport, protocol = await asyncio.wait_for(
                self._loop.create_connection(lambda: _Protocol(self, self.max_frame_size), self.host, self.port,
                                             ssl=ctx, server_hostname=self.host if ctx is not None else None),
                self.connect_timeout)
        except TimeoutError:
            self.closed = True
            raise KafkaTimeoutError(f"{self}: connect timed out after {self.connect_timeout}s") from None
        except ssl.SSLError as exc:
            self.closed = True
            raise SslAuthenticationError(f"{self}: TLS handshake failed: {exc}") from exc
        except OSError as exc:
            self.closed = True
            raise KafkaConnectionError(f"{self}: connect failed: {exc}") from exc
        self._transport = transport
        self._protocol = protocol
        sock = transport.get_extra_info("socket")
        if ctx is None and self.security.sasl is None and sock is not None and _fast is not None:
            self._direct_fd = sock.fileno()
        try:
            await self._negotiate()
            if self.security.sasl is not None:
                await self._authenticate(*self.security.sasl)
        except BaseException:
            self.close()
            raise
        return self

    async def _authenticate(self, mechanism: str, user: str, password: str) -> None:
        from kafka_protocol.sasl import AuthenticationFailed, authenticate

        from .errors import SaslAuthenticationFailedError

        async def send(req: kp.Message, version: int) -> Any:
            return await self.send(req, version=version, timeout=self.request_timeout)
        try:
            await authenticate(send, mechanism, user, password)
        except AuthenticationFailed as e:
            raise SaslAuthenticationFailedError(f"{self}: SASL/{mechanism} as {user!r}: {e}") from None

    async def _negotiate(self) -> None:
        """ApiVersions first (v3: client software name); a broker that does not know v3 answers
        with a v0 body and UNSUPPORTED_VERSION, and its ApiVersions range tells what to retry with."""
        version = 3
        for _ in range(3):
            req = kp.ApiVersionsRequest(client_software_name=SOFTWARE_NAME,
                                        client_software_version=SOFTWARE_VERSION)
            resp = await self._send(req, ApiKey.API_VERSIONS, version, True, self.request_timeout)
            ranges = {a.api_key: (a.min_version, a.max_version) for a in resp.api_keys}
            if resp.error_code == 35 and ApiKey.API_VERSIONS in ranges:
                version = min(ranges[ApiKey.API_VERSIONS][1], CLIENT_VERSIONS[ApiKey.API_VERSIONS][1])
                continue
            if resp.error_code:
                raise for_code(resp.error_code, f"{self}: ApiVersions failed")
            self.broker_versions = ranges
            for key, (cmin, cmax) in CLIENT_VERSIONS.items():
                r = ranges.get(key)
                if r is None:
                    continue
                hi = min(cmax, r[1], kp.REQUESTS[key].MAX_VERSION)
                if hi >= max(cmin, r[0]):
                    self.versions[key] = hi
            return
        raise UnsupportedVersionError(f"{self}: no common ApiVersions version")

    def version(self, api_key: int) -> int:
        v = self.versions.get(api_key)
        if v is None:
            raise UnsupportedVersionError(
                f"{self}: broker supports no version of api {kp.API_NAMES.get(api_key, api_key)} "
                f"this client speaks (client {CLIENT_VERSIONS.get(api_key)}, "
                f"broker {self.broker_versions.get(api_key)})")
        return v

    def supports(self, api_key: int) -> bool:
        return api_key in self.versions

    def send_nowait(self, request: kp.Message, *, version: int | None = None, expect_response: bool = True,
                    timeout: float | None = None) -> asyncio.Future[Any]:
        """Write the request now; the future gets the decoded response body (or None when no
        response is expected: Produce with acks=0)."""
        api_key = request.API_KEY
        if version is None:
            version = self.version(api_key)
        return self._send(request, api_key, version, expect_response,
                          self.request_timeout if timeout is None else timeout)

    async def send(self, request: kp.Message, *, version: int | None = None, expect_response: bool = True,
                   timeout: float | None = None) -> Any:
        return await self.send_nowait(request, version=version, expect_response=expect_response,
                                      timeout=timeout)

    def send_with_callback(self, request: kp.Message, callback: Callable[[Any, BaseException | None], None], *,
                           version: int | None = None, expect_response: bool = True,
                           timeout: float | None = None) -> None:
        """Write the request now; ``callback(body, None)`` with the decoded response (None when
        no response is expected), or ``callback(None, exc)``, runs in the loop turn that reads
        the response (or, on an error or without a response, before this returns)."""
        api_key = request.API_KEY
        if version is None:
            version = self.version(api_key)
        self._write(request, api_key, version, expect_response,
                    self.request_timeout if timeout is None else timeout, None, callback)

    def send_produce_one(self, topic: bytes, partition: int, records: Any, transactional_id: bytes | None,
                         acks: int, timeout_ms: int, callback: Callable[[Any, BaseException | None], None], *,
                         version: int | None = None, timeout: float | None = None) -> bool:
        """A ProduceRequest of one batch for one partition (``topic`` UTF-8), written as one
        frame built in compiled code; the callback gets a kafka_core._client.ProducePartitionResult
        for an answer of that shape, else the decoded ProduceResponse (as send_with_callback
        gives).  False, with nothing written, when a field does not fit the fast path: the caller
        sends the request the general way."""
        if version is None:
            version = self.version(ApiKey.PRODUCE)
        if _fast is None:
            return False
        if self.closed or self._transport is None:
            _Pending(0, ApiKey.PRODUCE, version, None, callback, 0.0, 0.0).settle(
                None, self.close_reason or KafkaConnectionError(f"{self}: not connected"))
            return True
        with self._wlock:
            cid = (self._correlation_id + 1) & 0x7FFFFFFF
            frame = _fast.produce_frame(version, cid, self._client_id_raw, transactional_id, acks, timeout_ms,
                                        topic, partition, records)
            if frame is None:
                return False
            self._correlation_id = cid
            if self._tail is not None:
                self._write_tail()
            self._transport.write(frame)
            if acks != 0:
                self._track(cid, ApiKey.PRODUCE, version, self.request_timeout if timeout is None else timeout,
                            None, callback, (topic, partition))
                return True
        callback(None, None)
        return True

    def send_produce_one_threadsafe(self, topic: bytes, partition: int, records: Any, acks: int, timeout_ms: int,
                                    callback: Callable[[Any, BaseException | None], None], *,
                                    timeout: float | None = None) -> bool:
        """send_produce_one (no transactional id, the negotiated version) from a thread that is
        not the loop's: the frame goes out with a plain non-blocking write on the socket, so the
        caller does not wait for the loop to wake up.  The callback still runs on the loop.
        False, with nothing written or queued, when that cannot be done: TLS or SASL (the
        transport owns the bytes), acks=0, not connected, the transport still holds unsent
        bytes, or a field outside the fast path."""
        if self._direct_fd < 0 or acks == 0 or self.closed:
            return False
        version = self.versions.get(ApiKey.PRODUCE)
        if version is None:
            return False
        with self._wlock:
            t = self._transport
            if self.closed or t is None or self._tail is not None or t.get_write_buffer_size():
                return False
            cid = (self._correlation_id + 1) & 0x7FFFFFFF
            frame = _fast.produce_frame(version, cid, self._client_id_raw, None, acks, timeout_ms, topic,
                                        partition, records)
            if frame is None:
                return False
            self._correlation_id = cid
            # Queued before the write: the answer can be read (on the loop) as soon as it is out.
            timeout = self.request_timeout if timeout is None else timeout
            deadline = time.monotonic() + timeout if timeout > 0 else math.inf  # uvloop's and asyncio's clock
            self._pending.append(_Pending(cid, ApiKey.PRODUCE, version, None, callback, deadline, timeout,
                                          (topic, partition)))
            try:
                n = os.write(self._direct_fd, frame)
            except OSError:   # EAGAIN, or a broken socket: the loop's write reports the latter
                n = 0
            if n < len(frame):
                self._tail = frame[n:]
        if self._tail is not None or self._timer is None:
            assert self._loop is not None
            self._loop.call_soon_threadsafe(self._after_direct_write)
        return True

    def _write_tail(self) -> None:
        tail, self._tail = self._tail, None
        if tail is not None and self._transport is not None and not self.closed:
            self._transport.write(tail)

    def _after_direct_write(self) -> None:
        """On the loop, after a direct write: send what it left unsent, arm the request timer."""
        with self._wlock:
            self._write_tail()
        if self._timer is None and self._pending and not self.closed:
            nxt = min(p.deadline for p in list(self._pending))
            if nxt != math.inf:
                assert self._loop is not None
                self._timer = self._loop.call_at(nxt, self._check_timeouts)

    def _send(self, request: kp.Message, api_key: int, version: int, expect_response: bool,
              timeout: float) -> asyncio.Future[Any]:
        loop = self._loop or asyncio.get_running_loop()
        fut: asyncio.Future[Any] = loop.create_future()
        self._write(request, api_key, version, expect_response, timeout, fut, None)
        return fut

    def _write(self, request: kp.Message, api_key: int, version: int, expect_response: bool, timeout: float,
               fut: asyncio.Future[Any] | None, callback: Callable[[Any, BaseException | None], None] | None
               ) -> None:
        if self.closed or self._transport is None:
            _Pending(0, api_key, version, fut, callback, 0.0, 0.0).settle(
                None, self.close_reason or KafkaConnectionError(f"{self}: not connected"))
            return
        parts = request.encode_parts(version)
        with self._wlock:
            self._correlation_id = cid = (self._correlation_id + 1) & 0x7FFFFFFF
            hdr = kp.encode_request_header(api_key, version, cid, self.client_id)
            size = len(hdr) + sum(len(p) for p in parts)
            if self._tail is not None:
                self._write_tail()
            self._transport.writelines([size.to_bytes(4, "big") + hdr, *parts])
            if expect_response:
                self._track(cid, api_key, version, timeout, fut, callback, None)
                return
        _Pending(cid, api_key, version, fut, callback, 0.0, 0.0).settle(None, None)  # outside the lock

    def _track(self, cid: int, api_key: int, version: int, timeout: float,
               fut: asyncio.Future[Any] | None, callback: Callable[[Any, BaseException | None], None] | None,
               fast: tuple[bytes, int] | None) -> None:
        """The request ``cid`` is written (on the loop, under _wlock) and will be answered: queue it."""
        loop = self._loop or asyncio.get_running_loop()
        deadline = loop.time() + timeout if timeout > 0 else math.inf
        self._pending.append(_Pending(cid, api_key, version, fut, callback, deadline, timeout, fast))
        # One timer per connection, not one per request: it fires at the earliest deadline of
        # what is in flight and re-arms for the next (a request's timeout fails the connection).
        if self._timer is None and deadline != math.inf:
            self._timer = loop.call_at(deadline, self._check_timeouts)

    async def drain(self) -> None:
        """Wait while the socket's write buffer is above its high-water mark."""
        if self._protocol is not None:
            await self._protocol.drain()

    def _check_timeouts(self) -> None:
        self._timer = None
        if self.closed or not self._pending:
            return
        loop = self._loop or asyncio.get_running_loop()
        now = loop.time()
        pending = list(self._pending)   # a copy: a direct write may append from another thread
        for p in pending:
            if p.deadline <= now:
                name = kp.API_NAMES.get(p.api_key, p.api_key)
                self._fail(KafkaTimeoutError(f"{self}: {name} request timed out after {p.timeout:.3g}s"))
                return
        nxt = min(p.deadline for p in pending)
        if nxt != math.inf:
            self._timer = loop.call_at(nxt, self._check_timeouts)

    def _on_frame(self, frame: memoryview) -> None:
        if not self._pending:
            self._fail(BadResponseError(f"{self}: response with no request in flight"))
            return
        p = self._pending[0]
        if p.fast is not None:
            res = _fast.parse_produce_response(frame, p.version, p.fast[0], p.fast[1])
            if res is not None:
                if res.correlation_id != p.correlation_id:
                    self._cid_mismatch(res.correlation_id, p)
                    return
                self._pending.popleft()
                cb = p.callback          # send_produce_one always has one: no settle() between
                if cb is not None:
                    p.callback = None
                    cb(res, None)
                else:
                    p.settle(res, None)
                return
        try:
            cid, pos = kp.decode_response_header(frame, p.api_key, p.version)
        except kp.ProtocolError as exc:
            self._fail(BadResponseError(f"{self}: bad response header: {exc}"))
            return
        if cid != p.correlation_id:
            self._cid_mismatch(cid, p)
            return
        self._pending.popleft()
        cls = kp.RESPONSES[p.api_key]
        try:
            body, end = cls.decode(frame, p.version, pos)
        except kp.ProtocolError as exc:
            if p.api_key == ApiKey.API_VERSIONS and p.version > 0:
                # An UNSUPPORTED_VERSION answer comes as a v0 body.
                try:
                    body, end = cls.decode(frame, 0, pos)
                except kp.ProtocolError:
                    body = None
                if body is not None:
                    p.settle(body, None)
                    return
            err = BadResponseError(f"{self}: {cls.__name__} v{p.version} does not decode: {exc}")
            p.settle(None, err)
            self._fail(err)
            return
        p.settle(body, None)

    def _cid_mismatch(self, cid: int, p: _Pending) -> None:
        self._fail(BadResponseError(
            f"{self}: correlation id {cid} does not match the request in flight ({p.correlation_id})"))

    def _fail(self, exc: KafkaError) -> None:
        if self.closed:
            return
        with self._wlock:   # no direct write after this (the fd may be closed and reused)
            self.closed = True
        self.close_reason = exc
        if _fast is not None and self._protocol is not None:
            self._protocol.reader.stopped = True
        if self._transport is not None:
            self._transport.abort()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        pending, self._pending = self._pending, collections.deque()
        for p in pending:
            fut = p.future
            p.settle(None, exc)
            if fut is not None and fut.done() and not fut.cancelled():
                fut.exception()  # retrieved: callers that gave up must not log noise
        for cb in self._close_callbacks:
            try:
                cb(self, exc)
            except Exception:  # pragma: no cover - a callback's bug must not break the others
                log.exception("close callback failed")
        self._close_callbacks.clear()

    def close(self) -> None:
        self._fail(KafkaConnectionError(f"{self}: closed"))
