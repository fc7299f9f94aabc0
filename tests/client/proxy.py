"""A tiny TCP proxy for fault injection, run on its own event loop thread.

Modes (set ``proxy.mode`` any time; it applies to bytes flowing broker -> client):
  "pass"     forward everything
  "stall"    hold responses back (the client's request times out)
  "reset"    after ``reset_after`` more response bytes, abort both sides (RST mid-response)
  "corrupt"  overwrite the next response frame's body after its correlation id with 0xFF
  "bad_cid"  change the correlation id of the next response frame
"""

from __future__ import annotations

import asyncio
import socket
import struct
import threading


class FaultProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.mode = "pass"
        self.reset_after = 10
        self.connections = 0
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

    async def _handle(self, cr: asyncio.StreamReader, cw: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            br, bw = await asyncio.open_connection(*self.target)
        except OSError:
            cw.close()
            return
        self._writers += [cw, bw]

        async def up() -> None:
            try:
                while data := await cr.read(65536):
                    bw.write(data)
                    await bw.drain()
            except (ConnectionError, OSError):
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
