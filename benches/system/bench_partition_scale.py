"""Partition scale (issue 16): one broker with N partitions, kafka-core and Apache Kafka 4.x (KRaft,
single node) side by side in one run.

    python benches/system/bench_partition_scale.py [--layout topics|single] [--sizes 10000]
                                                   [--sample 1000] [--out docs/perf/...txt]

--layout topics (the issue's figure, the default): N/10 topics of 10 partitions each (10,000 = 1,000
topics x 10); --layout single: one topic of N partitions.  For each N, each system in turn:

- start a fresh broker; its RSS once it has answered a Metadata request (the empty broker);
- create the partitions with confluent-kafka's AdminClient: topics --create-batch at a time (Apache
  Kafka's controller refuses one operation of more than 10,000 records, so 1,000 topics in one
  CreateTopics would be refused; both systems get the same batches), one topic of N partitions
  grown 5,000 at a time when Apache refuses it whole.  Two times: until every create is answered,
  and until a Metadata for all topics lists all N partitions with a leader;
- RSS and open fds idle, and RSS per partition = (idle RSS - empty RSS) / N;
- produce one record (acks=all) to each of --sample random partitions, consume them back;
- one raw Fetch (kafka_protocol's generated codecs, Fetch v12 by topic name, no fetch session)
  naming those --sample partitions from offset 0: the time from sending it to having the whole
  response, median of 5 after one warm-up, and a check that every partition came back with a batch;
- one raw Metadata for all topics (null topics, v12): median time of 5 after one warm-up, and a
  check that it lists all N partitions;
- the first Metadata for all topics after a change (kafka-core's cache of encoded topic entries
  cold for what changed): 5 times, create one more topic of 10 partitions and, once that create is
  answered, time one Metadata for all topics (v12), median; and the first Metadata for all topics
  at a version not asked before (every entry encoded afresh): one each at v4, v7, v8, v9, v10
  (five topic-entry layouts, none of them v12's), median;
- a clean stop (SIGTERM; its time), start, the time until a produce is acknowledged again; then
  kill -9 right after that produce, start, the time until a produce is acknowledged again.

--only metadata: after the create, only the Metadata figures (and RSS/fds), no produce, consume,
Fetch or restarts; the all-topics median then follows METADATA_WARMUP calls, not one (the JVM has
not run the produce and fetch paths before it as it has in the full run).

The raw requests are timed on the client's side (send to last byte), so each time includes the
loopback round trip and the client's reads, identical for both systems.  Every figure ends as a
kafka-core / Apache Kafka ratio with its direction (the issue's targets: times at most 1.0x Apache's,
RSS per partition at most 0.25x).  A step that fails (Apache Kafka past the open-file limit or
vm.max_map_count) is reported with its error and the rest of that size skipped.  Everything runs
on one machine that is shared: the numbers are as noisy as it is."""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import signal
import socket
import statistics
import struct
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
for _sub in ("src", "python"):  # a checkout that is not pip-installed: the in-tree packages
    if str(ROOT / _sub) not in sys.path:
        sys.path.insert(0, str(ROOT / _sub))

import kafka_protocol as kp  # noqa: E402
from kafka_bench.apache_kafka import ApacheKafka  # noqa: E402
from kafka_bench.kafka_core_broker import KafkaCoreBroker  # noqa: E402
from kafka_bench.loadgen import proc_stats  # noqa: E402

TOPIC = "scale"             # --layout single
TOPIC_PARTITIONS = 10       # --layout topics: partitions per topic
FETCH_VERSION = 12          # the last Fetch version that names topics (v13+ sends topic ids)
METADATA_VERSION = 12
TIMED_RUNS = 5
_I32 = struct.Struct(">i")
TP = tuple[str, int]


def _fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def _rss_mib(pid: int) -> float:
    return round(proc_stats(pid).rss_bytes / 2**20, 1)


class _Raw:
    """One blocking connection for the timed raw requests: a frame out, the whole frame back."""

    def __init__(self, bootstrap: str, timeout: float = 60) -> None:
        host, port = bootstrap.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.corr = 0

    def close(self) -> None:
        self.sock.close()

    def call(self, req: Any, version: int) -> tuple[float, Any]:
        """(seconds from send to the last byte of the response, the decoded response)."""
        self.corr += 1
        frame = kp.encode_request(req.API_KEY, version, self.corr, "scale-bench", req)
        t = time.monotonic()
        self.sock.sendall(frame)
        size = _I32.unpack(self._exact(4))[0]
        body = self._exact(size)
        elapsed = time.monotonic() - t
        corr, pos = kp.decode_response_header(body, req.API_KEY, version)
        if corr != self.corr:
            raise RuntimeError(f"response for correlation id {corr}, expected {self.corr}")
        resp, _ = kp.RESPONSES[req.API_KEY].decode(body, version, pos)
        return elapsed, resp

    def _exact(self, n: int) -> bytes:
        buf = bytearray(n)
        view, got = memoryview(buf), 0
        while got < n:
            k = self.sock.recv_into(view[got:])
            if not k:
                raise ConnectionError(f"connection closed after {got} of {n} bytes")
            got += k
        return bytes(buf)


def _metadata_all() -> Any:
    return kp.MetadataRequest(topics=None, allow_auto_topic_creation=False)


def _listed(resp: Any, names: set[str]) -> int:
    """Partitions of ``names`` that the Metadata response lists without error and with a leader."""
    return sum(1 for t in resp.topics if t.name in names and t.error_code == 0
               for p in t.partitions if p.error_code == 0 and p.leader_id >= 0)


# Apache Kafka 4.x's controller refuses one operation of more than 10,000 records
# (QuorumController's MAX_RECORDS_PER_USER_OP: POLICY_VIOLATION "excessively large batch
# operation"), so a bigger topic is created with STEP partitions and grown STEP at a time.
STEP = 5000


def _create(bootstrap: str, layout: str, n: int, batch: int, timeout: float, res: dict[str, Any]) -> list[str]:
    """Create the partitions; fills create_answered_s and create_listed_s; returns the topic names."""
    from confluent_kafka import KafkaError, KafkaException
    from confluent_kafka.admin import AdminClient, NewPartitions, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    kw: dict[str, Any] = {"operation_timeout": timeout, "request_timeout": timeout + 10}
    t = time.monotonic()
    if layout == "topics":
        names = [f"{TOPIC}-{i:05d}" for i in range(n // TOPIC_PARTITIONS)]
        for i in range(0, len(names), batch):
            futs = admin.create_topics([NewTopic(x, TOPIC_PARTITIONS, 1) for x in names[i:i + batch]], **kw)
            for f in futs.values():
                f.result(timeout + 20)
        res["created_in_batches_of"] = f"{batch} topics"
    else:
        names = [TOPIC]
        try:
            admin.create_topics([NewTopic(TOPIC, n, 1)], **kw)[TOPIC].result(timeout + 20)
        except KafkaException as e:
            if e.args[0].code() != KafkaError.POLICY_VIOLATION or n <= STEP:
                raise
            res["created_in_batches_of"] = f"{STEP} partitions, a single create of more is refused"
            admin.create_topics([NewTopic(TOPIC, STEP, 1)], **kw)[TOPIC].result(timeout + 20)
            for total in range(2 * STEP, n + 1, STEP):
                admin.create_partitions([NewPartitions(TOPIC, total)], **kw)[TOPIC].result(timeout + 20)
    res["create_answered_s"] = round(time.monotonic() - t, 2)
    want, raw = set(names), _Raw(bootstrap)
    try:
        while True:
            got = _listed(raw.call(_metadata_all(), METADATA_VERSION)[1], want)
            if got == n:
                res["create_listed_s"] = round(time.monotonic() - t, 2)
                return names
            if time.monotonic() - t > timeout:
                raise TimeoutError(f"metadata listed {got} of {n} partitions with leaders within {timeout}s")
            time.sleep(0.5)
    finally:
        raw.close()


def _produce(bootstrap: str, tps: list[TP], tag: str, timeout: float = 120) -> float:
    from confluent_kafka import Producer

    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5, "log_level": 0})
    errors: list[Any] = []
    t = time.monotonic()
    for topic, i in tps:
        p.produce(topic, f"{tag}-{i}".encode(), partition=i,
                  on_delivery=lambda err, _m: errors.append(err) if err else None)
    left = p.flush(timeout)
    if left or errors:
        raise RuntimeError(f"produce: {left} not delivered, errors {errors[:3]}")
    return time.monotonic() - t


def _consume(bootstrap: str, tps: list[TP], timeout: float = 120) -> float:
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "scale-bench", "enable.auto.commit": False,
                  "log_level": 0})
    t = time.monotonic()
    c.assign([TopicPartition(topic, i, 0) for topic, i in tps])
    got = 0
    while got < len(tps) and time.monotonic() - t < timeout:
        for m in c.consume(1000, 0.5):
            if m.error():
                raise RuntimeError(f"consume: {m.error()}")
            got += 1
    c.close()
    if got < len(tps):
        raise TimeoutError(f"consumed {got} of {len(tps)}")
    return time.monotonic() - t


def _median_call(bootstrap: str, req: Any, version: int, check: Any, warmup: int = 1) -> float:
    """Median seconds of TIMED_RUNS calls after ``warmup`` calls, each response passed to ``check``."""
    raw = _Raw(bootstrap)
    try:
        times = []
        for i in range(TIMED_RUNS + warmup):
            elapsed, resp = raw.call(req, version)
            check(resp)
            if i >= warmup:
                times.append(elapsed)
        return statistics.median(times)
    finally:
        raw.close()


def _fetch_request(tps: list[TP]) -> Any:
    F = kp.FetchRequest
    by_topic: dict[str, list[int]] = {}
    for topic, i in tps:
        by_topic.setdefault(topic, []).append(i)
    return F(replica_id=-1, max_wait_ms=0, min_bytes=0, max_bytes=64 << 20, isolation_level=0,
             session_id=0, session_epoch=-1, forgotten_topics_data=[], rack_id="",
             topics=[F.FetchTopic(topic=t, partitions=[F.FetchPartition(partition=i, fetch_offset=0,
                                                                        partition_max_bytes=1 << 20)
                                                       for i in parts])
                     for t, parts in by_topic.items()])


# A record batch's header is 61 bytes; recordsCount is its last field (at byte 57).
_BATCH_HEADER, _RECORDS_COUNT_AT = 61, 57


def _check_fetch(tps: list[TP]) -> Any:
    want = set(tps)

    def check(resp: Any) -> None:
        if resp.error_code:
            raise RuntimeError(f"fetch: error_code {resp.error_code}")
        got = set()
        for t in resp.responses:
            for p in t.partitions:
                rec = p.records
                if p.error_code or rec is None or len(rec) < _BATCH_HEADER or p.high_watermark < 1 or \
                        _I32.unpack_from(rec, _RECORDS_COUNT_AT)[0] < 1:
                    raise RuntimeError(f"fetch {t.topic}-{p.partition_index}: error_code {p.error_code}, "
                                       f"{0 if rec is None else len(rec)} record bytes, hw {p.high_watermark}")
                got.add((t.topic, p.partition_index))
        if got != want:
            raise RuntimeError(f"fetch answered {len(got & want)} of the {len(want)} partitions named")
    return check


def _check_metadata(names: list[str], n: int) -> Any:
    want = set(names)

    def check(resp: Any) -> None:
        got = _listed(resp, want)
        if got != n:
            raise RuntimeError(f"metadata listed {got} of {n} partitions with leaders")
    return check


COLD_VERSIONS = (4, 7, 8, 9, 10)     # each a topic-entry layout of its own, none METADATA_VERSION's
METADATA_WARMUP = 10


def _metadata_cold(bootstrap: str, names: list[str], n: int, timeout: float, res: dict[str, Any]) -> None:
    """metadata_after_create_ms and metadata_first_version_ms (see the module docstring)."""
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    check = _check_metadata(names, n)
    raw = _Raw(bootstrap)
    try:
        after = []
        for i in range(TIMED_RUNS):
            x = f"{TOPIC}-cold-{i}"
            admin.create_topics([NewTopic(x, TOPIC_PARTITIONS, 1)], operation_timeout=timeout)[x].result(timeout + 20)
            elapsed, resp = raw.call(_metadata_all(), METADATA_VERSION)
            check(resp)
            after.append(elapsed)
        res["metadata_after_create_ms"] = round(1000 * statistics.median(after), 1)
        first = []
        for v in COLD_VERSIONS:
            elapsed, resp = raw.call(_metadata_all(), v)
            check(resp)
            first.append(elapsed)
        res["metadata_first_version_ms"] = round(1000 * statistics.median(first), 1)
    finally:
        raw.close()


def _until_produce_works(bootstrap: str, tp: TP, timeout: float) -> None:
    t = time.monotonic()
    while True:
        try:
            _produce(bootstrap, [tp], "restart", timeout=10)
            return
        except Exception:
            if time.monotonic() - t > timeout:
                raise
            time.sleep(0.2)


def _stop(system: str, b: Any, sig: int) -> None:
    if system == "kafka-core":
        b.stop(sig, timeout=300)
    elif sig == signal.SIGKILL:
        if b.proc is not None:
            b.proc.kill()
            b.proc.wait(30)
            b.proc = None
    else:
        b.stop()


def measure(system: str, layout: str, n: int, sample: int, batch: int, timeout: float,
            only: str = "") -> dict[str, Any]:
    d = Path(tempfile.mkdtemp(prefix=f"scale-{system}-"))
    b: Any = KafkaCoreBroker(data_dir=d) if system == "kafka-core" else ApacheKafka(data_dir=d)
    res: dict[str, Any] = {"system": system, "layout": layout, "partitions": n}
    step = "start"
    try:
        b.start(timeout=120)
        pid = b.proc.pid
        raw = _Raw(b.bootstrap)
        raw.call(_metadata_all(), METADATA_VERSION)
        raw.close()
        res["empty_rss_mib"] = _rss_mib(pid)
        step = "create"
        names = _create(b.bootstrap, layout, n, batch, timeout, res)
        res["idle_rss_mib"], res["idle_fds"] = _rss_mib(pid), _fds(pid)
        res["rss_per_partition_kib"] = round((res["idle_rss_mib"] - res["empty_rss_mib"]) * 1024 / n, 2)
        if only == "metadata":
            step = "metadata"
            res["metadata_all_ms"] = round(1000 * _median_call(b.bootstrap, _metadata_all(), METADATA_VERSION,
                                                               _check_metadata(names, n), METADATA_WARMUP), 1)
            step = "metadata after a change"
            _metadata_cold(b.bootstrap, names, n, timeout, res)
            res["rss_mib"], res["fds"] = _rss_mib(pid), _fds(pid)
            return res
        every = [(t, i) for t in names for i in range(n // len(names))]
        tps = sorted(random.Random(n).sample(every, min(sample, n)))
        step = "produce"
        res["produce_s"] = round(_produce(b.bootstrap, tps, "a", timeout), 2)
        step = "consume"
        res["consume_s"] = round(_consume(b.bootstrap, tps, timeout), 2)
        step = "fetch"
        res["fetch_partitions"] = len(tps)
        res["fetch_ms"] = round(1000 * _median_call(b.bootstrap, _fetch_request(tps), FETCH_VERSION,
                                                    _check_fetch(tps)), 1)
        step = "metadata"
        res["metadata_all_ms"] = round(1000 * _median_call(b.bootstrap, _metadata_all(), METADATA_VERSION,
                                                           _check_metadata(names, n)), 1)
        step = "metadata after a change"
        _metadata_cold(b.bootstrap, names, n, timeout, res)
        res["rss_mib"], res["fds"] = _rss_mib(pid), _fds(pid)
        step = "restart"
        t = time.monotonic()
        _stop(system, b, signal.SIGTERM)
        res["stop_s"] = round(time.monotonic() - t, 2)
        t = time.monotonic()
        b.start(timeout=300)
        _until_produce_works(b.bootstrap, tps[0], timeout)
        res["restart_to_produce_s"] = round(time.monotonic() - t, 2)
        res["fds_after_restart"] = _fds(b.proc.pid)
        step = "kill -9"
        _stop(system, b, signal.SIGKILL)
        t = time.monotonic()
        b.start(timeout=300)
        _until_produce_works(b.bootstrap, tps[-1], timeout)
        res["kill9_to_produce_s"] = round(time.monotonic() - t, 2)
    except Exception as e:  # noqa: BLE001 - reported, the run goes on
        res["failed"] = f"{step}: {type(e).__name__}: {str(e)[:200]}"
        log = getattr(b, "log_path", None)
        if log and Path(log).exists():
            tail = [ln for ln in Path(log).read_text(errors="replace").splitlines()
                    if "Too many open files" in ln or "Map failed" in ln or "OutOfMemory" in ln]
            if tail:
                res["broker_said"] = tail[0][:200]
    finally:
        _stop(system, b, signal.SIGKILL)
        shutil.rmtree(d, ignore_errors=True)
    return res


COLS = ["create_answered_s", "create_listed_s", "empty_rss_mib", "idle_rss_mib", "rss_per_partition_kib",
        "idle_fds", "produce_s", "consume_s", "fetch_partitions", "fetch_ms", "metadata_all_ms",
        "metadata_after_create_ms", "metadata_first_version_ms", "rss_mib", "fds",
        "stop_s", "restart_to_produce_s", "fds_after_restart", "kill9_to_produce_s"]

# (column, what it is, the target for the kafka-core / Apache ratio or "").  All of them
# are costs (seconds, memory, fds): for every row a lower ratio is better.
RATIOS = [
    ("create_answered_s", "create, until answered", "<= 1.0x"),
    ("create_listed_s", "create, until Metadata lists all with leaders", "<= 1.0x"),
    ("empty_rss_mib", "RSS of the empty broker", ""),
    ("idle_rss_mib", "RSS idle with N partitions", ""),
    ("rss_per_partition_kib", "RSS per partition, (idle - empty) / N", "<= 0.25x"),
    ("idle_fds", "open fds idle", ""),
    ("produce_s", "produce one record to each sampled partition", ""),
    ("consume_s", "consume them back", ""),
    ("fetch_ms", "one Fetch naming the sampled partitions, median of 5", "<= 1.0x"),
    ("metadata_all_ms", "Metadata for all topics, median of 5", "<= 1.0x"),
    ("metadata_after_create_ms", "first Metadata for all topics after a create (cold), median of 5", ""),
    ("metadata_first_version_ms", "first Metadata for all topics at a new version (all cold), median of 5", ""),
    ("stop_s", "clean stop (SIGTERM)", ""),
    ("restart_to_produce_s", "start after a clean stop, until a produce is acked", "<= 1.0x"),
    ("kill9_to_produce_s", "start after kill -9, until a produce is acked", "<= 1.0x"),
]


def table(rows: list[dict[str, Any]]) -> str:
    head = ["system", "layout", "partitions", *COLS]
    out = [" | ".join(head), " | ".join("---" for _ in head)]
    for r in rows:
        out.append(" | ".join(str(r.get(c, "")) for c in head))
        if "created_in_batches_of" in r:
            out.append(f"  ({r['system']} {r['partitions']}: created {r['created_in_batches_of']} at a time)")
        if "failed" in r:
            out.append(f"  ({r['system']} {r['partitions']} failed at {r['failed']}"
                       + (f"; broker log: {r['broker_said']}" if "broker_said" in r else "") + ")")
    return "\n".join(out)


def ratio_table(rows: list[dict[str, Any]]) -> str:
    """kafka-core / Apache Kafka for each figure, per (layout, N) that both systems ran."""
    out = []
    for r in rows:
        if r["system"] != "kafka-core":
            continue
        ref = next((a for a in rows if a["system"] == "apache-kafka" and a["layout"] == r["layout"]
                    and a["partitions"] == r["partitions"]), None)
        if ref is None:
            continue
        out += [f"\nkafka-core / apache-kafka, layout {r['layout']}, {r['partitions']} partitions "
                "(every row: lower is better)",
                "figure | kafka-core | apache-kafka | ratio | direction | target | met",
                "--- | --- | --- | --- | --- | --- | ---"]
        for col, what, target in RATIOS:
            a, k = ref.get(col), r.get(col)
            if not isinstance(a, (int, float)) or not isinstance(k, (int, float)) or a <= 0:
                ratio, met = "n/a", ""
            else:
                q = k / a
                ratio = f"{q:.2f}x"
                met = ("yes" if q <= float(target.split()[1].rstrip("x")) else "NO") if target else ""
            out.append(f"{what} ({col}) | {k} | {a} | {ratio} | lower is better | {target or '-'} | {met}")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--layout", choices=("topics", "single"), default="topics",
                    help=f"topics: N/{TOPIC_PARTITIONS} topics of {TOPIC_PARTITIONS} partitions; single: one topic")
    ap.add_argument("--sizes", default="10000")
    ap.add_argument("--sample", type=int, default=1000, help="partitions produced to, consumed and fetched")
    ap.add_argument("--create-batch", type=int, default=100, help="topics per CreateTopics (--layout topics)")
    ap.add_argument("--systems", default="kafka-core,apache-kafka")
    ap.add_argument("--timeout", type=float, default=300, help="seconds allowed for each step")
    ap.add_argument("--only", choices=("metadata",), default="",
                    help="metadata: after the create, only the Metadata figures (no produce, fetch, restarts)")
    ap.add_argument("--out", type=Path)
    ap.add_argument("--append", action="store_true", help="add the rows to --out instead of replacing it")
    a = ap.parse_args()
    soft, _hard = __import__("resource").getrlimit(__import__("resource").RLIMIT_NOFILE)
    maps = Path("/proc/sys/vm/max_map_count").read_text().strip()
    head = (f"# Partition scale, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}\n"
            f"# machine: {platform.node()}, {os.cpu_count()} cores shared with other jobs (noisy), "
            f"RLIMIT_NOFILE {soft}, vm.max_map_count {maps}\n"
            f"# python benches/system/bench_partition_scale.py --layout {a.layout} --sizes {a.sizes} "
            f"--sample {a.sample} --create-batch {a.create_batch}"
            + (f" --only {a.only}" if a.only else "") + "\n\n")
    rows: list[dict[str, Any]] = []
    text = head
    for n in (int(x) for x in a.sizes.split(",")):
        if a.layout == "topics" and n % TOPIC_PARTITIONS:
            raise SystemExit(f"--layout topics: {n} is not a multiple of {TOPIC_PARTITIONS}")
        for system in a.systems.split(","):
            r = measure(system, a.layout, n, a.sample, a.create_batch, a.timeout, a.only)
            print(json.dumps(r), flush=True)
            rows.append(r)
            text = head + table(rows) + "\n" + ratio_table(rows) + "\n"
            if a.out:  # after every system: a run cut short still leaves what it measured
                a.out.parent.mkdir(parents=True, exist_ok=True)
                _write(a.out, text, a.append)
    print(text)


_APPEND_AT: dict[Path, int] = {}


def _write(out: Path, text: str, append: bool) -> None:
    """Replace --out with ``text``, or with --append replace only what this run added to it."""
    if not append:
        out.write_text(text)
        return
    if out not in _APPEND_AT:
        _APPEND_AT[out] = out.stat().st_size if out.exists() else 0
    with open(out, "r+" if out.exists() else "w") as f:
        f.seek(_APPEND_AT[out])
        f.truncate()
        f.write(("\n" if _APPEND_AT[out] else "") + text)


if __name__ == "__main__":
    main()
