"""``kafka-core bench [ARGS]``: the system benchmark runner (kafka_bench.runner); its
arguments, ``--help`` included, are passed through."""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any) -> None:
    # No option prefix: every argument after `bench` is a positional, passed to kafka_bench's own parser.
    p = sub.add_parser("bench", help="benchmarks (kafka_bench; arguments are passed through)", add_help=False,
                       prefix_chars="\0")
    p.add_argument("bench_args", nargs="*")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from kafka_bench.runner import main

    return int(main(args.bench_args) or 0)
