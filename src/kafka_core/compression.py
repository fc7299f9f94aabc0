"""Record-batch compression codecs (attributes bits 0-2): cramjam compresses; zlib, zstandard,
lz4 and cramjam's snappy decompress, bounded.

Kafka compresses the records section of a batch (everything after
recordCount) as one block:
  1 gzip    RFC 1952 stream
  2 snappy  the Java client writes xerial-framed snappy (magic "\\x82SNAPPY\\0",
            then [int32 length, raw snappy block]...); librdkafka writes a raw
            snappy block.  We write xerial (what Java consumers expect from a
            Java-compatible producer) and read both.
  3 lz4     the LZ4 frame format (KIP-57: correct header checksum), independent blocks
  4 zstd    a zstd frame

Decompression is bounded (issue 16: one 51 KB zstd batch inflating to 1.6 GB took the broker to
3.2 GB RSS).  Kafka never holds a records section: it streams it record by record, so a bomb costs
it CPU, not memory.  We hold the section (one C pass over it), so it is inflated in slices of
``_CHUNK`` and refused with ``DecompressionLimitError`` as soon as it passes ``limit`` (the broker
derives it from the batch: ``section_limit``), before the inflated size is ever allocated.  Each
codec uses a streaming decoder that takes an output bound: zlib's ``max_length`` (gzip),
``zstandard``'s stream reader, ``lz4.frame``'s ``max_length``, and for snappy the uncompressed
length every raw block announces in its preamble, checked before the block is decoded.
"""

from __future__ import annotations

import struct
import zlib
from typing import Any

import cramjam
import lz4.frame
import zstandard

__all__ = ["CODECS", "DEFAULT_LIMIT", "DecompressionLimitError", "codec_id", "compress", "decompress",
           "section_limit"]

CODECS = {"none": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}
_XERIAL_MAGIC = b"\x82SNAPPY\x00"
_XERIAL_HEADER = _XERIAL_MAGIC + struct.pack(">ii", 1, 1)  # version 1, min compatible 1
_XERIAL_BLOCK = 32 * 1024  # Java's SnappyOutputStream default block size
_CHUNK = 1 << 20  # inflate at most this much past the input consumed per step
# Kafka's message.max.bytes default (1 MiB + 12-byte log overhead)
_MESSAGE_MAX_BYTES = 1048588
# a records section may inflate to at most this many times the largest batch the topic accepts
MAX_INFLATION = 64
# the bound when the caller knows nothing of the batch (the cleaner's hooks, the client)
DEFAULT_LIMIT = MAX_INFLATION * _MESSAGE_MAX_BYTES


class DecompressionLimitError(ValueError):
    """A records section inflates past its limit (a decompression bomb): CORRUPT_MESSAGE."""


def section_limit(record_count: int, max_batch_bytes: int) -> int:
    """The most a batch's records section may inflate to: no record is larger than the largest
    batch the topic accepts (max.message.bytes), so record_count of them, and never more than
    MAX_INFLATION batches' worth, whatever record count the header claims."""
    return max(1, min(record_count, MAX_INFLATION)) * max(max_batch_bytes, 1)


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


def _over(limit: int) -> DecompressionLimitError:
    return DecompressionLimitError(f"the records section inflates past {limit} bytes")


def _snappy_raw(block: Any, limit: int) -> bytes:
    """One raw snappy block, its announced length checked against limit before decoding."""
    if cramjam.snappy.decompress_raw_len(block) > limit:
        raise _over(limit)
    return bytes(cramjam.snappy.decompress_raw(block))


def _snappy_decompress(data: Any, limit: int) -> bytes:
    mv = memoryview(data).cast("B")
    if len(mv) >= 16 and bytes(mv[:8]) == _XERIAL_MAGIC:
        pos = 16
        out = bytearray()
        while pos < len(mv):
            if pos + 4 > len(mv):
                raise ValueError("truncated xerial snappy block length")
            (n,) = struct.unpack_from(">i", mv, pos)
            pos += 4
            if n < 0 or pos + n > len(mv):
                raise ValueError(f"xerial snappy block of {n} bytes with {len(mv) - pos} remaining")
            out += _snappy_raw(mv[pos:pos + n], limit - len(out))
            pos += n
        return bytes(out)
    return _snappy_raw(mv, limit)


def _gzip_decompress(data: Any, limit: int) -> bytes:
    """Concatenated gzip members (Java's GZIPInputStream reads them all), max_length per step."""
    out = bytearray()
    rest = bytes(data)
    while rest:
        d = zlib.decompressobj(wbits=31)
        buf = rest
        while not d.eof:
            piece = d.decompress(buf, min(_CHUNK, limit + 1 - len(out)))
            out += piece
            if len(out) > limit:
                raise _over(limit)
            buf = d.unconsumed_tail
            if not piece and not buf:
                raise ValueError("truncated gzip stream")
        rest = d.unused_data
    return bytes(out)


def _lz4_decompress(data: Any, limit: int) -> bytes:
    """One LZ4 frame (what Kafka's KafkaLZ4BlockInputStream reads), max_length per step."""
    d = lz4.frame.LZ4FrameDecompressor()
    out = bytearray()
    buf = bytes(data)
    while not d.eof:
        piece = d.decompress(buf, max_length=min(_CHUNK, limit + 1 - len(out)))
        buf = b""
        out += piece
        if len(out) > limit:
            raise _over(limit)
        if not piece and d.needs_input and not d.eof:
            raise ValueError("truncated lz4 frame")
    return bytes(out)


# a zstd RLE block: 4 bytes of input for up to 128 KiB of output, the format's highest ratio
_ZSTD_MAX_RATIO = 32768
_ZSTD_STEP = 256


def _zstd_decompress(data: Any, limit: int) -> bytes:
    """zstd frames, fed in input slices of _ZSTD_STEP bytes, which cannot inflate past
    _ZSTD_STEP * _ZSTD_MAX_RATIO (zstandard's decompressobj bounds its input, not its output;
    its stream reader bounds output but takes a truncated frame for a complete one)."""
    mv = memoryview(data).cast("B")
    out = bytearray()
    pos = 0
    while pos < len(mv):
        d = zstandard.ZstdDecompressor().decompressobj()
        while not d.eof:
            if pos >= len(mv):
                raise ValueError("truncated zstd frame")
            # 256 input bytes inflate to at most 8 MiB: the overshoot past limit, and the most
            # one piece adds beside the output held so far
            out += d.decompress(mv[pos:pos + _ZSTD_STEP])
            pos += _ZSTD_STEP
            if len(out) > limit:
                raise _over(limit)
        pos -= len(d.unused_data)
    return bytes(out)


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


def decompress(codec: int, data: Any, limit: int | None = None) -> bytes:
    """Decompress a records section compressed with codec 1-4, never past limit bytes
    (DEFAULT_LIMIT when None): DecompressionLimitError past it, ValueError (or the codec's
    own error) on an undecodable section."""
    bound = DEFAULT_LIMIT if limit is None else limit
    if codec == 1:
        return _gzip_decompress(data, bound)
    if codec == 2:
        return _snappy_decompress(data, bound)
    if codec == 3:
        return _lz4_decompress(data, bound)
    if codec == 4:
        return _zstd_decompress(data, bound)
    raise ValueError(f"unknown compression codec {codec}")
