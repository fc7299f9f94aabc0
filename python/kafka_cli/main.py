"""``kafka-core``: one parser, one subcommand per module of this package.

Each module has ``register(subparsers)``, which adds its subcommand(s) and sets
``func(args) -> int`` with ``set_defaults``; ``main`` parses and calls it.  A
``CliError`` that reaches ``main`` is one line on stderr and its exit code.
"""

from __future__ import annotations

import argparse
import os
import sys
from importlib import metadata

from . import audit, bench, broker, client, cluster, export, group, mirror
from .errors import CliError

SUBCOMMANDS = [broker, cluster, group, bench, client, export, mirror, audit]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kafka-core", description="kafka-core: a Kafka-compatible commit log")
    parser.add_argument("--version", action="version", version=f"kafka-core {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)
    for module in SUBCOMMANDS:
        module.register(sub)
    return parser


def _version() -> str:
    try:
        return metadata.version("kafka-core")
    except metadata.PackageNotFoundError:   # run from a checkout that was never installed
        return "(not installed)"


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(sys.argv[1:] if argv is None else list(argv))
    try:
        rc = int(args.func(args) or 0)
        sys.stdout.flush()
        return rc
    except BrokenPipeError:
        # The reader of our output went away (`| head`): stop quietly, with the exit status of a
        # tool ended by SIGPIPE; stdout goes to /dev/null so the interpreter's exit flush is silent.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except CliError as e:
        print(f"kafka-core {args.command}: error: {' '.join(str(e).split())}", file=sys.stderr, flush=True)
        return e.code
    except KeyboardInterrupt:
        return 130
