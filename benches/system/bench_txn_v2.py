"""Java 4.x transactional producer throughput on transaction version 2 (KIP-890 part 2, issue 12):
Apache Kafka's ProducerPerformance with --transactional-id (a commit every
--transaction-duration-ms), against kafka-core with transaction.version 2 (EndTxn v5, Produce v12
adding partitions implicitly), kafka-core with transaction.version 0 (the same client falls back
to TV1: AddPartitionsToTxn, EndTxn v4) and Apache Kafka 4.x (KRaft, TV2), one after the other in
one run on this machine.

    python benches/system/bench_txn_v2.py [--records 100000] [--size 100] [--durations 20,200]

Each case is a fresh broker and topic (one partition); the tool's own records/s (its clock starts
after the JVM and InitProducerId) and the broker's CPU seconds over the run (from /proc, the
broker's process tree) are printed, with the ratios kafka-core / Apache Kafka; a read_committed
consumer then checks that every record is there.
"""

from __future__ import annotations

import argparse
import re
import uuid
from typing import Any

from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from kafka_bench import apache_kafka as ak
from kafka_bench import procs
from kafka_broker.testing import EmbeddedBroker


def run_case(bootstrap: str, pid: int, records: int, size: int, duration_ms: int) -> tuple[float, float]:
    """(records/s, broker CPU seconds) of one ProducerPerformance run."""
    topic = f"tv2-bench-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})     # kept alive until the future resolves
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(30)
    cpu0 = procs.tree_stats(pid).cpu_seconds
    r = ak.java_main(ak.PRODUCER_PERF, ["--topic", topic, "--num-records", str(records), "--record-size", str(size),
                                        "--throughput", "-1", "--transactional-id", f"bench-{uuid.uuid4().hex[:8]}",
                                        "--transaction-duration-ms", str(duration_ms),
                                        "--producer-props", f"bootstrap.servers={bootstrap}"],
                     timeout=600, check=False)
    cpu = procs.tree_stats(pid).cpu_seconds - cpu0
    out = r.stdout.decode(errors="replace")
    m = re.search(rf"{records} records sent, ([0-9.]+) records/sec", out)
    assert r.returncode == 0 and m, out + r.stderr.decode(errors="replace")[-3000:]
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"check-{topic}", "isolation.level": "read_committed",
                  "enable.auto.commit": False})
    c.assign([TopicPartition(topic, 0, 0)])
    got = 0
    while got < records:
        msgs = c.consume(10000, 5.0)
        if not msgs:
            break
        got += sum(1 for msg in msgs if msg.error() is None)
    c.close()
    assert got == records, f"read_committed saw {got} of {records} records"
    return float(m.group(1)), cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--records", type=int, default=100_000)
    ap.add_argument("--size", type=int, default=100)
    ap.add_argument("--durations", default="20,200")
    args = ap.parse_args()
    durations = [int(d) for d in args.durations.split(",")]
    ak.ensure_jars()
    results: dict[str, dict[int, tuple[float, float]]] = {}
    for name, tv in (("kafka-core TV2", "2"), ("kafka-core TV1", "0")):
        core = EmbeddedBroker(settings={"transaction.version": tv}).start()
        try:
            assert core.proc is not None
            results[name] = {d: run_case(core.bootstrap, core.proc.pid, args.records, args.size, d)
                             for d in durations}
        finally:
            core.cleanup()
    k = ak.ApacheKafka().start()
    try:
        assert k.proc is not None
        results["apache TV2"] = {d: run_case(k.bootstrap, k.proc.pid, args.records, args.size, d) for d in durations}
    finally:
        k.stop()
    out: list[str] = []
    for d in durations:
        row: list[Any] = [f"commit every {d:4d} ms:"]
        for name, res in results.items():
            rate, cpu = res[d]
            row.append(f"{name} {rate:9.0f} rec/s {cpu:5.2f} CPU s |")
        base = results["apache TV2"][d][0]
        row.append(f"ratio TV2 {results['kafka-core TV2'][d][0] / base:4.2f}x, "
                   f"TV1 {results['kafka-core TV1'][d][0] / base:4.2f}x")
        out.append(" ".join(row))
    print("\n".join(out))


if __name__ == "__main__":
    main()
