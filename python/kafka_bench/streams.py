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
lines with a known word distribution, and the exact counts a correct run must end with;
``produce_lines`` writes them (round robin over the partitions), ``CountsReader`` reads the
output under read_committed, ``wait_until`` polls it while the app runs and ``CountsReader.
problems`` says what is wrong with what was read (a count above the exact one, a count going
down, a final count off).
"""

from __future__ import annotations

import os
import signal
import struct
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import IO

from . import paths
from .apache_kafka import compiled_classpath, java

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
    return compiled_classpath(SRC, SOURCES, CACHE)


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


def produce_lines(bootstrap: str, topic: str, lines: list[bytes], partitions: int) -> None:
    """Write ``lines`` with null keys, line ``i`` to partition ``i % partitions`` (idempotent, so
    a retry cannot duplicate a line and break the expected counts)."""
    from confluent_kafka import Producer

    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "enable.idempotence": True})
    for i, line in enumerate(lines):
        p.produce(topic, line, partition=i % partitions)
    if p.flush(60) != 0:
        raise RuntimeError(f"{len(p)} lines not delivered to {topic}")


class CountsReader:
    """Every committed record of the word count's output (read_committed, from offset 0 of each
    partition or from ``start``'s offsets), in offset order per partition, and the latest count
    per word."""

    def __init__(self, bootstrap: str, topic: str, partitions: int, start: dict[int, int] | None = None) -> None:
        from confluent_kafka import Consumer, TopicPartition

        self.consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"check-{uuid.uuid4().hex}",
                                  "isolation.level": "read_committed", "enable.auto.commit": False})
        self.consumer.assign([TopicPartition(topic, p, (start or {}).get(p, 0)) for p in range(partitions)])
        self.records: list[tuple[int, str, int]] = []   # (partition, word, count)
        self.latest: dict[str, int] = {}

    def poll(self, seconds: float) -> None:
        for m in self.consumer.consume(1000, seconds):
            if m.error() is not None:
                raise RuntimeError(f"reading the word counts: {m.error()}")
            key, value, partition = m.key(), m.value(), m.partition()
            if key is None or value is None or partition is None:   # count() never writes a tombstone
                raise RuntimeError(f"word count record without key or value at offset {m.offset()}")
            word, count = key.decode(), struct.unpack(">q", value)[0]
            self.records.append((partition, word, count))
            self.latest[word] = count

    def problems(self, expected: Counter[str]) -> list[str]:
        """What contradicts an exactly-once count of ``expected``: a final count off, any
        committed count above the exact final one (a double count), a count going down (a
        store restored from a stale changelog)."""
        out = [f"final count of {w!r} is {self.latest.get(w)}, not {n}"
               for w, n in sorted(expected.items()) if self.latest.get(w) != n]
        out += [f"unexpected word {w!r}" for w in self.latest if w not in expected]
        last: dict[str, int] = {}
        for p, w, c in self.records:
            if c > expected[w]:
                out.append(f"committed count {c} of {w!r} (partition {p}) is above the exact {expected[w]}")
            if c < last.get(w, 0):
                out.append(f"count of {w!r} went down from {last[w]} to {c} (partition {p})")
            last[w] = c
        return out[:20]

    def close(self) -> None:
        self.consumer.close()


def wait_until(app: WordCount, reader: CountsReader, done: Callable[[], bool], timeout: float, what: str) -> float:
    """Poll ``reader`` until ``done()``; fail when the app exits first or after ``timeout``
    seconds.  Returns the seconds it took."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        reader.poll(0.2)
        if done():
            return time.monotonic() - t0
        if not app.running():
            raise RuntimeError(f"Streams exited ({app.states()}) before {what}:\n{app.log_tail()}")
    raise TimeoutError(f"no {what} after {timeout}s: {len(reader.records)} records, states {app.states()}\n"
                       f"{app.log_tail()}")
