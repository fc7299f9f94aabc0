"""``kafka-core export``: topics into Parquet / JSON Lines files for the warehouse (issue 13).

  kafka-core export --bootstrap-server B (--topic T ... | --include REGEX) --group G --out DIR
                    [--format parquet|jsonl] [--value-format binary|string|json|avro-schemaless
                    [--value-schema FILE]] [--key-format binary|string]
                    [--until-caught-up] [--roll-seconds S] [--roll-records N] [--roll-bytes N] [--json]

The work is kafka_tools.export's; this module parses, maps SIGTERM/SIGINT to a clean stop (the
open buffers are written and committed), and prints the summary.  Exit status: 0 done, 1 when
the broker, a topic or a record fails, 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from pathlib import Path
from typing import Any

from .client import _check_reachable, _java_config, _props, _wrap
from .errors import CliError
from .options import add_bootstrap


def register(sub: Any) -> None:
    """Add ``export`` to the ``kafka-core`` parser."""
    from kafka_tools.export import FORMATS, KEY_FORMATS, VALUE_FORMATS

    p = sub.add_parser("export", help="write topics into Hive-style Parquet or JSON Lines files, exactly once",
                       description="Export topics as a consumer group into OUT/topic=T/date=D/hour=H/"
                                   "part-P-FIRST-LAST.parquet, committing offsets after the files are durable.")
    add_bootstrap(p)
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--topic", action="append", metavar="TOPIC", help="topic to export (repeatable)")
    which.add_argument("--include", metavar="REGEX", help="export every topic whose whole name matches REGEX "
                                                          "(internal topics excluded)")
    p.add_argument("--group", required=True, help="consumer group: exporters of one group share the partitions")
    p.add_argument("--out", required=True, metavar="DIR", help="output directory")
    p.add_argument("--format", choices=FORMATS, default="parquet")
    p.add_argument("--value-format", choices=VALUE_FORMATS, default="binary",
                   help="binary (default), string (UTF-8), json (validated; Parquet's JSON type), "
                        "avro-schemaless (Avro binary without header; needs --value-schema)")
    p.add_argument("--value-schema", metavar="FILE|JSON",
                   help="the Avro schema the values are written with: a file, or the schema's JSON itself")
    p.add_argument("--key-format", choices=KEY_FORMATS, default="binary")
    p.add_argument("--until-caught-up", action="store_true",
                   help="exit once the end offsets seen at start are exported (default: run until stopped)")
    p.add_argument("--roll-seconds", type=float, default=300.0, help="close a file after this long (default 300)")
    p.add_argument("--roll-records", type=int, default=1_000_000, help="close a file at this many records")
    p.add_argument("--roll-bytes", type=int, default=128 * 1024 * 1024,
                   help="close a file when its records take this many bytes in memory (default 128 MiB)")
    p.add_argument("--compression", default="snappy", help="Parquet codec: none, snappy, gzip, brotli, lz4, zstd")
    p.add_argument("--isolation-level", choices=["read_uncommitted", "read_committed"], default="read_uncommitted")
    p.add_argument("--consumer-property", action="append", default=[], metavar="KEY=VALUE",
                   help="consumer config, Java names")
    p.add_argument("--json", action="store_true", help="end with one JSON object (the summary) on stdout")
    p.set_defaults(func=_wrap(cmd_export))


def cmd_export(args: argparse.Namespace) -> int:
    from kafka_tools.export import ExportConfig, Exporter, ExportError

    schema = args.value_schema
    if schema is not None and not schema.lstrip().startswith(("{", "[", '"')):
        try:
            schema = Path(schema).read_text()
        except OSError as exc:
            raise CliError(f"cannot read --value-schema {args.value_schema!r}: {exc.strerror or exc}", 2) from exc
    consumer = _java_config(_props(args.consumer_property, "--consumer-property"))
    consumer["isolation_level"] = args.isolation_level
    cfg = ExportConfig(bootstrap_servers=args.bootstrap_server, out=Path(args.out), group=args.group,
                       topics=args.topic or [], include=args.include, format=args.format,
                       value_format=args.value_format, value_schema=schema, key_format=args.key_format,
                       until_caught_up=args.until_caught_up, roll_seconds=args.roll_seconds,
                       roll_records=args.roll_records, roll_bytes=args.roll_bytes, compression=args.compression,
                       consumer_config=consumer)
    try:
        exporter = Exporter(cfg)
    except ExportError as exc:
        raise CliError(str(exc), 2) from exc
    _check_reachable(args.bootstrap_server)

    def on_signal(_sig: int, _frame: Any) -> None:
        exporter.stop()

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        summary = exporter.run()
    except ExportError as exc:
        raise CliError(str(exc)) from exc
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    out = summary.as_dict()
    if args.json:
        print(json.dumps(out), flush=True)
    else:
        print(f"Exported {summary.records} records of {', '.join(summary.topics)} into {summary.files} files "
              f"({summary.ranges} ranges, {summary.bytes} bytes) in {summary.seconds:.1f} s.", file=sys.stdout)
    return 0
