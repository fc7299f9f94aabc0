"""``kafka-core broker [--config FILE] [--set KEY=VALUE ...]``: run a single-node broker
(kafka_broker.run)."""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser("broker", help="run a single-node broker")
    from kafka_broker.run import add_arguments

    add_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from kafka_broker.run import run_broker

    return run_broker(args)
