"""A real stream processor against kafka-core and, the same app on the same input, against
Apache Kafka 4.x: Kafka Streams (from Maven) with ``processing.guarantee=exactly_once_v2``
counting words (python/kafka_bench/data/streams/WordCount.java); and the Java transactional
producer (KafkaProducer with transactional.id) that Streams is built on, on its own.

The input is N deterministic lines (null keys, 3 partitions, ``kafka_bench.streams.word_lines``:
the exact count of every word is known).  Streams re-keys by word through a repartition topic,
counts in a RocksDB store with a changelog topic and writes word -> count (Long) to a compacted
output topic; each commit interval is one transaction over the repartition records, changelog,
output and consumed offsets.  So a pass needs the whole exactly-once stack of the broker: the
Streams admin client creating internal topics with their configs, InitProducerId with a
transactional id, AddPartitionsToTxn, AddOffsetsToTxn/TxnOffsetCommit, EndTxn and the markers,
read_committed fetches and ListOffsets (the restore consumer reads the changelog under
read_committed), DeleteRecords on the repartition topic, the classic consumer group protocol.

What is checked, reading the output under read_committed: the last count of every word is
exactly its number of occurrences, and *every* committed output record is at most that (a
double-counted record, e.g. a replayed batch whose aborted output leaked, would exceed it) and
counts never go down within a partition (a store restored from a stale changelog would).  The
kill -9 test kills the Streams process as soon as some output is committed, starts it again with
the same application.id and state directory (Streams keeps its process id there, so the new
producer has the same transactional.id and fences the dead one's open transaction) and checks
the same; the state-lost test kills it with a transaction open and wipes its state directory
(a new transactional id: the coordinator's timeout must abort the old transaction); the zombie
test freezes one of two instances past its session timeout and resumes it (KIP-447 fencing by
the group generation); the reset test runs Kafka's application reset tool between two runs.

Kafka Streams runs on the classic consumer group protocol: kafka-core does not advertise
StreamsGroupHeartbeat (KIP-1071's ``group.protocol=streams``), so that is not tried.  Apache
Both brokers finalize transaction.version 2, so the Java client runs KIP-890 part 2 on both (the
epoch is bumped at every commit, TxnOffsetCommit v5 adds the group, Produce v12 the partitions);
test_java_tv2.py checks the epochs themselves.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from kafka_bench import apache_kafka as ak
from kafka_bench import streams
from kafka_bench.apache_kafka import ApacheKafka, ensure_jars
from kafka_bench.kafka_core_broker import KafkaCoreBroker

from tests.interop.conftest import create_topic

pytestmark = [pytest.mark.interop,
              pytest.mark.skipif(shutil.which("javac") is None, reason="a JDK is installed by ./dev test")]

LINES = 20_000
PARTITIONS = 3
# One stream thread, a short commit interval (many transactions in a small run), and a session
# timeout at the broker's minimum so that after kill -9 the dead member leaves the group in 6 s
# rather than Kafka's default 45 s.
APP_CONFIG = {"num.stream.threads": "1", "commit.interval.ms": "100", "repartition.purge.interval.ms": "100",
              "consumer.session.timeout.ms": "6000", "consumer.heartbeat.interval.ms": "1500"}


# The same broker settings on both sides: ApacheKafka sets group.initial.rebalance.delay.ms=0
# (as Kafka's own test configs do), so kafka-core gets it too rather than Kafka's 3 s default;
# timed-out transactions are looked for every second rather than every 10 s (the state-lost test
# waits for that abort).
SETTINGS = {"num.partitions": "1", "auto.create.topics.enable": "true", "group.initial.rebalance.delay.ms": "0",
            "transaction.abort.timed.out.transaction.cleanup.interval.ms": "1000"}


@pytest.fixture(scope="module")
def apache() -> Iterator[ApacheKafka]:
    ensure_jars()
    k = ApacheKafka(heap="512m", extra=SETTINGS)
    k.start()
    yield k
    k.cleanup()


@pytest.fixture(scope="module")
def core() -> Iterator[KafkaCoreBroker]:
    with KafkaCoreBroker(settings=SETTINGS) as b:
        yield b


@pytest.fixture(params=["kafka-core", "apache"])
def bootstrap(request: pytest.FixtureRequest) -> str:
    server = request.getfixturevalue("core" if request.param == "kafka-core" else "apache")
    return str(server.bootstrap)


class Run:
    """One word count run: its topics (the input produced), the expected counts, the app (not
    started) and the output reader; ``close()`` stops both."""

    def __init__(self, bootstrap: str, work_dir: Path, n: int = LINES) -> None:
        tag = uuid.uuid4().hex[:8]
        self.input_topic, self.output_topic, self.app_id = f"wc-lines-{tag}", f"wc-counts-{tag}", f"wc-{tag}"
        create_topic(bootstrap, self.input_topic, PARTITIONS)
        create_topic(bootstrap, self.output_topic, PARTITIONS, {"cleanup.policy": "compact"})
        lines, self.expected = streams.word_lines(n)
        streams.produce_lines(bootstrap, self.input_topic, lines, PARTITIONS)
        self.app = streams.WordCount(bootstrap, self.app_id, self.input_topic, self.output_topic, work_dir,
                                     APP_CONFIG)
        self.out = streams.CountsReader(bootstrap, self.output_topic, PARTITIONS)

    def close(self) -> None:
        self.app.stop()
        self.out.close()


@pytest.fixture
def run(bootstrap: str, tmp_path: Path) -> Iterator[Run]:
    r = Run(bootstrap, tmp_path)
    yield r
    r.close()


def committed_offsets(bootstrap: str, group: str, topic: str) -> dict[int, int]:
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        return {tp.partition: tp.offset
                for tp in c.committed([TopicPartition(topic, p) for p in range(PARTITIONS)], timeout=10)}
    finally:
        c.close()


def topic_configs(bootstrap: str, topic: str) -> dict[str, str]:
    from confluent_kafka.admin import AdminClient, ConfigResource

    res = ConfigResource(ConfigResource.Type.TOPIC, topic)
    admin = AdminClient({"bootstrap.servers": bootstrap})   # kept alive until the future resolves
    return {k: v.value for k, v in admin.describe_configs([res])[res].result(timeout=15).items()}


def low_watermarks(bootstrap: str, topic: str) -> list[int]:
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"wm-{uuid.uuid4().hex}"})
    try:
        return [c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[0] for p in range(PARTITIONS)]
    finally:
        c.close()


def test_word_count_exactly_once(bootstrap: str, run: Run) -> None:
    app, out, expected = run.app.start(), run.out, run.expected
    streams.wait_until(app, out, lambda: out.latest == dict(expected), 90, "exact final counts")
    assert app.stop() == 0, app.log_tail()
    out.poll(1.0)   # anything the clean close committed last
    assert out.problems(expected) == []
    # The input offsets were committed inside the transactions (TxnOffsetCommit): all of it.
    per_partition = [LINES // PARTITIONS + (p < LINES % PARTITIONS) for p in range(PARTITIONS)]
    assert committed_offsets(bootstrap, run.app_id, run.input_topic) == dict(enumerate(per_partition))
    assert "ERROR" not in app.log_path.read_text(), app.log_tail()
    # The internal topics as the Streams admin client created them (CreateTopics with configs,
    # read back with DescribeConfigs): a repartition topic kept until Streams purges it, and a
    # compacted changelog.
    repartition = topic_configs(bootstrap, f"{run.app_id}-words-repartition")
    assert (repartition["cleanup.policy"], repartition["retention.ms"], repartition["segment.bytes"],
            repartition["message.timestamp.type"]) == ("delete", "-1", "52428800", "CreateTime")
    changelog = topic_configs(bootstrap, f"{run.app_id}-counts-changelog")
    assert (changelog["cleanup.policy"], changelog["message.timestamp.type"]) == ("compact", "CreateTime")
    # Streams purged the consumed repartition records with DeleteRecords (every 100 ms here).
    assert all(low > 0 for low in low_watermarks(bootstrap, f"{run.app_id}-words-repartition"))


def test_word_count_kill9_mid_run(run: Run) -> None:
    app, out, expected = run.app.start(), run.out, run.expected
    streams.wait_until(app, out, lambda: len(out.records) > 0, 60, "committed output")
    app.kill()
    assert out.latest != dict(expected), "the first run finished before it could be killed mid-run"
    killed_at = len(out.records)
    app.start()
    streams.wait_until(app, out, lambda: out.latest == dict(expected), 90, "exact final counts after kill -9")
    assert app.stop() == 0, app.log_tail()
    out.poll(1.0)
    assert len(out.records) > killed_at
    assert out.problems(expected) == []


# ---- the Java transactional producer --------------------------------------------------------
# KafkaProducer with transactional.id, driven by Apache Kafka's ProducerPerformance (commits every
# --transaction-duration-ms) and by TxnProducer.java (commit, abort, hold steps); checked with a
# confluent-kafka consumer under both isolation levels and with Apache Kafka's kafka-transactions
# tool (TransactionsCommand, the broker's own 4.x tool jars).

def read_values(bootstrap: str, topic: str, isolation: str, timeout: float = 30) -> list[bytes]:
    """Every value of partition 0 under ``isolation``, up to its end (the LSO under
    read_committed: librdkafka reports the end of partition there)."""
    from confluent_kafka import Consumer, KafkaError, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"read-{uuid.uuid4().hex}",
                  "isolation.level": isolation, "enable.partition.eof": True, "enable.auto.commit": False})
    c.assign([TopicPartition(topic, 0, 0)])
    values: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            for m in c.consume(1000, 0.5):
                if m.error() is not None:
                    assert m.error().code() == KafkaError._PARTITION_EOF, m.error()
                    return values
                values.append(m.value())
        raise AssertionError(f"no end of {topic} under {isolation} after {timeout}s ({len(values)} values)")
    finally:
        c.close()


def transactions_tool(bootstrap: str, *args: str) -> str:
    r = ak.java_main(ak.TRANSACTIONS, ["--bootstrap-server", bootstrap, *args], timeout=90, check=False)
    out = r.stdout.decode(errors="replace")
    assert r.returncode == 0, out + r.stderr.decode(errors="replace")[-3000:]
    return out


def listed_state(bootstrap: str, tid: str) -> str:
    """The State column of ``kafka-transactions list`` for ``tid``
    (TransactionalId Coordinator ProducerId TransactionState)."""
    listed = transactions_tool(bootstrap, "list")
    rows = [line.split() for line in listed.splitlines() if line.split()[:1] == [tid]]
    assert len(rows) == 1, listed
    return rows[0][3]


@pytest.fixture
def txn_topic(bootstrap: str) -> str:
    name = f"java-txn-{uuid.uuid4().hex[:8]}"
    create_topic(bootstrap, name, 1)
    return name


def test_java_producer_performance_transactions(bootstrap: str, txn_topic: str) -> None:
    tid = f"perf-{uuid.uuid4().hex[:8]}"
    r = ak.java_main(ak.PRODUCER_PERF, ["--topic", txn_topic, "--num-records", "20000", "--record-size", "100",
                                        "--throughput", "-1", "--transactional-id", tid,
                                        "--transaction-duration-ms", "200",
                                        "--producer-props", f"bootstrap.servers={bootstrap}"],
                     timeout=120, check=False)
    assert r.returncode == 0 and "20000 records sent" in r.stdout.decode(), r.stdout.decode() + r.stderr.decode()
    assert len(read_values(bootstrap, txn_topic, "read_committed")) == 20000
    assert listed_state(bootstrap, tid) == "CompleteCommit"
    described = transactions_tool(bootstrap, "describe", "--transactional-id", tid)
    assert "CompleteCommit" in described, described


def test_java_aborted_transactions_are_invisible(bootstrap: str, txn_topic: str) -> None:
    tid = f"steps-{uuid.uuid4().hex[:8]}"
    r = streams.txn_producer(bootstrap, tid, txn_topic, ["commit:100", "abort:50", "commit:30", "abort:20"])
    assert r.returncode == 0 and b"DONE" in r.stdout, r.stdout.decode() + r.stderr.decode()[-3000:]
    committed = read_values(bootstrap, txn_topic, "read_committed")
    assert committed == [f"commit-{s}-{i}".encode() for s, n in ((3, 100), (5, 30)) for i in range(n)]
    # The aborted records are in the log: a read_uncommitted consumer gets all 200.
    assert len(read_values(bootstrap, txn_topic, "read_uncommitted")) == 200
    assert listed_state(bootstrap, tid) == "CompleteAbort"


def test_java_open_transaction_holds_the_lso(bootstrap: str, txn_topic: str) -> None:
    tid = f"hold-{uuid.uuid4().hex[:8]}"
    p = streams.txn_producer_popen(bootstrap, tid, txn_topic, ["commit:5", "hold:10"])
    try:
        assert p.stdout is not None and p.stdin is not None
        assert p.stdout.readline() == b"OPEN\n", p.stderr.read().decode() if p.stderr else ""
        assert len(read_values(bootstrap, txn_topic, "read_committed")) == 5
        assert len(read_values(bootstrap, txn_topic, "read_uncommitted")) == 15
        assert listed_state(bootstrap, tid) == "Ongoing"
        described = transactions_tool(bootstrap, "describe", "--transactional-id", tid)
        assert "Ongoing" in described and f"{txn_topic}-0" in described, described
        producers = transactions_tool(bootstrap, "describe-producers", "--topic", txn_topic, "--partition", "0")
        # ProducerId ProducerEpoch LatestCoordinatorEpoch LastSequence LastTimestamp CurrentTransactionStartOffset
        rows = [line.split() for line in producers.splitlines()[1:] if line.strip()]
        assert len(rows) == 1 and rows[0][5] == "6", producers   # after 5 records and the first commit marker
        p.stdin.write(b"go\n")
        p.stdin.flush()
        assert p.stdout.readline() == b"DONE\n"
        assert p.wait(60) == 0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(10)
    assert len(read_values(bootstrap, txn_topic, "read_committed")) == 15




def open_transaction_frozen(app: streams.WordCount, bootstrap: str) -> str:
    """Freeze the app (SIGSTOP) at a moment its producer has a transaction open, as
    kafka-transactions describes it (the app runs 50 ms between tries); return the producer's
    transactional id."""
    assert app.proc is not None
    for _ in range(50):
        tids = set(re.findall(r"transactionalId=([^,\]]+)", app.log_path.read_text()))
        os.kill(app.proc.pid, signal.SIGSTOP)
        if len(tids) == 1 and "Ongoing" in transactions_tool(bootstrap, "describe", "--transactional-id", *tids):
            return tids.pop()
        os.kill(app.proc.pid, signal.SIGCONT)
        time.sleep(0.05)
    raise AssertionError(f"no transaction open to catch: {app.states()}\n{app.log_tail()}")


def test_word_count_kill9_with_state_lost(bootstrap: str, tmp_path: Path) -> None:
    """kill -9 with a transaction open, and the state directory lost with the machine: the app
    comes back with a new process id, so a new transactional id that fences nothing.  The dead
    producer's transaction holds the LSO of its partitions until the coordinator aborts it on
    transaction.timeout.ms (5 s here); the new instance restores past it and ends exact.  No
    store cache and twice the lines: the producer sends all the time, not only at commits, so
    a transaction is nearly always open to be caught, from RUNNING on."""
    run = Run(bootstrap, tmp_path, 2 * LINES)
    run.app.config.update({"producer.transaction.timeout.ms": "5000", "statestore.cache.max.bytes": "0"})
    app, out, expected = run.app.start(), run.out, run.expected
    try:
        streams.wait_until(app, out, lambda: "RUNNING" in app.states(), 60, "RUNNING")
        dead = open_transaction_frozen(app, bootstrap)
        app.kill()
        out.poll(1.0)
        assert out.latest != dict(expected), "the first run finished before it could be killed mid-run"
        shutil.rmtree(app.state_dir)
        app.start()
        streams.wait_until(app, out, lambda: out.latest == dict(expected), 90, "exact final counts")
        assert app.stop() == 0, app.log_tail()
        out.poll(1.0)
        assert out.problems(expected) == []
        # nobody used the dead id again: only the coordinator's timeout can have ended its transaction
        assert listed_state(bootstrap, dead) == "CompleteAbort"
    finally:
        run.close()


def test_word_count_zombie_instance_is_fenced(bootstrap: str, run: Run, tmp_path: Path) -> None:
    """Two instances; one is frozen (SIGSTOP) past its session timeout, so the group moves its
    tasks to the other, which restores them from the changelog (past the frozen one's open
    transaction once the coordinator aborts it on transaction.timeout.ms) and finishes the
    count alone: the exact final counts before the frozen one resumes prove the take-over.
    Then it resumes (SIGCONT) as a zombie that still believes it owns its tasks, with records
    it had polled and an open transaction: its TxnOffsetCommit carries a stale generation
    (KIP-447) and its producer epoch was bumped by the abort, so it is fenced (Streams'
    TaskMigratedException), its transaction aborted, and it rejoins.  No committed count may
    ever exceed the exact one.  No store cache: every count update is an output record."""
    config = dict(APP_CONFIG, **{"statestore.cache.max.bytes": "0"})
    first = streams.WordCount(bootstrap, run.app_id, run.input_topic, run.output_topic, tmp_path / "a", config)
    zombie = streams.WordCount(bootstrap, run.app_id, run.input_topic, run.output_topic, tmp_path / "b", config)
    out, expected = run.out, run.expected
    first.start()
    zombie.start()
    try:
        streams.wait_until(first, out, lambda: len(out.records) >= 10_000 and zombie.states()[-1:] == ["RUNNING"],
                           90, "10000 committed counts with both instances running")
        assert zombie.proc is not None
        os.kill(zombie.proc.pid, signal.SIGSTOP)
        streams.wait_until(first, out, lambda: out.latest == dict(expected), 90,
                           "exact final counts from the instance left")
        resumed = len(zombie.states())
        os.kill(zombie.proc.pid, signal.SIGCONT)
        streams.wait_until(zombie, out, lambda: zombie.states()[resumed:][-1:] == ["RUNNING"], 60,
                           "the zombie rejoining")
        assert "TaskMigratedException" in zombie.log_path.read_text(), zombie.log_tail()
        assert first.stop() == 0 and zombie.stop() == 0
        out.poll(1.0)
        assert out.problems(expected) == []
    finally:
        if zombie.proc is not None and zombie.proc.poll() is None:
            os.kill(zombie.proc.pid, signal.SIGCONT)
        first.stop()
        zombie.stop()

def end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"wm-{uuid.uuid4().hex}",
                  "isolation.level": "read_committed"})
    try:
        return {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in range(PARTITIONS)}
    finally:
        c.close()


def test_word_count_application_reset(bootstrap: str, run: Run) -> None:
    """Kafka's application reset tool (kafka-streams-application-reset: StreamsResetter) after a
    complete run: it removes the app's members from the group, resets the input offsets to 0 and
    deletes the internal topics; the app run again from an empty state directory counts from
    zero and ends with the exact counts once more."""
    app, out, expected = run.app.start(), run.out, run.expected
    streams.wait_until(app, out, lambda: out.latest == dict(expected), 90, "exact final counts")
    assert app.stop() == 0, app.log_tail()
    r = ak.java_main("org.apache.kafka.tools.StreamsResetter",
                     ["--bootstrap-server", bootstrap, "--application-id", run.app_id,
                      "--input-topics", run.input_topic, "--force"], timeout=120, check=False)
    said = r.stdout.decode(errors="replace") + r.stderr.decode(errors="replace")[-3000:]
    assert r.returncode == 0, said
    assert committed_offsets(bootstrap, run.app_id, run.input_topic) == dict.fromkeys(range(PARTITIONS), 0)
    shutil.rmtree(app.state_dir)
    again = streams.CountsReader(bootstrap, run.output_topic, PARTITIONS, end_offsets(bootstrap, run.output_topic))
    try:
        app.start()
        streams.wait_until(app, again, lambda: again.latest == dict(expected), 90, "exact counts after the reset")
        assert app.stop() == 0, app.log_tail()
        again.poll(1.0)
        # counted from zero: counts on top of the old store or the old committed offsets would
        # end at twice the exact ones
        assert again.problems(expected) == []
    finally:
        again.close()
