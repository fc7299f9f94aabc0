"""``kafka-core mirror`` between two kafka-core brokers (two single-node clusters), issue 13.

The crash test mirrors a 6-partition topic while it is being produced to, kills -9 the mirror
and restarts the target broker (and the source broker) mid-run, and checks that every source
record reached the target, in the source's order per partition, with duplicates only from the
crashes (counted and printed).  The others check what is carried over (names, configs, partition
counts, keys, headers, timestamps), that a rerun copies nothing twice, and offset translation.
"""

from __future__ import annotations

import json
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kafka_broker.testing import EmbeddedBroker
from kafka_client import (
    AdminClient,
    ConfigResource,
    ConfigResourceType,
    Consumer,
    NewTopic,
    Producer,
    TopicPartition,
)
from kafka_tools.mirror import OffsetSync, translate

from .mirror_helpers import MirrorProcess, kafka_core, paced_producer, read_partitions, wait_until


@pytest.fixture
def clusters(tmp_path: Path) -> Iterator[tuple[EmbeddedBroker, EmbeddedBroker]]:
    source = EmbeddedBroker(tmp_path / "source").start()
    target = EmbeddedBroker(tmp_path / "target").start()
    try:
        yield source, target
    finally:
        source.cleanup()
        target.cleanup()


def _create(bootstrap: str, name: str, partitions: int, configs: dict[str, str] | None = None) -> None:
    with AdminClient(bootstrap) as admin:
        admin.create_topics([NewTopic(name, partitions, 1, configs or {})], raise_on_error=True)


def _values(recs: list[Any]) -> list[bytes]:
    return [bytes(r.value) for r in recs]


def _first_occurrences(vals: list[bytes]) -> list[bytes]:
    seen: set[bytes] = set()
    out = []
    for v in vals:
        if v not in seen:
            seen.add(v)
            out.append(v)
    return out


def check_copy(source: dict[int, list[Any]], target: dict[int, list[Any]]) -> int:
    """Every source record is in the target partition of the same number, first copies in the
    source's order; returns the number of duplicates."""
    dups = 0
    for p, recs in source.items():
        src, tgt = _values(recs), _values(target[p])
        missing = set(src) - set(tgt)
        assert not missing, f"partition {p}: {len(missing)} source records missing, e.g. {sorted(missing)[:5]}"
        assert _first_occurrences(tgt) == _first_occurrences(src), f"partition {p}: order differs"
        dups += len(tgt) - len(src)
    return dups


def test_mirror_survives_crashes_and_restarts(clusters: tuple[EmbeddedBroker, EmbeddedBroker], tmp_path: Path) -> None:
    source, target = clusters
    _create(source.bootstrap, "events", 6)
    stop = threading.Event()
    produced = [0]

    def produce() -> None:
        # paced so that the crashes below happen while records keep coming
        with Producer(source.bootstrap, linger_ms=2) as p:
            i = 0
            while not stop.is_set() and i < 60000:
                for _ in range(300):
                    part = i % 6
                    p.produce("events", b"%d:%d" % (part, i // 6), key=b"k%d" % (i % 97),
                              headers=[("n", b"%d" % i)], partition=part, timestamp_ms=1_700_000_000_000 + i)
                    i += 1
                time.sleep(0.03)
            p.flush()
            produced[0] = i

    t = threading.Thread(target=produce)
    t.start()
    # A short session (Kafka's group.min.session.timeout.ms) so that the group notices the killed
    # mirror in seconds rather than the default 45 s.
    args = ("--include", "events", "--sync-interval-ms", "300", "--consumer-property", "session_timeout_ms=6000",
            "--consumer-property", "heartbeat_interval_ms=1000")
    mirror = MirrorProcess(source.bootstrap, target.bootstrap, *args, log=tmp_path / "mirror.log").start()
    tps = [TopicPartition("events", p) for p in range(6)]

    def target_ends() -> dict[int, int]:
        try:
            with Consumer(bootstrap_servers=target.bootstrap, allow_auto_create_topics=False) as c:
                return {tp.partition: max(0, v) for tp, v in c.end_offsets(tps).items()}
        except Exception:  # noqa: BLE001 - the topic may not exist yet, or the target is restarting
            return {}

    def committed() -> dict[int, int]:
        with AdminClient(source.bootstrap) as admin:
            return {tp.partition: om.offset for tp, om in admin.list_group_offsets("kafka-core-mirror").items()}

    try:
        wait_until(lambda: sum(committed().values()) > 5000, 60, "the mirror to copy and commit 5000 records")
        mirror.kill9()                           # crash: the records since its last checkpoint go again
        time.sleep(0.5)
        at_kill, done_at_kill = target_ends(), committed()
        # the restarted mirror copies source [committed, copied) of each partition a second time
        crash_dups = sum(at_kill.get(p, 0) - done_at_kill.get(p, 0) for p in range(6))
        mirror.start()
        wait_until(lambda: sum(target_ends().values()) > sum(at_kill.values()) + 10000, 90,
                   "the restarted mirror to copy more")
        target.restart(signal.SIGKILL)            # the target crashes and comes back
        wait_until(lambda: sum(target_ends().values()) > sum(at_kill.values()) + 20000, 90,
                   "the mirror to go on after the target restarted")
        source.restart()                          # the source restarts too
        t.join(120)
        assert not t.is_alive()
        src = read_partitions(source.bootstrap, "events", 6)
        total = sum(len(v) for v in src.values())
        wait_until(lambda: committed() == {p: len(src[p]) for p in range(6)}, 120,
                   f"all {total} records mirrored and committed")
        summary = mirror.stop()
    finally:
        stop.set()
        t.join(60)
        mirror.kill()
    assert summary["partitions"], summary
    tgt = read_partitions(target.bootstrap, "events", 6)
    dups = check_copy(src, tgt)
    print(f"\nmirrored {total} records (6 partitions) across a kill -9 of the mirror and restarts of both "
          f"brokers (target: kill -9): {dups} duplicates; {crash_dups} of them forced by the mirror's crash "
          f"(copied after its last checkpoint), {dups - crash_dups} by the target's crash; "
          f"last run: {json.dumps(summary)}")
    assert dups >= crash_dups
    assert dups - crash_dups <= 5000, "more duplicates than a target restart can explain"


def test_rename_include_configs_and_no_copy_twice(clusters: tuple[EmbeddedBroker, EmbeddedBroker]) -> None:
    source, target = clusters
    _create(source.bootstrap, "app.clicks", 4, {"cleanup.policy": "compact", "retention.ms": "3600000"})
    _create(source.bootstrap, "app.views", 2)
    _create(source.bootstrap, "other", 1)
    with Producer(source.bootstrap) as p:
        for i in range(400):
            p.produce("app.clicks", b"c%d" % i, key=b"k%d" % i, headers=[("h", b"%d" % i), ("null", None)],
                      partition=i % 4, timestamp_ms=1_600_000_000_000 + i * 1000)
            p.produce("app.views", None if i % 10 == 0 else b"v%d" % i, key=None if i % 3 else b"k",
                      partition=i % 2, timestamp_ms=1_650_000_000_000 + i)
            p.produce("other", b"o")
        p.flush()
    args = ["mirror", "--source-bootstrap", source.bootstrap, "--target-bootstrap", target.bootstrap,
            "--include", r"app\..*", "--rename", "{source}.{topic}", "--source-alias", "dc1",
            "--until-caught-up", "--json"]
    r = kafka_core(*args)
    assert r.returncode == 0, r.stderr[-3000:]
    summary = json.loads(r.stdout)
    assert summary["records"] == 800 and summary["caught_up"] is True
    assert summary["topics"] == {"app.clicks": "dc1.app.clicks", "app.views": "dc1.app.views"}
    with AdminClient(target.bootstrap) as admin:
        topics = admin.list_topics()
        assert {"dc1.app.clicks", "dc1.app.views", "kc-mirror-offset-syncs.dc1.internal"} <= topics
        assert "other" not in topics and "dc1.other" not in topics
        meta = admin.describe_topics(["dc1.app.clicks", "dc1.app.views"])
        assert meta["dc1.app.clicks"].num_partitions == 4 and meta["dc1.app.views"].num_partitions == 2
        res = ConfigResource(ConfigResourceType.TOPIC, "dc1.app.clicks")
        cfg = admin.describe_configs([res])[res]
        assert cfg["cleanup.policy"].value == "compact" and cfg["retention.ms"].value == "3600000"
        res = ConfigResource(ConfigResourceType.TOPIC, "kc-mirror-offset-syncs.dc1.internal")
        assert admin.describe_configs([res])[res]["cleanup.policy"].value == "compact"
    for topic, n in (("app.clicks", 4), ("app.views", 2)):
        src = read_partitions(source.bootstrap, topic, n)
        tgt = read_partitions(target.bootstrap, "dc1." + topic, n)
        for p in range(n):
            got = [(r.key, r.value, list(r.headers), r.timestamp) for r in tgt[p]]
            want = [(r.key, r.value, list(r.headers), r.timestamp) for r in src[p]]
            assert got == want, (topic, p)
    # A second run finds nothing new: the group's offsets were committed, nothing is copied twice.
    r = kafka_core(*args)
    assert r.returncode == 0, r.stderr[-3000:]
    assert json.loads(r.stdout)["records"] == 0
    assert sum(len(v) for v in read_partitions(target.bootstrap, "dc1.app.clicks", 4).values()) == 400


def test_translate_offsets_moves_a_group_without_gap(clusters: tuple[EmbeddedBroker, EmbeddedBroker]) -> None:
    source, target = clusters
    _create(source.bootstrap, "orders", 3)

    def produce(start: int, n: int) -> None:
        with Producer(source.bootstrap) as p:
            for i in range(start, start + n):
                for part in range(3):
                    p.produce("orders", b"%d:%d" % (part, i), partition=part)
            p.flush()

    mirror = ["mirror", "--source-bootstrap", source.bootstrap, "--target-bootstrap", target.bootstrap,
              "--until-caught-up", "--json"]
    produce(0, 1000)
    r = kafka_core(*mirror)
    assert r.returncode == 0, r.stderr[-3000:]
    produce(1000, 1000)
    r = kafka_core(*mirror)
    assert r.returncode == 0, r.stderr[-3000:]
    # The application's group read partition 0 to exactly the end of the first run, partition 1
    # half-way into the second, and nothing of partition 2 (offset 0: no sync below it, so the
    # target's log start).
    committed = {0: 1000, 1: 1500, 2: 0}
    with AdminClient(source.bootstrap) as admin:
        admin.alter_group_offsets("app", {TopicPartition("orders", p): o for p, o in committed.items()})
    r = kafka_core("mirror", "translate-offsets", "--source-bootstrap", source.bootstrap,
                   "--target-bootstrap", target.bootstrap, "--group", "app", "--execute", "--json")
    assert r.returncode == 0, r.stderr[-3000:]
    rows = {row["partition"]: row for row in json.loads(r.stdout)["offsets"]}
    assert set(rows) == {0, 1, 2}
    assert rows[2]["target_offset"] == 0 and rows[2]["max_rereads"] is None
    assert rows[0]["exact"] is True and rows[0]["target_offset"] == 1000
    assert rows[1]["target_offset"] <= 1500 and rows[1]["max_rereads"] == 1500 - rows[1]["target_offset"]
    # The group, moved, resumes on the target: no gap, and re-reads at most the checkpoint lag.
    with Consumer(bootstrap_servers=target.bootstrap, group_id="app", auto_offset_reset="earliest",
                  enable_auto_commit=False) as c:
        c.assign([TopicPartition("orders", p) for p in (0, 1)])
        got: dict[int, list[bytes]] = {0: [], 1: []}
        deadline = time.monotonic() + 30
        while (len(got[0]) < 1000 or len(got[1]) < 2000 - rows[1]["target_offset"]) and time.monotonic() < deadline:
            for tp, recs in c.poll(0.5).items():
                got[tp.partition] += _values(recs)
    assert got[0] == [b"0:%d" % i for i in range(1000, 2000)]              # exact: no record twice
    start = rows[1]["target_offset"]
    assert got[1] == [b"1:%d" % i for i in range(start, 2000)]              # from the sync, on
    print(f"\npartition 1 moved at source offset 1500 resumes at {start}: {1500 - start} records re-read "
          f"(the checkpoint lag)")


def test_two_mirrors_in_one_group_share_the_partitions(clusters: tuple[EmbeddedBroker, EmbeddedBroker],
                                                       tmp_path: Path) -> None:
    source, target = clusters
    _create(source.bootstrap, "shared", 6)
    args = ("--include", "shared", "--group", "pair", "--sync-interval-ms", "300")
    a = MirrorProcess(source.bootstrap, target.bootstrap, *args, log=tmp_path / "a.log").start()
    b = MirrorProcess(source.bootstrap, target.bootstrap, *args, log=tmp_path / "b.log")
    t: threading.Thread | None = None

    def assigned(n: int) -> bool:
        with AdminClient(source.bootstrap) as admin:
            g = admin.describe_groups(["pair"]).get("pair")
        return g is not None and g.state == "Stable" and len(g.members) == n and all(m.assignment for m in g.members)

    try:
        wait_until(lambda: assigned(1), 60, "the first mirror to get the partitions")
        # ~4000 records/s for 9 s: the second mirror joins mid-run
        t, stop = paced_producer(source.bootstrap, "shared", 6, 36000, 200, 0.05)
        wait_until(lambda: sum(len(v) for v in read_partitions(target.bootstrap, "shared", 6).values()) > 4000, 60,
                   "the first mirror to copy some")
        b.start()     # joins mid-run: the first gives up half its partitions with records in flight
        wait_until(lambda: assigned(2), 60, "both mirrors to share the group")
        t.join(120)
        src = read_partitions(source.bootstrap, "shared", 6)

        def all_committed() -> bool:
            with AdminClient(source.bootstrap) as admin:
                got = {tp.partition: om.offset for tp, om in admin.list_group_offsets("pair").items()}
            return got == {p: len(src[p]) for p in range(6)}

        wait_until(all_committed, 120, "the pair to mirror and commit everything")
        sa, sb = a.stop(), b.stop()
    finally:
        if t is not None:
            stop.set()
            t.join(60)
        a.kill()
        b.kill()
    # Both worked, on the partitions the group gave them; no record twice: a revoked partition's
    # records are acknowledged and committed before it moves.
    assert sa["records"] > 0 and sb["records"] > 0, (sa, sb)
    assert set(sa["partitions"]) | set(sb["partitions"]) == {f"shared:{p}" for p in range(6)}
    dups = check_copy(src, read_partitions(target.bootstrap, "shared", 6))
    print(f"\ntwo mirrors: {sa['records']} + {sb['records']} records, partitions {sorted(sa['partitions'])} / "
          f"{sorted(sb['partitions'])}, {dups} duplicates")
    assert dups == 0


@pytest.mark.parametrize("mode", [(), ("--exactly-once",)], ids=["at-least-once", "exactly-once"])
def test_a_record_the_target_refuses_stops_the_mirror_without_loss(
        clusters: tuple[EmbeddedBroker, EmbeddedBroker], mode: tuple[str, ...]) -> None:
    source, target = clusters
    _create(source.bootstrap, "big", 1)
    _create(target.bootstrap, "big", 1, {"max.message.bytes": "2000"})   # the target refuses larger batches
    with Producer(source.bootstrap, linger_ms=0) as p:
        for i in range(30):
            p.send("big", (b"x" * 5000) if i == 20 else b"small %d" % i).result(10)
    r = kafka_core("mirror", "--source-bootstrap", source.bootstrap, "--target-bootstrap", target.bootstrap,
                   "--include", "big", "--until-caught-up", "--json", "--sync-interval-ms", "100", *mode,
                   timeout=120)
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr[-2000:])
    assert "in a row" in r.stderr
    # Nothing at or after the refused record is committed: a rerun (once the target takes it)
    # starts there, so the record is not lost.
    with AdminClient((target if mode else source).bootstrap) as admin:
        committed = admin.list_group_offsets("kc-mirror.source.kafka-core-mirror" if mode else "kafka-core-mirror")
    assert committed.get(TopicPartition("big", 0)) is None or committed[TopicPartition("big", 0)].offset <= 20
    if mode:   # what a read_committed reader sees: no transaction with the refused record committed
        got = _values(read_partitions(target.bootstrap, "big", 1, until_idle=2)[0])
        with Consumer(bootstrap_servers=target.bootstrap, isolation_level="read_committed",
                      auto_offset_reset="earliest", enable_auto_commit=False) as c:
            c.assign([TopicPartition("big", 0)])
            seen = [bytes(r.value) for recs in c.poll(3.0).values() for r in recs]
        assert set(seen) <= {b"small %d" % i for i in range(20)}, seen
    else:
        got = _values(read_partitions(target.bootstrap, "big", 1)[0])
    assert b"x" * 5000 not in got and set(got) <= {b"small %d" % i for i in range(30)}


def test_translate_picks_the_largest_sync_below_the_offset() -> None:
    def sync(up: int, down: int) -> OffsetSync:
        return OffsetSync("t", 0, up, "t", 0, down)

    syncs = [sync(99, 99), sync(199, 199), sync(150, 230), sync(199, 260)]   # a rewind re-copied 150..199
    assert translate(syncs, 200) == sync(199, 260)      # of equal upstream offsets the newest: exact
    assert translate(syncs, 180) == sync(150, 230)      # largest below: re-reads 151..179 at most
    assert translate(syncs, 120) == sync(99, 99)
    assert translate(syncs, 99) is None                  # nothing below: the caller falls back to log start


@pytest.mark.parametrize("args, message", [
    ((), "--source-bootstrap is required"),
    (("--include", "("), "bad topic regex"),
    (("--rename", "{cluster}.{topic}"), "only {source} and {topic}"),
    (("--rename", "copy"), "must contain {topic}"),
    (("--producer-property", "linger_ms"), "expected KEY=VALUE"),
])
def test_bad_arguments_exit_2(args: tuple[str, ...], message: str) -> None:
    base = () if not args else ("--source-bootstrap", "127.0.0.1:1", "--target-bootstrap", "127.0.0.1:2")
    r = kafka_core("mirror", *base, *args, timeout=60)
    assert r.returncode == 2 and message in r.stderr, (r.returncode, r.stderr[-1000:])


def test_exactly_once_across_crashes(clusters: tuple[EmbeddedBroker, EmbeddedBroker], tmp_path: Path) -> None:
    """--exactly-once: kill -9 the mirror and the target mid-run; a read_committed reader of the
    target sees every source record exactly once, in order (a read_uncommitted one may see the
    aborted copies too: counted)."""
    source, target = clusters
    _create(source.bootstrap, "pay", 3)
    t, stop = paced_producer(source.bootstrap, "pay", 3, 30000, 300, 0.03)
    args = ("--include", "pay", "--exactly-once", "--sync-interval-ms", "300")
    mirror = MirrorProcess(source.bootstrap, target.bootstrap, *args, log=tmp_path / "eos.log").start()
    eos_group = "kc-mirror.source.kafka-core-mirror"

    def progress() -> dict[int, int]:
        try:
            with AdminClient(target.bootstrap) as admin:
                return {tp.partition: om.offset for tp, om in admin.list_group_offsets(eos_group).items()}
        except Exception:  # noqa: BLE001 - the target is restarting
            return {}

    try:
        wait_until(lambda: sum(progress().values()) > 3000, 60, "a first transaction")
        mirror.kill9()
        mirror.start()
        wait_until(lambda: sum(progress().values()) > 9000, 60, "the restarted mirror's transactions")
        target.restart(signal.SIGKILL)
        t.join(120)
        src = read_partitions(source.bootstrap, "pay", 3)
        wait_until(lambda: progress() == {p: len(src[p]) for p in range(3)}, 120, "everything committed")
        summary = mirror.stop()
    finally:
        stop.set()
        t.join(60)
        mirror.kill()
    everything = read_partitions(target.bootstrap, "pay", 3, until_idle=3)
    committed = read_partitions(target.bootstrap, "pay", 3, read_committed={p: len(src[p]) for p in range(3)})
    for p in range(3):
        assert _values(committed[p]) == _values(src[p]), f"partition {p}: not exactly the source's records"
    aborted = sum(len(everything[p]) - len(src[p]) for p in range(3))
    print(f"\nexactly once: {sum(len(v) for v in src.values())} records, each once for read_committed across a "
          f"kill -9 of the mirror and of the target; {aborted} aborted copies visible to read_uncommitted; "
          f"last run {json.dumps(summary)}")


def test_transactional_source_mirrors_committed_records_only(clusters: tuple[EmbeddedBroker, EmbeddedBroker]) -> None:
    """read_committed (the default): an aborted transaction's records, written to the source log,
    are not copied; --until-caught-up still ends past the markers."""
    source, target = clusters
    _create(source.bootstrap, "tx", 2)
    p = Producer(source.bootstrap, transactional_id="app-tx")
    p.init_transactions()
    for k in range(3):
        p.begin_transaction()
        for i in range(100):
            p.produce("tx", b"%d-%d" % (k, i), partition=i % 2)
        p.flush()                        # written to the log before the abort
        if k == 1:
            p.abort_transaction()
        else:
            p.commit_transaction()
    p.close()
    r = kafka_core("mirror", "--source-bootstrap", source.bootstrap, "--target-bootstrap", target.bootstrap,
                   "--include", "tx", "--until-caught-up", "--json", timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert json.loads(r.stdout)["records"] == 200
    got = read_partitions(target.bootstrap, "tx", 2)
    assert sorted(v for recs in got.values() for v in _values(recs)) == sorted(
        b"%d-%d" % (k, i) for k in (0, 2) for i in range(100))
