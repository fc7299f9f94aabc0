"""The test fixture's broker against Apache Kafka's as a test dependency (issue 15): seconds from
start to accepting connections, and resident memory once up, in one run on this machine.

    python benches/system/bench_embedded_start.py [--runs 5] [--apache-runs 2]

kafka-core: ``kafka_broker.testing.EmbeddedBroker`` (what the ``kafka_core_broker`` fixture
starts), --runs times, each in a fresh folder.  Apache Kafka: the single-node KRaft broker of
``kafka_bench.apache_kafka`` (4.x, 1 GiB heap, as the benchmarks start it), --apache-runs times.
Prints every run, the medians and the ratios kafka-core / Apache Kafka.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from kafka_bench.apache_kafka import ApacheKafka
from kafka_bench.procs import tree_stats
from kafka_broker.testing import EmbeddedBroker


def rss_mb(pid: int) -> float:
    """Resident memory of pid and its children (the JVM or Python broker process tree)."""
    return tree_stats(pid).rss_bytes / 2**20


def kafka_core_run() -> tuple[float, float]:
    b = EmbeddedBroker()
    t0 = time.perf_counter()
    b.start()
    took = time.perf_counter() - t0
    assert b.proc is not None
    time.sleep(0.5)
    mem = rss_mb(b.proc.pid)
    b.cleanup()
    return took, mem


def apache_run() -> tuple[float, float]:
    k = ApacheKafka(heap="1g")
    t0 = time.perf_counter()
    k.start()
    took = time.perf_counter() - t0
    time.sleep(0.5)
    assert k.proc is not None
    mem = rss_mb(k.proc.pid)
    k.cleanup()
    return took, mem


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--apache-runs", type=int, default=2)
    args = ap.parse_args()
    kc = [kafka_core_run() for _ in range(args.runs)]
    ak = [apache_run() for _ in range(args.apache_runs)]
    out = {}
    for name, runs in (("kafka-core (EmbeddedBroker)", kc), ("Apache Kafka (KRaft, 1 GiB heap)", ak)):
        out[name] = {"start_s": [round(t, 3) for t, _ in runs], "rss_mb": [round(m, 1) for _, m in runs],
                     "median_start_s": statistics.median(t for t, _ in runs),
                     "median_rss_mb": statistics.median(m for _, m in runs)}
        print(f"| {name} | start s: {', '.join(f'{t:.2f}' for t, _ in runs)} (median "
              f"{out[name]['median_start_s']:.2f}) | RSS MiB: {', '.join(f'{m:.0f}' for _, m in runs)} |")
    a, b = out.values()
    print(f"kafka-core / Apache Kafka: start {a['median_start_s'] / b['median_start_s']:.2f}x, "
          f"RSS {a['median_rss_mb'] / b['median_rss_mb']:.2f}x")
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
