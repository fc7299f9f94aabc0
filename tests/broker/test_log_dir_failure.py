"""A failed log dir goes offline while the other dirs of ``log.dirs`` are served (issue 16, "disk
faults"; Kafka's LogDirFailureChannel, ``kafka_broker/log/dir_failure.py``).

A small tmpfs is one log dir: producing acks=all fills it; the append that hits ENOSPC takes the
dir offline (logged once, naming the dir), its partitions answer KAFKA_STORAGE_ERROR to Produce,
Fetch and ListOffsets, Metadata shows them leaderless with this broker an offline replica,
DescribeLogDirs reports the dir with KAFKA_STORAGE_ERROR, new partitions go elsewhere, and the
partitions of the other dir go on producing and fetching.  With the tmpfs grown and the broker
restarted, every record that was acknowledged reads back.  With no dir left the broker halts,
as Kafka's LogManager does.

At start-up (Kafka's LogManager.loadLogs): a dir that fails while the logs are loaded (a tmpfs
remounted read-only) goes offline and the broker starts with the others, its partitions answering
KAFKA_STORAGE_ERROR; with no dir left, or the metadata dir failed, it exits with one clear line.

The groups whose ``__consumer_offsets`` partition is in an offline dir are not coordinated here
(COORDINATOR_NOT_AVAILABLE, NOT_COORDINATOR) rather than answered as if nothing were committed.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from kafka_bench.kafka_core_broker import KafkaCoreBroker
from kafka_protocol.errors import ErrorCode as E
from kafka_protocol.messages import REQUESTS

from .conftest import RawClient, create_topic, fetch_req, make_batch, mount_tmpfs, produce_req

VALUE = 50_000        # bytes per record: a 4 MiB tmpfs holds about 80 of them


def _value(i: int) -> bytes:
    return b"%08d" % i + b"x" * (VALUE - 8)


def _produce(c: RawClient, topic: str, partition: int, i: int) -> Any:
    return c.call(produce_req(topic, partition, make_batch([_value(i)])), 9).responses[0].partition_responses[0]


def _read_all(c: RawClient, topic: str, partition: int) -> list[tuple[int, bytes]]:
    """(offset, value) of every record of the partition, read with Fetch v12."""
    from kafka_core import iter_records, scan_batches

    out: list[tuple[int, bytes]] = []
    off = 0
    while True:
        pd = c.call(fetch_req(topic, partition, off, max_bytes=1 << 20), 12).responses[0].partitions[0]
        assert pd.error_code == 0, pd
        data = bytes(pd.records or b"")
        infos, _ = scan_batches(data, allow_partial=True)
        if not infos:
            return out
        for b in infos:
            out.extend((r.offset, bytes(r.value or b"")) for r in iter_records(data[b.position:b.position + b.size]))
        off = infos[-1].last_offset + 1


def _assert_offline(c: RawClient, topic: str, partitions: list[int]) -> None:
    """Produce, Fetch and DeleteRecords on each of ``partitions`` answer KAFKA_STORAGE_ERROR."""
    D = REQUESTS[21]
    for i in partitions:
        assert _produce(c, topic, i, 999).error_code == E.KAFKA_STORAGE_ERROR
        pd = c.call(fetch_req(topic, i, 0), 12).responses[0].partitions[0]
        assert pd.error_code == E.KAFKA_STORAGE_ERROR
        dr = c.call(D(topics=[D.DeleteRecordsTopic(name=topic, partitions=[
            D.DeleteRecordsPartition(partition_index=i, offset=-1)])], timeout_ms=5000), 2)
        assert dr.topics[0].partitions[0].error_code == E.KAFKA_STORAGE_ERROR


def _log_dirs(c: RawClient) -> dict[str, Any]:
    D = REQUESTS[35]
    return {r.log_dir: r for r in c.call(D(topics=None), 4).results}


def _placement(c: RawClient, topic: str) -> dict[int, str]:
    """partition -> the log dir DescribeLogDirs lists it in."""
    return {p.partition_index: d for d, r in _log_dirs(c).items() for t in r.topics if t.name == topic
            for p in t.partitions}


@pytest.mark.interop
def test_a_full_log_dir_goes_offline_while_the_other_dir_is_served(tmp_path: Path, small_disk: Path) -> None:
    import confluent_kafka as ck

    normal = tmp_path / "normal"
    small = small_disk / "logs"
    (tmp_path / "b").mkdir()
    # the normal dir first: it holds the cluster metadata (kc-metadata.json), whose loss halts the
    # broker as the loss of Kafka's metadata.log.dir does
    settings = {"log.dirs": f"{normal},{small}", "log.segment.bytes": str(1 << 20), "num.partitions": "1"}
    b = KafkaCoreBroker(data_dir=tmp_path / "b", settings=settings)
    with b:
        with RawClient(b.port) as c:
            create_topic(c, "t", partitions=4)        # placed two in each dir
            where = _placement(c, "t")
            on_small = sorted(i for i, d in where.items() if d == str(small))
            on_normal = sorted(i for i, d in where.items() if d == str(normal))
            assert len(on_small) == 2 and len(on_normal) == 2, where
            full, healthy = on_small[0], on_normal[0]

        # fill the tmpfs with a real producer, acks=all; what it acknowledges must survive
        acked: dict[int, list[tuple[int, bytes]]] = {}
        failed: list[Any] = []

        def report(err: Any, msg: Any) -> None:
            if err is None:
                acked.setdefault(msg.partition(), []).append((msg.offset(), msg.value()))
            else:
                failed.append(err)
        prod = ck.Producer({"bootstrap.servers": b.bootstrap, "acks": "all", "retries": 0,
                            "linger.ms": 0, "message.timeout.ms": 10000, "message.max.bytes": 1 << 20})
        for i in range(150):
            prod.produce("t", _value(i), partition=full, on_delivery=report)
            prod.flush(10)
            if failed:
                break
        assert acked.get(full) and failed, (len(acked.get(full, [])), failed)
        assert failed[0].code() == ck.KafkaError.KAFKA_STORAGE_ERROR, failed[0]

        with RawClient(b.port) as c:
            # the full dir's partitions, both of them, answer KAFKA_STORAGE_ERROR
            _assert_offline(c, "t", on_small)
            L = REQUESTS[2]
            lo = c.call(L(replica_id=-1, isolation_level=0, topics=[L.ListOffsetsTopic(name="t", partitions=[
                L.ListOffsetsPartition(partition_index=i, current_leader_epoch=-1, timestamp=-1)
                for i in range(4)])]), 7).topics[0].partitions
            assert {p.partition_index: p.error_code for p in lo} == {
                i: E.KAFKA_STORAGE_ERROR if i in on_small else 0 for i in range(4)}
            M = REQUESTS[3]
            md = c.call(M(topics=[M.MetadataRequestTopic(name="t")], allow_auto_topic_creation=False), 12)
            parts = {p.partition_index: p for p in md.topics[0].partitions}
            for i in on_small:       # its only replica is offline: no leader, as Kafka's controller says
                assert (parts[i].error_code, parts[i].leader_id, parts[i].offline_replicas) == (
                    E.LEADER_NOT_AVAILABLE, -1, [0]), parts[i]
            for i in on_normal:
                assert (parts[i].error_code, parts[i].leader_id, parts[i].offline_replicas) == (0, 0, []), parts[i]
            dirs = _log_dirs(c)
            assert dirs[str(small)].error_code == E.KAFKA_STORAGE_ERROR and not dirs[str(small)].topics
            assert dirs[str(normal)].error_code == 0
            # new partitions go to the dir still online
            create_topic(c, "after", partitions=3)
            assert set(_placement(c, "after").values()) == {str(normal)}

        # the other dir is untouched: a real producer and a fetch there work as before
        n = 0

        def ok(err: Any, msg: Any) -> None:
            nonlocal n
            assert err is None, err
            acked.setdefault(msg.partition(), []).append((msg.offset(), msg.value()))
            n += 1
        for i in range(40):
            prod.produce("t", b"h%d" % i, partition=healthy, on_delivery=ok)
        prod.produce("after", b"new", partition=0, on_delivery=lambda err, msg: None if err is None else failed.append(err))
        assert prod.flush(15) == 0 and n == 40
        with RawClient(b.port) as c:
            assert _read_all(c, "t", healthy) == acked[healthy]
            assert [v for _o, v in _read_all(c, "after", 0)] == [b"new"]
        text = b.log_text()
        assert text.count("the log dir is offline until the broker restarts") == 1, text[-3000:]
        assert f"in dir {small}: " in text and "No space left on device" in text
        b.stop()
        assert "storage closed cleanly" in b.log_text()

        # room again, and a restart: everything acknowledged is there, and the dir is served again
        mount_tmpfs(small_disk, "64m")
        b.start()
        with RawClient(b.port) as c:
            got = _read_all(c, "t", full)
            assert got[:len(acked[full])] == acked[full]
            # what was appended but never acknowledged may follow (the failed append truncated its
            # own partial write): nothing else
            assert len(got) <= len(acked[full]) + 1, (len(got), len(acked[full]))
            assert _read_all(c, "t", healthy) == acked[healthy]
            assert _produce(c, "t", full, 1000).error_code == 0
            assert _log_dirs(c)[str(small)].error_code == 0


def test_with_every_log_dir_offline_the_broker_halts_and_recovers_after_restart(
        tmp_path: Path, small_disk: Path) -> None:
    """One full dir is all of ``log.dirs``: Kafka halts ("Shutdown broker because all log dirs in
    ... have failed"); grown and restarted, the broker reads back every acknowledged record."""
    (tmp_path / "b").mkdir()
    b = KafkaCoreBroker(data_dir=tmp_path / "b", settings={"log.dirs": str(small_disk / "logs"),
                                                           "log.segment.bytes": str(1 << 20)})
    with b:
        acked: list[tuple[int, bytes]] = []
        with RawClient(b.port) as c:
            create_topic(c, "full")
            try:
                for i in range(400):
                    pr = _produce(c, "full", 0, i)
                    if pr.error_code:
                        assert pr.error_code == E.KAFKA_STORAGE_ERROR, pr
                        break
                    acked.append((pr.base_offset, _value(i)))
            except (ConnectionError, OSError):
                pass           # the halt closed the connection before the answer left
        assert b.proc is not None
        assert b.proc.wait(15) == 1
        text = b.log_text()
        assert "Shutdown broker because all log dirs in" in text, text[-3000:]
        assert acked
        b.proc = None

        mount_tmpfs(small_disk, "64m")
        t0 = time.monotonic()
        b.start()
        with RawClient(b.port) as c:
            got = _read_all(c, "full", 0)
            assert got[:len(acked)] == acked and len(got) <= len(acked) + 1, (len(got), len(acked))
            assert _produce(c, "full", 0, 1000).error_code == 0
        print(f"restart and read-back of {len(acked)} records took {time.monotonic() - t0:.1f}s")


_INDEX_PAGE_ON_A_FULL_DISK = r"""
import os, sys
import kafka_core
sys.path.insert(0, sys.argv[2])
from broker.conftest import make_batch

d = sys.argv[1]
lg = kafka_core.Log(os.path.join(d, "p-0"), index_interval_bytes=1, max_index_bytes=1 << 20)
lg.append(make_batch([b"a" * 100]))     # position 0: no index entry, the .index is all hole
fd = os.open(os.path.join(d, "filler"), os.O_WRONLY | os.O_CREAT)     # the disk is full ...
try:
    while True:
        os.write(fd, b"f" * 4096)
except OSError:
    os.close(fd)
# ... yet the next batch fits in the log's last page, and its index entry is the first store into
# the preallocated .index: a page the disk has no room for (SIGBUS before kc_index.c reserved it)
info = lg.append(make_batch([b"b" * 100]))
print("appended at", info.first_offset)
sl = lg.read(1, 1 << 20)      # found without its index entry: the index is sparse
assert len(sl) > 0
sl.release()
lg.close(clean=False)
"""


def test_an_index_entry_on_a_full_disk_is_skipped_not_a_sigbus(small_disk: Path) -> None:
    """The C core's preallocated, memory-mapped index is a sparse file: a store into a page of it
    needs a block, and on a full disk that fault killed the whole broker with SIGBUS (seen on a
    1 MiB tmpfs filled by appends: one record size in forty).  Now the page is reserved first and
    the entry is skipped when it cannot be."""
    import subprocess
    import sys

    tests = Path(__file__).resolve().parents[1]
    r = subprocess.run([sys.executable, "-c", _INDEX_PAGE_ON_A_FULL_DISK, str(small_disk), str(tests)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, (r.returncode, r.stderr[-2000:])
    assert "appended at 1" in r.stdout


def _remount(path: Path, opts: str) -> None:
    import subprocess

    r = subprocess.run(["mount", "-o", f"remount,{opts}", str(path)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_a_log_dir_that_fails_at_start_up_goes_offline_and_the_broker_serves_the_others(
        tmp_path: Path, small_disk: Path) -> None:
    """Kafka's LogManager.loadLogs: a dir whose logs cannot be opened (here a filesystem gone
    read-only, as ext4 does after an I/O error: every open for writing fails with EROFS) is marked
    offline and the broker starts with the other dirs.  Its partitions answer KAFKA_STORAGE_ERROR,
    Metadata and DescribeLogDirs say so, and the metadata keeps them: repaired and restarted, the
    broker serves every record again."""
    normal, small = tmp_path / "normal", small_disk / "logs"
    (tmp_path / "b").mkdir()
    b = KafkaCoreBroker(data_dir=tmp_path / "b", settings={"log.dirs": f"{normal},{small}", "num.partitions": "1"})
    with b:
        with RawClient(b.port) as c:
            create_topic(c, "t", partitions=4)
            where = _placement(c, "t")
            on_small = sorted(i for i, d in where.items() if d == str(small))
            on_normal = sorted(i for i, d in where.items() if d == str(normal))
            assert len(on_small) == 2 and len(on_normal) == 2, where
            for i in range(4):
                assert _produce(c, "t", i, i).error_code == 0
        b.stop()
        _remount(small_disk, "ro")
        b.start()
        with RawClient(b.port) as c:
            _assert_offline(c, "t", on_small)
            for i in on_normal:       # the other dir: read back and written as before
                assert [v for _o, v in _read_all(c, "t", i)] == [_value(i)]
                assert _produce(c, "t", i, 100 + i).error_code == 0
            M = REQUESTS[3]
            md = c.call(M(topics=[M.MetadataRequestTopic(name="t")], allow_auto_topic_creation=False), 12)
            parts = {p.partition_index: p for p in md.topics[0].partitions}
            assert sorted(parts) == [0, 1, 2, 3]      # the unloaded partitions are still the topic's
            for i in on_small:
                assert (parts[i].error_code, parts[i].leader_id, parts[i].offline_replicas) == (
                    E.LEADER_NOT_AVAILABLE, -1, [0]), parts[i]
            dirs = _log_dirs(c)
            assert dirs[str(small)].error_code == E.KAFKA_STORAGE_ERROR and not dirs[str(small)].topics
            assert dirs[str(normal)].error_code == 0
            create_topic(c, "after", partitions=2)       # new partitions go to the dir still online
            assert set(_placement(c, "after").values()) == {str(normal)}
        text = b.log_text()
        assert f"in dir {small}: " in text and "Read-only file system" in text, text[-3000:]
        assert "failed while loading: starting with" in text
        assert "Traceback" not in text
        b.stop()

        _remount(small_disk, "rw")
        b.start()
        with RawClient(b.port) as c:
            for i in on_small:
                assert [v for _o, v in _read_all(c, "t", i)] == [_value(i)]
            for i in on_normal:
                assert [v for _o, v in _read_all(c, "t", i)] == [_value(i), _value(100 + i)]
            assert _log_dirs(c)[str(small)].error_code == 0


@pytest.mark.parametrize("which", ["all", "metadata"])
def test_with_every_log_dir_or_the_metadata_dir_failing_at_start_up_the_broker_exits_saying_so(
        tmp_path: Path, small_disk: Path, which: str) -> None:
    """No dir left, or the one holding the metadata (the first) among the failed: the broker
    exits 1 with one clear line naming the dirs, not a traceback."""
    small = small_disk / "logs"
    dirs = str(small) if which == "all" else f"{small},{tmp_path / 'other'}"
    (tmp_path / "b").mkdir()
    b = KafkaCoreBroker(data_dir=tmp_path / "b", settings={"log.dirs": dirs, "num.partitions": "1"})
    with b:
        with RawClient(b.port) as c:
            create_topic(c, "t", partitions=2)
            assert _produce(c, "t", 0, 0).error_code == 0
        b.stop()
        _remount(small_disk, "ro")
        with pytest.raises(Exception):  # noqa: B017 - whatever wait_for_port raises for a dead process
            b.start(timeout=20)
        text = b.log_text()
        want = (f"Shutdown broker because all log dirs in {small} have failed" if which == "all" else
                f"Shutdown broker because the metadata log dir {small} has failed")
        assert f"kafka-core: cannot use log.dirs {dirs}: " in text and want in text, text[-3000:]
        assert "Traceback" not in text
        _remount(small_disk, "rw")
        b.start()
        with RawClient(b.port) as c:
            assert [v for _o, v in _read_all(c, "t", 0)] == [_value(0)]


def _coordinator_error(c: RawClient, group: str) -> int:
    F = REQUESTS[10]
    return c.call(F(key=group, key_type=0), 2).error_code


def _commit(c: RawClient, group: str, offset: int) -> int:
    C = REQUESTS[8]
    r = c.call(C(group_id=group, generation_id_or_member_epoch=-1, member_id="", retention_time_ms=-1, topics=[
        C.OffsetCommitRequestTopic(name="t", partitions=[C.OffsetCommitRequestPartition(
            partition_index=0, committed_offset=offset, committed_metadata="")])]), 2)
    return r.topics[0].partitions[0].error_code


def _fetch_offset(c: RawClient, group: str) -> tuple[int, int]:
    """(the response's error, the committed offset of t-0) from OffsetFetch v3."""
    F = REQUESTS[9]
    r = c.call(F(group_id=group, topics=[F.OffsetFetchRequestTopic(name="t", partition_indexes=[0])]), 3)
    return r.error_code, (r.topics[0].partitions[0].committed_offset if r.topics else -1)


def test_groups_whose_offsets_partition_is_in_an_offline_dir_are_not_coordinated_here(
        tmp_path: Path, small_disk: Path) -> None:
    """A group's committed offsets live in one ``__consumer_offsets`` partition.  When that
    partition's log dir is offline (failed while running, or at start-up) the broker must not
    answer for the group as if nothing were committed: its consumers would reset to
    auto.offset.reset and re-read or skip.  As Kafka (no leader for the partition): FindCoordinator
    answers COORDINATOR_NOT_AVAILABLE and group requests NOT_COORDINATOR; the groups of the other
    dir are served; repaired and restarted, the offsets are all there."""
    from kafka_broker.groups.records import partition_for

    normal, small = tmp_path / "normal", small_disk / "logs"
    (tmp_path / "b").mkdir()
    b = KafkaCoreBroker(data_dir=tmp_path / "b", settings={
        "log.dirs": f"{normal},{small}", "num.partitions": "1", "offsets.topic.num.partitions": "4"})
    with b:
        with RawClient(b.port) as c:
            create_topic(c, "t", partitions=1)
            deadline = time.monotonic() + 30        # the first commit creates __consumer_offsets
            while _commit(c, "probe", 1) != 0:
                assert time.monotonic() < deadline, "no coordinator"
                time.sleep(0.1)
            where = _placement(c, "__consumer_offsets")
            assert sorted(where) == [0, 1, 2, 3] and set(where.values()) == {str(normal), str(small)}, where
            groups = [f"g{i}" for i in range(64)]
            on_small = next(g for g in groups if where[partition_for(g, 4)] == str(small))
            on_normal = next(g for g in groups if where[partition_for(g, 4)] == str(normal))
            for g in (on_small, on_normal):
                assert _commit(c, g, 42) == 0
                assert _fetch_offset(c, g) == (0, 42)
            # fill the small dir: the append that hits ENOSPC takes it offline
            create_topic(c, "filler", partitions=2)
            filler = next(i for i, d in _placement(c, "filler").items() if d == str(small))
            for i in range(200):
                if _produce(c, "filler", filler, i).error_code == E.KAFKA_STORAGE_ERROR:
                    break
            else:
                raise AssertionError("the small dir never filled")
            assert _coordinator_error(c, on_small) == E.COORDINATOR_NOT_AVAILABLE
            assert _fetch_offset(c, on_small)[0] == E.NOT_COORDINATOR
            assert _commit(c, on_small, 43) == E.NOT_COORDINATOR
            assert _coordinator_error(c, on_normal) == 0
            assert _fetch_offset(c, on_normal) == (0, 42)
            assert _commit(c, on_normal, 43) == 0
        b.stop()
        mount_tmpfs(small_disk, "64m")
        _remount(small_disk, "ro")              # and now it fails at start-up
        b.start()
        with RawClient(b.port) as c:
            assert _coordinator_error(c, on_small) == E.COORDINATOR_NOT_AVAILABLE
            assert _fetch_offset(c, on_small)[0] == E.NOT_COORDINATOR
            assert _fetch_offset(c, on_normal) == (0, 43)
        b.stop()
        _remount(small_disk, "rw")
        b.start()
        with RawClient(b.port) as c:
            assert _fetch_offset(c, on_small) == (0, 42)
            assert _fetch_offset(c, on_normal) == (0, 43)
            assert "Traceback" not in b.log_text()
