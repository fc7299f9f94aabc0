"""Transactions in kafka_client (KIP-98, KIP-447): the producer's transaction API against a
real transaction coordinator, read back by kafka_client's and confluent-kafka's read_committed
consumers, the CLI's ``produce --transactional-id``; every broker-facing test runs against Apache
Kafka 4.x and kafka-core."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
import uuid
from typing import Any

import pytest
from kafka_client import (
    AIOAdminClient,
    AIOConsumer,
    AIOProducer,
    Consumer,
    ConsumerGroupMetadata,
    OffsetAndMetadata,
    Producer,
    TopicPartition,
)
from kafka_client.errors import (
    IllegalStateError,
    KafkaError,
    KafkaTimeoutError,
    ProducerFencedError,
    TransactionAbortableError,
    TransactionAbortedError,
)


def _tid() -> str:
    return f"txn-{uuid.uuid4().hex[:10]}"


def read_values(bootstrap: str, topic: str, isolation: str, *, partitions: int = 1, end: int | None = None,
                timeout: float = 20) -> list[bytes]:
    """Every record value of ``topic`` (from the beginning) that ``isolation`` shows, reading
    until each partition's position reached its end offset (for that isolation level) or ``end``."""
    with Consumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest", isolation_level=isolation,
                  fetch_max_wait_ms=100) as c:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        c.assign(tps)
        ends = c.end_offsets(tps) if end is None else {tp: end for tp in tps}
        out: list[bytes] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for recs in c.poll(0.2).values():
                out += [r.value for r in recs]
            if all(c.position(tp) >= ends[tp] for tp in tps):
                break
        return out


def confluent_read_committed(bootstrap: str, topic: str, n: int, timeout: float = 30) -> list[bytes]:
    import confluent_kafka as ck  # a test dependency (./dev test): missing is a failure

    c = ck.Consumer({"bootstrap.servers": bootstrap, "group.id": f"ck-{uuid.uuid4().hex[:8]}",
                     "auto.offset.reset": "earliest", "isolation.level": "read_committed",
                     "enable.auto.commit": False})
    try:
        c.subscribe([topic])
        out: list[bytes] = []
        deadline = time.monotonic() + timeout
        while len(out) < n and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is None or m.error():
                continue
            out.append(m.value())
        # a little longer: nothing past the committed records may show up
        end = time.monotonic() + 1.5
        while time.monotonic() < end:
            m = c.poll(0.3)
            if m is not None and not m.error():
                out.append(m.value())
        return out
    finally:
        c.close()


def test_commit_is_visible_to_read_committed_consumers(kafka, bootstrap: str, new_topic) -> None:  # type: ignore[no-untyped-def]
    """A committed transaction over two partitions is read by read_committed consumers of
    kafka_client and confluent-kafka; the batches carry the transactional attribute."""
    topic = new_topic(2)
    with Producer(bootstrap, **{"transactional.id": _tid(), "transaction.timeout.ms": "30000"}) as p:
        p.init_transactions(30)
        p.begin_transaction()
        futs = [p.send(topic, f"v{i}".encode(), partition=i % 2) for i in range(10)]
        p.commit_transaction(30)
        offsets = [f.result(0).offset for f in futs]
    assert sorted(offsets) == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]
    want = sorted(f"v{i}".encode() for i in range(10))
    assert sorted(read_values(bootstrap, topic, "read_committed", partitions=2)) == want
    assert sorted(confluent_read_committed(bootstrap, topic, 10)) == want
    # the commit marker takes an offset in each partition: 5 records + 1 control record
    with Consumer(bootstrap_servers=bootstrap, isolation_level="read_committed") as c:
        ends = c.end_offsets([TopicPartition(topic, 0), TopicPartition(topic, 1)])
    assert set(ends.values()) == {6}


def test_abort_is_invisible_and_unsent_records_are_dropped(kafka, bootstrap: str, new_topic) -> None:  # type: ignore[no-untyped-def]
    """Aborted records are written but never shown to read_committed consumers; records not sent
    yet when abort is called fail with TransactionAbortedError; the next transaction commits."""
    topic = new_topic()
    with Producer(bootstrap, transactional_id=_tid(), linger_ms=0) as p:
        p.init_transactions(30)
        p.begin_transaction()
        written = [p.send(topic, f"aborted{i}".encode()) for i in range(5)]
        p.flush(30)
        assert all(f.result(0).offset >= 0 for f in written)
        p.abort_transaction(30)

    with Producer(bootstrap, transactional_id=_tid(), linger_ms=60000) as p:
        p.init_transactions(30)
        p.begin_transaction()
        unsent = [p.send(topic, f"unsent{i}".encode()) for i in range(3)]  # held by linger.ms
        p.abort_transaction(30)
        for f in unsent:
            assert isinstance(f.exception(5), TransactionAbortedError)
        p.begin_transaction()
        p.send(topic, b"committed")
        p.commit_transaction(30)

    assert read_values(bootstrap, topic, "read_committed") == [b"committed"]
    assert read_values(bootstrap, topic, "read_uncommitted") == [f"aborted{i}".encode() for i in range(5)] + [b"committed"]
    assert confluent_read_committed(bootstrap, topic, 1) == [b"committed"]


def test_abort_of_closed_batches_waiting_for_their_partition(kafka, bootstrap: str, new_topic) -> None:  # type: ignore[no-untyped-def]
    """Full batches that took sequence numbers but were still waiting for AddPartitionsToTxn
    when abort was called are dropped; the next transactions' batches continue the partition's
    sequences from the last one written (no OUT_OF_ORDER_SEQUENCE_NUMBER, no epoch bump)."""
    topic = new_topic()
    with Producer(bootstrap, transactional_id=_tid(), linger_ms=0, batch_size=1024) as p:
        p.init_transactions(30)
        epoch = p._engine.producer_epoch
        dropped = 0
        for round_ in range(3):
            p.begin_transaction()
            futs = [p.send(topic, f"r{round_}-{i}-".encode() * 40) for i in range(300)]
            p.abort_transaction(30)
            errors = [f.exception(30) for f in futs]
            dropped += sum(isinstance(e, TransactionAbortedError) for e in errors)
            assert all(e is None or isinstance(e, TransactionAbortedError) for e in errors)
            p.begin_transaction()
            p.send(topic, f"kept{round_}".encode()).result(30)
            p.commit_transaction(30)
        assert p._engine.producer_epoch == epoch
        # Batches still waiting for AddPartitionsToTxn at the abort: how many depends on how fast
        # the broker answers (300 sends of ~240 B in 1 KB batches leave some waiting on both)
        assert dropped > 0
    assert read_values(bootstrap, topic, "read_committed") == [b"kept0", b"kept1", b"kept2"]


@pytest.mark.parametrize("codec", ["gzip", "zstd"])
def test_two_producers_interleaved_on_one_partition(kafka, bootstrap: str, new_topic, codec: str) -> None:  # type: ignore[no-untyped-def]
    """Two transactional producers write compressed batches to one partition, their
    transactions interleaved, some committed, some aborted.  read_committed (kafka_client and
    confluent-kafka) sees exactly the committed records in offset order; while a transaction
    is open, ListOffsets latest with read_committed returns the LSO (its first offset)."""
    topic = new_topic()
    a = Producer(bootstrap, transactional_id=_tid(), compression_type=codec, linger_ms=0)
    b = Producer(bootstrap, transactional_id=_tid(), compression_type=codec, linger_ms=0)
    expected: list[bytes] = []
    try:
        a.init_transactions(30)
        b.init_transactions(30)
        plan = [("a1", True, "b1", False), ("a2", False, "b2", True), ("a3", True, "b3", True),
                ("a4", False, "b4", False), ("a5", True, "b5", True)]
        lso_checked = False
        for name_a, commit_a, name_b, commit_b in plan:
            a.begin_transaction()
            b.begin_transaction()
            for i in range(4):   # alternate batches of the two open transactions
                for p, name in ((a, name_a), (b, name_b)):
                    p.send(topic, f"{name}-{i}-".encode() * 20).result(30)
            if not lso_checked:
                with Consumer(bootstrap_servers=bootstrap, isolation_level="read_committed") as c:
                    tp = TopicPartition(topic, 0)
                    assert c.end_offsets([tp])[tp] == 0          # the LSO: a1's first record
                with Consumer(bootstrap_servers=bootstrap) as c:
                    assert c.end_offsets([tp])[tp] == 8          # the high watermark
                lso_checked = True
            for p, commit in ((a, commit_a), (b, commit_b)):
                if commit:
                    p.commit_transaction(30)
                else:
                    p.abort_transaction(30)
            committed_names = [n for n, c in ((name_a, commit_a), (name_b, commit_b)) if c]
            # offset order: the two producers' records alternate
            for i in range(4):
                for name in (name_a, name_b):
                    if name in committed_names:
                        expected.append(f"{name}-{i}-".encode() * 20)
    finally:
        a.close()
        b.close()
    assert read_values(bootstrap, topic, "read_committed") == expected
    assert len(read_values(bootstrap, topic, "read_uncommitted")) == 40
    assert confluent_read_committed(bootstrap, topic, len(expected)) == expected


def test_consume_transform_produce(kafka, bootstrap: str, new_topic) -> None:  # type: ignore[no-untyped-def]
    """The asyncio API: a group consumer's records are transformed and written, and its offsets
    sent to the transaction; the group's committed offsets appear only when it commits (and an
    aborted round's offsets never).  The read_committed consumer's ``committed()`` asks for
    stable offsets (KIP-447 require_stable), so it sees a commit as soon as it returns."""
    src, dst = new_topic(), new_topic()
    group = f"ctp-{uuid.uuid4().hex[:8]}"
    with Producer(bootstrap) as p:
        for i in range(20):
            p.send(src, f"in{i}".encode())
        p.flush(30)

    async def go() -> tuple[list[int], list[int | None]]:
        tp = TopicPartition(src, 0)
        before: list[int] = []
        after: list[int | None] = []
        async with AIOProducer(bootstrap, transactional_id=_tid()) as prod, AIOAdminClient(bootstrap) as admin, \
                AIOConsumer(src, bootstrap_servers=bootstrap, group_id=group, auto_offset_reset="earliest",
                            enable_auto_commit=False, max_poll_records=10, isolation_level="read_committed") as cons:
            await prod.init_transactions(30)
            for round_ in range(3):
                batch: list[Any] = []
                deadline = time.monotonic() + 30
                while len(batch) < 10 and time.monotonic() < deadline:
                    for recs in (await cons.getmany(timeout_ms=500, max_records=10 - len(batch))).values():
                        batch += recs
                assert len(batch) == 10
                meta = cons.group_metadata()
                assert meta.group_id == group and meta.generation_id > 0 and meta.member_id
                prod.begin_transaction()
                for r in batch:
                    await prod.send(dst, r.value.upper())
                await prod.send_offsets_to_transaction({tp: batch[-1].offset + 1}, meta, 30)
                # OffsetFetch without require_stable: the stable offsets, not the pending ones
                # (the read_committed consumer's committed() would wait for the transaction)
                before.append((await admin.list_group_offsets(group, [tp])).get(tp, OffsetAndMetadata(-1)).offset)
                if round_ == 1:
                    await prod.abort_transaction(30)
                    cons.seek(tp, batch[0].offset)    # process the same records again
                else:
                    await prod.commit_transaction(30)
                after.append(await cons.committed(tp))
        return before, after

    before, after = asyncio.run(go())
    assert before == [-1, 10, 10]         # sent offsets are invisible before the commit
    assert after == [10, 10, 20]          # the aborted round's offsets never appear
    assert read_values(bootstrap, dst, "read_committed") == [f"IN{i}".encode() for i in range(20)]


def test_offsets_of_a_stale_group_member_are_refused(kafka, bootstrap: str, new_topic) -> None:  # type: ignore[no-untyped-def]
    """KIP-447: TxnOffsetCommit carries the member's generation and id; the group coordinator
    refuses offsets from a member not in the current generation (ILLEGAL_GENERATION), which
    makes the transaction abortable: nothing of it is committed, offsets included."""
    src, dst = new_topic(), new_topic()
    group = f"stale-{uuid.uuid4().hex[:8]}"
    with Producer(bootstrap) as p:
        p.send(src, b"in").result(30)
    with Consumer(src, bootstrap_servers=bootstrap, group_id=group, auto_offset_reset="earliest",
                  enable_auto_commit=False, isolation_level="read_committed") as c, \
            Producer(bootstrap, transactional_id=_tid()) as prod:
        prod.init_transactions(30)
        recs: list[Any] = []
        deadline = time.monotonic() + 30
        while not recs and time.monotonic() < deadline:
            recs = [r for rs in c.poll(0.5).values() for r in rs]
        meta = c.group_metadata()
        stale = ConsumerGroupMetadata(meta.group_id, meta.generation_id + 1, meta.member_id, None)
        prod.begin_transaction()
        prod.send(dst, b"out")
        with pytest.raises(KafkaError) as info:
            prod.send_offsets_to_transaction({TopicPartition(src, 0): 1}, stale, 30)
        assert info.value.name == "ILLEGAL_GENERATION"
        with pytest.raises(TransactionAbortableError):
            prod.commit_transaction(30)
        prod.abort_transaction(30)
        prod.begin_transaction()                       # the real member's offsets are accepted
        prod.send(dst, b"out again")
        prod.send_offsets_to_transaction({TopicPartition(src, 0): 1}, meta, 30)
        prod.commit_transaction(30)
        assert c.committed(TopicPartition(src, 0)) == 1
    assert read_values(bootstrap, dst, "read_committed") == [b"out again"]


def test_fencing_by_a_second_producer_with_the_same_id(kafka, bootstrap: str, new_topic) -> None:  # type: ignore[no-untyped-def]
    """A second producer with the same transactional id fences the first: the first's open
    transaction is aborted, and its next call raises ProducerFencedError (and every call
    after it); the second works."""
    topic = new_topic()
    tid = _tid()
    first = Producer(bootstrap, transactional_id=tid, linger_ms=0)
    try:
        first.init_transactions(30)
        first.begin_transaction()
        first.send(topic, b"zombie").result(30)
        with Producer(bootstrap, transactional_id=tid) as second:
            second.init_transactions(60)
            with pytest.raises(ProducerFencedError):
                first.commit_transaction(30)
            with pytest.raises(ProducerFencedError):
                first.send(topic, b"late")
            with pytest.raises(ProducerFencedError):
                first.begin_transaction()
            second.begin_transaction()
            second.send(topic, b"fresh")
            second.commit_transaction(30)
    finally:
        first.close()
    assert read_values(bootstrap, topic, "read_committed") == [b"fresh"]


def test_abortable_error_then_abort_and_continue(kafka, bootstrap: str, new_topic) -> None:  # type: ignore[no-untyped-def]
    """A record the broker refuses (larger than the topic's max.message.bytes) makes the
    transaction abortable: commit and send raise TransactionAbortableError; after
    abort_transaction (which bumps the epoch, KIP-360) the producer goes on."""
    topic = new_topic(config={"max.message.bytes": "2000"})
    with Producer(bootstrap, transactional_id=_tid(), linger_ms=0) as p:
        p.init_transactions(30)
        p.begin_transaction()
        ok = p.send(topic, b"small")
        too_big = p.send(topic, b"x" * 5000)
        assert ok.result(30).offset == 0
        err = too_big.exception(30)
        assert isinstance(err, KafkaError) and err.name == "MESSAGE_TOO_LARGE"
        with pytest.raises(TransactionAbortableError) as info:
            p.commit_transaction(30)
        assert info.value.__cause__ is err
        with pytest.raises(TransactionAbortableError):
            p.send(topic, b"refused")
        with pytest.raises(TransactionAbortableError):
            p.begin_transaction()
        epoch = p._engine.producer_epoch
        p.abort_transaction(30)
        assert p._engine.producer_epoch == epoch + 1    # KIP-360: the failed batch's sequences are gone
        for round_ in range(2):
            p.begin_transaction()
            p.send(topic, f"after{round_}".encode())
            p.commit_transaction(30)
    assert read_values(bootstrap, topic, "read_committed") == [b"after0", b"after1"]


def test_a_timed_out_commit_is_resumed_by_calling_it_again(kafka, bootstrap: str, new_topic) -> None:  # type: ignore[no-untyped-def]
    """As Java: commit_transaction that times out leaves the commit running; another method
    is refused meanwhile, and calling commit_transaction again waits for the same commit."""
    topic = new_topic()
    with Producer(bootstrap, transactional_id=_tid(), linger_ms=0) as p:
        p.init_transactions(30)
        p.begin_transaction()
        for i in range(100):
            p.send(topic, f"v{i}".encode())
        with pytest.raises(KafkaTimeoutError, match="call it again"):
            p.commit_transaction(0)
        with pytest.raises(IllegalStateError, match="commit_transaction"):
            p.abort_transaction(5)
        p.commit_transaction(30)
        p.begin_transaction()       # the commit completed: a new transaction may start
        p.abort_transaction(30)
    assert read_values(bootstrap, topic, "read_committed") == [f"v{i}".encode() for i in range(100)]


def test_misuse_is_refused_with_a_clear_error(kafka, bootstrap: str, new_topic) -> None:  # type: ignore[no-untyped-def]
    """As Java's IllegalStateException: transactional calls on a plain producer, sending outside
    a transaction, begin twice, commit or abort without begin, init twice."""
    topic = new_topic()
    with Producer(bootstrap) as plain:
        with pytest.raises(IllegalStateError, match="transactional_id"):
            plain.init_transactions(5)
        with pytest.raises(IllegalStateError, match="transactional_id"):
            plain.begin_transaction()
    with Producer(bootstrap, transactional_id=_tid()) as p:
        p.partitions_for(topic)
        with pytest.raises(IllegalStateError, match="init_transactions"):
            p.send(topic, b"x")
        with pytest.raises(IllegalStateError, match="init_transactions"):
            p.begin_transaction()
        p.init_transactions(30)
        with pytest.raises(IllegalStateError, match="init_transactions"):
            p.init_transactions(30)
        with pytest.raises(IllegalStateError, match="begin_transaction"):
            p.send(topic, b"x")
        with pytest.raises(IllegalStateError, match="begin_transaction"):
            p.produce(topic, b"x")
        with pytest.raises(IllegalStateError, match="begin_transaction"):
            p.commit_transaction(5)
        with pytest.raises(IllegalStateError, match="begin_transaction"):
            p.abort_transaction(5)
        p.begin_transaction()
        with pytest.raises(IllegalStateError, match="already open"):
            p.begin_transaction()
        p.commit_transaction(30)          # an empty transaction: nothing to tell the coordinator
        with pytest.raises(IllegalStateError, match="begin_transaction"):
            p.send(topic, b"x")


def test_transactional_settings_are_checked() -> None:
    """A transactional producer is idempotent: settings contradicting it are refused (Java's
    ProducerConfig), the Java dotted names are accepted."""
    from kafka_client.producer import ProducerConfig
    from kafka_client.settings import check_settings

    cfg = ProducerConfig(**check_settings(ProducerConfig.__init__, {"transactional.id": "t",
                                                                    "transaction.timeout.ms": "5000"}, "producer"))
    assert cfg.transactional_id == "t" and cfg.transaction_timeout_ms == 5000 and cfg.idempotent
    assert ProducerConfig(transactional_id="t").transaction_timeout_ms == 60000
    with pytest.raises(ValueError, match="enable_idempotence"):
        ProducerConfig(transactional_id="t", enable_idempotence=False)
    with pytest.raises(ValueError, match="acks"):
        ProducerConfig(transactional_id="t", acks=1)
    with pytest.raises(ValueError, match="max_in_flight"):
        ProducerConfig(transactional_id="t", max_in_flight_requests_per_connection=6)


def test_cli_produce_in_a_transaction_then_consume_read_committed(kafka, bootstrap: str, new_topic) -> None:  # type: ignore[no-untyped-def]
    """``kafka-core produce --transactional-id``: a run's lines are one transaction, committed at
    the end; a run that fails on a bad line is aborted (its records written, never committed).
    ``consume --isolation-level read_committed`` shows the committed run only."""
    topic = new_topic()
    code = "import sys; from kafka_cli.main import main; sys.exit(main(sys.argv[1:]))"
    env = {"PYTHONPATH": ":".join(sys.path), "PATH": "/usr/bin:/bin"}

    def run(*args: str, data: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-c", code, *args], input=data, capture_output=True, text=True,
                              timeout=120, env=env)

    # parse.key=true and a line without the separator: the run fails on it.  The lines before it
    # are fed first and the test waits until the broker holds some of them (written in the open
    # transaction), so that the abort has records to hide however slow the machine is.
    p = subprocess.Popen([sys.executable, "-c", code, "produce", "--bootstrap-server", bootstrap, "--topic", topic,
                          "--transactional-id", _tid(), "--property", "parse.key=true",
                          "--producer-property", "linger.ms=0"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env=env)
    assert p.stdin is not None
    p.stdin.write("".join(f"k{i}\tbad{i}\n" for i in range(2000)))
    p.stdin.flush()
    tp = TopicPartition(topic, 0)
    with Consumer(bootstrap_servers=bootstrap) as c:            # read_uncommitted: the open transaction's records
        deadline = time.monotonic() + 60
        while c.end_offsets([tp])[tp] == 0:
            assert time.monotonic() < deadline and p.poll() is None, "no record of the open transaction was written"
            time.sleep(0.1)
    p.stdin.write("no separator here\n")
    p.stdin.close()
    p.wait(timeout=120)
    assert p.stderr is not None
    err = p.stderr.read()
    assert p.returncode != 0 and "separator" in err, err
    good = "".join(f"line {i}\n" for i in range(1000))
    r = run("produce", "--bootstrap-server", bootstrap, "--topic", topic, "--transactional-id", _tid(), data=good)
    assert r.returncode == 0 and r.stderr == "", r.stderr

    r = run("consume", "--bootstrap-server", bootstrap, "--topic", topic, "--from-beginning",
            "--isolation-level", "read_committed", "--timeout-ms", "5000")
    assert r.stdout.splitlines() == [f"line {i}" for i in range(1000)]
    r = run("consume", "--bootstrap-server", bootstrap, "--topic", topic, "--from-beginning",
            "--isolation-level", "read_uncommitted", "--timeout-ms", "5000")
    lines = r.stdout.splitlines()
    n_bad = len(lines) - 1000
    assert n_bad > 0 and lines[:n_bad] == [f"bad{i}" for i in range(n_bad)]   # written, then aborted
    assert lines[n_bad:] == [f"line {i}" for i in range(1000)]


def test_cli_produce_transaction_is_aborted_on_ctrl_c(kafka, bootstrap: str, new_topic) -> None:  # type: ignore[no-untyped-def]
    """Ctrl-C (SIGINT) during ``produce --transactional-id``: the records already written are
    aborted at once (the LSO moves past them, so read_committed consumers are not held back
    until transaction.timeout.ms), none is committed, the exit status is 130."""
    topic = new_topic()
    code = "import sys; from kafka_cli.main import main; sys.exit(main(sys.argv[1:]))"
    env = {"PYTHONPATH": ":".join(sys.path), "PATH": "/usr/bin:/bin"}
    proc = subprocess.Popen([sys.executable, "-c", code, "produce", "--bootstrap-server", bootstrap, "--topic", topic,
                             "--transactional-id", _tid(), "--producer-property", "linger.ms=0"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdin is not None
        proc.stdin.write("".join(f"line {i}\n" for i in range(500)))
        proc.stdin.flush()
        tp = TopicPartition(topic, 0)
        deadline = time.monotonic() + 30
        with Consumer(bootstrap_servers=bootstrap) as c:   # wait until the records are written
            while c.end_offsets([tp])[tp] < 500 and time.monotonic() < deadline:
                time.sleep(0.1)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    with Consumer(bootstrap_servers=bootstrap, isolation_level="read_committed") as c:
        lso = c.end_offsets([tp])[tp]
    assert lso == 501                     # 500 records and the ABORT marker: the transaction ended
    assert read_values(bootstrap, topic, "read_committed") == []
    assert len(read_values(bootstrap, topic, "read_uncommitted")) == 500


def test_typed_transactional_app(kafka, bootstrap: str) -> None:  # type: ignore[no-untyped-def]
    """The type-checked example (tests/unit/typed/app.py, mypy --strict in tests/unit/test_types.py)
    runs a consume-transform-produce transaction."""
    from tests.unit.typed.app import transform_in_transaction

    src, dst = f"typed-src-{uuid.uuid4().hex[:6]}", f"typed-dst-{uuid.uuid4().hex[:6]}"
    assert transform_in_transaction(bootstrap, src, dst) == [b"HELLO"]
