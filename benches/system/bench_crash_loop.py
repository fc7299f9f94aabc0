"""Crash loop (issue 16): kill -9 the broker again and again under a mixed load, and after every
restart check that nothing acknowledged was lost and no committed offset moved back.

    python benches/system/bench_crash_loop.py [--cycles 100] [--partitions 4] [--run-s 0.4-1.2]
                                              [--rate 20000] [--consumers group|assign]
                                              [--assignor cooperative-sticky|range|roundrobin]
                                              [--out FILE]

One kafka-core broker, started with ``log.flush.interval.messages=1`` (acks=all is then
acknowledged after the fsync), carries four loads at once in every cycle:

- ``crash-loop``: an idempotent acks=all confluent-kafka producer sends unique values (about
  --rate a second); every acknowledged (partition, offset, value) is recorded.
- a consumer group (``crash-loop-group``, confluent-kafka) reads ``crash-loop`` from its
  committed offsets and commits synchronously after each batch; every commit the broker
  acknowledged is recorded.  ``--consumers group`` (the default): two members ``subscribe()``
  (``--assignor``: cooperative-sticky, the incremental protocol, or range/roundrobin, the eager
  one), started afresh in every cycle, so every cycle has join rounds (the new members, then the
  restart: the members' heartbeats and commits meet a coordinator that has just reloaded the
  group) and partitions move between members; the broker runs with
  group.initial.rebalance.delay.ms=0 so a round can finish inside a sub-second cycle.  After the
  restart the members keep consuming until they have committed everything acknowledged in the
  cycle (or 20 s pass: ``caught_up_cycles`` counts the cycles that made it), so every cycle
  commits through the restarted coordinator.  ``--consumers assign``: one consumer with manual
  assignment (no join round), the earlier mode.
- ``crash-compact`` (two partitions, like ``crash-retain``): cleanup.policy=compact, 8 KiB
  segments, min.cleanable.dirty.ratio=0.01, written with a bounded key space (--keys keys) at
  --rate/10 a second; the broker's cleaner backoff is 100 ms so it really runs during the cycle.
- ``crash-retain``: retention.bytes=24 KiB per partition, 8 KiB segments,
  log.retention.check.interval.ms=200, written at --rate/2 a second, so segments get deleted.

After a random 0.4-1.2 s the broker gets SIGKILL with all of that in flight and is started again
on the same data (start to listening port: the cycle's recovery time).  The produce requests and
commits in flight at the kill are retried by the clients into the new broker (then acknowledged by
it, and counted) or fail (not acknowledged).  Then, before the next cycle:

- every record of ``crash-loop`` acknowledged in the cycle is read back at its offset with its
  value (and at the end the whole topic is read from 0 and every acknowledged value looked up);
- OffsetFetch (``Consumer.committed``) returns for each partition an offset >= the last
  acknowledged commit (``offsets_moved_back`` counts the ones below), and the next cycle's
  consumers, starting from the stored offsets, get their first record of each partition exactly
  there (``resumes_checked``: at or above the last acknowledged commit, and at or below the last
  commit sent, since a commit whose answer the kill or a client timeout cut off may be stored); in group mode each member must have been handed partitions and
  partitions must have moved between members (``assignments``: partitions handed to a member,
  summed over the run), or the run fails as vacuous;
- ``crash-compact`` read from its log start: for every key the last acknowledged (offset, value)
  is either there, or the key has a record at a later offset (compaction may drop old values,
  never the latest); the records the cleaner removed (offset span minus records present) must
  grow over the run (``cleaner_runs`` counts the cycles in which it grew), or the check is
  vacuous and the run fails;
- ``crash-retain``: the log start offset never moves back, every acknowledged record at or
  above it is there with its value, a fetch below it gets OFFSET_OUT_OF_RANGE (one partition a
  cycle, in turn), and segment files
  seen on disk during the run have been deleted (``segments_deleted``, a lower bound: the folder
  is sampled every 50 ms).

Duplicates in ``crash-loop`` (a retry whose first attempt was written before the kill:
at-least-once) are allowed and counted.  Prints and writes one JSON line; the exit status is 0
only if ``problems`` is empty.  tests/broker/test_crash_loop.py runs it for 10 cycles in the
suite; docs/perf/2026-12-08-crash-loop-group.txt has the last 100-cycle run (group mode),
docs/perf/2026-12-07-crash-loop-mixed.txt the last one with --consumers assign."""

from __future__ import annotations

import argparse
import json
import random
import shutil
import signal
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
for _sub in ("src", "python"):  # a checkout that is not pip-installed: the in-tree packages
    if str(ROOT / _sub) not in sys.path:
        sys.path.insert(0, str(ROOT / _sub))

from kafka_bench.kafka_core_broker import KafkaCoreBroker  # noqa: E402

TOPIC = "crash-loop"
COMPACT = "crash-compact"
RETAIN = "crash-retain"
GROUP = "crash-loop-group"
SEGMENT_BYTES = 8192
RETENTION_BYTES = 3 * SEGMENT_BYTES
SIDE_PARTITIONS = 2      # of crash-compact and crash-retain: each is read whole after every restart
PAD = b"x" * 80          # compacted and retained values: ~100 bytes, so 8 KiB segments roll fast
BROKER_SETTINGS = {"log.flush.interval.messages": "1", "log.retention.check.interval.ms": "200",
                   "log.cleaner.backoff.ms": "100", "log.cleaner.dedupe.buffer.size": str(1 << 20),
                   "group.initial.rebalance.delay.ms": "0"}
MEMBERS = 2              # group mode: members subscribed in every cycle
CATCH_UP_S = 20          # group mode: how long, after the restart, the members may take to commit the cycle
# group mode, the members' timeouts: the broker's minimum session (group.min.session.timeout.ms),
# heartbeats often enough that a member learns of a rebalance within a cycle
GROUP_CLIENT = {"session.timeout.ms": 6000, "heartbeat.interval.ms": 100, "max.poll.interval.ms": 20000}


def _create_topics(bootstrap: str, partitions: int) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    seg = {"segment.bytes": str(SEGMENT_BYTES)}
    topics = [NewTopic(TOPIC, num_partitions=partitions, replication_factor=1),
              NewTopic(COMPACT, num_partitions=SIDE_PARTITIONS, replication_factor=1,
                       config={**seg, "cleanup.policy": "compact", "min.cleanable.dirty.ratio": "0.01",
                               "min.compaction.lag.ms": "0"}),
              NewTopic(RETAIN, num_partitions=SIDE_PARTITIONS, replication_factor=1,
                       config={**seg, "retention.bytes": str(RETENTION_BYTES)})]
    admin = AdminClient({"bootstrap.servers": bootstrap})   # kept alive until the results
    for f in admin.create_topics(topics).values():
        f.result(30)


class State:
    """What the broker acknowledged, across cycles, and what the checks found."""

    def __init__(self, partitions: int) -> None:
        self.partitions = partitions
        self.lock = threading.Lock()
        self.plain: dict[tuple[int, int], bytes] = {}           # (partition, offset) -> value
        self.plain_cycle: list[tuple[int, int]] = []             # acknowledged in this cycle
        self.compact: dict[tuple[int, bytes], tuple[int, bytes]] = {}   # (partition, key) -> last acked
        self.retain: dict[tuple[int, int], bytes] = {}
        self.commits: dict[int, int] = {}                        # partition -> last acked commit
        self.commits_sent: dict[int, int] = {}                   # partition -> highest commit sent (acked or not)
        self.acked_end: dict[int, int] = {}                      # partition -> last acked offset + 1
        self.assignments = 0                                     # partitions handed to a member, summed
        self.owners: dict[int, set[int]] = {}                    # partition -> members given it (over the run)
        self.member_assigned: dict[int, int] = {}                # member -> partitions handed to it
        self.caught_up = 0                                       # cycles whose commits reached acked_end
        self.restarted = False                                   # the broker of this cycle was restarted
        self.joined_after_restart: set[int] = set()              # members handed partitions since
        self.rebalanced_after_restart = 0                        # cycles where the new member got partitions
        self.commits_acked = 0
        self.commits_checked = 0
        self.moved_back = 0
        self.consumed = 0
        self.resume_checked = 0
        self.log_start: dict[int, int] = dict.fromkeys(range(SIDE_PARTITIONS), 0)
        self.cycle = 0
        self.removed_by_cleaner = 0
        self.cleaner_runs = 0
        self.segments_seen: set[tuple[int, int]] = set()
        self.problems: list[str] = []

    def problem(self, text: str) -> None:
        with self.lock:
            if len(self.problems) < 50:
                self.problems.append(text)


def _produce(b: KafkaCoreBroker, n: int, rate: int, keys: int, st: State) -> tuple[Any, int]:
    """Produce to the three topics until the broker is gone; record what was acknowledged.
    Returns the producer, with what was in flight at the kill still queued, and the count sent."""
    from confluent_kafka import Producer

    p = Producer({"bootstrap.servers": b.bootstrap, "acks": "all", "enable.idempotence": True,
                  "linger.ms": 2, "message.timeout.ms": 15000, "socket.timeout.ms": 1000, "log_level": 0})

    def delivered(err: Any, msg: Any) -> None:
        if err is not None:
            return
        part, off, topic = msg.partition(), msg.offset(), msg.topic()
        with st.lock:
            if topic == TOPIC:
                st.plain[(part, off)] = msg.value()
                st.plain_cycle.append((part, off))
                st.acked_end[part] = max(st.acked_end.get(part, 0), off + 1)
            elif topic == RETAIN:
                st.retain[(part, off)] = msg.value()
            else:
                k = (part, msg.key())
                if k not in st.compact or st.compact[k][0] < off:
                    st.compact[k] = (off, msg.value())

    sent, t0 = 0, time.monotonic()
    while b.proc is not None or sent == 0:
        if sent > rate * (time.monotonic() - t0):
            p.poll(0.001)
            continue
        try:
            p.produce(TOPIC, b"c%d-%d" % (n, sent), on_delivery=delivered)
            if sent % 2 == 0:
                p.produce(RETAIN, b"r%d-%d" % (n, sent) + PAD, on_delivery=delivered)
            if sent % 10 == 0:
                p.produce(COMPACT, b"k%d-%d" % (n, sent) + PAD, key=b"key%d" % ((sent // 10) % keys),
                          on_delivery=delivered)
            sent += 1
        except BufferError:
            p.poll(0.01)
        p.poll(0)
    return p, sent


def _consume(b: KafkaCoreBroker, st: State, stop: threading.Event, first: dict[int, int],
             member: int | None = None, assignor: str = "cooperative-sticky", delay: float = 0.0) -> None:
    """One consumer of the group for one cycle: from the stored offsets, commit synchronously
    after each batch; record the commits acknowledged and the first offset read per partition.
    ``member`` None: manual assignment of every partition; else a member that subscribes
    (after ``delay`` seconds)."""
    from confluent_kafka import Consumer, KafkaException, TopicPartition

    if stop.wait(delay):
        return
    conf: dict[str, Any] = {"bootstrap.servers": b.bootstrap, "group.id": GROUP, "enable.auto.commit": False,
                            "auto.offset.reset": "earliest", "socket.timeout.ms": 1000, "log_level": 0}
    if member is None:
        c = Consumer(conf)
        c.assign([TopicPartition(TOPIC, i) for i in range(st.partitions)])   # OFFSET_INVALID: the stored one
    else:
        c = Consumer({**conf, **GROUP_CLIENT, "partition.assignment.strategy": assignor})

        def assigned(_: Any, parts: list[Any]) -> None:   # the client assigns them after this returns
            with st.lock:
                st.assignments += len(parts)
                st.member_assigned[member] = st.member_assigned.get(member, 0) + len(parts)
                if st.restarted and parts:
                    st.joined_after_restart.add(member)
                for tp in parts:
                    st.owners.setdefault(tp.partition, set()).add(member)

        c.subscribe([TOPIC], on_assign=assigned)
    try:
        while not stop.is_set():
            msgs = c.consume(500, 0.1)
            nxt: dict[int, int] = {}
            for m in msgs:
                if m.error():
                    continue
                part, off = m.partition(), m.offset()
                first.setdefault(part, off)
                nxt[part] = off + 1
                want = st.plain.get((part, off))
                if want is not None and want != m.value():
                    st.problem(f"group consumer read {m.value()!r} at {part}/{off}, acknowledged {want!r}")
            if not nxt:
                continue
            with st.lock:
                st.consumed += len(msgs)
                for q, o in nxt.items():
                    st.commits_sent[q] = max(st.commits_sent.get(q, 0), o)
            try:
                done = c.commit(offsets=[TopicPartition(TOPIC, q, o) for q, o in nxt.items()], asynchronous=False)
            except KafkaException:
                continue           # the broker went away mid-commit: not acknowledged
            with st.lock:
                for tp in done or []:
                    if tp.error is None:
                        st.commits_acked += 1
                        st.commits[tp.partition] = max(st.commits.get(tp.partition, 0), tp.offset)
    finally:
        c.close()


def _watch_segments(d: Path, stop: threading.Event, st: State) -> None:
    """Sample the retained topic's folders: every segment base offset ever seen on disk."""
    while not stop.wait(0.05):
        for pdir in (d / "logs").glob(RETAIN + "-*"):
            part = int(pdir.name.rsplit("-", 1)[1])
            try:
                names = [f.name for f in pdir.iterdir()]
            except FileNotFoundError:
                continue
            for name in names:
                if name.endswith(".log"):
                    with st.lock:
                        st.segments_seen.add((part, int(name.split(".")[0])))


def _read(c: Any, topic: str, part: int, start: int, end: int, deadline_s: float = 60) -> dict[int, tuple[Any, bytes]]:
    """Offset -> (key, value) of topic/part in [start, end), with an assigned consumer."""
    from confluent_kafka import TopicPartition

    out: dict[int, tuple[Any, bytes]] = {}
    if start >= end:
        return out
    c.assign([TopicPartition(topic, part, start)])
    deadline = time.monotonic() + deadline_s
    pos = start
    while pos < end and time.monotonic() < deadline:
        for m in c.consume(10000, 0.05):   # returns early only when 10000 are there
            if m.error():
                raise RuntimeError(f"{topic}/{part}: {m.error()}")
            out[m.offset()] = (m.key(), m.value())
            pos = m.offset() + 1
    c.unassign()
    return out


def _verify(b: KafkaCoreBroker, st: State, first: dict[int, int], prev_commits: dict[int, int],
            prev_sent: dict[int, int]) -> None:
    """The checks after a restart (see the module docstring)."""
    from confluent_kafka import Consumer, KafkaError, TopicPartition

    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": GROUP + "-check", "enable.auto.commit": False,
                  "auto.offset.reset": "error", "fetch.max.bytes": 8 << 20, "log_level": 0})
    try:
        # the consumer group: committed offsets never below the last acknowledged commit, and the
        # cycle's consumer started at the stored offset
        g = Consumer({"bootstrap.servers": b.bootstrap, "group.id": GROUP, "enable.auto.commit": False,
                      "log_level": 0})
        got = g.committed([TopicPartition(TOPIC, i) for i in range(st.partitions)], timeout=30)
        g.close()
        for tp in got:
            want = st.commits.get(tp.partition)
            if want is None:
                continue
            st.commits_checked += 1
            if tp.offset < want:
                st.moved_back += 1
                st.problem(f"committed offset of {tp.partition} is {tp.offset} after restart, acknowledged {want}")
        for part, off in first.items():
            # A commit the client gave up on (the kill, or its socket timeout) may still have been
            # stored: the stored offset is then between the last acknowledged and the last sent one.
            st.resume_checked += 1
            acked = prev_commits.get(part, 0)
            if not acked <= off <= max(acked, prev_sent.get(part, 0)):
                st.problem(f"group consumer resumed {part} at {off}: last acknowledged commit {acked}, "
                           f"highest commit sent {prev_sent.get(part, 0)}")

        # the plain topic: this cycle's acknowledged records, at their offsets
        by_part: dict[int, list[int]] = {}
        for part, off in st.plain_cycle:
            by_part.setdefault(part, []).append(off)
        for part, offs in by_part.items():
            seen = _read(c, TOPIC, part, min(offs), max(offs) + 1)
            for off in offs:
                if seen.get(off, (None, None))[1] != st.plain[(part, off)]:
                    st.problem(f"{TOPIC} {part}/{off}: acknowledged {st.plain[(part, off)]!r}, "
                               f"read {seen.get(off)!r}")
        st.plain_cycle.clear()

        removed = 0
        for part in range(SIDE_PARTITIONS):
            # the compacted topic: the latest acknowledged value of every key is readable
            lo, hi = c.get_watermark_offsets(TopicPartition(COMPACT, part), timeout=30)
            seen = _read(c, COMPACT, part, lo, hi)
            removed += (hi - lo) - len(seen)
            last: dict[bytes, int] = {}
            for off, (k, _) in seen.items():
                last[k] = max(last.get(k, -1), off)
            for (p, key), (off, val) in st.compact.items():
                if p != part:
                    continue
                if off in seen and seen[off][1] != val:
                    st.problem(f"{COMPACT} {part}/{off}: acknowledged {val!r}, read {seen[off]!r}")
                elif off not in seen and last.get(key, -1) < off:
                    st.problem(f"{COMPACT} {part} key {key!r}: latest acknowledged {off} gone, "
                               f"latest in the log {last.get(key)}")

            # the retained topic: log start only forward, acknowledged records above it there,
            # nothing below it served
            lo, hi = c.get_watermark_offsets(TopicPartition(RETAIN, part), timeout=30)
            if lo < st.log_start[part]:
                st.problem(f"{RETAIN} {part}: log start moved back {st.log_start[part]} -> {lo}")
            st.log_start[part] = max(st.log_start[part], lo)
            try:
                seen = _read(c, RETAIN, part, lo, hi)
            except RuntimeError:       # retention moved the start while reading: read again from it
                lo = c.get_watermark_offsets(TopicPartition(RETAIN, part), timeout=30)[0]
                seen = _read(c, RETAIN, part, lo, hi)
            lo = max(lo, c.get_watermark_offsets(TopicPartition(RETAIN, part), timeout=30)[0])
            for (p, off), val in st.retain.items():
                if p == part and off >= lo and seen.get(off, (None, None))[1] != val:
                    st.problem(f"{RETAIN} {part}/{off}: acknowledged {val!r}, read {seen.get(off)!r}")
            if lo > 0 and part == st.cycle % SIDE_PARTITIONS:   # ~0.5 s each: one partition a cycle
                c.assign([TopicPartition(RETAIN, part, lo - 1)])
                err = None
                deadline = time.monotonic() + 10
                while err is None and time.monotonic() < deadline:
                    for m in c.consume(100, 0.5):
                        if m.error():
                            err = m.error()
                        elif m.offset() < lo:
                            st.problem(f"{RETAIN} {part}: offset {m.offset()} served below log start {lo}")
                if err is None or err.code() != KafkaError._AUTO_OFFSET_RESET:
                    st.problem(f"{RETAIN} {part}: fetch below log start {lo} got {err}")
                c.unassign()
        if removed > st.removed_by_cleaner:
            st.cleaner_runs += 1
        st.removed_by_cleaner = max(st.removed_by_cleaner, removed)
    finally:
        c.close()


def _read_back_all(bootstrap: str, partitions: int) -> list[tuple[int, int, bytes]]:
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "crash-loop-check", "enable.auto.commit": False,
                  "log_level": 0})
    out: list[tuple[int, int, bytes]] = []
    for i in range(partitions):
        hi = c.get_watermark_offsets(TopicPartition(TOPIC, i), timeout=30)[1]
        out += [(i, off, v) for off, (_, v) in _read(c, TOPIC, i, 0, hi, 300).items()]
    c.close()
    return out


Members = dict[int | None, tuple[threading.Thread, threading.Event]]   # member -> its thread, its stop


def _join(members: Members, b: KafkaCoreBroker, st: State, first: dict[int, int], m: int | None,
          assignor: str, delay: float = 0.0) -> None:
    """Start consumer ``m`` of the group (see ``_consume``) in a thread of its own."""
    ev = threading.Event()
    th = threading.Thread(target=_consume, args=(b, st, ev, first, m, assignor, delay), daemon=True)
    members[m] = (th, ev)
    th.start()


def _caught_up(st: State) -> bool:
    with st.lock:
        return all(st.commits.get(part, 0) >= end for part, end in st.acked_end.items())


def run(cycles: int, partitions: int = 4, run_s: tuple[float, float] = (0.4, 1.2), rate: int = 20_000,
        data_dir: Path | None = None, seed: int = 16, keys: int = 50, consumers: str = "group",
        assignor: str = "cooperative-sticky") -> dict[str, Any]:
    if consumers not in ("group", "assign"):
        raise ValueError(f"consumers must be group or assign, not {consumers!r}")
    rng = random.Random(seed)
    own = data_dir is None
    d = data_dir or Path(tempfile.mkdtemp(prefix="crash-loop-"))
    b = KafkaCoreBroker(data_dir=d, settings=dict(BROKER_SETTINGS))
    b.start()
    st = State(partitions)
    recovery: list[float] = []
    sent = 0
    stop_watch = threading.Event()
    watcher = threading.Thread(target=_watch_segments, args=(d, stop_watch, st), daemon=True)
    watcher.start()
    try:
        _create_topics(b.bootstrap, partitions)
        for n in range(cycles):
            first: dict[int, int] = {}
            prev_commits, prev_sent = dict(st.commits), dict(st.commits_sent)
            st.restarted = False
            members: Members = {}
            if consumers == "assign":
                _join(members, b, st, first, None, assignor)
            else:   # the second member joins under load: a rebalance with commits in flight
                _join(members, b, st, first, 0, assignor)
                _join(members, b, st, first, 1, assignor, rng.uniform(0.05, 0.3))
            killer = threading.Timer(rng.uniform(*run_s), b.kill)
            killer.start()
            p, k = _produce(b, n, rate, keys, st)
            sent += k
            killer.join()
            t = time.monotonic()
            b.start(timeout=120)
            recovery.append(time.monotonic() - t)
            st.restarted = True
            if consumers == "group":   # a member leaves and another joins: a rebalance on the restarted coordinator
                members[1][1].set()
                _join(members, b, st, first, MEMBERS, assignor)
            # what was in flight at the kill is retried into the new broker (the idempotent
            # producer's state recovered from the log) or fails; either way it is settled here
            p.flush(30)
            if consumers == "group":   # the members commit the cycle through the restarted coordinator
                deadline = time.monotonic() + CATCH_UP_S
                while time.monotonic() < deadline and not (_caught_up(st) and MEMBERS in st.joined_after_restart):
                    time.sleep(0.05)
                st.caught_up += _caught_up(st)
                st.rebalanced_after_restart += MEMBERS in st.joined_after_restart
                st.joined_after_restart.clear()
            for th, ev in members.values():  # a commit in flight at the kill may be acknowledged by the new broker
                ev.set()
                th.join(60)
            _verify(b, st, first, prev_commits, prev_sent)
            st.cycle += 1
        values = _read_back_all(b.bootstrap, partitions)
    finally:
        stop_watch.set()
        watcher.join()
        b.stop(signal.SIGTERM)
        present = {(int(p.name.rsplit("-", 1)[1]), int(f.name.split(".")[0]))
                   for p in (d / "logs").glob(RETAIN + "-*") for f in p.glob("*.log")}
        if own:
            shutil.rmtree(d, ignore_errors=True)
    found = {(p, o): v for p, o, v in values}
    lost = sum(1 for k, v in st.plain.items() if found.get(k) != v)
    unique = {v for _, _, v in values}
    if lost:
        st.problem(f"{lost} acknowledged {TOPIC} records missing at the end")
    if not st.plain or st.commits_checked == 0:
        st.problem("no acknowledged record or no checked commit: the checks were vacuous")
    if st.removed_by_cleaner == 0:
        st.problem("the cleaner removed nothing from the compacted topic: the compaction check was vacuous")
    if consumers == "group":
        if len(st.member_assigned) < MEMBERS:
            st.problem(f"only members {sorted(st.member_assigned)} were ever assigned partitions: "
                       "the group check was vacuous")
        if not any(len(owners) > 1 for owners in st.owners.values()):
            st.problem("no partition ever moved between members: the rebalance check was vacuous")
        if st.rebalanced_after_restart == 0:
            st.problem("no member joining after a restart was ever handed partitions: the rebalance check was vacuous")
    deleted = len(st.segments_seen - present)
    if deleted == 0:
        st.problem("no retained segment was deleted: the retention check was vacuous")
    return {"cycles": cycles, "partitions": partitions, "sent": sent, "acked": len(st.plain),
            "found": len(st.plain) - lost, "lost": lost, "duplicates": len(values) - len(unique),
            "records_in_log": len(values), "compact_acked": len(st.compact), "retain_acked": len(st.retain),
            "group_consumed": st.consumed, "commits_acked": st.commits_acked,
            "commits_checked": st.commits_checked, "offsets_moved_back": st.moved_back,
            "resumes_checked": st.resume_checked, "consumers": consumers,
            "assignor": assignor if consumers == "group" else None, "assignments": st.assignments,
            "assigned_per_member": {str(m): n for m, n in sorted(st.member_assigned.items())},
            "caught_up_cycles": st.caught_up if consumers == "group" else None,
            "rebalanced_after_restart_cycles": st.rebalanced_after_restart if consumers == "group" else None,
            "cleaner_runs": st.cleaner_runs,
            "records_removed_by_cleaner": st.removed_by_cleaner, "segments_deleted": deleted,
            "retain_log_start_sum": sum(st.log_start.values()),
            "recovery_s_median": round(statistics.median(recovery), 3),
            "recovery_s_p99": round(statistics.quantiles(recovery, n=100, method="inclusive")[98] if len(recovery) > 1 else recovery[0], 3),
            "recovery_s_max": round(max(recovery), 3), "problems": st.problems}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cycles", type=int, default=100)
    ap.add_argument("--partitions", type=int, default=4)
    ap.add_argument("--run-s", default="0.4-1.2", help="seconds of load before each kill: LOW-HIGH")
    ap.add_argument("--rate", type=int, default=20_000, help="records/s offered to crash-loop (acks=all)")
    ap.add_argument("--keys", type=int, default=50, help="key space of the compacted topic, per run")
    ap.add_argument("--consumers", choices=("group", "assign"), default="group",
                    help="group: two members subscribe (rebalances); assign: one consumer, manual assignment")
    ap.add_argument("--assignor", choices=("cooperative-sticky", "range", "roundrobin"),
                    default="cooperative-sticky", help="group mode: partition.assignment.strategy")
    ap.add_argument("--out", type=Path)
    a = ap.parse_args()
    lo, hi = (float(x) for x in a.run_s.split("-"))
    t = time.monotonic()
    res = run(a.cycles, a.partitions, (lo, hi), a.rate, keys=a.keys, consumers=a.consumers, assignor=a.assignor)
    res["wall_s"] = round(time.monotonic() - t, 1)
    line = json.dumps(res)
    print(line)
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        with open(a.out, "a") as f:
            f.write(line + "\n")
    sys.exit(0 if not res["problems"] else 1)


if __name__ == "__main__":
    main()
