"""Kafka Streams and the Java transactional producer from Maven, for the exactly-once interop
tests (tests/interop/test_streams.py) and the Streams row of benches/system/bench_txn.py.

``classpath()`` fetches ``org.apache.kafka:kafka-streams`` with its kafka-clients
(data/streams/pom.xml) into ``<cache>/streams/libs`` with ``apache_kafka.fetch_jars`` and
compiles data/streams/*.java into ``<cache>/streams/classes`` -- again only when a source
changes (a stamp holds the hash of the sources), so a test run pays for javac once.  These are
separate from Apache Kafka's broker jars (apache_kafka.py): the Streams client may be newer
than the broker, as a real application's often is.

``WordCount`` starts the word count (data/streams/WordCount.java) as a child process on one
broker and stops it cleanly (SIGTERM) or kills it (SIGKILL); ``txn_producer`` runs
TxnProducer.java's commit/abort/hold steps.  ``word_lines`` makes the input: deterministic
lines with a known word distribution, and the exact counts a correct run must end with.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
from collections import Counter
from pathlib import Path
from typing import IO

from . import paths
from .apache_kafka import fetch_jars, java

SRC = paths.DATA / "streams"
CACHE = paths.CACHE / "streams"
LIBS = CACHE / "libs"
CLASSES = CACHE / "classes"
SOURCES = ("WordCount.java", "TxnProducer.java")

# A small vocabulary: words of different lengths, so lines differ and counts differ.
VOCAB = ("alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet",
         "kilo", "lima", "mike", "november", "oscar", "papa", "quebec", "romeo", "sierra", "tango",
         "uniform", "victor", "whiskey", "xray", "yankee", "zulu", "stream", "kafka", "core", "count")


def word_lines(n: int) -> tuple[list[bytes], Counter[str]]:
    """``n`` lines of 1..8 words from VOCAB (line ``j`` is a fixed function of ``j``: word
    ``(j * 7 + i * i) % len(VOCAB)`` for ``i`` in ``range(1 + j % 8)``), and how often each
    word occurs in them: the exact final counts of a correct word count."""
    lines: list[bytes] = []
    counts: Counter[str] = Counter()
    for j in range(n):
        words = [VOCAB[(j * 7 + i * i) % len(VOCAB)] for i in range(1 + j % 8)]
        counts.update(words)
        lines.append(" ".join(words).encode())
    return lines, counts


def classpath() -> str:
    """The Streams jars and the compiled classes (fetched and compiled once)."""
    libs = fetch_jars(SRC / "pom.xml", LIBS)
    digest = hashlib.sha256(b"".join((SRC / s).read_bytes() for s in SOURCES)).hexdigest()
    stamp = CLASSES / ".sources"
    if not (stamp.exists() and stamp.read_text() == digest):
        javac = shutil.which("javac")
        if not javac:
            raise RuntimeError("javac not found: install a JDK (17+) to build the Streams word count")
        shutil.rmtree(CLASSES, ignore_errors=True)
        CLASSES.mkdir(parents=True)
        subprocess.run([javac, "-nowarn", "-d", str(CLASSES), "-cp", str(libs / "*"),
                        *[str(SRC / s) for s in SOURCES]], check=True, capture_output=True)
        stamp.write_text(digest)
    return f"{CLASSES}:{libs / '*'}"


def java_cmd(main: str, args: list[str], heap: str = "384m", log_level: str = "info") -> list[str]:
    return [java(), f"-Xmx{heap}", f"-Dorg.slf4j.simpleLogger.defaultLogLevel={log_level}",
            "-Dorg.slf4j.simpleLogger.showDateTime=true", "-cp", classpath(), main, *args]


class WordCount:
    """One run of the word count: ``start()`` a process, ``kill()`` (-9) or ``stop()`` (SIGTERM,
    Streams closes and commits).  Logs go to ``log_path`` (appended across runs), the STATE
    lines to ``state_path``."""

    def __init__(self, bootstrap: str, app_id: str, input_topic: str, output_topic: str, work_dir: Path,
                 config: dict[str, str] | None = None) -> None:
        self.bootstrap, self.app_id = bootstrap, app_id
        self.input_topic, self.output_topic = input_topic, output_topic
        self.work_dir = work_dir
        self.state_dir = work_dir / "state"
        self.log_path = work_dir / "streams.log"
        self.state_path = work_dir / "states.txt"
        self.config = config or {}
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> WordCount:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        args = [self.bootstrap, self.app_id, self.input_topic, self.output_topic, str(self.state_dir),
                *[f"{k}={v}" for k, v in self.config.items()]]
        log: IO[bytes] = open(self.log_path, "ab")
        out: IO[bytes] = open(self.state_path, "ab")
        try:
            self.proc = subprocess.Popen(java_cmd("WordCount", args), stdout=out, stderr=log,
                                         start_new_session=True)
        finally:
            log.close()
            out.close()
        return self

    def states(self) -> list[str]:
        try:
            text = self.state_path.read_text()
        except OSError:
            return []
        return [line.split()[1] for line in text.splitlines() if line.startswith("STATE ")]

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        if self.proc is not None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
            self.proc = None

    def stop(self, timeout: float = 40) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        code = self.proc.returncode
        self.proc = None
        return code

    def log_tail(self, n: int = 6000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""


def txn_producer(bootstrap: str, transactional_id: str, topic: str, steps: list[str],
                 timeout: float = 120) -> subprocess.CompletedProcess[bytes]:
    """Run TxnProducer.java's ``steps`` (commit:N, abort:N) to completion."""
    return subprocess.run(java_cmd("TxnProducer", [bootstrap, transactional_id, topic, *steps], log_level="warn"),
                          capture_output=True, timeout=timeout, check=False)


def txn_producer_popen(bootstrap: str, transactional_id: str, topic: str, steps: list[str]) -> subprocess.Popen[bytes]:
    """Start TxnProducer.java (for hold:N: it prints OPEN, then waits for a line on stdin)."""
    return subprocess.Popen(java_cmd("TxnProducer", [bootstrap, transactional_id, topic, *steps], log_level="warn"),
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
