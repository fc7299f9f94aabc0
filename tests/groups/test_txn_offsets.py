"""TxnOffsetCommit (KIP-98, KIP-447): offsets committed inside a transaction are written at once as
the producer's transactional batch, hidden from OffsetFetch (UNSTABLE_OFFSET_COMMIT with
require_stable) until the COMMIT marker reaches ``__consumer_offsets``, dropped on ABORT, and
rebuilt the same way from the log after a restart."""

from __future__ import annotations

from typing import Any

import kafka_protocol as K
from kafka_broker.groups.offsets_store import COMMIT, TXN, decode_entries
from kafka_protocol._pyrecords import decode_batches, make_batch
from kafka_protocol.errors import ErrorCode as E

from .test_offsets import fetch_req, fetched
from .util import async_test, call, commit_req, form_group, restarted, started, sync_all

PID, EPOCH = 4000, 3


def txn_req(group: str, offsets: dict[tuple[str, int], int], *, pid: int = PID, epoch: int = EPOCH,
            generation: int = -1, member_id: str = "") -> Any:
    R = K.TxnOffsetCommitRequest
    by_topic: dict[str, list[Any]] = {}
    for (t, p), off in offsets.items():
        by_topic.setdefault(t, []).append(R.TxnOffsetCommitRequestPartition(
            partition_index=p, committed_offset=off, committed_leader_epoch=-1, committed_metadata="m"))
    return R(transactional_id="tx", group_id=group, producer_id=pid, producer_epoch=epoch,
             generation_id=generation, member_id=member_id, group_instance_id=None,
             topics=[R.TxnOffsetCommitRequestTopic(name=t, partitions=ps) for t, ps in by_topic.items()])


def errors(resp: Any) -> dict[tuple[str, int], int]:
    return {(t.name, p.partition_index): p.error_code for t in resp.topics for p in t.partitions}


def marker(pid: int, commit: bool) -> bytes:
    """A control batch as the log layer writes it: key (version 0, type 1 commit / 0 abort)."""
    return make_batch([(0, b"\x00\x00\x00" + (b"\x01" if commit else b"\x00"), b"\x00\x00\x00\x00\x00\x05", [])],
                      base_timestamp=0, producer_id=pid, producer_epoch=EPOCH, attributes=0x30)


async def committed(coord: Any, group: str, tps: dict[str, list[int]], stable: bool = False) -> dict[Any, Any]:
    return fetched(await call(coord, "offset_fetch", fetch_req(group, tps, stable), 7))


@async_test
async def test_offsets_show_only_after_the_commit_marker() -> None:
    coord, _, backend = await started()
    r = await call(coord, "txn_offset_commit", txn_req("g", {("t1", 0): 10, ("t1", 1): 20}), 3)
    assert set(errors(r).values()) == {E.NONE}
    # written once, as one transactional batch of the producer, with no sequence
    part = coord.store.partition_for("g")
    (batch,) = decode_batches(backend.batches[part][-1])
    assert (batch.producer_id, batch.producer_epoch, batch.base_sequence, batch.attributes & 0x10) == (PID, EPOCH, -1, 0x10)
    assert await committed(coord, "g", {"t1": [0, 1]}) == {("t1", 0): (-1, "", 0), ("t1", 1): (-1, "", 0)}
    got = await committed(coord, "g", {"t1": [0, 1, 2]}, stable=True)
    assert got[("t1", 0)][2] == got[("t1", 1)][2] == E.UNSTABLE_OFFSET_COMMIT
    assert got[("t1", 2)][2] == E.NONE
    coord.complete_txn(part, PID, True)
    assert await committed(coord, "g", {"t1": [0, 1]}, stable=True) == {("t1", 0): (10, "m", 0), ("t1", 1): (20, "m", 0)}


@async_test
async def test_abort_drops_them_and_a_marker_for_another_partition_does_not_settle_them() -> None:
    coord, _, _ = await started()
    await call(coord, "txn_offset_commit", txn_req("g", {("t1", 0): 10}), 3)
    await call(coord, "offset_commit", commit_req("g", {("t1", 0): 5}), 8)
    part = coord.store.partition_for("g")
    coord.complete_txn((part + 1) % 50, PID, True)       # not this group's partition
    assert (await committed(coord, "g", {"t1": [0]}, stable=True))[("t1", 0)][2] == E.UNSTABLE_OFFSET_COMMIT
    coord.complete_txn(part, PID, False)
    assert await committed(coord, "g", {"t1": [0]}, stable=True) == {("t1", 0): (5, "", 0)}


@async_test
async def test_a_plain_commit_written_after_the_transactional_one_wins() -> None:
    coord, _, _ = await started()
    await call(coord, "txn_offset_commit", txn_req("g", {("t1", 0): 10, ("t1", 1): 10}), 3)
    await call(coord, "offset_commit", commit_req("g", {("t1", 0): 99}), 8)
    coord.complete_txn(coord.store.partition_for("g"), PID, True)
    got = await committed(coord, "g", {"t1": [0, 1]})
    assert (got[("t1", 0)][0], got[("t1", 1)][0]) == (99, 10)


@async_test
async def test_reload_from_the_log_keeps_pending_committed_and_aborted_apart() -> None:
    coord, _, backend = await started()
    part = coord.store.partition_for("g")
    await call(coord, "txn_offset_commit", txn_req("g", {("t1", 0): 10}, pid=1), 3)
    await call(coord, "txn_offset_commit", txn_req("g", {("t1", 1): 11}, pid=2), 3)
    await call(coord, "txn_offset_commit", txn_req("g", {("t1", 2): 12}, pid=3), 3)
    await call(coord, "offset_commit", commit_req("g", {("t1", 0): 7}), 8)   # after pid 1's: wins
    backend.batches[part].append(marker(1, True))
    backend.batches[part].append(marker(2, False))
    kinds = [k for chunk in backend.batches[part] for k, *_ in decode_entries(chunk)]
    assert kinds.count(TXN) == 3 and kinds.count(COMMIT) == 1
    coord2, _ = await restarted(coord, backend)
    got = await committed(coord2, "g", {"t1": [0, 1, 2]}, stable=True)
    assert got[("t1", 0)] == (7, "", 0)                           # the later plain commit
    assert got[("t1", 1)] == (-1, "", 0)                          # aborted
    assert got[("t1", 2)][2] == E.UNSTABLE_OFFSET_COMMIT          # still open: its marker may come
    coord2.complete_txn(part, 3, True)
    assert (await committed(coord2, "g", {"t1": [2]}))[("t1", 2)][:2] == (12, "m")


@async_test
async def test_validation_is_the_group_s() -> None:
    coord, sched, _ = await started()
    # a missing group with a generation: ILLEGAL_GENERATION (a simple group needs generation -1)
    r = await call(coord, "txn_offset_commit", txn_req("nope", {("t1", 0): 1}, generation=3, member_id="m"), 3)
    assert set(errors(r).values()) == {E.ILLEGAL_GENERATION}
    r = await call(coord, "txn_offset_commit", txn_req("g", {("t1", 99): 1, ("zz", 0): 1}), 3)
    assert set(errors(r).values()) == {E.UNKNOWN_TOPIC_OR_PARTITION}
    r = await call(coord, "txn_offset_commit", txn_req("", {("t1", 0): 1}), 3)
    assert set(errors(r).values()) == {E.INVALID_GROUP_ID}
    members = await form_group(coord, sched, 1, group="live")
    await sync_all(coord, "live", members)
    m = members[0]
    r = await call(coord, "txn_offset_commit", txn_req("live", {("t1", 0): 1}, generation=m.generation_id + 1,
                                                        member_id=m.member_id), 3)
    assert set(errors(r).values()) == {E.ILLEGAL_GENERATION}
    r = await call(coord, "txn_offset_commit", txn_req("live", {("t1", 0): 1}, generation=m.generation_id,
                                                        member_id="stranger"), 3)
    assert set(errors(r).values()) == {E.UNKNOWN_MEMBER_ID}
    r = await call(coord, "txn_offset_commit", txn_req("live", {("t1", 0): 1}, generation=m.generation_id,
                                                        member_id=m.member_id), 3)
    assert set(errors(r).values()) == {E.NONE}
    # v0-2 carry no member: accepted for the producer's group only when the group is empty
    r = await call(coord, "txn_offset_commit", txn_req("live", {("t1", 0): 1}), 0)
    assert set(errors(r).values()) == {E.UNKNOWN_MEMBER_ID}
