"""Topic/broker compression.type: the broker rewrites batches whose codec differs from the
topic's (unless it is ``producer``), keeping every header field but the codec bits, the
length and the CRC; the records section is the same bytes once decompressed."""

from __future__ import annotations

import struct
import time
import uuid

import pytest
from kafka_protocol.messages import REQUESTS

from .conftest import create_topic, fetch_req, make_batch, produce_req

DescribeConfigs = REQUESTS[32]
IncrementalAlterConfigs = REQUESTS[44]
InitProducerId = REQUESTS[22]

NONE, GZIP, SNAPPY, LZ4, ZSTD = range(5)


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def compressed_batch(values: list[bytes], codec: int, **kw) -> tuple[bytearray, bytes]:
    """A batch compressed with ``codec`` and its uncompressed records section."""
    from kafka_core import BatchBuilder
    from kafka_core.compression import compress

    ts = int(time.time() * 1000)
    b = BatchBuilder(61 + sum(len(v) + 40 for v in values), base_timestamp=ts, **kw)
    for i, v in enumerate(values):
        assert b.append(ts + i, b"key-%d" % i, v, headers=[("h", b"x")])
    section = bytes(b.records_view())
    return bytearray(b.finish_compressed(codec, compress(codec, section))), section


def produce(client, topic, batch, version=9):
    return client.call(produce_req(topic, 0, batch), version).responses[0].partition_responses[0]


def stored_batches(client, topic, offset=0) -> list[bytes]:
    """The batches of the partition as the broker stores them (Fetch returns log bytes)."""
    from kafka_core._batch import scan_batches

    pd = client.call(fetch_req(topic, 0, offset), 12).responses[0].partitions[0]
    assert pd.error_code == 0, pd
    data = bytes(pd.records or b"")
    infos, valid = scan_batches(data, verify_crc=True)   # the rewritten CRCs are right
    assert valid == len(data)
    return [data[i.position:i.position + i.size] for i in infos]


def codec_of(batch: bytes) -> int:
    return struct.unpack_from(">h", batch, 21)[0] & 0x07


def section_of(batch: bytes) -> bytes:
    from kafka_core.compression import decompress

    codec = codec_of(batch)
    return decompress(codec, batch[61:]) if codec else batch[61:]


def assert_same_header(stored: bytes, sent: bytes | bytearray) -> None:
    """Everything but baseOffset, batchLength, partitionLeaderEpoch, CRC and the codec bits."""
    a_attr, = struct.unpack_from(">h", stored, 21)
    b_attr, = struct.unpack_from(">h", sent, 21)
    assert a_attr & ~0x07 == b_attr & ~0x07
    assert stored[16] == sent[16] == 2                  # magic
    assert stored[23:61] == sent[23:61]                 # lastOffsetDelta .. recordCount


def describe(client, topic) -> dict:
    R = DescribeConfigs.DescribeConfigsResource
    res = client.call(DescribeConfigs(resources=[R(resource_type=2, resource_name=topic, configuration_keys=None)],
                                      include_synonyms=True), 4).results[0]
    assert res.error_code == 0
    return {c.name: c for c in res.configs}


def alter(client, topic, **cfg: str | None) -> list[int]:
    A = IncrementalAlterConfigs.AlterConfigsResource
    C = IncrementalAlterConfigs.AlterableConfig
    res = client.call(IncrementalAlterConfigs(resources=[A(resource_type=2, resource_name=topic, configs=[
        C(name=k.replace("_", "."), config_operation=1 if v is None else 0, value=v) for k, v in cfg.items()])],
        validate_only=False), 1).responses
    return [r.error_code for r in res]


def test_uncompressed_to_zstd_topic_set_at_create(client):
    topic = _name("ct-zstd")
    create_topic(client, topic, configs={"compression.type": "zstd"})
    cfg = describe(client, topic)
    assert cfg["compression.type"].value == "zstd" and cfg["compression.type"].config_source == 1
    sent = [make_batch([b"value-%d" % i * 20 for i in range(n)], keys=[b"k"] * n) for n in (3, 5)]
    offsets = [produce(client, topic, bytearray(b)).base_offset for b in sent]
    assert offsets == [0, 3]
    stored = stored_batches(client, topic)
    assert len(stored) == 2
    for got, want, off in zip(stored, sent, offsets, strict=True):
        assert codec_of(got) == ZSTD
        assert struct.unpack_from(">q", got, 0)[0] == off
        assert_same_header(got, want)
        assert section_of(got) == bytes(want[61:])       # the records, byte-exact
        assert len(got) < len(want)                      # really compressed (repetitive values)


def test_compression_type_altered_live(client, topic):
    assert describe(client, topic)["compression.type"].value == "producer"
    first = make_batch([b"a" * 100, b"b" * 100])
    assert produce(client, topic, bytearray(first)).error_code == 0
    assert alter(client, topic, compression_type="zstd") == [0]
    cfg = describe(client, topic)
    assert cfg["compression.type"].value == "zstd" and cfg["compression.type"].config_source == 1
    second = make_batch([b"c" * 100, b"d" * 100])
    assert produce(client, topic, bytearray(second)).base_offset == 2
    assert alter(client, topic, compression_type="gzip", compression_gzip_level="9") == [0]
    third = make_batch([b"e" * 100])
    assert produce(client, topic, bytearray(third)).base_offset == 4
    assert alter(client, topic, compression_type=None) == [0]   # back to the default: producer
    assert describe(client, topic)["compression.type"].value == "producer"
    fourth = make_batch([b"f" * 100])
    assert produce(client, topic, bytearray(fourth)).base_offset == 5
    stored = stored_batches(client, topic)
    assert [codec_of(s) for s in stored] == [NONE, ZSTD, GZIP, NONE]
    for got, want in zip(stored, (first, second, third, fourth), strict=True):
        assert_same_header(got, want)
        assert section_of(got) == bytes(want[61:])


def test_gzip_to_uncompressed(client):
    from kafka_core._batch import iter_records

    topic = _name("ct-none")
    create_topic(client, topic, configs={"compression.type": "uncompressed"})
    batch, section = compressed_batch([b"hello %d" % i for i in range(10)], GZIP)
    assert produce(client, topic, bytearray(batch)).base_offset == 0
    (got,) = stored_batches(client, topic)
    assert codec_of(got) == NONE
    assert got[61:] == section
    assert_same_header(got, batch)
    recs = iter_records(got, verify_crc=True)
    assert [(r.offset, r.key, r.value, r.headers) for r in recs] == [
        (i, b"key-%d" % i, b"hello %d" % i, [("h", b"x")]) for i in range(10)]


@pytest.mark.parametrize("source,target", [(SNAPPY, "lz4"), (LZ4, "snappy"), (ZSTD, "gzip"), (NONE, "lz4")])
def test_codec_to_codec(client, source, target):
    topic = _name("ct-x")
    create_topic(client, topic, configs={"compression.type": target})
    batch, section = compressed_batch([b"v%d" % i * 30 for i in range(20)], source) if source else (
        make_batch([b"v%d" % i * 30 for i in range(20)]), None)
    section = section if section is not None else bytes(batch[61:])
    assert produce(client, topic, bytearray(batch)).error_code == 0
    (got,) = stored_batches(client, topic)
    assert codec_of(got) == {"gzip": GZIP, "snappy": SNAPPY, "lz4": LZ4}[target]
    assert section_of(got) == section
    assert_same_header(got, batch)


@pytest.mark.parametrize("codec", [GZIP, SNAPPY, LZ4, ZSTD])
def test_producer_type_stores_as_sent(client, topic, codec):
    batch, _ = compressed_batch([b"same %d" % i for i in range(7)], codec)
    assert produce(client, topic, bytearray(batch)).error_code == 0
    (got,) = stored_batches(client, topic)
    assert got[8:12] == batch[8:12] and got[16:] == batch[16:]   # CRC-covered bytes untouched


def test_same_codec_is_not_rewritten(client):
    topic = _name("ct-same")
    create_topic(client, topic, configs={"compression.type": "gzip", "compression.gzip.level": "1"})
    batch, _ = compressed_batch([b"z" * 500 for _ in range(5)], GZIP)
    assert produce(client, topic, bytearray(batch)).error_code == 0
    (got,) = stored_batches(client, topic)
    assert got[16:] == batch[16:]


def test_idempotent_batch_keeps_producer_fields_and_dedups(client):
    topic = _name("ct-idem")
    create_topic(client, topic, configs={"compression.type": "zstd"})
    ip = client.call(InitProducerId(transactional_id=None, transaction_timeout_ms=60000), 4)
    assert ip.error_code == 0
    b0 = make_batch([b"a" * 50, b"b" * 50], producer_id=ip.producer_id, producer_epoch=ip.producer_epoch,
                    base_sequence=0)
    assert produce(client, topic, bytearray(b0)).base_offset == 0
    assert produce(client, topic, bytearray(b0)).base_offset == 0     # retry: deduplicated
    (got,) = stored_batches(client, topic)
    assert codec_of(got) == ZSTD
    pid, epoch, seq = struct.unpack_from(">qhi", got, 43)
    assert (pid, epoch, seq) == (ip.producer_id, ip.producer_epoch, 0)
    assert section_of(got) == bytes(b0[61:])


def test_corrupt_compressed_records_rejected(client):
    from kafka_core._crc32c import crc32c

    topic = _name("ct-bad")
    create_topic(client, topic, configs={"compression.type": "uncompressed"})
    batch, _ = compressed_batch([b"x" * 100], ZSTD)
    batch[61:] = b"\x00" * (len(batch) - 61)                  # not a zstd frame
    struct.pack_into(">I", batch, 17, crc32c(bytes(batch[21:])))   # with a valid CRC
    pr = produce(client, topic, batch)
    assert pr.error_code == 2
    # a bad CRC is refused before anything is decompressed
    good, _ = compressed_batch([b"y" * 100], GZIP)
    good[-1] ^= 0xFF
    assert produce(client, topic, good).error_code == 2
    assert stored_batches(client, topic) == []


def test_zstd_needs_produce_v7(client, topic):
    batch, _ = compressed_batch([b"z"], ZSTD)
    assert produce(client, topic, bytearray(batch), version=6).error_code == 76
    assert produce(client, topic, bytearray(batch), version=7).error_code == 0


def test_levels_validated(client, topic):
    assert alter(client, topic, compression_zstd_level="23") == [40]
    assert alter(client, topic, compression_lz4_level="0") == [40]
    assert alter(client, topic, compression_gzip_level="0") == [40]
    assert alter(client, topic, compression_type="brotli") == [40]
    assert alter(client, topic, compression_zstd_level="-5", compression_gzip_level="-1") == [0]
    cfg = describe(client, topic)
    assert cfg["compression.zstd.level"].value == "-5"


@pytest.mark.interop
def test_confluent_uncompressed_into_zstd_topic(broker, client):
    ck = pytest.importorskip("confluent_kafka")

    topic = _name("ct-ck")
    create_topic(client, topic, configs={"compression.type": "zstd"})
    p = ck.Producer({"bootstrap.servers": broker.bootstrap, "compression.type": "none", "linger.ms": 5})
    sent = {b"k%d" % i: b"value %d " % i * 10 for i in range(200)}
    for k, v in sent.items():
        p.produce(topic, key=k, value=v, partition=0)
    assert p.flush(20) == 0
    stored = stored_batches(client, topic)
    assert stored and all(codec_of(s) == ZSTD for s in stored)
    c = ck.Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "unused", "enable.auto.commit": False})
    c.assign([ck.TopicPartition(topic, 0, 0)])
    got = {}
    deadline = time.monotonic() + 30
    while len(got) < len(sent) and time.monotonic() < deadline:
        for m in c.consume(500, 0.5):
            assert m.error() is None, m.error()
            got[m.key()] = m.value()
    c.close()
    assert got == sent
