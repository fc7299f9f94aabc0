"""Transactional throughput (issue 12): records/s of a confluent-kafka transactional producer at 1,
10 and 100 records per transaction, kafka-core against Apache Kafka 4.x, one after the other in
one run on this machine.

    python benches/system/bench_txn.py [--seconds 5] [--size 200]

Each case runs begin / produce N / commit in a loop for --seconds on a fresh topic of one
partition (linger.ms=0: each transaction's records go out at its commit), then checks with a
read_committed consumer that exactly the committed records are there.  Prints transactions/s and
records/s per case and the ratios kafka-core / Apache Kafka.
"""

from __future__ import annotations

import argparse
import json
import time
import uuid
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition
from kafka_bench.apache_kafka import ApacheKafka
from kafka_broker.testing import EmbeddedBroker

SIZES = (1, 10, 100)


def run_case(bootstrap: str, n: int, seconds: float, size: int) -> tuple[float, float]:
    topic = f"txn-bench-{uuid.uuid4().hex[:8]}"
    p = Producer({"bootstrap.servers": bootstrap, "transactional.id": f"bench-{uuid.uuid4().hex[:8]}",
                  "linger.ms": 0})
    p.init_transactions(30)
    value = b"x" * size
    txns = 0
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        p.begin_transaction()
        for _ in range(n):
            p.produce(topic, value)
        p.commit_transaction(30)
        txns += 1
    took = time.perf_counter() - t0
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"check-{topic}", "isolation.level": "read_committed",
                  "enable.auto.commit": False})
    c.assign([TopicPartition(topic, 0, 0)])
    got, deadline = 0, time.monotonic() + 60
    while got < txns * n and time.monotonic() < deadline:
        got += sum(1 for m in c.consume(10000, 1.0) if m.error() is None)
    c.close()
    assert got == txns * n, f"read_committed saw {got} of {txns * n} committed records"
    return txns / took, txns * n / took


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--size", type=int, default=200)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    results: dict[str, dict[int, tuple[float, float]]] = {}
    core = EmbeddedBroker().start()
    try:
        results["kafka-core"] = {n: run_case(core.bootstrap, n, args.seconds, args.size) for n in SIZES}
    finally:
        core.cleanup()
    ak = ApacheKafka().start()
    try:
        results["apache-kafka"] = {n: run_case(ak.bootstrap, n, args.seconds, args.size) for n in SIZES}
    finally:
        ak.stop()
    out: dict[str, Any] = {"results": results, "ratios": {}}
    for n in SIZES:
        (ct, cr), (at, ar) = results["kafka-core"][n], results["apache-kafka"][n]
        out["ratios"][n] = cr / ar
        print(f"{n:4d} records/txn: kafka-core {ct:7.1f} txn/s {cr:9.0f} rec/s | apache {at:7.1f} txn/s "
              f"{ar:9.0f} rec/s | ratio {cr / ar:5.2f}x")
    if args.json:
        print(json.dumps(out))


if __name__ == "__main__":
    main()
