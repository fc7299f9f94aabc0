"""Producer against both brokers: delivery, batching, compression, partitioning,
acks, idempotence, back-pressure, sync and asyncio APIs."""

from __future__ import annotations

import asyncio
import time

import kafka_protocol as kp
import pytest
from kafka_client import AIOProducer, Producer, partition_for_key
from kafka_client.conn import BrokerConnection
from kafka_client.errors import KafkaTimeoutError, RecordTooLargeError

import kafka_core

from .helpers import consume, flat


def test_aio_send_returns_offsets_and_roundtrips(bootstrap: str, new_topic) -> None:  # type: ignore[no-untyped-def]
    topic = new_topic()

    async def go() -> list:
        async with AIOProducer(bootstrap, linger_ms=0) as p:
            first = await p.send(topic, b"v0", key=b"k0", headers=[("h1", b"x"), ("h2", None)], timestamp_ms=1234)
            rest = await asyncio.gather(*[p.send_nowait(topic, b"v%d" % i) for i in range(1, 200)])
            return [first, *rest]

    mds = asyncio.run(go())
    assert [m.offset for m in mds] == list(range(200))
    assert mds[0].timestamp == 1234 and mds[0].partition == 0
    recs = flat(consume(bootstrap, topic, 200))
    assert [r.value for r in recs] == [b"v%d" % i for i in range(200)]
    assert recs[0].key == b"k0" and recs[0].headers == [("h1", b"x"), ("h2", None)]
    assert recs[0].timestamp == 1234


@pytest.mark.parametrize("codec", ["none", "gzip", "snappy", "lz4", "zstd"])
def test_compression(bootstrap: str, new_topic, codec: str) -> None:  # type: ignore[no-untyped-def]
    topic = new_topic()
    values = [(b"value-%d-" % i) * 20 for i in range(500)]
    with Producer(bootstrap, compression_type=codec, linger_ms=20) as p:
        futs = [p.send(topic, v, key=b"%d" % i) for i, v in enumerate(values)]
        p.flush()
        assert [f.result().offset for f in futs] == list(range(500))
    recs = flat(consume(bootstrap, topic, 500))
    assert [r.value for r in recs] == values
    assert [r.key for r in recs] == [b"%d" % i for i in range(500)]


def test_keyed_partitioning_is_murmur2(bootstrap: str, new_topic) -> None:  # type: ignore[no-untyped-def]
    topic = new_topic(6)
    keys = [b"key-%d" % i for i in range(60)]
    with Producer(bootstrap, linger_ms=5) as p:
        futs = [p.send(topic, b"v", key=k) for k in keys]
        parts = [f.result(30).partition for f in futs]
    assert parts == [partition_for_key(k, 6) for k in keys]
    assert len(set(parts)) > 1
    by_p = consume(bootstrap, topic, 60, partitions=6)
    for p, recs in by_p.items():
        assert all(partition_for_key(r.key, 6) == p for r in recs)


def test_null_keys_are_sticky_then_spread(bootstrap: str, new_topic) -> None:  # type: ignore[no-untyped-def]
    topic = new_topic(4)
    with Producer(bootstrap, linger_ms=50, batch_size=1024) as p:
        futs = [p.send(topic, b"x" * 100) for _ in range(200)]
        parts = [f.result(30).partition for f in futs]
    # Runs on one partition (about a batch's worth each), and more than one partition overall.
    runs = sum(1 for a, b in zip(parts, parts[1:], strict=False) if a != b)
    assert len(set(parts)) > 1
    assert runs < 60


def test_explicit_partition_and_out_of_range(bootstrap: str, new_topic) -> None:  # type: ignore[no-untyped-def]
    topic = new_topic(3)
    with Producer(bootstrap) as p:
        assert p.send(topic, b"a", partition=2).result(30).partition == 2
        with pytest.raises(ValueError):
            p.send(topic, b"a", partition=3)
        assert p.partitions_for(topic) == [0, 1, 2]


@pytest.mark.parametrize("acks", [0, 1, "all"])
def test_acks(bootstrap: str, new_topic, acks) -> None:  # type: ignore[no-untyped-def]
    topic = new_topic()
    with Producer(bootstrap, acks=acks, linger_ms=0) as p:
        futs = [p.send(topic, b"m%d" % i) for i in range(50)]
        p.flush()
        offsets = [f.result().offset for f in futs]
    if acks == 0:
        assert offsets == [-1] * 50  # no response: offsets unknown
    else:
        assert offsets == list(range(50))
    assert [r.value for r in flat(consume(bootstrap, topic, 50))] == [b"m%d" % i for i in range(50)]


def _raw_batches(bootstrap: str, topic: str) -> list:
    async def go() -> list:
        host, port = bootstrap.split(":")
        c = BrokerConnection(host, int(port))
        await c.connect()
        req = kp.FetchRequest(replica_id=-1, max_wait_ms=100, min_bytes=1, max_bytes=1 << 20, isolation_level=0,
                              session_id=0, session_epoch=-1, topics=[kp.FetchRequest.FetchTopic(
                                  topic=topic, partitions=[kp.FetchRequest.FetchPartition(
                                      partition=0, fetch_offset=0, partition_max_bytes=1 << 20)])],
                              forgotten_topics_data=[], rack_id="")
        resp = await c.send(req)
        c.close()
        data = resp.responses[0].partitions[0].records
        infos, _ = kafka_core.scan_batches(data, allow_partial=True)
        return infos

    return asyncio.run(go())


def test_idempotent_batches_carry_pid_and_sequences(bootstrap: str, new_topic) -> None:  # type: ignore[no-untyped-def]
    topic = new_topic()
    with Producer(bootstrap, linger_ms=0, batch_size=512) as p:
        for _ in range(30):
            p.send(topic, b"x" * 100)
        p.flush()
    infos = _raw_batches(bootstrap, topic)
    assert len(infos) > 1
    assert all(i.producer_id >= 0 and i.producer_epoch >= 0 for i in infos)
    seq = 0
    for i in infos:
        assert i.base_sequence == seq
        seq += i.record_count
    assert seq == 30


def test_non_idempotent_with_acks_1(bootstrap: str, new_topic) -> None:  # type: ignore[no-untyped-def]
    topic = new_topic()
    with Producer(bootstrap, acks=1) as p:
        p.send(topic, b"x").result(30)
    (info,) = _raw_batches(bootstrap, topic)
    assert info.producer_id == -1 and info.base_sequence == -1


def test_idempotence_requires_acks_all() -> None:
    with pytest.raises(ValueError):
        Producer("127.0.0.1:1", acks=1, enable_idempotence=True)


def test_record_too_large(bootstrap: str, new_topic) -> None:  # type: ignore[no-untyped-def]
    topic = new_topic()
    with Producer(bootstrap, max_request_size=10000) as p:
        with pytest.raises(RecordTooLargeError):
            p.send(topic, b"x" * 20000)
        # Larger than batch_size but within max_request_size: its own batch.
        assert p.send(topic, b"y" * 9000).result(30).offset == 0


def test_buffer_memory_back_pressure(bootstrap: str, new_topic) -> None:  # type: ignore[no-untyped-def]
    topic = new_topic(8)
    # Long linger: open batches hold their memory; 4 batches fill the buffer.
    with Producer(bootstrap, linger_ms=60000, batch_size=16384, buffer_memory=65536, max_block_ms=300) as p:
        for part in range(4):
            p.send(topic, b"x", partition=part)
        t0 = time.monotonic()
        with pytest.raises(KafkaTimeoutError):
            p.send(topic, b"x", partition=5)
        assert time.monotonic() - t0 >= 0.25
        p.flush()  # flushing frees the memory
        f = p.send(topic, b"x", partition=5)
        p.flush()
        assert f.result(30).partition == 5


def test_sync_callbacks_and_close_flushes(bootstrap: str, new_topic) -> None:  # type: ignore[no-untyped-def]
    topic = new_topic()
    seen: list = []
    p = Producer(bootstrap, linger_ms=100)
    for i in range(20):
        p.send(topic, b"%d" % i, on_delivery=lambda err, md: seen.append((err, md)))
    p.close()  # close flushes
    assert len(seen) == 20 and all(err is None for err, _ in seen)
    assert sorted(md.offset for _, md in seen) == list(range(20))


def test_send_from_many_threads(bootstrap: str, new_topic) -> None:  # type: ignore[no-untyped-def]
    import threading

    topic = new_topic(2)
    with Producer(bootstrap, linger_ms=1) as p:
        futs: list = []
        lock = threading.Lock()

        def worker(w: int) -> None:
            local = [p.send(topic, b"%d-%d" % (w, i), key=b"%d" % w) for i in range(200)]
            with lock:
                futs.extend(local)

        ts = [threading.Thread(target=worker, args=(w,)) for w in range(4)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        p.flush()
        mds = [f.result() for f in futs]
    # Per key (one partition each), offsets follow send order.
    assert len({(m.partition, m.offset) for m in mds}) == 800


def test_unknown_broker_times_out() -> None:
    with pytest.raises(KafkaTimeoutError):
        Producer("127.0.0.1:1", request_timeout_ms=500, connect_timeout_ms=200)
