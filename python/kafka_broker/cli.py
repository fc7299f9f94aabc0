"""Command line: ``kafka-core broker [--config FILE] [--set KEY=VALUE ...]``.

Subcommands live under one parser so client tools can join later.
SIGINT/SIGTERM stop the broker cleanly: listeners close, pending flushes
complete, producer state is snapshotted and every log is closed clean (so
the next start skips recovery).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from typing import Any

log = logging.getLogger("kafka_broker")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kafka-core", description="kafka-core: a Kafka-compatible commit log")
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("broker", help="run a single-node broker")
    b.add_argument("--config", "-c", metavar="FILE", help="server.properties-style configuration file")
    b.add_argument("--set", "-s", metavar="KEY=VALUE", action="append", default=[],
                   help="override one configuration key (repeatable)")
    b.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    from . import group_cli
    group_cli.register(sub)
    if _bench_main() is not None:
        sub.add_parser("bench", help="benchmarks (kafka_bench; arguments are passed through)", add_help=False)
    try:
        from kafka_client import cli as client_cli
    except ImportError:
        client_cli = None
    register = getattr(client_cli, "register", None)
    if register is not None:
        register(sub)   # produce, consume, topic ... (kafka_client.cli)
    return parser


def _bench_main() -> Any:
    try:
        from kafka_bench import runner
    except ImportError:
        return None
    return getattr(runner, "main", None)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] == "bench":
        bench = _bench_main()
        if bench is None:
            print("kafka-core bench: kafka_bench is not installed", file=sys.stderr)
            return 2
        return int(bench(argv[1:]) or 0)
    args = build_parser().parse_args(argv)
    if args.command == "broker":
        return run_broker(args)
    if args.command == "group":
        from . import group_cli
        return group_cli.run(args)
    func = getattr(args, "func", None)
    if func is not None:   # subcommands registered by kafka_client.cli
        return int(func(args) or 0)
    return 2  # pragma: no cover - argparse rejects unknown commands


def run_broker(args: argparse.Namespace) -> int:
    logging.basicConfig(level=getattr(logging, args.log_level),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    from .config import ConfigError, load

    try:
        config = load(args.config, args.set)
    except ConfigError as e:
        log.error("configuration error: %s", e)
        print(f"kafka-core: configuration error: {e}", file=sys.stderr)
        return 1
    config.log_unused()
    try:
        import uvloop
    except ImportError:  # pragma: no cover - optional
        uvloop = None
    if uvloop is not None:
        loop = uvloop.new_event_loop()
    else:  # pragma: no cover
        loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        return loop.run_until_complete(_serve(config, loop))
    finally:
        loop.close()


async def _serve(config: object, loop: asyncio.AbstractEventLoop) -> int:
    from .broker import Broker

    broker = Broker(config, loop)  # type: ignore[arg-type]
    try:
        broker.open()   # before serving: recovery may take a while, nothing else to do meanwhile
    except Exception as e:
        log.exception("cannot open storage: %s", e)
        return 1
    try:
        await broker.start_groups()
    except Exception as e:
        log.exception("cannot start the group coordinator: %s", e)
        broker.close()
        return 1
    try:
        bound = broker.start_server()
    except OSError as e:
        log.error("cannot listen: %s", e)
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
    await stop.wait()
    log.info("shutting down")
    broker.close()
    await asyncio.sleep(0)   # let cancelled request tasks finish
    return 0
