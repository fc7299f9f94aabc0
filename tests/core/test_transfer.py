"""kafka_core._transfer: Transfer over a socketpair and loopback TCP.

The sending socket has a small SO_SNDBUF and the reader is slow, so sends
stop with EAGAIN (``send`` returns False) and resume mid-part; the received
stream must equal the concatenated parts byte for byte, in every mode.
"""

from __future__ import annotations

import os
import random
import select
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kafka_core import _errors as E
from kafka_core._transfer import (
    XFER_AUTO,
    XFER_COPY,
    XFER_SENDFILE,
    XFER_URING,
    Transfer,
    auto_mode,
    mode_name,
    uring_available,
)

MODES = [XFER_SENDFILE, XFER_COPY, XFER_AUTO] + ([XFER_URING] if uring_available() else [])
MODE_IDS = [mode_name(m) for m in MODES]
FILE_SIZE = 512 * 1024


@pytest.fixture(scope="module")
def data_file() -> Iterator[tuple[int, bytes]]:
    content = random.Random(7).randbytes(FILE_SIZE)
    with tempfile.TemporaryFile() as f:
        f.write(content)
        f.flush()
        yield f.fileno(), content


def unix_pair() -> tuple[socket.socket, socket.socket]:
    a, b = socket.socketpair()
    a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    b.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    a.setblocking(False)
    return a, b


def tcp_pair() -> tuple[socket.socket, socket.socket]:
    with socket.socket() as lst:
        lst.bind(("127.0.0.1", 0))
        lst.listen(1)
        a = socket.socket()
        # Only the send side is small: a tiny receive window on loopback
        # stalls on delayed ACKs and zero-window probes.
        a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        a.connect(lst.getsockname())
        b, _ = lst.accept()
    a.setblocking(False)
    return a, b


PAIRS = {"unix": unix_pair, "tcp": tcp_pair}


class Reader(threading.Thread):
    """Reads everything (in small bites, with pauses when slow) until EOF,
    or closes after ``close_after`` bytes."""

    def __init__(self, sock: socket.socket, *, slow: bool = True, close_after: int = 0) -> None:
        super().__init__(daemon=True)
        self.sock, self.slow, self.close_after = sock, slow, close_after
        self.chunks: list[bytes] = []
        self.got = 0
        self.rng = random.Random(11)

    def run(self) -> None:
        try:
            while True:
                chunk = self.sock.recv(self.rng.randint(1, 3000) if self.slow else 1 << 16)
                if not chunk:
                    break
                self.chunks.append(chunk)
                self.got += len(chunk)
                if self.close_after and self.got >= self.close_after:
                    break
                if self.slow and self.rng.random() < 0.25:
                    time.sleep(0.0002)
        finally:
            self.sock.close()

    def data(self) -> bytes:
        return b"".join(self.chunks)


def send_all(t: Transfer, sock: socket.socket, mode: int) -> int:
    """Send until done, waiting for writability; return the number of False returns."""
    agains = 0
    while True:
        before = t.sent
        if t.send(sock.fileno(), mode):
            return agains
        assert t.sent >= before
        agains += 1
        select.select([], [sock], [], 1.0)


def random_parts(rng: random.Random, fd: int, content: bytes, n: int) -> tuple[list[object], bytes]:
    """A mix of bytes, bytearray, memoryview and file tuples; zero-length ones too."""
    parts: list[object] = []
    expect = []
    for _ in range(n):
        kind = rng.randrange(6)
        size = 0 if kind == 0 else rng.randrange(200_000 if kind == 5 else 3000)
        if rng.random() < 0.5:
            raw = rng.randbytes(size)
            form = rng.randrange(3)
            parts.append(raw if form == 0 else bytearray(raw) if form == 1 else memoryview(b"xx" + raw)[2:])
            expect.append(raw)
        else:
            pos = rng.randrange(FILE_SIZE)
            size = min(size, FILE_SIZE - pos)
            parts.append((fd, pos, size))
            expect.append(content[pos:pos + size])
    return parts, b"".join(expect)


@pytest.mark.parametrize("pair", list(PAIRS))
@pytest.mark.parametrize("mode", MODES, ids=MODE_IDS)
def test_random_parts_byte_exact(data_file: tuple[int, bytes], pair: str, mode: int) -> None:
    fd, content = data_file
    rng = random.Random(hash((pair, mode)) & 0xFFFF)
    agains = 0
    for round_ in range(6):
        parts, expect = random_parts(rng, fd, content, rng.randint(1, 30))
        a, b = PAIRS[pair]()
        reader = Reader(b, slow=round_ % 2 == 0)
        reader.start()
        t = Transfer(parts)
        assert t.total == len(expect)
        agains += send_all(t, a, mode)
        assert t.done and t.sent == t.total
        a.close()
        reader.join(10)
        assert reader.data() == expect
    assert agains > 0  # small buffers: EAGAIN and partial progress did happen


class Slice:
    """Duck-typed FileSlice: integer attributes fd, position, length."""

    def __init__(self, fd: int, position: int, length: int) -> None:
        self.fd, self.position, self.length = fd, position, length


def test_part_kinds(data_file: tuple[int, bytes]) -> None:
    fd, content = data_file
    a, b = unix_pair()
    reader = Reader(b, slow=False)
    reader.start()
    t = Transfer([b"head", Slice(fd, 10, 100), (fd, 0, 0), b"", bytearray(b"mid"), (fd, 5, 3)])
    assert len(t) == 6 and t.total == 4 + 100 + 3 + 3
    assert not t.done
    send_all(t, a, XFER_AUTO)
    a.close()
    reader.join(10)
    assert reader.data() == b"head" + content[10:110] + b"mid" + content[5:8]
    assert t.done


def test_parts_kept_alive(data_file: tuple[int, bytes]) -> None:
    """The Transfer holds the buffers: deleting the caller's references is safe,
    and a bytearray it holds cannot be resized under it."""
    a, b = unix_pair()
    ba = bytearray(b"x" * 1000)
    t = Transfer([ba, bytes(range(256)) * 4])
    with pytest.raises(BufferError):
        ba.extend(b"more")
    del ba
    reader = Reader(b, slow=False)
    reader.start()
    send_all(t, a, XFER_COPY)
    a.close()
    reader.join(10)
    assert reader.data() == b"x" * 1000 + bytes(range(256)) * 4


def test_bad_parts() -> None:
    with pytest.raises(TypeError):
        Transfer([123])
    with pytest.raises(TypeError):
        Transfer([(1, 2)])
    with pytest.raises(ValueError):
        Transfer([(-1, 0, 10)])
    with pytest.raises(ValueError):
        Transfer([Slice(3, -5, 10)])


def test_empty_transfer() -> None:
    a, b = unix_pair()
    for mode in MODES:
        t = Transfer([])
        assert t.done and t.total == 0
        assert t.send(a.fileno(), mode) is True
    a.close()
    b.close()


def test_bad_mode() -> None:
    a, b = unix_pair()
    with pytest.raises(E.InvalidArgumentError):
        Transfer([b"x"]).send(a.fileno(), 17)
    a.close()
    b.close()


@pytest.mark.parametrize("pair", list(PAIRS))
@pytest.mark.parametrize("mode", MODES, ids=MODE_IDS)
def test_peer_closes_mid_transfer(data_file: tuple[int, bytes], pair: str, mode: int) -> None:
    fd, _ = data_file
    a, b = PAIRS[pair]()
    reader = Reader(b, slow=False, close_after=20_000)
    reader.start()
    t = Transfer([b"h" * 100, (fd, 0, FILE_SIZE), b"m" * 5000, (fd, 7, FILE_SIZE - 7)])
    with pytest.raises(E.ClosedError) as ei:
        send_all(t, a, mode)
    assert isinstance(ei.value, ConnectionError)
    assert 0 < t.sent < t.total and not t.done
    reader.join(10)
    a.close()


@pytest.mark.parametrize("mode", MODES, ids=MODE_IDS)
def test_file_shorter_than_part(mode: int) -> None:
    with tempfile.TemporaryFile() as f:
        f.write(b"a" * 10_000)
        f.flush()
        a, b = unix_pair()
        reader = Reader(b, slow=False)
        reader.start()
        t = Transfer([b"0123456789", (f.fileno(), 4000, 9000)])
        with pytest.raises(E.LogIOError) as ei:
            send_all(t, a, mode)
        assert ei.value.errno == 5  # EIO
        assert t.sent == 6010
        a.close()
        reader.join(10)
        assert reader.data() == b"0123456789" + b"a" * 6000


@pytest.mark.parametrize("mode", MODES, ids=MODE_IDS)
def test_file_truncated_under_transfer(mode: int, tmp_path: Path) -> None:
    path = tmp_path / "seg"
    path.write_bytes(os.urandom(FILE_SIZE))
    with open(path, "rb") as f:
        a, b = unix_pair()
        t = Transfer([(f.fileno(), 0, FILE_SIZE)])
        assert t.send(a.fileno(), mode) is False  # nobody reads yet: the socket fills
        assert 0 < t.sent < FILE_SIZE
        os.truncate(path, t.sent + 100)
        reader = Reader(b, slow=False)
        reader.start()
        with pytest.raises(OSError):
            send_all(t, a, mode)
        a.close()
        reader.join(10)
        assert reader.got == t.sent


def test_send_accepts_socket_object(data_file: tuple[int, bytes]) -> None:
    fd, content = data_file
    a, b = unix_pair()
    t = Transfer([(fd, 0, 1000)])
    assert t.send(a) is True
    assert b.recv(2000) == content[:1000]
    a.close()
    b.close()


def test_uring_unavailable() -> None:
    assert auto_mode() in (XFER_SENDFILE, XFER_URING, XFER_COPY)
    if not uring_available():
        a, b = unix_pair()
        with pytest.raises(E.UnsupportedError):
            Transfer([b"x"]).send(a.fileno(), XFER_URING)
        a.close()
        b.close()


SUBPROCESS_CHECK = r"""
import os, signal, socket, sys, tempfile
sys.path[:0] = sys.argv[1:]
from kafka_core import _errors as E
from kafka_core._transfer import XFER_AUTO, XFER_URING, Transfer, auto_mode, uring_available
assert not uring_available(), "KC_NO_URING=1 must turn io_uring off"
a, b = socket.socketpair()
with tempfile.TemporaryFile() as f:
    f.write(b"z" * 100000); f.flush()
    t = Transfer([b"hdr", (f.fileno(), 0, 100000)])
    try:
        Transfer([b"x"]).send(a.fileno(), XFER_URING)
        raise SystemExit("XFER_URING did not raise")
    except E.UnsupportedError:
        pass
    got = b""
    while not t.send(a.fileno(), XFER_AUTO):
        got += b.recv(1 << 20)
    a.close()
    while chunk := b.recv(1 << 20):
        got += chunk
    assert got == b"hdr" + b"z" * 100000
    # default SIGPIPE action: a transfer to a closed peer must not kill us
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    c, d = socket.socketpair()
    d.close()
    try:
        Transfer([(f.fileno(), 0, 1000)]).send(c.fileno(), XFER_AUTO)
        raise SystemExit("no ClosedError")
    except E.ClosedError:
        pass
print("ok", auto_mode())
"""


def test_auto_works_with_uring_disabled_and_default_sigpipe() -> None:
    """KC_NO_URING=1 at run time: no io_uring, AUTO still sends; also with
    SIGPIPE at its default action, a closed peer is an exception, not death."""
    import kafka_core

    roots = [str(Path(kafka_core.__file__).parents[1])]
    env = dict(os.environ, KC_NO_URING="1")
    r = subprocess.run([sys.executable, "-c", SUBPROCESS_CHECK, *roots], env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("ok")


def test_concurrent_send_refused(data_file: tuple[int, bytes]) -> None:
    """Two threads on one Transfer would race on its progress: one is refused."""
    fd, _ = data_file
    a, b = unix_pair()
    t = Transfer([(fd, 0, FILE_SIZE)] * 50)
    errors: list[BaseException] = []
    stop = threading.Event()

    def spin() -> None:
        while not stop.is_set():
            try:
                t.send(a.fileno(), XFER_COPY)
            except RuntimeError as e:
                errors.append(e)
                return
            except OSError:
                return

    threads = [threading.Thread(target=spin) for _ in range(2)]
    for th in threads:
        th.start()
    deadline = time.monotonic() + 5
    while not errors and time.monotonic() < deadline:
        b.recv(1 << 16)
    stop.set()
    b.close()
    for th in threads:
        th.join(10)
    a.close()
    assert errors and "already running" in str(errors[0])


@pytest.mark.parametrize("mode", MODES, ids=MODE_IDS)
def test_closed_peer_leaves_signal_state_alone(data_file: tuple[int, bytes], mode: int) -> None:
    """Python ignores SIGPIPE, so the send path skips the mask dance: a
    closed peer is ClosedError, no SIGPIPE is left pending or blocked; with
    a Python handler installed instead, the handler never runs."""
    import signal

    fd, _ = data_file
    calls: list[int] = []
    old = signal.getsignal(signal.SIGPIPE)
    try:
        for handler in (signal.SIG_IGN, lambda signum, frame: calls.append(signum)):
            signal.signal(signal.SIGPIPE, handler)
            a, b = socket.socketpair()
            b.close()
            a.setblocking(False)
            with pytest.raises(E.ClosedError):
                Transfer([(fd, 0, 5000), b"tail"]).send(a, mode)
            a.close()
            assert signal.SIGPIPE not in signal.pthread_sigmask(signal.SIG_BLOCK, [])
            assert signal.SIGPIPE not in signal.sigpending()
    finally:
        signal.signal(signal.SIGPIPE, old)
    assert calls == []
