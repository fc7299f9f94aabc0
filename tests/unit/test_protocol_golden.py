"""Request frames captured from real clients (tests/unit/golden/capture_golden.py) decode to the
expected header and fields and re-encode byte-exactly."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "python"))

import kafka_protocol as kp  # noqa: E402

GOLDEN = Path(__file__).resolve().parent / "golden"

# file -> (api_key, version, header_version, correlation_id, client_id, expected body fields)
EXPECTED: dict[str, tuple[int, int, int, int, str, dict[str, object]]] = {
    "aiokafka-ApiVersions-v0.bin": (18, 0, 1, 1, "golden-aiokafka", {}),
    "aiokafka-Metadata-v5.bin": (3, 5, 1, 2, "golden-aiokafka", {"allow_auto_topic_creation": True}),
    "aiokafka-Produce-v7.bin": (0, 7, 1, 2, "golden-aiokafka", {"acks": 1, "transactional_id": None}),
    "confluent-kafka-ApiVersions-v3.bin": (18, 3, 2, 1, "golden-rdkafka", {
        "client_software_name": "confluent-kafka-python",
        "client_software_version": "2.16.1-rdkafka-2.16.0"}),
    "confluent-kafka-Metadata-v12.bin": (3, 12, 2, 2, "golden-rdkafka", {}),
    "confluent-kafka-Produce-v9.bin": (0, 9, 2, 2, "golden-rdkafka", {"acks": -1, "timeout_ms": 30000}),
    "kafka-python-admin-ApiVersions-v4.bin": (18, 4, 2, 1, "golden-admin", {
        "client_software_name": "kafka-python", "client_software_version": "3.0.12"}),
    "kafka-python-admin-Metadata-v12.bin": (3, 12, 2, 2, "golden-admin", {"topics": []}),
    "kafka-python-producer-ApiVersions-v4.bin": (18, 4, 2, 1, "golden-producer", {
        "client_software_name": "kafka-python"}),
    "kafka-python-producer-InitProducerId-v4.bin": (22, 4, 2, 2, "golden-producer", {
        "transactional_id": None, "producer_id": -1, "producer_epoch": -1}),
    "kafka-python-producer-Metadata-v12.bin": (3, 12, 2, 2, "golden-producer", {}),
    "kafka-python-producer-Produce-v9.bin": (0, 9, 2, 3, "golden-producer", {"acks": -1}),
    "kcat-ApiVersions-v3.bin": (18, 3, 2, 1, "rdkafka", {"client_software_name": "librdkafka"}),
    "kcat-Metadata-v4.bin": (3, 4, 1, 2, "rdkafka", {}),
    "kcat-Produce-v7.bin": (0, 7, 1, 3, "rdkafka", {"acks": -1}),
}


def test_all_golden_files_listed() -> None:
    assert sorted(p.name for p in GOLDEN.glob("*.bin")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_golden_frame(name: str) -> None:
    frame = (GOLDEN / name).read_bytes()
    api_key, version, hv, corr, client_id, fields = EXPECTED[name]
    reader = kp.FrameReader()
    (body_view,) = reader.feed(frame)
    assert len(body_view) == len(frame) - 4
    hdr = kp.decode_request_header(body_view)
    assert (hdr.api_key, hdr.api_version, hdr.header_version, hdr.correlation_id, hdr.client_id) == (
        api_key, version, hv, corr, client_id)
    assert hdr.known and hdr.unknown_tagged_fields is None
    assert kp.request_header_version(api_key, version) == hv
    cls = kp.REQUESTS[api_key]
    body, end = cls.decode(body_view, version, hdr.body_offset)
    assert end == len(body_view)
    for attr, value in fields.items():
        assert getattr(body, attr) == value, attr
    if api_key == 0:
        (topic,) = body.topic_data
        assert topic.name == "golden"
        (part,) = topic.partition_data
        batch = part.records
        assert isinstance(batch, memoryview)
        assert batch[16] == 2  # RecordBatch magic v2
        assert int.from_bytes(batch[57:61], "big") == 1  # one record
        assert bytes(batch).endswith(b"hello" + b"\x00")  # value, then zero headers
    if api_key == 3:
        assert body.topics is None or all(t.name == "golden" for t in body.topics)
    # byte-exact re-encode, frame included
    assert kp.encode_request(api_key, version, corr, client_id, body) == frame
    assert body.encode(version) == frame[4 + hdr.body_offset:]
