"""The transaction coordinator without a broker: ``__transaction_state`` records against Kafka's
byte layout, and the state machine driven through ``TxnCoordinator`` over an in-memory log
(``MemoryBackend``) with a marker transport the test controls."""

from __future__ import annotations

import asyncio
import struct
from typing import Any

import pytest
from kafka_broker.groups.offsets_store import MemoryBackend
from kafka_broker.txn import TxnCoordinator
from kafka_broker.txn import records as R
from kafka_broker.txn.markers import MarkerSender
from kafka_broker.txn.state import (
    COMPLETE_ABORT,
    COMPLETE_COMMIT,
    EMPTY,
    ONGOING,
    PREPARE_COMMIT,
    IllegalTransition,
    TxnMetadata,
)
from kafka_protocol.errors import ErrorCode as E


def _s(x: str) -> bytes:
    return struct.pack(">h", len(x)) + x.encode()


# -- records ---------------------------------------------------------------------------------

def test_key_layout() -> None:
    assert R.encode_key("tx-1") == b"\x00\x00" + _s("tx-1")
    assert R.decode_key(R.encode_key("tx-1")) == "tx-1"
    assert R.decode_key(b"\x00\x01" + _s("x")) is None      # another key version: skipped, as Kafka does


def test_value_v0_layout() -> None:
    v = R.TxnLogValue(1234, 7, 60000, ONGOING, {"b": [2, 0], "a": [1]}, 1111, 999)
    want = (struct.pack(">hqhib", 0, 1234, 7, 60000, 1) + struct.pack(">i", 2)
            + _s("a") + struct.pack(">ii", 1, 1) + _s("b") + struct.pack(">iii", 2, 2, 0)
            + struct.pack(">qq", 1111, 999))
    assert R.encode_value(v) == want
    assert R.decode_value(want) == v
    empty = R.TxnLogValue(5, 0, 100, EMPTY, {}, 3, -1)
    raw = R.encode_value(empty)
    assert raw == struct.pack(">hqhib", 0, 5, 0, 100, 0) + struct.pack(">i", -1) + struct.pack(">qq", 3, -1)
    assert R.decode_value(raw) == empty


def test_value_v1_layout_with_tagged_fields() -> None:
    v = R.TxnLogValue(9, 1, 500, PREPARE_COMMIT, {"t": [3]}, 20, 10, previous_producer_id=8, next_producer_id=-1,
                      client_transaction_version=2)
    want = (struct.pack(">hqhib", 1, 9, 1, 500, 2) + b"\x02" + b"\x02t" + b"\x02" + struct.pack(">i", 3) + b"\x00"
            + struct.pack(">qq", 20, 10) + b"\x02" + b"\x00\x08" + struct.pack(">q", 8) + b"\x02\x02"
            + struct.pack(">h", 2))
    assert R.encode_value(v, 1) == want
    assert R.decode_value(want) == v


@pytest.mark.parametrize("bad", [b"\x00\x05" + bytes(30), b"\x00\x00\x00", struct.pack(">hqhib", 0, 1, 0, 1, 1)
                                 + struct.pack(">i", 1) + _s("t") + struct.pack(">i", 1000)])
def test_bad_values_are_refused(bad: bytes) -> None:
    with pytest.raises(R.RecordFormatError):
        R.decode_value(bad)


def test_partition_is_kafkas() -> None:
    # abs(String.hashCode) % n, as Kafka's TransactionStateManager.partitionFor: "a".hashCode() = 97,
    # "ab" = 97 * 31 + 98 = 3105; the same function as __consumer_offsets'
    from kafka_broker.groups import records as G
    assert R.partition_for is G.partition_for
    assert (R.partition_for("a", 50), R.partition_for("ab", 50), R.partition_for("", 50)) == (47, 5, 0)


def test_transitions_refused_out_of_order() -> None:
    md = TxnMetadata("t", 1, producer_epoch=0)
    with pytest.raises(IllegalTransition):
        md.prepare_abort_or_commit(PREPARE_COMMIT, 0)     # Empty -> PrepareCommit
    t = md.prepare_add_partitions({("a", 0)}, 5)
    with pytest.raises(IllegalTransition):
        md.prepare_add_partitions({("a", 1)}, 6)           # one transition pending at a time
    md.complete(t)
    assert md.state == ONGOING and md.start_ms == 5 and md.pending is None


# -- the coordinator ----------------------------------------------------------------------------

class Harness:
    """A coordinator on an in-memory ``__transaction_state``; markers answered by ``answer``."""

    def __init__(self, backend: MemoryBackend | None = None, now: list[float] | None = None) -> None:
        self.backend = backend or MemoryBackend(5)
        self.now = now or [1000.0]
        self.sent: list[Any] = []
        self.hold: asyncio.Future[None] | None = None
        self.next_pid = 100
        self.codes: dict[tuple[str, int], int] = {}
        self.coord = TxnCoordinator(config={"transaction.max.timeout.ms": 60000}, num_partitions=5,
                                    append=self.backend.append, read=self.backend.read,
                                    allocate_producer_id=self._alloc,
                                    markers=MarkerSender(lambda t, p: None if t == "gone" else 0, self._send,
                                                         backoff_ms=1),
                                    clock=lambda: self.now[0])

    async def _alloc(self) -> int:
        self.next_pid += 1
        return self.next_pid

    async def _send(self, broker: int, req: Any) -> Any:
        from kafka_protocol.messages import WriteTxnMarkersResponse as W
        self.sent.append(req)
        if self.hold is not None:
            await self.hold
        m = req.markers[0]
        return W(markers=[W.WritableTxnMarkerResult(producer_id=m.producer_id, topics=[
            W.WritableTxnMarkerTopicResult(name=t.name, partitions=[
                W.WritableTxnMarkerPartitionResult(partition_index=p, error_code=self.codes.pop((t.name, p), 0))
                for p in t.partition_indexes]) for t in m.topics])])

    async def start(self) -> TxnCoordinator:
        for p in range(5):
            await self.coord.load_partition(p, 0)
        self.coord.active = True
        return self.coord

    async def settle(self) -> None:
        for _ in range(50):
            await asyncio.sleep(0.002)


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_init_commit_abort_and_markers() -> None:
    async def go() -> None:
        h = Harness()
        c = await h.start()
        r = await c.init_producer_id("tx", 30000)
        assert (r.error, r.producer_id, r.producer_epoch) == (0, 101, 0)
        assert await c.add_partitions("tx", 101, 0, {("t", 0), ("t", 1)}) == E.NONE
        assert c.txns["tx"].state == ONGOING
        assert await c.add_partitions("tx", 101, 0, {("t", 1)}) == E.NONE      # already in: nothing written
        assert (await c.end_txn("tx", 101, 0, commit=True)).error == E.NONE
        await h.settle()
        assert c.txns["tx"].state == COMPLETE_COMMIT and c.txns["tx"].partitions == set()
        (req,) = h.sent
        m = req.markers[0]
        assert (m.producer_id, m.producer_epoch, m.transaction_result, m.coordinator_epoch) == (101, 0, True, 0)
        assert sorted(p for t in m.topics for p in t.partition_indexes) == [0, 1]
        assert (await c.end_txn("tx", 101, 0, commit=True)).error == E.NONE            # a retry after completion
        assert (await c.end_txn("tx", 101, 0, commit=False)).error == E.INVALID_TXN_STATE
        assert await c.add_partitions("tx", 101, 0, {("t", 2)}) == E.NONE
        assert (await c.end_txn("tx", 101, 0, commit=False)).error == E.NONE
        await h.settle()
        assert c.txns["tx"].state == COMPLETE_ABORT and h.sent[-1].markers[0].transaction_result is False
        # errors of the wrong producer
        assert await c.add_partitions("tx", 999, 0, {("t", 0)}) == E.INVALID_PRODUCER_ID_MAPPING
        assert await c.add_partitions("nope", 101, 0, {("t", 0)}) == E.INVALID_PRODUCER_ID_MAPPING
        assert (await c.end_txn("tx", 101, 5, commit=True)).error == E.PRODUCER_FENCED
        assert (await c.init_producer_id("tx", 60001)).error == E.INVALID_TRANSACTION_TIMEOUT
        assert (await c.init_producer_id("", 100)).error == E.INVALID_REQUEST
    run(go())


def test_concurrent_requests_while_markers_are_out() -> None:
    async def go() -> None:
        h = Harness()
        c = await h.start()
        await c.init_producer_id("tx", 30000)
        await c.add_partitions("tx", 101, 0, {("t", 0)})
        h.hold = asyncio.get_running_loop().create_future()
        assert (await c.end_txn("tx", 101, 0, commit=True)).error == E.NONE     # answered once PrepareCommit is written
        await h.settle()
        assert c.txns["tx"].state == PREPARE_COMMIT
        assert await c.add_partitions("tx", 101, 0, {("t", 1)}) == E.CONCURRENT_TRANSACTIONS
        assert (await c.end_txn("tx", 101, 0, commit=True)).error == E.CONCURRENT_TRANSACTIONS
        assert (await c.init_producer_id("tx", 30000)).error == E.CONCURRENT_TRANSACTIONS
        assert c.verify_partitions("tx", 101, 0, [("t", 0)]) == {("t", 0): E.CONCURRENT_TRANSACTIONS}
        h.hold.set_result(None)
        await h.settle()
        assert c.txns["tx"].state == COMPLETE_COMMIT
    run(go())


def test_a_second_producer_fences_the_first() -> None:
    async def go() -> None:
        h = Harness()
        c = await h.start()
        await c.init_producer_id("tx", 30000)
        await c.add_partitions("tx", 101, 0, {("t", 0)})
        r = await c.init_producer_id("tx", 30000)          # the new instance: abort the old one's first
        assert r.error == E.CONCURRENT_TRANSACTIONS
        await h.settle()
        m = h.sent[-1].markers[0]
        assert (m.transaction_result, m.producer_epoch) == (False, 1)
        assert c.txns["tx"].state == COMPLETE_ABORT
        r = await c.init_producer_id("tx", 30000)
        assert (r.error, r.producer_id, r.producer_epoch) == (0, 101, 2)
        assert (await c.end_txn("tx", 101, 0, commit=True)).error == E.PRODUCER_FENCED
        assert await c.add_partitions("tx", 101, 0, {("t", 0)}) == E.PRODUCER_FENCED
        assert c.verify_partitions("tx", 101, 2, [("t", 0)]) == {("t", 0): E.TRANSACTION_ABORTABLE}
    run(go())


def test_kip360_retry_and_epoch_exhaustion() -> None:
    async def go() -> None:
        h = Harness()
        c = await h.start()
        await c.init_producer_id("tx", 30000)
        r = await c.init_producer_id("tx", 30000, (101, 0))    # the producer recovering: bump
        assert (r.error, r.producer_epoch) == (0, 1)
        r = await c.init_producer_id("tx", 30000, (101, 0))    # a retry of that bump: the same epoch
        assert (r.error, r.producer_epoch) == (0, 1)
        assert (await c.init_producer_id("tx", 30000, (555, 0))).error == E.PRODUCER_FENCED
        md = c.txns["tx"]
        md.producer_epoch = 32766
        r = await c.init_producer_id("tx", 30000)
        assert (r.error, r.producer_id, r.producer_epoch) == (0, 102, 0)
    run(go())


def test_restart_restores_state_and_resumes_markers() -> None:
    async def go() -> None:
        h = Harness()
        c = await h.start()
        await c.init_producer_id("a", 30000)
        await c.add_partitions("a", 101, 0, {("t", 0)})
        await c.init_producer_id("b", 30000)
        await c.add_partitions("b", 102, 0, {("t", 1), ("u", 0)})
        h.hold = asyncio.get_running_loop().create_future()     # the markers never arrive: "crash"
        assert (await c.end_txn("b", 102, 0, commit=True)).error == E.NONE
        c.close()
        h2 = Harness(h.backend)
        c2 = await h2.start()
        await h2.settle()
        assert c2.txns["a"].state == ONGOING and c2.txns["a"].partitions == {("t", 0)}
        assert c2.txns["b"].state == COMPLETE_COMMIT                    # resumed and completed
        m = h2.sent[0].markers[0]
        assert (m.producer_id, m.transaction_result) == (102, True)
        assert sorted((t.name, p) for t in m.topics for p in t.partition_indexes) == [("t", 1), ("u", 0)]
    run(go())


def test_markers_retry_and_skip_deleted_topics() -> None:
    async def go() -> None:
        h = Harness()
        c = await h.start()
        await c.init_producer_id("tx", 30000)
        await c.add_partitions("tx", 101, 0, {("t", 0), ("gone", 0)})
        h.codes[("t", 0)] = E.NOT_LEADER_OR_FOLLOWER
        assert (await c.end_txn("tx", 101, 0, commit=True)).error == E.NONE
        await h.settle()
        assert c.txns["tx"].state == COMPLETE_COMMIT
        assert len(h.sent) == 2 and all(t.name == "t" for r in h.sent for t in r.markers[0].topics)
    run(go())


def test_timed_out_transaction_is_aborted_and_ids_expire() -> None:
    async def go() -> None:
        h = Harness()
        c = await h.start()
        await c.init_producer_id("tx", 1000)
        await c.add_partitions("tx", 101, 0, {("t", 0)})
        await c.abort_timed_out()
        assert c.txns["tx"].state == ONGOING          # not yet
        h.now[0] += 2
        await c.abort_timed_out()
        await h.settle()
        md = c.txns["tx"]
        assert (md.state, md.producer_epoch) == (COMPLETE_ABORT, 1)
        assert (await c.end_txn("tx", 101, 0, commit=True)).error == E.PRODUCER_FENCED
        h.now[0] += 7 * 86400
        await c.expire_ids()
        assert "tx" not in c.txns
        h2 = Harness(h.backend)
        c2 = await h2.start()
        assert "tx" not in c2.txns                    # the tombstone is in the log
        code, unknown, found = c.list(["Bogus"], [])
        assert (code, unknown, found) == (0, ["Bogus"], [])
    run(go())


def test_not_coordinator_and_loading() -> None:
    async def go() -> None:
        h = Harness()
        c = h.coord
        c.active = True
        assert (await c.init_producer_id("tx", 100)).error == E.NOT_COORDINATOR
        c.loading[c.partition_for("tx")] = 3
        assert (await c.init_producer_id("tx", 100)).error == E.COORDINATOR_LOAD_IN_PROGRESS
        assert c.list([], [])[0] == E.COORDINATOR_LOAD_IN_PROGRESS
    run(go())


def test_stale_markers_are_abandoned() -> None:
    """A leader answering INVALID_PRODUCER_EPOCH (a newer epoch wrote there): the markers stop, no
    Complete* is written by this coordinator, and the id keeps answering CONCURRENT_TRANSACTIONS."""
    async def go() -> None:
        h = Harness()
        c = await h.start()
        await c.init_producer_id("tx", 30000)
        await c.add_partitions("tx", 101, 0, {("t", 0)})
        h.codes[("t", 0)] = E.INVALID_PRODUCER_EPOCH
        assert (await c.end_txn("tx", 101, 0, commit=True)).error == E.NONE
        await h.settle()
        md = c.txns["tx"]
        assert (md.state, md.pending, len(h.sent)) == (PREPARE_COMMIT, None, 1)
        assert await c.add_partitions("tx", 101, 0, {("t", 1)}) == E.CONCURRENT_TRANSACTIONS
    run(go())
