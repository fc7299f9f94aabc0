"""The broker-level half of tests/unit/test_wire_counts.py (issue 16): requests whose array counts
claim 2**31 - 1 entries in a frame of a few hundred bytes are refused (Kafka closes a connection
whose request it cannot parse) without the broker's peak RSS growing, and a fresh client is served
afterwards."""

from __future__ import annotations

import random
import struct

import pytest
from kafka_bench.kafka_core_broker import KafkaCoreBroker
from kafka_protocol import DecodeError, decode_request_header, encode_request
from kafka_protocol.messages import REQUESTS
from kafka_protocol.testing import random_message

from .conftest import RawClient
from .test_bombs import _reset_peak_rss, _status_bytes

# Produce v3 (rigid), Fetch v11, Metadata v8, OffsetCommit v7, CreateTopics v4: the newest
# non-flexible versions, whose counts are int32
CASES = [(0, 8), (1, 11), (3, 8), (8, 7), (19, 4)]


def _frame_with_a_huge_count(api: int, version: int) -> bytes:
    """A request frame whose first array count (found with the local decoder) says 2**31 - 1."""
    cls = REQUESTS[api]
    rng = random.Random(api)
    for _ in range(50):
        frame = encode_request(api, version, 7, "kc-test", random_message(cls, version, rng))
        body = 4 + decode_request_header(memoryview(frame)[4:]).body_offset
        for i in range(body, len(frame) - 3):
            m = frame[:i] + b"\x7f\xff\xff\xff" + frame[i + 4:]
            try:
                cls.decode(memoryview(m)[4:], version, body - 4)
            except DecodeError as e:
                if "count" in str(e) and len(m) < 4000:
                    return bytes(m)
            except Exception:  # noqa: BLE001 - not a count: try the next place
                continue
    raise AssertionError(f"no array count found in {cls.__name__} v{version}")


@pytest.fixture(scope="module")
def broker(tmp_path_factory):  # type: ignore[no-untyped-def]
    with KafkaCoreBroker(data_dir=tmp_path_factory.mktemp("counts")) as b:
        yield b


@pytest.mark.parametrize("api,version", CASES, ids=[f"{REQUESTS[a].__name__}-v{v}" for a, v in CASES])
def test_huge_count_in_a_small_frame_is_refused(broker, api: int, version: int) -> None:
    frame = _frame_with_a_huge_count(api, version)
    assert struct.unpack(">i", frame[:4])[0] == len(frame) - 4
    assert broker.proc is not None
    _reset_peak_rss(broker.proc.pid)
    before = _status_bytes(broker.proc.pid, "VmRSS")
    with RawClient(broker.port) as c:
        c.send_raw(frame)
        assert c.is_closed_by_peer(), "the broker kept a connection whose request it cannot parse"
    grown = _status_bytes(broker.proc.pid, "VmHWM") - before
    assert grown < 20 << 20, f"peak RSS grew by {grown >> 20} MiB"
    with RawClient(broker.port) as c:     # and a fresh client is served
        M = REQUESTS[3]
        assert c.call(M(topics=None), 1).brokers
    assert "cannot parse" in broker.log_text()

