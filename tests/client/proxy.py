"""A tiny TCP proxy for fault injection, run on its own event loop thread.

Modes (set ``proxy.mode`` any time; it applies to bytes flowing broker -> client):
  "pass"     forward everything
  "stall"    hold responses back (the client's request times out)
  "reset"    after ``reset_after`` more response bytes, abort both sides (RST mid-response)
  "corrupt"  overwrite the next response frame's body after its correlation id with 0xFF
  "bad_cid"  change the correlation id of the next response frame

Error injection (``proxy.inject(...)``, any time from any thread): the proxy frames the
requests too, so it knows each response's api key and version by correlation id, decodes
the response with kafka_protocol, rewrites it and encodes it again.

  Produce   the matching partitions' error_code is replaced.  So that nothing is written
            (a retry must not duplicate a non-idempotent producer's records), the request
            itself is rewritten first: those partitions are addressed to a partition index
            that does not exist, and the answer is mapped back to the real index.
  Fetch     the matching partitions get the error code and no records.
  Metadata  the matching partitions get the error code, and ``leader`` as leader id
            (-1: no leader, as during an election).

``redirect = True`` rewrites the broker addresses of Metadata and FindCoordinator
responses to the proxy itself, so that every connection of a client goes through it
(the brokers in these tests have one node).  ``events`` records, in order, each request
("req", api_key) and each injected error ("err", api_key, code) as the client sees it.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import kafka_protocol as kp

PRODUCE, FETCH, METADATA, FIND_COORDINATOR = 0, 1, 3, 10
_NOWHERE = 1 << 30  # a partition index no test topic has: the broker refuses it and writes nothing


@dataclass
class Injection:
    """Rewrite the next ``count`` matching responses (None: until ``stop()``)."""

    api_key: int
    error_code: int
    topic: str | None = None
    partition: int | None = None
    count: int | None = 1
    leader: int | None = None  # Metadata only: the leader id to report
    hits: int = 0
    active: bool = True
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def matches(self, api_key: int, topic: str | None, partition: int) -> bool:
        return (self.active and api_key == self.api_key and (self.topic is None or topic == self.topic)
                and (self.partition is None or partition == self.partition))

    def take(self) -> bool:
        """Use up one response; False once the count is spent."""
        with self._lock:
            if not self.active:
                return False
            self.hits += 1
            if self.count is not None and self.hits >= self.count:
                self.active = False
            return True

    def stop(self) -> None:
        self.active = False


class FaultProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.mode = "pass"
        self.reset_after = 10
        self.connections = 0
        self.redirect = False
        self.injections: list[Injection] = []
        self.events: list[tuple[Any, ...]] = []
        self.loop = asyncio.new_event_loop()
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        self._sock = sock
        self._server: asyncio.base_events.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []
        self._thread = threading.Thread(target=self._main, daemon=True)
        ready = threading.Event()
        self._ready = ready
        self._thread.start()
        ready.wait(5)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def inject(self, api_key: int, error_code: int, *, topic: str | None = None, partition: int | None = None,
               count: int | None = 1, leader: int | None = None) -> Injection:
        inj = Injection(api_key, error_code, topic, partition, count, leader)
        self.injections.append(inj)
        return inj

    def clear(self) -> None:
        for inj in self.injections:
            inj.stop()
        self.injections = []

    def requests(self, api_key: int) -> int:
        return sum(1 for e in list(self.events) if e[0] == "req" and e[1] == api_key)

    def requests_after_error(self, err_key: int, req_key: int) -> int:
        """How many ``req_key`` requests the client sent after it first saw an injected error
        in a response of ``err_key``."""
        events = list(self.events)
        for i, e in enumerate(events):
            if e[0] == "err" and e[1] == err_key:
                return sum(1 for x in events[i + 1:] if x[0] == "req" and x[1] == req_key)
        return 0

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        self._server = self.loop.run_until_complete(asyncio.start_server(self._handle, sock=self._sock))
        self._ready.set()
        self.loop.run_forever()
        # Unwind the connection handlers still running, so none is destroyed pending.
        pending = [t for t in asyncio.all_tasks(self.loop) if not t.done()]
        for t in pending:
            t.cancel()
        if pending:
            self.loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        self.loop.close()

    # ---- rewriting ----
    def _active(self, api_key: int) -> list[Injection]:
        return [i for i in list(self.injections) if i.active and i.api_key == api_key]

    def _rewrite_request(self, body: bytes, hdr: kp.RequestHeader, plan: dict[int, Any]) -> bytes:
        """Produce with an injection: address the matching partitions to a partition that does
        not exist; remember (topic, fake index) -> (real index, code) for the response."""
        if hdr.api_key != PRODUCE or not self._active(PRODUCE):
            return body
        req, _ = kp.ProduceRequest.decode(memoryview(body), hdr.api_version, hdr.body_offset)
        remap: dict[tuple[str, int], tuple[int, int]] = {}
        for t in req.topic_data:
            for p in t.partition_data:
                inj = next((i for i in self._active(PRODUCE) if i.matches(PRODUCE, t.name, p.index)), None)
                if inj is not None and inj.take():
                    fake = _NOWHERE + p.index
                    remap[(t.name, fake)] = (p.index, inj.error_code)
                    p.index = fake
        if not remap:
            return body
        plan[hdr.correlation_id] = remap
        return body[:hdr.body_offset] + req.encode(hdr.api_version)

    def _rewrite_response(self, body: bytes, api_key: int, version: int, remap: Any) -> bytes:
        if api_key == PRODUCE and remap:
            return self._rewrite(body, api_key, version, lambda r: self._produce(r, remap))
        if api_key == FETCH and self._active(FETCH):
            return self._rewrite(body, api_key, version, self._fetch)
        if api_key == METADATA and (self.redirect or self._active(METADATA)):
            return self._rewrite(body, api_key, version, self._metadata)
        if api_key == FIND_COORDINATOR and self.redirect:
            return self._rewrite(body, api_key, version, self._coordinator)
        return body

    def _rewrite(self, body: bytes, api_key: int, version: int, fn: Callable[[Any], None]) -> bytes:
        _, off = kp.decode_response_header(body, api_key, version)
        resp, _ = kp.RESPONSES[api_key].decode(memoryview(body), version, off)
        fn(resp)
        return body[:off] + resp.encode(version)

    def _produce(self, resp: Any, remap: dict[tuple[str, int], tuple[int, int]]) -> None:
        for t in resp.responses:
            for p in t.partition_responses:
                real = remap.get((t.name, p.index))
                if real is not None:
                    p.index, p.error_code = real
                    p.base_offset, p.error_message = -1, None
                    self.events.append(("err", PRODUCE, p.error_code))

    def _fetch(self, resp: Any) -> None:
        for t in resp.responses:
            for p in t.partitions:
                inj = next((i for i in self._active(FETCH) if i.matches(FETCH, t.topic, p.partition_index)), None)
                if inj is not None and inj.take():
                    p.error_code, p.records = inj.error_code, None
                    p.high_watermark = p.last_stable_offset = -1
                    self.events.append(("err", FETCH, p.error_code))

    def _metadata(self, resp: Any) -> None:
        if self.redirect:
            for b in resp.brokers:
                b.host, b.port = "127.0.0.1", self.port
        for t in resp.topics:
            for p in t.partitions:
                inj = next((i for i in self._active(METADATA) if i.matches(METADATA, t.name, p.partition_index)),
                           None)
                if inj is not None and inj.take():
                    p.error_code = inj.error_code
                    if inj.leader is not None:
                        p.leader_id = inj.leader
                    self.events.append(("err", METADATA, p.error_code))

    def _coordinator(self, resp: Any) -> None:
        if resp.coordinators:
            for c in resp.coordinators:
                if c.node_id >= 0:
                    c.host, c.port = "127.0.0.1", self.port
        elif resp.node_id is not None and resp.node_id >= 0:
            resp.host, resp.port = "127.0.0.1", self.port

    # ---- the pipes ----
    async def _handle(self, cr: asyncio.StreamReader, cw: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            br, bw = await asyncio.open_connection(*self.target)
        except OSError:
            cw.close()
            return
        self._writers += [cw, bw]
        apis: dict[int, tuple[int, int]] = {}  # correlation id -> (api key, version)
        plans: dict[int, Any] = {}  # correlation id -> produce partitions to map back

        async def up() -> None:
            try:
                while True:
                    hdr = await cr.readexactly(4)
                    (size,) = struct.unpack(">i", hdr)
                    body = await cr.readexactly(size)
                    try:
                        h = kp.decode_request_header(body)
                    except kp.DecodeError:
                        h = None
                    if h is not None:
                        apis[h.correlation_id] = (h.api_key, h.api_version)
                        self.events.append(("req", h.api_key))
                        new = self._rewrite_request(body, h, plans)
                        if new is not body:
                            body, hdr = new, struct.pack(">i", len(new))
                    bw.write(hdr + body)
                    await bw.drain()
            except (asyncio.IncompleteReadError, ConnectionError, OSError):
                pass
            finally:
                bw.close()

        async def down() -> None:
            try:
                while True:
                    hdr = await br.readexactly(4)
                    (size,) = struct.unpack(">i", hdr)
                    body = bytearray(await br.readexactly(size))
                    while self.mode == "stall":
                        await asyncio.sleep(0.02)
                    if size >= 4:
                        (cid,) = struct.unpack_from(">i", body, 0)
                        api = apis.pop(cid, None)
                        if api is not None:
                            new = self._rewrite_response(bytes(body), api[0], api[1], plans.pop(cid, None))
                            if len(new) != size or new != body:
                                body, hdr = bytearray(new), struct.pack(">i", len(new))
                                size = len(new)
                    frame = bytes(hdr) + bytes(body)
                    if self.mode == "corrupt" and size > 8:
                        self.mode = "pass"
                        body[4:] = b"\xff" * (size - 4)
                        frame = bytes(hdr) + bytes(body)
                    elif self.mode == "bad_cid":
                        self.mode = "pass"
                        body[0:4] = struct.pack(">i", struct.unpack(">i", body[0:4])[0] + 1000)
                        frame = bytes(hdr) + bytes(body)
                    elif self.mode == "reset":
                        n = min(self.reset_after, len(frame))
                        cw.write(frame[:n])
                        await cw.drain()
                        cw.transport.abort()
                        bw.transport.abort()
                        self.mode = "pass"
                        return
                    cw.write(frame)
                    await cw.drain()
            except (asyncio.IncompleteReadError, ConnectionError, OSError):
                pass
            finally:
                cw.close()

        await asyncio.gather(up(), down())

    def drop_all(self) -> None:
        def go() -> None:
            for w in self._writers:
                w.transport.abort()
            self._writers.clear()
        self.loop.call_soon_threadsafe(go)

    def close(self) -> None:
        def go() -> None:
            if self._server is not None:
                self._server.close()
            for w in self._writers:
                w.transport.abort()
            self.loop.stop()
        self.loop.call_soon_threadsafe(go)
        self._thread.join(5)

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
