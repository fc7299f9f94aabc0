"""Options several subcommands share, defined once."""

from __future__ import annotations

import argparse
import os

BOOTSTRAP_ENV = "KAFKA_BOOTSTRAP_SERVERS"
DEFAULT_BOOTSTRAP = "localhost:9092"


def add_bootstrap(p: argparse.ArgumentParser) -> None:
    """``--bootstrap-server``: the flag, else $KAFKA_BOOTSTRAP_SERVERS, else localhost:9092 (where
    ``./dev broker`` listens)."""
    p.add_argument("--bootstrap-server", "-b", metavar="HOST:PORT",
                   default=os.environ.get(BOOTSTRAP_ENV) or DEFAULT_BOOTSTRAP,
                   help=f"broker(s) to connect to, comma separated (default: ${BOOTSTRAP_ENV}, "
                        f"else {DEFAULT_BOOTSTRAP})")
