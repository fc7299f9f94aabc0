"""Crash test of the partition log: SIGKILL a writer at random moments.

A child process appends batches with flush_interval_messages=1 (an fsync
per append) and prints each acknowledged batch on its stdout pipe.  The
parent kills it at a random moment, many times; after every kill the log
must reopen (unclean: recovery), be valid, and hold every acknowledged
batch with its exact records.  Batches written but not yet acknowledged
may or may not be there.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import kafka_protocol
import pytest

import kafka_core
from kafka_core._log import Log

CFG = {"segment_bytes": 32 * 1024, "index_interval_bytes": 1024, "max_index_bytes": 4096}

CHILD = r"""
import random, sys
from kafka_core._log import Log
from kafka_protocol import _pyrecords as py

path, rnd = sys.argv[1], int(sys.argv[2])
rng = random.Random(rnd)
log = Log(path, segment_bytes=32 * 1024, index_interval_bytes=1024, max_index_bytes=4096,
          flush_interval_messages=1)
out = sys.stdout
out.write("ready\n")
out.flush()
i = 0
while True:
    n = rng.randint(1, 5)
    size = rng.choice((10, 100, 2000))
    recs = [(1000 + i, None, f"{rnd}-{i}-{j}-".encode() + b"x" * size, []) for j in range(n)]
    info = log.append(bytearray(py.make_batch(recs, base_timestamp=1000 + i)))
    if info.flush_due:
        log.flush()
    out.write(f"{info.first_offset} {info.last_offset} {rnd} {i} {size}\n")
    out.flush()
    i += 1
"""


def _expected_values(rnd: int, i: int, n: int, size: int) -> list[bytes]:
    return [f"{rnd}-{i}-{j}-".encode() + b"x" * size for j in range(n)]


class _Batch:
    __slots__ = ("base_offset", "last_offset_delta", "values")

    def __init__(self, base_offset: int, last_offset_delta: int, values: list[bytes | None]) -> None:
        self.base_offset = base_offset
        self.last_offset_delta = last_offset_delta
        self.values = values


def _all_batches(log: Log) -> dict[int, _Batch]:
    """Every batch of the log with its record values, decoded by the C core (CRC verified):
    with thousands of batches after 30 rounds, the pure-Python oracle made each round's check
    cost seconds (the records codec itself is checked against it in tests/property)."""
    out = {}
    off = log.start_offset
    while off < log.end_offset:
        with log.read(off, 1 << 20) as s:
            data = s.read_bytes()
        infos, _ = kafka_core.scan_batches(data)
        mv = memoryview(data)
        for info in infos:
            recs = kafka_core.iter_records(mv[info.position:info.position + info.size], verify_crc=True)
            out[info.base_offset] = _Batch(info.base_offset, info.last_offset_delta, [r.value for r in recs])
        off = infos[-1].last_offset + 1
    return out


@pytest.mark.slow
def test_sigkill_keeps_every_acknowledged_batch(tmp_path: Path) -> None:
    path = tmp_path / "crash-0"
    env = dict(os.environ)
    roots = {str(Path(kafka_core.__file__).parents[1]), str(Path(kafka_protocol.__file__).parents[1])}
    env["PYTHONPATH"] = os.pathsep.join([*roots, env.get("PYTHONPATH", "")])
    rng = random.Random(1234)
    acked: dict[int, tuple[int, int, int, int]] = {}  # first offset -> (last, round, i, size)
    rounds, deadline = 0, time.monotonic() + 60
    while rounds < 30 and time.monotonic() < deadline:
        child = subprocess.Popen([sys.executable, "-c", CHILD, str(path), str(rounds)], stdout=subprocess.PIPE,
                                 env=env)
        # start the clock once the child is importing nothing any more: a slow
        # start (busy machine) must not turn into rounds with nothing appended
        assert child.stdout is not None and child.stdout.readline() == b"ready\n"
        time.sleep(rng.uniform(0.05, 0.4))
        child.send_signal(signal.SIGKILL)
        out, _ = child.communicate(timeout=30)
        assert child.returncode == -signal.SIGKILL
        lines = out.decode().split("\n")[:-1]  # the last piece may be a torn line
        for line in lines:
            first, last, rnd, i, size = map(int, line.split())
            acked[first] = (last, rnd, i, size)
        rounds += 1

        with Log(path, **CFG) as log:
            r = log.recovery
            assert not r["clean"]
            batches = _all_batches(log)
            assert sum(b.last_offset_delta + 1 for b in batches.values()) == log.end_offset
            for first, (last, rnd, i, size) in acked.items():
                b = batches.get(first)
                assert b is not None, f"acknowledged batch at offset {first} lost (round {rounds})"
                assert b.base_offset + b.last_offset_delta == last
                assert b.values == _expected_values(rnd, i, last - first + 1, size)
                assert log.lookup(last).batch_base_offset == first
            # the reopen above closes cleanly; make the next round start unclean
            # the way a crash leaves it, so every round exercises recovery
            log.close(clean=False)
    print(f"{rounds} rounds, {len(acked)} acknowledged batches")
    assert rounds >= 10 and len(acked) > rounds
