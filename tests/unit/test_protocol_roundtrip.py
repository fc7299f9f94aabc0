"""Every generated message round-trips at every valid version (Kafka's MessageTest idea).

Values come from a seeded random filler driven by each class's ``FIELDS`` metadata: only
fields the version carries are set, nulls only where the version allows them, and flexible
structs sometimes get unknown tagged fields, which must survive decode and re-encode.
"""

from __future__ import annotations

import random
import struct
import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "python"))

import kafka_protocol as kp  # noqa: E402
from kafka_protocol import MESSAGES, Message  # noqa: E402
from kafka_protocol.testing import random_message  # noqa: E402


def fill(cls: type, version: int, flexible: bool, rng: random.Random) -> Any:
    assert cls.is_flexible(version) == flexible
    return random_message(cls, version, rng)


def all_messages() -> list[type]:
    return [MESSAGES[name] for name in sorted(MESSAGES)]


def check_roundtrip(cls: type, version: int, obj: Any) -> bytes:
    data = obj.encode(version)
    decoded, end = cls.decode(data, version)
    assert end == len(data), f"{cls.__name__} v{version}: consumed {end} of {len(data)} bytes"
    assert decoded == obj, f"{cls.__name__} v{version}:\n{decoded!r}\n!=\n{obj!r}"
    again = decoded.encode(version)
    assert again == data
    # decoding at an offset inside a larger buffer gives the same message
    decoded2, end2 = cls.decode(b"\xaa" * 3 + data + b"\xbb", version, offset=3)
    assert end2 == 3 + len(data) and decoded2 == obj
    return data


def test_schema_coverage() -> None:
    assert len(kp.REQUESTS) >= 85 and set(kp.REQUESTS) == set(kp.RESPONSES)
    for key, cls in kp.REQUESTS.items():
        assert cls.API_KEY == key and kp.RESPONSES[key].API_KEY == key
        assert kp.API_NAMES[key] + "Request" == cls.__name__
    # Kafka 4.x floors come from messages-4.3, newer-protocol APIs from messages/
    assert kp.ProduceRequest.MIN_VERSION == 3 and kp.FetchRequest.MIN_VERSION == 4
    assert 68 in kp.REQUESTS  # ConsumerGroupHeartbeat
    assert kp.API_NAMES[74] == "ListConfigResources"


@pytest.mark.parametrize("cls", all_messages(), ids=lambda c: c.__name__)
def test_roundtrip_every_version(cls: type) -> None:
    assert issubclass(cls, Message)
    rng = random.Random(cls.__name__)
    for version in range(cls.MIN_VERSION, cls.MAX_VERSION + 1):
        flexible = cls.is_flexible(version)
        check_roundtrip(cls, version, cls())  # all defaults
        for _ in range(6):
            check_roundtrip(cls, version, fill(cls, version, flexible, rng))


@pytest.mark.parametrize("cls", all_messages(), ids=lambda c: c.__name__)
def test_truncation_raises_decode_error(cls: type) -> None:
    rng = random.Random("trunc" + cls.__name__)
    version = cls.MAX_VERSION
    data = fill(cls, version, cls.is_flexible(version), rng).encode(version)
    for cut in sorted({0, len(data) // 2, len(data) - 1}):
        if cut >= len(data):
            continue
        try:
            cls.decode(data[:cut], version)
        except kp.DecodeError as exc:
            assert exc.error_code == kp.ErrorCode.INVALID_REQUEST
        # a prefix may itself be a valid shorter message (e.g. trailing empty tag section); fine


def test_version_out_of_range() -> None:
    with pytest.raises(kp.UnsupportedVersionError) as ei:
        kp.ProduceRequest.decode(b"", 2)
    assert ei.value.error_code == 35
    with pytest.raises(kp.UnsupportedVersionError):
        kp.ProduceRequest().encode(99)


def test_produce_request_shape_and_zero_copy() -> None:
    P = kp.ProduceRequest
    records = bytes(range(256)) * 4
    req = P(acks=-1, timeout_ms=30000, topic_data=[
        P.TopicProduceData(name="t", partition_data=[P.PartitionProduceData(index=i, records=records)
                                                     for i in range(3)])])
    for version in (3, 7, 9, 12):
        buf = bytearray(req.encode(version))
        got, _ = P.decode(buf, version)
        rec = got.topic_data[0].partition_data[2].records
        assert isinstance(rec, memoryview) and rec == records
        assert rec.obj is buf  # a view of the caller's buffer, not a copy
        rec[0] = 0x7F  # writable when the buffer is: offsets can be assigned in place
        assert 0x7F in buf
    assert P.TopicProduceData.PartitionProduceData is P.PartitionProduceData
    assert P.__qualname__ == "ProduceRequest" and P.PartitionProduceData.__qualname__.endswith(
        "PartitionProduceData")


def test_hand_checked_bytes_metadata_v1() -> None:
    # MetadataRequest v1: int32 count + int16-length strings; null array = all topics.
    req = kp.MetadataRequest(topics=[kp.MetadataRequest.MetadataRequestTopic(name="ab")])
    assert req.encode(1) == b"\x00\x00\x00\x01\x00\x02ab"
    assert kp.MetadataRequest(topics=None).encode(1) == b"\xff\xff\xff\xff"
    with pytest.raises(kp.EncodeError):  # v0 cannot say "all topics"
        kp.MetadataRequest(topics=None).encode(0)
    # v9 (flexible): compact array and compact string, tags after each struct
    # then allow_auto_topic_creation (true), the two include_* flags, the top-level tags.
    v9 = req.encode(9)
    assert v9 == b"\x02" + b"\x03ab" + b"\x00" + b"\x01\x00\x00" + b"\x00"


def test_absent_field_rules() -> None:
    # non-ignorable non-default value a version cannot carry: refused
    req = kp.ProduceRequest(transactional_id="tx")
    assert req.encode(3)  # transactional_id exists from v3
    jg = kp.JoinGroupRequest(group_instance_id="static-1")  # v5+, not ignorable
    with pytest.raises(kp.UnsupportedVersionError):
        jg.encode(4)
    # ignorable: silently dropped
    resp = kp.MetadataResponse(throttle_time_ms=7)  # ignorable, 3+
    data = resp.encode(2)
    assert kp.MetadataResponse.decode(data, 2)[0].throttle_time_ms == 0
    with pytest.raises(kp.UnsupportedVersionError):  # not ignorable, 8-10
        kp.MetadataResponse(cluster_authorized_operations=7).encode(7)


def test_tagged_fields_nested_and_unknown() -> None:
    F = kp.FetchResponse
    part = F.PartitionData(partition_index=1, high_watermark=10,
                           current_leader=F.LeaderIdAndEpoch(leader_id=3, leader_epoch=4),
                           records=b"xyz")
    part.unknown_tagged_fields = [(7, b"\x01\x02")]
    resp = F(responses=[F.FetchableTopicResponse(topic="t", partitions=[part])])
    resp.unknown_tagged_fields = [(5, b"")]
    data = resp.encode(12)
    got, _ = F.decode(data, 12)
    gp = got.responses[0].partitions[0]
    assert gp.current_leader == F.LeaderIdAndEpoch(leader_id=3, leader_epoch=4)
    assert gp.unknown_tagged_fields == [(7, b"\x01\x02")]
    assert got.unknown_tagged_fields == [(5, b"")]
    assert got.encode(12) == data
    # known tag 1 (current_leader) and unknown tag 7 are written in ascending order
    i_leader = data.index(b"\x00\x00\x00\x03\x00\x00\x00\x04")
    assert data[i_leader - 2:i_leader] == b"\x01\x09" and b"\x07\x02\x01\x02" in data[i_leader:]
    # default current_leader is not written at all
    part.current_leader = F.LeaderIdAndEpoch()
    assert b"\x01\x09" not in F(responses=[F.FetchableTopicResponse(topic="t", partitions=[part])]).encode(12)


def test_bad_counts_rejected_before_allocation() -> None:
    # MetadataRequest v1 claiming 2**31-1 topics in an 8-byte body
    with pytest.raises(kp.DecodeError, match="count"):
        kp.MetadataRequest.decode(b"\x7f\xff\xff\xff\x00\x02ab", 1)
    with pytest.raises(kp.DecodeError, match="non-nullable"):
        kp.ProduceRequest.decode(struct.pack(">hhii", -1, 1, 1000, -1)[0:0] + b"\xff\xff\x00\x01\x00\x00\x03\xe8"
                                 b"\xff\xff\xff\xff", 3)
