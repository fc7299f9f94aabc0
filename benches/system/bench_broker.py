"""First system benchmark of the kafka-core broker (issue 3): producer and
consumer throughput with the librdkafka load generator (200-byte messages),
the broker's CPU seconds per million messages, and its RSS at idle and after
storing a lot of data (data lives in the page cache, not the process).

    python benches/system/bench_broker.py [--messages 2000000] [--store-gb 10] [--out DIR]

Writes DIR/broker.json and prints a Markdown table.  The side-by-side
comparison with Apache Kafka is the system benchmark runner's job.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
for _sub in ("src", "python"):  # a checkout that is not pip-installed: the in-tree packages
    if str(ROOT / _sub) not in sys.path:
        sys.path.insert(0, str(ROOT / _sub))

from kafka_bench.kafka_core_broker import KafkaCoreBroker  # noqa: E402
from kafka_bench.loadgen import proc_stats, run_loadgen  # noqa: E402


def create_topic(bootstrap: str, name: str, partitions: int = 1) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])[name].result(30)


def measure(broker: KafkaCoreBroker, fn) -> tuple[dict, float]:
    assert broker.proc is not None
    before = proc_stats(broker.proc.pid)
    result = fn()
    after = proc_stats(broker.proc.pid)
    return result, after.cpu_seconds - before.cpu_seconds


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--messages", type=int, default=2_000_000)
    ap.add_argument("--size", type=int, default=200)
    ap.add_argument("--store-gb", type=float, default=0.0, help="also store this much and report RSS")
    ap.add_argument("--out", default=str(ROOT / "benches" / "results" / dt.date.today().isoformat()))
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    res: dict = {"date": dt.datetime.now().isoformat(timespec="seconds"), "messages": args.messages,
                 "size": args.size}
    with KafkaCoreBroker(settings={"log.segment.bytes": str(1 << 30)}) as b:
        time.sleep(1)
        assert b.proc is not None
        res["rss_idle_mb"] = proc_stats(b.proc.pid).rss_bytes / 2**20
        create_topic(b.bootstrap, "bench")
        prod, cpu_p = measure(b, lambda: run_loadgen("produce", b.bootstrap, "bench", args.messages, args.size,
                                                    conf={"linger.ms": "5", "acks": "1"}))
        cons, cpu_c = measure(b, lambda: run_loadgen("consume", b.bootstrap, "bench", args.messages))
        res["produce"] = prod | {"broker_cpu_s_per_million": cpu_p / (args.messages / 1e6)}
        res["consume"] = cons | {"broker_cpu_s_per_million": cpu_c / (args.messages / 1e6)}
        res["rss_after_mb"] = proc_stats(b.proc.pid).rss_bytes / 2**20
        if args.store_gb:
            create_topic(b.bootstrap, "store")
            size = 100_000
            n = int(args.store_gb * 1e9 / size)
            run_loadgen("produce", b.bootstrap, "store", n, size, conf={"linger.ms": "5", "acks": "1"},
                        timeout=3600)
            res["stored_gb"] = n * size / 1e9
            res["rss_after_store_mb"] = proc_stats(b.proc.pid).rss_bytes / 2**20
    (out / "broker.json").write_text(json.dumps(res, indent=2))
    print("| metric | value |\n|---|---|")
    print(f"| produce records/s (200 B, linger 5 ms, acks=1) | {res['produce']['records_per_sec']:,.0f} |")
    print(f"| produce broker CPU s / 1M msgs | {res['produce']['broker_cpu_s_per_million']:.2f} |")
    print(f"| consume records/s | {res['consume']['records_per_sec']:,.0f} |")
    print(f"| consume broker CPU s / 1M msgs | {res['consume']['broker_cpu_s_per_million']:.2f} |")
    print(f"| broker RSS idle / after run (MiB) | {res['rss_idle_mb']:.0f} / {res['rss_after_mb']:.0f} |")
    if args.store_gb:
        print(f"| broker RSS after storing {res['stored_gb']:.1f} GB (MiB) | {res['rss_after_store_mb']:.0f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
