"""Record-batch compression codecs (attributes bits 0-2), over cramjam.

Kafka compresses the records section of a batch (everything after
recordCount) as one block:
  1 gzip    RFC 1952 stream
  2 snappy  the Java client writes xerial-framed snappy (magic "\\x82SNAPPY\\0",
            then [int32 length, raw snappy block]...); librdkafka writes a raw
            snappy block.  We write xerial (what Java consumers expect from a
            Java-compatible producer) and read both.
  3 lz4     the LZ4 frame format (KIP-57: correct header checksum), independent blocks
  4 zstd    a zstd frame
"""

from __future__ import annotations

import struct
from typing import Any

import cramjam

__all__ = ["CODECS", "codec_id", "compress", "decompress"]

CODECS = {"none": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}
_XERIAL_MAGIC = b"\x82SNAPPY\x00"
_XERIAL_HEADER = _XERIAL_MAGIC + struct.pack(">ii", 1, 1)  # version 1, min compatible 1
_XERIAL_BLOCK = 32 * 1024  # Java's SnappyOutputStream default block size


def codec_id(name: str | int | None) -> int:
    if name is None:
        return 0
    if isinstance(name, int):
        if name not in CODECS.values():
            raise ValueError(f"unknown compression codec {name}")
        return name
    try:
        return CODECS[name.lower()]
    except KeyError:
        raise ValueError(f"unknown compression type {name!r} (one of {', '.join(CODECS)})") from None


def _snappy_xerial(data: Any) -> bytes:
    mv = memoryview(data).cast("B")
    out = [_XERIAL_HEADER]
    for pos in range(0, len(mv), _XERIAL_BLOCK):
        block = bytes(cramjam.snappy.compress_raw(mv[pos:pos + _XERIAL_BLOCK]))
        out.append(struct.pack(">i", len(block)))
        out.append(block)
    return b"".join(out)


def _snappy_decompress(data: Any) -> bytes:
    mv = memoryview(data).cast("B")
    if len(mv) >= 16 and bytes(mv[:8]) == _XERIAL_MAGIC:
        pos = 16
        out = []
        while pos < len(mv):
            if pos + 4 > len(mv):
                raise ValueError("truncated xerial snappy block length")
            (n,) = struct.unpack_from(">i", mv, pos)
            pos += 4
            if n < 0 or pos + n > len(mv):
                raise ValueError(f"xerial snappy block of {n} bytes with {len(mv) - pos} remaining")
            out.append(bytes(cramjam.snappy.decompress_raw(mv[pos:pos + n])))
            pos += n
        return b"".join(out)
    return bytes(cramjam.snappy.decompress_raw(mv))


def compress(codec: int, data: Any, level: int | None = None) -> bytes:
    """Compress a records section with codec 1-4.

    level: the codec's level as Kafka's compression.gzip.level (1-9),
    compression.lz4.level (1-17) and compression.zstd.level take it; None
    (or -1 for gzip) is the codec's default.  Snappy has no level."""
    if codec == 1:
        return bytes(cramjam.gzip.compress(data, level=None if level in (None, -1) else level))
    if codec == 2:
        return _snappy_xerial(data)
    if codec == 3:
        # Kafka's KafkaLZ4BlockInputStream refuses linked blocks ("Dependent block stream").
        c = cramjam.lz4.Compressor(level=level, block_linked=False) if level is not None \
            else cramjam.lz4.Compressor(block_linked=False)
        c.compress(bytes(data))  # the compressor takes bytes only
        return bytes(c.finish())
    if codec == 4:
        return bytes(cramjam.zstd.compress(data, level=level) if level is not None else cramjam.zstd.compress(data))
    raise ValueError(f"unknown compression codec {codec}")


def decompress(codec: int, data: Any) -> bytes:
    """Decompress a records section compressed with codec 1-4."""
    if codec == 1:
        return bytes(cramjam.gzip.decompress(data))
    if codec == 2:
        return _snappy_decompress(data)
    if codec == 3:
        return bytes(cramjam.lz4.decompress(data))
    if codec == 4:
        return bytes(cramjam.zstd.decompress(data))
    raise ValueError(f"unknown compression codec {codec}")
