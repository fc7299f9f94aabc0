"""``kafka-core audit``: per-window counts produced, stored, mirrored and exported (kafka_tools.audit).

  kafka-core audit --bootstrap-server B --topic T [--window 1m] [--audit-topic kafka-core-audit]
                   [--target-bootstrap T2 [--target-topic NAME]] [--export-dir OUT] [--json]

Prints one row per time window with each stage's count and what falls short; exit status 1
when some window falls short (a loss), 0 when none does, 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from .errors import CliError
from .options import add_bootstrap

__all__ = ["register"]


def register(sub: Any) -> None:
    """Add ``audit`` to an argparse subparsers object."""
    p = sub.add_parser("audit", help="compare per-window record counts produced, stored, mirrored and exported")
    add_bootstrap(p)
    p.add_argument("--topic", required=True)
    p.add_argument("--window", default="1m", help="window length: 500ms, 30s, 1m, 1h, ... (default 1m)")
    p.add_argument("--audit-topic", default=None, help="where AuditingProducer counts go (default kafka-core-audit)")
    p.add_argument("--target-bootstrap", metavar="HOST:PORT", help="a mirror's target cluster: count its copy too")
    p.add_argument("--target-topic", help="the copy's name on the target (default: --topic)")
    p.add_argument("--export-dir", metavar="DIR", help="a kafka-core export's folder: count its files too")
    p.add_argument("--json", action="store_true", help="one JSON object of the rows on stdout")
    p.set_defaults(func=cmd_audit)


def cmd_audit(args: argparse.Namespace) -> int:
    from kafka_client import KafkaError
    from kafka_tools import audit

    try:
        window = audit.parse_window(args.window)
    except ValueError as exc:
        raise CliError(str(exc), 2) from exc
    try:
        produced = audit.produced_counts(args.bootstrap_server, args.topic, window,
                                         args.audit_topic or audit.AUDIT_TOPIC)
        stored = audit.stored_counts(args.bootstrap_server, args.topic, window)
        if stored is None:
            raise CliError(f"topic {args.topic!r} does not exist on {args.bootstrap_server}")
        mirrored = None
        if args.target_bootstrap:
            mirrored = audit.stored_counts(args.target_bootstrap, args.target_topic or args.topic, window) or {}
        exported = None
        if args.export_dir:
            exported = audit.exported_counts(args.export_dir, args.topic, window) or {}
    except (KafkaError, OSError, ValueError) as exc:
        raise CliError(str(exc)) from exc
    rows = audit.compare(window, produced, stored, mirrored, exported)
    short = [r for r in rows if r.shortfall]
    if args.json:
        print(json.dumps({"topic": args.topic, "window_ms": window, "windows": len(rows),
                          "short_windows": len(short), "missing": {
                              stage: sum(r.shortfall.get(stage, 0) for r in rows)
                              for stage in ("stored", "mirrored", "exported")},
                          "rows": [r.as_dict() for r in rows]}), flush=True)
    else:
        def n(v: int | None) -> str:
            return "-" if v is None else str(v)

        print(f"{'WINDOW':22} {'PRODUCED':>10} {'STORED':>10} {'MIRRORED':>10} {'EXPORTED':>10}  SHORTFALL")
        for r in rows:
            d = r.as_dict()
            gap = ", ".join(f"{k} -{v}" for k, v in r.shortfall.items())
            print(f"{d['window_start']:22} {n(r.produced):>10} {r.stored:>10} {n(r.mirrored):>10} "
                  f"{n(r.exported):>10}  {gap}")
        print(f"{len(short)} of {len(rows)} windows short" if short else f"no shortfall in {len(rows)} windows")
    return 1 if short else 0
