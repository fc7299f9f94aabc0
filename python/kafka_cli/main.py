"""``kafka-core``: one parser, one subcommand per module of this package.

Each module has ``register(subparsers)``, which adds its subcommand(s) and sets
``func(args) -> int`` with ``set_defaults``; ``main`` parses and calls it.  A
``CliError`` that reaches ``main`` is one line on stderr and its exit code.
"""

from __future__ import annotations

import argparse
import sys

from . import bench, broker, client, group
from .errors import CliError

SUBCOMMANDS = [broker, group, bench, client]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kafka-core", description="kafka-core: a Kafka-compatible commit log")
    sub = parser.add_subparsers(dest="command", required=True)
    for module in SUBCOMMANDS:
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(sys.argv[1:] if argv is None else list(argv))
    try:
        return int(args.func(args) or 0)
    except CliError as e:
        print(f"kafka-core {args.command}: error: {' '.join(str(e).split())}", file=sys.stderr, flush=True)
        return e.code
    except KeyboardInterrupt:
        return 130
