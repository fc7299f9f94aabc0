"""Run the broker until SIGINT/SIGTERM: ``kafka-core broker`` (kafka_cli.broker) and
``python -m kafka_broker`` call ``run_broker`` with the arguments of ``add_arguments``.

SIGINT/SIGTERM stop the broker cleanly: listeners close, pending flushes
complete, producer state is snapshotted and every log is closed clean (so
the next start skips recovery).

``--json``: the log stays on stderr, and stdout carries one JSON object per line for a
supervisor or a script: ``{"event": "started", ...}`` once the broker listens (its id, the bound
and advertised listeners, data dirs, cluster id, pid), then ``{"event": "stopped", "status": 0}``,
or ``{"event": "failed", "status": 1, "error": ...}`` when it cannot start.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import logging
import os
import signal
import sys
from collections.abc import Callable

log = logging.getLogger("kafka_broker")


class JsonFormatter(logging.Formatter):
    """``log.format=json``: one JSON object per line (time in UTC, level, logger, message, and the
    traceback when there is one), for log shippers."""

    def format(self, record: logging.LogRecord) -> str:
        d = {"time": datetime.datetime.fromtimestamp(record.created, datetime.UTC).isoformat(timespec="milliseconds"),
             "level": record.levelname, "logger": record.name, "message": record.getMessage(),
             "thread": record.threadName}
        if record.exc_info:
            d["exception"] = self.formatException(record.exc_info)
        return json.dumps(d)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The broker's command line options (``--config``, ``--set``, ``--log-level``)."""
    parser.add_argument("--config", "-c", metavar="FILE", help="server.properties-style configuration file")
    parser.add_argument("--set", "-s", metavar="KEY=VALUE", action="append", default=[],
                        help="override one configuration key (repeatable)")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    parser.add_argument("--json", action="store_true",
                        help="one JSON line on stdout when the broker listens, and one when it stops")


def _event(args: argparse.Namespace, event: str, **fields: object) -> None:
    if getattr(args, "json", False):
        print(json.dumps({"event": event, **fields}), flush=True)


def run_broker(args: argparse.Namespace) -> int:
    logging.basicConfig(level=getattr(logging, args.log_level),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    from .config import ConfigError, load

    try:
        config = load(args.config, args.set)
    except ConfigError as e:
        log.error("configuration error: %s", e)
        print(f"kafka-core: configuration error: {e}", file=sys.stderr)
        _event(args, "failed", status=1, error=f"configuration error: {e}")
        return 1
    if config["log.format"] == "json":
        for h in logging.getLogger().handlers:
            h.setFormatter(JsonFormatter())
    config.log_unused()
    loop: asyncio.AbstractEventLoop
    try:
        import uvloop
    except ImportError:  # pragma: no cover - optional
        loop = asyncio.new_event_loop()
    else:
        loop = uvloop.new_event_loop()
    asyncio.set_event_loop(loop)
    failure: list[str] = []
    catch = _FailureLog(failure)

    def started(**fields: object) -> None:
        log.removeHandler(catch)     # listening: later errors are not a failure to start
        _event(args, "started", **fields)

    log.addHandler(catch)
    try:
        rc = loop.run_until_complete(_serve(config, loop, started))
    finally:
        log.removeHandler(catch)
        loop.close()
    if failure:
        _event(args, "failed", status=rc, error=failure[0])
    else:
        _event(args, "stopped", status=rc)
    return rc


def release_freed_memory() -> None:
    """Give the heap that start-up freed back to the OS (glibc's malloc_trim; elsewhere nothing).

    Importing kafka_protocol.messages compiles its 2.2 MB generated module when no .pyc can be
    written or read (PYTHONDONTWRITEBYTECODE, a read-only install): the compiler peaks near
    150 MiB and frees it, but glibc keeps the freed heap mapped, so an idle broker stayed at
    ~180 MiB RSS instead of ~50 (issue 16: the broker-fuzz "spike" and most of the RSS at 10,000
    partitions).  Opening thousands of logs frees its scratch the same way.  One call, once
    storage is open and before the broker listens; a few ms."""
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    try:
        trim = ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):    # not glibc (musl has no malloc_trim)
        trim = None
    if trim is not None:
        trim(0)


class _FailureLog(logging.Handler):
    """Keeps the first ERROR logged while the broker starts: the ``failed`` event's reason."""

    def __init__(self, into: list[str]) -> None:
        super().__init__(logging.ERROR)
        self.into = into

    def emit(self, record: logging.LogRecord) -> None:
        if not self.into:
            self.into.append(record.getMessage())


async def _serve(config: object, loop: asyncio.AbstractEventLoop, started: Callable[..., None]) -> int:
    from .broker import Broker

    broker = Broker(config, loop)  # type: ignore[arg-type]
    cluster_id = None
    if broker.cluster is not None:
        try:
            cluster_id = await broker.cluster.connect()
        except Exception as e:
            log.error("cannot join the cluster: %r", e)
            broker.cluster.close()
            return 1
    try:
        broker.open(cluster_id)   # before serving: recovery may take a while, nothing else to do meanwhile
    except OSError as e:
        # an unusable log.dirs (not a directory, not writable, a full disk): say which, no traceback
        log.error("cannot use log.dirs %s: %s", ",".join(broker.storage.dirs), e)
        print(f"kafka-core: cannot use log.dirs {','.join(broker.storage.dirs)}: {e}", file=sys.stderr)
        if broker.cluster is not None:
            broker.cluster.close()
        return 1
    except Exception as e:
        log.exception("cannot open storage: %s", e)
        if broker.cluster is not None:
            broker.cluster.close()
        return 1
    try:
        await broker.start_groups()
    except Exception as e:
        log.exception("cannot start the group coordinator: %s", e)
        broker.close()
        return 1
    release_freed_memory()       # start-up's scratch, before the first client sees the broker
    try:
        bound = broker.start_server()
    except OSError as e:
        log.error("cannot listen: %s", e)
        broker.close()
        return 1
    try:
        await broker.join_cluster(bound)
    except Exception as e:
        log.error("cannot register in ZooKeeper: %r", e)
        broker.close()
        return 1
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    import kafka_core

    try:
        info = kafka_core.check_build()
        from kafka_core import _transfer
        info["transfer"] = _transfer.mode_name(_transfer.auto_mode())
    except ImportError as e:
        log.warning("%s", e)
        info = {"crc32c": "?", "transfer": "copy (kafka_core._transfer missing)"}
    log.info("kafka-core broker %d listening on %s (advertised %s), data in %s, cluster id %s, "
             "crc32c=%s, transfer mode=%s, event loop %s",
             broker.node_id, ", ".join(f"{h}:{p}" for h, p in bound),
             ", ".join(f"{a.name}://{a.host}:{a.port}" for a in broker.config.advertised.values()),
             ", ".join(broker.storage.dirs), broker.storage.cluster_id, info["crc32c"], info["transfer"],
             type(loop).__module__)
    started(node_id=broker.node_id, listeners=[f"{h}:{p}" for h, p in bound],
            advertised=[f"{a.name}://{a.host}:{a.port}" for a in broker.config.advertised.values()],
            log_dirs=list(broker.storage.dirs), cluster_id=broker.storage.cluster_id, pid=os.getpid())
    await stop.wait()
    log.info("shutting down")
    await broker.shutdown()
    await asyncio.sleep(0)   # let cancelled request tasks finish
    return 0
