"""A history checker under faults (in the manner of Jepsen's Kafka queue test, much smaller).

Two idempotent acks=all producers write unique values (``<producer>-<seq>``) round robin to a
6-partition RF=3 topic with min.insync.replicas=2 and keep every acknowledged (partition, offset,
value); a reader re-reads every partition from offset 0 over and over and keeps every
(partition, offset, value) it sees.  Meanwhile at least 20 faults hit a random broker, one at a
time, each followed by a recovery period (all brokers registered, every ISR full):

- ``kill``: kill -9, then start it again on the same data (it waits out its old session);
- ``pause``: SIGSTOP until ZooKeeper expires its session (a zombie leader when it wakes), SIGCONT;
- ``cut``: drop its listener's traffic on loopback (nftables or iptables) for longer than
  replica.lag.time.max.ms, then restore it.

At the end every partition is read in full, and:

1. no acknowledged record is missing (each is at the offset it was acknowledged with);
2. no value appears twice (the idempotent producer wrote each once);
3. per producer and partition, offsets grow in the order the acknowledgements came;
4. no offset was ever read with two different values, over every read during and after the run.

``KC_HISTORY_SEED`` replays a run (the seed is printed), ``KC_HISTORY_FAULTS`` changes how many
faults (default 20), ``KC_HISTORY_DEBUG=eos`` logs librdkafka's idempotence steps.

Deliveries that fail (a producer that stops getting acknowledgements) fail the test too
(liveness; ``KC_HISTORY_LENIENT=1`` only warns).  One cause was found this way and fixed: a
restarted broker listened before it registered in ZooKeeper (it waits for its old session to
expire) and meanwhile answered Metadata with no brokers and the topic unknown; librdkafka
re-bootstrapped, moved every partition to no leader, and its idempotent producer wedged in "wait
for outstanding requests to finish before producing to new leader".  Brokers now serve client
requests only once registered and told the cluster by the controller (``ClusterNode.serving``).
"""

from __future__ import annotations

import logging
import os
import random
import shutil
import signal
import tempfile
import time
import warnings
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from kafka_bench.kafka_core_cluster import KafkaCoreCluster
from kafka_broker.cluster import zk as Z
from kazoo.client import KazooClient

pytest.importorskip("confluent_kafka")
from .faultkit import (  # noqa: E402
    FAULT_SETTINGS,
    Ack,
    LoadProducer,
    NetCut,
    Reader,
    isr_full,
    read_all,
    registered,
    wait_for,
)
from .test_replication import _create  # noqa: E402

pytestmark = pytest.mark.interop

TOPIC, PARTITIONS, BROKERS = "history", 6, 3
RECOVERY_TIMEOUT = 30.0
SETTLE_TIMEOUT = 6.0        # for states written after a restarted broker registered
# librdkafka: give up on a request to a frozen broker after 5 s and retry elsewhere, but keep a
# message for a minute so that no fault of a few seconds fails a delivery.
PRODUCER_CONF = {"request.timeout.ms": 5000, "message.timeout.ms": 60000, "socket.timeout.ms": 5000}


@pytest.fixture
def cluster(zk_chroot: str, tmp_path: Path) -> Iterator[KafkaCoreCluster]:
    # data (and broker.log) under tmp_path: pytest keeps the last runs' for a post-mortem
    with KafkaCoreCluster(BROKERS, zk_chroot, data_dir=tmp_path, settings=FAULT_SETTINGS) as c:
        c.wait_registered()
        yield c


@dataclass
class Fault:
    n: int
    kind: str
    broker: int
    started: float          # seconds since the load began
    lasted: float = 0.0
    recovered_in: float = -1.0
    note: str = ""

    def __str__(self) -> str:
        rec = f"recovered in {self.recovered_in:.1f}s" if self.recovered_in >= 0 else "NOT RECOVERED"
        return (f"#{self.n:02d} t={self.started:6.1f}s {self.kind:5s} broker {self.broker}: "
                f"{self.lasted:.1f}s, {rec}{' (' + self.note + ')' if self.note else ''}")


class Faults:
    def __init__(self, cluster: KafkaCoreCluster, zk: KazooClient, rng: random.Random, cut: NetCut) -> None:
        self.cluster, self.zk, self.rng, self.cut = cluster, zk, rng, cut
        self.paused: set[int] = set()

    def _signal(self, broker: int, sig: int) -> None:
        proc = self.cluster.brokers[broker].proc
        assert proc is not None and proc.poll() is None, f"broker {broker} is not running"
        os.killpg(proc.pid, sig)

    def kill(self, f: Fault) -> None:
        path = f"{Z.BROKER_IDS}/{f.broker}"
        old = self.zk.get(path)[1].czxid
        self.cluster.kill(f.broker)
        time.sleep(self.rng.uniform(0.2, 1.0))
        self.cluster.brokers[f.broker].start()
        # its old registration lingers until the session expires; the fault lasts until the new one
        wait_for(lambda: (st := self.zk.exists(path)) is not None and st.czxid != old, timeout=20,
                 what=f"restarted broker {f.broker} to register again")

    def pause(self, f: Fault) -> None:
        self._signal(f.broker, signal.SIGSTOP)
        self.paused.add(f.broker)
        try:
            # longer than zookeeper.session.timeout.ms: until ZooKeeper drops its registration
            wait_for(lambda: f.broker not in registered(self.zk), timeout=20,
                     what=f"the session of paused broker {f.broker} to expire")
            time.sleep(self.rng.uniform(0.2, 1.0))
        finally:
            self._signal(f.broker, signal.SIGCONT)
            self.paused.discard(f.broker)
        wait_for(lambda: f.broker in registered(self.zk), timeout=20,
                 what=f"resumed broker {f.broker} to register again")

    def net_cut(self, f: Fault) -> None:
        with self.cut.cutting(self.cluster.brokers[f.broker].port):
            time.sleep(self.rng.uniform(5.0, 6.0))    # > replica.lag.time.max.ms + its check: ISRs shrink

    def recover(self) -> None:
        """Undo whatever a failed fault left behind (called in a finally block)."""
        self.cut.heal()
        for b in list(self.paused):
            self._signal(b, signal.SIGCONT)
        self.paused.clear()
        for i, b in self.cluster.brokers.items():
            if b.proc is None or b.proc.poll() is not None:
                b.proc = None
                self.cluster.brokers[i].start()


def keep_logs(cluster: KafkaCoreCluster, seed: int) -> str:
    """Copy the broker logs (and rdkafka.log) out of tmp_path, which pytest rotates away after
    three runs (anyone's, on a shared machine); returns a line naming the folder."""
    out = Path(tempfile.mkdtemp(prefix=f"kc-history-{seed}-"))
    for f in [*cluster.data_dir.glob("broker-*/broker.log"), *cluster.data_dir.glob("rdkafka.log")]:
        shutil.copy(f, out / (f"{f.parent.name}.log" if f.name == "broker.log" else f.name))
    return f"logs kept in {out}\n"


def check_history(producers: list[LoadProducer], reader: Reader,
                  final: dict[int, list[tuple[int, bytes]]]) -> list[str]:
    """The four checks; returns what failed (empty: the history is sound)."""
    problems: list[str] = []
    at = {(p, off): v for p, recs in final.items() for off, v in recs}
    where = {v: (p, off) for (p, off), v in at.items()}
    # librdkafka acknowledges a batch whose request timed out "implicitly", without its offset, when
    # a later batch of the producer is acknowledged: such a value must be in the log, at any offset.
    missing = [a for pr in producers for a in pr.acked
               if (at.get((a.partition, a.offset)) != a.value if a.offset is not None else a.value not in where)]
    if missing:
        problems.append(f"1. {len(missing)} acknowledged record(s) missing, e.g. " + ", ".join(
            f"{a.value!r}@{a.partition}:{a.offset} (log has {at.get((a.partition, a.offset))!r}; the value is at "
            f"{where.get(a.value)})" for a in missing[:5]))
    counts = Counter(v for recs in final.values() for _off, v in recs)
    dups = {v: n for v, n in counts.items() if n > 1}
    if dups:
        examples = [(v, [(p, off) for p, recs in final.items() for off, x in recs if x == v]) for v in list(dups)[:5]]
        problems.append(f"2. {len(dups)} value(s) written more than once, e.g. {examples}")
    for pr in producers:
        per: dict[int, list[Ack]] = {}
        for a in pr.acked:
            if a.offset is not None:
                per.setdefault(a.partition, []).append(a)
        for p, acks in per.items():
            bad = [(x, y) for x, y in zip(acks, acks[1:], strict=False) if y.offset <= x.offset]
            if bad:
                problems.append(f"3. producer {pr.name} partition {p}: {len(bad)} acknowledgement(s) at an offset "
                                f"not above the one before, e.g. {[(x.offset, y.offset) for x, y in bad[:5]]}")
    for (p, off), v in at.items():
        reader.record(p, off, v)
    if reader.conflicts:
        problems.append(f"4. {len(reader.conflicts)} offset(s) read with two values, e.g. " + ", ".join(
            f"{p}:{off} {a!r} then {b!r}" for p, off, a, b in reader.conflicts[:5]))
    return problems


def test_history_under_faults(cluster: KafkaCoreCluster, zk_client: KazooClient) -> None:
    seed = int(os.environ.get("KC_HISTORY_SEED") or random.randrange(1 << 32))
    n_faults = int(os.environ.get("KC_HISTORY_FAULTS") or 20)
    print(f"\nhistory: seed {seed} (KC_HISTORY_SEED={seed} replays the fault schedule), {n_faults} faults")
    rng = random.Random(seed)
    cut = NetCut()
    kinds = ["kill", "pause", "cut"]
    if cut.tool is None:
        kinds.remove("cut")
        msg = "history: network cut faults skipped: neither nft nor iptables can add a rule here"
        print(msg)
        warnings.warn(msg, stacklevel=1)

    _create(cluster, TOPIC, PARTITIONS, BROKERS, **{"min.insync.replicas": "2"})
    wait_for(lambda: isr_full(zk_client, TOPIC, PARTITIONS, BROKERS), what="full ISR")
    conf = dict(PRODUCER_CONF)
    if os.environ.get("KC_HISTORY_DEBUG"):     # e.g. "eos": librdkafka's log to <tmp_path>/rdkafka.log
        conf["debug"] = os.environ["KC_HISTORY_DEBUG"]
        handler = logging.FileHandler(cluster.data_dir / "rdkafka.log")
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(message)s"))
        logging.getLogger("rdkafka").addHandler(handler)
        logging.getLogger("rdkafka").setLevel(logging.DEBUG)
    producers = [LoadProducer(cluster.bootstrap, TOPIC, PARTITIONS, name=f"p{i}", rate=100, conf=conf)
                 for i in range(2)]
    reader = Reader(cluster.bootstrap, TOPIC, PARTITIONS)
    faults = Faults(cluster, zk_client, rng, cut)
    applied: list[Fault] = []
    t0 = time.monotonic()

    def summary(problems: list[str]) -> str:
        lines = [f"seed {seed}; broker logs in {cluster.data_dir}/broker-N/broker.log; {len(applied)} fault(s):",
                 *map(str, applied)]
        for pr in producers:
            implicit = sum(a.offset is None for a in pr.acked)
            lines.append(f"producer {pr.name}: {pr.sent} sent, {len(pr.acked)} acknowledged ({implicit} without an "
                         f"offset), {len(pr.failed)} failed"
                         f"{' e.g. ' + str(pr.failed[:3]) if pr.failed else ''}{'; fatal ' + pr.fatal if pr.fatal else ''}")
        lines.append(f"reader: {reader.passes} passes, {reader.reads} records read, {len(reader.seen)} offsets seen")
        lines += problems or ["checks: all four hold"]
        return "\n".join(lines)

    try:
        for pr in producers:
            pr.start()
        reader.start()
        time.sleep(2)
        for n in range(n_faults):
            f = Fault(n + 1, rng.choice(kinds), rng.randint(1, BROKERS), time.monotonic() - t0)
            applied.append(f)
            t = time.monotonic()
            {"kill": faults.kill, "pause": faults.pause, "cut": faults.net_cut}[f.kind](f)
            f.lasted = time.monotonic() - t
            t = time.monotonic()
            # after a kill or a pause the broker registered anew: wait for states written since
            reg = zk_client.exists(f"{Z.BROKER_IDS}/{f.broker}") if f.kind != "cut" else None
            since = reg.czxid if reg is not None else 0
            try:
                wait_for(lambda s=since: registered(zk_client) == set(cluster.brokers)
                         and isr_full(zk_client, TOPIC, PARTITIONS, BROKERS, s), timeout=SETTLE_TIMEOUT,
                         what="recovery", every=0.2)
            except AssertionError:
                # A state may rightly predate the registration (a leader took the follower back
                # before its session expiry was handled): full ISRs are enough then.
                try:
                    wait_for(lambda: registered(zk_client) == set(cluster.brokers)
                             and isr_full(zk_client, TOPIC, PARTITIONS, BROKERS), timeout=RECOVERY_TIMEOUT,
                             what="recovery", every=0.2)
                except AssertionError:
                    f.note = "gave up waiting for every ISR to be full"
                    break
                f.note = "some state not rewritten since the broker registered again"
            f.recovered_in = time.monotonic() - t
            print(f)
            time.sleep(rng.uniform(0.2, 1.0))
    finally:
        faults.recover()
        for pr in producers:
            pr.stop()
        reader.stop()

    problems: list[str] = []
    if any(f.recovered_in < 0 for f in applied):
        problems.append(f"0. the cluster did not recover within {RECOVERY_TIMEOUT:.0f}s after a fault")
    try:
        wait_for(lambda: registered(zk_client) == set(cluster.brokers)
                 and isr_full(zk_client, TOPIC, PARTITIONS, BROKERS), timeout=60, what="every ISR full at the end")
        final = read_all(cluster.bootstrap, TOPIC, PARTITIONS)
    except AssertionError as e:
        pytest.fail(keep_logs(cluster, seed) + summary([*problems, f"final read: {e}"]))
    problems += check_history(producers, reader, final)
    # Liveness: a producer that stopped getting acknowledgements (see the module docstring).
    stalled = [f"producer {pr.name}: {len(pr.failed)} deliveries failed{'; ' + pr.fatal if pr.fatal else ''}"
               for pr in producers if pr.fatal or pr.failed]
    if stalled:
        msg = "history: a producer stalled: " + "; ".join(stalled)
        print(msg)
        warnings.warn(msg, stacklevel=1)
        if not os.environ.get("KC_HISTORY_LENIENT"):
            problems += stalled
    print(summary(problems))
    if problems:
        pytest.fail(keep_logs(cluster, seed) + summary(problems))
    if stalled:
        print(keep_logs(cluster, seed))
    assert len(applied) >= n_faults
