"""The fsync thread: group commit for appends that wait on durability, and ``flush.ms``."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import TYPE_CHECKING, Protocol

from .clock import now_ms
from .stats import Histogram

if TYPE_CHECKING:
    from .partition import Partition

log = logging.getLogger("kafka_broker.log")


class FlushSchedule(Protocol):
    """What the flush thread asks of the partition registry (``Storage``)."""

    def flush_poll_s(self) -> float | None: ...

    def partitions_due_for_time_flush(self) -> list[Partition]: ...


class Flusher(threading.Thread):
    """fsync thread with group commit.

    Appends that need durability register (partition, future) pairs; each
    round takes everything registered so far, fsyncs each dirty log once,
    and completes the round's futures on the loop.  It also flushes logs
    whose oldest unflushed data is older than their ``flush.ms``.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, storage: FlushSchedule) -> None:
        super().__init__(name="kc-flush", daemon=True)
        self.loop = loop
        self.storage = storage
        self.cond = threading.Condition()
        self.pending: dict[Partition, list[asyncio.Future[None]]] = {}
        self.stopping = False
        self.flush_times = Histogram()    # seconds per log fsync (the metrics endpoint's)

    def request(self, p: Partition, fut: asyncio.Future[None] | None) -> None:
        with self.cond:
            lst = self.pending.get(p)
            if lst is None:
                lst = self.pending[p] = []
                self.cond.notify()
            if fut is not None:
                lst.append(fut)

    def stop(self) -> None:
        with self.cond:
            self.stopping = True
            self.cond.notify()
        self.join()

    def run(self) -> None:
        while True:
            with self.cond:
                if not self.pending and not self.stopping:
                    self.cond.wait(self.storage.flush_poll_s())
                batch, self.pending = self.pending, {}
                stopping = self.stopping
            if not batch:
                if stopping:
                    return
                batch = {p: [] for p in self.storage.partitions_due_for_time_flush()}
            done: list[tuple[list[asyncio.Future[None]], BaseException | None]] = []
            for p, futs in batch.items():
                err: BaseException | None = None
                with p.lock:
                    if p.closed:
                        err = None if not futs else OSError("partition deleted")
                    elif p.log_dir.offline is not None:
                        # nothing is written to an offline dir again (dir_failure.py): the appends
                        # waiting here are not acknowledged
                        err = OSError(f"log dir {p.log_dir.path} is offline")
                    else:
                        try:
                            t0 = time.perf_counter()
                            p.log.flush()
                            self.flush_times.observe(time.perf_counter() - t0)
                            p.last_flush_ms = now_ms()
                        except Exception as e:  # noqa: BLE001 - reported to the waiting requests
                            if not p.log_dir.failed(f"flushing {p.name}", e):
                                log.error("flush of %s failed: %s", p.name, e)
                            err = e
                if futs:
                    done.append((futs, err))
            if done:
                try:
                    self.loop.call_soon_threadsafe(_complete_futures, done)
                except RuntimeError:  # loop closed during shutdown
                    return


def _complete_futures(done: list[tuple[list[asyncio.Future[None]], BaseException | None]]) -> None:
    for futs, err in done:
        for f in futs:
            if not f.done():
                if err is None:
                    f.set_result(None)
                else:
                    f.set_exception(err)


