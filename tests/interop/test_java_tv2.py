"""The Java 4.x transactional producer on transaction version 2 (KIP-890 part 2, issue 12),
against kafka-core with ``transaction.version=2`` and, side by side, Apache Kafka 4.x (whose fresh
KRaft cluster finalizes TV2): TxnProducer.java (python/kafka_bench/data/streams) commits and
aborts, a read_committed consumer (confluent-kafka) sees exactly the committed records, the epoch
goes up by one per transaction as ``kafka-transactions describe`` and ``describe-producers`` show
it, and a second producer with the same transactional id fences the first, whose open
transaction is aborted and whose commit fails."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator

import pytest
from kafka_bench import streams
from kafka_bench.apache_kafka import ApacheKafka, ensure_jars
from kafka_bench.kafka_core_broker import KafkaCoreBroker

from tests.interop.conftest import create_topic
from tests.interop.test_streams import read_values, transactions_tool

pytestmark = [pytest.mark.interop,
              pytest.mark.skipif(shutil.which("javac") is None, reason="a JDK is installed by ./dev test")]


@pytest.fixture(scope="module")
def apache() -> Iterator[ApacheKafka]:
    ensure_jars()
    k = ApacheKafka(heap="512m", extra={"num.partitions": "1"})
    k.start()
    yield k
    k.cleanup()


@pytest.fixture(scope="module")
def core() -> Iterator[KafkaCoreBroker]:
    with KafkaCoreBroker(settings={"num.partitions": "1", "transaction.version": "2"}) as b:
        yield b


@pytest.fixture(params=["kafka-core", "apache"])
def bootstrap(request: pytest.FixtureRequest) -> str:
    server = request.getfixturevalue("core" if request.param == "kafka-core" else "apache")
    return str(server.bootstrap)


@pytest.fixture
def topic(bootstrap: str) -> str:
    name = f"tv2-{uuid.uuid4().hex[:8]}"
    create_topic(bootstrap, name, 1)
    return name


def described_epoch(bootstrap: str, tid: str) -> int:
    """ProducerEpoch of ``kafka-transactions describe`` (CoordinatorId TransactionalId ProducerId
    ProducerEpoch TransactionState ...)."""
    out = transactions_tool(bootstrap, "describe", "--transactional-id", tid)
    header, row = (line.split("\t") if "\t" in line else line.split() for line in out.splitlines()[:2])
    return int(row[header.index("ProducerEpoch")])


def partition_epochs(bootstrap: str, topic: str) -> list[int]:
    out = transactions_tool(bootstrap, "describe-producers", "--topic", topic, "--partition", "0")
    return [int(line.split()[1]) for line in out.splitlines()[1:] if line.strip()]


def wait_open(p: object) -> None:
    assert p.stdout is not None  # type: ignore[attr-defined]
    line = p.stdout.readline()  # type: ignore[attr-defined]
    assert line == b"OPEN\n", line + (p.stderr.read() if p.stderr else b"")  # type: ignore[attr-defined]


def go(p: object) -> None:
    p.stdin.write(b"go\n")  # type: ignore[attr-defined]
    p.stdin.flush()  # type: ignore[attr-defined]


def test_epoch_bumps_per_transaction_and_read_committed_is_exact(bootstrap: str, topic: str) -> None:
    tid = f"tv2-{uuid.uuid4().hex[:8]}"
    p = streams.txn_producer_popen(bootstrap, tid, topic, ["commit:50", "abort:20", "hold:5", "hold:7", "commit:3"])
    try:
        wait_open(p)        # after commit (epoch 0 -> 1) and abort (1 -> 2): the third transaction
        first = described_epoch(bootstrap, tid)
        assert partition_epochs(bootstrap, topic) == [first]
        go(p)
        wait_open(p)
        assert described_epoch(bootstrap, tid) == first + 1
        assert partition_epochs(bootstrap, topic) == [first + 1]
        go(p)
        assert p.stdout is not None and p.stdout.readline() == b"DONE\n"
        assert p.wait(60) == 0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(10)
    assert first == 2                      # epoch 0 at init, +1 per ended transaction
    committed = read_values(bootstrap, topic, "read_committed")
    assert committed == [f"{kind}-{s}-{i}".encode() for kind, s, n in
                         (("commit", 3, 50), ("hold", 5, 5), ("hold", 6, 7), ("commit", 7, 3)) for i in range(n)]
    assert len(read_values(bootstrap, topic, "read_uncommitted")) == 85
    assert described_epoch(bootstrap, tid) == 5


def test_second_producer_fences_the_zombie(bootstrap: str, topic: str) -> None:
    tid = f"zombie-{uuid.uuid4().hex[:8]}"
    zombie = streams.txn_producer_popen(bootstrap, tid, topic, ["commit:4", "hold:6"])
    try:
        wait_open(zombie)
        r = streams.txn_producer(bootstrap, tid, topic, ["commit:9"])
        assert r.returncode == 0 and b"DONE" in r.stdout, r.stdout.decode() + r.stderr.decode()[-3000:]
        go(zombie)
        assert zombie.wait(60) != 0               # its commit is refused: it was fenced
        err = zombie.stderr.read().decode() if zombie.stderr else ""
        assert "ProducerFencedException" in err or "InvalidProducerEpochException" in err, err[-3000:]
    finally:
        if zombie.poll() is None:
            zombie.kill()
            zombie.wait(10)
    committed = read_values(bootstrap, topic, "read_committed")
    assert committed == [f"commit-3-{i}".encode() for i in range(4)] + [f"commit-3-{i}".encode() for i in range(9)]
