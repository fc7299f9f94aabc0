"""report.md, results.json and PNG plots from the runner's results."""

from __future__ import annotations

import json
from pathlib import Path

from .paths import RESULTS

REF = "kafka-core"
PEERS_ORDER = ["kafka-core", "apache-kafka", "rabbitmq", "activemq"]

# (label, path into a system's results, higher_is_better, target ratio to Apache Kafka)
TARGETS = [
    ("producer throughput, batch 50", ("produce_b50", "records_per_sec"), True, 1.0),
    ("producer throughput, batch 1", ("produce_b1", "records_per_sec"), True, 1.0),
    ("consumer throughput", ("consume", "records_per_sec"), True, 1.0),
    ("p99 end-to-end latency", ("e2e", "p99_ms"), False, 1.0),
    ("broker peak RSS", ("peak_rss_mb",), False, 0.25),
]


def get(d: dict, path: tuple[str, ...]) -> float | None:
    for p in path:
        if not isinstance(d, dict) or p not in d:
            return None
        d = d[p]
    return d if isinstance(d, (int, float)) else None


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def fmt(v: float | None, digits: int = 0) -> str:
    if v is None:
        return "n/a"
    return f"{v:,.{digits}f}"


def fr(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.2f}x"


def bottleneck(r: dict) -> str:
    b, c = r.get("broker_cpu_pct"), r.get("client_cpu_pct")
    if b is None or c is None:
        return "n/a"
    side = "broker" if b >= c else "client"
    if b + c >= 170:
        return f"{side} (both cores busy)"
    if max(b, c) < 75:
        return "round trips (neither side CPU-bound)"
    return f"{side} CPU"


def derive(results: dict) -> None:
    """Per-system figures that combine several steps (peak RSS over the run)."""
    for r in results["systems"].values():
        peaks = [v.get("broker_peak_rss_mb") for v in r.values() if isinstance(v, dict)]
        peaks += [x.get("broker_peak_rss_mb") for k in ("sizes", "stored") for x in r.get(k, [])]
        found: list[float] = [p for p in peaks if p]
        if found:
            r["peak_rss_mb"] = max(found)


def systems_in(results: dict) -> list[str]:
    return [s for s in PEERS_ORDER if s in results["systems"] and "failed" not in results["systems"][s]]


def throughput_table(results: dict, names: list[str], key: str, title: str) -> list[str]:
    ref = results["systems"].get(REF, {}).get(key, {})
    lines = [f"### {title}", "",
             "| system | client | msg/s | MB/s | broker CPU % of a core | client CPU % | bottleneck | "
             "kafka-core / system |", "|---|---|---:|---:|---:|---:|---|---:|"]
    for n in names:
        r = results["systems"][n].get(key)
        if not r:
            continue
        lines.append(f"| {n} | {r.get('client', '')} | {fmt(r.get('records_per_sec'))} | "
                     f"{fmt(r.get('mb_per_sec'), 1)} | {fmt(r.get('broker_cpu_pct'))} | "
                     f"{fmt(r.get('client_cpu_pct'))} | {bottleneck(r)} | "
                     f"{fr(ratio(ref.get('records_per_sec'), r.get('records_per_sec')))} |")
    return lines + [""]


def drain_rows(r: dict) -> dict[int, dict]:
    return {row["partitions"]: row for row in r.get("drain") or []}


def drain_table(results: dict, names: list[str]) -> list[str]:
    """Issue 11's drain: one confluent-kafka consumer, median and worst round per partition count,
    with librdkafka's defaults and (when measured) with ``fetch.queue.backoff.ms=10``."""
    if not names:
        return []
    L = _drain_part(results, names, "", "### Drain by partition count (confluent-kafka `assign` from 0, "
                    "`fetch.max.bytes=52428800`)",
                    "Median and worst round, messages/s (200 B records); the ratio is kafka-core's median over "
                    "Apache Kafka's. A worst round far below the median is a stall (issue 11).")
    S = results["systems"]
    if any("tuned_records_per_sec" in r for n in names for r in drain_rows(S[n]).values()):
        L += _drain_part(results, names, "tuned_", "#### The same drain with `fetch.queue.backoff.ms=10`",
                         "librdkafka postpones a partition's fetches for `fetch.queue.backoff.ms` (1000 ms) once "
                         "its local queue holds `queued.min.messages` (100,000): the faster the broker answers, "
                         "the sooner that happens, and a drain of 200,000 records then takes about a second on "
                         "either broker. With a 10 ms backoff the brokers are compared without that pause.")
    return L


def _drain_part(results: dict, names: list[str], key: str, title: str, note: str) -> list[str]:
    S = results["systems"]
    both = REF in names and "apache-kafka" in names
    counts = sorted({p for n in names for p in drain_rows(S[n])})
    L = [title, "", note, "",
         "| partitions | " + " | ".join(f"{n} median | {n} worst" for n in names) + (" | ratio |" if both else " |"),
         "|---:|" + "---:|---:|" * len(names) + ("---:|" if both else "")]
    for p in counts:
        cells = []
        for n in names:
            row = drain_rows(S[n]).get(p, {})
            cells += [fmt(row.get(f"{key}records_per_sec")), fmt(row.get(f"{key}worst_records_per_sec"))]
        line = f"| {p} | " + " | ".join(cells) + " |"
        if both:
            mine = drain_rows(S[REF]).get(p, {}).get(f"{key}records_per_sec")
            theirs = drain_rows(S["apache-kafka"]).get(p, {}).get(f"{key}records_per_sec")
            line += f" {fr(ratio(mine, theirs))} |"
        L.append(line)
    return L + [""]


AWAITED_LABELS = {
    "kc_aio_send": "kafka_client `await AIOProducer.send`", "kc_sync_send": "kafka_client `Producer.send().result()`",
    "confluent_send": "confluent-kafka `produce` + `flush`", "aiokafka_send": "aiokafka `send_and_wait`",
    "kc_aio_commit": "kafka_client `await AIOConsumer.commit`", "confluent_commit": "confluent-kafka `commit(asynchronous=False)`",
    "aiokafka_commit": "aiokafka `commit`"}
AWAITED_PEER = {"kc_aio_send": "confluent_send", "kc_sync_send": "confluent_send", "aiokafka_send": "confluent_send",
                "kc_aio_commit": "confluent_commit", "aiokafka_commit": "confluent_commit"}


def awaited_rows(r: dict) -> dict[str, dict]:
    a = r.get("awaited") or {}
    return {} if "error" in a else a


def awaited_table(results: dict, names: list[str]) -> list[str]:
    """Issue 11: awaited single sends and commits, p50/p99 per client and broker, with ratios:
    the client's p50 and p99 over confluent-kafka's on the same (kafka-core) broker, the kafka-core
    broker's p99 over Apache Kafka's for the same client, and the client process's CPU per
    operation on kafka-core (steadier than wall time on a shared machine)."""
    S = results["systems"]
    names = [n for n in names if awaited_rows(S[n])]
    if not names:
        return []
    ops = [o for o in AWAITED_LABELS if any(o in awaited_rows(S[n]) for n in names)]
    both = REF in names and "apache-kafka" in names
    ref_name = REF if REF in names else names[0]
    L = ["### Awaited single sends and commits (`kafka_bench.latency`)", "",
         "One operation at a time, each waited for: a 100 B record with acks=all and linger 0, or one "
         "offset committed. Milliseconds, medians of interleaved rounds. \"p50 / p99 vs confluent\" is the "
         f"client's p50 and p99 over confluent-kafka's on the {ref_name} broker (issue 11 target: at most "
         "1.0x for sends)"
         + ("; \"broker p99\" is kafka-core's p99 over Apache Kafka's for the same client" if both else "")
         + f"; \"CPU\" is the client process's CPU microseconds per operation on {ref_name}.", "",
         "| operation | " + " | ".join(f"{n} p50 | {n} p99" for n in names) + " | p50 / p99 vs confluent |"
         + (" broker p99 |" if both else "") + " CPU µs |",
         "|---|" + "---:|---:|" * len(names) + "---:|" + ("---:|" if both else "") + "---:|"]
    ref = awaited_rows(S[ref_name])
    for o in ops:
        cells = []
        for n in names:
            v = awaited_rows(S[n]).get(o, {})
            cells += [fmt(v.get("p50_ms"), 3), fmt(v.get("p99_ms"), 3)]
        peer = AWAITED_PEER.get(o)
        mine, theirs = ref.get(o, {}), ref.get(peer, {}) if peer else {}
        vs = (f"{fr(ratio(mine.get('p50_ms'), theirs.get('p50_ms')))} / "
              f"{fr(ratio(mine.get('p99_ms'), theirs.get('p99_ms')))}") if peer else ""
        line = f"| {AWAITED_LABELS[o]} | " + " | ".join(cells) + f" | {vs} |"
        if both:
            line += f" {fr(ratio(awaited_rows(S[REF]).get(o, {}).get('p99_ms'), awaited_rows(S['apache-kafka']).get(o, {}).get('p99_ms')))} |"
        line += f" {fmt(mine.get('cpu_us'), 0)} |"
        L.append(line)
    return L + [""]


def perf_tool_table(results: dict, names: list[str]) -> list[str]:
    """Issue 11 §3: the perf tool over a plain confluent-kafka loop with the same settings, per broker."""
    S = results["systems"]
    names = [n for n in names if (S[n].get("perf_tool") or {}).get("produce")]
    if not names:
        return []
    L = ["### `kafka-core perf` vs a confluent-kafka loop (`kafka_bench.perf_tool`)", "",
         "The same settings given to both clients, on the same broker, alternating; median records/s of "
         "200 B records, and the ratio perf tool / confluent-kafka (issue 11 target: at least 1.0x).", "",
         "| broker | step | settings | kafka-core perf | confluent-kafka loop | ratio |", "|---|---|---|---:|---:|---:|"]
    for n in names:
        pt = S[n]["perf_tool"]
        for step in ("produce", "consume"):
            for setting, row in pt.get(step, {}).items():
                L.append(f"| {n} | {step} | {setting} | {fmt(row['kafka_core_perf'], 0)} | "
                         f"{fmt(row['confluent_loop'], 0)} | {fr(row['ratio'])} |")
    return L + [""]


def microbench_lines() -> list[str]:
    files = sorted(RESULTS.glob("*.json"))
    if not files:
        return ["No core microbenchmark results (run `pytest benches/` to produce them).", ""]
    latest: dict[str, tuple[str, dict]] = {}
    for f in files:  # newest file wins for each benchmark name
        try:
            data = json.loads(f.read_text())
        except (OSError, ValueError):
            continue
        for b in data.get("benchmarks", []):
            latest[b.get("fullname", b.get("name"))] = (f.name, b)
    lines = ["From the newest pytest-benchmark JSON files in benches/results/ (`pytest benches/`).", "",
             "| benchmark | mean | ops/s | GB/s | file |", "|---|---:|---:|---:|---|"]
    for name, (fname, b) in sorted(latest.items()):
        st = b.get("stats", {})
        mean = st.get("mean")
        gbs = b.get("extra_info", {}).get("gb_per_s") or b.get("extra_info", {}).get("GB/s")
        mean_s = "n/a" if mean is None else (f"{mean * 1e6:,.2f} µs" if mean < 1e-3 else f"{mean * 1e3:,.2f} ms")
        lines.append(f"| {b.get('name', name)} | {mean_s} | {fmt(st.get('ops'))} | "
                     f"{fmt(gbs, 2) if gbs else ''} | {fname} |")
    return lines + [""]


def render(results: dict) -> str:
    derive(results)
    names = systems_in(results)
    S = results["systems"]
    m = results["machine"]
    L = ["# kafka-core system benchmark", "",
         f"- date: {results['date']}; mode: {'--quick' if results['quick'] else 'full'}; "
         f"total {results.get('seconds', 0):.0f} s",
         f"- command: `{results['command']}`",
         f"- machine: {m['cpus']} cores ({m['cpu_model']}), {m['memory_gib']} GiB, Linux {m['kernel']}, "
         f"Python {m['python']}. The cores are shared with other work on this machine, and every client "
         "runs on the same 2 cores as the broker, so absolute figures are low and noisy; the ratios "
         "are the point.", ""]
    if results.get("errors"):
        L += ["## Failures", ""] + [f"- **{k}**: {v.splitlines()[0]}" for k, v in results["errors"].items()] + [""]
    L += ["## Systems", "", "| system | version | client | settings | start s | idle RSS MiB |",
          "|---|---|---|---|---:|---:|"]
    for n in PEERS_ORDER:
        if n not in S:
            continue
        r = S[n]
        sets = "; ".join(f"{k}: {v}" for k, v in (r.get("settings") or {}).items())
        L.append(f"| {n} | {r.get('version', '')} | {r.get('client', '')} | {sets} | "
                 f"{fmt(r.get('start_seconds'), 1)} | {fmt(r.get('rss_idle_mb'))} |")
    L.append("")
    # Targets
    if REF in names and "apache-kafka" in names:
        L += ["## Targets (kafka-core / Apache Kafka, same run)", "",
              "| target | kafka-core | Apache Kafka | ratio | goal | result |", "|---|---:|---:|---:|---|---|"]
        for label, path, higher, goal in TARGETS:
            a, b = get(S[REF], path), get(S["apache-kafka"], path)
            rt = ratio(a, b)
            ok = None if rt is None else (rt >= goal if higher else rt <= goal)
            L.append(f"| {label} | {fmt(a, 2 if not higher else 0)} | {fmt(b, 2 if not higher else 0)} | {fr(rt)} | "
                     f"{'>=' if higher else '<='} {goal}x | {'n/a' if ok is None else ('pass' if ok else '**miss**')} |")
        L.append("")
    L += ["## 1. Producer (paper test: 200-byte messages, acks=1)", "",
          "Batch B: B messages per request and one request in flight; the producer waits for the broker's "
          "acknowledgement of each round trip (Kafka: `batch.num.messages=B`, "
          "`max.in.flight.requests.per.connection=1`, `acks=1`; RabbitMQ: B persistent publishes then "
          "`waitForConfirms`; ActiveMQ: a synchronous persistent send for B=1, a transaction committed "
          "every B sends for B=50). Batch 1 runs for a fixed time, batch 50 for a fixed count.", ""]
    L += throughput_table(results, names, "produce_b1", "Batch 1")
    L += throughput_table(results, names, "produce_b50", "Batch 50")
    L += ["## 2. Consumer (paper test: drain the stored batch-50 messages, one consumer)", "",
          "Kafka: kc_loadgen assigns partition 0 from the beginning (no consumer group); RabbitMQ: "
          "prefetch 1000, multiple-ack every 100; ActiveMQ: DUPS_OK_ACKNOWLEDGE, prefetch 1000.", ""]
    L += throughput_table(results, names, "consume", "Consumer")
    L += drain_table(results, [n for n in names if S[n].get("drain")])
    L += awaited_table(results, names)
    L += perf_tool_table(results, names)
    if any("producer_perf" in S[n] or "consumer_perf" in S[n] for n in names):
        L += ["## Kafka's own perf tools (kafka-tools)", "",
              "ProducerPerformance with the Java producer's defaults and `acks=1` (pipelined, "
              "batch.size 16 KiB, linger 5 ms); ConsumerPerformance uses a consumer group.", ""]
        L += throughput_table(results, [n for n in names if "producer_perf" in S[n]], "producer_perf",
                              "ProducerPerformance")
        L += throughput_table(results, [n for n in names if "consumer_perf" in S[n]], "consumer_perf",
                              "ConsumerPerformance")
    for n in names:
        for e in S[n].get("errors", []):
            L.append(f"- {n}: {e}")
    # Latency
    L += ["## 3. End-to-end latency (produce -> consume, 200 B)", ""]
    ref = S.get(REF, {}).get("e2e", {})
    L += ["| system | rate msg/s | received | p50 ms | p99 ms | p99.9 ms | max ms | kafka-core p99 / system p99 |",
          "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for n in names:
        r = S[n].get("e2e")
        if r:
            L.append(f"| {n} | {fmt(results['scale']['e2e_rate'])} | {fmt(r.get('records'))} | "
                     f"{fmt(r.get('p50_ms'), 2)} | {fmt(r.get('p99_ms'), 2)} | {fmt(r.get('p999_ms'), 2)} | "
                     f"{fmt(r.get('max_ms'), 2)} | {fr(ratio(ref.get('p99_ms'), r.get('p99_ms')))} |")
    L += ["", "Kafka: producer `linger.ms=0`, `acks=1`; consumer in the same process (kc_loadgen e2e). "
          "Peers: the producer does not wait for each confirm (RabbitMQ confirms streamed, ActiveMQ "
          "async send); the consumer runs in the same JVM.", ""]
    # Record size
    L += ["## 4. Throughput vs record size (batch 50, acks=1)", ""]
    sizes = results["scale"]["sizes"]
    L += ["| record size | " + " | ".join(f"{n} MB/s (msg/s)" for n in names) + " | " +
          " | ".join(f"kafka-core / {n}" for n in names if n != REF) + " |",
          "|---:|" + "---:|" * (len(names) + len([n for n in names if n != REF]))]
    for size in sizes:
        row = {n: next((x for x in S[n].get("sizes", []) if x["record_size"] == size), None) for n in names}
        cells = [f"{fmt(r['mb_per_sec'], 1)} ({fmt(r['records_per_sec'])})" if r else "n/a" for r in row.values()]
        refr = row.get(REF)
        rts = [fr(ratio(refr and refr["mb_per_sec"], x and x["mb_per_sec"])) for n, x in row.items() if n != REF]
        L.append(f"| {size:,} B | " + " | ".join(cells) + " | " + " | ".join(rts) + " |")
    L.append("")
    # Stored data
    L += ["## 5. Throughput while the stored data grows", "",
          f"{results['scale']['store_record']:,}-byte records, batch 50, produced in "
          f"{results['scale']['store_chunks']} chunks into one topic/queue; each row is one chunk.", ""]
    for n in names:
        rows = S[n].get("stored", [])
        if rows:
            L.append(f"- **{n}**: " + ", ".join(
                f"{r['stored_gb']:.2f} GB: {r['mb_per_sec']:.0f} MB/s (RSS {r['broker_peak_rss_mb']:.0f} MiB)"
                for r in rows))
    L.append("")
    # Resources
    L += ["## 6. Broker CPU and memory", "",
          "| system | CPU s / 1M msgs produce b50 | CPU s / 1M msgs consume | CPU s / 1M msgs batch 1 | "
          "idle RSS MiB | peak RSS MiB | kafka-core peak RSS / system |", "|---|---:|---:|---:|---:|---:|---:|"]
    for n in names:
        r = S[n]
        L.append(f"| {n} | {fmt(get(r, ('produce_b50', 'broker_cpu_s_per_million')), 2)} | "
                 f"{fmt(get(r, ('consume', 'broker_cpu_s_per_million')), 2)} | "
                 f"{fmt(get(r, ('produce_b1', 'broker_cpu_s_per_million')), 2)} | {fmt(r.get('rss_idle_mb'))} | "
                 f"{fmt(r.get('peak_rss_mb'))} | {fr(ratio(S.get(REF, {}).get('peak_rss_mb'), r.get('peak_rss_mb')))} |")
    L += ["", "CPU is user+system time of the broker's whole process tree (/proc), RSS is sampled every "
          "0.25 s; page cache is not counted.", ""]
    # Profile
    prof = S.get(REF, {}).get("profile")
    if prof:
        L += ["## Where kafka-core's time goes (py-spy)", ""]
        if prof.get("error"):
            L += [f"py-spy: {prof['error']}", ""]
        else:
            L += [f"py-spy record of the broker over a repeat of the batch-50 producer and consumer tests "
                  "after the measured steps "
                  f"({prof['samples']} samples, raw stacks in {prof['file']}).", "",
                  ("Native frames (`--native`: libc system calls, uvloop, the C core) are included; "
                   "`epoll_pwait` is the event loop waiting for the client." if prof.get("native") else
                   "Python frames only: self time in the event loop's `run_broker` frame is native code "
                   "under it (uvloop, system calls, the C core)."), "",
                  "| source line (self time) | % |", "|---|---:|"]
            L += [f"| `{f}` | {p} |" for f, p in prof["top_self"]]
            L += ["", "| function (self time) | % |", "|---|---:|"]
            L += [f"| `{f}` | {p} |" for f, p in prof.get("top_self_func", [])]
            L += ["", "| function (inclusive) | % |", "|---|---:|"]
            L += [f"| `{f}` | {p} |" for f, p in prof["top_total"]]
            L.append("")
    L += ["## Core microbenchmarks", ""] + microbench_lines()
    L += ["## Plots", ""] + [f"![{p}]({p})" for p in results.get("plots", [])] + [""]
    return "\n".join(L)


def make_plots(results: dict, out: Path) -> list[str]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    S, names, made = results["systems"], systems_in(results), []
    if not names:
        return []

    def save(fig, name: str) -> None:
        fig.tight_layout()
        fig.savefig(out / name, dpi=110)
        plt.close(fig)
        made.append(name)

    fig, ax = plt.subplots(figsize=(8, 4.5))
    keys = [("produce_b1", "produce batch 1"), ("produce_b50", "produce batch 50"), ("consume", "consume")]
    w = 0.8 / len(names)
    for i, n in enumerate(names):
        vals = [get(S[n], (k, "records_per_sec")) or 0 for k, _ in keys]
        ax.bar([x + i * w for x in range(len(keys))], vals, w, label=n)
    ax.set_xticks([x + w * (len(names) - 1) / 2 for x in range(len(keys))], [lbl for _, lbl in keys])
    ax.set_yscale("log")
    ax.set_ylabel("messages/s (200 B)")
    ax.set_title("Paper producer/consumer tests")
    ax.legend()
    save(fig, "throughput.png")

    fig, ax = plt.subplots(figsize=(8, 4.5))
    pk = [("p50_ms", "p50"), ("p99_ms", "p99"), ("p999_ms", "p99.9")]
    for i, n in enumerate(names):
        vals = [get(S[n], ("e2e", k)) or 0 for k, _ in pk]
        ax.bar([x + i * w for x in range(len(pk))], vals, w, label=n)
    ax.set_xticks([x + w * (len(names) - 1) / 2 for x in range(len(pk))], [lbl for _, lbl in pk])
    ax.set_yscale("log")
    ax.set_ylabel("ms")
    ax.set_title(f"End-to-end latency at {results['scale']['e2e_rate']} msg/s")
    ax.legend()
    save(fig, "latency.png")

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4.5))
    for n in names:
        rows = S[n].get("sizes", [])
        if rows:
            xs = [r["record_size"] for r in rows]
            a1.plot(xs, [r["mb_per_sec"] for r in rows], marker="o", label=n)
            a2.plot(xs, [r["records_per_sec"] for r in rows], marker="o", label=n)
    for a, lbl in ((a1, "MB/s"), (a2, "messages/s")):
        a.set_xscale("log")
        a.set_yscale("log")
        a.set_xlabel("record size (bytes)")
        a.set_ylabel(lbl)
        a.legend()
    a1.set_title("Producer throughput vs record size (batch 50)")
    save(fig, "record_size.png")

    fig, ax = plt.subplots(figsize=(8, 4.5))
    for n in names:
        rows = S[n].get("stored", [])
        if rows:
            ax.plot([r["stored_gb"] for r in rows], [r["mb_per_sec"] for r in rows], marker="o", label=n)
    ax.set_xlabel("data stored (GB)")
    ax.set_ylabel("producer MB/s")
    ax.set_ylim(bottom=0)
    ax.set_title("Throughput while the stored data grows")
    ax.legend()
    save(fig, "stored_data.png")

    drained = [n for n in names if S[n].get("drain")]
    if drained:
        fig, ax = plt.subplots(figsize=(8, 4.5))
        counts = sorted({p for n in drained for p in drain_rows(S[n])})
        w = 0.8 / len(drained)
        for i, n in enumerate(drained):
            rows = drain_rows(S[n])
            xs = [x + i * w for x in range(len(counts))]
            ax.bar(xs, [rows.get(p, {}).get("records_per_sec", 0) for p in counts], w, label=f"{n} median")
            ax.scatter(xs, [rows.get(p, {}).get("worst_records_per_sec", 0) for p in counts], marker="v",
                       color="black", zorder=3, label="worst round" if i == 0 else None)
        ax.set_xticks([x + w * (len(drained) - 1) / 2 for x in range(len(counts))], [str(p) for p in counts])
        ax.set_xlabel("partitions")
        ax.set_ylabel("messages/s (200 B)")
        ax.set_title("Drain by partition count (one confluent-kafka consumer)")
        ax.legend()
        save(fig, "drain.png")

    awaited = [n for n in names if awaited_rows(S[n])]
    if awaited:
        fig, ax = plt.subplots(figsize=(10, 4.5))
        ops = [o for o in AWAITED_LABELS if any(o in awaited_rows(S[n]) for n in awaited)]
        w = 0.8 / len(awaited)
        for i, n in enumerate(awaited):
            rows = awaited_rows(S[n])
            xs = [x + i * w for x in range(len(ops))]
            ax.bar(xs, [rows.get(o, {}).get("p99_ms", 0) for o in ops], w, label=f"{n} broker, p99")
            ax.scatter(xs, [rows.get(o, {}).get("p50_ms", 0) for o in ops], marker="_", s=200, color="black",
                       zorder=3, label="p50" if i == 0 else None)
        ax.set_xticks([x + w * (len(awaited) - 1) / 2 for x in range(len(ops))], ops, rotation=20)
        ax.set_ylabel("ms per awaited operation")
        ax.set_title("Awaited single sends (acks=all, linger 0) and commits")
        ax.legend()
        save(fig, "awaited.png")

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4.5))
    a1.bar(names, [get(S[n], ("produce_b50", "broker_cpu_s_per_million")) or 0 for n in names], 0.4,
           label="produce b50")
    a1.bar([i + 0.4 for i in range(len(names))],
           [get(S[n], ("consume", "broker_cpu_s_per_million")) or 0 for n in names], 0.4, label="consume")
    a1.set_ylabel("broker CPU s per million messages")
    a1.legend()
    a2.bar(names, [S[n].get("peak_rss_mb") or 0 for n in names])
    a2.set_ylabel("broker peak RSS (MiB)")
    save(fig, "resources.png")
    return made


def write_all(results: dict, out: Path, plots: bool = True) -> None:
    derive(results)
    if plots:
        try:
            results["plots"] = make_plots(results, out)
        except Exception as e:  # a plot must not lose the measured figures
            results.setdefault("errors", {})["plots"] = f"plots failed: {e}"
    (out / "results.json").write_text(json.dumps(results, indent=2, default=str))
    (out / "report.md").write_text(render(results))



# ---- kafka-core bench --cluster ---------------------------------------------------------------

CLUSTER_CASES = [("rf1_acks1", "RF=1, acks=1"), ("rf3_acks1", "RF=3, acks=1"),
                 ("rf3_acksall", "RF=3, acks=all, min.insync.replicas=2")]
APACHE = "apache-kafka"


def _rounds(r: dict, key: str, digits: int = 0) -> str:
    vals = r.get(key)
    if not isinstance(vals, list) or len(vals) < 2:
        return ""
    return ", ".join("timeout" if v is None else f"{v:,.{digits}f}" for v in vals)


def render_cluster(results: dict) -> str:
    S = results["systems"]
    names = [n for n in PEERS_ORDER if n in S and "failed" not in S[n]]
    both = REF in names and APACHE in names
    sc = results["scale"]
    m = results["machine"]
    L = ["# kafka-core cluster benchmark (3 brokers on ZooKeeper)", "",
         f"- date: {results['date']}; mode: {'--quick' if results['quick'] else 'full'}; "
         f"total {results.get('seconds', 0):.0f} s",
         f"- command: `{results['command']}`",
         f"- machine: {m['cpus']} cores ({m['cpu_model']}), {m['memory_gib']} GiB, Linux {m['kernel']}, "
         f"Python {m['python']}. All three brokers, ZooKeeper and the client share these cores (the "
         "two clusters run one after the other, never together), and the machine is shared with other "
         "work: absolute figures are low and noisy; the ratios within one run are the point.",
         f"- {sc['rounds']} round(s) of each produce case ({sc['produce_seconds']:g} s each, a new topic per "
         f"round) and {sc['failover_rounds']} failover round(s); the median round is reported.", ""]
    if results.get("errors"):
        L += ["## Failures", ""] + [f"- **{k}**: {v.splitlines()[0]}" for k, v in results["errors"].items()] + [""]
    L += ["## Clusters", "", "| system | version | brokers | settings | start s | idle RSS MiB (3 brokers) |",
          "|---|---|---:|---|---:|---:|"]
    for n in PEERS_ORDER:
        if n in S:
            r = S[n]
            sets = "; ".join(f"{k}: {v}" for k, v in (r.get("settings") or {}).items())
            L.append(f"| {n} | {r.get('version', '')} | {r.get('brokers', '')} | {sets} | "
                     f"{fmt(r.get('start_seconds'), 1)} | {fmt(r.get('rss_idle_mb'))} |")
    L.append("")
    if both:
        L += ["## Summary (kafka-core / Apache Kafka 3.9.1, same run)", "",
              "| measure | kafka-core | Apache Kafka | ratio | better |", "|---|---:|---:|---:|---|"]
        for key, label in CLUSTER_CASES:
            a, b = get(S[REF], (key, "records_per_sec")), get(S[APACHE], (key, "records_per_sec"))
            L.append(f"| produce msg/s, {label} | {fmt(a)} | {fmt(b)} | {fr(ratio(a, b))} | higher |")
        for key, label in (("p0_s", "failover: partition 0 acks=all again (s)"),
                           ("all_s", "failover: every partition acks=all again (s)")):
            a, b = get(S[REF], ("failover", key)), get(S[APACHE], ("failover", key))
            L.append(f"| {label} | {fmt(a, 2)} | {fmt(b, 2)} | {fr(ratio(a, b))} | lower |")
        L.append("")
    L += ["## 1. Produce throughput (200 B records, 6 partitions)", "",
          "kc_loadgen (librdkafka) spreads the records over the 6 partitions with the default partitioner, "
          "`linger.ms=5`, pipelined (at most 20,000 unacknowledged); RF=3 topics have a replica on every "
          "broker. Broker CPU is the sum over the three brokers.", "",
          "| case | system | msg/s | MB/s | p99 ms | broker CPU % of a core (3 brokers) | client CPU % | "
          "broker CPU s / 1M msgs | rounds msg/s | kafka-core / Apache |",
          "|---|---|---:|---:|---:|---:|---:|---:|---|---:|"]
    for key, label in CLUSTER_CASES:
        ref = S.get(REF, {}).get(key, {})
        for n in names:
            r = S[n].get(key)
            if not r:
                continue
            L.append(f"| {label} | {n} | {fmt(r.get('records_per_sec'))} | {fmt(r.get('mb_per_sec'), 1)} | "
                     f"{fmt(r.get('p99_ms'), 1)} | {fmt(r.get('broker_cpu_pct'))} | {fmt(r.get('client_cpu_pct'))} | "
                     f"{fmt(r.get('broker_cpu_s_per_million'), 2)} | {_rounds(r, 'rounds_records_per_sec')} | "
                     f"{fr(ratio(ref.get('records_per_sec'), r.get('records_per_sec'))) if n != REF else ''} |")
    L.append("")
    L += ["## 2. Failover after SIGKILL of partition 0's leader", "",
          f"A confluent-kafka producer (`acks=all`, not idempotent) sends a {sc['record_size']} B record every "
          f"{sc['send_interval_ms']:g} ms round robin over the 6 partitions of an RF=3 topic with "
          "`min.insync.replicas=2`; the leader of partition 0 is SIGKILLed. The time is from the kill to the "
          "first acknowledgement of a record sent after it: for partition 0, and for the slowest partition "
          "(every partition had the dead broker in its ISR). Both clusters run with "
          "`zookeeper.session.timeout.ms=6000` and `replica.lag.time.max.ms=10000`. \"znode gone\" is when "
          "ZooKeeper deleted the killed broker's `/brokers/ids` node (its session expired: the failure "
          "detection part of the time); the rest is election, LeaderAndIsr and the client's metadata refresh. "
          "When the killed broker was the controller, a new controller is elected first. The broker is "
          "restarted between rounds.", "",
          "| system | partition 0 s (median) | all partitions s (median) | rounds, partition 0 | rounds, all | "
          "znode gone s (rounds) | killed the controller | delivery errors | kafka-core / Apache (partition 0) |",
          "|---|---:|---:|---|---|---|---|---:|---:|"]
    ref_fo = S.get(REF, {}).get("failover", {})
    for n in names:
        f = S[n].get("failover")
        if not f:
            continue
        L.append(f"| {n} | {fmt(f.get('p0_s'), 2)} | {fmt(f.get('all_s'), 2)} | "
                 f"{', '.join('timeout' if v is None else f'{v:.2f}' for v in f.get('rounds_p0_s', []))} | "
                 f"{', '.join('timeout' if v is None else f'{v:.2f}' for v in f.get('rounds_all_s', []))} | "
                 f"{', '.join('n/a' if v is None else f'{v:.2f}' for v in f.get('rounds_znode_gone_s', []))} | "
                 f"{sum(bool(x) for x in f.get('victim_was_controller', []))} of {len(f.get('rounds_p0_s', []))} | "
                 f"{f.get('delivery_errors', 0)} | "
                 f"{fr(ratio(ref_fo.get('p0_s'), f.get('p0_s'))) if n != REF else ''} |")
    L.append("")
    return "\n".join(L)


def write_cluster(results: dict, out: Path) -> None:
    (out / "results.json").write_text(json.dumps(results, indent=2, default=str))
    (out / "report.md").write_text(render_cluster(results))
