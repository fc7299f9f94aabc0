"""Transactions end to end on one kafka-core broker, with real clients: confluent-kafka,
kafka-python and aiokafka transactional producers commit and abort (a read_committed consumer
sees exactly the committed records), offsets sent to a transaction become the group's only when it
commits (AddOffsetsToTxn with the group coordinator's TxnOffsetCommit), a second producer with the same transactional id fences
the first, a producer killed mid-transaction is aborted after its transaction.timeout.ms, a
PrepareCommit left in ``__transaction_state`` by a crash is completed after the restart, and
Apache Kafka's ``kafka-transactions.sh`` lists and describes our transactions.

The broker runs with the timeout check every 300 ms (Kafka's
``transaction.abort.timed.out.transaction.cleanup.interval.ms``, 10 s by default) so the
timeout test takes seconds.
"""

from __future__ import annotations

import asyncio
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from typing import Any

import confluent_kafka as ck
import pytest
from kafka_bench.kafka_core_broker import KafkaCoreBroker
from kafka_protocol.messages import (
    DescribeConfigsRequest,
    DescribeTransactionsRequest,
    InitProducerIdRequest,
    ListTransactionsRequest,
    MetadataRequest,
)

from .conftest import RawClient, create_topic, make_batch, produce_req

SETTINGS = {"num.partitions": "1", "transaction.abort.timed.out.transaction.cleanup.interval.ms": "300",
            "transaction.state.log.num.partitions": "5"}


@pytest.fixture(scope="module")
def tbroker() -> Iterator[KafkaCoreBroker]:
    with KafkaCoreBroker(settings=SETTINGS) as b:
        yield b


@pytest.fixture
def topic(tbroker: KafkaCoreBroker, request: Any) -> str:
    name = f"tx-{request.node.name[5:30]}-{uuid.uuid4().hex[:6]}".replace("[", "-").replace("]", "")
    with RawClient(tbroker.port) as c:
        create_topic(c, name, partitions=2)
    return name


def producer(b: KafkaCoreBroker, tid: str, **extra: Any) -> ck.Producer:
    return ck.Producer({"bootstrap.servers": b.bootstrap, "transactional.id": tid, "linger.ms": 5, **extra})


def open_txn(b: KafkaCoreBroker, tid: str, topic: str, value: bytes, partition: int) -> ck.Producer:
    """A producer of ``tid`` with a transaction open: one record sent to ``topic``/``partition``."""
    p = producer(b, tid)
    p.init_transactions(30)
    p.begin_transaction()
    p.produce(topic, value, partition=partition)
    p.flush(10)
    return p


def read_all(b: KafkaCoreBroker, topic: str, isolation: str, expect: int | None = None,
             wait: float = 3.0) -> list[bytes]:
    """Every record of ``topic`` a consumer with ``isolation`` sees, reading until the end."""
    c = ck.Consumer({"bootstrap.servers": b.bootstrap, "group.id": f"g-{uuid.uuid4().hex[:6]}",
                     "auto.offset.reset": "earliest", "isolation.level": isolation, "enable.auto.commit": False})
    c.assign([ck.TopicPartition(topic, p, 0) for p in range(2)])
    out: list[bytes] = []
    deadline = time.monotonic() + (30 if expect is not None else wait)
    try:
        while time.monotonic() < deadline:
            m = c.poll(0.2)
            if m is None:
                if expect is not None and len(out) >= expect:
                    break
                continue
            if m.error():
                continue
            out.append(m.value())
    finally:
        c.close()
    return sorted(out)


def describe(b: KafkaCoreBroker, tid: str) -> Any:
    with RawClient(b.port) as c:
        return c.call(DescribeTransactionsRequest(transactional_ids=[tid]), 0).transaction_states[0]


def wait_state(b: KafkaCoreBroker, tid: str, state: str, timeout: float = 20) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        st = describe(b, tid)
        if st.transaction_state == state or time.monotonic() > deadline:
            assert st.transaction_state == state, (st.error_code, st.transaction_state)
            return st
        time.sleep(0.1)


# -- confluent-kafka --------------------------------------------------------------------------

def test_confluent_commit_and_abort(tbroker: KafkaCoreBroker, topic: str) -> None:
    tid = f"ck-{uuid.uuid4().hex[:6]}"
    p = producer(tbroker, tid)
    p.init_transactions(30)
    p.begin_transaction()
    for i in range(10):
        p.produce(topic, f"c{i}".encode(), partition=i % 2)
    p.commit_transaction(30)
    p.begin_transaction()
    for i in range(6):
        p.produce(topic, f"a{i}".encode(), partition=i % 2)
    p.flush(10)
    assert describe(tbroker, tid).transaction_state == "Ongoing"
    p.abort_transaction(30)
    st = wait_state(tbroker, tid, "CompleteAbort")
    assert st.producer_epoch == 0 and st.topics == []
    p.begin_transaction()
    p.produce(topic, b"c-last", partition=0)
    p.commit_transaction(30)
    committed = sorted([f"c{i}".encode() for i in range(10)] + [b"c-last"])
    assert read_all(tbroker, topic, "read_committed", expect=len(committed)) == committed
    assert len(read_all(tbroker, topic, "read_uncommitted", expect=17)) == 17


def test_offsets_committed_in_a_transaction(tbroker: KafkaCoreBroker, topic: str) -> None:
    """KIP-447 consume-transform-produce: AddOffsetsToTxn puts the group's ``__consumer_offsets``
    partition in the transaction; the offsets the transaction commits are the group's once it
    commits, and those of an aborted one never are."""
    group = f"g-{uuid.uuid4().hex[:6]}"
    c = ck.Consumer({"bootstrap.servers": tbroker.bootstrap, "group.id": group, "enable.auto.commit": False})
    p = producer(tbroker, f"eos-{uuid.uuid4().hex[:6]}")
    p.init_transactions(30)
    meta = c.consumer_group_metadata()
    p.begin_transaction()
    p.produce(topic, b"out", partition=0)
    p.send_offsets_to_transaction([ck.TopicPartition(topic, 0, 7)], meta, 30)
    p.commit_transaction(30)
    p.begin_transaction()
    p.send_offsets_to_transaction([ck.TopicPartition(topic, 0, 99)], meta, 30)
    p.abort_transaction(30)
    deadline = time.monotonic() + 20
    while True:
        got = c.committed([ck.TopicPartition(topic, 0)], 10)[0].offset
        if got == 7 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    c.close()
    assert got == 7


def test_second_producer_fences_the_first(tbroker: KafkaCoreBroker, topic: str) -> None:
    tid = f"fence-{uuid.uuid4().hex[:6]}"
    p1 = open_txn(tbroker, tid, topic, b"zombie", 0)
    p2 = producer(tbroker, tid)
    p2.init_transactions(30)        # aborts p1's transaction (CONCURRENT_TRANSACTIONS, retried), then bumps
    st = describe(tbroker, tid)
    assert st.producer_epoch == 2 and st.transaction_state == "Empty"     # bumped again after the abort
    p1.produce(topic, b"zombie-2", partition=0)
    with pytest.raises(ck.KafkaException) as ei:
        p1.commit_transaction(10)
    assert ei.value.args[0].fatal() or ei.value.args[0].code() in (ck.KafkaError._FENCED,
                                                                    ck.KafkaError.PRODUCER_FENCED,
                                                                    ck.KafkaError.INVALID_PRODUCER_EPOCH)
    p2.begin_transaction()
    p2.produce(topic, b"good", partition=1)
    p2.commit_transaction(30)
    assert read_all(tbroker, topic, "read_committed", expect=1) == [b"good"]


_VANISHING = textwrap.dedent("""
    import sys, time, confluent_kafka as ck
    p = ck.Producer({"bootstrap.servers": sys.argv[1], "transactional.id": sys.argv[2],
                     "transaction.timeout.ms": 1500})
    p.init_transactions(30)
    p.begin_transaction()
    for i in range(5):
        p.produce(sys.argv[3], b"lost-%d" % i, partition=0)
    p.flush(10)
    print("sent", flush=True)
    time.sleep(600)
""")


def test_vanished_producer_is_aborted_after_its_timeout(tbroker: KafkaCoreBroker, topic: str) -> None:
    tid = f"gone-{uuid.uuid4().hex[:6]}"
    proc = subprocess.Popen([sys.executable, "-c", _VANISHING, tbroker.bootstrap, tid, topic],
                            stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == b"sent"
        assert describe(tbroker, tid).transaction_state == "Ongoing"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    st = wait_state(tbroker, tid, "CompleteAbort", timeout=15)
    # bumped: the zombie is fenced; with transaction.version 2 finalized (the default) twice, the
    # fence and then the abort's TV2 bump, as Kafka 4.x aborts at the finalized version
    assert st.producer_epoch == 2
    assert read_all(tbroker, topic, "read_committed") == []
    assert len(read_all(tbroker, topic, "read_uncommitted", expect=5)) == 5
    p = producer(tbroker, tid)
    p.init_transactions(30)
    assert describe(tbroker, tid).producer_epoch == 3


def test_prepare_commit_left_by_a_crash_completes_after_restart(tmp_path: Any) -> None:
    """The state between PrepareCommit and the markers, made the way a crash leaves it: the
    transaction's records in the partition, PrepareCommit the last record of its id in
    ``__transaction_state`` (appended with the broker down), no marker; after the restart the
    coordinator resumes the markers and the records become visible to read_committed."""
    from kafka_broker.groups.offsets_store import LogBackend, build_batch, decode_records
    from kafka_broker.txn import records as R
    from kafka_broker.txn.state import PREPARE_COMMIT

    from kafka_core import Log

    tid = "crash-tx"
    with KafkaCoreBroker(data_dir=tmp_path / "data", settings=SETTINGS) as b:
        with RawClient(b.port) as c:
            create_topic(c, "crashed", partitions=2)
        p = producer(b, tid)
        p.init_transactions(30)
        p.begin_transaction()
        for i in range(4):
            p.produce("crashed", f"r{i}".encode(), partition=i % 2)
        p.flush(10)
        assert describe(b, tid).transaction_state == "Ongoing"
        b.kill()
        part = R.partition_for(tid, 5)
        path = next((tmp_path / "data").rglob(f"__transaction_state-{part}"))
        lg = Log(str(path))
        last = None
        for chunk in LogBackend(None, 5, logs=lambda _p: lg).read(part):
            for k, v in decode_records(chunk):
                if k is not None and R.decode_key(bytes(k)) == tid and v is not None:
                    last = R.decode_value(bytes(v))
        assert last is not None and last.status == 1
        last.status = PREPARE_COMMIT
        lg.append(build_batch([(R.encode_key(tid), R.encode_value(last))], int(time.time() * 1000)))
        lg.flush()
        lg.close()
        b.start()
        wait_state(b, tid, "CompleteCommit")
        assert read_all(b, "crashed", "read_committed", expect=4) == [b"r0", b"r1", b"r2", b"r3"]


# -- kafka-python and aiokafka --------------------------------------------------------------------

def test_kafka_python_commit_and_abort(tbroker: KafkaCoreBroker, topic: str) -> None:
    kafka = pytest.importorskip("kafka")
    p = kafka.KafkaProducer(bootstrap_servers=tbroker.bootstrap, transactional_id=f"kp-{uuid.uuid4().hex[:6]}")
    p.init_transactions()
    p.begin_transaction()
    for i in range(3):
        p.send(topic, f"kp-c{i}".encode(), partition=0)
    p.commit_transaction()
    p.begin_transaction()
    p.send(topic, b"kp-a", partition=1)
    p.abort_transaction()
    p.close()
    assert read_all(tbroker, topic, "read_committed", expect=3) == [b"kp-c0", b"kp-c1", b"kp-c2"]


def test_aiokafka_commit_and_abort(tbroker: KafkaCoreBroker, topic: str) -> None:
    aiokafka = pytest.importorskip("aiokafka")

    async def go() -> None:
        p = aiokafka.AIOKafkaProducer(bootstrap_servers=tbroker.bootstrap,
                                      transactional_id=f"aio-{uuid.uuid4().hex[:6]}")
        await p.start()
        try:
            async with p.transaction():
                for i in range(3):
                    await p.send(topic, f"aio-c{i}".encode(), partition=1)
            await p.begin_transaction()
            await p.send(topic, b"aio-a", partition=0)
            await p.abort_transaction()
        finally:
            await p.stop()
    asyncio.run(go())
    assert read_all(tbroker, topic, "read_committed", expect=3) == [b"aio-c0", b"aio-c1", b"aio-c2"]


# -- ListTransactions / DescribeTransactions -------------------------------------------------------

def test_list_and_describe_over_the_wire(tbroker: KafkaCoreBroker, topic: str) -> None:
    tid = f"ld-{uuid.uuid4().hex[:6]}"
    p = open_txn(tbroker, tid, topic, b"x", 1)
    with RawClient(tbroker.port) as c:
        r = c.call(ListTransactionsRequest(state_filters=["Ongoing", "Nope"]), 1)
        assert r.error_code == 0 and r.unknown_state_filters == ["Nope"]
        assert tid in {s.transactional_id for s in r.transaction_states}
        r = c.call(ListTransactionsRequest(duration_filter=3_600_000), 1)      # open longer than an hour: none
        assert tid not in {s.transactional_id for s in r.transaction_states}
        st = c.call(DescribeTransactionsRequest(transactional_ids=[tid, "never-seen"]), 0).transaction_states
    assert (st[0].transaction_state, [(t.topic, t.partitions) for t in st[0].topics]) == ("Ongoing", [(topic, [1])])
    assert st[1].error_code == 105      # TRANSACTIONAL_ID_NOT_FOUND
    p.abort_transaction(30)


def test_transaction_state_topic(tbroker: KafkaCoreBroker) -> None:
    """``__transaction_state``: created by the first InitProducerId with a transactional id,
    internal (no client produces to it), compacted, uncompressed, with the configured 5 partitions."""
    with RawClient(tbroker.port) as c:
        r = c.call(InitProducerIdRequest(transactional_id=f"topic-{uuid.uuid4().hex[:6]}", transaction_timeout_ms=60000,
                                         producer_id=-1, producer_epoch=-1), 4)
        assert r.error_code == 0 and r.producer_id >= 0 and r.producer_epoch == 0
        r2 = c.call(InitProducerIdRequest(transactional_id="t", transaction_timeout_ms=900001,
                                          producer_id=-1, producer_epoch=-1), 4)
        assert r2.error_code == 50      # INVALID_TRANSACTION_TIMEOUT: above transaction.max.timeout.ms
        md = c.call(MetadataRequest(topics=[MetadataRequest.MetadataRequestTopic(name="__transaction_state")],
                                    allow_auto_topic_creation=False), 12).topics[0]
        assert md.error_code == 0 and md.is_internal and len(md.partitions) == 5
        R = DescribeConfigsRequest.DescribeConfigsResource
        cfg = {x.name: x.value for x in c.call(DescribeConfigsRequest(resources=[
            R(resource_type=2, resource_name="__transaction_state", configuration_keys=None)]), 4).results[0].configs}
        assert (cfg["cleanup.policy"], cfg["compression.type"]) == ("compact", "uncompressed")
        resp = c.call(produce_req("__transaction_state", 0, make_batch([b"x"])), 9)
        assert resp.responses[0].partition_responses[0].error_code == 17      # INVALID_TOPIC_EXCEPTION


java = pytest.mark.skipif(shutil.which("java") is None, reason="java is installed by ./dev test")


def transactions_tool(b: KafkaCoreBroker, *args: str) -> str:
    """The output of Apache Kafka's ``kafka-transactions`` run against ``b`` (it must succeed)."""
    from kafka_bench import apache_kafka as ak
    r = ak.java_main("org.apache.kafka.tools.TransactionsCommand",
                     ["--bootstrap-server", b.bootstrap, *args], timeout=90, check=False)
    out = r.stdout.decode(errors="replace")
    assert r.returncode == 0, out + r.stderr.decode(errors="replace")[-3000:]
    return out


@java
@pytest.mark.interop
def test_kafka_transactions_tool_lists_and_describes(tbroker: KafkaCoreBroker, topic: str) -> None:
    tid = f"tool-{uuid.uuid4().hex[:6]}"
    p = open_txn(tbroker, tid, topic, b"x", 0)

    def tool(*args: str) -> str:
        return transactions_tool(tbroker, *args)
    listed = tool("list")
    row = next(line.split() for line in listed.splitlines() if line.startswith(tid))
    assert row[1] == "0" and row[3] == "Ongoing", listed      # TransactionalId Coordinator ProducerId State
    described = tool("describe", "--transactional-id", tid)
    assert "Ongoing" in described and f"{topic}-0" in described, described
    p.commit_transaction(30)
    assert "CompleteCommit" in tool("describe", "--transactional-id", tid)


@java
@pytest.mark.interop
def test_kafka_transactions_tool_finds_and_aborts_a_hanging_transaction(tbroker: KafkaCoreBroker, topic: str) -> None:
    """The operator's way out of a stuck LSO (KIP-664): ``kafka-transactions find-hanging`` lists only
    transactions the coordinator does not know (not this open one), ``describe-producers`` gives the
    open transaction's start offset, and ``abort --start-offset`` writes its ABORT marker straight to
    the partition (WriteTxnMarkers from the admin client): read_committed readers move past it."""
    tid = f"hang-{uuid.uuid4().hex[:6]}"
    p = open_txn(tbroker, tid, topic, b"stuck", 0)

    def tool(*args: str) -> str:
        return transactions_tool(tbroker, *args)
    # find-hanging lists open transactions the coordinator does not know: this one it knows
    hanging = tool("find-hanging", "--broker-id", "0", "--max-transaction-timeout", "0")
    assert not [line for line in hanging.splitlines() if line.startswith(topic)], hanging
    described = tool("describe-producers", "--topic", topic, "--partition", "0")
    head, row = (line.split("\t") for line in described.strip().splitlines()[:2])
    start = dict(zip(head, row, strict=False))["CurrentTransactionStartOffset"].strip()
    assert start == "0", described
    # the coordinator's view notwithstanding, the operator aborts it on the partition
    tool("abort", "--topic", topic, "--partition", "0", "--start-offset", start)
    assert read_all(tbroker, topic, "read_committed") == []
    assert read_all(tbroker, topic, "read_uncommitted") == [b"stuck"]
    # the LSO moved past the aborted records: a later committed record is visible
    q = ck.Producer({"bootstrap.servers": tbroker.bootstrap})
    q.produce(topic, b"after", partition=0)
    assert q.flush(10) == 0
    assert read_all(tbroker, topic, "read_committed", expect=1) == [b"after"]
    del p


@java
@pytest.mark.interop
def test_kafka_dump_log_decodes_our_transaction_state(tbroker: KafkaCoreBroker, topic: str) -> None:
    """Kafka's own ``kafka-dump-log.sh --transaction-log-decoder`` reads our ``__transaction_state``
    segments: the record format is Kafka's."""
    from kafka_bench import apache_kafka as ak
    from kafka_broker.txn.records import partition_for
    tid = f"dump-{uuid.uuid4().hex[:6]}"
    p = producer(tbroker, tid)
    p.init_transactions(30)
    with RawClient(tbroker.port) as c:
        from kafka_protocol.messages import AddPartitionsToTxnRequest as A
        st = describe(tbroker, tid)
        r = c.call(A(v3_and_below_transactional_id=tid, v3_and_below_producer_id=st.producer_id,
                     v3_and_below_producer_epoch=st.producer_epoch,
                     v3_and_below_topics=[A.AddPartitionsToTxnTopic(name=topic, partitions=[1])]), 3)
        assert r.results_by_topic_v3_and_below[0].results_by_partition[0].partition_error_code == 0
    seg = sorted((tbroker.data_dir / "logs" / f"__transaction_state-{partition_for(tid, 5)}").glob("*.log"))[0]
    r2 = ak.java_main("kafka.tools.DumpLogSegments", ["--files", str(seg), "--transaction-log-decoder",
                                                      "--print-data-log"], timeout=90, check=False)
    out = r2.stdout.decode(errors="replace")
    assert r2.returncode == 0, out + r2.stderr.decode(errors="replace")[-3000:]
    import json
    values = [json.loads(line.split(" payload: ", 1)[1]) for line in out.splitlines() if f'"{tid}"' in line]
    # TransactionLogValue v1, as Kafka writes it once transaction.version >= 1 is finalized
    assert [v["version"] for v in values] == ["1", "1"], out
    empty, ongoing = (v["data"] for v in values)                  # after InitProducerId, then AddPartitions
    assert (empty["producerId"], empty["producerEpoch"], empty["transactionStatus"]) == (st.producer_id, 0, 0)
    assert empty["transactionPartitions"] is None and empty["transactionTimeoutMs"] == 60000
    assert ongoing["transactionStatus"] == 1
    assert ongoing["transactionPartitions"] == [{"topic": topic, "partitionIds": [1]}]
