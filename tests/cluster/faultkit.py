"""Helpers of the fault tests (test_controlled_shutdown, test_history): ZooKeeper's view of
partition state, a load producer and a repeating reader on threads, a full read of a topic, and
network cuts of one broker's listener with nftables or iptables.

Consumers here use ``assign()`` with explicit offsets and commit nothing: consumer groups are not
cluster-aware yet.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import confluent_kafka as ck
from kafka_broker.cluster import zk as Z
from kazoo.client import KazooClient

# Fast failure detection for a 2-core machine: a follower that stalls 3 s leaves the ISR, a broker
# silent 4 s loses its session, a fetch to a frozen leader gives up after 3 s.
# Quick failure detection for the three-broker tests (the ``cluster`` fixture of conftest.py), and
# retention and the log cleaner that look every half second.
CLUSTER_SETTINGS = {"replica.lag.time.max.ms": "3000", "zookeeper.session.timeout.ms": "4000",
                    "controlled.shutdown.retry.backoff.ms": "200", "replica.fetch.backoff.ms": "200",
                    "log.retention.check.interval.ms": "500", "log.cleaner.backoff.ms": "200"}
FAULT_SETTINGS = {"replica.lag.time.max.ms": "3000", "zookeeper.session.timeout.ms": "4000",
                  "controlled.shutdown.retry.backoff.ms": "200", "replica.fetch.backoff.ms": "200",
                  "replica.socket.timeout.ms": "3000"}


def wait_for(cond: Callable[[], Any], timeout: float = 30, what: str = "condition", every: float = 0.1) -> Any:
    """Until ``cond()`` is truthy.  A condition that fails (an assertion, a client error, a topic a
    broker does not know yet: UpdateMetadata reaches each broker on its own time) is tried again."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while True:
        try:
            got = cond()
        except (AssertionError, ck.KafkaException, KeyError) as e:
            got, last = None, e
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}"
                                 + (f" (last: {last})" if last else ""))
        time.sleep(every)


def zk_states(zk: KazooClient, topic: str, partitions: int) -> dict[int, tuple[Z.LeaderIsr, Any]]:
    """Partition -> (leader, epoch, ISR as in ``/brokers/topics/T/partitions/P/state``, its stat)."""
    out = {}
    for p in range(partitions):
        data, stat = zk.get(Z.partition_state_path(topic, p))
        out[p] = (Z.LeaderIsr.decode(data, stat.version), stat)
    return out


def isr_full(zk: KazooClient, topic: str, partitions: int, brokers: int, since_zxid: int = 0) -> bool:
    """Every partition has a leader and all ``brokers`` in its ISR, in states written after
    ``since_zxid`` (a restarted broker's registration: the controller and the leaders have
    acted on it, rather than not yet noticed it went)."""
    try:
        return all(st.leader > 0 and len(st.isr) == brokers and stat.mzxid > since_zxid
                   for st, stat in zk_states(zk, topic, partitions).values())
    except Exception:  # noqa: BLE001 - a state znode not written yet
        return False


def registered(zk: KazooClient) -> set[int]:
    return {int(x) for x in zk.get_children(Z.BROKER_IDS)} if zk.exists(Z.BROKER_IDS) else set()


@dataclass
class Ack:
    partition: int
    offset: int | None      # None: acknowledged implicitly, offset unknown (librdkafka)
    value: bytes


@dataclass
class LoadProducer:
    """An idempotent acks=all producer on its own thread writing unique values ``<name>-<seq>``
    round robin over the partitions, about ``rate`` a second, until ``stop()``; every delivery
    report is kept (``acked`` in the order the producer acknowledged them, ``failed``)."""

    bootstrap: str
    topic: str
    partitions: int
    name: str = "p"
    rate: float = 400
    conf: dict[str, Any] = field(default_factory=dict)
    acked: list[Ack] = field(default_factory=list)
    failed: list[tuple[bytes, str]] = field(default_factory=list)
    sent: int = 0
    fatal: str | None = None

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"producer-{self.name}", daemon=True)

    def start(self) -> LoadProducer:
        self._thread.start()
        return self

    def _report(self, err: Any, msg: Any) -> None:
        if err is None:
            self.acked.append(Ack(msg.partition(), msg.offset(), msg.value()))
        else:
            self.failed.append((msg.value(), str(err)))

    def _run(self) -> None:
        conf = {"bootstrap.servers": self.bootstrap, "acks": "all", "enable.idempotence": True,
                "linger.ms": 5, "message.timeout.ms": 30000, "retry.backoff.ms": 100,
                "error_cb": self._error, **self.conf}
        if conf.get("debug"):       # librdkafka's debug log goes to logger "rdkafka.<name>"
            conf["logger"] = logging.getLogger(f"rdkafka.{self.name}")
        p = ck.Producer(conf)
        gap = 1 / self.rate
        nxt = time.monotonic()
        for seq in itertools.count():
            if self._stop.is_set():
                break
            value = f"{self.name}-{seq}".encode()
            while True:
                try:
                    p.produce(self.topic, value, partition=seq % self.partitions, on_delivery=self._report)
                    break
                except BufferError:
                    p.poll(0.1)
            self.sent += 1
            p.poll(0)
            nxt += gap
            time.sleep(max(0.0, nxt - time.monotonic()))
        left = p.flush(60)
        if left:
            self.fatal = self.fatal or f"{left} message(s) still in flight after flush(60)"

    def _error(self, err: Any) -> None:
        if err.fatal():
            self.fatal = str(err)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(90)

    def __enter__(self) -> LoadProducer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _consumer(bootstrap: str, **extra: Any) -> ck.Consumer:
    return ck.Consumer({"bootstrap.servers": bootstrap, "group.id": "unused-no-commits",
                        "enable.auto.commit": False, "enable.auto.offset.store": False,
                        "enable.partition.eof": True, "fetch.wait.max.ms": 100, **extra})


def read_all(bootstrap: str, topic: str, partitions: int, timeout: float = 60) -> dict[int, list[tuple[int, bytes]]]:
    """Every record of the topic below the high watermark, per partition in offset order."""
    c = _consumer(bootstrap)
    try:
        ends = {p: c.get_watermark_offsets(ck.TopicPartition(topic, p), timeout=10, cached=False)[1]
                for p in range(partitions)}
        out: dict[int, list[tuple[int, bytes]]] = {p: [] for p in range(partitions)}
        pos = dict.fromkeys(range(partitions), 0)
        c.assign([ck.TopicPartition(topic, p, 0) for p in range(partitions)])
        deadline = time.monotonic() + timeout
        while any(pos[p] < ends[p] for p in pos):
            if time.monotonic() > deadline:
                raise AssertionError(f"read_all: positions {pos}, want {ends}")
            for m in c.consume(1000, 0.5):
                if m.error() is None:
                    out[m.partition()].append((m.offset(), m.value()))
                    pos[m.partition()] = m.offset() + 1
        return out
    finally:
        c.close()


class Reader:
    """A consumer on its own thread that reads every partition from offset 0 to its end, again
    and again, and remembers each (partition, offset) -> value it saw; a second, different value
    for one offset is kept in ``conflicts``."""

    def __init__(self, bootstrap: str, topic: str, partitions: int) -> None:
        self.bootstrap, self.topic, self.partitions = bootstrap, topic, partitions
        self.seen: dict[tuple[int, int], bytes] = {}
        self.conflicts: list[tuple[int, int, bytes, bytes]] = []
        self.passes = 0
        self.reads = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="reader", daemon=True)

    def record(self, p: int, off: int, value: bytes) -> None:
        old = self.seen.setdefault((p, off), value)
        if old != value:
            self.conflicts.append((p, off, old, value))
        self.reads += 1

    def _run(self) -> None:
        c = _consumer(self.bootstrap, **{"topic.metadata.refresh.interval.ms": 1000, "socket.timeout.ms": 5000})
        try:
            while not self._stop.is_set():
                c.assign([ck.TopicPartition(self.topic, p, 0) for p in range(self.partitions)])
                at_end: set[int] = set()
                deadline = time.monotonic() + 10
                while len(at_end) < self.partitions and time.monotonic() < deadline and not self._stop.is_set():
                    for m in c.consume(500, 0.2):
                        err = m.error()
                        if err is None:
                            self.record(m.partition(), m.offset(), m.value())
                        elif err.code() == ck.KafkaError._PARTITION_EOF:
                            at_end.add(m.partition())
                self.passes += 1
                self._stop.wait(1.0)     # leave the brokers some CPU on a small machine
        finally:
            c.close()

    def start(self) -> Reader:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)


# -- network cuts -------------------------------------------------------------------------

class NetCut:
    """Drops every TCP packet to or from a loopback port (a broker's listener: clients, followers
    and the controller lose it; its own connections out to ZooKeeper and other leaders stay).

    nftables: one table of our own (``inet kc_fault_<pid>``), removed whole.  iptables: rules
    tagged with a comment in OUTPUT (loopback traffic passes OUTPUT once), removed one by one.
    ``heal()`` is safe to call any number of times; use it in a finally block."""

    def __init__(self) -> None:
        self.tool = self._probe()
        self.table = f"kc_fault_{os.getpid()}"
        self.cut_port: int | None = None

    @staticmethod
    def _run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(list(args), capture_output=True, text=True, timeout=10, check=check)

    def _probe(self) -> str | None:
        """'nft' or 'iptables' when it can add and remove a rule here, else None."""
        probe = f"kc_probe_{os.getpid()}"
        if shutil.which("nft"):
            with contextlib.suppress(OSError, subprocess.SubprocessError):
                self._run("nft", "add", "table", "inet", probe)
                self._run("nft", "delete", "table", "inet", probe)
                return "nft"
        if shutil.which("iptables"):
            with contextlib.suppress(OSError, subprocess.SubprocessError):
                self._run("iptables", "-w", "-S", "OUTPUT")
                return "iptables"
        return None

    def _ipt_rules(self, port: int) -> list[list[str]]:
        tag = ["-m", "comment", "--comment", self.table]
        return [["OUTPUT", "-o", "lo", "-p", "tcp", "--dport", str(port), *tag, "-j", "DROP"],
                ["OUTPUT", "-o", "lo", "-p", "tcp", "--sport", str(port), *tag, "-j", "DROP"]]

    def cut(self, port: int) -> None:
        assert self.tool is not None and self.cut_port is None
        self.cut_port = port
        if self.tool == "nft":
            self._run("nft", "add", "table", "inet", self.table)
            self._run("nft", "add", "chain", "inet", self.table, "out",
                      "{ type filter hook output priority 0 ; policy accept ; }")
            for d in ("dport", "sport"):
                self._run("nft", "add", "rule", "inet", self.table, "out", "oifname", "lo", "tcp", d, str(port),
                          "drop")
        else:
            for r in self._ipt_rules(port):
                self._run("iptables", "-w", "-I", *r)

    def heal(self) -> None:
        port, self.cut_port = self.cut_port, None
        if self.tool == "nft":
            self._run("nft", "delete", "table", "inet", self.table, check=False)
        elif self.tool == "iptables" and port is not None:
            for r in self._ipt_rules(port):
                while self._run("iptables", "-w", "-D", *r, check=False).returncode == 0:
                    pass

    @contextlib.contextmanager
    def cutting(self, port: int) -> Iterator[None]:
        try:
            self.cut(port)
            yield
        finally:
            self.heal()
