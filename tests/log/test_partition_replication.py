"""The partition layer's replication primitives: the leader-epoch cache on appends, the
follower's append (AppendOrigin.REPLICATION), truncate_to, the high watermark and its
checkpoint (replication-offset-checkpoint)."""

from __future__ import annotations

import os

import pytest
from kafka_broker.log import AppendError, AppendOrigin, AppendResult, Partition
from kafka_broker.log.leader_epoch import LEADER_EPOCH_CHECKPOINT
from kafka_broker.log.producer_state import DuplicateBatch
from kafka_broker.log.topics import new_topic_id
from kafka_broker.storage import HW_CHECKPOINT
from kafka_protocol import _pyrecords as py

from .conftest import StorageHarness


def client_batch(n: int = 1, ts: int = 1000, pid: int = -1, seq: int = -1) -> bytearray:
    return bytearray(py.make_batch([(ts + i, b"k", b"v" * 20, []) for i in range(n)], base_timestamp=ts,
                                   producer_id=pid, producer_epoch=0 if pid >= 0 else -1, base_sequence=seq))


def leader_batches(*specs: tuple[int, int, int, int, int]) -> bytes:
    """Batches as a leader's log holds them: (base_offset, records, epoch, pid, base_seq) each."""
    out = b""
    for base, n, epoch, pid, seq in specs:
        out += py.make_batch([(1000 + i, b"k", b"v" * 20, []) for i in range(n)], base_timestamp=1000,
                             base_offset=base, partition_leader_epoch=epoch, producer_id=pid,
                             producer_epoch=0 if pid >= 0 else -1, base_sequence=seq)
    return out


def hosted(h: StorageHarness, n: int = 1) -> list[Partition]:
    st = h.storage if h.storage is not None else h.open()
    t = h.run(st.ensure_topic("r", new_topic_id(), n, {}))
    return [h.run(st.create_replica(t, i)) for i in range(n)]


def test_single_node_high_watermark_is_the_log_end(harness: StorageHarness) -> None:
    st = harness.open()
    t = harness.run(st.create_topic("t", 1, {}))
    p = t.partitions[0]
    assert p is not None and p.high_watermark == 0 and p.replication is None
    for _ in range(3):
        p.append(client_batch(), AppendOrigin.CLIENT)
    assert p.high_watermark == 3 == p.log.end_offset
    p.truncate_to(1)
    assert p.high_watermark == 1 == p.log.end_offset
    st = harness.reopen()
    p = st.topics["t"].partitions[0]
    assert p is not None and p.high_watermark == 1


def test_leader_append_records_a_new_epoch(harness: StorageHarness) -> None:
    st = harness.open()
    p = harness.run(st.create_topic("t", 1, {})).partitions[0]
    assert p is not None
    p.append(client_batch(2), AppendOrigin.CLIENT)
    assert p.epochs.entries() == [(0, 0)]
    p.append(client_batch(1), AppendOrigin.CLIENT)
    assert p.epochs.entries() == [(0, 0)]      # same epoch: nothing new
    p.leader_epoch = 4
    p.append(client_batch(1), AppendOrigin.COORDINATOR)
    assert p.epochs.entries() == [(0, 0), (4, 3)]
    assert p.epochs.end_offset_for(0, p.log.end_offset) == (0, 3)
    assert os.path.exists(os.path.join(p.path, LEADER_EPOCH_CHECKPOINT))
    st = harness.reopen()
    p = st.topics["t"].partitions[0]
    assert p is not None and p.epochs.entries() == [(0, 0), (4, 3)]


def test_follower_append_keeps_offsets_epochs_and_rebuilds_producers(replicated: StorageHarness) -> None:
    (p,) = hosted(replicated)
    woken: list[int] = []
    p.waiters.append(lambda _p, n: woken.append(n))
    data = leader_batches((0, 2, 1, 7, 0), (2, 3, 1, 7, 2), (5, 1, 3, -1, -1), (6, 2, 3, 7, 5))
    view = memoryview(data)                 # read-only, like a fetch response frame
    res = p.append(view, AppendOrigin.REPLICATION)
    assert isinstance(res, AppendResult) and (res.first_offset, res.last_offset) == (0, 7)
    assert p.log.end_offset == 8 and p.high_watermark == 0   # the follower sets it from the leader
    assert woken == [len(data)]
    assert p.epochs.entries() == [(1, 0), (3, 5)]
    assert bytes(view) == data
    raw = p.log.read(0, 1 << 20).read_bytes()
    assert raw == data                       # as the leader wrote them, epochs included
    # producer state was rebuilt: a retry of the last batch is a duplicate, the next seq goes on
    with pytest.raises(DuplicateBatch):
        p.producers.check(7, 0, 5, 6)
    assert p.producers.check(7, 0, 7, 7) == 0
    # offsets going back are refused, nothing is written
    again = p.append(memoryview(leader_batches((7, 1, 3, -1, -1))), AppendOrigin.REPLICATION)
    assert isinstance(again, AppendError) and p.log.end_offset == 8


def test_follower_epochs_survive_restart(replicated: StorageHarness) -> None:
    (p,) = hosted(replicated)
    p.append(memoryview(leader_batches((0, 1, 2, -1, -1), (1, 1, 5, -1, -1))), AppendOrigin.REPLICATION)
    st = replicated.reopen()
    q = st.topics["r"].partitions[0]
    assert q is not None and q.epochs.entries() == [(2, 0), (5, 1)]


def test_truncate_to_removes_the_tail_everywhere(replicated: StorageHarness) -> None:
    (p,) = hosted(replicated)
    p.append(memoryview(leader_batches((0, 2, 1, 7, 0), (2, 2, 2, 7, 2), (4, 2, 3, 7, 4))),
             AppendOrigin.REPLICATION)
    p.high_watermark = 6
    p.truncate_to(3)                  # inside the batch 2..3: it goes whole
    assert p.log.end_offset == 2
    assert p.epochs.entries() == [(1, 0)]
    assert p.high_watermark == 2
    assert p.producers.check(7, 0, 2, 3) == 0     # seq 2 is next again, not a duplicate
    with pytest.raises(DuplicateBatch):
        p.producers.check(7, 0, 0, 1)
    p.truncate_to(10)                 # past the end: nothing
    assert p.log.end_offset == 2
    # the follower refetches the new leader's tail
    res = p.append(memoryview(leader_batches((2, 1, 4, 7, 2))), AppendOrigin.REPLICATION)
    assert isinstance(res, AppendResult) and p.epochs.entries() == [(1, 0), (4, 2)]
    st = replicated.reopen()
    q = st.topics["r"].partitions[0]
    assert q is not None and q.epochs.entries() == [(1, 0), (4, 2)] and q.log.end_offset == 3
    assert q.producers.check(7, 0, 3, 3) == 0


def test_truncate_to_ignores_a_snapshot_past_the_new_end(replicated: StorageHarness) -> None:
    (p,) = hosted(replicated)
    p.append(memoryview(leader_batches((0, 2, 1, 7, 0), (2, 2, 1, 7, 2))), AppendOrigin.REPLICATION)
    st = replicated.storage
    assert st is not None
    st._write_producer_snapshot(p.path, 4, p.producers.to_json())
    p.truncate_to(2)
    assert p.producers.check(7, 0, 2, 3) == 0
    assert not os.path.exists(os.path.join(p.path, "kc-producer-state.json"))


def test_high_watermark_checkpoint(replicated: StorageHarness) -> None:
    p0, p1 = hosted(replicated, 2)
    for p in (p0, p1):
        p.append(memoryview(leader_batches((0, 5, 0, -1, -1))), AppendOrigin.REPLICATION)
    p0.high_watermark = 3
    p1.high_watermark = 5
    st = replicated.reopen()
    path = os.path.join(replicated.dir, HW_CHECKPOINT)
    with open(path, encoding="utf-8") as f:
        assert f.read() == "0\n2\nr 0 3\nr 1 5\n"
    assert [q.high_watermark for q in st.topics["r"].hosted()] == [3, 5]
    # an entry past the log end is clamped; a partition missing from the file starts at the log start
    replicated.close()     # (a clean close writes the file)
    with open(path, "w", encoding="utf-8") as f:
        f.write("0\n1\nr 0 99\n")
    st = replicated.open()
    assert [q.high_watermark for q in st.topics["r"].hosted()] == [5, 0]


def test_high_watermark_checkpoint_written_by_the_tick(replicated: StorageHarness) -> None:
    (p,) = hosted(replicated)
    p.append(memoryview(leader_batches((0, 4, 0, -1, -1))), AppendOrigin.REPLICATION)
    p.high_watermark = 2
    st = replicated.storage
    assert st is not None
    st._checkpoint_tick()
    replicated.run(replicated.loop.run_in_executor(st.worker, lambda: None))
    with open(os.path.join(replicated.dir, HW_CHECKPOINT), encoding="utf-8") as f:
        assert f.read() == "0\n1\nr 0 2\n"
    replicated.crash()
    st = replicated.open()
    q = st.topics["r"].partitions[0]
    assert q is not None and q.high_watermark == 2 and q.log.end_offset == 4


def test_single_node_ignores_the_checkpoint(harness: StorageHarness) -> None:
    st = harness.open()
    p = harness.run(st.create_topic("t", 1, {})).partitions[0]
    assert p is not None
    p.append(client_batch(4), AppendOrigin.CLIENT)
    harness.close()
    with open(os.path.join(harness.dir, HW_CHECKPOINT), "w", encoding="utf-8") as f:
        f.write("0\n1\nt 0 1\n")
    st = harness.open()
    q = st.topics["t"].partitions[0]
    assert q is not None and q.high_watermark == 4


def test_delete_records_and_retention_move_the_first_epoch(harness: StorageHarness) -> None:
    st = harness.open()
    p = harness.run(st.create_topic("t", 1, {"segment.bytes": "1024"})).partitions[0]
    assert p is not None
    p.append(client_batch(3), AppendOrigin.CLIENT)
    p.leader_epoch = 2
    for _ in range(20):
        p.append(client_batch(2), AppendOrigin.CLIENT)
    assert p.epochs.entries() == [(0, 0), (2, 3)]
    harness.run(st.delete_records(p, 2))
    assert p.epochs.entries() == [(0, 2), (2, 3)]
    harness.run(st.delete_records(p, 10))
    assert p.epochs.entries() == [(2, 10)]
    # retention deleting whole segments moves it as well
    p.log.retention(10**13, 1, -1)
    p.log_start_moved()
    start = p.log.start_offset
    assert start > 10 and p.epochs.entries() == [(2, start)]
