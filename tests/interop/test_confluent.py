"""confluent-kafka (librdkafka) against kafka-core: admin, produce, fetch,
offsets, compression, large messages, idempotence."""

from __future__ import annotations

import time

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource, NewPartitions, NewTopic

from .conftest import create_topic
from .records import CODECS, make_records


def produce_all(bootstrap: str, topic: str, records, partition: int = 0, **conf) -> list[int]:
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, **conf})
    offsets: list[int] = []
    errors: list[KafkaError] = []

    def cb(err, msg):
        if err is not None:
            errors.append(err)
        else:
            offsets.append(msg.offset())

    for key, value, headers in records:
        p.produce(topic, value=value, key=key, headers=headers or None, partition=partition, on_delivery=cb)
        p.poll(0)
    assert p.flush(30) == 0
    assert not errors, errors
    return offsets


def consume_n(bootstrap: str, topic: str, n: int, partition: int = 0, offset: int = OFFSET_BEGINNING,
              timeout: float = 30, **conf) -> list:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "unused-manual-assign",
                  "enable.auto.commit": False, "enable.partition.eof": False, **conf})
    c.assign([TopicPartition(topic, partition, offset)])
    got = []
    deadline = time.monotonic() + timeout
    while len(got) < n and time.monotonic() < deadline:
        m = c.poll(0.5)
        if m is None:
            continue
        if m.error():
            raise KafkaException(m.error())
        got.append(m)
    c.close()
    return got


def as_tuples(msgs):
    return [(m.key(), m.value() or b"", list(m.headers() or [])) for m in msgs]


def test_admin_create_describe_delete(broker, topic_name):
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    fs = admin.create_topics([NewTopic(topic_name, num_partitions=4, replication_factor=1,
                                       config={"retention.ms": "3600000"})])
    fs[topic_name].result(10)
    md = admin.list_topics(timeout=10)
    assert topic_name in md.topics
    assert sorted(md.topics[topic_name].partitions) == [0, 1, 2, 3]
    # already exists
    fs = admin.create_topics([NewTopic(topic_name, num_partitions=1, replication_factor=1)])
    with pytest.raises(KafkaException) as ei:
        fs[topic_name].result(10)
    assert ei.value.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS
    # configs
    res = ConfigResource(ConfigResource.Type.TOPIC, topic_name)
    cfg = admin.describe_configs([res])[res].result(10)
    assert cfg["retention.ms"].value == "3600000"
    assert cfg["cleanup.policy"].value == "delete"
    # more partitions
    admin.create_partitions([NewPartitions(topic_name, 6)])[topic_name].result(10)
    assert len(admin.list_topics(topic_name, timeout=10).topics[topic_name].partitions) == 6
    # delete
    admin.delete_topics([topic_name])[topic_name].result(10)
    deadline = time.monotonic() + 10
    while topic_name in admin.list_topics(timeout=10).topics and time.monotonic() < deadline:
        time.sleep(0.2)
    assert topic_name not in admin.list_topics(timeout=10).topics


def test_invalid_topic_name_is_rejected(broker):
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    fs = admin.create_topics([NewTopic("bad/name", num_partitions=1, replication_factor=1)])
    with pytest.raises(KafkaException) as ei:
        fs["bad/name"].result(10)
    assert ei.value.args[0].code() == KafkaError.TOPIC_EXCEPTION


@pytest.mark.parametrize("codec", CODECS)
def test_round_trip_byte_exact_every_codec(broker, topic, codec):
    records = make_records(300, seed=hash(codec) & 0xFFFF)
    offsets = produce_all(broker.bootstrap, topic, records, **{"compression.type": codec})
    assert sorted(offsets) == list(range(300))
    got = consume_n(broker.bootstrap, topic, 300)
    assert [m.offset() for m in got] == list(range(300))
    assert as_tuples(got) == [(k, v, h) for k, v, h in records]


def test_large_message_and_too_large(broker, topic_name):
    create_topic(broker.bootstrap, topic_name, 1, {"max.message.bytes": "200000"})
    big = bytes(range(256)) * 600  # 153,600 bytes: fits
    produce_all(broker.bootstrap, topic_name, [(b"k", big, [])])
    got = consume_n(broker.bootstrap, topic_name, 1, **{"max.partition.fetch.bytes": 1000})
    assert got[0].value() == big  # one whole batch even above the fetch limits
    p = Producer({"bootstrap.servers": broker.bootstrap})
    errs = []
    p.produce(topic_name, value=b"x" * 300000, on_delivery=lambda e, m: errs.append(e))
    p.flush(30)
    assert errs and errs[0] is not None and errs[0].code() == KafkaError.MSG_SIZE_TOO_LARGE


def test_offsets_for_times_and_rewind(broker, topic):
    p = Producer({"bootstrap.servers": broker.bootstrap})
    base = 1_700_000_000_000
    for i in range(20):
        p.produce(topic, value=f"m{i}".encode(), timestamp=base + i * 1000, partition=0)
    p.flush(30)
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "x", "enable.auto.commit": False})
    found = c.offsets_for_times([TopicPartition(topic, 0, base + 7500)], timeout=10)
    assert found[0].offset == 8
    past_end = c.offsets_for_times([TopicPartition(topic, 0, base + 10**9)], timeout=10)
    assert past_end[0].offset == -1
    low, high = c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
    assert (low, high) == (0, 20)
    c.close()
    first = consume_n(broker.bootstrap, topic, 20)
    again = consume_n(broker.bootstrap, topic, 5, offset=12)  # rewind to 12
    assert [m.value() for m in again] == [m.value() for m in first[12:17]]
    assert [m.timestamp()[1] for m in again] == [base + i * 1000 for i in range(12, 17)]


def test_idempotent_producer_no_duplicates(broker, topic3):
    records = [(f"k{i}".encode(), f"v{i}".encode(), []) for i in range(3000)]
    p = Producer({"bootstrap.servers": broker.bootstrap, "enable.idempotence": True, "linger.ms": 2,
                  "batch.num.messages": 100})
    for i, (k, v, _) in enumerate(records):
        p.produce(topic3, key=k, value=v, partition=i % 3)
        if i % 500 == 0:
            p.poll(0)
    assert p.flush(30) == 0
    seen = []
    for part in range(3):
        msgs = consume_n(broker.bootstrap, topic3, 1000, partition=part)
        vals = [m.value() for m in msgs]
        assert vals == [v for i, (_, v, _) in enumerate(records) if i % 3 == part]
        seen += vals
    assert len(seen) == len(set(seen)) == 3000


def test_auto_create_on_produce(broker, topic_name):
    offsets = produce_all(broker.bootstrap, topic_name, [(None, b"hello", [])], partition=-1)
    assert offsets == [0]
    got = consume_n(broker.bootstrap, topic_name, 1)
    assert got[0].value() == b"hello"


def test_unknown_partition_errors(broker, topic):
    p = Producer({"bootstrap.servers": broker.bootstrap, "message.timeout.ms": 3000})
    errs = []
    p.produce(topic, value=b"x", partition=5, on_delivery=lambda e, m: errs.append(e))
    p.flush(10)
    assert errs and errs[0] is not None
    assert errs[0].code() in (KafkaError._UNKNOWN_PARTITION, KafkaError.UNKNOWN_TOPIC_OR_PART,
                              KafkaError._MSG_TIMED_OUT)


def test_compacted_topic_whose_old_segments_hold_no_record(tmp_path):
    """Every key overwritten many times: the cleaner leaves segments holding only empty batches.
    A librdkafka consumer from the beginning gets every key's latest value; it took a fetch
    response of only empty batches for a record too large to fetch (MSG_SIZE_TOO_LARGE at the
    first offset past them), so the broker starts a consumer's read at the first batch with a
    record."""
    from kafka_bench.kafka_core_broker import KafkaCoreBroker

    with KafkaCoreBroker(data_dir=tmp_path, settings={"log.cleaner.backoff.ms": "200"}) as b:
        create_topic(b.bootstrap, "cmp", 1, {"cleanup.policy": "compact", "segment.bytes": "4096",
                                             "min.cleanable.dirty.ratio": "0.01"})
        records = [(b"k%02d" % (i % 20), b"v%05d" % i, None) for i in range(3000)]
        produce_all(b.bootstrap, "cmp", records, **{"batch.num.messages": 20, "linger.ms": 2})
        logs = tmp_path / "logs" / "cmp-0"
        deadline = time.monotonic() + 30
        while sum(f.stat().st_size for f in logs.glob("*.log")) > 20_000:
            assert time.monotonic() < deadline, "the cleaner did not run"
            time.sleep(0.2)
        c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": "cmp", "enable.auto.commit": False})
        c.assign([TopicPartition("cmp", 0, 0)])
        offsets: list[int] = []
        latest: dict[bytes, bytes] = {}
        deadline = time.monotonic() + 20
        while (not offsets or offsets[-1] < 2999) and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is None:
                continue
            if m.error():
                raise KafkaException(m.error())
            offsets.append(m.offset())
            latest[m.key()] = m.value()
        c.close()
        assert offsets and offsets[-1] == 2999 and offsets == sorted(set(offsets))
        assert len(offsets) < 3000             # what the cleaner removed is not read
        assert latest == {k: v for k, v, _h in records[-20:]}
