"""Consumer against both brokers: assign, seek, offsets, pause, commits, groups."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from kafka_client import AIOConsumer, Consumer, Producer, RebalanceListener, TopicPartition
from kafka_client.errors import IllegalStateError

from .conftest import require_api

JOIN_GROUP = 11


def _produce(bootstrap: str, topic: str, n: int, partitions: int = 1, **kw) -> None:  # type: ignore[no-untyped-def]
    with Producer(bootstrap, linger_ms=5, **kw) as p:
        for i in range(n):
            p.send(topic, b"v%d" % i, key=b"k%d" % i, partition=i % partitions, timestamp_ms=1_000_000 + i)
        p.flush()


def test_assign_seek_pause_offsets(bootstrap: str, new_topic) -> None:  # type: ignore[no-untyped-def]
    topic = new_topic(2)
    _produce(bootstrap, topic, 100, 2)
    tp0, tp1 = TopicPartition(topic, 0), TopicPartition(topic, 1)

    async def go() -> None:
        async with AIOConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest") as c:
            c.assign([tp0, tp1])
            assert c.assignment() == {tp0, tp1}
            got: dict = {tp0: [], tp1: []}
            deadline = time.monotonic() + 20
            while sum(map(len, got.values())) < 100 and time.monotonic() < deadline:
                for tp, recs in (await c.getmany(timeout_ms=500)).items():
                    got[tp] += recs
            assert [r.offset for r in got[tp0]] == list(range(50))
            assert [r.value for r in got[tp1]][:2] == [b"v1", b"v3"]
            assert await c.position(tp0) == 50
            assert await c.end_offsets([tp0, tp1]) == {tp0: 50, tp1: 50}
            assert await c.beginning_offsets([tp0]) == {tp0: 0}
            # offsets_for_times: first offset with timestamp >= ts.
            r = await c.offsets_for_times({tp0: 1_000_000 + 20, tp1: 10**13})
            assert r[tp0] is not None and r[tp0].offset == 10 and r[tp0].timestamp == 1_000_000 + 20
            assert r[tp1] is None
            # seek, then only the sought partition's data comes back.
            c.seek(tp0, 45)
            c.pause(tp1)
            assert c.paused() == {tp1}
            recs = (await c.getmany(timeout_ms=5000)).get(tp0, [])
            assert recs and recs[0].offset == 45
            c.seek(tp1, 0)
            assert await c.getmany(tp1, timeout_ms=300) == {}  # paused
            c.resume(tp1)
            recs = (await c.getmany(tp1, timeout_ms=5000))[tp1]
            assert recs[0].offset == 0
            c.seek_to_end(tp0)
            assert await c.position(tp0) == 50
            c.seek_to_beginning(tp0)
            one = await asyncio.wait_for(c.getone(tp0), 10)
            assert one.offset == 0 and one.key == b"k0" and one.timestamp == 1_000_000

    asyncio.run(go())


def _getone_after(bootstrap: str, topic: str, reset: str,
                  prepare: Callable[[AIOConsumer, TopicPartition], Awaitable[None]]) -> Any:
    """The next record of partition 0 for a consumer with auto_offset_reset=reset, once
    prepare(consumer, partition) has run on the freshly assigned consumer."""

    async def go() -> Any:
        async with AIOConsumer(bootstrap_servers=bootstrap, auto_offset_reset=reset) as c:
            tp = TopicPartition(topic, 0)
            c.assign([tp])
            await prepare(c, tp)
            return await asyncio.wait_for(c.getone(), 15)

    return asyncio.run(go())


def test_latest_reset_sees_only_new_records(bootstrap: str, new_topic) -> None:  # type: ignore[no-untyped-def]
    topic = new_topic()
    _produce(bootstrap, topic, 10)

    async def produce_new(c: AIOConsumer, tp: TopicPartition) -> None:
        assert await c.position(tp) == 10
        with Producer(bootstrap) as p:
            p.send(topic, b"new").result(30)

    r = _getone_after(bootstrap, topic, "latest", produce_new)
    assert (r.offset, r.value) == (10, b"new")


def test_out_of_range_resets(bootstrap: str, new_topic) -> None:  # type: ignore[no-untyped-def]
    topic = new_topic()
    _produce(bootstrap, topic, 5)

    async def seek_past_end(c: AIOConsumer, tp: TopicPartition) -> None:
        c.seek(tp, 1000)

    r = _getone_after(bootstrap, topic, "earliest", seek_past_end)
    assert r.offset == 0


def test_sync_consumer_poll_and_iter(bootstrap: str, new_topic) -> None:  # type: ignore[no-untyped-def]
    topic = new_topic()
    _produce(bootstrap, topic, 30, compression_type="gzip")
    with Consumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest") as c:
        c.assign([(topic, 0)])
        n = 0
        deadline = time.monotonic() + 20
        while n < 30 and time.monotonic() < deadline:
            for _tp, recs in c.poll(0.5).items():
                n += len(recs)
        assert n == 30
        c.seek((topic, 0), 28)
        it = iter(c)
        assert next(it).offset == 28
        assert c.position((topic, 0)) >= 29
        with pytest.raises(IllegalStateError):
            c.commit()  # no group


def test_manual_commit_and_committed(kafka, bootstrap: str, new_topic) -> None:  # type: ignore[no-untyped-def]
    require_api(kafka, 8, "OffsetCommit")
    topic = new_topic()
    _produce(bootstrap, topic, 20)
    group = f"g-{uuid.uuid4().hex[:8]}"
    tp = TopicPartition(topic, 0)
    with Consumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False,
                  auto_offset_reset="earliest") as c:
        c.assign([tp])
        assert c.committed(tp) is None
        got = c.poll(10, max_records=5)
        assert [r.offset for r in got[tp]] == [0, 1, 2, 3, 4]
        c.commit()
        assert c.committed(tp) == 5
        c.commit({tp: 12})
        assert c.committed(tp) == 12
        done: list = []
        c.commit_async({tp: 15}, callback=done.append)
        deadline = time.monotonic() + 10
        while not done and time.monotonic() < deadline:
            time.sleep(0.02)
        assert done == [None]
        assert c.committed(tp) == 15
    # A new consumer of the group starts at the committed offset.
    with Consumer(bootstrap_servers=bootstrap, group_id=group, auto_offset_reset="earliest") as c2:
        c2.assign([tp])
        assert c2.poll(10)[tp][0].offset == 15


def test_commit_is_not_queued_behind_a_parked_fetch(kafka, bootstrap: str, new_topic) -> None:  # type: ignore[no-untyped-def]
    """A broker answers one connection's requests in order, so a commit sent on the connection of
    a fetch parked for fetch_max_wait_ms waits for that fetch (awaited commits had a p90 of 500 ms,
    issue 11).  The coordinator gets a connection of its own, as in the Java client and
    librdkafka: with a 20 s long poll in flight on the empty partition, each commit returns long
    before it ends."""
    require_api(kafka, 8, "OffsetCommit")
    topic = new_topic()
    tp = TopicPartition(topic, 0)

    async def go() -> None:
        async with AIOConsumer(bootstrap_servers=bootstrap, group_id=f"g-{uuid.uuid4().hex[:8]}",
                               enable_auto_commit=False, fetch_max_wait_ms=20000,
                               auto_offset_reset="earliest") as c:
            c.assign([tp])
            for i in range(5):
                assert await c.getmany(timeout_ms=200) == {}    # the fetch loop has a fetch parked
                await asyncio.wait_for(c.commit({tp: i + 1}), 10)
            assert await c.committed(tp) == 5

    asyncio.run(go())


def test_one_record_type_everywhere(bootstrap: str, new_topic) -> None:  # type: ignore[no-untyped-def]
    """issue 15: poll, getmany, getone and iteration all give kafka_core's Record, which knows its
    topic and partition (poll gave Record, getone a ConsumerRecord tuple)."""
    from kafka_core import Record

    topic = new_topic(partitions=2)
    _produce(bootstrap, topic, 4, partitions=2)
    with Consumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest") as c:
        c.assign([TopicPartition(topic, 0), TopicPartition(topic, 1)])
        got: list[Any] = []
        for _ in range(20):
            for recs in c.poll(1.0).values():
                got += recs
            if len(got) == 4:
                break
    assert len(got) == 4 and all(type(r) is Record for r in got)
    assert sorted((r.topic, r.partition, r.offset) for r in got) == [(topic, p, o) for p in (0, 1) for o in (0, 1)]

    async def aio() -> Any:
        async with AIOConsumer(topic, bootstrap_servers=bootstrap, group_id=f"g-{uuid.uuid4().hex[:6]}",
                               auto_offset_reset="earliest") as c:
            one = await asyncio.wait_for(c.getone(), 20)
            async for r in c:
                return one, r
    one, it = asyncio.run(aio())
    assert type(one) is Record and type(it) is Record and one.topic == it.topic == topic
    assert one.partition in (0, 1) and one.key is not None


class _Recorder(RebalanceListener):
    def __init__(self) -> None:
        self.assigned: list[set] = []
        self.revoked: list[set] = []

    def on_partitions_assigned(self, assigned):  # type: ignore[no-untyped-def]
        self.assigned.append(set(assigned))

    async def on_partitions_revoked(self, revoked):  # type: ignore[no-untyped-def]
        self.revoked.append(set(revoked))


@pytest.mark.parametrize("strategy", ["range", "roundrobin", "cooperative-sticky"])
def test_group_subscribe_splits_partitions(kafka, bootstrap: str, new_topic, strategy: str) -> None:  # type: ignore[no-untyped-def]
    require_api(kafka, JOIN_GROUP, "JoinGroup")
    topic = new_topic(4)
    _produce(bootstrap, topic, 40, 4)
    group = f"g-{uuid.uuid4().hex[:8]}"
    kw = dict(bootstrap_servers=bootstrap, group_id=group, auto_offset_reset="earliest",
              partition_assignment_strategy=[strategy], heartbeat_interval_ms=200, session_timeout_ms=10000,
              auto_commit_interval_ms=100)

    async def go() -> None:
        l1, l2 = _Recorder(), _Recorder()
        c1 = await AIOConsumer(**kw).start()
        c1.subscribe([topic], listener=l1)
        seen: dict = {}
        deadline = time.monotonic() + 30
        while len(seen) < 40 and time.monotonic() < deadline:
            for tp, recs in (await c1.getmany(timeout_ms=300)).items():
                for r in recs:
                    seen[(tp.partition, r.offset)] = r.value
        assert len(seen) == 40
        assert c1.assignment() == {TopicPartition(topic, p) for p in range(4)}
        await c1.commit()
        c2 = await AIOConsumer(**kw).start()
        c2.subscribe([topic], listener=l2)
        # Both poll until the group settles with two members and all partitions split.
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline:
            await asyncio.gather(c1.getmany(timeout_ms=200), c2.getmany(timeout_ms=200))
            a1, a2 = c1.assignment(), c2.assignment()
            if len(a1) == 2 and len(a2) == 2:
                break
        assert len(a1) == 2 and len(a2) == 2 and not (a1 & a2)
        assert a1 | a2 == {TopicPartition(topic, p) for p in range(4)}
        assert l1.revoked, "c1 must have been told of the partitions it gave up"
        assert l2.assigned and set().union(*l2.assigned) >= a2
        # Nothing is read twice: c2 starts from the committed offsets (end of each partition).
        with Producer(bootstrap) as p:
            for part in range(4):
                p.send(topic, b"late", partition=part).result(30)
        late: list = []
        deadline = time.monotonic() + 20
        while len(late) < 4 and time.monotonic() < deadline:
            for c in (c1, c2):
                for _tp, recs in (await c.getmany(timeout_ms=200)).items():
                    late += [r.value for r in recs]
        assert late == [b"late"] * 4
        await c2.close()
        await c1.close()

    asyncio.run(go())


@pytest.mark.interop   # transactions written by confluent-kafka
def test_read_committed_skips_aborted_transactions(kafka, bootstrap: str, new_topic) -> None:  # type: ignore[no-untyped-def]
    """Transactions written by librdkafka (confluent-kafka): read_committed sees committed ones
    only, read_uncommitted sees everything; control records are never handed out."""
    require_api(kafka, 26, "EndTxn")
    import confluent_kafka as ck  # a test dependency (./dev test): missing is a failure
    topic = new_topic()
    p = ck.Producer({"bootstrap.servers": bootstrap, "transactional.id": f"tx-{uuid.uuid4().hex[:8]}",
                     "linger.ms": 0})
    p.init_transactions(30)
    for txn, commit in (("a", False), ("b", True), ("c", False), ("d", True)):
        p.begin_transaction()
        for i in range(3):
            p.produce(topic, f"{txn}{i}".encode())
        p.flush(30)
        if commit:
            p.commit_transaction(30)
        else:
            p.abort_transaction(30)

    def read(isolation: str, n: int) -> list[bytes]:
        async def go() -> list[bytes]:
            async with AIOConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                   isolation_level=isolation) as c:
                c.assign([TopicPartition(topic, 0)])
                out: list[bytes] = []
                deadline = time.monotonic() + 20
                while time.monotonic() < deadline:
                    for recs in (await c.getmany(timeout_ms=300)).values():
                        out += [r.value for r in recs]
                    if len(out) >= n and await c.position(TopicPartition(topic, 0)) >= 16:
                        break
                return out
        return asyncio.run(go())

    assert read("read_committed", 6) == [b"b0", b"b1", b"b2", b"d0", b"d1", b"d2"]
    assert len(read("read_uncommitted", 12)) == 12


def test_fetch_sessions_incremental(kafka, bootstrap: str, new_topic) -> None:  # type: ignore[no-untyped-def]
    """KIP-227: after the first full fetch, fetches are incremental; pausing one partition
    (forgotten from the session), seeking another and resuming still give exact records."""
    topic = new_topic(3)
    _produce(bootstrap, topic, 300, partitions=3)

    async def go() -> tuple[dict[int, list[int]], list[int], AIOConsumer]:
        c = AIOConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest", max_poll_records=7,
                        max_partition_fetch_bytes=200, fetch_max_wait_ms=50)
        await c.start()
        try:
            tps = [TopicPartition(topic, p) for p in range(3)]
            c.assign(tps)
            got: dict[int, list[int]] = {p: [] for p in range(3)}
            for _ in range(5):
                for tp, recs in (await c.getmany(timeout_ms=1000)).items():
                    got[tp.partition] += [r.offset for r in recs]
            c.pause(tps[0])
            c.seek(tps[1], 0)  # rewind: the session must carry the new fetch offset
            got[1] = []
            for _ in range(10):
                for tp, recs in (await c.getmany(timeout_ms=300)).items():
                    got[tp.partition] += [r.offset for r in recs]
            c.resume(tps[0])
            deadline = time.monotonic() + 20
            while sum(len(v) for v in got.values()) < 300 and time.monotonic() < deadline:
                for tp, recs in (await c.getmany(timeout_ms=300)).items():
                    got[tp.partition] += [r.offset for r in recs]
            return got, list(c.fetch_session_stats), c
        finally:
            await c.close()

    got, (incremental, full), c = asyncio.run(go())
    for p in range(3):
        assert got[p] == list(range(100)), p
    if kafka.kind == "apache":
        assert full >= 1 and incremental > full  # Apache Kafka grants sessions: most fetches incremental
