"""The experiments, run against one started system at a time.

Every measured step records the broker's CPU seconds (whole process tree,
/proc), its peak RSS (sampled), the client's CPU seconds (rusage) and the wall
time, so the report can say which side was the bottleneck."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from . import clients, procs
from .systems import System


@dataclass
class Scale:
    """Sizes of one run (--quick or full); chosen so the full suite fits ~30 min on 2 cores."""

    quick: bool
    b1_seconds: float
    b50_count: int
    b50_seconds: float
    e2e_rate: int
    e2e_seconds: float
    sizes: list[int]
    sweep_bytes: int
    sweep_seconds: float
    store_gb_kafka: float
    store_gb_peer: float
    store_chunks: int
    store_record: int
    store_chunk_seconds: float
    java_tools: bool
    drain_partitions: tuple[int, ...] = (1, 3, 6, 50)
    drain_records: int = 200_000
    drain_rounds: int = 3
    awaited_count: int = 2000        # awaited single sends and commits per client (kafka_bench.latency)
    awaited_rounds: int = 3          # interleaved rounds of them; figures are medians of rounds
    perf_tool_records: int = 300_000  # kafka-core perf produce/consume vs a confluent-kafka loop (perf_tool)
    perf_tool_rounds: int = 3
    repeats: int = 1
    java_tools_count: int = 1_000_000
    extra: dict = field(default_factory=dict)


QUICK = Scale(quick=True, b1_seconds=3, b50_count=100_000, b50_seconds=10, e2e_rate=1000, e2e_seconds=4,
              sizes=[10, 1000, 102400], sweep_bytes=20 << 20, sweep_seconds=4, store_gb_kafka=0.2,
              store_gb_peer=0.1, store_chunks=4, store_record=10240, store_chunk_seconds=8, java_tools=False,
              drain_partitions=(1, 6), drain_records=50_000, drain_rounds=2, awaited_count=300, awaited_rounds=1,
              perf_tool_records=100_000, perf_tool_rounds=1)
FULL = Scale(quick=False, repeats=3, b1_seconds=6, b50_count=1_000_000, b50_seconds=25, e2e_rate=2000, e2e_seconds=15,
             sizes=[10, 100, 1000, 10000, 102400], sweep_bytes=300 << 20, sweep_seconds=15, store_gb_kafka=3.0,
             store_gb_peer=1.0, store_chunks=6, store_record=10240, store_chunk_seconds=30, java_tools=True,
             drain_rounds=5)


def measure(system: System, fn: Callable[[], dict]) -> dict:
    """Run fn (a client) and add the broker's CPU and peak RSS over it."""
    before = system.stats()
    with procs.PeakRss(system.pid) as peak:
        res = fn()
    after = system.stats()
    res["broker_cpu_s"] = round(after.cpu_seconds - before.cpu_seconds, 3)
    res["broker_peak_rss_mb"] = round(max(peak.peak, after.rss_bytes) / 2**20, 1)
    return cpu_figures(res)


def cpu_figures(res: dict) -> dict:
    """Add to a step's result (wall_s, records, broker_cpu_s, client_cpu_s) the CPU per cent of a core
    of broker and client and the broker's CPU seconds per million records."""
    wall = res.get("wall_s") or 0
    if wall:
        res["broker_cpu_pct"] = round(100 * res["broker_cpu_s"] / wall, 1)
        res["client_cpu_pct"] = round(100 * res.get("client_cpu_s", 0) / wall, 1)
    n = res.get("records") or 0
    if n:
        res["broker_cpu_s_per_million"] = round(res["broker_cpu_s"] / (n / 1e6), 3)
    return res


def median(rounds: list[dict]) -> dict:
    """The round with the median rate, with every round's rate kept (the machine is shared:
    a single round can be hit by someone else's build)."""
    ordered = sorted(rounds, key=lambda r: r.get("records_per_sec", 0))
    mid = dict(ordered[len(ordered) // 2])
    if len(rounds) > 1:
        mid["rounds_per_sec"] = [r.get("records_per_sec", 0) for r in rounds]
    return mid


def create_topic(bootstrap: str, name: str, partitions: int = 1) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 3})
    last: Exception | None = None
    for _ in range(20):
        try:
            admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])[name].result(30)
            return
        except Exception as e:  # broker still starting: retry
            if "already exists" in str(e).lower() or "TOPIC_ALREADY_EXISTS" in str(e):
                return
            last = e
            time.sleep(0.5)
    raise RuntimeError(f"cannot create topic {name}: {last}")


class Runner:
    """One system's experiments; `log` prints progress."""

    def __init__(self, system: System, scale: Scale, log: Callable[[str], None], profile_dir: Path | None) -> None:
        self.s, self.sc, self.log = system, scale, log
        self.kafka = system.protocol == "kafka"
        self.profile_dir = profile_dir
        self._n = 0

    def _dest(self, what: str) -> str:
        self._n += 1
        name = f"bench-{what}-{self._n}"
        if self.kafka:
            create_topic(self.s.bootstrap, name)
        return name

    def produce(self, dest: str, count: int, size: int, batch: int, seconds: float) -> dict:
        if self.kafka:
            return clients.loadgen("produce", self.s.bootstrap, dest, count, size,
                                   conf=clients.kafka_producer_conf(batch), duration=seconds,
                                   max_outstanding=2 * batch, timeout=seconds + 120)
        return clients.peer("produce", self.s.name, self.s.port, dest, count, size, batch, seconds,
                            timeout=seconds + 120)

    def consume(self, dest: str, count: int) -> dict:
        if self.kafka:
            r = clients.loadgen("consume", self.s.bootstrap, dest, count, timeout=300)
        else:
            r = clients.peer("consume", self.s.name, self.s.port, dest, count, seconds=240, timeout=300)
        if r["records"] < count:
            raise clients.ClientError(f"consumer got {r['records']} of {count} stored messages")
        return r

    def run(self) -> dict:
        sc = self.sc
        out: dict[str, Any] = {}
        time.sleep(1)
        out["rss_idle_mb"] = round(self.s.stats().rss_bytes / 2**20, 1)
        # Warm-up, not measured: JIT compilers, caches, connection setup.
        self.log("warm-up")
        self.produce(self._dest("warmup"), 10**9, 200, 50, 1 if sc.quick else 3)
        self._run(out)
        if self.s.name == "kafka-core" and self.profile_dir is not None:
            out["profile"] = self._profile()
        return out

    def _profile(self) -> dict:
        """py-spy the broker over a repeat of the batch-50 producer and consumer tests,
        after the measured steps so that sampling cannot perturb their figures."""
        self.log("py-spy profile (batch-50 produce + consume again, not measured)")
        prof = Profiler(self.s.pid, self.profile_dir / "kafka-core-pyspy.txt")  # type: ignore[operator]
        d = self._dest("profile")
        prof.start()
        try:
            n = self.produce(d, self.sc.b50_count, 200, 50, self.sc.b50_seconds)["records"]
            self.consume(d, n)
        finally:
            res = prof.stop()
        return res

    def _run(self, out: dict) -> None:
        sc = self.sc
        # 1) paper producer test, batch 1 and batch 50, and 2) the paper consumer test
        # (drain what batch 50 stored); `repeats` rounds, the median round is reported.
        b1, b50, cons = [], [], []
        for rep in range(sc.repeats):
            tag = f" (round {rep + 1}/{sc.repeats})" if sc.repeats > 1 else ""
            d = self._dest("b1")
            b1.append(measure(self.s, partial(self.produce, d, 10**9, 200, 1, sc.b1_seconds)))
            self.log(f"producer, batch 1{tag}: {b1[-1]['records_per_sec']:,.0f} msg/s")
            d50 = self._dest("b50")
            b50.append(measure(self.s, partial(self.produce, d50, sc.b50_count, 200, 50, sc.b50_seconds)))
            self.log(f"producer, batch 50{tag}: {b50[-1]['records_per_sec']:,.0f} msg/s")
            n = b50[-1]["records"]
            cons.append(measure(self.s, partial(self.consume, d50, n)))
            self.log(f"consumer (drain {n:,}){tag}: {cons[-1]['records_per_sec']:,.0f} msg/s")
        out["produce_b1"], out["produce_b50"], out["consume"] = median(b1), median(b50), median(cons)
        if self.kafka:
            out["drain"] = self._drain()
            out["awaited"] = self._awaited()
            out["perf_tool"] = self._perf_tool()
        if self.kafka and sc.java_tools:
            self._java_tools(out)
        # 3) end-to-end latency at a fixed rate
        self.log(f"end-to-end latency at {sc.e2e_rate}/s")
        count = int(sc.e2e_rate * sc.e2e_seconds)
        d = self._dest("e2e")
        if self.kafka:
            fn = lambda: clients.loadgen("e2e", self.s.bootstrap, d, count, 200, conf={"acks": "1"},  # noqa: E731
                                         rate=sc.e2e_rate, timeout=sc.e2e_seconds + 120)
        else:
            fn = lambda: clients.peer("e2e", self.s.name, self.s.port, d, count, 200, rate=sc.e2e_rate,  # noqa: E731
                                      timeout=sc.e2e_seconds + 120)
        out["e2e"] = measure(self.s, fn)
        self.log(f"  p50 {out['e2e']['p50_ms']:.2f} ms, p99 {out['e2e']['p99_ms']:.2f} ms")
        # 4) throughput vs record size (batch 50)
        out["sizes"] = []
        for size in sc.sizes:
            count = max(2000, min(2_000_000, sc.sweep_bytes // size))
            d = self._dest(f"size{size}")
            r = measure(self.s, partial(self.produce, d, count, size, 50, sc.sweep_seconds))
            r["record_size"] = size
            out["sizes"].append(r)
            self.log(f"record size {size}: {r['records_per_sec']:,.0f} msg/s, {r['mb_per_sec']:.1f} MB/s")
        # 5) throughput while the stored data grows
        out["stored"] = self._stored()
        # 6) CPU and RSS per million messages come from the steps above
        out["rss_end_mb"] = round(self.s.stats().rss_bytes / 2**20, 1)

    # librdkafka postpones a partition's fetches for fetch.queue.backoff.ms (1000 ms) once its local
    # queue holds queued.min.messages: the tuned drain shows the brokers without that client pause.
    DRAIN_TUNED = {"fetch.queue.backoff.ms": 10}

    def _drain(self) -> list[dict]:
        """Issue 11: one confluent-kafka consumer drains a topic of 1, 3, 6 and 50 partitions, several
        rounds each (the stall it reports is bimodal: the median and the worst round are both kept),
        with librdkafka's defaults and again with ``DRAIN_TUNED``."""
        sc, rows = self.sc, []
        for parts in sc.drain_partitions:
            self._n += 1
            d = f"bench-drain{parts}-{self._n}"
            create_topic(self.s.bootstrap, d, parts)
            self.produce_spread(d, sc.drain_records)
            row: dict[str, Any] = {"partitions": parts}
            for key, conf in (("", None), ("tuned_", self.DRAIN_TUNED)):
                rounds = [measure(self.s, partial(clients.drain, self.s.bootstrap, d, parts, sc.drain_records,
                                                  conf=conf))
                          for _ in range(sc.drain_rounds)]
                rates = sorted(r["records_per_sec"] for r in rounds)
                mid = median(rounds)
                if not key:
                    row |= mid
                row[f"{key}records_per_sec"] = mid["records_per_sec"]
                row[f"{key}worst_records_per_sec"] = rates[0]
                row[f"{key}round_records_per_sec"] = [round(r["records_per_sec"]) for r in rounds]
            rows.append(row)
            self.log(f"drain, {parts} partition(s): median {row['records_per_sec']:,.0f} msg/s, worst "
                     f"{row['worst_records_per_sec']:,.0f}; fetch.queue.backoff.ms=10: median "
                     f"{row['tuned_records_per_sec']:,.0f}")
        return rows

    def _awaited(self) -> dict:
        """Issue 11: awaited single sends and commits of kafka_client, confluent-kafka and aiokafka
        (kafka_bench.latency, in a process of its own), p50/p99 per client."""
        n, rounds = self.sc.awaited_count, self.sc.awaited_rounds
        self.log(f"awaited single sends and commits ({n} each, every client, {rounds} interleaved rounds)")
        try:
            res = clients.awaited(self.s.bootstrap, n, max(50, n // 10), rounds)
        except clients.ClientError as e:
            self.log(f"  awaited latency failed: {e}")
            return {"error": str(e)}
        for name, v in res.items():
            self.log(f"  {name}: p50 {v['p50_ms']:.3f} ms, p99 {v['p99_ms']:.3f} ms")
        return res

    def _perf_tool(self) -> dict:
        """Issue 11 §3: ``kafka-core perf produce|consume`` against a plain confluent-kafka loop with
        the same settings on this broker (kafka_bench.perf_tool)."""
        from .perf_tool import compare

        self.log("kafka-core perf produce/consume vs a confluent-kafka loop, same settings")
        try:
            return compare(self.s.bootstrap, self.sc.perf_tool_records, 200, self.sc.perf_tool_rounds,
                           lambda t: create_topic(self.s.bootstrap, t), self.log)
        except (clients.ClientError, RuntimeError) as e:
            self.log(f"  perf tool comparison failed: {e}")
            return {"error": str(e)}

    def produce_spread(self, dest: str, count: int) -> None:
        """``count`` 200-byte records over every partition of ``dest`` (the default partitioner)."""
        r = clients.loadgen("produce", self.s.bootstrap, dest, count, 200, partition=-1,
                            conf={"linger.ms": "5", "acks": "1"}, timeout=300)
        if r["records"] < count:
            raise clients.ClientError(f"produced {r['records']} of {count} records to {dest}")

    def _java_tools(self, out: dict) -> None:
        sc = self.sc
        self.log("ProducerPerformance (kafka-tools, pipelined, acks=1, defaults)")
        d = self._dest("pp")
        try:
            out["producer_perf"] = measure(self.s, lambda: clients.producer_perf(
                self.s.bootstrap, d, sc.java_tools_count, 200, {"acks": "1"}))
            self.log(f"  {out['producer_perf']['records_per_sec']:,.0f} msg/s")
            self.log("ConsumerPerformance (kafka-tools, consumer group)")
            out["consumer_perf"] = measure(self.s, lambda: clients.consumer_perf(
                self.s.bootstrap, d, out["producer_perf"]["records"]))
            self.log(f"  {out['consumer_perf']['records_per_sec']:,.0f} msg/s")
        except (clients.ClientError, OSError) as e:
            self.log(f"  kafka-tools failed (optional): {e}")
            out.setdefault("errors", []).append(f"kafka-tools: {e}")

    def _stored(self) -> list[dict]:
        sc = self.sc
        gb = sc.store_gb_kafka if self.kafka else sc.store_gb_peer
        per_chunk = int(gb * 1e9 / sc.store_chunks / sc.store_record)
        d = self._dest("store")
        stored, rows = 0, []
        for i in range(sc.store_chunks):
            r = measure(self.s, lambda: self.produce(d, per_chunk, sc.store_record, 50, sc.store_chunk_seconds))
            stored += r["records"] * sc.store_record
            r["stored_gb"] = round(stored / 1e9, 3)
            rows.append(r)
            self.log(f"stored {r['stored_gb']:.2f} GB: {r['mb_per_sec']:.1f} MB/s "
                     f"(chunk {i + 1}/{sc.store_chunks}), broker RSS {r['broker_peak_rss_mb']:.0f} MiB")
        return rows


def _func(frame: str) -> str:
    """'fn (path:123)' -> 'fn (path)': one entry per function, not per line."""
    return re.sub(r":\d+\)$", ")", frame)


class Profiler:
    """py-spy record --native of the kafka-core broker over part of the run; top functions.
    --native shows the C core, uvloop and system calls, which otherwise all count as self
    time of the event loop's frame; it pauses the broker to unwind, so it runs only in an
    unmeasured pass."""

    def __init__(self, pid: int, out: Path) -> None:
        self.pid, self.out = pid, out
        self.p: subprocess.Popen | None = None
        self.raw = Path(tempfile.mkdtemp(prefix="pyspy-")) / "raw.txt"

    def start(self) -> None:
        exe = shutil.which("py-spy")
        if not exe:
            return
        self.p = procs.register(subprocess.Popen(
            [exe, "record", "--pid", str(self.pid), "--rate", "200", "--native", "--format", "raw",
             "-o", str(self.raw)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True))

    def stop(self) -> dict:
        if self.p is None:
            return {"error": "py-spy not installed (pip install py-spy)"}
        if self.p.poll() is None:
            os.killpg(self.p.pid, signal.SIGINT)
        try:
            _, err = self.p.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            procs.terminate(self.p)
            err = b""
        procs.forget(self.p)
        if not self.raw.exists():
            return {"error": f"py-spy wrote nothing: {err.decode(errors='replace')[-500:]}"}
        try:
            shutil.copy(self.raw, self.out)
            return summarize_profile(self.out) | {"native": True}
        except OSError as e:
            return {"error": f"py-spy output: {e}"}
        finally:
            shutil.rmtree(self.raw.parent, ignore_errors=True)


def summarize_profile(raw: Path) -> dict:
    """Top functions from py-spy's raw (collapsed stacks) output."""
    own: Counter[str] = Counter()  # self time by source line
    own_fn: Counter[str] = Counter()  # self time by function
    total: Counter[str] = Counter()  # inclusive time by function
    samples = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, n = line.rpartition(" ")
        if not n.isdigit():
            continue
        frames = stack.split(";")
        k = int(n)
        samples += k
        own[frames[-1]] += k
        own_fn[_func(frames[-1])] += k
        for f in {_func(f) for f in frames[1:]}:
            total[f] += k

    def top(c: Counter[str], n: int) -> list[tuple[str, float]]:
        return [(f, round(100 * v / samples, 1)) for f, v in c.most_common(n)] if samples else []

    return {"samples": samples, "file": raw.name, "top_self": top(own, 12), "top_self_func": top(own_fn, 12),
            "top_total": top(total, 15)}
