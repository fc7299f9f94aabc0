"""The log cleaner: compaction of ``cleanup.policy=compact`` (and ``compact,delete``) topics.

One background thread (``log.cleaner.threads``; more are accepted, one
runs) repeatedly picks the dirtiest compacted partition whose dirty ratio
(``Log.dirty_ratio``: dirty bytes past the cleaner checkpoint over all
cleanable bytes, ignoring segments younger than ``min.compaction.lag.ms``)
exceeds its ``min.cleanable.dirty.ratio``, and runs one ``Log.compact``
pass on it with the GIL released.  The pass is bounded by
``log.cleaner.dedupe.buffer.size`` (the key map; a larger dirty section is
cleaned over several passes) and never touches the active segment, so the
event loop keeps appending and reading meanwhile.  With nothing to clean it
sleeps ``log.cleaner.backoff.ms``.  Retention of ``compact,delete`` topics
is the storage's ordinary retention tick.

Transactions (Kafka's LogCleaner with CleanedTransactionMetadata): the pass
gets the partition's aborted transactions (its ``.txnindex`` entries) and
drops their records; a COMMIT/ABORT marker stays while records of its
transaction remain, then gets a delete horizon (now + ``delete.retention.ms``)
and goes in a pass after it; the cleaned segments' ``.txnindex`` files keep
the entries whose markers stay, and the partition's in-memory index is
reloaded from them after the pass (csrc/kc_compact_txn.h).  Nothing at or
past the first unstable offset is cleaned (``Partition.maintenance_bound``).

``Partition.clean_lock`` is held for a pass; close, delete, retention and
DeleteRecords take it too (the core refuses to close a log mid-pass).
A pass that fails with a disk error takes its log dir offline, and no
partition of an offline dir is cleaned again (Kafka's
``LogCleanerManager.handleLogDirFailure``).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from .log import Partition, now_ms
from .storage import Storage

log = logging.getLogger("kafka_broker.cleaner")


class LogCleaner(threading.Thread):
    def __init__(self, storage: Storage, config: Any) -> None:
        super().__init__(name="kc-cleaner", daemon=True)
        self.storage = storage
        self.backoff_s = config["log.cleaner.backoff.ms"] / 1000
        self.max_map_bytes = int(config["log.cleaner.dedupe.buffer.size"])
        if config["log.cleaner.threads"] > 1:
            log.info("log.cleaner.threads=%d: one cleaner thread runs", config["log.cleaner.threads"])
        self.cond = threading.Condition()
        self.stopping = False
        self.passes = 0
        # partition -> end offset at a pass that made no progress: skipped until new data arrives
        self._stuck: dict[Partition, int] = {}

    def wake(self) -> None:
        with self.cond:
            self.cond.notify()

    def stop(self) -> None:
        with self.cond:
            self.stopping = True
            self.cond.notify()
        if self.is_alive():
            self.join()

    def run(self) -> None:
        while True:
            with self.cond:
                if self.stopping:
                    return
            try:
                cleaned = self.clean_one()
            except Exception:  # noqa: BLE001 - a bad log must not stop the cleaner for the others
                log.exception("log cleaner pass failed")
                cleaned = False
            if not cleaned:
                with self.cond:
                    if self.stopping:
                        return
                    self.cond.wait(self.backoff_s)

    def candidates(self, now: int) -> list[tuple[float, Partition, dict[str, Any]]]:
        """Compacted partitions above their min.cleanable.dirty.ratio, dirtiest first."""
        out = []
        for topic in list(self.storage.topics.values()):
            eff = topic.effective
            if "compact" not in eff["cleanup.policy"]:
                continue
            for p in list(topic.hosted()):
                if p.closed or p.offline:
                    continue
                stuck = self._stuck.get(p)
                if stuck is not None:
                    if stuck == p.log.end_offset:
                        continue
                    del self._stuck[p]
                with p.clean_lock:
                    if p.closed:
                        continue
                    ratio = p.log.dirty_ratio(now, eff["min.compaction.lag.ms"], p.maintenance_bound)
                if ratio > eff["min.cleanable.dirty.ratio"]:
                    out.append((ratio, p, eff))
        out.sort(key=lambda x: -x[0])
        return out

    def clean_one(self) -> bool:
        """One pass on the dirtiest partition; False when nothing needed cleaning."""
        now = now_ms()
        cands = self.candidates(now)
        if not cands:
            return False
        ratio, p, eff = cands[0]
        with p.clean_lock:
            if p.closed or self.stopping:
                return False
            t0 = time.monotonic()
            before = p.log.cleaner_checkpoint
            try:
                stats = p.log.compact(now, delete_retention_ms=eff["delete.retention.ms"],
                                      min_compaction_lag_ms=eff["min.compaction.lag.ms"],
                                      max_map_bytes=self.max_map_bytes, max_offset=p.maintenance_bound,
                                      aborted=p.aborted.entries)
            except OSError as e:      # a disk failure takes the dir offline (log/dir_failure.py)
                if p.log_dir.failed(f"cleaning {p.name}", e):
                    return True
                raise
            if stats["segments_before"]:
                # the pass rewrote the .txnindex of every group it swapped in
                p.aborted.reload(p.log.start_offset)
            after = p.log.cleaner_checkpoint
            end = p.log.end_offset
        self.passes += 1
        if after <= before:
            self._stuck[p] = end
        log.info("cleaned %s (dirty ratio %.2f) in %.3fs: %d -> %d bytes, %d of %d records removed "
                 "(%d tombstones, %d markers), checkpoint %d -> %d", p.name, ratio, time.monotonic() - t0,
                 stats["bytes_before"], stats["bytes_after"], stats["records_removed"], stats["records_read"],
                 stats["tombstones_removed"], stats["markers_removed"], before, after)
        return True
