"""What the mirror and audit tests share: a ``kafka-core mirror`` child process, and reading a
topic's records per partition with kafka_client (the code under test uses it too, so the
tests' reading is kept plain: assign, seek to the beginning, read to the end offsets)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from kafka_client import Consumer, Producer, TopicPartition

ROOT = Path(__file__).resolve().parents[2]


def cli_env() -> dict[str, str]:
    path = [str(ROOT / "python"), str(ROOT / "src")]
    if os.environ.get("PYTHONPATH"):
        path.append(os.environ["PYTHONPATH"])
    return dict(os.environ, PYTHONPATH=os.pathsep.join(path), PYTHONUNBUFFERED="1")


def kafka_core(*args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    """Run ``kafka-core ARGS`` to completion."""
    return subprocess.run([sys.executable, "-m", "kafka_cli", *args], capture_output=True, text=True,
                          timeout=timeout, env=cli_env(), cwd=ROOT)


class MirrorProcess:
    """``kafka-core mirror ...`` in the background (its stderr in ``log``)."""

    def __init__(self, source: str, target: str, *extra: str, log: Path) -> None:
        self.log_path = log
        self.args = ["--source-bootstrap", source, "--target-bootstrap", target, "--json", *extra]
        self.proc: subprocess.Popen[str] | None = None

    def start(self) -> MirrorProcess:
        with open(self.log_path, "a") as err:
            self.proc = subprocess.Popen([sys.executable, "-m", "kafka_cli", "mirror", *self.args],
                                         stdout=subprocess.PIPE, stderr=err, text=True, env=cli_env(), cwd=ROOT)
        return self

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)
        self.proc = None

    def stop(self, timeout: float = 60) -> dict[str, Any]:
        """SIGTERM, then the JSON summary it printed."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        out, _ = self.proc.communicate(timeout=timeout)
        rc = self.proc.returncode
        self.proc = None
        assert rc == 0, (rc, self.log_path.read_text()[-3000:])
        return json.loads(out.strip().splitlines()[-1])

    def wait(self, timeout: float = 180) -> dict[str, Any]:
        assert self.proc is not None
        out, _ = self.proc.communicate(timeout=timeout)
        rc = self.proc.returncode
        self.proc = None
        assert rc == 0, (rc, self.log_path.read_text()[-3000:])
        return json.loads(out.strip().splitlines()[-1])

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(30)
            self.proc = None


def read_partitions(bootstrap: str, topic: str, partitions: int, timeout: float = 60,
                    read_committed: dict[int, int] | None = None, until_idle: float | None = None
                    ) -> dict[int, list[Any]]:
    """Every record of ``topic`` per partition, from the log start to the end offsets seen now.
    Without transactions the last offset before the end is a record's.  With them a marker can
    end a partition: ``read_committed`` gives the number of records expected per partition, read
    (read_committed) until there and then for one second more, so that extra ones show;
    ``until_idle`` reads (read_uncommitted) until no record came for that many seconds."""
    out: dict[int, list[Any]] = {p: [] for p in range(partitions)}
    with Consumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False,
                  allow_auto_create_topics=False,
                  isolation_level="read_committed" if read_committed is not None else "read_uncommitted") as c:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        c.assign(tps)
        c.seek_to_beginning(*tps)
        start, end = c.beginning_offsets(tps), c.end_offsets(tps)
        last = {tp.partition: end[tp] - 1 for tp in tps if end[tp] > start[tp]}
        # Under read_committed the end offsets are the LSO, which can still be at the start: a
        # target such as Apache Kafka answers EndTxn before its markers are written.  The count
        # expected bounds that read instead, so no record is cut off by an end seen too early.
        cap = {p: 1 << 62 for p in range(partitions)} if read_committed is not None else last

        idle_since = time.monotonic()

        def more() -> bool:
            if until_idle is not None:
                return time.monotonic() - idle_since < until_idle
            if read_committed is not None:
                return any(len(out[p]) < n for p, n in read_committed.items())
            return any(not out[p] or out[p][-1].offset < off for p, off in last.items())

        deadline = time.monotonic() + timeout
        while more():
            assert time.monotonic() < deadline, \
                f"{topic}: not read to {last} after {timeout}s (read {[len(v) for v in out.values()]})"
            for tp, recs in c.poll(0.5).items():
                out[tp.partition] += [r for r in recs if r.offset <= cap.get(tp.partition, -1)]
                idle_since = time.monotonic()
        if read_committed is not None:
            for tp, recs in c.poll(1.0).items():
                out[tp.partition] += [r for r in recs if r.offset <= cap.get(tp.partition, -1)]
    return out


def paced_producer(bootstrap: str, topic: str, partitions: int, total: int, every: int,
                   pause: float) -> tuple[threading.Thread, threading.Event]:
    """A started thread producing ``total`` records ``b"<partition>:<seq>"`` round robin over the
    partitions, pausing ``pause`` s after every ``every`` records (so that what a test does to
    the mirror happens while records keep coming), and the event that stops it early."""
    stop = threading.Event()

    def run() -> None:
        with Producer(bootstrap, linger_ms=2) as p:
            for i in range(total):
                if stop.is_set():
                    break
                p.produce(topic, b"%d:%d" % (i % partitions, i // partitions), partition=i % partitions)
                if i % every == every - 1:
                    time.sleep(pause)
            p.flush()

    t = threading.Thread(target=run)
    t.start()
    return t, stop


def wait_until(cond: Any, timeout: float, what: str, interval: float = 0.2) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"timed out after {timeout}s waiting for {what}"
        time.sleep(interval)
