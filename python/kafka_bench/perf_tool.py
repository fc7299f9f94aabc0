"""``kafka-core perf produce|consume`` against a plain confluent-kafka loop (issue 11 §3).

The perf tool must cost less than the producer it measures, so it is compared with the simplest
confluent-kafka program doing the same work **with the same settings**, on the same broker,
alternately, each in a process of its own:

- produce ``records`` records of ``size`` bytes into a fresh one-partition topic, then flush;
  two sets of settings, each given to both clients:

  - ``java-defaults``: what Kafka's ProducerPerformance runs with (the Java client's defaults):
    acks=all, idempotence on, batch.size 16384, linger.ms 5, 5 requests in flight;
  - ``librdkafka-defaults``: librdkafka's: batch.size 1000000, idempotence off, 1,000,000
    requests in flight (acks=all, linger.ms 5 as in both);

- consume what the java-defaults round produced, from the beginning (``perf consume`` against a
  ``consume(num_messages=10000)`` loop, with librdkafka's defaults and again with
  ``fetch.queue.backoff.ms=10``, which removes librdkafka's own 1 s pause on a full queue).

``python -m kafka_bench.perf_tool confluent-produce|confluent-consume ...`` is the confluent-kafka
side (one JSON line); ``compare`` runs both sides and gives records/s per round and the ratio of
the medians (perf tool over confluent-kafka: the issue's target is at least 1.0).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import uuid
from collections.abc import Callable

SETTINGS: dict[str, dict[str, str]] = {
    "java-defaults": {"acks": "all", "enable.idempotence": "true", "batch.size": "16384", "linger.ms": "5",
                      "max.in.flight.requests.per.connection": "5"},
    "librdkafka-defaults": {"acks": "all", "enable.idempotence": "false", "batch.size": "1000000",
                            "linger.ms": "5", "max.in.flight.requests.per.connection": "1000000"},
}


def confluent_produce(bootstrap: str, topic: str, records: int, size: int, settings: dict[str, str]) -> dict:
    from confluent_kafka import Producer

    p = Producer({"bootstrap.servers": bootstrap, **settings})
    p.list_topics(topic, timeout=30)           # metadata first, as perf produce does before its clock
    # No per-record delivery callback: a plain loop does not have one (a Python callback per
    # record would halve its rate); flush() says how many were left undelivered.
    value = b"x" * size
    produce, poll = p.produce, p.poll
    t0 = time.perf_counter()
    for _ in range(records):
        while True:
            try:
                produce(topic, value)
                break
            except BufferError:
                poll(0.001)
    left = p.flush(120)
    elapsed = time.perf_counter() - t0
    if left:
        raise RuntimeError(f"{left} records undelivered after flush")
    return {"records": records, "records_per_sec": records / elapsed, "elapsed_s": elapsed}


# librdkafka postpones a partition's fetches for fetch.queue.backoff.ms (1000 ms) once its queue holds
# queued.min.messages (docs/perf: the drain benchmark); the consume row is given both ways.
CONSUME_TUNED = {"fetch.queue.backoff.ms": "10"}


def confluent_consume(bootstrap: str, topic: str, records: int, settings: dict[str, str] | None = None) -> dict:
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"perf-{uuid.uuid4().hex[:8]}",
                  "enable.auto.commit": False, "auto.offset.reset": "earliest", **(settings or {})})
    md = c.list_topics(topic, timeout=30).topics[topic]
    c.assign([TopicPartition(topic, p, 0) for p in md.partitions])
    n = nbytes = 0
    t0 = time.perf_counter()
    deadline = time.monotonic() + 120
    while n < records and time.monotonic() < deadline:
        for m in c.consume(num_messages=10000, timeout=0.5):
            if m.error() is None:
                n += 1
                nbytes += len(m.value() or b"")
    elapsed = time.perf_counter() - t0
    c.close()
    if n < records:
        raise RuntimeError(f"consumed {n} of {records}")
    return {"records": n, "bytes": nbytes, "records_per_sec": n / elapsed, "elapsed_s": elapsed}


def _json_of(cmd: list[str], timeout: float) -> dict:
    from .clients import _last_json, run_client

    out, err, _wall, _cpu = run_client(cmd, timeout)
    return _last_json(out, err, " ".join(cmd[1:5]))


def compare(bootstrap: str, records: int, size: int, rounds: int, create: Callable[[str], None],
            log: Callable[[str], None]) -> dict:
    """Both sides, ``rounds`` times each, alternating; median records/s and the ratio."""
    py = sys.executable
    out: dict = {"records": records, "record_size": size, "settings": SETTINGS, "produce": {}, "consume": {}}
    drained: str | None = None
    for name, settings in SETTINGS.items():
        kc, cf = [], []   # records/s per round
        for r in range(rounds):
            topic = f"perf-{name}-kc-{r}-{uuid.uuid4().hex[:6]}"
            create(topic)
            kc.append(_json_of([py, "-m", "kafka_cli", "perf", "produce", "--bootstrap-server", bootstrap,
                                "--topic", topic, "--num-records", str(records), "--record-size", str(size),
                                "--throughput", "-1", "--json", "--producer-props",
                                *(f"{k}={v}" for k, v in settings.items())], 600)["records_per_sec"])
            if name == "java-defaults":
                drained = topic
            topic = f"perf-{name}-cf-{r}-{uuid.uuid4().hex[:6]}"
            create(topic)
            cf.append(_json_of([py, "-m", "kafka_bench.perf_tool", "confluent-produce", bootstrap, topic,
                                str(records), str(size), json.dumps(settings)], 600)["records_per_sec"])
        out["produce"][name] = _row(kc, cf)
        log(f"  perf produce vs confluent-kafka loop, {name}: {out['produce'][name]['kafka_core_perf']:,.0f} vs "
            f"{out['produce'][name]['confluent_loop']:,.0f} msg/s = {out['produce'][name]['ratio']:.2f}x")
    assert drained is not None
    kc, cf = [], []
    tuned: list[float] = []
    for _ in range(rounds):
        kc.append(_json_of([py, "-m", "kafka_cli", "perf", "consume", "--bootstrap-server", bootstrap, "--topic",
                            drained, "--messages", str(records), "--json"], 600)["fetch_records_per_sec"])
        for into, conf in ((cf, {}), (tuned, CONSUME_TUNED)):
            into.append(_json_of([py, "-m", "kafka_bench.perf_tool", "confluent-consume", bootstrap, drained,
                                  str(records), json.dumps(conf)], 600)["records_per_sec"])
    out["consume"]["defaults"] = _row(kc, cf)
    out["consume"]["fetch.queue.backoff.ms=10"] = _row(kc, tuned)
    for name, c in out["consume"].items():
        log(f"  perf consume vs confluent-kafka loop ({name}): {c['kafka_core_perf']:,.0f} vs "
            f"{c['confluent_loop']:,.0f} msg/s = {c['ratio']:.2f}x")
    return out


def _row(kc: list[float], cf: list[float]) -> dict:
    a, b = statistics.median(kc), statistics.median(cf)
    return {"kafka_core_perf": a, "confluent_loop": b, "ratio": a / b if b else None,
            "rounds_kafka_core_perf": [round(x) for x in kc], "rounds_confluent_loop": [round(x) for x in cf]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m kafka_bench.perf_tool")
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("confluent-produce")
    p.add_argument("bootstrap")
    p.add_argument("topic")
    p.add_argument("records", type=int)
    p.add_argument("size", type=int)
    p.add_argument("settings", type=json.loads)
    c = sub.add_parser("confluent-consume")
    c.add_argument("bootstrap")
    c.add_argument("topic")
    c.add_argument("records", type=int)
    c.add_argument("settings", type=json.loads, nargs="?", default={})
    args = ap.parse_args(argv)
    if args.cmd == "confluent-produce":
        res = confluent_produce(args.bootstrap, args.topic, args.records, args.size, args.settings)
    else:
        res = confluent_consume(args.bootstrap, args.topic, args.records, args.settings)
    print(json.dumps(res), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
