"""Kafka's LogDirFailureChannel: an I/O error in a log dir takes the whole dir offline.

Kafka does not retry a log operation that failed with an IOException (a full disk, a dead
device): the append, roll, index write, flush, checkpoint or read that saw it reports the dir to
the ``LogDirFailureChannel`` (``maybeAddOfflineLogDir``: logged once at ERROR, naming the dir and
the cause), and ``ReplicaManager.handleLogDirFailure`` stops serving every replica in it.  From
then on, until the broker restarts, its partitions answer KAFKA_STORAGE_ERROR to Produce, Fetch
and ListOffsets, Metadata lists this broker among their offline replicas, DescribeLogDirs reports
the dir with KAFKA_STORAGE_ERROR, no new partition is placed there, and the other dirs of
``log.dirs`` go on untouched.  Nothing is written to an offline dir again: its logs are closed
uncleanly at shutdown, so the next start recovers them from what is on disk (everything
acknowledged was written before the failure; a failed append truncates its own partial write).

``LogManager.handleLogDirFailure`` halts the broker (``Exit.halt(1)``) once no dir is left
("Shutdown broker because all log dirs in ... have failed"), and KIP-858 does the same when the
dir holding the cluster metadata fails: here that is the first of ``log.dirs``, which holds
``kc-metadata.json`` (Kafka's ``metadata.log.dir`` defaults to it too).

Offline is one attribute of a ``LogDir`` that every partition in it shares, so taking a dir
offline is one store, visible at once to every thread (the loop's request handlers, the flush
thread, the storage worker, the cleaner), and checking it costs a request one attribute read per
partition.  ``LogDirFailureChannel.failed`` may be called from any thread; the follow-up
(``on_offline``: wake parked fetches, halt when nothing is left) runs on the loop.

In a cluster the broker also stops leading and following the dir's replicas and tells the
controller (``/log_dir_event_notification``, ``cluster/node.py``), which moves their leadership
to other in-sync replicas (``cluster/controller.py``).  A dir that fails while the logs are loaded
at start-up goes offline the same way and the broker starts with the others (``storage.py``).

One difference from Kafka, on purpose: running out of file descriptors (EMFILE, ENFILE) or memory
is the process's problem, not the disk's, so it answers KAFKA_STORAGE_ERROR for the operation
without taking a dir offline (Kafka would take the dir offline, and a broker that hit its fd limit
on one create lost every dir in turn).
"""

from __future__ import annotations

import asyncio
import errno
import logging
import threading
from collections.abc import Callable

from kafka_core._errors import ClosedError

log = logging.getLogger("kafka_broker.log")

# errno values that say nothing about the disk (see the module docstring)
_NOT_THE_DISK = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOMEM})


def is_dir_failure(e: BaseException) -> bool:
    """Whether ``e`` from a log operation is the disk's failure (Kafka's IOException): an OSError
    from the OS or the C core (``LogIOError``), not a log closed under the reader (``ClosedError``,
    a deletion racing the request) nor a process resource limit."""
    return isinstance(e, OSError) and not isinstance(e, ClosedError) and e.errno not in _NOT_THE_DISK


class LogDir:
    """One entry of ``log.dirs``; ``offline`` is None while it is served, else the cause."""

    __slots__ = ("path", "offline", "channel")

    def __init__(self, path: str, channel: LogDirFailureChannel | None = None) -> None:
        self.path = path
        self.offline: str | None = None
        self.channel = channel

    def failed(self, what: str, e: BaseException) -> bool:
        """``what`` (e.g. "appending to t-0") failed with ``e``: take this dir offline if ``e`` is
        a disk failure.  True when the dir is offline (now or already)."""
        if not is_dir_failure(e):
            return self.offline is not None
        if self.channel is not None:
            self.channel.add_offline(self, what, e)
        elif self.offline is None:
            self.offline = f"{what}: {e}"
        return True

    def __repr__(self) -> str:
        return f"<LogDir {self.path}{' offline' if self.offline else ''}>"


class LogDirFailureChannel:
    """The log dirs of one broker and which of them are offline (Kafka's LogDirFailureChannel)."""

    def __init__(self, paths: list[str], loop: asyncio.AbstractEventLoop | None = None,
                 on_offline: Callable[[LogDir], None] | None = None) -> None:
        self.dirs = [LogDir(p, self) for p in paths]
        self.by_path = {d.path: d for d in self.dirs}
        self.loop = loop
        self.on_offline = on_offline
        # more loop-thread callbacks, after ``on_offline`` (a cluster member tells the controller)
        self.listeners: list[Callable[[LogDir], None]] = []
        self._lock = threading.Lock()

    def get(self, path: str) -> LogDir:
        """The log dir at ``path`` (one of ``log.dirs``, absolute)."""
        return self.by_path[path]

    def online(self) -> list[LogDir]:
        return [d for d in self.dirs if d.offline is None]

    def add_offline(self, d: LogDir, what: str, e: BaseException) -> None:
        """Any thread: ``d`` goes offline (once; later failures in it are not logged again)."""
        with self._lock:
            if d.offline is not None:
                return
            d.offline = f"{what}: {e}"
        log.error("Error while %s in dir %s: %s; the log dir is offline until the broker restarts "
                  "(its partitions answer KAFKA_STORAGE_ERROR)", what, d.path, e)
        if self.loop is None:
            return
        try:
            self.loop.call_soon_threadsafe(self._offline, d)
        except RuntimeError:    # the loop is closed: the broker is stopping anyway
            pass

    def _offline(self, d: LogDir) -> None:
        if self.on_offline is not None:
            self.on_offline(d)
        for fn in list(self.listeners):
            fn(d)
