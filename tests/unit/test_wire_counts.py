"""Counts read from the wire are checked against the bytes remaining before anything is allocated
(issue 16): every array count of the generated codecs, mutated to a huge value in a small frame,
is a DecodeError (or, where the mutated bytes were no count, some other outcome) with the decoder's
peak allocation bounded, for array-bearing requests, non-flexible and flexible versions."""

from __future__ import annotations

import random
import tracemalloc

import pytest
from kafka_protocol import DecodeError
from kafka_protocol.messages import REQUESTS
from kafka_protocol.testing import random_message

# Produce, Fetch, ListOffsets, Metadata, OffsetCommit, OffsetFetch, JoinGroup, CreateTopics,
# DeleteTopics, DescribeConfigs, AlterConfigs, CreatePartitions
APIS = [0, 1, 2, 3, 8, 9, 11, 19, 20, 32, 33, 37]
PEAK_BOUND = 1 << 20
HUGE_INT32 = b"\x7f\xff\xff\xff"
HUGE_UVARINT = b"\xff\xff\xff\xff\x0f"   # 2**32 - 1: a compact array of 2**32 - 2 entries


def _versions(cls: type) -> list[int]:
    """The newest non-flexible version and the newest flexible one."""
    out = []
    flex = getattr(cls, "FLEXIBLE_MIN", None)
    last_rigid = (flex - 1) if flex is not None else cls.MAX_VERSION
    if last_rigid >= cls.MIN_VERSION:
        out.append(last_rigid)
    if flex is not None and flex <= cls.MAX_VERSION:
        out.append(cls.MAX_VERSION)
    return out


CASES = [(api, v) for api in APIS for v in _versions(REQUESTS[api])]


def mutations(data: bytes, flexible: bool):  # type: ignore[no-untyped-def]
    """Every place a count could be, made huge: each 4-byte window (int32 counts) and, in
    flexible versions, each byte replaced by a huge unsigned varint (compact counts)."""
    for i in range(len(data) - 3):
        yield data[:i] + HUGE_INT32 + data[i + 4:]
    if flexible:
        for i in range(len(data)):
            yield data[:i] + HUGE_UVARINT + data[i + 1:]


@pytest.mark.parametrize("api,version", CASES, ids=[f"{REQUESTS[a].__name__}-v{v}" for a, v in CASES])
def test_huge_counts_are_refused_without_allocating(api: int, version: int) -> None:
    cls = REQUESTS[api]
    rng = random.Random(api * 100 + version)
    data = b""
    for _ in range(20):   # a message with some arrays filled, in a small frame
        data = bytes(random_message(cls, version, rng).encode(version))
        if 40 <= len(data) <= 4000:
            break
    refused = 0
    tracemalloc.start()
    try:
        for m in mutations(data, cls.is_flexible(version)):
            tracemalloc.reset_peak()
            try:
                cls.decode(m, version)
            except DecodeError as e:
                refused += "count" in str(e)
            except (ValueError, IndexError, OverflowError, UnicodeDecodeError):
                pass   # the mutation hit something that was no count: any decode failure is fine
            peak = tracemalloc.get_traced_memory()[1]
            assert peak < PEAK_BOUND, f"decoding a {len(m)}-byte frame allocated {peak} bytes"
    finally:
        tracemalloc.stop()
    assert refused > 0, "no mutation reached an array count"


def _recount(batch: bytes, count: int) -> bytes:
    """The batch with recordCount and lastOffsetDelta claiming count records, CRC re-signed."""
    import struct

    from kafka_core._crc32c import crc32c

    b = bytearray(batch)
    struct.pack_into(">i", b, 23, count - 1)     # lastOffsetDelta
    struct.pack_into(">i", b, 57, count)         # recordCount
    struct.pack_into(">I", b, 17, crc32c(bytes(b[21:])))
    return bytes(b)


@pytest.mark.parametrize("codec", [0, 4], ids=["uncompressed", "zstd"])
def test_batch_record_count_checked_against_its_bytes(codec: int) -> None:
    """The C scanner (kc_batch.c) weighs recordCount against the batch's bytes before anything
    is sized by it; a compressed batch's section is then bounded by that count (section_limit)."""
    from kafka_core import BatchBuilder
    from kafka_core._batch import check_records, scan_batches
    from kafka_core.compression import compress, decompress, section_limit

    bb = BatchBuilder(1 << 12, base_timestamp=1000)
    for i in range(3):
        assert bb.append(1000 + i, b"k%d" % i, b"v" * 10)
    plain = bytes(bb.finish())
    if codec:
        plain = plain[:21] + bytes([0, codec]) + plain[23:61] + compress(codec, plain[61:])
        plain = plain[:8] + (len(plain) - 12).to_bytes(4, "big") + plain[12:]
    huge = _recount(plain, (1 << 31) - 1)
    tracemalloc.start()
    try:
        if codec == 0:
            with pytest.raises(Exception, match="(?i)count|record"):
                scan_batches(huge)
        else:
            scan_batches(huge)   # the header alone cannot tell: the section is compressed
            section = decompress(codec, memoryview(huge)[61:], limit=section_limit((1 << 31) - 1, 1048588))
            with pytest.raises(Exception, match="(?i)count|record"):
                check_records(huge, section)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < PEAK_BOUND, peak
