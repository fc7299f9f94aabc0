"""``kafka-core audit``: per-window counts produced, stored, mirrored and exported (kafka_tools.audit).

  kafka-core audit --bootstrap-server B --topic T [--window 1m] [--audit-topic kafka-core-audit]
                   [--target-bootstrap T2 [--target-topic NAME]] [--export-dir OUT]
                   [--since TIME] [--until TIME] [--json]

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
    p.add_argument("--since", metavar="TIME",
                   help="only windows from this time on: an ISO date-time (UTC unless it says), epoch "
                        "milliseconds, or a duration ago (2h); windows gone by retention are left out this way")
    p.add_argument("--until", metavar="TIME",
                   help="only windows that end by this time (same forms; e.g. 10m to give the mirror and "
                        "the export 10 minutes to catch up)")
    p.add_argument("--json", action="store_true", help="one JSON object of the rows on stdout")
    p.set_defaults(func=cmd_audit)


def _time(text: str | None, flag: str) -> int | None:
    """An ISO date-time, epoch milliseconds or a duration before now, in epoch milliseconds."""
    import time

    from kafka_tools.audit import parse_window

    from .group import parse_datetime

    if text is None:
        return None
    t = text.strip()
    if t.isdigit() and len(t) > 9:
        return int(t)
    try:
        return int(time.time() * 1000) - parse_window(t)
    except ValueError:
        pass
    try:
        return parse_datetime(t)
    except CliError:
        raise CliError(f"cannot parse {flag} {text!r}: an ISO date-time, epoch ms or a duration (2h)", 2) from None


def cmd_audit(args: argparse.Namespace) -> int:
    from kafka_client import KafkaError
    from kafka_tools import audit

    try:
        window = audit.parse_window(args.window)
    except ValueError as exc:
        raise CliError(str(exc), 2) from exc
    since, until = _time(args.since, "--since"), _time(args.until, "--until")
    try:
        produced = audit.produced_counts(args.bootstrap_server, args.topic, window,
                                         args.audit_topic or audit.AUDIT_TOPIC)
        stored = audit.stored_counts(args.bootstrap_server, args.topic, window, since)
        if stored is None:
            raise CliError(f"topic {args.topic!r} does not exist on {args.bootstrap_server}")
        mirrored = None
        if args.target_bootstrap:
            mirrored = audit.stored_counts(args.target_bootstrap, args.target_topic or args.topic, window, since) or {}
        exported = None
        if args.export_dir:
            exported = audit.exported_counts(args.export_dir, args.topic, window) or {}
    except (KafkaError, OSError, ValueError) as exc:
        raise CliError(str(exc)) from exc
    rows = audit.compare(window, produced, stored, mirrored, exported, since_ms=since, until_ms=until)
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
