"""kafka-core bench: the system benchmark runner.

    kafka-core bench [--quick] [--systems kafka-core,apache-kafka,rabbitmq,activemq] [--out DIR]
    kafka-core bench --cluster [--quick] [--systems kafka-core,apache-kafka] [--out DIR]
    python -m kafka_bench ...        (the same)

Installs what is missing (Debian packages for RabbitMQ/ActiveMQ, Maven jars
for Apache Kafka and the Java peer clients, the kc_loadgen binary), starts
each system in turn on loopback, runs the experiments against it, stops it,
and writes report.md, results.json and PNG plots into DIR (default
benches/results/<date>/ in a checkout, ./bench-results/<date>/ otherwise).
Everything the runner started is stopped on every exit path (errors, SIGINT,
SIGTERM).  Exits non-zero with a clear message when a system cannot start or
an experiment fails.

--cluster runs the cluster benchmarks instead (kafka_bench.cluster_bench): on one
ZooKeeper, 3 kafka-core brokers, then 3 Apache Kafka 3.9.1 brokers in ZooKeeper mode:
produce throughput at RF=1/acks=1, RF=3/acks=1, RF=3/acks=all, and the failover time
after SIGKILL of a partition leader (default folder <date>-cluster[-quick]/).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as dt
import json
import os
import platform
import signal
import sys
import time
import traceback
from collections.abc import Iterator
from pathlib import Path

from . import procs
from .cluster_bench import CLUSTER_SYSTEMS
from .experiments import FULL, QUICK, Runner
from .paths import RESULTS
from .systems import ALL, StartError, make

_signalled: list[int] = []


def _interrupt(signum: int, frame: object) -> None:
    """First signal: unwind (every finally stops what it started).  Second: stop now."""
    _signalled.append(signum)
    if len(_signalled) > 1:
        procs.stop_all()
        os._exit(130)
    raise KeyboardInterrupt(f"signal {signum}")


@contextlib.contextmanager
def _stopping_all() -> Iterator[None]:
    """Signals unwind the run (``_interrupt``); whatever way it ends, everything started is stopped
    and the old handlers come back."""
    _signalled.clear()
    old = {s: signal.signal(s, _interrupt) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        procs.stop_all()
        for s, h in old.items():
            signal.signal(s, h)


def _interrupted() -> int:
    print("kafka-core bench: interrupted, stopping everything", file=sys.stderr)
    procs.stop_all()
    return 130


def machine() -> dict:
    cpu = ""
    try:
        for ln in Path("/proc/cpuinfo").read_text().splitlines():
            if ln.startswith("model name"):
                cpu = ln.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {"cpus": os.cpu_count(), "cpu_model": cpu, "memory_gib": round(mem, 1), "kernel": platform.release(),
            "python": platform.python_version(), "host": platform.node()}


def parse(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="kafka-core bench", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small sizes (< 5 min for all four systems)")
    ap.add_argument("--systems", help="comma-separated, from: " + ",".join(ALL) + " (default: all; with "
                                          "--cluster: kafka-core,apache-kafka, the only two)")
    ap.add_argument("--cluster", action="store_true",
                    help="3-broker cluster benchmarks on ZooKeeper (kafka-core vs Apache Kafka 3.9.1)")
    ap.add_argument("--failover-rounds", type=int, metavar="N",
                    help="with --cluster: failover rounds per system (default 3, 1 with --quick)")
    ap.add_argument("--out", help="output folder (default benches/results/<date>/ in a checkout, else "
                                      "./bench-results/<date>/; <date>-quick/ with --quick)")
    ap.add_argument("--no-profile", action="store_true", help="do not py-spy the kafka-core broker")
    ap.add_argument("--no-plots", action="store_true", help="skip the PNG plots (no matplotlib needed)")
    ap.add_argument("--json", action="store_true",
                    help="the progress lines to stderr, and the results (as results.json) alone on stdout")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    choices = CLUSTER_SYSTEMS if args.cluster else ALL
    names = [s.strip() for s in (args.systems or ",".join(choices)).split(",") if s.strip()]
    bad = [n for n in names if n not in choices]
    if bad or not names:
        print(f"kafka-core bench: unknown system(s) {bad}; choose from {','.join(choices)}", file=sys.stderr)
        return 2
    # A quick run gets its own folder so that it never overwrites the day's full run.
    default = dt.date.today().isoformat() + ("-cluster" if args.cluster else "") + ("-quick" if args.quick else "")
    out = Path(args.out or RESULTS / default)
    out.mkdir(parents=True, exist_ok=True)
    if args.cluster:
        return _cluster_main(args, argv, names, out)
    scale = QUICK if args.quick else FULL
    t_start = time.monotonic()

    def log(msg: str) -> None:
        print(f"[{time.monotonic() - t_start:6.1f}s] {msg}", flush=True, file=sys.stderr if args.json else sys.stdout)

    results: dict = {"date": dt.datetime.now().isoformat(timespec="seconds"), "quick": args.quick,
                     "command": "kafka-core bench " + " ".join(argv if argv is not None else sys.argv[1:]),
                     "machine": machine(), "scale": {k: v for k, v in vars(scale).items() if k != "extra"},
                     "systems": {}, "errors": {}}
    rc = 0
    with _stopping_all():
        try:
            for name in names:
                system = make(name)
                log(f"== {name}: starting")
                entry: dict = {"client": system.client}
                results["systems"][name] = entry
                try:
                    t0 = time.monotonic()
                    system.start()
                    entry["start_seconds"] = round(time.monotonic() - t0, 1)
                    entry["version"] = system.version
                    entry["pid"] = system.pid
                    entry["settings"] = system.settings
                    log(f"== {name} {system.version} up on {system.bootstrap} (pid {system.pid})")
                    entry.update(Runner(system, scale, log, None if args.no_profile else out).run())
                except StartError as e:
                    msg = f"{name} could not start: {e}"
                    print(f"kafka-core bench: ERROR: {msg}", file=sys.stderr, flush=True)
                    results["errors"][name] = msg
                    entry["failed"] = msg
                    rc = 2
                except KeyboardInterrupt:
                    raise
                except Exception as e:
                    if _signalled:  # a signal's KeyboardInterrupt was replaced by a later error
                        raise KeyboardInterrupt(f"signal {_signalled[0]}") from e
                    msg = f"{name}: experiment failed: {type(e).__name__}: {e}"
                    print(f"kafka-core bench: ERROR: {msg}\n{traceback.format_exc()}", file=sys.stderr, flush=True)
                    tail = system.log_tail()
                    if tail:
                        print(f"--- {name} log tail ---\n{tail}", file=sys.stderr)
                    results["errors"][name] = msg
                    entry["failed"] = msg
                    rc = rc or 1
                finally:
                    system.stop()
                    log(f"== {name}: stopped")
        except KeyboardInterrupt:
            return _interrupted()
    results["seconds"] = round(time.monotonic() - t_start, 1)
    from .report import write_all

    write_all(results, out, plots=not args.no_plots)
    log(f"wrote {out / 'report.md'}, {out / 'results.json'}")
    _json_out(args, results)
    if results["errors"]:
        print("kafka-core bench: FAILED: " + "; ".join(results["errors"].values()), file=sys.stderr)
    return rc


def _cluster_main(args: argparse.Namespace, argv: list[str] | None, names: list[str], out: Path) -> int:
    """--cluster: cluster_bench.run under the same signal handling, report.md and results.json."""
    from .cluster_bench import CLUSTER_FULL, CLUSTER_QUICK, run
    from .report import write_cluster

    scale = CLUSTER_QUICK if args.quick else CLUSTER_FULL
    if args.failover_rounds is not None:
        if args.failover_rounds < 1:
            print("kafka-core bench: --failover-rounds must be at least 1", file=sys.stderr)
            return 2
        scale = dataclasses.replace(scale, failover_rounds=args.failover_rounds)
    t_start = time.monotonic()

    def log(msg: str) -> None:
        print(f"[{time.monotonic() - t_start:6.1f}s] {msg}", flush=True, file=sys.stderr if args.json else sys.stdout)

    results: dict = {"date": dt.datetime.now().isoformat(timespec="seconds"), "quick": args.quick, "cluster": True,
                     "command": "kafka-core bench " + " ".join(argv if argv is not None else sys.argv[1:]),
                     "machine": machine(), "scale": vars(scale), "systems": {}, "errors": {}}
    with _stopping_all():
        try:
            rc = run(names, scale, results, log)
        except KeyboardInterrupt:
            return _interrupted()
    results["seconds"] = round(time.monotonic() - t_start, 1)
    write_cluster(results, out)
    log(f"wrote {out / 'report.md'}, {out / 'results.json'}")
    _json_out(args, results)
    if results["errors"]:
        print("kafka-core bench: FAILED: " + "; ".join(results["errors"].values()), file=sys.stderr)
        rc = rc or 1
    return rc


def _json_out(args: argparse.Namespace, results: dict) -> None:
    if args.json:
        print(json.dumps(results, default=str), flush=True)


def dump(results: dict, path: Path) -> None:
    path.write_text(json.dumps(results, indent=2, default=str))
