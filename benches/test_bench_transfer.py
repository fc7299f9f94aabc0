"""Zero-copy transfer: a 64 MiB file range to a loopback TCP socket.

A reader process drains the socket (recv_into a 1 MiB buffer).  The sender
(this thread) runs Transfer.send on a non-blocking socket, waiting with
select on EAGAIN, in each mode: sendfile, io_uring (splice through a pipe)
and copy (pread + send, the baseline).

Reported in extra_info per mode:
  mb_per_s                throughput (64 MiB / mean round time)
  cpu_s_per_gb_thread     CPU seconds of the sending thread per GB
                          (time.thread_time: user + system of this thread)
  cpu_s_per_gb_process    CPU seconds of the whole process per GB
                          (RUSAGE_SELF; io_uring's io-wq workers that run
                          the splices count here, not in the thread figure)
  *_vs_copy               ratios against the copy mode's figures
Targets: CPU/GB <= 0.6x copy's, throughput >= 1.0x copy's.  Never asserted.
"""

from __future__ import annotations

import os
import resource
import select
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator

import pytest

from kafka_core._transfer import XFER_COPY, XFER_SENDFILE, XFER_URING, Transfer, uring_available

SIZE = 64 << 20
GB = 1e9
ROUNDS = int(os.environ.get("KC_BENCH_ROUNDS", "10"))

READER = r"""
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
buf = bytearray(1 << 20)
total = 0
while n := s.recv_into(buf):
    total += n
print(total)
"""

# mode -> (mb_per_s, cpu_thread_s_per_gb, cpu_process_s_per_gb)
RESULTS: dict[str, tuple[float, float, float]] = {}


@pytest.fixture(scope="module")
def big_file() -> Iterator[int]:
    with tempfile.TemporaryFile() as f:
        chunk = os.urandom(1 << 20)
        for _ in range(SIZE >> 20):
            f.write(chunk)
        f.flush()
        os.pread(f.fileno(), 1, 0)
        yield f.fileno()
    if RESULTS:
        print("\ntransfer of 64 MiB over loopback TCP:")
        for mode, (mbps, cpu_t, cpu_p) in RESULTS.items():
            print(f"  {mode:9s} {mbps:8.0f} MB/s  sender CPU {cpu_t:.3f} s/GB (thread)  {cpu_p:.3f} s/GB (process)")


def connect_reader() -> tuple[socket.socket, subprocess.Popen[str]]:
    with socket.socket() as lst:
        lst.bind(("127.0.0.1", 0))
        lst.listen(1)
        proc = subprocess.Popen([sys.executable, "-c", READER, str(lst.getsockname()[1])],
                                stdout=subprocess.PIPE, text=True)
        lst.settimeout(30)
        sock, _ = lst.accept()
    sock.setblocking(False)
    return sock, proc


MODES = {"copy": XFER_COPY, "sendfile": XFER_SENDFILE, "io_uring": XFER_URING}


@pytest.mark.parametrize("name", list(MODES))
def test_transfer_64mib(benchmark, big_file: int, name: str) -> None:
    mode = MODES[name]
    if mode == XFER_URING and not uring_available():
        pytest.skip("io_uring not available")
    sock, proc = connect_reader()
    cpu = {"thread": 0.0, "process": 0.0, "rounds": 0}

    def one_round() -> None:
        t0 = time.thread_time()
        r0 = resource.getrusage(resource.RUSAGE_SELF)
        t = Transfer([b"\0" * 64, (big_file, 0, SIZE)])
        while not t.send(sock.fileno(), mode):
            select.select([], [sock], [])
        r1 = resource.getrusage(resource.RUSAGE_SELF)
        cpu["thread"] += time.thread_time() - t0
        cpu["process"] += (r1.ru_utime + r1.ru_stime) - (r0.ru_utime + r0.ru_stime)
        cpu["rounds"] += 1

    try:
        benchmark.pedantic(one_round, rounds=ROUNDS, iterations=1, warmup_rounds=1)
    finally:
        sock.close()
        out, _ = proc.communicate(timeout=60)
    nbytes = (SIZE + 64) * cpu["rounds"]
    assert int(out) == nbytes  # the reader got every byte (correctness, not speed)
    mbps = (SIZE + 64) / benchmark.stats.stats.mean / 1e6
    cpu_t = cpu["thread"] / (nbytes / GB)
    cpu_p = cpu["process"] / (nbytes / GB)
    RESULTS[name] = (mbps, cpu_t, cpu_p)
    info = {"bytes": SIZE + 64, "mb_per_s": round(mbps, 1), "cpu_s_per_gb_thread": round(cpu_t, 4),
            "cpu_s_per_gb_process": round(cpu_p, 4)}
    if name != "copy" and "copy" in RESULTS:
        c_mbps, c_t, c_p = RESULTS["copy"]
        info.update(throughput_vs_copy=round(mbps / c_mbps, 3), cpu_thread_vs_copy=round(cpu_t / c_t, 3),
                    cpu_process_vs_copy=round(cpu_p / c_p, 3))
    benchmark.extra_info.update(info)
