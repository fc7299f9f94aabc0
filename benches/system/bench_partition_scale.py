"""Partition scale (issue 16): one broker, one topic of N partitions, kafka-core and Apache
Kafka 4.x (KRaft, single node) side by side in one run.

    python benches/system/bench_partition_scale.py [--sizes 1000,10000,50000] [--sample 1000]
                                                   [--out docs/perf/2026-12-07-partition-scale.txt]

For each system and N: start a fresh broker; create the topic with confluent-kafka's AdminClient
(the time until the create is answered, then until Metadata lists N partitions with a leader);
the broker's RSS and open fds when idle; produce one record (acks=all) to each of --sample random
partitions and consume them back (seconds each); RSS and fds after; a clean restart (SIGTERM, then
start: the time until a produce to a sampled partition is acknowledged again) and the fds then.
A step that fails (Apache Kafka past the 20,000 open-file limit or vm.max_map_count) is reported
with its error and the rest of that size skipped.  Everything runs on one machine: the numbers
are as noisy as it is."""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
for _sub in ("src", "python"):  # a checkout that is not pip-installed: the in-tree packages
    if str(ROOT / _sub) not in sys.path:
        sys.path.insert(0, str(ROOT / _sub))

from kafka_bench.apache_kafka import ApacheKafka  # noqa: E402
from kafka_bench.kafka_core_broker import KafkaCoreBroker  # noqa: E402
from kafka_bench.loadgen import proc_stats  # noqa: E402

TOPIC = "scale"


def _fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


# Apache Kafka 4.x's controller refuses one operation of more than 10,000 records
# (QuorumController's MAX_RECORDS_PER_USER_OP: POLICY_VIOLATION "excessively large batch
# operation"), so a bigger topic is created with STEP partitions and grown STEP at a time.
STEP = 5000


def _create(bootstrap: str, n: int, timeout: float, res: dict[str, Any]) -> tuple[float, float]:
    from confluent_kafka import KafkaError, KafkaException
    from confluent_kafka.admin import AdminClient, NewPartitions, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    t = time.monotonic()
    kw: dict[str, Any] = {"operation_timeout": timeout, "request_timeout": timeout + 10}
    try:
        admin.create_topics([NewTopic(TOPIC, n, 1)], **kw)[TOPIC].result(timeout + 20)
    except KafkaException as e:
        if e.args[0].code() != KafkaError.POLICY_VIOLATION or n <= STEP:
            raise
        res["created_in_steps_of"] = STEP
        admin.create_topics([NewTopic(TOPIC, STEP, 1)], **kw)[TOPIC].result(timeout + 20)
        for total in range(2 * STEP, n + 1, STEP):
            admin.create_partitions([NewPartitions(TOPIC, total)], **kw)[TOPIC].result(timeout + 20)
    answered = time.monotonic() - t
    while time.monotonic() - t < timeout:
        md = admin.list_topics(TOPIC, timeout=30).topics.get(TOPIC)
        if md is not None and md.error is None and len(md.partitions) == n and \
                all(p.leader >= 0 for p in md.partitions.values()):
            return answered, time.monotonic() - t
        time.sleep(0.5)
    raise TimeoutError(f"metadata did not list {n} partitions with leaders within {timeout}s")


def _produce(bootstrap: str, parts: list[int], tag: str, timeout: float = 120) -> float:
    from confluent_kafka import Producer

    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5, "log_level": 0})
    errors: list[Any] = []
    t = time.monotonic()
    for i in parts:
        p.produce(TOPIC, f"{tag}-{i}".encode(), partition=i,
                  on_delivery=lambda err, _m: errors.append(err) if err else None)
    left = p.flush(timeout)
    if left or errors:
        raise RuntimeError(f"produce: {left} not delivered, errors {errors[:3]}")
    return time.monotonic() - t


def _consume(bootstrap: str, parts: list[int], timeout: float = 120) -> float:
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "scale-bench", "enable.auto.commit": False,
                  "log_level": 0})
    t = time.monotonic()
    c.assign([TopicPartition(TOPIC, i, 0) for i in parts])
    got = 0
    while got < len(parts) and time.monotonic() - t < timeout:
        for m in c.consume(1000, 0.5):
            if m.error():
                raise RuntimeError(f"consume: {m.error()}")
            got += 1
    c.close()
    if got < len(parts):
        raise TimeoutError(f"consumed {got} of {len(parts)}")
    return time.monotonic() - t


def _until_produce_works(bootstrap: str, part: int, timeout: float) -> None:
    t = time.monotonic()
    while True:
        try:
            _produce(bootstrap, [part], "restart", timeout=10)
            return
        except Exception:
            if time.monotonic() - t > timeout:
                raise
            time.sleep(0.2)


def measure(system: str, n: int, sample: int, timeout: float) -> dict[str, Any]:
    d = Path(tempfile.mkdtemp(prefix=f"scale-{system}-"))
    b: Any = KafkaCoreBroker(data_dir=d) if system == "kafka-core" else ApacheKafka(data_dir=d)
    res: dict[str, Any] = {"system": system, "partitions": n}
    step = "start"
    try:
        b.start(timeout=120)
        step = "create"
        res["create_answered_s"], res["create_listed_s"] = (round(x, 2) for x in _create(b.bootstrap, n, timeout, res))
        pid = b.proc.pid
        st = proc_stats(pid)
        res["idle_rss_mib"], res["idle_fds"] = round(st.rss_bytes / 2**20, 1), _fds(pid)
        parts = sorted(random.Random(n).sample(range(n), min(sample, n)))
        step = "produce"
        res["produce_s"] = round(_produce(b.bootstrap, parts, "a", timeout), 2)
        step = "consume"
        res["consume_s"] = round(_consume(b.bootstrap, parts, timeout), 2)
        st = proc_stats(pid)
        res["rss_mib"], res["fds"] = round(st.rss_bytes / 2**20, 1), _fds(pid)
        step = "restart"
        t = time.monotonic()
        if system == "kafka-core":
            b.stop(signal.SIGTERM, timeout=300)
        else:
            b.stop()
        res["stop_s"] = round(time.monotonic() - t, 2)
        t = time.monotonic()
        b.start(timeout=300)
        _until_produce_works(b.bootstrap, parts[0], timeout)
        res["restart_to_produce_s"] = round(time.monotonic() - t, 2)
        res["fds_after_restart"] = _fds(b.proc.pid)
    except Exception as e:  # noqa: BLE001 - reported, the run goes on
        res["failed"] = f"{step}: {type(e).__name__}: {str(e)[:200]}"
        log = getattr(b, "log_path", None)
        if log and Path(log).exists():
            tail = [ln for ln in Path(log).read_text(errors="replace").splitlines()
                    if "Too many open files" in ln or "Map failed" in ln or "OutOfMemory" in ln]
            if tail:
                res["broker_said"] = tail[0][:200]
    finally:
        if system == "kafka-core":
            b.stop(signal.SIGKILL)
        else:
            b.stop()
        shutil.rmtree(d, ignore_errors=True)
    return res


COLS = ["create_answered_s", "create_listed_s", "idle_rss_mib", "idle_fds", "produce_s", "consume_s",
        "rss_mib", "fds", "stop_s", "restart_to_produce_s", "fds_after_restart"]


def table(rows: list[dict[str, Any]]) -> str:
    head = ["system", "partitions", *COLS]
    out = [" | ".join(head), " | ".join("---" for _ in head)]
    for r in rows:
        out.append(" | ".join(str(r.get(c, "")) for c in head))
        if "created_in_steps_of" in r:
            out.append(f"  ({r['system']} {r['partitions']}: created {r['created_in_steps_of']} at a time, "
                       "a single create of more is refused)")
        if "failed" in r:
            out.append(f"  ({r['system']} {r['partitions']} failed at {r['failed']}"
                       + (f"; broker log: {r['broker_said']}" if "broker_said" in r else "") + ")")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="1000,10000,50000")
    ap.add_argument("--sample", type=int, default=1000)
    ap.add_argument("--systems", default="kafka-core,apache-kafka")
    ap.add_argument("--timeout", type=float, default=300, help="seconds allowed for each step")
    ap.add_argument("--out", type=Path)
    ap.add_argument("--append", action="store_true", help="add the rows to --out instead of replacing it")
    a = ap.parse_args()
    rows = []
    for n in (int(x) for x in a.sizes.split(",")):
        for system in a.systems.split(","):
            r = measure(system, n, a.sample, a.timeout)
            print(json.dumps(r), flush=True)
            rows.append(r)
    soft, _hard = __import__("resource").getrlimit(__import__("resource").RLIMIT_NOFILE)
    maps = Path("/proc/sys/vm/max_map_count").read_text().strip()
    text = (f"# Partition scale, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}\n"
            f"# machine: {platform.node()}, {os.cpu_count()} cores shared with other jobs (noisy), "
            f"RLIMIT_NOFILE {soft}, vm.max_map_count {maps}\n"
            f"# python benches/system/bench_partition_scale.py --sizes {a.sizes} --sample {a.sample}\n\n"
            + table(rows) + "\n")
    print(text)
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        with open(a.out, "a" if a.append else "w") as f:
            f.write(("\n" if a.append else "") + text)


if __name__ == "__main__":
    main()
