"""The load generators: kc_loadgen (librdkafka, kafka_bench/data/kc_loadgen.c) for both
Kafka-protocol brokers, Apache Kafka's ProducerPerformance/ConsumerPerformance
(kafka-tools) as the second Kafka client, and PeerBench (Java;
kafka_bench/data/peers) for RabbitMQ and ActiveMQ.  Every client runs as a child
process whose CPU seconds are taken from its rusage, to tell whether the
client or the broker was the bottleneck."""

from __future__ import annotations

import json
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from . import paths, procs
from .apache_kafka import CONSUMER_PERF, PRODUCER_PERF, java_cmd
from .loadgen import build_loadgen
from .systems import AMQ_HOME

PEERS_SRC = paths.DATA / "peers"
PEERS_CACHE = paths.CACHE / "peer-bench"


class ClientError(RuntimeError):
    pass


def _children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def run_client(cmd: list[str], timeout: float) -> tuple[str, str, float, float]:
    """Run a client to completion; return stdout, stderr, wall seconds and its CPU seconds."""
    cpu0, t0 = _children_cpu(), time.monotonic()
    p = procs.register(subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                        start_new_session=True))
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired as e:
        procs.terminate(p, timeout=5)
        raise ClientError(f"{Path(cmd[0]).name} timed out after {timeout}s") from e
    except BaseException:  # interrupted: the client must not outlive the runner
        procs.terminate(p, timeout=5)
        raise
    procs.forget(p)
    return out, err, time.monotonic() - t0, _children_cpu() - cpu0


def _last_json(out: str, err: str, what: str) -> dict:
    lines = [ln for ln in out.splitlines() if ln.startswith("{")]
    if not lines:
        raise ClientError(f"{what} printed no result: {err[-1500:]}")
    return json.loads(lines[-1])


def awaited(bootstrap: str, count: int, warmup: int, rounds: int = 1, timeout: float = 600) -> dict:
    """kafka_bench.latency against ``bootstrap``: client -> percentiles of its awaited operations
    (medians of ``rounds`` interleaved rounds)."""
    out, err, _wall, _cpu = run_client([sys.executable, "-m", "kafka_bench.latency", "--bootstrap", bootstrap,
                                        "--count", str(count), "--warmup", str(warmup), "--rounds", str(rounds)],
                                       timeout * rounds)
    return _last_json(out, err, "kafka_bench.latency")


# ---- kc_loadgen -------------------------------------------------------------------------------

def loadgen(mode: str, bootstrap: str, topic: str, count: int, size: int = 200, conf: dict[str, str] | None = None,
            rate: int = 0, duration: float = 0, max_outstanding: int = 0, timeout: float = 600,
            partition: int = 0) -> dict:
    """partition: the one kc_loadgen produces to or consumes; -1 (produce) spreads the records over
    every partition with librdkafka's default partitioner."""
    cmd = [str(build_loadgen()), mode, "-b", bootstrap, "-t", topic, "-n", str(count), "-s", str(size),
           "-p", str(partition)]
    for k, v in (conf or {}).items():
        cmd += ["-X", f"{k}={v}"]
    if rate:
        cmd += ["--rate", str(rate)]
    if duration:
        cmd += ["--duration", str(duration)]
    if max_outstanding:
        cmd += ["--max-outstanding", str(max_outstanding)]
    out, err, wall, cpu = run_client(cmd, timeout)
    res = _last_json(out, err, f"kc_loadgen {mode}")
    if res.get("failed"):
        raise ClientError(f"kc_loadgen {mode}: {res['failed']} deliveries failed: {err[-1000:]}")
    return res | {"client": "kc_loadgen", "client_cpu_s": cpu, "wall_s": wall}


def kafka_producer_conf(batch: int) -> dict[str, str]:
    """batch B: B messages per produce request and one request in flight, acks=1
    (the producer waits for each acknowledged round trip of B messages)."""
    return {"acks": "1", "batch.num.messages": str(batch), "linger.ms": "0" if batch == 1 else "5",
            "max.in.flight.requests.per.connection": "1"}


# ---- Apache Kafka's perf tools ----------------------------------------------------------------

_PP = re.compile(r"(\d+) records sent, ([\d.]+) records/sec \(([\d.]+) MB/sec\), ([\d.]+) ms avg latency, "
                 r"([\d.]+) ms max latency, (\d+) ms 50th, (\d+) ms 95th, (\d+) ms 99th, (\d+) ms 99.9th")


def producer_perf(bootstrap: str, topic: str, count: int, size: int, props: dict[str, str],
                  timeout: float = 300) -> dict:
    args = ["--topic", topic, "--num-records", str(count), "--record-size", str(size), "--throughput", "-1",
            "--producer-props", f"bootstrap.servers={bootstrap}", *[f"{k}={v}" for k, v in props.items()]]
    out, err, wall, cpu = run_client(java_cmd(PRODUCER_PERF, args, heap="512m"), timeout)
    found = list(_PP.finditer(out))
    if not found:
        raise ClientError(f"ProducerPerformance: {err[-1500:] or out[-1500:]}")
    m = found[-1]
    return {"client": "ProducerPerformance", "records": int(m[1]), "records_per_sec": float(m[2]),
            "mb_per_sec": float(m[3]), "avg_latency_ms": float(m[4]), "p50_ms": float(m[6]),
            "p99_ms": float(m[8]), "p999_ms": float(m[9]), "client_cpu_s": cpu, "wall_s": wall,
            "seconds": int(m[1]) / float(m[2]) if float(m[2]) else 0.0}


def consumer_perf(bootstrap: str, topic: str, count: int, timeout: float = 300) -> dict:
    args = ["--bootstrap-server", bootstrap, "--topic", topic, "--messages", str(count), "--timeout", "30000"]
    out, err, wall, cpu = run_client(java_cmd(CONSUMER_PERF, args, heap="512m"), timeout)
    rows = [ln for ln in out.splitlines() if ln.count(",") >= 9 and not ln.startswith("start.time")]
    if not rows:
        raise ClientError(f"ConsumerPerformance: {err[-1500:] or out[-1500:]}")
    f = [x.strip() for x in rows[-1].split(",")]
    n, fetch_ms = int(f[4]), float(f[7])
    return {"client": "ConsumerPerformance (consumer group)", "records": n, "mb_per_sec": float(f[8]),
            "records_per_sec": float(f[9]), "rebalance_ms": float(f[6]), "seconds": fetch_ms / 1000,
            "client_cpu_s": cpu, "wall_s": wall}


# ---- PeerBench (RabbitMQ, ActiveMQ) -----------------------------------------------------------

_AMQ_JARS = ["activemq-client.jar", "geronimo-jms_1.1_spec.jar", "hawtbuf.jar",
             "geronimo-j2ee-management-1.1-spec.jar", "slf4j-api.jar"]


def peer_classpath() -> str:
    """Fetch the RabbitMQ client with Maven and compile PeerBench.java once."""
    libs, classes = PEERS_CACHE / "libs", PEERS_CACHE / "classes"
    pom, src = PEERS_SRC / "pom.xml", PEERS_SRC / "PeerBench.java"
    marker = libs / ".complete"
    if not (marker.exists() and marker.read_text() == pom.read_text()):
        mvn = shutil.which("mvn")
        if not mvn:
            raise ClientError("mvn not found: install Maven to fetch the RabbitMQ Java client")
        tmp = Path(tempfile.mkdtemp(prefix="peer-jars-"))
        subprocess.run([mvn, "-q", "-B", "-f", str(pom), "dependency:copy-dependencies",
                        f"-DoutputDirectory={tmp}"], check=True, capture_output=True)
        shutil.rmtree(libs, ignore_errors=True)
        libs.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(tmp), str(libs))
        marker.write_text(pom.read_text())
    cp = ":".join([str(libs / "*"), *[str(AMQ_HOME / "lib" / j) for j in _AMQ_JARS]])
    stamp = classes / "PeerBench.class"
    if not stamp.exists() or stamp.stat().st_mtime < src.stat().st_mtime:
        classes.mkdir(parents=True, exist_ok=True)
        javac = shutil.which("javac")
        if not javac:
            raise ClientError("javac not found: install a JDK to build PeerBench")
        subprocess.run([javac, "-nowarn", "-d", str(classes), "-cp", cp, str(src)], check=True,
                       capture_output=True)
    return f"{classes}:{cp}"


def peer(mode: str, system: str, port: int, queue: str, count: int, size: int = 200, batch: int = 1,
         seconds: float = 600, rate: int = 0, timeout: float = 600) -> dict:
    java = shutil.which("java") or "java"
    args = {"produce": [str(count), str(size), str(batch), str(seconds)],
            "consume": [str(count), str(seconds)],
            "e2e": [str(count), str(size), str(rate)]}[mode]
    cmd = [java, "-Xmx512m", "-cp", peer_classpath(), "PeerBench", mode, system, str(port), queue, *args]
    out, err, wall, cpu = run_client(cmd, timeout)
    res = _last_json(out, err, f"PeerBench {mode} {system}")
    return res | {"client": "PeerBench", "client_cpu_s": cpu, "wall_s": wall}


def drain(bootstrap: str, topic: str, partitions: int, count: int, timeout: float = 120,
          conf: dict[str, Any] | None = None) -> dict:
    """One confluent-kafka consumer as a new user writes it (``assign`` every partition from offset 0,
    ``fetch.max.bytes=52428800``, other settings default, plus ``conf``) drains ``count`` records;
    timed from the first record to the last, as issue 11 measured it."""
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"drain-{topic}", "enable.auto.commit": False,
                  "fetch.max.bytes": 52428800, "log_level": 3, **(conf or {})})
    try:
        c.assign([TopicPartition(topic, i, 0) for i in range(partitions)])
        got, first, deadline = 0, 0.0, time.monotonic() + timeout
        while got < count:
            if time.monotonic() > deadline:
                raise ClientError(f"drain of {topic}: {got} of {count} records in {timeout}s")
            msgs = c.consume(10000, 1.0)
            if msgs and not first:
                first = time.perf_counter()
            got += sum(1 for m in msgs if m.error() is None)
        seconds = time.perf_counter() - first
    finally:
        c.close()
    return {"records": got, "seconds": round(seconds, 4), "records_per_sec": got / seconds if seconds else 0.0}
