"""Awaited single sends and commits (issue 11 §2), kafka-core and Apache Kafka 4.x up at once, in one run.

    python benches/system/bench_awaited.py [--rounds 3] [--count 2000] [--before PYTHONPATH_DIR]
        [--perf-tool] [--out results.json]

Every client of kafka_bench.latency (kafka_client AIO and sync sends, confluent-kafka, aiokafka,
and the three commits) runs ``--count`` awaited operations in a fresh process; a round runs every
client on kafka-core, then every client on Apache Kafka; ``--rounds`` rounds, and each figure is the
median of the rounds (A, B, C, A, B, C: on a shared machine a neighbour's burst then hits every
client, not one).  ``--before DIR`` adds the kafka_client found in DIR (e.g. a copy of an older
python/kafka_client) as "[before]" rows, for a before/after of a client change in the same run.
``--perf-tool`` adds kafka_bench.perf_tool.compare (kafka-core perf vs a confluent-kafka loop).
docs/perf/2026-12-07-latency.txt is one such run.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import subprocess
import sys
from typing import Any

from kafka_bench import latency, perf_tool
from kafka_bench.apache_kafka import ApacheKafka
from kafka_bench.experiments import create_topic
from kafka_bench.kafka_core_broker import KafkaCoreBroker

CLIENTS = latency.SENDERS + latency.COMMITTERS
PEERS = {"send": "confluent_send", "commit": "confluent_commit"}


def one(bootstrap: str, topic: str, which: str, count: int, before: str | None) -> dict[str, Any]:
    """One client's run in a process of its own (``before``: that kafka_client first on the path)."""
    env = dict(os.environ)
    if before:
        env["PYTHONPATH"] = before + os.pathsep + env.get("PYTHONPATH", "")
    code = ("import json; from kafka_bench import latency; "
            f"print(json.dumps(latency.run({bootstrap!r}, {count}, {max(50, count // 10)}, ({which!r},), {topic!r})))")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=900,
                         check=True)
    row: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])[which]
    return row


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--count", type=int, default=2000)
    ap.add_argument("--before", help="a folder holding an older kafka_client package")
    ap.add_argument("--perf-tool", action="store_true")
    ap.add_argument("--out")
    args = ap.parse_args()
    variants = [(c, None) for c in CLIENTS]
    if args.before:
        variants += [(c, args.before) for c in ("kc_aio_send", "kc_sync_send")]
    res: dict[str, dict[str, list[dict[str, Any]]]] = {}
    pt: dict[str, Any] = {}
    kc, ak = KafkaCoreBroker().start(), ApacheKafka().start()
    try:
        brokers = {"kafka-core": kc.bootstrap, "apache-kafka-4": ak.bootstrap}
        topics = {n: latency.create_topic(b) for n, b in brokers.items()}
        for r in range(args.rounds):
            for n, bs in brokers.items():
                for which, before in variants:
                    d = one(bs, topics[n], which, args.count, before)
                    name = which + ("[before]" if before else "")
                    res.setdefault(n, {}).setdefault(name, []).append(d)
                    print(f"round {r} {n} {name}: p50 {d['p50_ms']:.3f} p99 {d['p99_ms']:.3f} ms, "
                          f"cpu {d['cpu_us']:.0f} us/op", flush=True)
        if args.perf_tool:
            for n, bs in brokers.items():
                pt[n] = perf_tool.compare(bs, 300_000, 200, args.rounds, functools.partial(create_topic, bs),
                                          functools.partial(print, flush=True))
    finally:
        ak.stop()
        kc.stop()
    for n, ops in res.items():
        print(f"== {n}: median of {args.rounds} interleaved rounds")
        for name, rows in ops.items():
            med = {k: statistics.median(r[k] for r in rows) for k in ("p50_ms", "p99_ms", "cpu_us")}
            peer = ops[PEERS["commit" if "commit" in name else "send"]]
            p50 = med["p50_ms"] / statistics.median(r["p50_ms"] for r in peer)
            p99 = med["p99_ms"] / statistics.median(r["p99_ms"] for r in peer)
            print(f"  {name:22s} p50 {med['p50_ms']:.3f} p99 {med['p99_ms']:.3f} ms cpu {med['cpu_us']:.0f} us/op"
                  f"  vs confluent-kafka: p50 {p50:.2f}x p99 {p99:.2f}x")
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"awaited": res, "perf_tool": pt}, f)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
