"""The transaction coordinator with transaction version 2 (KIP-890 part 2, issue 12): EndTxn v5
bumps the epoch at every commit and abort, the markers carry the bumped epoch, an exhausted epoch
hands over a new producer id (PreviousProducerId / NextProducerId in TransactionLogValue v1), a
retried EndTxn is recognised by the epoch one below, a TV2 client may abort with nothing added,
and a restarted coordinator reads it all back from ``__transaction_state``."""

from __future__ import annotations

import asyncio

from kafka_broker.groups.offsets_store import MemoryBackend
from kafka_broker.txn import records as R
from kafka_broker.txn.state import COMPLETE_ABORT, COMPLETE_COMMIT, EMPTY, TV0, TV2
from kafka_protocol.errors import ErrorCode as E

from tests.unit.test_txn import Harness, run


def tv2_harness(backend: MemoryBackend | None = None) -> Harness:
    h = Harness(backend)
    h.coord.config["transaction.version"] = 2
    return h


def last_value(h: Harness, tid: str) -> R.TxnLogValue:
    from kafka_broker.groups.offsets_store import decode_records

    p = h.coord.partition_for(tid)
    found = None
    for chunk in h.backend.read(p):
        for key, value in decode_records(chunk):
            if key is not None and R.decode_key(bytes(key)) == tid and value is not None:
                found = bytes(value)
    assert found is not None
    assert found[:2] == b"\x00\x01"          # TransactionLogValue v1 once transaction.version >= 1
    return R.decode_value(found)


def test_end_txn_v2_bumps_the_epoch_and_the_markers_carry_it() -> None:
    async def go() -> None:
        h = tv2_harness()
        c = await h.start()
        r = await c.init_producer_id("tx", 30000)
        assert (r.producer_id, r.producer_epoch) == (101, 0)
        assert await c.add_partitions("tx", 101, 0, {("t", 0)}, TV2) == E.NONE
        res = await c.end_txn("tx", 101, 0, commit=True, client_tv=TV2)
        assert (res.error, res.producer_id, res.producer_epoch) == (E.NONE, 101, 1)
        await h.settle()
        md = c.txns["tx"]
        assert (md.state, md.producer_epoch, md.last_producer_epoch, md.client_tv) == (COMPLETE_COMMIT, 1, 0, TV2)
        m = h.sent[-1].markers[0]
        assert (m.producer_id, m.producer_epoch, m.transaction_result) == (101, 1, True)
        v = last_value(h, "tx")
        assert (v.status, v.producer_epoch, v.client_transaction_version) == (COMPLETE_COMMIT, 1, TV2)
        # a retry of that EndTxn (the epoch before the bump) answers the bumped epoch again
        res = await c.end_txn("tx", 101, 0, commit=True, client_tv=TV2)
        assert (res.error, res.producer_epoch) == (E.NONE, 1)
        assert (await c.end_txn("tx", 101, 0, commit=False, client_tv=TV2)).error == E.INVALID_TXN_STATE
        # the old epoch cannot add: fenced; the new one starts the next transaction
        assert await c.add_partitions("tx", 101, 0, {("t", 0)}, TV2) == E.PRODUCER_FENCED
        assert await c.add_partitions("tx", 101, 1, {("t", 1)}, TV2) == E.NONE
        res = await c.end_txn("tx", 101, 1, commit=False, client_tv=TV2)
        assert (res.error, res.producer_epoch) == (E.NONE, 2)
        await h.settle()
        assert (c.txns["tx"].state, h.sent[-1].markers[0].producer_epoch) == (COMPLETE_ABORT, 2)
        # an epoch two below is neither current nor a retry
        assert (await c.end_txn("tx", 101, 0, commit=False, client_tv=TV2)).error == E.PRODUCER_FENCED
    run(go())


def test_tv2_abort_with_nothing_added_and_tv1_commit_keeps_the_epoch() -> None:
    async def go() -> None:
        h = tv2_harness()
        c = await h.start()
        await c.init_producer_id("tx", 30000)
        sent = len(h.sent)
        res = await c.end_txn("tx", 101, 0, commit=False, client_tv=TV2)     # Empty -> PrepareAbort
        assert (res.error, res.producer_epoch) == (E.NONE, 1)
        await h.settle()
        assert c.txns["tx"].state == COMPLETE_ABORT and len(h.sent) == sent   # no partition: no marker
        assert (await c.end_txn("tx", 101, 1, commit=True, client_tv=TV2)).error == E.INVALID_TXN_STATE
        # a TV1 client (EndTxn v4 and below) on the same coordinator: the epoch stays
        await c.init_producer_id("v1", 30000)
        assert await c.add_partitions("v1", 102, 0, {("t", 0)}) == E.NONE
        res = await c.end_txn("v1", 102, 0, commit=True, client_tv=TV0)
        assert (res.error, res.producer_id, res.producer_epoch) == (E.NONE, 102, 0)
        await h.settle()
        assert (c.txns["v1"].producer_epoch, h.sent[-1].markers[0].producer_epoch) == (0, 0)
        assert (await c.end_txn("v1", 102, 0, commit=False, client_tv=TV0)).error == E.INVALID_TXN_STATE
    run(go())


def test_an_exhausted_epoch_moves_to_the_next_producer_id() -> None:
    async def go() -> None:
        h = tv2_harness()
        c = await h.start()
        await c.init_producer_id("tx", 30000)
        md = c.txns["tx"]
        md.producer_epoch = 32766        # Short.MAX_VALUE - 1: the last epoch a client may use
        assert await c.add_partitions("tx", 101, 32766, {("t", 0)}, TV2) == E.NONE
        res = await c.end_txn("tx", 101, 32766, commit=True, client_tv=TV2)
        assert (res.error, res.producer_id, res.producer_epoch) == (E.NONE, 102, 0)
        await h.settle()
        assert h.sent[-1].markers[0].producer_epoch == 32767      # the markers fence epoch MAX - 1
        assert (md.state, md.producer_id, md.producer_epoch, md.last_producer_id, md.last_producer_epoch,
                md.next_producer_id) == (COMPLETE_COMMIT, 102, 0, 101, 32766, -1)
        v = last_value(h, "tx")
        assert (v.producer_id, v.producer_epoch, v.previous_producer_id, v.next_producer_id) == (102, 0, 101, -1)
        # a retry with the old id at the exhausted epoch is recognised
        res = await c.end_txn("tx", 101, 32766, commit=True, client_tv=TV2)
        assert (res.error, res.producer_id, res.producer_epoch) == (E.NONE, 102, 0)
        assert await c.add_partitions("tx", 102, 0, {("t", 0)}, TV2) == E.NONE
    run(go())


def test_prepare_with_next_producer_id_is_recovered_after_a_restart() -> None:
    async def go() -> None:
        h = tv2_harness()
        c = await h.start()
        await c.init_producer_id("tx", 30000)
        c.txns["tx"].producer_epoch = 32766
        await c.add_partitions("tx", 101, 32766, {("t", 0)}, TV2)
        h.hold = asyncio.get_running_loop().create_future()        # markers never answered: "crash"
        assert (await c.end_txn("tx", 101, 32766, commit=False, client_tv=TV2)).error == E.NONE
        v = last_value(h, "tx")
        assert (v.status, v.producer_epoch, v.next_producer_id, v.client_transaction_version) == (3, 32767, 102, 2)
        c.close()
        h2 = tv2_harness(h.backend)
        c2 = await h2.start()
        await h2.settle()
        md = c2.txns["tx"]
        assert (md.state, md.producer_id, md.producer_epoch, md.client_tv) == (COMPLETE_ABORT, 102, 0, TV2)
        m = h2.sent[0].markers[0]
        assert (m.producer_id, m.producer_epoch, m.transaction_result) == (101, 32767, False)
        r = await c2.init_producer_id("tx", 30000, (102, 0))
        assert (r.error, r.producer_id, r.producer_epoch) == (E.NONE, 102, 1)
    run(go())


def test_a_fence_of_a_tv2_transaction_aborts_above_the_zombies_epoch() -> None:
    async def go() -> None:
        h = tv2_harness()
        c = await h.start()
        await c.init_producer_id("tx", 30000)
        assert await c.add_partitions("tx", 101, 0, {("t", 0)}, TV2) == E.NONE
        r = await c.init_producer_id("tx", 30000)         # a new instance: the ongoing one is aborted
        assert r.error == E.CONCURRENT_TRANSACTIONS
        await h.settle()
        md = c.txns["tx"]
        # Kafka's TV2 fence: the fence epoch 1, bumped again by the abort: markers at 2
        assert (md.state, md.producer_epoch, h.sent[-1].markers[0].producer_epoch) == (COMPLETE_ABORT, 2, 2)
        r = await c.init_producer_id("tx", 30000)
        assert (r.error, r.producer_epoch) == (E.NONE, 3)
        assert md.state == EMPTY
        assert (await c.end_txn("tx", 101, 0, commit=True, client_tv=TV2)).error == E.PRODUCER_FENCED
        assert await c.add_partitions("tx", 101, 0, {("t", 0)}, TV2) == E.PRODUCER_FENCED
    run(go())


def test_a_marker_drops_the_verification_guard() -> None:
    """A batch verified for a transaction that a marker ended meanwhile must not open a new one
    (Kafka's VerificationGuard): the guard handed out before the coordinator was asked is gone."""
    from kafka_broker.log.producer_state import ProducerState

    st = ProducerState()
    assert st.needs_verification(7, 0)
    guard = st.start_verification(7)
    assert st.start_verification(7) is guard and st.verified(7, guard)
    st.update(7, 0, 0, 0, 10, 10, 1)
    st.begin(7, 10)
    assert not st.needs_verification(7, 0)          # open at this epoch: no question to ask
    assert st.needs_verification(7, 1)              # a TV2 producer's next epoch opens a new one
    st.end(7, 1, 0)
    assert not st.verified(7, guard) and st.needs_verification(7, 1)
