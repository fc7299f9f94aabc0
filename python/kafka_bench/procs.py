"""Process accounting from /proc for a broker's whole process tree (RabbitMQ
runs beam.smp under a shell, with helper children), a peak-RSS sampler, and a
registry of everything the runner (or a test fixture) started so that it can all
be stopped on any exit path, the interpreter's exit included."""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import dataclass

from kafka_broker.testing.process import terminate_group

_TICKS = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


@dataclass
class TreeStats:
    cpu_seconds: float
    rss_bytes: int


def _stat(pid: int) -> tuple[int, float, int] | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / _TICKS, int(fields[21]) * _PAGE


def tree_pids(root: int) -> list[int]:
    """root and all its descendants (by parent pid)."""
    parents: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            st = _stat(int(d))
            if st:
                parents.setdefault(st[0], []).append(int(d))
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(parents.get(p, []))
    return out


def tree_stats(root: int) -> TreeStats:
    cpu, rss = 0.0, 0
    for p in tree_pids(root):
        st = _stat(p)
        if st:
            cpu += st[1]
            rss += st[2]
    return TreeStats(cpu, rss)


class PeakRss:
    """Samples the tree's RSS every `interval` seconds while running."""

    def __init__(self, root: int, interval: float = 0.25) -> None:
        self.root, self.interval, self.peak = root, interval, 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        pids, refreshed = tree_pids(self.root), time.monotonic()
        while not self._stop.is_set():
            if time.monotonic() - refreshed > 2:
                pids, refreshed = tree_pids(self.root), time.monotonic()
            rss = sum(st[2] for st in map(_stat, pids) if st)
            self.peak = max(self.peak, rss)
            self._stop.wait(self.interval)

    def __enter__(self) -> PeakRss:
        self._t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._t.join()


# Everything started by the runner: (description, Popen).  stop_all() ends
# each by its own process group (they are started with start_new_session).
_STARTED: list[subprocess.Popen] = []


def die_with_parent(cmd: list[str], sig: str = "TERM") -> list[str]:
    """cmd under ``setpriv --pdeathsig``: the kernel sends it ``sig`` when this process dies,
    even by SIGKILL or os._exit (pytest-timeout's thread method), where no atexit hook runs.
    Only from the main thread, since the signal comes when the thread that forked ends."""
    setpriv = shutil.which("setpriv")
    if setpriv is None or threading.current_thread() is not threading.main_thread():
        return cmd
    return [setpriv, f"--pdeathsig={sig}", *cmd]


def register(p: subprocess.Popen) -> subprocess.Popen:
    _STARTED.append(p)
    return p


def terminate(p: subprocess.Popen, timeout: float = 30, sig: int = signal.SIGTERM) -> None:
    """Stop p and every process in its session's group (erl_child_setup, inet_gethost, ...);
    SIGKILL after timeout."""
    terminate_group(p, timeout, sig)
    if p in _STARTED:
        _STARTED.remove(p)


def forget(p: subprocess.Popen) -> None:
    """p has ended by itself: no need to stop it any more."""
    if p in _STARTED:
        _STARTED.remove(p)


def stop_all() -> None:
    for p in list(reversed(_STARTED)):
        terminate(p, timeout=15)


# A test session or a script that ends without stopping what it started (an exception in a
# fixture, Ctrl-C) leaves no server behind holding its port.
atexit.register(stop_all)
