"""Retention, compaction and DeleteRecords on every replica of a three-broker cluster (issue 10).

Each replica runs retention and the log cleaner on its own log, as in Kafka, but never past its
high watermark; DeleteRecords answers once every live replica has moved its log start.  The
replicas' segment files are read straight from each broker's data directory, and Apache Kafka's
``kafka-log-dirs`` (DescribeLogDirs) reports each broker's copies."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from kafka_bench.kafka_core_cluster import KafkaCoreCluster

from .faultkit import wait_for

ck = pytest.importorskip("confluent_kafka")
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic  # noqa: E402

pytestmark = pytest.mark.interop

SEGMENT = 4096


def _create(c: KafkaCoreCluster, name: str, **configs: str) -> None:
    admin = AdminClient({"bootstrap.servers": c.bootstrap})
    admin.create_topics([NewTopic(name, 1, 3, config=configs)], operation_timeout=30)[name].result(30)


def _produce(c: KafkaCoreCluster, topic: str, records: list[tuple[bytes | None, bytes]]) -> list[int]:
    offsets: list[int] = []
    errors: list[object] = []

    def cb(err: object, msg: object) -> None:
        (errors.append(err) if err is not None else offsets.append(msg.offset()))  # type: ignore[attr-defined]
    p = ck.Producer({"bootstrap.servers": c.bootstrap, "acks": "all", "linger.ms": 2, "batch.num.messages": 20})
    for key, value in records:
        p.produce(topic, value, key=key, partition=0, on_delivery=cb)
        p.poll(0)
    p.flush(60)
    assert not errors, errors[:5]
    return offsets


def _replica_records(data_dir: Path, topic: str) -> tuple[int, list[tuple[int, bytes | None, bytes | None]]]:
    """(first segment's base offset, every record) of one broker's replica, read from its
    segment files."""
    from kafka_core._batch import iter_records, scan_batches

    d = data_dir / "logs" / f"{topic}-0"
    segs = sorted(d.glob("*.log"))
    out = []
    for seg in segs:
        try:
            data = seg.read_bytes()
        except FileNotFoundError as e:      # retention or the cleaner replaced it meanwhile
            raise AssertionError(f"{seg} went while being read") from e
        infos, _ = scan_batches(data, allow_partial=True, allow_compacted=True)
        for info in infos:
            for r in iter_records(memoryview(data)[info.position:info.position + info.size]):
                out.append((r.offset, None if r.key is None else bytes(r.key),
                            None if r.value is None else bytes(r.value)))
    return int(segs[0].stem), out


def _log_dirs_sizes(c: KafkaCoreCluster, topic: str) -> dict[int, int]:
    """Broker -> size of its replica of topic-0, as Apache Kafka's kafka-log-dirs reports it."""
    from kafka_bench.apache_kafka import java_main

    res = java_main("org.apache.kafka.tools.LogDirsCommand",
                    ["--bootstrap-server", c.bootstrap, "--describe", "--topic-list", topic,
                     "--broker-list", ",".join(str(i) for i in c.brokers)], timeout=120)
    line = next(ln for ln in res.stdout.decode().splitlines() if ln.startswith("{"))
    out = {}
    for b in json.loads(line)["brokers"]:
        for d in b["logDirs"]:
            for p in d["partitions"]:
                if p["partition"] == f"{topic}-0":
                    out[b["broker"]] = p["size"]
    return out


def test_retention_deletes_segments_on_every_replica(cluster: KafkaCoreCluster) -> None:
    """retention.bytes set through any broker: every replica drops its oldest segments (and
    never one holding data past its high watermark); what stays reads back unchanged."""
    _create(cluster, "ret", **{"segment.bytes": str(SEGMENT)})
    values = [b"r%05d-" % i + b"x" * 200 for i in range(600)]
    offsets = _produce(cluster, "ret", [(None, v) for v in values])
    assert offsets == list(range(600))
    before = _log_dirs_sizes(cluster, "ret")
    assert sorted(before) == [1, 2, 3] and min(before.values()) > 100_000, before
    admin = AdminClient({"bootstrap.servers": cluster.brokers[2].bootstrap})
    res = ConfigResource("topic", "ret", incremental_configs=[
        ck.admin.ConfigEntry("retention.bytes", "20000",
                             incremental_operation=ck.admin.AlterConfigOpType.SET)])
    admin.incremental_alter_configs([res])[res].result(30)

    def trimmed() -> dict[int, tuple[int, list]]:
        got = {i: _replica_records(b.data_dir, "ret") for i, b in cluster.brokers.items()}
        assert all(start > 0 and sum(f.stat().st_size for f in (b.data_dir / "logs" / "ret-0").glob("*.log"))
                   <= 20000 + SEGMENT for (start, _), b in zip(got.values(), cluster.brokers.values(), strict=True))
        return got
    got = wait_for(trimmed, timeout=30, what="retention on all three replicas")
    for i, (start, recs) in got.items():
        # whatever a replica kept is a contiguous tail of what was acknowledged
        assert [o for o, _k, _v in recs] == list(range(start, 600)), i
        assert [v for _o, _k, v in recs] == values[start:], i
    after = _log_dirs_sizes(cluster, "ret")
    assert all(after[i] <= 20000 + SEGMENT for i in (1, 2, 3)), after
    # a consumer's earliest offset is the leader's new log start
    c = ck.Consumer({"bootstrap.servers": cluster.bootstrap, "group.id": "ret-lo"})
    lo, hi = c.get_watermark_offsets(ck.TopicPartition("ret", 0), timeout=10, cached=False)
    c.close()
    assert lo > 0 and hi == 600


def test_compaction_on_every_replica(cluster: KafkaCoreCluster) -> None:
    """cleanup.policy=compact with RF=3: each replica's cleaner keeps the latest value of every
    key; the leader serves exactly those to a consumer."""
    _create(cluster, "cmp", **{"cleanup.policy": "compact", "segment.bytes": str(SEGMENT),
                               "min.cleanable.dirty.ratio": "0.01"})
    keys = [b"k%02d" % k for k in range(20)]
    records = [(keys[i % 20], b"v%05d" % i) for i in range(3000)]
    _produce(cluster, "cmp", records)
    latest = {k: v for k, v in records}

    def compacted() -> dict[int, list]:
        got = {i: _replica_records(b.data_dir, "cmp")[1] for i, b in cluster.brokers.items()}
        assert all(len(recs) < 600 for recs in got.values()), {i: len(r) for i, r in got.items()}
        return got
    got = wait_for(compacted, timeout=60, what="the cleaner on all three replicas")
    by_offset = dict(enumerate(records))
    for i, recs in got.items():
        offs = [o for o, _k, _v in recs]
        assert offs == sorted(offs) and len(set(offs)) == len(offs), i
        # every record kept is the one produced at its offset, and every key's latest is there
        assert all(by_offset[o] == (k, v) for o, k, v in recs), i
        assert {k: v for _o, k, v in recs} == latest, i
    sizes = _log_dirs_sizes(cluster, "cmp")
    assert sorted(sizes) == [1, 2, 3] and max(sizes.values()) < 3000 * 20, sizes
    c = ck.Consumer({"bootstrap.servers": cluster.bootstrap, "group.id": "cmp-read", "enable.auto.commit": False})
    c.assign([ck.TopicPartition("cmp", 0, 0)])
    seen: dict[bytes, bytes] = {}
    last = -1
    while last < 2999:
        for m in c.consume(500, 5.0):
            assert m.error() is None, m.error()
            seen[m.key()] = m.value()
            last = m.offset()
    c.close()
    assert seen == latest


def test_delete_records_answers_once_every_replica_followed(cluster: KafkaCoreCluster) -> None:
    """DeleteRecords waits until every live replica's log start has moved (Kafka's
    DelayedDeleteRecords): as soon as it answers, each replica's segments start past the deleted
    offset.  Beyond the high watermark it is refused with OFFSET_OUT_OF_RANGE."""
    _create(cluster, "del", **{"segment.bytes": str(SEGMENT)})
    _produce(cluster, "del", [(None, b"d%05d-" % i + b"x" * 200) for i in range(400)])
    admin = AdminClient({"bootstrap.servers": cluster.brokers[3].bootstrap})
    tp = ck.TopicPartition("del", 0, 250)
    assert admin.delete_records([tp], operation_timeout=30)[tp].result(30).low_watermark == 250
    for i, b in cluster.brokers.items():
        start, recs = _replica_records(b.data_dir, "del")
        # the log start is in each replica's checkpoint; the segment holding 250 may stay whole
        assert recs[-1][0] == 399 and start <= 250 and all(o < 400 for o, _k, _v in recs), i
        # kc-checkpoint: "<recovery point> <log start>", written when the log start moves
        cp = (b.data_dir / "logs" / "del-0" / "kc-checkpoint").read_text().split()
        assert int(cp[1]) == 250, (i, cp)
    far = ck.TopicPartition("del", 0, 10_000)
    with pytest.raises(ck.KafkaException) as e:
        admin.delete_records([far], operation_timeout=30)[far].result(30)
    assert e.value.args[0].code() == ck.KafkaError.OFFSET_OUT_OF_RANGE
