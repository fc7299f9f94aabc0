"""Topics, partitions and their logs on disk; flush and retention threads.

Layout (Kafka's, so operators recognise it): ``<log.dir>/<topic>-<partition>/``
holds one ``kafka_core.Log``; ``<first log.dir>/kc-metadata.json`` holds the
cluster id, topics (id, partition count, config overrides) and the producer
id block, rewritten atomically (temp file, fsync, rename, fsync dir) on every
change; each log dir gets Kafka's ``meta.properties``.  Producer state of a
partition is snapshotted to ``kc-producer-state.json`` in its directory at
clean shutdown and every checkpoint interval, and rebuilt on start by
scanning batch headers written after the snapshot.

Threads: the event loop owns every structure here.  Blocking work runs in
two places: the flush thread (fsync, group commit for appends waiting on
durability) and the storage worker (one thread: metadata writes, log
creation and deletion, retention, checkpoints).  A partition's ``lock``
is taken by those threads around anything that could race with closing
its log; the loop never takes it.

Creating partitions (CreateTopics, CreatePartitions) goes to the worker
``CREATE_SLICE`` partitions at a time, so other work queued meanwhile runs
between slices; a creation that fails or is cut by shutdown removes the logs
it made (``_create_logs``), so the metadata and the folders always agree.
CreateTopics does as Kafka's controller does instead: the topic goes into the
metadata file first (durably) and is answered; its logs are made afterwards
by one background creator, ``BACKGROUND_SLICE`` partitions per worker job
(``_make_pending``), until then ``Topic.pending``.  A start creates the logs
of listed partitions that have no folder the same way, so a kill -9 at any
point leaves the topic listed with all its partitions made, or not at all.
New partition folders are placed on the log dir holding fewest, counted once
and then kept (``_dir_load``), not listed per partition.

Disk failures (``log/dir_failure.py``, Kafka's LogDirFailureChannel): an I/O error in any
operation on a log dir (append, roll, index write, flush, checkpoint, retention, creating a log)
takes that whole dir offline until restart; its partitions answer KAFKA_STORAGE_ERROR, no new
partition goes there, nothing is written there again (its logs close uncleanly, so the next start
recovers them), and the other dirs are served untouched.  With no dir left, or with the first dir
(the one holding ``kc-metadata.json``) gone, the broker halts as Kafka does.

The same holds at start-up (Kafka's ``LogManager.loadLogs``): a dir that cannot be created, listed
or read, or in which a log fails to open with an I/O error, is marked offline and the broker
starts with the others.  Its partitions keep their place (``UnloadedPartition``: listed in the
metadata as before, answering KAFKA_STORAGE_ERROR) and nothing more is read or written there
until a restart.  With no dir left, or the metadata dir among the failed, ``open`` raises an
``OSError`` saying so, which the broker prints and exits with (no traceback).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import errno
import json
import logging
import os
import re
import shutil
import threading
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from .config import TOPIC_CONFIGS, BrokerConfig, validate_topic_configs
from .log.checkpoint import CheckpointError, atomic_write, read_checkpoint, write_checkpoint
from .log.clock import now_ms
from .log.dir_failure import LogDir, LogDirFailureChannel, is_dir_failure
from .log.flusher import Flusher
from .log.partition import Partition
from .log.producer_state import PRODUCER_SNAPSHOT
from .log.topics import Topic, new_cluster_id, new_topic_id

log = logging.getLogger("kafka_broker.storage")

META_FILE = "kc-metadata.json"
HW_CHECKPOINT = "replication-offset-checkpoint"   # per log dir: "topic partition highWatermark" lines
PRODUCER_ID_BLOCK = 1000
# partitions created per storage-worker job (see Storage._create_logs)
CREATE_SLICE = 64
# partitions the background creator makes per worker job: a metadata write (the next CreateTopics'
# answer) waits behind at most one such job (~0.5-1 ms each on ext4)
BACKGROUND_SLICE = 16


def halt(message: str) -> None:
    """Kafka's ``Exit.halt(1)`` after a fatal storage failure: no shutdown (nothing more is written
    to a failed dir); the next start recovers the logs from what is on disk."""
    log.critical("%s", message)
    logging.shutdown()
    os._exit(1)


def _delete_dir_name(path: str, topic: str, index: int) -> str:
    """``<topic>-<partition>.<uuid>-delete`` beside ``path``, the topic cut so that the name fits
    in 255 bytes (Kafka's ``LocalLog.logDeleteDirName``: a 249-character topic must still go)."""
    suffix = f"-{index}.{uuid.uuid4().hex}-delete"
    name = topic.encode()[:255 - len(suffix.encode())].decode(errors="ignore") + suffix
    return os.path.join(os.path.dirname(path), name)


class UnloadedPartition(Partition):
    """A hosted partition whose log was not loaded because its log dir failed at start-up (Kafka
    leaves such a log out of ``LogManager``; the replica manager answers KAFKA_STORAGE_ERROR for
    it).  It has no log (``log`` is None): every path that serves a partition checks
    ``log_dir.offline`` first, and the background work (flush, retention, checkpoints, the
    cleaner) skips offline partitions.  It keeps the partition in ``topic.partitions``, so the
    metadata written meanwhile still lists it and the next start, with the dir repaired, loads it."""

    __slots__ = ()

    def __init__(self, topic: Topic, index: int, path: str, flusher: Flusher, log_dir: LogDir) -> None:
        self.topic = topic
        self.index = index
        self.path = path
        self.log_dir = log_dir
        self.log = None
        self.flusher = flusher
        self.lock = threading.Lock()
        self.clean_lock = threading.Lock()
        self.closed = False
        self.waiters = []
        self.replication = None
        self.replicated = False
        self.leader_epoch = 0
        self.high_watermark = 0
        self.failure_logged = self.read_failure_logged = 0.0


class Storage:
    """All topics of this broker and the threads that keep their logs."""

    def __init__(self, config: BrokerConfig, loop: asyncio.AbstractEventLoop, *,
                 replicated: bool | None = None) -> None:
        import kafka_core

        self.kc = kafka_core
        self.config = config
        # A cluster member (zookeeper.connect set): partitions may be sparse (hosted here or not) and
        # their high watermarks come from the replication-offset-checkpoint file, not the log end.
        self.replicated = bool(config.get("zookeeper.connect")) if replicated is None else replicated
        self.loop = loop
        self.dirs = [os.path.abspath(d) for d in config.log_dirs]
        # which of them are offline (log/dir_failure.py); halt: what a fatal one does (tests swap it)
        self.log_dirs = LogDirFailureChannel(self.dirs, loop, self._log_dir_offline)
        self.halt: Callable[[str], None] = halt
        self.topics: dict[str, Topic] = {}
        self.topics_by_id: dict[uuid.UUID, Topic] = {}
        self.deleting: dict[str, asyncio.Future[None]] = {}
        self._creating_replicas: dict[tuple[str, int], asyncio.Future[Partition]] = {}
        self.cluster_id = ""
        self.next_producer_id = 0
        self.producer_id_block_end = 0
        # (first, last) of a new block of producer ids (cluster: from ZooKeeper); None: local
        self.producer_id_blocks: Callable[[], Awaitable[tuple[int, int]]] | None = None
        self.worker = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="kc-storage")
        self.flusher = Flusher(loop, self)
        self._timers: list[asyncio.TimerHandle] = []
        self._meta_lock = threading.Lock()
        # persist(): changes asked to be written / written, and the task writing them
        self._meta_dirty = self._meta_written = 0
        self._meta_writer: asyncio.Task[None] | None = None
        # partition directories per log dir (None: not counted yet), for placing new partitions
        self._dir_load: list[int] | None = None
        self._dir_load_lock = threading.Lock()
        self._creating: list[list[Partition]] = []   # logs of creations still in progress
        # listed partitions whose logs are still to be made (Topic.pending), by topic, served in
        # turn; the task making them; the worker job in progress and its logs not yet published
        self._backlog: deque[tuple[Topic, deque[int]]] = deque()
        self._maker: asyncio.Task[None] | None = None
        self._making: asyncio.Future[None] | None = None
        self._made: list[Partition] = []
        self._closing = False
        self._flush_ms_active = False
        self._hw_checkpoint: dict[tuple[str, int], int] = {}    # as read at open
        self._hw_written: dict[str, list[tuple[str, int, int]]] = {}   # per log dir, last written

    # -- start-up and shutdown ---------------------------------------------

    def stored_cluster_id(self) -> str | None:
        """The cluster id these log dirs belong to (None: new dirs)."""
        return self._read_meta().get("cluster_id") or None

    def open(self, cluster_id: str | None = None) -> None:
        """Load metadata and open (recovering) every partition log.  Blocking: call before serving.
        ``cluster_id``: the cluster's (ZooKeeper's ``/cluster/id``), checked against the stored one."""
        for i, d in enumerate(self.dirs):
            try:
                os.makedirs(d, exist_ok=True)
            except OSError as e:
                self._load_failed(i, "creating the log dir", e)
        meta = self._read_meta()
        stored = meta.get("cluster_id")
        if cluster_id is not None and stored and stored != cluster_id:
            raise RuntimeError(f"the log dirs belong to cluster {stored}, not to {cluster_id}")
        self.cluster_id = cluster_id or stored or self.config.get("cluster.id") or new_cluster_id()
        self.producer_id_block_end = int(meta.get("producer_id_block_end", 0))
        self.next_producer_id = self.producer_id_block_end
        for i, d in enumerate(self.dirs):
            if self.log_dirs.dirs[i].offline is None:
                try:
                    self._write_meta_properties(d)
                except OSError as e:
                    self._load_failed(i, "writing meta.properties", e)
        t0 = time.monotonic()
        self._read_hw_checkpoints()
        found = self._list_partition_dirs()
        # a dir that failed to list may hold any of them: then none is taken for missing
        folders = None if any(d.offline is not None for d in self.log_dirs.dirs) else set(found)
        jobs: list[tuple[Topic, int]] = []
        for name, t in sorted(meta.get("topics", {}).items()):
            topic = Topic(name, uuid.UUID(t["id"]), t.get("configs", {}))
            self._compute_effective(topic)
            n = int(t["partitions"])
            topic.partitions = [None] * n
            # "hosted" is written only for a sparse topic: without it every partition is hosted
            hosted = t.get("hosted")
            jobs.extend((topic, i) for i in (range(n) if hosted is None else sorted(set(hosted))) if 0 <= i < n)
            self.topics[name] = topic
            self.topics_by_id[topic.id] = topic
        # listed partitions with no folder (a create a crash or a stop cut short): made in the
        # background once serving, as CreateTopics makes them (single node: a cluster member's
        # replicas come from the controller, create_replica)
        missing = [] if folders is None or self.replicated else \
            [j for j in jobs if f"{j[0].name}-{j[1]}" not in folders]
        if missing:
            jobs = [j for j in jobs if f"{j[0].name}-{j[1]}" in folders]  # type: ignore[operator]

        def open_one(job: tuple[Topic, int]) -> tuple[Partition, int]:
            return self._load_partition(job[0], job[1], found.get(f"{job[0].name}-{job[1]}"))
        # Recovery (and the producer-state scan) releases the GIL: open logs in parallel,
        # num.recovery.threads.per.data.dir threads per log dir, as Kafka does.
        nthreads = max(1, self.config["num.recovery.threads.per.data.dir"] * len(self.dirs))
        with concurrent.futures.ThreadPoolExecutor(nthreads, thread_name_prefix="kc-recovery") as pool:
            opened = list(pool.map(open_one, jobs))
        failed = [d.path for d in self.log_dirs.dirs if d.offline is not None]
        if not self.log_dirs.online():
            raise OSError(errno.EIO, f"Shutdown broker because all log dirs in {', '.join(self.dirs)} have failed")
        if self.log_dirs.dirs[0].offline is not None:
            raise OSError(errno.EIO, f"Shutdown broker because the metadata log dir {self.dirs[0]} has failed")
        if failed:
            log.warning("storage: log dir(s) %s failed while loading: starting with %s; their partitions "
                        "answer KAFKA_STORAGE_ERROR until a restart", ", ".join(failed),
                        ", ".join(d.path for d in self.log_dirs.online()))
        max_pid = -1
        for p, pid in opened:
            p.topic.partitions[p.index] = p
            max_pid = max(max_pid, pid)
        if max_pid >= self.next_producer_id:
            self.next_producer_id = self.producer_id_block_end = max_pid + 1
        self._warn_strays()
        nparts = len(jobs)
        log.info("storage: %d topic(s), %d partition(s) in %s loaded in %.2fs", len(self.topics), nparts,
                 ", ".join(self.dirs), time.monotonic() - t0)
        if missing:
            log.info("storage: %d listed partition(s) have no log yet; creating them", len(missing))
            by_topic: dict[str, list[int]] = {}
            for topic, i in missing:
                topic.pending.add(i)
                by_topic.setdefault(topic.name, []).append(i)
            for name, idxs in by_topic.items():
                self._queue_pending(self.topics[name], idxs)
        self._persist_sync()
        self.flusher.start()
        self._schedule(self.config["log.retention.check.interval.ms"] / 1000, self._retention_tick)
        interval = self.config["log.flush.offset.checkpoint.interval.ms"]
        if interval > 0:
            self._schedule(interval / 1000, self._checkpoint_tick)
        self._update_flush_ms_active()

    def _load_failed(self, i: int, what: str, e: OSError) -> None:
        """Start-up: ``what`` failed in log dir ``i``.  A disk failure takes the dir offline (the
        load goes on without it); anything else (a process limit) stops the start."""
        if not self.log_dirs.dirs[i].failed(what, e):
            raise e

    def _list_partition_dirs(self) -> dict[str, str]:
        """Start-up: ``<topic>-<partition>`` -> its folder, listing each online log dir once (a dir
        that cannot be listed goes offline).  Also counts the folders per dir for placing new
        partitions (``_partition_dir``), so a failed dir is never listed again for that."""
        found: dict[str, str] = {}
        load = [0] * len(self.dirs)
        for i, d in enumerate(self.dirs):
            if self.log_dirs.dirs[i].offline is not None:
                continue
            try:
                with os.scandir(d) as it:
                    for e in it:
                        if e.is_dir():
                            load[i] += 1
                            found.setdefault(e.name, e.path)
            except OSError as e:
                self._load_failed(i, "listing the log dir", e)
        with self._dir_load_lock:
            self._dir_load = load
        return found

    def _load_partition(self, topic: Topic, index: int, path: str | None) -> tuple[Partition, int]:
        """Recovery thread: open one log found at ``path`` (None: in no online dir) and rebuild its
        producer state; returns it and the largest producer id seen.  A disk failure takes its dir
        offline and gives an ``UnloadedPartition``, as does a dir that failed before (nothing more
        is read there).  Not found while a dir is offline: it may be there, so it is not created
        empty elsewhere (Kafka's getOrCreateLog refuses the same)."""
        failed = [d for d in self.log_dirs.dirs if d.offline is not None]
        if path is None and failed:
            return UnloadedPartition(topic, index, os.path.join(failed[0].path, f"{topic.name}-{index}"),
                                     self.flusher, failed[0]), -1
        ld = self._log_dir_of(path) if path is not None else None
        if ld is not None and ld.offline is not None:
            return UnloadedPartition(topic, index, path or "", self.flusher, ld), -1
        try:
            p = self._open_partition(topic, index, create=True, path=path)
        except OSError as e:
            ld = self._log_dir_of(path) if path is not None else next(
                (d for d in self.log_dirs.dirs if d.offline is not None), None)
            if ld is None or not is_dir_failure(e) or ld.offline is None:
                raise
            return UnloadedPartition(topic, index, path or os.path.join(ld.path, f"{topic.name}-{index}"),
                                     self.flusher, ld), -1
        try:
            return p, self._load_producers(p)
        except OSError as e:
            if not p.log_dir.failed(f"loading the producer state of {p.name}", e):
                raise
            return p, -1          # loaded, but its dir is offline now: served as offline

    def close(self) -> None:
        """Clean shutdown: drain the flush thread, snapshot producer state, close logs clean."""
        for t in self._timers:
            t.cancel()
        self._timers.clear()
        self._closing = True   # creations in progress stop at their next slice
        if self._maker is not None:
            self._maker.cancel()
        self.flusher.stop()
        self.worker.shutdown(wait=True)
        self._publish_made()   # made by the background job the shutdown waited for: closed below
        for made in self._creating:   # unfinished creations: no metadata lists their logs
            self._discard_logs(made)
        self._creating.clear()
        self._write_hw_checkpoints(self._hw_snapshot())
        for topic in self.topics.values():
            for p in topic.hosted():
                with p.clean_lock, p.lock:
                    if p.closed:
                        continue
                    if p.offline:
                        # nothing more goes to a failed dir: no snapshot, no clean-shutdown
                        # marker (the next start recovers the log from what is on disk)
                        self._close_offline(p)
                        continue
                    try:
                        # an empty log has no producer state to keep (two fsyncs saved for each
                        # idle partition of a 50,000-partition topic)
                        if p.log.end_offset > 0 or p.producers.entries:
                            self._write_producer_snapshot(p.path, p.log.end_offset, p.producers.to_json())
                    except OSError as e:
                        log.warning("producer snapshot of %s: %s", p.name, e)
                    try:
                        p.log.close(clean=True)
                    except Exception as e:  # noqa: BLE001
                        log.error("closing %s: %s", p.name, e)
                    p.closed = True
        self._persist_sync()
        log.info("storage closed cleanly")

    @staticmethod
    def _close_offline(p: Partition) -> None:
        if p.log is None:       # an UnloadedPartition
            p.closed = True
            return
        try:
            p.log.close(clean=False)
        except Exception as e:  # noqa: BLE001
            log.warning("closing %s (log dir offline): %s", p.name, e)
        p.closed = True

    def _log_dir_offline(self, d: LogDir) -> None:
        """Loop thread, once per dir, after the failure was logged (``LogDirFailureChannel``):
        answer the fetches parked on its partitions now, and halt when Kafka would."""
        if not self.log_dirs.online():
            self.halt(f"Shutdown broker because all log dirs in {', '.join(self.dirs)} have failed")
            return
        if d.path == self.dirs[0]:
            self.halt(f"Shutdown broker because the metadata log dir {d.path} has failed")
            return
        n = 0
        for t in list(self.topics.values()):
            for p in t.hosted():
                if p.log_dir is d:
                    n += 1
                    p.notify(0)
        log.warning("Stopping serving %d partition(s) in dir %s", n, d.path)

    def _schedule(self, delay: float, fn: Callable[[], None]) -> None:
        def fire() -> None:
            self._timers.remove(h)
            fn()
            self._schedule(delay, fn)
        h = self.loop.call_later(delay, fire)
        self._timers.append(h)

    def _warn_strays(self) -> None:
        known = {f"{t.name}-{p.index}" for t in self.topics.values() for p in t.hosted()}
        for ld in self.log_dirs.online():
            d = ld.path
            try:
                entries = os.listdir(d)
            except OSError as e:
                log.warning("listing %s: %s", d, e)
                continue
            for entry in entries:
                full = os.path.join(d, entry)
                if re.fullmatch(r".+-\d+\.[0-9a-f]{32}-delete", entry):
                    shutil.rmtree(full, ignore_errors=True)   # a deletion a crash interrupted
                elif os.path.isdir(full) and re.fullmatch(r".+-\d+", entry) and entry not in known:
                    log.warning("log dir %s belongs to no known topic; left alone", full)

    # -- metadata file -----------------------------------------------------

    def _meta_path(self) -> str:
        return os.path.join(self.dirs[0], META_FILE)

    def _read_meta(self) -> dict[str, Any]:
        try:
            with open(self._meta_path(), encoding="utf-8") as f:
                data: dict[str, Any] = json.load(f)
                return data
        except FileNotFoundError:
            return {}

    def _meta_snapshot(self) -> bytes:
        data = {
            "version": 1,
            "cluster_id": self.cluster_id,
            "node_id": self.config.node_id,
            "producer_id_block_end": self.producer_id_block_end,
            "topics": {name: self._topic_meta(t) for name, t in sorted(self.topics.items())},
        }
        return json.dumps(data, indent=1, sort_keys=True).encode()

    @staticmethod
    def _topic_meta(t: Topic) -> dict[str, Any]:
        m: dict[str, Any] = {"id": str(t.id), "partitions": len(t.partitions), "configs": t.overrides}
        # sparse: say which; dense keeps the old format (a pending partition is hosted: its log is
        # being made, and its slot is None meanwhile)
        if t.partitions.count(None) > len(t.pending):
            m["hosted"] = [i for i, p in enumerate(t.partitions) if p is not None or i in t.pending]
        return m

    def _persist_sync(self) -> None:
        self._write_meta(self._meta_snapshot())

    def _write_meta(self, data: bytes) -> None:
        """Any thread: the metadata file; a disk failure takes the first dir offline (a halt)."""
        with self._meta_lock:
            try:
                atomic_write(self._meta_path(), data)
            except OSError as e:
                self.log_dirs.dirs[0].failed("writing the metadata file", e)
                raise

    async def persist(self) -> None:
        """Write the metadata file: returns once a snapshot taken after this call is on disk.

        Callers that come while a write is under way share the next one (group commit): the
        topics of one CreateTopics are created side by side and each persists, and without this
        every topic rewrote the whole file (a JSON snapshot on the loop and two fsyncs on the
        worker each), quadratic in the number of topics.  A snapshot is taken and queued in one
        loop step, so the worker writes snapshots in the order they were taken."""
        self._meta_dirty += 1
        mine = self._meta_dirty
        while self._meta_written < mine:
            if self._meta_writer is None:
                self._meta_writer = self.loop.create_task(self._write_meta_until_clean())
            await asyncio.shield(self._meta_writer)

    async def _write_meta_until_clean(self) -> None:
        try:
            while self._meta_written < self._meta_dirty:
                gen = self._meta_dirty
                await self.loop.run_in_executor(self.worker, self._write_meta, self._meta_snapshot())
                self._meta_written = gen
        finally:
            self._meta_writer = None

    def _write_meta_properties(self, d: str) -> None:
        path = os.path.join(d, "meta.properties")
        if os.path.exists(path):
            return
        text = (f"#\n#{time.ctime()}\nnode.id={self.config.node_id}\nversion=1\n"
                f"cluster.id={self.cluster_id}\ndirectory.id={new_cluster_id()}\n")
        atomic_write(path, text.encode())

    # -- topic configs -----------------------------------------------------

    def compute_effective(self, topic: Topic) -> None:
        """``topic.effective``: the broker's defaults with the topic's overrides."""
        self._compute_effective(topic)

    def _compute_effective(self, topic: Topic) -> None:
        eff = self.config.topic_defaults()
        eff.update(validate_topic_configs(topic.overrides))
        topic.effective = eff

    def flush_poll_s(self) -> float | None:
        return 0.1 if self._flush_ms_active else None

    def _update_flush_ms_active(self) -> None:
        from .config import LONG_MAX
        self._flush_ms_active = any(t.effective["flush.ms"] < LONG_MAX for t in self.topics.values())

    def partitions_due_for_time_flush(self) -> list[Partition]:
        """Called from the flush thread: partitions whose unflushed data is older than flush.ms."""
        if not self._flush_ms_active:
            return []
        now = now_ms()
        due = []
        for t in list(self.topics.values()):
            fms = t.effective["flush.ms"]
            for p in list(t.hosted()):
                if (not p.closed and not p.offline and now - p.last_flush_ms >= fms
                        and p.log.unflushed_messages > 0):
                    due.append(p)
        return due

    # -- partitions --------------------------------------------------------

    def _log_kwargs(self, topic: Topic) -> dict[str, Any]:
        eff = topic.effective
        return dict(segment_bytes=eff["segment.bytes"], roll_ms=eff["segment.ms"],
                    index_interval_bytes=eff["index.interval.bytes"], max_index_bytes=eff["segment.index.bytes"],
                    flush_interval_messages=eff["flush.messages"], max_batch_size=0)

    def _partition_dir(self, name: str, index: int) -> str:
        leaf = f"{name}-{index}"
        online = [i for i, d in enumerate(self.log_dirs.dirs) if d.offline is None]
        for i in online:
            if os.path.isdir(os.path.join(self.dirs[i], leaf)):
                return os.path.join(self.dirs[i], leaf)
        if not online:     # Kafka's LogManager.nextLogDirs finds none either
            raise OSError(errno.EIO, f"No log directories available. Tried {', '.join(self.dirs)}")
        # new: the online log dir holding the fewest partitions.  Counted once, then kept: listing
        # the dirs for every new partition made a 50,000-partition create quadratic (issue 16).
        with self._dir_load_lock:
            if self._dir_load is None:
                self._dir_load = [sum(1 for e in os.scandir(d) if e.is_dir()) for d in self.dirs]
            i = min(online, key=self._dir_load.__getitem__)
            self._dir_load[i] += 1
        return os.path.join(self.dirs[i], leaf)

    def _dir_removed(self, path: str) -> None:
        """A partition directory left its log dir (deleted or renamed for deletion)."""
        with self._dir_load_lock:
            parent = os.path.dirname(path)
            if self._dir_load is not None and parent in self.dirs:
                i = self.dirs.index(parent)
                self._dir_load[i] = max(0, self._dir_load[i] - 1)

    def _log_dir_of(self, path: str) -> LogDir:
        parent = os.path.dirname(path)
        return self.log_dirs.by_path.get(parent) or LogDir(parent)

    def _open_partition(self, topic: Topic, index: int, create: bool, path: str | None = None,
                        new: bool = False) -> Partition:
        """``new``: its folder did not exist (nothing in it to read besides what the log made)."""
        path = path or self._partition_dir(topic.name, index)
        what = f"creating or opening log {topic.name}-{index}"
        try:
            lg = self.kc.Log(path, **self._log_kwargs(topic))
        except OSError as e:   # Kafka's getOrCreateLog: the dir goes offline
            self._log_dir_of(path).failed(what, e)
            raise
        try:
            return self._partition_over(topic, index, path, lg, new)
        except BaseException as e:
            lg.close(clean=False)
            if isinstance(e, OSError):     # the epoch cache or txn index could not be written
                self._log_dir_of(path).failed(what, e)
            raise

    def _partition_over(self, topic: Topic, index: int, path: str, lg: Any, new: bool = False) -> Partition:
        rec = lg.recovery
        if rec and not rec.get("clean", 1) and (rec.get("segments_scanned") or rec.get("bytes_truncated")):
            log.info("recovered %s: %s", path, rec)
        # Replicated: the checkpointed high watermark, clamped to the log; without an entry
        # Kafka's 0 (clamped up to the log start), never a log end that may hold uncommitted data.
        hw = self._hw_checkpoint.get((topic.name, index), 0) if self.replicated else None
        p = Partition(topic, index, path, lg, self.flusher, replicated=self.replicated, high_watermark=hw,
                      log_dir=self._log_dir_of(path), new=new)
        p.segment_base = -1
        return p

    def _load_producers(self, p: Partition) -> int:
        """Rebuild producer state: snapshot, then batch headers after it.  Returns the largest pid seen."""
        return p.load_producers()

    # -- high-watermark checkpoint (Kafka's replication-offset-checkpoint, one per log dir) -----

    def _read_hw_checkpoints(self) -> None:
        self._hw_checkpoint = {}
        for n, d in enumerate(self.dirs):
            if self.log_dirs.dirs[n].offline is not None:
                continue
            path = os.path.join(d, HW_CHECKPOINT)
            try:
                rows = read_checkpoint(path, 3) or []
                self._hw_checkpoint.update(((t, int(i)), int(o)) for t, i, o in rows)
            except (CheckpointError, ValueError) as e:
                log.warning("%s: %s; high watermarks start at the log start", path, e)
            except OSError as e:
                self._load_failed(n, "reading the high-watermark checkpoint", e)

    def _hw_snapshot(self) -> dict[str, list[tuple[str, int, int]]]:
        """Loop thread: every hosted partition's high watermark, by log dir."""
        out: dict[str, list[tuple[str, int, int]]] = {d.path: [] for d in self.log_dirs.online()}
        for t in self.topics.values():
            for p in t.hosted():
                if p.offline:
                    continue
                d = os.path.dirname(p.path)
                out.setdefault(d, []).append((t.name, p.index, p.high_watermark))
        return out

    def _write_hw_checkpoints(self, snap: dict[str, list[tuple[str, int, int]]]) -> None:
        """Storage worker (or close): rewrite each log dir's file whose entries changed."""
        for d, rows in snap.items():
            if self._hw_written.get(d) == rows:
                continue
            path = os.path.join(d, HW_CHECKPOINT)
            ld = self._log_dir_of(path)
            if ld.offline is not None:
                continue
            try:
                write_checkpoint(path, rows)
                self._hw_written[d] = rows
            except OSError as e:
                if not ld.failed("writing the high-watermark checkpoint", e):
                    log.warning("high-watermark checkpoint in %s: %s", d, e)

    @staticmethod
    def _write_producer_snapshot(path: str, offset: int, producers: dict[str, Any]) -> None:
        atomic_write(os.path.join(path, PRODUCER_SNAPSHOT),
                     json.dumps({"offset": offset, "producers": producers}).encode())

    def get(self, name: str) -> Topic | None:
        return self.topics.get(name)

    def partition(self, name: str, index: int) -> Partition | None:
        """The hosted partition, or None (no such topic or partition, or not hosted here)."""
        t = self.topics.get(name)
        return None if t is None else t.hosted_partition(index)

    # -- admin operations (async: disk work on the storage worker) ----------

    async def create_topic(self, name: str, num_partitions: int, overrides: dict[str, str], *,
                           background: bool = False) -> Topic:
        """A new topic.  ``background`` (CreateTopics): returns once the metadata file lists it,
        its logs made afterwards (``Topic.pending`` meanwhile); else once its logs exist."""
        pending = self.deleting.get(name)
        if pending is not None:
            await asyncio.shield(pending)
        if name in self.topics:
            raise FileExistsError(name)
        topic = Topic(name, new_topic_id(), overrides)
        self._compute_effective(topic)
        # Reserve the name before awaiting so a concurrent create sees it.
        self.topics[name] = topic
        self.topics_by_id[topic.id] = topic
        if background:
            topic.partitions = [None] * num_partitions
            topic.pending = set(range(num_partitions))
            try:
                await self.persist()
            except BaseException:
                self.topics.pop(name, None)
                self.topics_by_id.pop(topic.id, None)
                raise
            self._update_flush_ms_active()
            self._queue_pending(topic, range(num_partitions))
            log.info("created topic %s (%d partitions, id %s; logs in the background)", name, num_partitions,
                     topic.id)
            return topic
        try:
            parts = await self._create_logs(topic, 0, num_partitions)
        except BaseException:
            self.topics.pop(name, None)
            self.topics_by_id.pop(topic.id, None)
            raise
        topic.partitions.extend(parts)
        await self.persist()
        self._update_flush_ms_active()
        log.info("created topic %s (%d partitions, id %s)", name, num_partitions, topic.id)
        return topic

    async def add_partitions(self, topic: Topic, count: int) -> None:
        first = len(topic.partitions)
        parts = await self._create_logs(topic, first, count)
        if topic.deleted:
            return
        topic.partitions.extend(parts)
        await self.persist()
        log.info("topic %s now has %d partitions", topic.name, count)

    async def _create_logs(self, topic: Topic, first: int, end: int) -> list[Partition]:
        """Partitions first..end-1 of topic, created on the storage worker CREATE_SLICE at a time:
        the worker is one FIFO thread, so whatever else is queued (another create, an auto-create,
        a metadata write) runs between two slices instead of after a 50,000-partition create.
        A failure, or a shutdown (close), midway removes the logs made so far: the metadata only
        ever lists partitions whose logs exist, and no directory is left that it does not list."""
        made: list[Partition] = []

        def create_slice(lo: int, hi: int) -> None:
            # appended on the worker, one by one: a close() that waits for this slice sees them all
            for i in range(lo, hi):
                made.append(self._make_log(topic, i))

        self._creating.append(made)
        try:
            for lo in range(first, end, CREATE_SLICE):
                if self._closing:
                    raise RuntimeError("the broker is shutting down")
                await self.loop.run_in_executor(self.worker, create_slice, lo, min(end, lo + CREATE_SLICE))
        except BaseException:
            self._creating.remove(made)
            if not self._closing:    # close() removes them itself, the worker being shut down
                await self.loop.run_in_executor(self.worker, self._discard_logs, list(made))
            raise
        self._creating.remove(made)
        return made

    def _make_log(self, topic: Topic, index: int) -> Partition:
        """Storage worker: a new partition's log; a failure leaves no folder it made half."""
        path = self._partition_dir(topic.name, index)
        existed = os.path.isdir(path)
        try:
            return self._open_partition(topic, index, True, path, new=not existed)
        except BaseException:
            if not existed:     # half made (out of file descriptors, say): leave nothing
                shutil.rmtree(path, ignore_errors=True)
                self._dir_removed(path)
            raise

    # -- background creation (CreateTopics; listed partitions without a log at start) ----------

    def _queue_pending(self, topic: Topic, indexes: Iterable[int]) -> None:
        """Loop thread: make the logs of these ``Topic.pending`` partitions in the background.
        Topics take turns, a slice each, so a small topic created behind a 50,000-partition one
        gets its logs at once, not after the big one's."""
        self._backlog.append((topic, deque(indexes)))
        if self._maker is None:
            self._maker = self.loop.create_task(self._make_pending())

    async def _make_pending(self) -> None:
        """The one background creator: BACKGROUND_SLICE logs per worker job, published after each
        (the worker is FIFO, so a metadata write queued meanwhile waits for one job, not all)."""
        try:
            while self._backlog and not self._closing:
                items: list[tuple[Topic, int]] = []
                while self._backlog and len(items) < BACKGROUND_SLICE:
                    t, idxs = self._backlog.popleft()
                    while idxs and len(items) < BACKGROUND_SLICE and not t.deleted:
                        i = idxs.popleft()
                        if i in t.pending:
                            items.append((t, i))
                    if idxs and not t.deleted:
                        self._backlog.append((t, idxs))     # its next slice after the others' turn
                if not items:
                    continue
                self._making = self.loop.create_future()
                try:
                    await self.loop.run_in_executor(self.worker, self._make_slice, items)
                finally:
                    self._publish_made()
                    self._making.set_result(None)
                    self._making = None
        except Exception as e:  # noqa: BLE001    (the worker shut down under it: close publishes)
            if not self._closing:
                log.error("background log creation stopped: %s", e)
        finally:
            self._maker = None

    def _make_slice(self, items: list[tuple[Topic, int]]) -> None:
        """Storage worker: the logs of pending partitions, into ``_made`` (published on the loop).
        One that cannot be made is logged and stays pending (unavailable); the next start retries."""
        for topic, i in items:
            if topic.deleted or self._closing:
                continue
            try:
                self._made.append(self._make_log(topic, i))
            except Exception as e:  # noqa: BLE001    (an OSError also took its log dir offline)
                log.error("creating the log of %s-%d: %s; it stays unavailable until a restart", topic.name, i, e)

    def _publish_made(self) -> None:
        """Loop thread (or close, the worker stopped): logs the background creator made are served."""
        made, self._made = self._made, []
        for p in made:
            p.topic.partitions[p.index] = p
            p.topic.pending.discard(p.index)

    def _discard_logs(self, parts: list[Partition]) -> None:
        """Close and remove logs no metadata lists (a creation that did not finish)."""
        for p in parts:
            with p.clean_lock, p.lock:
                if p.closed:
                    continue
                p.closed = True
                try:
                    p.log.close(clean=False)
                except Exception as e:  # noqa: BLE001
                    log.error("closing %s: %s", p.path, e)
                shutil.rmtree(p.path, ignore_errors=True)
                self._dir_removed(p.path)

    async def delete_topic(self, topic: Topic) -> None:
        """Unpublish now; then, on the storage worker: close the logs, rename their directories
        to ``<topic>-<partition>.<id>-delete`` (as Kafka does), persist the metadata, remove them.
        A crash midway leaves only ``-delete`` directories, removed at the next start."""
        self.topics.pop(topic.name, None)
        self.topics_by_id.pop(topic.id, None)
        topic.deleted = True       # the background creator makes no more of its logs
        fut: asyncio.Future[None] = self.loop.create_future()
        self.deleting[topic.name] = fut
        try:
            if topic.pending and self._making is not None:
                await asyncio.shield(self._making)   # logs the job under way made are published
            topic.pending.clear()
            parts = list(topic.hosted())
            for p in parts:
                p.closed = True   # loop-side readers check this; the worker closes under p.lock
                p.notify(0)
            meta = self._meta_snapshot()
            await self.loop.run_in_executor(self.worker, self._remove_logs, parts, meta)
        finally:
            del self.deleting[topic.name]
            fut.set_result(None)
        log.info("deleted topic %s", topic.name)

    def _remove_logs(self, parts: list[Partition], meta: bytes) -> None:
        """Storage worker: close the (already unpublished) logs, rename their directories to
        ``<topic>-<partition>.<uuid>-delete``, write ``meta``, then remove the directories."""
        trash = []
        for p in parts:
            with p.clean_lock, p.lock:
                try:
                    p.log.close(clean=False)
                except Exception as e:  # noqa: BLE001
                    log.error("closing %s: %s", p.path, e)
                dst = _delete_dir_name(p.path, p.topic.name, p.index)
                try:
                    os.rename(p.path, dst)
                    trash.append(dst)
                    self._dir_removed(p.path)
                except FileNotFoundError:
                    pass
                except OSError as e:     # the metadata no longer has the topic: its data goes anyway
                    log.error("renaming %s for deletion: %s; removing it in place", p.path, e)
                    trash.append(p.path)
        self._write_meta(meta)
        for d in trash:
            shutil.rmtree(d, ignore_errors=True)

    # -- sparse hosting (a cluster broker hosts only the replicas assigned to it) --------------

    async def ensure_topic(self, name: str, topic_id: uuid.UUID, num_partitions: int,
                           overrides: dict[str, str]) -> Topic:
        """The topic as the cluster knows it: created (every slot None, nothing hosted yet) or
        grown to ``num_partitions`` (new slots None; partitions never shrink), its overrides set
        to ``overrides``; persisted.  A live topic of that name with another id is ValueError:
        the cluster code deletes the old replicas first."""
        pending = self.deleting.get(name)
        if pending is not None:
            await asyncio.shield(pending)
        topic = self.topics.get(name)
        if topic is not None and topic.id != topic_id:
            raise ValueError(f"topic {name} has id {topic.id} here, not {topic_id}")
        changed = False
        if topic is None:
            topic = Topic(name, topic_id, overrides)
            self._compute_effective(topic)
            self.topics[name] = topic
            self.topics_by_id[topic_id] = topic
            changed = True
        elif topic.overrides != overrides:
            self._set_overrides(topic, overrides)
            changed = True
        if num_partitions > len(topic.partitions):
            topic.partitions.extend([None] * (num_partitions - len(topic.partitions)))
            changed = True
        if changed:
            await self.persist()
            self._update_flush_ms_active()
        return topic

    async def create_replica(self, topic: Topic, index: int) -> Partition:
        """Host partition ``index`` of ``topic`` (from ``ensure_topic``): open or create its log
        on the storage worker, load its producer state and epochs, persist.  Idempotent: the hosted
        partition is returned as it is; concurrent calls share one creation."""
        if not 0 <= index < len(topic.partitions):
            raise IndexError(f"{topic.name} has no partition {index}")
        p = topic.partitions[index]
        if p is not None:
            return p
        key = (topic.name, index)
        pending = self._creating_replicas.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        fut: asyncio.Future[Partition] = self.loop.create_future()
        self._creating_replicas[key] = fut
        try:
            def open_one() -> Partition:
                q = self._open_partition(topic, index, create=True)
                self._load_producers(q)
                return q
            p = await self.loop.run_in_executor(self.worker, open_one)
            if topic.deleted or self.topics.get(topic.name) is not topic:
                await self.loop.run_in_executor(self.worker, lambda: p.log.close(clean=True))
                raise KeyError(f"topic {topic.name} was deleted")
            topic.partitions[index] = p
            await self.persist()
            fut.set_result(p)
            log.info("hosting replica %s", p.name)
            return p
        except BaseException as e:
            fut.set_exception(e)
            fut.exception()   # retrieved: a creation nobody shares must not warn
            raise
        finally:
            del self._creating_replicas[key]

    async def delete_replica(self, topic: Topic, index: int) -> None:
        """Stop hosting partition ``index``: unpublish it now (slot back to None), then on the
        storage worker close and delete its log (as ``delete_topic`` does) and persist.  The topic is
        dropped from the registry when it hosts no replica any more.  No-op when not hosted."""
        p = topic.hosted_partition(index)
        if p is None:
            return
        topic.partitions[index] = None
        p.closed = True
        p.notify(0)
        if not any(q is not None for q in topic.partitions) and self.topics.get(topic.name) is topic:
            self.topics.pop(topic.name, None)
            self.topics_by_id.pop(topic.id, None)
            topic.deleted = True
        meta = self._meta_snapshot()
        await self.loop.run_in_executor(self.worker, self._remove_logs, [p], meta)
        log.info("deleted replica %s", p.name)

    # -- configs -------------------------------------------------------------------------------

    def _set_overrides(self, topic: Topic, overrides: dict[str, str]) -> None:
        topic.overrides = dict(overrides)
        self._compute_effective(topic)
        for p in topic.hosted():
            configure = getattr(p.log, "configure", None)
            if configure is not None:
                try:
                    configure(**self._log_kwargs(topic))
                except Exception as e:  # noqa: BLE001
                    log.warning("reconfiguring %s: %s", p.name, e)

    async def alter_topic_configs(self, topic: Topic, overrides: dict[str, str]) -> None:
        self._set_overrides(topic, overrides)
        self._update_flush_ms_active()
        await self.persist()

    async def delete_records(self, p: Partition, offset: int) -> int:
        def run() -> int:
            with p.clean_lock, p.lock:
                if p.closed:
                    raise KeyError(p.name)
                if p.offline:
                    raise OSError(errno.EIO, f"log dir {p.log_dir.path} of {p.name} is offline")
                p.log.delete_records(offset)
                p.log_start_moved()
                return int(p.log.start_offset)
        return await self.loop.run_in_executor(self.worker, run)

    async def allocate_producer_id(self) -> int:
        if self.next_producer_id >= self.producer_id_block_end:
            if self.producer_id_blocks is not None:
                # A cluster: blocks come from ZooKeeper, so no two brokers hand out one id.
                start, end = await self.producer_id_blocks()
                self.next_producer_id, self.producer_id_block_end = start, end + 1
            else:
                self.producer_id_block_end = self.next_producer_id + PRODUCER_ID_BLOCK
                await self.persist()
        pid = self.next_producer_id
        self.next_producer_id += 1
        return pid

    # -- background ticks ----------------------------------------------------

    def _all_partitions(self) -> list[tuple[Partition, dict[str, Any]]]:
        return [(p, t.effective) for t in self.topics.values() for p in t.hosted()]

    def _retention_tick(self) -> None:
        items = [(p, eff["retention.ms"], eff["retention.bytes"], eff["cleanup.policy"])
                 for p, eff in self._all_partitions()]

        def run() -> None:
            now = now_ms()
            for p, rms, rbytes, policy in items:
                if "delete" not in policy:
                    continue
                # compact,delete: a partition being compacted gets its retention next tick
                if not p.clean_lock.acquire(blocking=False):
                    continue
                try:
                    with p.lock:
                        if p.closed or p.offline:
                            continue
                        try:
                            n = p.log.retention(now, rms, rbytes, p.maintenance_bound)
                            if n:
                                p.log_start_moved()
                        except Exception as e:  # noqa: BLE001
                            if not p.log_dir.failed(f"deleting old segments of {p.name}", e):
                                log.error("retention on %s: %s", p.name, e)
                            continue
                finally:
                    p.clean_lock.release()
                if n:
                    log.info("retention deleted %d segment(s) of %s", n, p.name)
        self.worker.submit(run)

    def _checkpoint_tick(self) -> None:
        items = []
        for p, _ in self._all_partitions():
            if p.closed or p.offline:
                continue
            prod = None
            if p.producers.changes != p.snapshot_changes:
                prod = p.producers.to_json()
                p.snapshot_changes = p.producers.changes
            items.append((p, p.log.end_offset, prod, p.producers))
        hws = self._hw_snapshot()

        def run() -> None:
            self._write_hw_checkpoints(hws)
            for p, end, prod, state in items:
                with p.lock:
                    if p.closed or p.offline:
                        continue
                    try:
                        rp = p.log.recovery_point
                        if rp != p.checkpoint_rp:
                            p.log.checkpoint()
                            p.checkpoint_rp = rp
                        # not after a truncation replaced the state (the snapshot describes a tail now gone)
                        if prod is not None and p.producers is state:
                            self._write_producer_snapshot(p.path, end, prod)
                    except Exception as e:  # noqa: BLE001
                        if not p.log_dir.failed(f"checkpointing {p.name}", e):
                            log.warning("checkpoint of %s: %s", p.name, e)
        self.worker.submit(run)

    # -- helpers for handlers ------------------------------------------------

    def validate_new_configs(self, configs: Iterable[tuple[str, str | None]]) -> dict[str, str]:
        out: dict[str, str] = {}
        for k, v in configs:
            if k not in TOPIC_CONFIGS:
                raise ValueError(f"Unknown topic config name: {k}")
            if v is None:
                raise ValueError(f"Null value not supported for topic configs: {k}")
            out[k] = v
        validate_topic_configs(out)
        return out
