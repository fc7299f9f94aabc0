"""``kafka-core bench --cluster``: three kafka-core brokers and three Apache Kafka 3.9.1 brokers
(ZooKeeper mode), one cluster after the other on one ZooKeeper, with the same clients.

Two experiments per cluster:

- **produce throughput**, 200-byte records spread over a topic of 6 partitions by kc_loadgen
  (librdkafka's default partitioner, ``linger.ms=5``, pipelined), for RF=1 acks=1, RF=3 acks=1
  and RF=3 acks=all (``min.insync.replicas=2``); a new topic per round, the median round kept.
- **failover**: a confluent-kafka producer with ``acks=all`` sends one record every
  ``send_interval_ms`` round robin over the 6 partitions of an RF=3 topic
  (``min.insync.replicas=2``); the leader of partition 0 is SIGKILLed, and the time from the kill
  to the first acknowledged record *sent after the kill* is taken for partition 0 and for every
  partition (the slowest).  A record sent after the kill can only be acknowledged once the dead
  broker is out of that partition's ISR (or, for its own partitions, once a new leader is
  elected), so the figure is the cluster's failure detection (``zookeeper.session.timeout.ms``)
  plus election plus the client's metadata refresh.  The killed broker is restarted between
  rounds.

Both clusters get the same failure-detection settings (``COMMON``); the 2-core machine never runs
both at once.  Results go into the runner's results.json / report.md (report.render_cluster).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from . import clients, procs
from .experiments import cpu_figures
from .systems import StartError, _kafka_core_version

CLUSTER_SYSTEMS = ["kafka-core", "apache-kafka"]

# Failure detection, the same on both clusters: Apache Kafka's defaults (18 s and 30 s) would make
# a failover round half a minute of waiting.
COMMON = {"zookeeper.session.timeout.ms": "6000", "replica.lag.time.max.ms": "10000"}
BROKERS = 3
PARTITIONS = 6

# (step name, label, replication factor, acks)
CASES = [("rf1_acks1", "RF=1, acks=1", 1, "1"), ("rf3_acks1", "RF=3, acks=1", 3, "1"),
         ("rf3_acksall", "RF=3, acks=all, min.insync.replicas=2", 3, "all")]


@dataclass
class ClusterScale:
    quick: bool
    produce_seconds: float
    rounds: int
    failover_rounds: int
    record_size: int = 200
    send_interval_ms: float = 2.0
    failover_timeout: float = 90.0
    warmup_seconds: float = 2.0


CLUSTER_QUICK = ClusterScale(quick=True, produce_seconds=3, rounds=1, failover_rounds=1, warmup_seconds=1)
CLUSTER_FULL = ClusterScale(quick=False, produce_seconds=10, rounds=3, failover_rounds=3)


class ClusterSystem:
    """Three brokers of one kind on a chroot of the shared ZooKeeper."""

    name = ""
    version = ""
    client = "librdkafka (kc_loadgen) for throughput; confluent-kafka for failover"
    settings: dict[str, str] = {}
    zk_connect = ""

    def start(self, zk_hosts: str) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    c: Any = None     # the KafkaCoreCluster or ApacheKafkaZkCluster

    @property
    def bootstrap(self) -> str:
        return str(self.c.bootstrap)

    def pids(self) -> list[int]:
        raise NotImplementedError

    def kill(self, broker_id: int) -> None:
        raise NotImplementedError

    def restart(self, broker_id: int) -> None:
        raise NotImplementedError

    def log_tail(self) -> str:
        return ""

    def cpu_seconds(self) -> float:
        return sum(procs.tree_stats(p).cpu_seconds for p in self.pids())

    def rss_bytes(self) -> int:
        return sum(procs.tree_stats(p).rss_bytes for p in self.pids())

    def _chroot(self, zk_hosts: str) -> str:
        from .zookeeper import ensure_path

        chroot = f"/bench-{self.name}-{uuid.uuid4().hex[:8]}"
        ensure_path(zk_hosts, chroot)
        self.zk_connect = zk_hosts + chroot
        return self.zk_connect

    def wait_gone(self, broker_id: int, timeout: float = 60) -> None:
        """Until broker_id's ephemeral znode is gone (a killed broker's stays for a session timeout)."""
        zk = _zk(self.zk_connect)
        try:
            deadline = time.monotonic() + timeout
            while zk.exists(f"/brokers/ids/{broker_id}") and time.monotonic() < deadline:
                time.sleep(0.2)
        finally:
            zk.stop()
            zk.close()


class KafkaCoreClusterSystem(ClusterSystem):
    name = "kafka-core"

    def __init__(self) -> None:
        self.settings = {"log.segment.bytes": str(1 << 30), **COMMON}
        self.version = _kafka_core_version()

    def start(self, zk_hosts: str) -> None:
        from .kafka_core_cluster import KafkaCoreCluster

        self.c = KafkaCoreCluster(BROKERS, self._chroot(zk_hosts), settings=dict(self.settings))
        try:
            for b in self.c.brokers.values():
                b.start(60)
                procs.register(b.proc)
            self.c.wait_registered(60)
        except Exception as e:
            tail = self.log_tail()
            self.stop()
            raise StartError(f"kafka-core cluster did not start: {e}\n{tail}") from e

    def stop(self) -> None:
        if self.c is None:
            return
        for b in self.c.brokers.values():
            if b.proc is not None:
                procs.forget(b.proc)
        self.c.cleanup()
        self.c = None

    def pids(self) -> list[int]:
        return [b.proc.pid for b in self.c.brokers.values() if b.proc is not None]

    def kill(self, broker_id: int) -> None:
        b = self.c.brokers[broker_id]
        if b.proc is not None:
            procs.forget(b.proc)
        b.kill()

    def restart(self, broker_id: int) -> None:
        self.wait_gone(broker_id)
        b = self.c.brokers[broker_id]
        b.start(60)
        procs.register(b.proc)
        self.c.wait_registered(60)

    def log_tail(self) -> str:
        if self.c is None:
            return ""
        return "".join(f"--- broker {i} ({b.log_path}):\n{b.log_text()[-1500:]}\n" for i, b in self.c.brokers.items())


# kafka-run-class.sh's JVM flags (G1, 20 ms pause goal), not apache_kafka_zk's start-fast defaults
# (serial GC, C1 only), which are for tests.
APACHE_JVM_FLAGS = ["-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20", "-XX:InitiatingHeapOccupancyPercent=35",
                    "-XX:+ExplicitGCInvokesConcurrent", "-Djava.awt.headless=true"]
APACHE_HEAP = "512m"


class ApacheKafkaZkSystem(ClusterSystem):
    name = "apache-kafka"

    def __init__(self) -> None:
        from .apache_kafka_zk import POM

        self.settings = {"heap": f"-Xms{APACHE_HEAP} -Xmx{APACHE_HEAP} per broker",
                         "jvm": " ".join(APACHE_JVM_FLAGS[:-1]),
                         "config": "kafka_bench/apache_kafka_zk.py (2 network, 4 I/O threads)", **COMMON}
        import re

        try:
            m = re.search(r"<kafka.version>([^<]+)<", POM.read_text())
            self.version = m.group(1) if m else "3.9"
        except OSError:
            self.version = "3.9"

    def start(self, zk_hosts: str) -> None:
        from .apache_kafka_zk import ApacheKafkaZkCluster

        self.c = ApacheKafkaZkCluster(BROKERS, self._chroot(zk_hosts), overrides=dict(COMMON), heap=APACHE_HEAP,
                                      jvm_flags=APACHE_JVM_FLAGS)
        try:
            self.c.start(timeout=120)
        except Exception as e:
            self.c.cleanup()
            self.c = None
            raise StartError(f"Apache Kafka ZooKeeper-mode cluster did not start: {e}") from e

    def stop(self) -> None:
        if self.c is not None:
            self.c.cleanup()
            self.c = None

    def pids(self) -> list[int]:
        return [p.pid for p in self.c.procs.values() if p.poll() is None]

    def kill(self, broker_id: int) -> None:
        self.c.kill(broker_id)

    def restart(self, broker_id: int) -> None:
        self.c.restart(broker_id, timeout=120)

    def log_tail(self) -> str:
        if self.c is None:
            return ""
        out = ""
        for i in self.c.broker_ids:
            try:
                out += f"--- broker {i}:\n{self.c.log_path(i).read_text(errors='replace')[-1500:]}\n"
            except OSError:
                pass
        return out


def make_cluster(name: str) -> ClusterSystem:
    return {"kafka-core": KafkaCoreClusterSystem, "apache-kafka": ApacheKafkaZkSystem}[name]()


# ---- topics and metadata (confluent-kafka, the same for both clusters) --------------------------

def layout(bootstrap: str, topic: str) -> dict[int, tuple[int, list[int], list[int]]]:
    """partition -> (leader, replicas, isr) as the cluster's metadata says now."""
    from confluent_kafka.admin import AdminClient

    md = AdminClient({"bootstrap.servers": bootstrap, "log_level": 3}).list_topics(topic, timeout=10)
    t = md.topics.get(topic)
    if t is None or t.error is not None:
        return {}
    return {p.id: (p.leader, sorted(p.replicas), sorted(p.isrs)) for p in t.partitions.values()}


def create_replicated(bootstrap: str, name: str, rf: int, configs: dict[str, str] | None = None,
                      timeout: float = 60) -> None:
    """Create ``name`` with PARTITIONS partitions and wait until every partition has a leader and a
    full ISR."""
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 3})
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while True:
        try:
            admin.create_topics([NewTopic(name, PARTITIONS, rf, config=configs or {})],
                                operation_timeout=30)[name].result(40)
            break
        except Exception as e:
            if "already exists" in str(e).lower() or "TOPIC_ALREADY_EXISTS" in str(e):
                break
            last = e
            if time.monotonic() > deadline:
                raise RuntimeError(f"cannot create topic {name}: {last}") from e
            time.sleep(0.5)
    while True:
        d = layout(bootstrap, name)
        if len(d) == PARTITIONS and all(lead >= 0 and len(isr) == rf for lead, _r, isr in d.values()):
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"topic {name}: not every partition has a leader and {rf} in-sync replicas "
                               f"after {timeout}s: {d}")
        time.sleep(0.2)


# ---- measurements ---------------------------------------------------------------------------------

def measure_cluster(system: ClusterSystem, fn: Callable[[], dict]) -> dict:
    """fn's result plus the CPU seconds of all brokers over it."""
    cpu0 = system.cpu_seconds()
    res = fn()
    res["broker_cpu_s"] = round(system.cpu_seconds() - cpu0, 3)
    return cpu_figures(res)


def median_of(rounds: list[dict], key: str, higher_is_better: bool = True) -> dict:
    """The median round by ``key``, with every round's value kept in ``rounds_<key>``."""
    ok = [r for r in rounds if isinstance(r.get(key), (int, float))]
    if not ok:
        return dict(rounds[0]) if rounds else {}
    ordered = sorted(ok, key=lambda r: r[key], reverse=not higher_is_better)
    mid = dict(ordered[len(ordered) // 2])
    mid["rounds_" + key] = [r.get(key) for r in rounds]
    mid["rounds"] = len(rounds)
    return mid


def produce(bootstrap: str, topic: str, acks: str, seconds: float, size: int) -> dict:
    return clients.loadgen("produce", bootstrap, topic, 20_000_000, size, partition=-1,
                           conf={"acks": acks, "linger.ms": "5"}, duration=seconds, max_outstanding=20_000,
                           timeout=seconds + 120)


def failover(system: ClusterSystem, topic: str, sc: ClusterScale, log: Callable[[str], None]) -> dict:
    """One round: produce acks=all continuously, SIGKILL partition 0's leader, time the recovery."""
    from confluent_kafka import Producer

    create_replicated(system.bootstrap, topic, 3, {"min.insync.replicas": "2"})
    # acks=all, no idempotence; librdkafka retries (for up to message.timeout.ms) across the leader change
    p = Producer({"bootstrap.servers": system.bootstrap, "acks": "all", "linger.ms": 0, "retry.backoff.ms": 50,
                  "message.timeout.ms": int(sc.failover_timeout * 1000) + 30_000, "log_level": 2})
    acked: list[tuple[int, float, float]] = []      # (partition, sent, acked) on time.monotonic()
    failed: list[str] = []

    def on_delivery(sent: float, err: Any, msg: Any) -> None:
        if err is not None:
            failed.append(str(err))
        else:
            acked.append((msg.partition(), sent, time.monotonic()))

    payload = b"x" * sc.record_size
    interval = sc.send_interval_ms / 1000
    i = 0

    def send_for(seconds: float, until: Callable[[], bool] | None = None) -> None:
        nonlocal i
        end = time.monotonic() + seconds
        nxt = time.monotonic()
        while time.monotonic() < end and not (until and until()):
            now = time.monotonic()
            if now >= nxt:
                p.produce(topic, payload, partition=i % PARTITIONS, on_delivery=partial(on_delivery, now))
                i += 1
                nxt += interval
            p.poll(max(0.0, min(nxt - time.monotonic(), 0.001)))

    try:
        # every partition acknowledging before the kill
        send_for(30, until=lambda: len({a[0] for a in acked}) == PARTITIONS and len(acked) > 50)
        send_for(sc.warmup_seconds)
        if len({a[0] for a in acked}) < PARTITIONS:
            raise RuntimeError(f"failover: only partitions {sorted({a[0] for a in acked})} acknowledged "
                               "before the kill")
        d = layout(system.bootstrap, topic)
        victim = d[0][0]
        zk = _zk(system.zk_connect)
        controller = _controller(zk)
        gone: list[float] = []

        def on_znode(event: Any) -> None:     # kazoo's thread: the victim's registration is gone
            if event is not None and event.type == "DELETED" and not gone:
                gone.append(time.monotonic())
        zk.exists(f"/brokers/ids/{victim}", watch=on_znode)
        n_before = len(acked)
        t_kill = time.monotonic()
        system.kill(victim)

        def recovered() -> bool:
            return len({a[0] for a in acked[n_before:] if a[1] > t_kill}) == PARTITIONS

        send_for(sc.failover_timeout, until=recovered)
        first: dict[int, float] = {}
        for part, sent, at in acked[n_before:]:
            if sent > t_kill and part not in first:
                first[part] = at - t_kill
        p.flush(30)
        new_controller = _controller(zk)
        zk.stop()
        zk.close()
    finally:
        p.flush(5)
    res: dict[str, Any] = {"victim": victim, "victim_was_controller": victim == controller,
                           "new_controller": new_controller, "sent": i, "acked": len(acked),
                           "delivery_errors": len(failed), "partitions_recovered": len(first),
                           # ZooKeeper noticed: the victim's ephemeral /brokers/ids node went away
                           "znode_gone_s": round(gone[0] - t_kill, 3) if gone else None}
    if failed:
        res["first_errors"] = failed[:3]
    res["p0_s"] = round(first[0], 3) if 0 in first else None
    res["all_s"] = round(max(first.values()), 3) if len(first) == PARTITIONS else None
    res["per_partition_s"] = {k: round(v, 3) for k, v in sorted(first.items())}
    after = layout(system.bootstrap, topic)
    res["new_leader_p0"] = after.get(0, (-1,))[0]
    log(f"  killed broker {victim} (leader of partition 0{', the controller' if victim == controller else ''}): "
        f"its znode went after {_s(res['znode_gone_s'])}; partition 0 acks=all again after "
        f"{_s(res['p0_s'])}, all {PARTITIONS} partitions after {_s(res['all_s'])} "
        f"(new leader {res['new_leader_p0']}, {len(failed)} delivery errors)")
    t0 = time.monotonic()
    system.restart(victim)
    res["restart_s"] = round(time.monotonic() - t0, 1)
    return res


def _zk(connect: str) -> Any:
    from kazoo.client import KazooClient

    zk = KazooClient(connect, timeout=5)
    zk.start(timeout=10)
    return zk


def _controller(zk: Any) -> int:
    import json

    try:
        data, _ = zk.get("/controller")
        return int(json.loads(data)["brokerid"])
    except Exception:   # no controller right now
        return -1


def _s(v: float | None) -> str:
    return "n/a (timed out)" if v is None else f"{v:.2f} s"


def run_system(system: ClusterSystem, sc: ClusterScale, log: Callable[[str], None]) -> dict:
    out: dict[str, Any] = {}
    n = 0

    def topic(what: str) -> str:
        nonlocal n
        n += 1
        return f"cl-{what}-{n}"

    time.sleep(1)
    out["rss_idle_mb"] = round(system.rss_bytes() / 2**20, 1)
    log("warm-up (RF=3 acks=1, not measured)")
    t = topic("warmup")
    create_replicated(system.bootstrap, t, 3)
    produce(system.bootstrap, t, "1", 1 if sc.quick else 3, sc.record_size)
    rounds: dict[str, list[dict]] = {c[0]: [] for c in CASES}
    for rep in range(sc.rounds):
        tag = f" (round {rep + 1}/{sc.rounds})" if sc.rounds > 1 else ""
        for key, label, rf, acks in CASES:
            t = topic(key)
            create_replicated(system.bootstrap, t, rf, {"min.insync.replicas": "2"} if acks == "all" else None)
            r = measure_cluster(system, partial(produce, system.bootstrap, t, acks, sc.produce_seconds,
                                                sc.record_size))
            rounds[key].append(r)
            log(f"produce {label}{tag}: {r['records_per_sec']:,.0f} msg/s, {r['mb_per_sec']:.1f} MB/s, "
                f"p99 {r.get('p99_ms', 0):.1f} ms")
    for key, *_ in CASES:
        out[key] = median_of(rounds[key], "records_per_sec")
    out["rss_after_produce_mb"] = round(system.rss_bytes() / 2**20, 1)
    fo = []
    for rep in range(sc.failover_rounds):
        log(f"failover round {rep + 1}/{sc.failover_rounds}")
        fo.append(failover(system, topic("failover"), sc, log))
    out["failover_rounds"] = fo
    out["failover"] = {"p0_s": _median([r["p0_s"] for r in fo]), "all_s": _median([r["all_s"] for r in fo]),
                       "rounds_p0_s": [r["p0_s"] for r in fo], "rounds_all_s": [r["all_s"] for r in fo],
                       "znode_gone_s": _median([r["znode_gone_s"] for r in fo]),
                       "rounds_znode_gone_s": [r["znode_gone_s"] for r in fo],
                       "victim_was_controller": [r["victim_was_controller"] for r in fo],
                       "delivery_errors": sum(r["delivery_errors"] for r in fo)}
    return out


def _median(xs: list[float | None]) -> float | None:
    """The median of the rounds; a round that timed out counts as infinitely slow."""
    if not xs:
        return None
    ordered = sorted(xs, key=lambda x: float("inf") if x is None else x)
    return ordered[len(ordered) // 2]


def run(names: list[str], sc: ClusterScale, results: dict, log: Callable[[str], None]) -> int:
    """Every named cluster in turn on one ZooKeeper; fills ``results`` like runner.main does."""
    from .zookeeper import ZooKeeper

    rc = 0
    log("== ZooKeeper: starting")
    zk = ZooKeeper()
    try:
        zk.start()
    except Exception as e:
        results["errors"]["zookeeper"] = f"ZooKeeper could not start: {e}"
        return 2
    results["zookeeper"] = zk.connect
    try:
        for name in names:
            system = make_cluster(name)
            entry: dict[str, Any] = {"client": system.client, "brokers": BROKERS}
            results["systems"][name] = entry
            log(f"== {name} cluster ({BROKERS} brokers): starting")
            try:
                t0 = time.monotonic()
                system.start(zk.connect)
                entry["start_seconds"] = round(time.monotonic() - t0, 1)
                entry["version"] = system.version
                entry["settings"] = system.settings
                entry["zookeeper.connect"] = system.zk_connect
                log(f"== {name} {system.version} up on {system.bootstrap}")
                entry.update(run_system(system, sc, log))
            except StartError as e:
                msg = f"{name} could not start: {e}"
                log(f"ERROR: {msg}")
                results["errors"][name] = msg
                entry["failed"] = msg
                rc = 2
            except KeyboardInterrupt:
                raise
            except Exception as e:
                import traceback

                msg = f"{name}: experiment failed: {type(e).__name__}: {e}"
                log(f"ERROR: {msg}\n{traceback.format_exc()}")
                tail = system.log_tail()
                if tail:
                    log(f"--- {name} log tail ---\n{tail}")
                results["errors"][name] = msg
                entry["failed"] = msg
                rc = rc or 1
            finally:
                system.stop()
                log(f"== {name}: stopped")
    finally:
        zk.cleanup()
    return rc
