"""Protocol codec microbenchmarks (pytest-benchmark; never asserted on time)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "python"))

import kafka_protocol as kp  # noqa: E402


class FileSliceLike:
    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n


def _produce_frame(version: int) -> bytes:
    P = kp.ProduceRequest
    req = P(acks=-1, timeout_ms=30000, topic_data=[P.TopicProduceData(name="bench-topic", partition_data=[
        P.PartitionProduceData(index=i, records=bytes(16384)) for i in range(10)])])
    return kp.encode_request(0, version, 1, "bench-client", req)


def test_decode_produce_request_10_partitions_v9(benchmark) -> None:  # type: ignore[no-untyped-def]
    frame = memoryview(bytearray(_produce_frame(9)))[4:]

    def run() -> object:
        hdr = kp.decode_request_header(frame)
        return kp.ProduceRequest.decode(frame, hdr.api_version, hdr.body_offset)

    body, _ = benchmark(run)
    assert len(body.topic_data[0].partition_data) == 10


def test_decode_produce_request_10_partitions_v7(benchmark) -> None:  # type: ignore[no-untyped-def]
    frame = memoryview(bytearray(_produce_frame(7)))[4:]

    def run() -> object:
        hdr = kp.decode_request_header(frame)
        return kp.ProduceRequest.decode(frame, hdr.api_version, hdr.body_offset)

    benchmark(run)


def test_encode_fetch_response_file_slices_v12(benchmark) -> None:  # type: ignore[no-untyped-def]
    F = kp.FetchResponse

    def run() -> list[object]:
        resp = F(responses=[F.FetchableTopicResponse(topic="bench-topic", partitions=[
            F.PartitionData(partition_index=i, high_watermark=1000, last_stable_offset=1000,
                            log_start_offset=0, records=FileSliceLike(1 << 20)) for i in range(10)])])
        return kp.encode_response_parts(1, 12, 7, resp)

    parts = benchmark(run)
    assert len(parts) == 21
