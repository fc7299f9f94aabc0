"""Consumer groups of real clients against kafka-core's group coordinator.

confluent-kafka (librdkafka), kafka-python and aiokafka consumers share
topics of several partitions in one group (classic protocol, each client's
own assignors), librdkafka and the Java consumer also with
``group.protocol=consumer`` (KIP-848, server-side assignment).  Checked:
assignments are disjoint and cover every partition; members joining,
leaving and being killed are taken over with nothing lost from the last
commit; commits survive broker restarts (clean and kill -9) and consumers
resume exactly there; a static member restarts without a rebalance; Apache
Kafka's kafka-consumer-groups lists and describes the groups.

Short session timeouts (6 s) and few messages keep the suite quick.
"""

from __future__ import annotations

import asyncio
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any

import pytest
from kafka_bench import apache_kafka as ak
from kafka_bench.kafka_core_broker import KafkaCoreBroker

from tests.interop.conftest import create_topic

pytestmark = pytest.mark.interop

SESSION_MS = 6000
NPART = 6
BROKER_SETTINGS = {"num.partitions": "1", "auto.create.topics.enable": "true",
                   "group.initial.rebalance.delay.ms": "0", "offsets.topic.num.partitions": "4",
                   "group.consumer.heartbeat.interval.ms": "500",
                   "group.consumer.session.timeout.ms": str(SESSION_MS),
                   "group.consumer.min.session.timeout.ms": str(SESSION_MS)}

TP = tuple[str, int]


@pytest.fixture(scope="module")
def gbroker():
    b = KafkaCoreBroker(settings=BROKER_SETTINGS)
    b.start()
    yield b
    b.cleanup()


def new_topic(bootstrap: str, partitions: int = NPART) -> str:
    name = f"grp-{uuid.uuid4().hex[:10]}"
    create_topic(bootstrap, name, partitions)
    return name


def produce(bootstrap: str, topic: str, values: Iterable[str], partitions: int = NPART) -> None:
    from confluent_kafka import Producer

    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    for i, v in enumerate(values):
        p.produce(topic, value=v.encode(), key=v.encode(), partition=i % partitions)
    assert p.flush(20) == 0


# -- one interface over the three Python clients ------------------------------------------

class Member:
    """``poll``/``current_assignment``/``close`` run on the member's own thread only (librdkafka's
    assignment() called from another thread while consume() runs can deadlock on the GIL);
    others read the snapshot ``assignment()``."""

    name = "?"
    snapshot: frozenset[TP] = frozenset()
    c: Any  # the client's consumer

    def poll(self) -> list[tuple[str, int, int, str]]:
        raise NotImplementedError

    def current_assignment(self) -> set[TP]:
        """What the client's ``assignment()`` holds now (all three clients give topic/partition pairs)."""
        return {(tp.topic, tp.partition) for tp in self.c.assignment()}

    def assignment(self) -> set[TP]:
        return set(self.snapshot)

    def close(self) -> None:
        raise NotImplementedError


class ConfluentMember(Member):
    def __init__(self, bootstrap: str, group: str, topic: str, **conf: Any) -> None:
        from confluent_kafka import Consumer

        base = {"bootstrap.servers": bootstrap, "group.id": group, "auto.offset.reset": "earliest",
                "enable.auto.commit": False}
        if conf.get("group.protocol") != "consumer":
            base.update({"session.timeout.ms": SESSION_MS, "heartbeat.interval.ms": 500,
                         "partition.assignment.strategy": "range"})
        base.update(conf)
        self.assigns = 0
        self.c = Consumer(base)
        self.c.subscribe([topic], on_assign=self._on_assign)
        self.name = f"confluent({base.get('partition.assignment.strategy', 'server')})"

    def _on_assign(self, _c: Any, parts: list[Any]) -> None:
        self.assigns += 1

    def poll(self) -> list[tuple[str, int, int, str]]:
        msgs = self.c.consume(num_messages=100, timeout=0.1)
        out = [(m.topic(), m.partition(), m.offset(), m.value().decode()) for m in msgs if not m.error()]
        if out:
            self.c.commit(asynchronous=False)
        return out

    def close(self) -> None:
        self.c.close()


def python_client_conf(bootstrap: str, group: str, assignors: Any, conf: dict[str, Any]) -> dict[str, Any]:
    """Consumer keywords of kafka-python and aiokafka (same names): earliest, manual commits, the short
    session, the given partition_assignment_strategy; conf on top."""
    kw: dict[str, Any] = dict(bootstrap_servers=bootstrap, group_id=group, auto_offset_reset="earliest",
                              enable_auto_commit=False, session_timeout_ms=SESSION_MS,
                              heartbeat_interval_ms=500, partition_assignment_strategy=assignors)
    kw.update(conf)
    return kw


class KafkaPythonMember(Member):
    name = "kafka-python"

    def __init__(self, bootstrap: str, group: str, topic: str, **conf: Any) -> None:
        from kafka import KafkaConsumer
        from kafka.coordinator.assignors.range import RangePartitionAssignor

        self.c = KafkaConsumer(**python_client_conf(bootstrap, group, [RangePartitionAssignor], conf))
        self.c.subscribe([topic])

    def poll(self) -> list[tuple[str, int, int, str]]:
        got = self.c.poll(timeout_ms=500)
        out = [(r.topic, r.partition, r.offset, r.value.decode()) for recs in got.values() for r in recs]
        if out:
            self.c.commit()
        return out

    def close(self) -> None:
        self.c.close()


class AioMember(Member):
    """aiokafka on a private loop that runs only inside poll() (as a poll loop would)."""

    name = "aiokafka"

    def __init__(self, bootstrap: str, group: str, topic: str, **conf: Any) -> None:
        from aiokafka import AIOKafkaConsumer
        from aiokafka.coordinator.assignors.range import RangePartitionAssignor

        self.loop = asyncio.new_event_loop()
        kw = python_client_conf(bootstrap, group, (RangePartitionAssignor,), conf)

        async def make() -> Any:
            return AIOKafkaConsumer(topic, **kw)
        self.c = self.loop.run_until_complete(make())
        # start() joins the group, which parks until the other members rejoin: it runs in the
        # background of this loop, making progress whenever poll() runs the loop.
        self.started = self.loop.create_task(self.c.start())

    def poll(self) -> list[tuple[str, int, int, str]]:
        async def once() -> list[tuple[str, int, int, str]]:
            if not self.started.done():
                await asyncio.wait([self.started], timeout=0.1)
                if not self.started.done():
                    return []
            self.started.result()
            got = await self.c.getmany(timeout_ms=100)
            out = [(r.topic, r.partition, r.offset, r.value.decode()) for recs in got.values() for r in recs]
            if out:
                await self.c.commit()
            return out
        return self.loop.run_until_complete(once())

    def close(self) -> None:
        self.loop.run_until_complete(self.c.stop())
        self.loop.close()


class Driver:
    """Each member polls in its own thread (as an application would); what they consume is kept."""

    def __init__(self, members: list[Member]) -> None:
        self.members: list[Member] = []
        self.seen: list[tuple[str, int, int, str]] = []
        self.errors: list[BaseException] = []
        self._threads: dict[int, tuple[threading.Thread, threading.Event]] = {}
        for m in members:
            self.add(m)

    def add(self, m: Member) -> None:
        stop = threading.Event()

        def loop() -> None:
            try:
                while not stop.is_set():
                    got = m.poll()
                    if got:
                        self.seen.extend(got)
                    m.snapshot = frozenset(m.current_assignment())
            except BaseException as e:  # noqa: BLE001 - reported by until()
                self.errors.append(e)
        t = threading.Thread(target=loop, name=f"member-{m.name}", daemon=True)
        self.members.append(m)
        self._threads[id(m)] = (t, stop)
        t.start()

    def _stop(self, m: Member) -> None:
        t, stop = self._threads.pop(id(m))
        stop.set()
        t.join(30)

    def until(self, cond: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.errors:
                raise self.errors[0]
            if cond():
                return
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what}: assignments "
                             f"{[(m.name, sorted(m.assignment())) for m in self.members]}")

    def balanced(self, topic: str, nparts: int = NPART) -> bool:
        """Disjoint assignments covering every partition, each member owning one at least."""
        sets = [m.assignment() for m in self.members]
        union: set[TP] = set().union(*sets)
        return (sum(len(s) for s in sets) == len(union) and union == {(topic, p) for p in range(nparts)}
                and all(sets))

    def values(self) -> set[str]:
        return {v for _, _, _, v in list(self.seen)}

    def remove(self, m: Member) -> None:
        self._stop(m)
        self.members.remove(m)
        m.close()

    def close(self) -> None:
        for m in list(self.members):
            try:
                self.remove(m)
            except Exception:  # noqa: BLE001 - best effort at teardown
                pass


def _mixed_group_body(bootstrap: str, factories: list[Callable[[str, str, str], Member]]) -> None:
    topic = new_topic(bootstrap)
    group = f"g-{uuid.uuid4().hex[:8]}"
    d = Driver([f(bootstrap, group, topic) for f in factories[:2]])
    try:
        d.until(lambda: d.balanced(topic), 60, "two members to share the partitions")
        batch1 = [f"a{i}" for i in range(30)]
        produce(bootstrap, topic, batch1)
        d.until(lambda: set(batch1) <= d.values(), 30, "the first batch")
        # a third member joins
        d.add(factories[2](bootstrap, group, topic))
        d.until(lambda: d.balanced(topic), 60, "three members to share the partitions")
        batch2 = [f"b{i}" for i in range(30)]
        produce(bootstrap, topic, batch2)
        d.until(lambda: set(batch2) <= d.values(), 30, "the second batch")
        # the first member leaves: the other two take its partitions over
        d.remove(d.members[0])
        d.until(lambda: d.balanced(topic), 60, "two members after one left")
        batch3 = [f"c{i}" for i in range(30)]
        produce(bootstrap, topic, batch3)
        d.until(lambda: set(batch3) <= d.values(), 30, "the third batch")
        assert set(batch1 + batch2 + batch3) <= d.values()
    finally:
        d.close()


def test_mixed_python_clients_share_a_group(gbroker):
    """confluent-kafka, kafka-python and aiokafka in one group (range assignor on each)."""
    _mixed_group_body(gbroker.bootstrap, [ConfluentMember, KafkaPythonMember, AioMember])


@pytest.mark.parametrize("strategy", ["roundrobin", "cooperative-sticky"])
def test_confluent_client_side_assignors(gbroker, strategy):
    def f(b: str, g: str, t: str) -> Member:
        return ConfluentMember(b, g, t, **{"partition.assignment.strategy": strategy})
    _mixed_group_body(gbroker.bootstrap, [f, f, f])


def test_python_clients_sticky_assignors(gbroker):
    from aiokafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor as AioRR
    from kafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor
    from kafka.coordinator.assignors.sticky.sticky_assignor import StickyPartitionAssignor

    def kp(b: str, g: str, t: str) -> Member:
        return KafkaPythonMember(b, g, t, partition_assignment_strategy=[StickyPartitionAssignor])

    def kp_rr(b: str, g: str, t: str) -> Member:
        return KafkaPythonMember(b, g, t, partition_assignment_strategy=[RoundRobinPartitionAssignor])

    def aio_rr(b: str, g: str, t: str) -> Member:
        return AioMember(b, g, t, partition_assignment_strategy=(AioRR,))
    _mixed_group_body(gbroker.bootstrap, [kp, kp, kp])
    _mixed_group_body(gbroker.bootstrap, [kp_rr, aio_rr, kp_rr])


def test_confluent_kip848_consumer_protocol(gbroker):
    """librdkafka with group.protocol=consumer: the broker assigns (uniform assignor)."""
    def f(b: str, g: str, t: str) -> Member:
        return ConfluentMember(b, g, t, **{"group.protocol": "consumer"})
    _mixed_group_body(gbroker.bootstrap, [f, f, f])


# -- a member killed with SIGKILL ----------------------------------------------------------

_KILLED_MEMBER = r"""
import sys
from confluent_kafka import Consumer
c = Consumer({"bootstrap.servers": sys.argv[1], "group.id": sys.argv[2], "auto.offset.reset": "earliest",
              "enable.auto.commit": False, "session.timeout.ms": 6000, "heartbeat.interval.ms": 500,
              "partition.assignment.strategy": "range"})
c.subscribe([sys.argv[3]])
while True:
    for m in c.consume(num_messages=10, timeout=0.1):
        if not m.error():
            c.commit(message=m, asynchronous=False)
            print(m.value().decode(), flush=True)
    print("assigned", len(c.assignment()), flush=True)
"""


def test_killed_member_is_taken_over(gbroker):
    b = gbroker.bootstrap
    topic = new_topic(b)
    group = f"g-{uuid.uuid4().hex[:8]}"
    proc = subprocess.Popen([sys.executable, "-c", _KILLED_MEMBER, b, group, topic], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    d = Driver([ConfluentMember(b, group, topic)])
    lines: list[str] = []
    try:
        # wait until the subprocess owns partitions and the survivor owns the others
        def both_assigned() -> bool:
            line = proc.stdout.readline() if proc.stdout else ""
            lines.append(line.strip())
            return line.startswith("assigned") and line.split()[1] != "0" and \
                0 < len(d.members[0].assignment()) < NPART
        d.until(both_assigned, 45, "the two members to share the partitions")
        batch = [f"k{i}" for i in range(60)]
        produce(b, topic, batch)
        time.sleep(1)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        out, _ = proc.communicate()
        lines.extend(out.splitlines())
        t0 = time.monotonic()
        d.until(lambda: d.balanced(topic), SESSION_MS / 1000 + 30, "the survivor to take every partition")
        took = time.monotonic() - t0
        d.until(lambda: set(batch) <= d.values() | set(lines), 30, "every message (at least once)")
        assert took < SESSION_MS / 1000 + 15, f"takeover took {took:.1f}s"
    finally:
        if proc.poll() is None:
            proc.kill()
        d.close()


# -- commits survive broker restarts ----------------------------------------------------------

@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["clean", "kill-9"])
def test_resume_from_committed_offset_after_broker_restart(tmp_path, sig):
    from confluent_kafka import Consumer, TopicPartition

    broker = KafkaCoreBroker(data_dir=tmp_path, settings=BROKER_SETTINGS)
    broker.start()
    try:
        b = broker.bootstrap
        topic = new_topic(b, 3)
        produce(b, topic, [f"m{i}" for i in range(60)], 3)
        group = f"g-{uuid.uuid4().hex[:8]}"
        commits = {0: 7, 1: 11, 2: 19}
        c = Consumer({"bootstrap.servers": b, "group.id": group, "enable.auto.commit": False})
        c.commit(offsets=[TopicPartition(topic, p, o) for p, o in commits.items()], asynchronous=False)
        c.close()
        broker.stop(sig)
        broker.start()
        c = Consumer({"bootstrap.servers": b, "group.id": group, "enable.auto.commit": False,
                      "auto.offset.reset": "earliest", "session.timeout.ms": SESSION_MS})
        got = {tp.partition: tp.offset for tp in c.committed([TopicPartition(topic, p) for p in range(3)],
                                                              timeout=20)}
        assert got == commits
        c.subscribe([topic])
        first: dict[int, int] = {}
        deadline = time.monotonic() + 40
        while len(first) < 3 and time.monotonic() < deadline:
            for m in c.consume(num_messages=100, timeout=0.2):
                if not m.error():
                    first.setdefault(m.partition(), m.offset())
        c.close()
        assert first == commits
    finally:
        broker.cleanup()


def test_static_member_restart_without_rebalance(gbroker):
    b = gbroker.bootstrap
    topic = new_topic(b, 4)
    group = f"g-{uuid.uuid4().hex[:8]}"
    static = {"group.instance.id": "static-1", "session.timeout.ms": 20000}
    a = ConfluentMember(b, group, topic, **static)
    other = ConfluentMember(b, group, topic)
    d = Driver([a, other])
    try:
        d.until(lambda: d.balanced(topic, 4), 45, "both members to be assigned")
        before_a, assigns = a.assignment(), other.assigns
        d.remove(a)          # a static member's close does not leave the group
        time.sleep(2)
        a2 = ConfluentMember(b, group, topic, **static)
        d.add(a2)
        d.until(lambda: d.balanced(topic, 4), 30, "the static member to come back")
        time.sleep(3)   # give a (wrong) rebalance the time to show
        assert a2.assignment() == before_a
        assert other.assigns == assigns, "the other member went through a rebalance"
        batch = [f"s{i}" for i in range(20)]
        produce(b, topic, batch, 4)
        d.until(lambda: set(batch) <= d.values(), 30, "messages after the static restart")
    finally:
        d.close()


# -- Java: console consumer / ConsumerPerformance in groups, kafka-consumer-groups -----------

java = pytest.mark.skipif(shutil.which("java") is None, reason="java is installed by ./dev test")


def _java(main: str, *args: str, timeout: float = 120) -> str:
    r = ak.java_main(main, list(args), timeout=timeout, check=False)
    out = r.stdout.decode(errors="replace")
    assert r.returncode == 0, out + r.stderr.decode(errors="replace")[-3000:]
    return out


def _describe_rows(out: str, group: str) -> dict[TP, tuple[str, str, str]]:
    rows = {}
    for line in out.splitlines():
        f = line.split()
        if len(f) >= 6 and f[0] == group and f[2].isdigit():
            rows[(f[1], int(f[2]))] = (f[3], f[4], f[5])
    return rows


@java
@pytest.mark.parametrize("protocol", ["classic", "consumer"])
def test_java_console_consumer_group_and_consumer_groups_tool(gbroker, protocol):
    b = gbroker.bootstrap
    topic = new_topic(b, 3)
    produce(b, topic, [f"j{i}" for i in range(30)], 3)
    group = f"jg-{protocol}-{uuid.uuid4().hex[:6]}"
    out = _java(ak.CONSOLE_CONSUMER, "--bootstrap-server", b, "--topic", topic, "--group", group,
                "--from-beginning", "--max-messages", "30", "--timeout-ms", "30000",
                "--consumer-property", f"group.protocol={protocol}")
    assert sorted(out.split()) == sorted(f"j{i}" for i in range(30))
    listed = _java(ak.CONSUMER_GROUPS, "--bootstrap-server", b, "--list")
    assert group in listed.split()
    desc = _java(ak.CONSUMER_GROUPS, "--bootstrap-server", b, "--describe", "--group", group)
    rows = _describe_rows(desc, group)
    assert rows == {(topic, p): ("10", "10", "0") for p in range(3)}, desc
    state = _java(ak.CONSUMER_GROUPS, "--bootstrap-server", b, "--describe", "--group", group, "--state")
    assert group in state and "Empty" in state, state


@java
def test_java_consumer_performance_group_and_live_describe(gbroker):
    """ConsumerPerformance in a group; kafka-consumer-groups describes an active group with lag."""
    b = gbroker.bootstrap
    topic = new_topic(b, 3)
    produce(b, topic, [f"p{i}" for i in range(300)], 3)
    group = f"jp-{uuid.uuid4().hex[:6]}"
    out = _java(ak.CONSUMER_PERF, "--bootstrap-server", b, "--topic", topic, "--messages", "300",
                "--group", group, "--timeout", "30000", "--show-detailed-stats", "--reporting-interval", "100000")
    assert "Exception" not in out
    # an active Python member with partial commits: the tool shows members and lag
    from confluent_kafka import Consumer, TopicPartition
    live = f"jl-{uuid.uuid4().hex[:6]}"
    c = Consumer({"bootstrap.servers": b, "group.id": live, "enable.auto.commit": False,
                  "session.timeout.ms": SESSION_MS, "auto.offset.reset": "earliest", "client.id": "live-member"})
    c.subscribe([topic])
    deadline = time.monotonic() + 30
    while len(c.assignment()) < 3 and time.monotonic() < deadline:
        c.poll(0.1)
    c.commit(offsets=[TopicPartition(topic, p, 40) for p in range(3)], asynchronous=False)
    try:
        desc = _java(ak.CONSUMER_GROUPS, "--bootstrap-server", b, "--describe", "--group", live)
        rows = _describe_rows(desc, live)
        assert rows == {(topic, p): ("40", "100", "60") for p in range(3)}, desc
        assert "live-member" in desc
        members = _java(ak.CONSUMER_GROUPS, "--bootstrap-server", b, "--describe", "--group", live, "--members")
        line = [ln.split() for ln in members.splitlines() if ln.startswith(live)]
        assert len(line) == 1 and line[0][3] == "live-member" and line[0][-1] == "3", members
    finally:
        c.close()

