"""Export throughput (issue 13): ``kafka-core export`` into Parquet against the direct way, reading
the same records with confluent-kafka and writing them with pyarrow, side by side in one run on
one kafka-core broker.

    python benches/system/bench_export.py [--records 1000000] [--size 200] [--partitions 4] [--rounds 2]

The topic is filled once (keys of 8 bytes, values of --size bytes, every third record with a
header).  Each round runs both, alternating, from a fresh group / fresh output directory:

- kafka-core export: ``kafka_tools.export.Exporter`` (what the CLI runs), --until-caught-up,
  its whole protocol: Hive layout, one range per partition per --roll-records, temp + fsync +
  rename + fsync of the directory, ledger entry, group commit.
- direct: a confluent-kafka Consumer assigned every partition from the start, ``consume(10000)``
  batches turned into Arrow columns (one Python call per record and field, which is what its
  API offers), one Parquet file per partition written at the end with ``pq.write_table`` (one
  table per partition, as the export's one range per partition), fsynced; no ledger, no Hive
  split, no commit.

MB/s counts key + value bytes over the wall time from the consumer's creation to the last
file durable.  Prints each round and the ratio of the medians (export / direct).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from confluent_kafka import Consumer, TopicPartition
from kafka_broker.testing import EmbeddedBroker
from kafka_client import AdminClient, NewTopic, Producer
from kafka_tools.export import ExportConfig, Exporter


def fill(bootstrap: str, topic: str, records: int, size: int, partitions: int) -> int:
    with AdminClient(bootstrap) as admin:
        admin.create_topics([NewTopic(topic, partitions, 1, {})], raise_on_error=True)
    p = Producer(bootstrap, linger_ms=5, batch_size=262144)
    # A pool of distinct random-looking values: Parquet gets some, not all, of them compressed.
    pool = [os.urandom(size // 2).hex().encode()[:size] for _ in range(1000)]
    payload = 0
    try:
        for i in range(records):
            key = b"k%07d" % (i % 10_000_000)
            value = pool[i % 1000]
            p.produce(topic, value, key=key, headers=[("src", b"bench")] if i % 3 == 0 else None)
            payload += len(key) + len(value)
        p.flush(120)
    finally:
        p.close()
    return payload


def run_export(bootstrap: str, topic: str, out: Path, records: int) -> float:
    cfg = ExportConfig(bootstrap_servers=bootstrap, out=out, group=f"bench-{uuid.uuid4().hex[:8]}", topics=[topic],
                       until_caught_up=True, roll_records=records)
    t0 = time.perf_counter()
    s = Exporter(cfg).run()
    took = time.perf_counter() - t0
    assert s.records == records, s
    return took


HEADERS = pa.list_(pa.struct([("key", pa.string()), ("value", pa.binary())]))
SCHEMA = pa.schema([("partition", pa.int32()), ("offset", pa.int64()), ("timestamp", pa.timestamp("ms", tz="UTC")),
                    ("key", pa.binary()), ("value", pa.binary()), ("headers", HEADERS)])


def run_direct(bootstrap: str, topic: str, out: Path, records: int, partitions: int) -> float:
    out.mkdir(parents=True)
    t0 = time.perf_counter()
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"direct-{uuid.uuid4().hex[:8]}",
                  "enable.auto.commit": False})
    c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    tables: dict[int, list[Any]] = {p: [] for p in range(partitions)}
    got = 0
    while got < records:
        msgs = [m for m in c.consume(10000, 1.0) if m.error() is None]
        by_part: dict[int, list[Any]] = {}
        for m in msgs:
            by_part.setdefault(m.partition(), []).append(m)
        for p, ms in by_part.items():
            cols = [pa.array([p] * len(ms), pa.int32()), pa.array([m.offset() for m in ms], pa.int64()),
                    pa.array([m.timestamp()[1] for m in ms], pa.int64()).cast(SCHEMA.field("timestamp").type),
                    pa.array([m.key() for m in ms], pa.binary()), pa.array([m.value() for m in ms], pa.binary()),
                    pa.array([m.headers() or [] for m in ms], HEADERS)]
            tables[p].append(pa.Table.from_arrays(cols, schema=SCHEMA))
        got += len(msgs)
    for p, ts in tables.items():
        with open(out / f"part-{p}.parquet", "wb") as f:
            pq.write_table(pa.concat_tables(ts), f)
            f.flush()
            os.fsync(f.fileno())
    took = time.perf_counter() - t0
    c.close()
    return took


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--size", type=int, default=200)
    ap.add_argument("--partitions", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    broker = EmbeddedBroker().start()
    work = Path(tempfile.mkdtemp(prefix="bench-export-"))
    results: dict[str, list[float]] = {"export": [], "direct": []}
    try:
        topic = f"export-bench-{uuid.uuid4().hex[:8]}"
        payload = fill(broker.bootstrap, topic, args.records, args.size, args.partitions)
        mb = payload / 1e6
        for r in range(args.rounds):
            for kind in ("export", "direct"):
                out = work / f"{kind}-{r}"
                if kind == "export":
                    took = run_export(broker.bootstrap, topic, out, args.records)
                else:
                    took = run_direct(broker.bootstrap, topic, out, args.records, args.partitions)
                size = sum(f.stat().st_size for f in out.rglob("*.parquet"))
                results[kind].append(mb / took)
                print(f"round {r + 1} {kind:6s}: {args.records} records, {mb:.1f} MB in {took:.2f} s = "
                      f"{mb / took:6.1f} MB/s ({args.records / took:,.0f} rec/s), {size / 1e6:.1f} MB of Parquet",
                      flush=True)
                shutil.rmtree(out)
    finally:
        broker.cleanup()
        shutil.rmtree(work, ignore_errors=True)
    med = {k: statistics.median(v) for k, v in results.items()}
    ratio = med["export"] / med["direct"]
    print(f"median: export {med['export']:.1f} MB/s, direct (confluent-kafka + pyarrow) {med['direct']:.1f} MB/s, "
          f"ratio {ratio:.2f}x")
    if args.json:
        print(json.dumps({"mb_per_s": results, "median": med, "ratio": ratio}))


if __name__ == "__main__":
    main()
