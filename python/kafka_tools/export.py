"""Export topics into warehouse files: Parquet (or JSON Lines), Hive-style, exactly once.

Layout (what DuckDB, pyarrow/pandas and Hive-style readers discover without options)::

    OUT/topic=T/date=YYYY-MM-DD/hour=HH/part-P-FIRST-LAST.parquet     the records
    OUT/_ledger/topic=T/partition=P/FIRST-LAST.done                   what is exported
    OUT/_ledger/topic=T/partition=P/FIRST-LAST.pending                a range being written

A *range* is the records of one partition from offset FIRST to LAST (both included) that one
exporter buffered and then wrote; it becomes one file in every hour directory its records' UTC
timestamps fall in, each named by the range (offsets in Kafka's 20-digit form).  Readers skip
names that start with ``.`` or ``_`` (the Hive convention pyarrow follows) and DuckDB's
``**/*.parquet`` matches neither the temporary ``.part-….parquet.tmp`` files nor the ledger, so
only whole ranges are ever visible.

Why a ledger, and not just the group's committed offset: the offset is committed after the
files are durable, so a crash between the two leaves records on disk that the group will hand
out again, and a re-read range need not end where the first one did (rolls are by time and
size).  Naming files by range alone would then show offsets 100-199 in one file and 100-250 in
the next.  So the directory, not the group, is the truth: a range's ``.done`` entry is its
commit point, and when a partition is assigned the exporter reads the partition's entries and
never writes an offset that lies in one of them (it seeks past ranges that start where it would
resume, and cuts a range short where the next exported one begins — which covers an offset
reset to earlier too).  The committed offset is then only where reading starts and what
``kafka-consumer-groups`` shows as lag.

Writing a range (all under the exporter's lock, so a rebalance waits for it):

1. ``FIRST-LAST.pending`` listing the files, fsynced (and its directory).
2. Each file to a temporary ``.part-….tmp`` in its own hour directory, fsynced, directory fsynced.
3. Rename ``.pending`` to ``.done``, fsync the ledger directory: the range is exported.
4. Rename each temporary file to its name, fsync its directory.
5. Commit LAST+1 for the group (a failure here is harmless: the ledger has the range).

A crash before 3 leaves a ``.pending`` entry whose temporary files the next owner of the
partition deletes; after 3, the next owner finishes step 4 from the temporary files (durable
since step 2).  The lock orders every rebalance the exporter takes part in; what it cannot
order is a zombie (an exporter stalled longer than session.timeout.ms, whose partitions the
group gave away without its listener running): it is not fenced from the files.

Python works per poll and per file: Arrow columns are built from the consumer's records by
pyarrow's C loops over ``operator.attrgetter`` (no Python bytecode per record), splitting a
range by hour is an Arrow compute kernel, and Parquet is written by pyarrow.  The exceptions,
one call per record because no batch decoder exists: JSON Lines output, ``--value-format json``'s
validation, and ``avro-schemaless`` decoding (kafka_tools.avro, fastavro's C reader).

Rebalances: revoked partitions are flushed (their open buffer written as a range and
committed) before the group moves them; lost partitions (fenced: someone else may own them
already) have their buffer dropped, uncommitted.  Uses kafka_client only.
"""

from __future__ import annotations

import asyncio
import base64
import bisect
import datetime as dt
import itertools
import json
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from operator import attrgetter
from pathlib import Path
from typing import Any

from kafka_client import AdminClient, Consumer
from kafka_client.errors import KafkaError
from kafka_client.group import OffsetAndMetadata, RebalanceListener, TopicPartition

from .avro import AvroError, AvroValues

__all__ = ["ExportConfig", "ExportError", "ExportSummary", "Exporter", "FORMATS", "VALUE_FORMATS", "KEY_FORMATS",
           "ledger_dir", "read_ledger", "recover_partition", "split_by_hour"]

log = logging.getLogger("kafka_tools.export")

FORMATS = ("parquet", "jsonl")
VALUE_FORMATS = ("binary", "string", "json", "avro-schemaless")
KEY_FORMATS = ("binary", "string")
LEDGER = "_ledger"
HOUR_MS = 3_600_000

_offset = attrgetter("offset")
_timestamp = attrgetter("timestamp")
_key = attrgetter("key")
_value = attrgetter("value")
_headers = attrgetter("headers")


class ExportError(Exception):
    """The export cannot go on (bad arguments, undecodable records, unknown topics); nothing that
    was not written durably is committed."""


@dataclass
class ExportConfig:
    bootstrap_servers: str
    out: Path
    group: str
    topics: list[str] = field(default_factory=list)
    include: str | None = None            # a regex of topic names (full match), instead of topics
    format: str = "parquet"
    value_format: str = "binary"
    value_schema: str | None = None       # avro-schemaless: the Avro schema (JSON text) values are written with
    key_format: str = "binary"
    until_caught_up: bool = False
    roll_seconds: float = 300.0
    roll_records: int = 1_000_000
    roll_bytes: int = 128 * 1024 * 1024
    compression: str = "snappy"           # Parquet codec (pyarrow's default, what Spark writes)
    consumer_config: dict[str, Any] = field(default_factory=dict)

    def check(self) -> None:
        if bool(self.topics) == bool(self.include):
            raise ExportError("give --topic or --include (one of them)")
        if self.format not in FORMATS:
            raise ExportError(f"--format must be one of {', '.join(FORMATS)}")
        if self.value_format not in VALUE_FORMATS:
            raise ExportError(f"--value-format must be one of {', '.join(VALUE_FORMATS)}")
        if (self.value_format == "avro-schemaless") != (self.value_schema is not None):
            raise ExportError("--value-schema (the writer's Avro schema) goes with --value-format avro-schemaless, "
                              "and only with it")
        if self.key_format not in KEY_FORMATS:
            raise ExportError(f"--key-format must be one of {', '.join(KEY_FORMATS)}")
        if self.include is not None:
            try:
                re.compile(self.include)
            except re.error as exc:
                raise ExportError(f"bad --include regex {self.include!r}: {exc}") from exc
        if self.roll_records < 1 or self.roll_seconds <= 0 or self.roll_bytes < 1:
            raise ExportError("--roll-records, --roll-seconds and --roll-bytes must be positive")
        if self.format == "parquet":
            codecs = ("none", "snappy", "gzip", "brotli", "lz4", "zstd")
            if self.compression not in codecs:
                raise ExportError(f"--compression must be one of {', '.join(codecs)}")


@dataclass
class ExportSummary:
    records: int = 0
    files: int = 0
    ranges: int = 0
    bytes: int = 0
    skipped_ranges: int = 0               # ranges found in the ledger and not read again
    recovered_ranges: int = 0             # ranges whose renames a crash interrupted, finished
    recovered_records: int = 0            # the records of those ranges (not counted in records)
    discarded_pending: int = 0            # ranges a crash interrupted before their commit point
    commit_failures: int = 0
    seconds: float = 0.0
    topics: list[str] = field(default_factory=list)
    partitions: dict[str, int] = field(default_factory=dict)  # "topic-partition" -> next offset exported

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


# ---------------------------------------------------------------- files

def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _makedirs_durable(path: Path) -> None:
    """mkdir -p, fsyncing the parent of every directory created (a new directory entry is only
    durable once its parent is synced; the files in it would vanish with it)."""
    missing = []
    p = path
    while not p.exists():
        missing.append(p)
        p = p.parent
    for d in reversed(missing):
        try:
            d.mkdir()
        except FileExistsError:
            pass         # another exporter made it: it may not have synced its parent yet
        _fsync_dir(d.parent)


def _write_durable(path: Path, write: Callable[[Any], None]) -> int:
    """Create ``path`` (truncating), fill it with ``write(fileobj)``, fsync it; returns its size."""
    with open(path, "wb") as f:
        write(f)
        f.flush()
        os.fsync(f.fileno())
        return f.tell()


def _range_name(first: int, last: int) -> str:
    return f"{first:020d}-{last:020d}"


def _parse_range(name: str) -> tuple[int, int] | None:
    stem = name.split(".", 1)[0]
    a, sep, b = stem.partition("-")
    if not sep or not a.isdigit() or not b.isdigit():
        return None
    return int(a), int(b)


def ledger_dir(out: Path, topic: str, partition: int) -> Path:
    return out / LEDGER / f"topic={topic}" / f"partition={partition}"


def read_ledger(out: Path, topic: str, partition: int) -> list[tuple[int, int]]:
    """The ranges of ``topic``/``partition`` exported under ``out``, sorted."""
    d = ledger_dir(out, topic, partition)
    try:
        names = os.listdir(d)
    except FileNotFoundError:
        return []
    got = [r for n in names if n.endswith(".done") and (r := _parse_range(n)) is not None]
    return sorted(got)


@dataclass
class _Recovery:
    ranges: list[tuple[int, int]]
    recovered: int
    discarded: int
    recovered_records: int = 0


def recover_partition(out: Path, topic: str, partition: int) -> _Recovery:
    """Finish what a crash interrupted for one partition: a ``.done`` range's temporary files
    are renamed into place, a ``.pending`` range's are deleted.  Returns the exported ranges."""
    d = ledger_dir(out, topic, partition)
    recovered = discarded = recovered_records = 0
    try:
        names = sorted(os.listdir(d))
    except FileNotFoundError:
        return _Recovery([], 0, 0)
    for name in names:
        path = d / name
        if name.endswith(".pending"):
            for tmp, _final in _entry_files(out, path):
                try:
                    tmp.unlink()
                except FileNotFoundError:
                    pass
            path.unlink()
            _fsync_dir(d)
            discarded += 1
        elif name.endswith(".done"):
            moved = False
            for tmp, final in _entry_files(out, path):
                if tmp.exists():
                    os.replace(tmp, final)
                    _fsync_dir(final.parent)
                    moved = True
            if moved:
                recovered += 1
                recovered_records += json.loads(path.read_text()).get("records", 0)
    return _Recovery(read_ledger(out, topic, partition), recovered, discarded, recovered_records)


def _entry_files(out: Path, entry: Path) -> list[tuple[Path, Path]]:
    """(temporary, final) paths of a ledger entry's files.  A torn ``.pending`` (a crash while
    it was written) lists nothing: no temporary file is created before it is durable."""
    try:
        files = json.loads(entry.read_text())["files"]
    except (ValueError, KeyError, OSError):
        if entry.name.endswith(".done"):
            raise ExportError(f"ledger entry {entry} is unreadable; it was durable before it was renamed, "
                              "so something else changed it") from None
        return []
    out_pairs = []
    for rel in files:
        final = out / rel
        out_pairs.append((final.parent / f".{final.name}.tmp", final))
    return out_pairs


# ---------------------------------------------------------------- Arrow

def _schema(value_type: Any, key_format: str) -> Any:
    import pyarrow as pa

    return pa.schema([
        ("partition", pa.int32()),
        ("offset", pa.int64()),
        ("timestamp", pa.timestamp("ms", tz="UTC")),
        ("key", pa.string() if key_format == "string" else pa.binary()),
        ("value", value_type),
        ("headers", pa.list_(pa.struct([("key", pa.string()), ("value", pa.binary())]))),
    ])


class _Columns:
    """Builds one Arrow table from a poll's records of one partition (pyarrow iterates in C)."""

    def __init__(self, value_format: str, key_format: str, value_schema: str | None = None) -> None:
        import pyarrow as pa

        self.pa = pa
        self.value_format = value_format
        self.key_format = key_format
        self.avro: AvroValues | None = None
        if value_format == "avro-schemaless":
            assert value_schema is not None
            try:
                self.avro = AvroValues(value_schema)
            except AvroError as exc:
                raise ExportError(f"--value-schema: {exc}") from exc
            value_type = self.avro.arrow_type
        else:
            value_type = {"binary": pa.binary(), "string": pa.string(), "json": pa.json_(pa.string())}[value_format]
        self.schema = _schema(value_type, key_format)

    def table(self, topic: str, partition: int, recs: list[Any]) -> Any:
        pa = self.pa
        n = len(recs)
        keys = pa.array(map(_key, recs), pa.binary())
        if self.avro is not None:
            try:
                values = self.avro.decode(list(map(_value, recs)), list(map(_offset, recs)))
            except AvroError as exc:
                raise ExportError(f"{topic}-{partition} {exc}") from exc
        else:
            values = pa.array(map(_value, recs), pa.binary())
        try:
            if self.key_format == "string":
                keys = keys.cast(pa.string())
            if self.value_format in ("string", "json"):
                values = values.cast(pa.string())
            if self.value_format == "json":
                _check_json(values)
                values = pa.ExtensionArray.from_storage(pa.json_(pa.string()), values)
        except (pa.ArrowInvalid, ValueError) as exc:
            bad = _first_bad(recs, self.key_format == "string", self.value_format)
            raise ExportError(f"{topic}-{partition} offset {bad}: cannot decode as --key-format "
                              f"{self.key_format} / --value-format {self.value_format}: {exc}") from exc
        cols = [
            pa.array(itertools.repeat(partition, n), pa.int32()),
            pa.array(map(_offset, recs), pa.int64()),
            pa.array(map(_timestamp, recs), pa.int64()).cast(pa.timestamp("ms", tz="UTC")),
            keys, values,
            pa.array(map(_headers, recs), self.schema.field("headers").type),
        ]
        return pa.Table.from_arrays(cols, schema=self.schema)


def _check_json(values: Any) -> None:
    loads = json.loads
    for v in values.to_pylist():     # per record: json's C scanner, the one per-record pass
        if v is not None:
            loads(v)


def _first_bad(recs: list[Any], key_string: bool, value_format: str) -> int:
    for r in recs:
        try:
            if key_string and r.key is not None:
                r.key.decode("utf-8")
            if value_format in ("string", "json") and r.value is not None:
                s = r.value.decode("utf-8")
                if value_format == "json":
                    json.loads(s)
        except ValueError:
            return int(r.offset)
    return -1


def _hour_dir(topic: str, hour: int) -> str:
    t = dt.datetime.fromtimestamp(hour * 3600, tz=dt.UTC)
    return f"topic={topic}/date={t:%Y-%m-%d}/hour={t:%H}"


def split_by_hour(table: Any) -> list[tuple[int, Any]]:
    """(hour since the epoch, the table's rows of that UTC hour), in hour order.  A record
    without a timestamp (-1) lands in the first hour of 1970."""
    import pyarrow as pa
    import pyarrow.compute as pc

    ms = pc.max_element_wise(table.column("timestamp").cast(pa.int64()), 0)
    hours = pc.divide(ms, HOUR_MS)
    distinct = sorted(pc.unique(hours).to_pylist())
    if len(distinct) == 1:
        return [(distinct[0], table)]
    return [(h, table.filter(pc.equal(hours, h))) for h in distinct]


def _write_parquet(table: Any, compression: str) -> Callable[[Any], None]:
    import pyarrow.parquet as pq

    def write(f: Any) -> None:
        pq.write_table(table, f, compression=compression)
    return write


def _json_default(v: Any) -> Any:
    """Avro values JSON has no type for: bytes as base64, times as ISO 8601, decimals as text."""
    if isinstance(v, bytes):
        return base64.b64encode(v).decode("ascii")
    if isinstance(v, dt.datetime | dt.date | dt.time):
        return v.isoformat()
    return str(v)    # Decimal


def _write_jsonl(table: Any, value_format: str, key_format: str) -> Callable[[Any], None]:
    def b64(v: bytes | None) -> str | None:
        return None if v is None else base64.b64encode(v).decode("ascii")

    def write(f: Any) -> None:
        cols = table.to_pydict()
        dumps = json.dumps
        lines = []
        for p, o, ts, k, v, hs in zip(cols["partition"], cols["offset"], cols["timestamp"], cols["key"],
                                      cols["value"], cols["headers"], strict=True):
            head = dumps({"partition": p, "offset": o,
                          "timestamp": ts.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                          "key": k if key_format == "string" else b64(k)}, separators=(",", ":"))
            if value_format == "json":
                val = "null" if v is None else v          # validated JSON text, embedded as it is
            elif value_format == "avro-schemaless":
                val = dumps(v, separators=(",", ":"), default=_json_default)
            else:
                val = dumps(v if value_format == "string" else b64(v))
            hdr = dumps([{"key": h["key"], "value": b64(h["value"])} for h in hs], separators=(",", ":"))
            lines.append(f'{head[:-1]},"value":{val},"headers":{hdr}}}\n')
        f.write("".join(lines).encode("utf-8"))
    return write


# ---------------------------------------------------------------- the exporter

class _Part:
    """One owned partition: what is buffered, where reading goes on, which ranges to skip."""

    __slots__ = ("tp", "tables", "first", "last", "count", "nbytes", "opened", "next_offset", "skip", "target",
                 "done", "exported_to", "checked_at")

    def __init__(self, tp: TopicPartition, next_offset: int | None, skip: list[tuple[int, int]],
                 target: int | None) -> None:
        self.tp = tp
        self.tables: list[Any] = []
        self.first = -1
        self.last = -1
        self.count = 0
        self.nbytes = 0
        self.opened = 0.0
        self.next_offset = next_offset   # records below it were exported (or skipped) already
        self.skip = skip                 # exported ranges at or after next_offset
        self.target = target             # --until-caught-up: the end offset seen at start
        self.done = False
        self.exported_to = next_offset
        self.checked_at = 0.0             # when the consumer's position was last asked (a round trip)


class Exporter:
    """Runs one exporter of a group: ``run()`` until caught up or ``stop()``."""

    def __init__(self, config: ExportConfig) -> None:
        config.check()
        self.cfg = config
        self.out = Path(config.out)
        self.columns = _Columns(config.value_format, config.key_format, config.value_schema)
        self.summary = ExportSummary()
        self.lock = threading.Lock()
        self.parts: dict[TopicPartition, _Part] = {}
        self.targets: dict[TopicPartition, int] = {}
        self.assigned_once = False
        self.rebalancing = False          # between a revocation and the assignment that follows
        self._stop = threading.Event()
        self.consumer: Consumer | None = None
        self.ext = "parquet" if config.format == "parquet" else "jsonl"

    def stop(self) -> None:
        """Ask ``run`` to flush what it holds and return (safe from a signal handler)."""
        self._stop.set()

    # ---- set-up
    def _topics(self, admin: AdminClient) -> list[str]:
        names = admin.list_topics(include_internal=True)
        if self.cfg.topics:
            missing = sorted(set(self.cfg.topics) - set(names))
            if missing:
                raise ExportError(f"unknown topic(s): {', '.join(missing)}")
            return sorted(set(self.cfg.topics))
        rx = re.compile(self.cfg.include or "")
        # As MirrorMaker: internal topics only when named, never through a pattern.
        return sorted(n for n in names if rx.fullmatch(n) and not n.startswith("__"))

    def _end_offsets(self, c: Consumer, topics: list[str]) -> dict[TopicPartition, int]:
        tps = [TopicPartition(t, p) for t in topics for p in sorted(c.partitions_for_topic(t))]
        return c.end_offsets(tps) if tps else {}

    def run(self) -> ExportSummary:
        t0 = time.monotonic()
        self.out.mkdir(parents=True, exist_ok=True)
        kw: dict[str, Any] = {"group_id": self.cfg.group, "enable_auto_commit": False,
                              "auto_offset_reset": "earliest", "allow_auto_create_topics": False,
                              "max_poll_records": 20000}
        kw.update(self.cfg.consumer_config)
        with AdminClient(self.cfg.bootstrap_servers) as admin:
            topics = self._topics(admin)
            if not topics:
                raise ExportError(f"no topic matches --include {self.cfg.include!r}")
            self.summary.topics = topics
            c = Consumer(bootstrap_servers=self.cfg.bootstrap_servers, **kw)
            self.consumer = c
            try:
                if self.cfg.until_caught_up:
                    self.targets = self._end_offsets(c, topics)
                c.subscribe(topics, _Listener(self))
                self._loop(c, admin, topics)
                with self.lock:
                    for part in list(self.parts.values()):
                        self._flush(part)
            finally:
                c.close()
                self.consumer = None
        self.summary.seconds = round(time.monotonic() - t0, 3)
        return self.summary

    def _loop(self, c: Consumer, admin: AdminClient, topics: list[str]) -> None:
        # As the Java consumer's pattern subscription: new matching topics are looked for every
        # metadata.max.age.ms (default 5 minutes).
        every = float(self.cfg.consumer_config.get("metadata_max_age_ms", 300_000)) / 1000
        refresh_at = time.monotonic() + every
        while not self._stop.is_set():
            if self.cfg.until_caught_up and self.assigned_once:
                with self.lock:
                    if not self.rebalancing and all(p.done for p in self.parts.values()):
                        return
            got = c.poll(self._poll_timeout())
            with self.lock:
                for tp, recs in got.items():
                    part = self.parts.get(tp)
                    if part is not None and not part.done:
                        self._accept(c, part, recs)
                self._roll(c, got)
            if self.cfg.include and not self.cfg.until_caught_up and time.monotonic() > refresh_at:
                refresh_at = time.monotonic() + every
                now = self._topics(admin)
                if now != topics:
                    topics = now
                    self.summary.topics = topics
                    c.subscribe(topics, _Listener(self))

    def _poll_timeout(self) -> float:
        timeout = 1.0
        with self.lock:
            for p in self.parts.values():
                if p.count:
                    timeout = min(timeout, max(0.0, p.opened + self.cfg.roll_seconds - time.monotonic()))
        return timeout

    # ---- records in
    def _accept(self, c: Consumer, part: _Part, recs: list[Any]) -> None:
        nxt = part.next_offset
        if nxt is not None and recs and recs[0].offset < nxt:
            recs = recs[bisect.bisect_left(recs, nxt, key=_offset):]
        if part.target is not None and recs and recs[-1].offset >= part.target:
            recs = recs[:bisect.bisect_left(recs, part.target, key=_offset)]
        while recs and part.skip and part.skip[0][1] < recs[0].offset:
            part.skip.pop(0)     # wholly behind what the consumer hands out (reset to latest, retention)
        while recs and part.skip and recs[-1].offset >= part.skip[0][0]:
            first, last = part.skip.pop(0)
            cut = bisect.bisect_left(recs, first, key=_offset)
            self._buffer(part, recs[:cut])
            self._flush(part)                 # a range never runs into one exported before
            part.next_offset = part.exported_to = last + 1
            self.summary.skipped_ranges += 1
            recs = recs[bisect.bisect_left(recs, last + 1, key=_offset):]
            if not recs:                       # the consumer is inside the range: jump over it
                c.seek(part.tp, last + 1)
            self._commit(c, part.tp, last + 1)
        self._buffer(part, recs)

    def _buffer(self, part: _Part, recs: list[Any]) -> None:
        room = self.cfg.roll_records - part.count
        while len(recs) > room:             # --roll-records is exact: a poll may bring more
            self._buffer(part, recs[:room])
            self._flush(part)
            recs = recs[room:]
            room = self.cfg.roll_records
        if not recs:
            return
        table = self.columns.table(part.tp.topic, part.tp.partition, recs)
        if not part.count:
            part.first = recs[0].offset
            part.opened = time.monotonic()
        part.tables.append(table)
        part.count += len(recs)
        part.nbytes += table.nbytes
        part.last = recs[-1].offset
        part.next_offset = part.last + 1

    def _roll(self, c: Consumer, got: dict[TopicPartition, list[Any]]) -> None:
        now = time.monotonic()
        for part in self.parts.values():
            if part.count and (part.count >= self.cfg.roll_records or part.nbytes >= self.cfg.roll_bytes
                               or now - part.opened >= self.cfg.roll_seconds):
                self._flush(part)
            if part.target is not None and not part.done:
                self._check_caught_up(c, part, part.tp in got)

    def _check_caught_up(self, c: Consumer, part: _Part, had_data: bool) -> None:
        assert part.target is not None
        reached = part.next_offset is not None and part.next_offset >= part.target
        now = time.monotonic()
        if not reached and not had_data and now - part.checked_at >= 0.2:
            # Only control batches (transaction markers) may lie between the last record and
            # the end: the consumer's position tells (asked at most every 0.2 s per partition).
            part.checked_at = now
            try:
                reached = c.position(part.tp) >= part.target
            except KafkaError:
                reached = False
        if reached:
            self._flush(part)
            part.done = True
            c.pause(part.tp)
            if part.exported_to is None or part.exported_to < part.target:
                part.exported_to = part.target
                self._commit(c, part.tp, part.target)

    # ---- records out
    def _flush(self, part: _Part) -> None:
        if not part.count:
            return
        import pyarrow as pa

        table = pa.concat_tables(part.tables) if len(part.tables) > 1 else part.tables[0]
        first, last, count = part.first, part.last, part.count
        part.tables, part.count, part.nbytes = [], 0, 0
        if part.tp not in self.parts or self.parts[part.tp] is not part:
            return                              # not ours any more: nothing durable, nothing committed
        self._write_range(part.tp, first, last, table)
        self.summary.records += count
        self.summary.ranges += 1
        part.exported_to = last + 1
        self.summary.partitions[f"{part.tp.topic}-{part.tp.partition}"] = last + 1
        if self.consumer is not None:
            self._commit(self.consumer, part.tp, last + 1)

    def _write_range(self, tp: TopicPartition, first: int, last: int, table: Any) -> None:
        name = _range_name(first, last)
        files = []
        for hour, sub in split_by_hour(table):
            rel = f"{_hour_dir(tp.topic, hour)}/part-{tp.partition}-{name}.{self.ext}"
            files.append((rel, sub))
        ldir = ledger_dir(self.out, tp.topic, tp.partition)
        _makedirs_durable(ldir)
        pending = ldir / f"{name}.pending"
        body = json.dumps({"topic": tp.topic, "partition": tp.partition, "first": first, "last": last,
                           "records": table.num_rows, "files": [rel for rel, _ in files]}).encode()
        _write_durable(pending, lambda f: f.write(body))
        _fsync_dir(ldir)
        moves = []
        for rel, sub in files:
            final = self.out / rel
            _makedirs_durable(final.parent)
            tmp = final.parent / f".{final.name}.tmp"
            if self.cfg.format == "parquet":
                writer = _write_parquet(sub, self.cfg.compression)
            else:
                writer = _write_jsonl(sub, self.cfg.value_format, self.cfg.key_format)
            self.summary.bytes += _write_durable(tmp, writer)
            _fsync_dir(final.parent)
            moves.append((tmp, final))
        os.replace(pending, ldir / f"{name}.done")       # the commit point of the range
        _fsync_dir(ldir)
        for tmp, final in moves:
            os.replace(tmp, final)
            _fsync_dir(final.parent)
        self.summary.files += len(moves)

    def _commit(self, c: Consumer, tp: TopicPartition, offset: int) -> None:
        try:
            c.commit({tp: OffsetAndMetadata(offset)})
        except KafkaError as exc:
            # Harmless for exactness (the ledger holds the range): the next owner skips it.
            self.summary.commit_failures += 1
            log.warning("commit of %s-%d at %d failed: %s", tp.topic, tp.partition, offset, exc)

    # ---- rebalances (called on the consumer's thread, through the listener)
    def revoked(self, tps: Iterable[TopicPartition], lost: bool) -> None:
        with self.lock:
            self.rebalancing = True        # an assignment follows (also after a loss: the consumer rejoins)
            for tp in tps:
                part = self.parts.get(tp)
                if part is None:
                    continue
                if not lost:
                    try:
                        self._flush(part)
                    except (OSError, ExportError) as exc:
                        log.error("flushing revoked %s-%d failed: %s", tp.topic, tp.partition, exc)
                del self.parts[tp]

    def assigned(self, tps: Iterable[TopicPartition]) -> None:
        """Recover each new partition from the ledger and seek to where its export goes on."""
        c = self.consumer
        assert c is not None
        with self.lock:
            self.assigned_once = True
            self.rebalancing = False
            for tp in tps:
                rec = recover_partition(self.out, tp.topic, tp.partition)
                self.summary.recovered_ranges += rec.recovered
                self.summary.recovered_records += rec.recovered_records
                self.summary.discarded_pending += rec.discarded
                start = c.committed(tp)
                ranges = rec.ranges
                if start is not None:
                    for first, last in ranges:   # sorted: resume after ranges that start there
                        if first <= start <= last:
                            start = last + 1
                            self.summary.skipped_ranges += 1
                    c.seek(tp, start)
                skip = [r for r in ranges if start is None or r[1] >= start]
                target = self.targets.get(tp, 0) if self.cfg.until_caught_up else None
                part = _Part(tp, start, skip, target)
                if target is not None and start is not None and start >= target:
                    part.done = True
                    c.pause(tp)
                self.parts[tp] = part


class _Listener(RebalanceListener):
    """Runs the exporter's (blocking, file-writing) rebalance work in a worker thread: the
    consumer's loop meanwhile keeps heartbeating and serves that work's own calls (committed
    offsets, commits, seeks through the sync Consumer)."""

    def __init__(self, exporter: Exporter) -> None:
        self.exporter = exporter

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await asyncio.get_running_loop().run_in_executor(None, self.exporter.revoked, set(revoked), False)

    async def on_partitions_lost(self, lost: set[TopicPartition]) -> None:
        await asyncio.get_running_loop().run_in_executor(None, self.exporter.revoked, set(lost), True)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        await asyncio.get_running_loop().run_in_executor(None, self.exporter.assigned, set(assigned))
