"""Producer against both brokers: delivery, batching, compression, partitioning,
acks, idempotence, back-pressure, sync and asyncio APIs."""

from __future__ import annotations

import asyncio
import time
import uuid

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
    with pytest.raises(KafkaTimeoutError):     # after max_block_ms, as the Java producer's metadata wait
        Producer("127.0.0.1:1", max_block_ms=500, connect_timeout_ms=200)


def test_send_to_a_topic_that_never_appears_gives_up_after_max_block_ms(bootstrap: str) -> None:
    """issue 15: send() blocks on metadata for max_block_ms at most, then raises (no auto-create)."""
    import time

    with Producer(bootstrap, max_block_ms=1500, allow_auto_create_topics=False) as p:
        t0 = time.monotonic()
        with pytest.raises(KafkaTimeoutError):
            p.send(f"never-{uuid.uuid4().hex[:8]}", b"x")
        assert time.monotonic() - t0 < 1.5 + 5


def test_sync_produce_without_futures(bootstrap: str, new_topic) -> None:  # type: ignore[no-untyped-def]
    """produce(): fire-and-forget and per-record callbacks, no future made; send(on_delivery=...)
    returns None; order within the partition is the call order."""
    topic = new_topic()
    seen: list = []
    with Producer(bootstrap, linger_ms=2, batch_size=4096) as p:
        for i in range(3000):
            if i % 100 == 0:
                p.produce(topic, b"v%d" % i, on_delivery=lambda err, md: seen.append((err, md)))
            else:
                p.produce(topic, b"v%d" % i)
        assert p.send(topic, b"last", on_delivery=lambda err, md: seen.append((err, md))) is None
        p.flush()
    assert len(seen) == 31 and all(err is None for err, _ in seen)
    assert [md.offset for _, md in seen] == [*range(0, 3000, 100), 3000]
    recs = flat(consume(bootstrap, topic, 3001))
    assert [r.value for r in recs] == [b"v%d" % i for i in range(3000)] + [b"last"]


def test_aio_produce_callbacks_and_buffer_full(bootstrap: str, new_topic) -> None:  # type: ignore[no-untyped-def]
    from kafka_client.errors import BufferFullError, IllegalStateError

    topic = new_topic(2)

    async def go() -> tuple[list, int]:
        seen: list = []
        async with AIOProducer(bootstrap, linger_ms=10000, batch_size=1024, buffer_memory=8192) as p:
            with pytest.raises(IllegalStateError):
                p.produce(topic + "-unknown-yet", b"x")
            await p.partitions_for(topic)
            n = 0
            with pytest.raises(BufferFullError):
                for i in range(10000):
                    p.produce(topic, b"%06d" % i, key=b"k%d" % (i % 7),
                              on_delivery=lambda err, md, i=i: seen.append((i, err, md)))
                    n += 1
            await p.flush()
            # memory is free again: a send is accepted (flushed at once rather than after linger.ms)
            after = asyncio.ensure_future(p.send(topic, b"after", key=b"k0"))
            await asyncio.sleep(0)
            await p.flush()
            assert (await after).partition == partition_for_key(b"k0", 2)
        return seen, n

    seen, n = asyncio.run(go())
    assert 0 < n < 10000
    assert len(seen) == n and all(err is None for _, err, _ in seen)
    assert sorted(i for i, _, _ in seen) == list(range(n))
    assert all(md.partition == partition_for_key(b"k%d" % (i % 7), 2) for i, _, md in seen)


def test_close_leaves_no_unawaited_coroutines(bootstrap: str, new_topic, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Closing producers and consumers (also right after connecting to a new broker) must not
    leave coroutines that were never awaited or tasks destroyed while pending."""
    import subprocess
    import sys

    topic = new_topic(3)
    script = f"""
import asyncio, gc, warnings
warnings.simplefilter("error")
from kafka_client import AIOConsumer, AIOProducer, Consumer, Producer, TopicPartition
p = Producer({bootstrap!r}, linger_ms=0)
for i in range(50):
    p.produce({topic!r}, b"x", partition=i % 3)
p.close()
async def go():
    async with AIOProducer({bootstrap!r}) as ap:
        await ap.partitions_for({topic!r})
        for i in range(10):
            ap.send_nowait({topic!r}, b"y", partition=i % 3)
    c = AIOConsumer(bootstrap_servers={bootstrap!r}, auto_offset_reset="earliest")
    await c.start()
    c.assign([TopicPartition({topic!r}, q) for q in range(3)])
    await c.getmany(timeout_ms=300)
    await c.close()
asyncio.run(go())
c = Consumer(bootstrap_servers={bootstrap!r}, auto_offset_reset="earliest")
c.assign([TopicPartition({topic!r}, 0)])
c.poll(0.3)
c.close()
gc.collect()
print("done")
"""
    env = {"PYTHONPATH": ":".join(sys.path), "PATH": "/usr/bin:/bin"}
    r = subprocess.run([sys.executable, "-X", "dev", "-c", script], capture_output=True, text=True, timeout=120,
                       env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "done" in r.stdout
    assert "never awaited" not in r.stderr and "destroyed but it is pending" not in r.stderr, r.stderr[-3000:]


@pytest.mark.parametrize("idempotent", [True, False])
def test_batch_refused_as_too_large_is_split(bootstrap: str, new_topic, idempotent: bool) -> None:  # type: ignore[no-untyped-def]
    """A topic whose max.message.bytes is below the producer's batches: the broker answers
    MESSAGE_TOO_LARGE and the producer splits the batch until it fits; every record arrives once,
    in order, and its future gets its own offset."""
    topic = new_topic(config={"max.message.bytes": "3000"})
    kw = {} if idempotent else {"acks": 1}
    with Producer(bootstrap, linger_ms=50, batch_size=64 * 1024, **kw) as p:
        futs = [p.send(topic, b"%04d" % i + b"x" * 196) for i in range(120)]
        p.flush()
        offsets = [f.result(30).offset for f in futs]
    assert offsets == list(range(120))
    recs = flat(consume(bootstrap, topic, 120))
    assert [r.value[:4] for r in recs] == [b"%04d" % i for i in range(120)]
