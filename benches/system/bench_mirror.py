"""Mirror throughput (issue 13): ``kafka-core mirror`` against Apache Kafka's MirrorMaker 2
(``org.apache.kafka:connect-mirror`` 4.1.1 from Maven, dedicated mode) and, as a floor for a
Python mirror, a plain confluent-kafka consume -> produce loop, between the same two kafka-core
brokers in one run.

    python benches/system/bench_mirror.py [--records 300000] [--size 200] [--partitions 6] [--mm2-tasks 1] [--json]

The source topic is filled first (--records of --size random bytes over --partitions); then each
mirror copies it to its own target topic, one after the other.  For each: the wall time from
start until the target holds every record (``total``, JVM and group start-up included), the
time from the first record seen in the target to the last (``copy``: the steady rate, polled
every 100 ms by end offsets), and the mirror process's CPU seconds (user + system, from wait4).
Every mirror must deliver exactly --records records (no crash, so no duplicates).  For
``--exactly-once`` the end offsets also count one commit marker per partition and transaction, so
its ``total`` is the time its process took to exit (--until-caught-up: the last transaction
committed).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from kafka_bench.mirror_maker import MirrorMaker2
from kafka_broker.testing import EmbeddedBroker

ROOT = Path(__file__).resolve().parents[2]


def _env() -> dict[str, str]:
    path = [str(ROOT / "python"), str(ROOT / "src")]
    if os.environ.get("PYTHONPATH"):
        path.append(os.environ["PYTHONPATH"])
    return dict(os.environ, PYTHONPATH=os.pathsep.join(path))


def fill(bootstrap: str, topic: str, partitions: int, records: int, size: int) -> None:
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    for f in admin.create_topics([NewTopic(topic, partitions, 1)]).values():
        f.result(30)
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "batch.size": 262144, "acks": "all"})
    value = os.urandom(size)
    for i in range(records):
        while True:
            try:
                p.produce(topic, value, key=b"%d" % i, partition=i % partitions)
                break
            except BufferError:
                p.poll(0.05)
        if i % 10000 == 0:
            p.poll(0)
    p.flush(120)


def target_count(bootstrap: str, topic: str, partitions: int) -> int:
    from kafka_client import Consumer, TopicPartition

    try:
        with Consumer(bootstrap_servers=bootstrap, allow_auto_create_topics=False, request_timeout_ms=5000) as c:
            return sum(max(0, v) for v in c.end_offsets([TopicPartition(topic, p) for p in range(partitions)]).values())
    except Exception:  # noqa: BLE001 - not created yet
        return 0


def watch(bootstrap: str, topic: str, partitions: int, records: int, t0: float, timeout: float,
          proc: subprocess.Popen[Any] | None = None, allow_more: bool = False) -> tuple[float, float]:
    """(seconds to the first record in the target, seconds to the last), both from ``t0``."""
    from kafka_client import Consumer, TopicPartition

    first = None
    tps = [TopicPartition(topic, p) for p in range(partitions)]
    with Consumer(bootstrap_servers=bootstrap, allow_auto_create_topics=False, request_timeout_ms=5000) as c:
        while True:
            now = time.perf_counter()
            if now - t0 > timeout:
                raise TimeoutError(f"{topic}: not all {records} records after {timeout}s")
            if proc is not None:
                # WNOWAIT: look without reaping, so that wait4 gets the CPU times afterwards
                info = os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
                if info is not None and info.si_status != 0:
                    raise RuntimeError(f"mirror exited with {info.si_status}")
            try:
                n = sum(max(0, v) for v in c.end_offsets(tps).values())
            except Exception:  # noqa: BLE001 - the topic is not there yet
                n = 0
            if n and first is None:
                first = now - t0
            if n >= records:
                assert n == records or allow_more, f"{topic}: {n} records, {n - records} more than the source"
                return first or 0.0, now - t0
            time.sleep(0.1)


def _wait_cpu(proc: subprocess.Popen[Any], timeout: float = 60) -> float:
    deadline = time.monotonic() + timeout
    while True:
        pid, status, ru = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            assert proc.returncode == 0, f"mirror exited with {proc.returncode}"
            return ru.ru_utime + ru.ru_stime
        if time.monotonic() > deadline:
            proc.kill()
            raise TimeoutError("mirror did not exit")
        time.sleep(0.05)


def run_kafka_core(src: str, tgt: str, partitions: int, records: int, exactly_once: bool = False) -> dict[str, float]:
    alias = "kce" if exactly_once else "kc"
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "kafka_cli", "mirror", "--source-bootstrap", src,
                             "--target-bootstrap", tgt, "--include", "bench", "--rename", "{source}.{topic}",
                             "--source-alias", alias, "--group", "bench-kc", "--until-caught-up", "--json",
                             *(["--exactly-once"] if exactly_once else [])],
                            env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if not exactly_once:
        first, last = watch(tgt, f"{alias}.bench", partitions, records, t0, 600, proc)
        cpu = _wait_cpu(proc)
        return {"first_s": first, "total_s": last, "cpu_s": cpu}
    # End offsets count the commit markers too (one per partition and transaction): time the
    # first record, then the exit, which --until-caught-up reaches once the last transaction
    # holding the source end offsets has committed.
    first, _ = watch(tgt, f"{alias}.bench", partitions, 1, t0, 600, proc, allow_more=True)
    cpu = _wait_cpu(proc, timeout=600)
    total = time.perf_counter() - t0
    n = count_committed(tgt, f"{alias}.bench", partitions, records)
    assert n == records, f"{alias}.bench: read_committed sees {n} records, not {records}"
    return {"first_s": first, "total_s": total, "cpu_s": cpu}


def count_committed(bootstrap: str, topic: str, partitions: int, records: int) -> int:
    """Records a read_committed reader of ``topic`` sees (read until ``records`` plus 2 s more)."""
    from kafka_client import Consumer, TopicPartition

    n, idle = 0, time.monotonic()
    with Consumer(bootstrap_servers=bootstrap, isolation_level="read_committed", auto_offset_reset="earliest",
                  enable_auto_commit=False) as c:
        c.assign([TopicPartition(topic, p) for p in range(partitions)])
        while time.monotonic() - idle < (2 if n >= records else 30):
            got = sum(len(v) for v in c.poll(0.5).values())
            if got:
                n += got
                idle = time.monotonic()
    return n


def run_mm2(src: str, tgt: str, partitions: int, records: int, workdir: Path, tasks: int) -> dict[str, float]:
    mm = MirrorMaker2(src, tgt, "bench", workdir, tasks=tasks)
    t0 = time.perf_counter()
    mm.start()
    try:
        first, last = watch(tgt, "src.bench", partitions, records, t0, 600, mm.proc)
    finally:
        _code, cpu = mm.stop()
    return {"first_s": first, "total_s": last, "cpu_s": cpu}


_LOOP = r"""
import sys, time
from confluent_kafka import Consumer, Producer, TopicPartition
src, tgt, n, parts = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
c = Consumer({"bootstrap.servers": src, "group.id": "bench-ck", "auto.offset.reset": "earliest",
              "enable.auto.commit": False})
c.subscribe(["bench"])
p = Producer({"bootstrap.servers": tgt, "enable.idempotence": True, "acks": "all", "linger.ms": 5,
              "batch.size": 262144})
done = 0
while done < n:
    msgs = c.consume(5000, 1.0)
    for m in msgs:
        if m.error() is None:
            while True:
                try:
                    p.produce("ck.bench", m.value(), m.key(), partition=m.partition(), timestamp=m.timestamp()[1],
                              headers=m.headers())
                    break
                except BufferError:
                    p.poll(0.05)
            done += 1
    p.poll(0)
    if msgs:
        p.flush(60)           # at least once: the offsets only after the target has it all
        c.commit(asynchronous=False)
p.flush(60)
c.close()
"""


def run_confluent_loop(src: str, tgt: str, partitions: int, records: int) -> dict[str, float]:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": tgt})   # alive until its futures are done
    for f in admin.create_topics([NewTopic("ck.bench", partitions, 1)]).values():
        f.result(30)
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", _LOOP, src, tgt, str(records), str(partitions)], env=_env())
    first, last = watch(tgt, "ck.bench", partitions, records, t0, 600, proc)
    cpu = _wait_cpu(proc)
    return {"first_s": first, "total_s": last, "cpu_s": cpu}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--records", type=int, default=300_000)
    ap.add_argument("--size", type=int, default=200)
    ap.add_argument("--partitions", type=int, default=6)
    ap.add_argument("--mm2-tasks", type=int, default=1, help="MirrorMaker 2's tasks.max (default 1, its default)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-mirror-"))
    source = EmbeddedBroker(work / "source").start()
    target = EmbeddedBroker(work / "target").start()
    results: dict[str, dict[str, float]] = {}
    try:
        fill(source.bootstrap, "bench", args.partitions, args.records, args.size)
        results["kafka-core mirror"] = run_kafka_core(source.bootstrap, target.bootstrap, args.partitions, args.records)
        results["kafka-core --exactly-once"] = run_kafka_core(source.bootstrap, target.bootstrap, args.partitions,
                                                              args.records, exactly_once=True)
        results["MirrorMaker 2 (4.1.1)"] = run_mm2(source.bootstrap, target.bootstrap, args.partitions, args.records,
                                                   work / "mm2", args.mm2_tasks)
        results["confluent-kafka loop"] = run_confluent_loop(source.bootstrap, target.bootstrap, args.partitions,
                                                             args.records)
    finally:
        source.cleanup()
        target.cleanup()
    mb = args.records * args.size / 1e6
    print(f"{args.records} records of {args.size} B ({mb:.0f} MB of values), {args.partitions} partitions, "
          "between two kafka-core brokers on this machine")
    print(f"{'mirror':24} {'total s':>8} {'first s':>8} {'copy s':>7} {'rec/s (copy)':>13} {'MB/s':>6} "
          f"{'CPU s':>6} {'CPU s/M rec':>11}")
    for name, r in results.items():
        copy = r["total_s"] - r["first_s"]
        r["copy_records_per_s"] = args.records / copy if copy > 0 else float("inf")
        r["cpu_s_per_million"] = r["cpu_s"] / args.records * 1e6
        print(f"{name:24} {r['total_s']:8.2f} {r['first_s']:8.2f} {copy:7.2f} {r['copy_records_per_s']:13.0f} "
              f"{r['copy_records_per_s'] * args.size / 1e6:6.1f} {r['cpu_s']:6.1f} {r['cpu_s_per_million']:11.1f}")
    kc, mm = results["kafka-core mirror"], results["MirrorMaker 2 (4.1.1)"]
    print(f"kafka-core / MirrorMaker 2: copy rate {kc['copy_records_per_s'] / mm['copy_records_per_s']:.2f}x, "
          f"total time {mm['total_s'] / kc['total_s']:.2f}x faster, CPU per record "
          f"{kc['cpu_s_per_million'] / mm['cpu_s_per_million']:.2f}x")
    if args.json:
        print(json.dumps({"records": args.records, "size": args.size, "partitions": args.partitions,
                          "results": results}))


if __name__ == "__main__":
    main()
