"""Audit: count records per topic and time window at each stage, and report where some went missing.

The paper's loss detection: every producer periodically publishes how many records it sent per
topic and time window (by record timestamp) to an audit topic, and a checker compares those
counts with what each later stage holds for the same windows.  Here the stages are:

- ``produced``: the audit topic's counts (``AuditingProducer`` emits them);
- ``stored``: the topic's records on the cluster, counted by record timestamp;
- ``mirrored``: the same topic's copy on a target cluster (``kafka-core mirror``);
- ``exported``: the export's files (``kafka-core export``: ``OUT/topic=T/date=.../hour=.../*.parquet``
  or ``*.jsonl``, read for their ``timestamp`` column only, with pyarrow).

``--since``/``--until`` (``compare``'s ``since_ms``/``until_ms``) limit the audit to the windows in a
time range: the stored and mirrored topics are then read from the first offset at that time on
(ListOffsets by time), and windows gone by retention or still being mirrored or exported stay out.

A window falls short when ``stored < produced``, or ``mirrored``/``exported`` < ``stored`` (the
stored topic is what a downstream copy should hold).  Counting is all there is: a duplicate (the mirror is at
least once) can hide a loss in the same window, as in the paper's audit.

``AuditingProducer(producer, audit_topic=..., window_s=60)`` wraps a kafka_client ``Producer``
(nothing in kafka_client changes): it counts a record when its delivery succeeds, in the window
of the timestamp the record was sent with (it fixes the timestamp at send when the caller gives
none, so the count and the stored record agree), and every ``flush_interval_s`` (and on
``flush``/``close``) produces the counts gathered since the last emission as one audit record per
(topic, window).  Each audit record is keyed ``<producer uuid>/<emission seq>/<topic>/<window>``,
unique, so a reader sums them and drops any repeat.  A failed audit record puts its counts back
for the next emission.  The delivery callback costs one Python call per record: the price of
counting on success rather than on send.

Audit record value (JSON): ``{"topic", "window_start_ms", "window_ms", "count", "producer", "seq",
"host"}``.
"""

from __future__ import annotations

import functools
import json
import os
import re
import socket
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kafka_client import Consumer, Producer, TopicPartition

__all__ = ["AUDIT_TOPIC", "AuditingProducer", "parse_window", "produced_counts", "stored_counts",
           "exported_counts", "compare", "AuditRow"]

AUDIT_TOPIC = "kafka-core-audit"


def parse_window(text: str) -> int:
    """``500ms``, ``30s``, ``1m``, ``2h``, ``1d`` (a bare number is seconds) -> milliseconds."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*", text)
    if not m:
        raise ValueError(f"cannot parse window {text!r} (expected e.g. 500ms, 30s, 1m, 1h)")
    n, unit = float(m.group(1)), m.group(2) or "s"
    ms = int(n * {"ms": 1, "s": 1000, "m": 60000, "h": 3600000, "d": 86400000}[unit])
    if ms <= 0:
        raise ValueError(f"window {text!r} must be positive")
    return ms


class AuditingProducer:
    """A kafka_client ``Producer`` that also publishes per-topic, per-window delivery counts to
    ``audit_topic`` (see the module docstring).  ``produce``/``send`` take the producer's
    arguments; everything else (``flush``, ``partitions_for``, ...) is the producer's."""

    def __init__(self, producer: Producer, *, audit_topic: str = AUDIT_TOPIC, window_s: float = 60,
                 flush_interval_s: float | None = 10.0, own_producer: bool = False) -> None:
        self.producer = producer
        self.audit_topic = audit_topic
        self.window_ms = int(window_s * 1000)
        if self.window_ms <= 0:
            raise ValueError("window_s must be positive")
        self.id = uuid.uuid4().hex
        self.host = socket.gethostname()
        self._own = own_producer
        self._lock = threading.Lock()
        self._counts: Counter[tuple[str, int]] = Counter()
        self._seq = 0
        self._closed = threading.Event()
        self._timer: threading.Thread | None = None
        if flush_interval_s:
            self._timer = threading.Thread(target=self._tick, args=(flush_interval_s,), daemon=True,
                                           name="kafka-audit")
            self._timer.start()

    # ---- sending ----
    def _delivered(self, key: tuple[str, int], user: Callable[[Any, Any], Any] | None, err: Any, md: Any) -> None:
        if err is None:
            with self._lock:
                self._counts[key] += 1
        if user is not None:
            user(err, md)

    def _key(self, topic: str, timestamp_ms: int | None) -> tuple[int, tuple[str, int]]:
        ts = int(time.time() * 1000) if timestamp_ms is None else timestamp_ms
        return ts, (topic, ts - ts % self.window_ms)

    def produce(self, topic: str, value: Any = None, key: Any = None, headers: Sequence[Any] | None = None,
                partition: int | None = None, timestamp_ms: int | None = None,
                on_delivery: Callable[[Any, Any], Any] | None = None) -> None:
        """``Producer.produce``, counted on delivery."""
        ts, k = self._key(topic, timestamp_ms)
        self.producer.produce(topic, value, key, headers, partition, ts,
                              functools.partial(self._delivered, k, on_delivery))

    def send(self, topic: str, value: Any = None, key: Any = None, headers: Sequence[Any] | None = None,
             partition: int | None = None, timestamp_ms: int | None = None) -> Any:
        """``Producer.send`` (a future of the record's metadata), counted on delivery."""
        ts, k = self._key(topic, timestamp_ms)
        fut = self.producer.send(topic, value, key, headers, partition, ts)

        def done(f: Any) -> None:
            if not f.cancelled():
                self._delivered(k, None, f.exception(), None)

        fut.add_done_callback(done)
        return fut

    # ---- the audit records ----
    def emit(self) -> int:
        """Produce the counts gathered since the last emission; returns how many records they count."""
        with self._lock:
            counts, self._counts = self._counts, Counter()
            self._seq += 1
            seq = self._seq
        for (topic, start), n in sorted(counts.items()):
            value = json.dumps({"topic": topic, "window_start_ms": start, "window_ms": self.window_ms, "count": n,
                                "producer": self.id, "seq": seq, "host": self.host}).encode()
            self.producer.produce(self.audit_topic, value, f"{self.id}/{seq}/{topic}/{start}".encode(),
                                  on_delivery=functools.partial(self._audit_delivered, (topic, start), n))
        return sum(counts.values())

    def _audit_delivered(self, key: tuple[str, int], n: int, err: Any, md: Any) -> None:  # noqa: ARG002
        if err is not None:       # counted again at the next emission
            with self._lock:
                self._counts[key] += n

    def _tick(self, interval: float) -> None:
        while not self._closed.wait(interval):
            try:
                self.emit()
            except Exception:  # noqa: BLE001 - a failed emission keeps its counts for the next one
                pass

    def flush(self, timeout: float | None = None) -> None:
        """Deliver everything sent, then the counts of it, and wait for those too."""
        self.producer.flush(timeout)
        self.emit()
        self.producer.flush(timeout)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.producer, name)

    def close(self, timeout: float | None = None) -> None:
        """Flush (records, then their counts) and stop emitting; closes the producer if it is ours."""
        self._closed.set()
        if self._timer is not None:
            self._timer.join()
        self.flush(timeout)
        if self._own:
            self.producer.close(timeout)

    def __enter__(self) -> AuditingProducer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ---------------------------------------------------------------- counting each stage

def _read_all(bootstrap: str, topic: str, each: Callable[[list[Any]], None], timeout: float = 300,
              since_ms: int | None = None) -> bool:
    """Hand every record of ``topic`` (log start, or the first offset at or after ``since_ms``, to
    the end offsets seen now) to ``each``, a partition's poll at a time; False when the topic does
    not exist."""
    with Consumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False,
                  allow_auto_create_topics=False, client_id="kafka-core-audit") as c:
        try:
            parts = c.partitions_for_topic(topic)
        except Exception:  # noqa: BLE001 - no such topic: nothing stored
            return False
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        c.assign(tps)
        c.seek_to_beginning(*tps)
        end = c.end_offsets(tps)
        todo = {tp for tp in tps if end[tp] > 0}
        if since_ms is not None and todo:
            # ListOffsets by time: the first offset whose timestamp is at or after since_ms, so no
            # record before it is in the range (a partition with none there is skipped)
            for tp, found in c.offsets_for_times({tp: since_ms for tp in todo}).items():
                if found is None:
                    todo.discard(tp)
                else:
                    c.seek(tp, found.offset)
        deadline = time.monotonic() + timeout
        while todo:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{topic}: could not read to the end offsets within {timeout:.0f}s")
            for tp, recs in c.poll(0.5).items():
                if tp in todo:
                    e = end[tp]
                    if recs[-1].offset >= e:
                        recs = [r for r in recs if r.offset < e]
                    each(recs)
            for tp in list(todo):
                if c.position(tp) >= end[tp]:
                    todo.discard(tp)
    return True


def produced_counts(bootstrap: str, topic: str, window_ms: int, audit_topic: str = AUDIT_TOPIC) -> dict[int, int] | None:
    """Per window start (ms), the records producers counted for ``topic``; None when the audit topic
    holds nothing about it."""
    seen: set[bytes] = set()
    out: Counter[int] = Counter()
    found = [False]

    def each(recs: list[Any]) -> None:
        for r in recs:
            if r.value is None or r.key in seen:
                continue
            v = json.loads(r.value)
            if v.get("topic") != topic:
                continue
            seen.add(r.key)
            w = int(v["window_ms"])
            if window_ms % w:
                raise ValueError(f"the audit topic counts {topic!r} in {w} ms windows: "
                                 f"the window must be a multiple of it, not {window_ms} ms")
            start = int(v["window_start_ms"])
            out[start - start % window_ms] += int(v["count"])
            found[0] = True

    _read_all(bootstrap, audit_topic, each)
    return dict(out) if found[0] else None


def stored_counts(bootstrap: str, topic: str, window_ms: int, since_ms: int | None = None) -> dict[int, int] | None:
    """Per window start (ms), the records of ``topic`` on the cluster (from the window holding
    ``since_ms`` on, when given); None when there is no such topic."""
    out: Counter[int] = Counter()

    def each(recs: list[Any]) -> None:
        out.update(r.timestamp - r.timestamp % window_ms for r in recs)

    start = None if since_ms is None else since_ms - since_ms % window_ms
    return dict(out) if _read_all(bootstrap, topic, each, since_ms=start) else None


def exported_counts(export_dir: str | os.PathLike[str], topic: str, window_ms: int) -> dict[int, int] | None:
    """Per window start (ms), the records in the export's files of ``topic`` (only their
    ``timestamp`` column is read); None when the export has no folder for the topic.  Files whose
    name starts with a dot are in-progress temporaries and skipped."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.json as pajson
    import pyarrow.parquet as pq

    root = Path(export_dir) / f"topic={topic}"
    if not root.is_dir():
        return None
    out: Counter[int] = Counter()
    for path in sorted(root.rglob("*")):
        if path.name.startswith(".") or not path.is_file():
            continue
        if path.suffix == ".parquet":
            col = pq.read_table(path, columns=["timestamp"]).column("timestamp")
        elif path.suffix == ".jsonl":
            col = pajson.read_json(path).column("timestamp")
        else:
            continue
        if pa.types.is_timestamp(col.type):
            col = col.cast(pa.timestamp("ms"))
        # floor(ts / window) * window, as stored_counts (exact in float64 for millisecond times)
        ts = col.cast(pa.int64()).cast(pa.float64())
        starts = pc.multiply(pc.floor(pc.divide(ts, float(window_ms))), float(window_ms)).cast(pa.int64())
        for item in pc.value_counts(starts).to_pylist():
            out[int(item["values"])] += int(item["counts"])
    return dict(out)


# ---------------------------------------------------------------- comparing them

@dataclass
class AuditRow:
    """One window: each stage's count (None: that stage is not audited) and what falls short."""

    window_start_ms: int
    window_ms: int
    produced: int | None
    stored: int
    mirrored: int | None
    exported: int | None
    shortfall: dict[str, int] = field(default_factory=dict)   # stage -> records missing

    def as_dict(self) -> dict[str, Any]:
        return {"window_start": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.window_start_ms / 1000)),
                **self.__dict__}


def compare(window_ms: int, produced: dict[int, int] | None, stored: dict[int, int],
            mirrored: dict[int, int] | None = None, exported: dict[int, int] | None = None, *,
            since_ms: int | None = None, until_ms: int | None = None) -> list[AuditRow]:
    """The rows of every window any stage saw, oldest first: those from the window holding
    ``since_ms`` on, and ending at or before ``until_ms`` (a window still being written, or not yet
    mirrored or exported, is left out that way; so are windows already gone by retention)."""
    windows: set[int] = set(stored)
    for tier in (produced, mirrored, exported):
        if tier is not None:
            windows |= set(tier)
    if since_ms is not None:
        windows = {w for w in windows if w >= since_ms - since_ms % window_ms}
    if until_ms is not None:
        windows = {w for w in windows if w + window_ms <= until_ms}
    rows = []
    for w in sorted(windows):
        s = stored.get(w, 0)
        row = AuditRow(w, window_ms, None if produced is None else produced.get(w, 0), s,
                       None if mirrored is None else mirrored.get(w, 0),
                       None if exported is None else exported.get(w, 0))
        if row.produced is not None and s < row.produced:
            row.shortfall["stored"] = row.produced - s
        for stage in ("mirrored", "exported"):
            n = getattr(row, stage)
            if n is not None and n < s:
                row.shortfall[stage] = s - n
        rows.append(row)
    return rows

