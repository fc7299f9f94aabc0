"""``kafka-core mirror``: MirrorMaker-style mirroring between clusters (kafka_tools.mirror).

  kafka-core mirror --source-bootstrap S --target-bootstrap T [--include REGEX] [--group G]
                    [--source-alias A] [--rename '{source}.{topic}'] [--until-caught-up] [--exactly-once] [--json]
  kafka-core mirror translate-offsets --source-bootstrap S --target-bootstrap T --group APP_GROUP
                    [--source-alias A] [--execute] [--json]

The mirror runs until SIGTERM/SIGINT (then it lets what is in flight land and commits it), or with
``--until-caught-up`` until everything up to the source end offsets seen at start is in the target
and committed.  ``--json`` prints one summary object on stdout at the end; the log goes to stderr.
``translate-offsets`` prints the target offsets where an application's consumer group resumes
after moving from the source to the target, and with ``--execute`` commits them on the target.
Exit status: 0 on success, 1 when a cluster or the mirror fails, 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
from typing import Any

from .client import _props as _kv
from .errors import CliError

__all__ = ["register"]


def _clusters(p: argparse.ArgumentParser) -> None:
    # Not ``required``: argparse would then demand them of ``mirror`` when they follow
    # ``translate-offsets``; _need() checks them instead.
    p.add_argument("--source-bootstrap", metavar="HOST:PORT", help="the cluster to mirror from (required)")
    p.add_argument("--target-bootstrap", metavar="HOST:PORT", help="the cluster to mirror to (required)")
    p.add_argument("--source-alias", default="source",
                   help="name of the source cluster: {source} in --rename and in the offset-sync topic "
                        "kc-mirror-offset-syncs.<alias>.internal (default: source)")
    p.add_argument("--json", action="store_true", help="one JSON object of the outcome on stdout")


def register(sub: Any) -> None:
    """Add ``mirror`` (and ``mirror translate-offsets``) to an argparse subparsers object."""
    from kafka_tools.mirror import DEFAULT_EXCLUDE

    p = sub.add_parser("mirror", help="mirror topics from a source cluster to a target cluster (at least once)")
    msub = p.add_subparsers(dest="mirror_command", required=False)
    _clusters(p)
    p.add_argument("--include", default=".*", metavar="REGEX", help="source topics to mirror (full match; default all)")
    p.add_argument("--exclude", default=DEFAULT_EXCLUDE, metavar="REGEX",
                   help=f"source topics never mirrored (default {DEFAULT_EXCLUDE!r})")
    p.add_argument("--group", default="kafka-core-mirror",
                   help="the mirror's consumer group on the source: processes in one group share the partitions")
    p.add_argument("--rename", default="{topic}", metavar="FORMAT",
                   help="target topic name, e.g. '{source}.{topic}' (default: the source's name)")
    p.add_argument("--until-caught-up", action="store_true",
                   help="stop once everything up to the source end offsets seen at start is mirrored and committed")
    p.add_argument("--exactly-once", action="store_true",
                   help="one process copies every partition in transactions on the target, its progress kept "
                        "there: read_committed readers of the target see each record once, across crashes")
    p.add_argument("--sync-interval-ms", type=int, default=1000,
                   help="how often source offsets are committed and offset syncs written (default 1000)")
    p.add_argument("--isolation-level", choices=["read_committed", "read_uncommitted"], default="read_committed",
                   help="read_committed (default): aborted transactions are not mirrored")
    p.add_argument("--producer-property", action="append", default=[], metavar="KEY=VALUE",
                   help="target producer setting (kafka_client names, e.g. linger_ms=10)")
    p.add_argument("--consumer-property", action="append", default=[], metavar="KEY=VALUE",
                   help="source consumer setting (kafka_client names, e.g. max_poll_records=1000)")
    p.set_defaults(func=cmd_mirror)

    t = msub.add_parser("translate-offsets",
                        help="a consumer group's committed source offsets translated to the target")
    _clusters(t)
    t.add_argument("--group", required=True, help="the application's consumer group to move")
    t.add_argument("--execute", action="store_true",
                   help="commit the translated offsets for the group on the target (it must have no members there)")
    t.set_defaults(func=cmd_translate)


def _need(args: argparse.Namespace) -> None:
    for name in ("source_bootstrap", "target_bootstrap"):
        if not getattr(args, name):
            raise CliError(f"--{name.replace('_', '-')} is required", 2)


def _props(items: list[str], what: str) -> dict[str, Any]:
    """``KEY=VALUE`` settings for kafka_client (dots as underscores; integers and booleans typed)."""
    out: dict[str, Any] = {}
    for k, v in _kv(items, f"--{what}-property").items():
        out[k.replace(".", "_")] = int(v) if v.lstrip("-").isdigit() else (v == "true" if v in ("true", "false") else v)
    return out


def _logging() -> None:
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("kafka_client").setLevel(logging.WARNING)


def cmd_mirror(args: argparse.Namespace) -> int:
    from kafka_client import KafkaError
    from kafka_tools.mirror import Mirror, MirrorConfig, MirrorError

    _need(args)
    _logging()
    cfg = MirrorConfig(args.source_bootstrap, args.target_bootstrap, include=args.include, exclude=args.exclude,
                       group=args.group, source_alias=args.source_alias, rename=args.rename,
                       until_caught_up=args.until_caught_up, sync_interval_s=args.sync_interval_ms / 1000,
                       isolation_level=args.isolation_level, exactly_once=args.exactly_once,
                       producer=_props(args.producer_property, "producer"),
                       consumer=_props(args.consumer_property, "consumer"))
    try:
        mirror = Mirror(cfg)
    except MirrorError as exc:
        raise CliError(str(exc), 2) from exc

    async def go() -> Any:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, mirror.stop)
        return await mirror.run()

    try:
        stats = asyncio.run(go())
    except (MirrorError, KafkaError) as exc:
        raise CliError(str(exc)) from exc
    summary = stats.as_dict()
    if args.json:
        print(json.dumps(summary), flush=True)
    else:
        print(f"mirrored {summary['records']} records in {summary['seconds']} s "
              f"({summary['records_per_s']} records/s), {summary['rewinds']} rewinds, "
              f"{summary['retries']} retries" + (", caught up" if summary["caught_up"] else ""), flush=True)
    return 0


def cmd_translate(args: argparse.Namespace) -> int:
    from kafka_client import KafkaError
    from kafka_tools.mirror import MirrorError, translate_offsets

    _need(args)
    try:
        rows = asyncio.run(translate_offsets(args.source_bootstrap, args.target_bootstrap, args.group,
                                             source_alias=args.source_alias, execute=args.execute))
    except (MirrorError, KafkaError) as exc:
        raise CliError(str(exc)) from exc
    if args.json:
        print(json.dumps({"group": args.group, "executed": bool(args.execute),
                          "offsets": [r.as_dict() for r in rows]}), flush=True)
        return 0
    print(f"{'TOPIC':30} {'PARTITION':>9} {'SOURCE-OFFSET':>13} {'TARGET-TOPIC':30} {'TARGET-OFFSET':>13} EXACT")
    for r in rows:
        print(f"{r.topic:30} {r.partition:>9} {r.source_offset:>13} {r.target_topic:30} {r.target_offset:>13} "
              f"{'yes' if r.exact else 'no'}")
    if args.execute:
        print(f"committed {len(rows)} offsets for group {args.group!r} on the target")
    return 0
