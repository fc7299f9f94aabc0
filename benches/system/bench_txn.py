"""Transactional throughput (issue 12): records/s of a confluent-kafka transactional producer at 1,
10 and 100 records per transaction, and of a Kafka Streams exactly_once_v2 word count,
kafka-core against Apache Kafka 4.x, one after the other in one run on this machine.

    python benches/system/bench_txn.py [--seconds 5] [--size 200] [--streams-lines 100000]

Each producer case runs begin / produce N / commit in a loop for --seconds on a fresh topic of
one partition (linger.ms=0: each transaction's records go out at its commit), then checks with a
read_committed consumer that exactly the committed records are there.  Prints transactions/s and
records/s per case and the ratios kafka-core / Apache Kafka.

The Streams row (kafka_bench/streams.py, WordCount.java; --streams-lines 0 leaves it out) counts
the words of --streams-lines lines produced up front to 3 partitions, with Streams' EOS defaults
(commit.interval.ms=100, the store cache on) and one stream thread.  Its clock starts when the
app reports RUNNING (JVM start, group join and internal topic creation are left out) and stops
when the output read under read_committed holds the exact count of every word; it prints input
lines/s and the broker's CPU seconds over that time (from /proc, the broker's process tree).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from kafka_bench import procs, streams
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


def run_streams(bootstrap: str, broker_pid: int, n: int) -> tuple[float, float]:
    """(input lines/s, broker CPU seconds) of one exactly-once word count of ``n`` lines."""
    tag = uuid.uuid4().hex[:8]
    input_topic, output_topic = f"wc-lines-{tag}", f"wc-counts-{tag}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for f in admin.create_topics([NewTopic(input_topic, 3, 1),
                                  NewTopic(output_topic, 3, 1, config={"cleanup.policy": "compact"})]).values():
        f.result(30)
    lines, expected = streams.word_lines(n)
    streams.produce_lines(bootstrap, input_topic, lines, 3)
    with tempfile.TemporaryDirectory(prefix="wc-bench-") as work:
        app = streams.WordCount(bootstrap, f"wc-{tag}", input_topic, output_topic, Path(work),
                                {"num.stream.threads": "1"}).start()
        out = streams.CountsReader(bootstrap, output_topic, 3)
        try:
            streams.wait_until(app, out, lambda: "RUNNING" in app.states(), 120, "RUNNING")
            cpu0, t0 = procs.tree_stats(broker_pid).cpu_seconds, time.perf_counter()
            streams.wait_until(app, out, lambda: out.latest == dict(expected), 600, "the exact counts")
            took, cpu = time.perf_counter() - t0, procs.tree_stats(broker_pid).cpu_seconds - cpu0
            problems = out.problems(expected)
            assert not problems, problems
        finally:
            app.stop()
            out.close()
    return n / took, cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--size", type=int, default=200)
    ap.add_argument("--streams-lines", type=int, default=100_000)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    results: dict[str, dict[int, tuple[float, float]]] = {}
    wordcount: dict[str, tuple[float, float]] = {}
    core = EmbeddedBroker().start()
    try:
        results["kafka-core"] = {n: run_case(core.bootstrap, n, args.seconds, args.size) for n in SIZES}
        if args.streams_lines and core.proc is not None:
            wordcount["kafka-core"] = run_streams(core.bootstrap, core.proc.pid, args.streams_lines)
    finally:
        core.cleanup()
    ak = ApacheKafka().start()
    try:
        results["apache-kafka"] = {n: run_case(ak.bootstrap, n, args.seconds, args.size) for n in SIZES}
        if args.streams_lines and ak.proc is not None:
            wordcount["apache-kafka"] = run_streams(ak.bootstrap, ak.proc.pid, args.streams_lines)
    finally:
        ak.stop()
    out: dict[str, Any] = {"results": results, "ratios": {}, "streams": wordcount}
    for n in SIZES:
        (ct, cr), (at, ar) = results["kafka-core"][n], results["apache-kafka"][n]
        out["ratios"][n] = cr / ar
        print(f"{n:4d} records/txn: kafka-core {ct:7.1f} txn/s {cr:9.0f} rec/s | apache {at:7.1f} txn/s "
              f"{ar:9.0f} rec/s | ratio {cr / ar:5.2f}x")
    if len(wordcount) == 2:
        (cl, cc), (al, ac) = wordcount["kafka-core"], wordcount["apache-kafka"]
        out["ratios"]["streams"] = cl / al
        print(f"Streams EOS word count ({args.streams_lines} lines): kafka-core {cl:7.0f} lines/s "
              f"broker {cc:5.2f} CPU s | apache {al:7.0f} lines/s broker {ac:5.2f} CPU s | ratio {cl / al:5.2f}x")
    if args.json:
        print(json.dumps(out))


if __name__ == "__main__":
    main()
