"""A failed log dir in a three-broker cluster reaches the controller (issue 16, "disk faults").

Broker 1 has two ``log.dirs``: a normal folder (first: it holds the metadata) and a 4 MiB tmpfs;
brokers 2 and 3 have two normal folders.  A topic of two partitions, replication factor 3, both
led by broker 1, has one partition in each of broker 1's dirs.  An idempotent acks=all producer
fills the tmpfs: broker 1's append hits ENOSPC, the dir goes offline, broker 1 writes
``/log_dir_event_notification/log_dir_event_N``, the controller deletes it, asks broker 1 about
its replicas with LeaderAndIsr (KAFKA_STORAGE_ERROR for the one in the failed dir), moves that
partition's leadership to another in-sync replica and drops broker 1 from its ISR.  The producer
retries there: every record is acknowledged once and reads back from the new leader; the other
partition stays led and served by broker 1; Metadata lists broker 1 as an offline replica.  With
the tmpfs grown and broker 1 restarted, its replica catches up and rejoins the ISR.
"""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kafka_bench.kafka_core_cluster import KafkaCoreCluster
from kafka_protocol.errors import ErrorCode as E
from kafka_protocol.messages import REQUESTS
from kazoo.client import KazooClient

from tests.broker.conftest import RawClient, fetch_req, mount_tmpfs
from tests.broker.test_log_dir_failure import _placement, _read_all

from .faultkit import CLUSTER_SETTINGS, wait_for, zk_states

ck = pytest.importorskip("confluent_kafka")
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402

pytestmark = pytest.mark.interop

VALUE = 50_000        # bytes per record: a 4 MiB tmpfs holds about 80 of them
TOPIC = "dirs"


def _value(i: int) -> bytes:
    return b"%08d" % i + b"x" * (VALUE - 8)


def _metadata(port: int) -> dict[int, Any]:
    M = REQUESTS[3]
    with RawClient(port) as c:
        md = c.call(M(topics=[M.MetadataRequestTopic(name=TOPIC)], allow_auto_topic_creation=False), 12)
    return {p.partition_index: p for p in md.topics[0].partitions}


def _produce(bootstrap: str, partition: int, values: list[bytes]) -> list[tuple[int, bytes]]:
    """Idempotent acks=all, retrying through the failover; (offset, value) of each acknowledged."""
    acked: list[tuple[int, bytes]] = []
    failed: list[Any] = []

    def report(err: Any, msg: Any) -> None:
        if err is None:
            acked.append((msg.offset(), msg.value()))
        else:
            failed.append(err)
    prod = ck.Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True,
                        "linger.ms": 0, "message.timeout.ms": 60000, "message.max.bytes": 1 << 20,
                        "max.in.flight.requests.per.connection": 1})
    for v in values:
        prod.produce(TOPIC, v, partition=partition, on_delivery=report)
        prod.poll(0)
    assert prod.flush(90) == 0
    assert not failed, failed[:3]
    return acked


@contextlib.contextmanager
def _running(zk_chroot: str, zk_client: KazooClient, tmp_path: Path, size: str, leader: int = 1,
             **settings: str) -> Iterator[tuple[KafkaCoreCluster, Path, int, int]]:
    """The cluster running, broker 1's second dir a tmpfs of ``size``, the topic created with
    ``leader`` leading both partitions: (the cluster, the tmpfs, the partition in broker 1's
    tmpfs, the one in its other dir).  ``settings``: more broker settings (dots as underscores)."""
    small = tmp_path / "small"
    small.mkdir()
    mount_tmpfs(small, size)
    c, dirs = _cluster(zk_chroot, tmp_path, small, {k.replace("_", "."): v for k, v in settings.items()})
    try:
        with c:
            c.wait_registered()
            yield (c, small, *_topic(c, zk_client, dirs, leader))
    finally:
        subprocess.run(["umount", "-l", str(small)], check=False)


def _offline_everywhere(c: KafkaCoreCluster, full: int) -> dict[int, Any]:
    """Until every broker's Metadata lists broker 1 as the one offline replica of ``full``; the
    last broker's partitions."""
    md: dict[int, Any] = {}
    for b in c.brokers.values():
        md = wait_for(lambda b=b: (m := _metadata(b.port)) and m[full].offline_replicas == [1] and m,
                      what=f"offline replica in broker {b.port}'s metadata")
    return md


def _cluster(zk_chroot: str, tmp_path: Path, small: Path, more: dict[str, str]
             ) -> tuple[KafkaCoreCluster, dict[int, list[str]]]:
    """Three brokers; broker 1's second log dir is the tmpfs at ``small``."""
    settings = dict(CLUSTER_SETTINGS, **{"log.segment.bytes": str(1 << 20), "min.insync.replicas": "2",
                                         "auto.leader.rebalance.enable": "false"}, **more)
    c = KafkaCoreCluster(3, zk_chroot, data_dir=tmp_path / "c", settings=settings)
    dirs = {i: [str(tmp_path / f"b{i}-a"), str(small / "logs") if i == 1 else str(tmp_path / f"b{i}-b")]
            for i in (1, 2, 3)}
    for i, b in c.brokers.items():
        b.settings["log.dirs"] = ",".join(dirs[i])
    return c, dirs


def _topic(c: KafkaCoreCluster, zk_client: KazooClient, dirs: dict[int, list[str]], leader: int) -> tuple[int, int]:
    """The topic, both partitions led by ``leader`` with a full ISR: (the partition in broker 1's
    tmpfs, the one in its other dir)."""
    admin = AdminClient({"bootstrap.servers": c.bootstrap})
    reps = [leader] + [r for r in (1, 2, 3) if r != leader]
    admin.create_topics([NewTopic(TOPIC, 2, replica_assignment=[reps, reps])], operation_timeout=30)[TOPIC].result(30)
    wait_for(lambda: all(st.leader == leader and len(st.isr) == 3
                         for st, _ in zk_states(zk_client, TOPIC, 2).values()),
             what=f"both partitions led by {leader} with a full ISR")
    with RawClient(c.brokers[1].port) as rc:
        where = wait_for(lambda: len(p := _placement(rc, TOPIC)) == 2 and p, what="placement on broker 1")
    return (next(i for i, d in where.items() if d == dirs[1][1]),
            next(i for i, d in where.items() if d == dirs[1][0]))


def _rejoins(c: KafkaCoreCluster, zk_client: KazooClient, small: Path, full: int) -> None:
    """Room again (the tmpfs grown, writable) and broker 1 restarted: its replica of ``full``
    catches up and rejoins the ISR, and no broker lists an offline replica any more."""
    subprocess.run(["mount", "-o", "remount,rw", str(small)], check=True)
    mount_tmpfs(small, "64m")
    c.restart(1)
    c.wait_registered()
    wait_for(lambda: 1 in zk_states(zk_client, TOPIC, 2)[full][0].isr, timeout=60, what="broker 1 back in the ISR")
    for b in c.brokers.values():
        wait_for(lambda b=b: _metadata(b.port)[full].offline_replicas == [], what="no offline replica")


def test_a_failed_log_dir_moves_leadership_and_the_replica_rejoins_after_restart(
        zk_chroot: str, zk_client: KazooClient, tmp_path: Path) -> None:
    with _running(zk_chroot, zk_client, tmp_path, "4m") as (c, small, full, healthy):
        b1 = c.brokers[1]

        # fill the tmpfs: the failover happens in the middle, and the producer never notices
        values = [_value(i) for i in range(150)]
        acked = _produce(c.bootstrap, full, values)
        assert [v for _o, v in acked] == values
        text = b1.log_text()
        assert text.count("the log dir is offline until the broker restarts") == 1, text[-3000:]
        assert "No space left on device" in text

        # the controller moved leadership away and dropped broker 1 from the ISR
        states = zk_states(zk_client, TOPIC, 2)
        st_full, st_healthy = states[full][0], states[healthy][0]
        assert st_full.leader in (2, 3) and 1 not in st_full.isr and len(st_full.isr) == 2, st_full
        assert st_healthy.leader == 1 and len(st_healthy.isr) == 3, st_healthy
        assert zk_client.get_children("/log_dir_event_notification") == []    # consumed
        ctl_text = "".join(b.log_text() for b in c.brokers.values())
        assert "reports a failed log dir" in ctl_text and f"are in a failed log dir: dirs-{full}" in ctl_text

        # every broker's Metadata shows it: a new leader, broker 1 an offline replica there only
        _offline_everywhere(c, full)
        for b in c.brokers.values():
            md = _metadata(b.port)
            assert (md[full].error_code, md[full].leader_id) == (0, st_full.leader), md[full]
            assert sorted(md[full].isr_nodes) == sorted(st_full.isr)
            assert (md[healthy].leader_id, md[healthy].offline_replicas) == (1, []), md[healthy]

        # everything acknowledged reads back from the new leader, and more goes there
        more = [b"after-%d" % i for i in range(20)]
        acked += _produce(c.bootstrap, full, more)
        leader = c.brokers[st_full.leader]
        with RawClient(leader.port) as rc:
            assert _read_all(rc, TOPIC, full) == sorted(acked)
        # broker 1 answers KAFKA_STORAGE_ERROR for the failed replica ...
        with RawClient(b1.port) as rc:
            pd = rc.call(fetch_req(TOPIC, full, 0), 12).responses[0].partitions[0]
            assert pd.error_code == E.KAFKA_STORAGE_ERROR
        # ... and still leads and serves the one in its other dir
        h_acked = _produce(c.bootstrap, healthy, [b"h-%d" % i for i in range(30)])
        with RawClient(b1.port) as rc:
            assert _read_all(rc, TOPIC, healthy) == h_acked
        wait_for(lambda: len(zk_states(zk_client, TOPIC, 2)[healthy][0].isr) == 3, what="healthy ISR full")

        # room again and a restart: the replica catches up and rejoins the ISR
        _rejoins(c, zk_client, small, full)
        with RawClient(b1.port) as rc:
            assert _placement(rc, TOPIC)[full] == str(small / "logs")


def test_a_log_dir_failed_at_start_up_is_reported_by_the_leader_and_isr_answer(
        zk_chroot: str, zk_client: KazooClient, tmp_path: Path) -> None:
    """Broker 1 restarts with its second dir read-only: it starts with the other dir (storage.py's
    load path) and answers the controller's LeaderAndIsr with KAFKA_STORAGE_ERROR for the replica
    there, which the controller then keeps out of the ISR and lists as offline; broker 1 does not
    fetch it.  Its replica in the other dir follows and rejoins the ISR."""
    with _running(zk_chroot, zk_client, tmp_path, "64m") as (c, small, full, healthy):
        acked = _produce(c.bootstrap, full, [b"r-%d" % i for i in range(20)])
        c.stop_broker(1)
        subprocess.run(["mount", "-o", "remount,ro", str(small)], check=True)
        c.brokers[1].start()
        c.wait_registered()
        md = _offline_everywhere(c, full)
        assert md[full].leader_id in (2, 3) and 1 not in md[full].isr_nodes, md[full]
        wait_for(lambda: 1 in zk_states(zk_client, TOPIC, 2)[healthy][0].isr, timeout=60,
                 what="broker 1 back in the other partition's ISR")
        st = zk_states(zk_client, TOPIC, 2)[full][0]
        assert 1 not in st.isr, st
        text = c.brokers[1].log_text()
        assert "failed while loading: starting with" in text and f"dirs-{full}: follower" not in text.split(
            "failed while loading")[-1]
        acked += _produce(c.bootstrap, full, [b"s-%d" % i for i in range(20)])
        with RawClient(c.brokers[st.leader].port) as rc:
            assert _read_all(rc, TOPIC, full) == sorted(acked)
        _rejoins(c, zk_client, small, full)


def test_a_follower_whose_log_dir_fails_stops_fetching_and_leaves_the_isr(
        zk_chroot: str, zk_client: KazooClient, tmp_path: Path) -> None:
    """Broker 2 leads; broker 1 follows, one replica in its tmpfs.  Replicating fills the tmpfs:
    broker 1's dir goes offline, its fetcher drops that partition (one failed append logged, not
    one per fetch), and the controller takes it out of the ISR at once (not after
    replica.lag.time.max.ms, 30 s here); producing goes on with the other two, and broker 1's
    replica in its other dir stays in sync.  Restarted with room, it rejoins."""
    with _running(zk_chroot, zk_client, tmp_path, "4m", leader=2, replica_lag_time_max_ms="30000") as (
            c, small, full, healthy):
        values = [_value(i) for i in range(150)]
        acked = _produce(c.bootstrap, full, values)
        assert [v for _o, v in acked] == values
        md = _offline_everywhere(c, full)
        assert (md[full].leader_id, sorted(md[full].isr_nodes)) == (2, [2, 3]), md[full]
        st = zk_states(zk_client, TOPIC, 2)
        assert (st[full][0].leader, st[full][0].isr) == (2, [2, 3]), st[full][0]
        text = c.brokers[1].log_text()
        assert "the log dir is offline until the broker restarts" in text and "No space left on device" in text
        assert "stop leading and following" in text
        assert "shrinking ISR" not in c.brokers[2].log_text()     # the controller, not the lag, took it out
        fails = text.count(f"dirs-{full}: appending fetched batches failed")
        assert fails <= 1, fails
        h_acked = _produce(c.bootstrap, healthy, [b"h-%d" % i for i in range(30)])
        wait_for(lambda: zk_states(zk_client, TOPIC, 2)[healthy][0].isr == [2, 1, 3], what="healthy ISR full")
        assert text.count("appending fetched batches failed") == c.brokers[1].log_text().count(
            "appending fetched batches failed")       # nothing fetched for it since
        with RawClient(c.brokers[2].port) as rc:
            assert _read_all(rc, TOPIC, full) == sorted(acked)
            assert _read_all(rc, TOPIC, healthy) == h_acked
        _rejoins(c, zk_client, small, full)
