"""Random message filler driven by the generated ``FIELDS`` metadata (for tests and fuzzing).

``random_message(cls, version, rng)`` builds an instance whose every field is valid for
``version``: only fields the version carries are set, nulls only where the version allows
them, and flexible structs sometimes carry unknown tagged fields (which must survive a round
trip). No I/O, no third-party imports.
"""

from __future__ import annotations

import random
import uuid
from typing import Any

from ._runtime import FieldSpec, Message

__all__ = ["check_fuzz_input", "random_message", "random_struct"]

INT_RANGES = {
    "int8": (-(1 << 7), (1 << 7) - 1),
    "int16": (-(1 << 15), (1 << 15) - 1),
    "int32": (-(1 << 31), (1 << 31) - 1),
    "int64": (-(1 << 63), (1 << 63) - 1),
    "uint16": (0, (1 << 16) - 1),
    "uint32": (0, (1 << 32) - 1),
}
ALPHABET = "abcXYZ019-._ é漢🙂"


def random_scalar(t: str, rng: random.Random) -> Any:
    if t in INT_RANGES:
        lo, hi = INT_RANGES[t]
        return rng.choice((lo, hi, 0, -1 if lo < 0 else 1, rng.randint(lo, hi)))
    if t == "bool":
        return rng.random() < 0.5
    if t == "float64":
        return rng.choice((0.0, 1.5, -2.25e300, rng.uniform(-1e9, 1e9)))
    if t == "uuid":
        return uuid.UUID(int=rng.getrandbits(128)) if rng.random() < 0.8 else uuid.UUID(int=0)
    if t == "string":
        return "".join(rng.choice(ALPHABET) for _ in range(rng.choice((0, 1, 5, 20, 130))))
    if t in ("bytes", "records"):
        return rng.randbytes(rng.choice((0, 1, 7, 200)))
    raise ValueError(f"unknown schema type {t}")


def random_struct(cls: type, version: int, flexible: bool, rng: random.Random, depth: int = 0,
                  unknown_tags: bool = True) -> Any:
    kwargs: dict[str, Any] = {}
    for f in cls.FIELDS:  # type: ignore[attr-defined]
        if version not in f.versions or rng.random() < 0.15:
            continue
        kwargs[f.name] = random_value(f, version, flexible, rng, depth, unknown_tags)
    obj = cls(**kwargs)
    if flexible and unknown_tags and rng.random() < 0.3:
        obj.unknown_tagged_fields = [(900 + i, rng.randbytes(rng.choice((0, 3, 130))))
                                     for i in range(rng.randint(1, 2))]
    return obj


def random_value(f: FieldSpec, version: int, flexible: bool, rng: random.Random, depth: int,
                 unknown_tags: bool = True) -> Any:
    if version in f.nullable_versions and rng.random() < 0.2:
        return None
    t = f.element_type
    if f.is_array:
        n = rng.choice((0, 1, 2, 3)) if depth < 3 else 0
        if f.struct is not None:
            return [random_struct(f.struct, version, flexible, rng, depth + 1, unknown_tags) for _ in range(n)]
        return [random_scalar(t, rng) for _ in range(n)]
    if f.struct is not None:
        return random_struct(f.struct, version, flexible, rng, depth + 1, unknown_tags)
    return random_scalar(t, rng)


def random_message(cls: type[Message], version: int, rng: random.Random | None = None,
                   unknown_tags: bool = True) -> Any:
    """A random, valid instance of message ``cls`` for ``version``."""
    rng = rng or random.Random()
    return random_struct(cls, version, cls.is_flexible(version), rng, 0, unknown_tags)


# -- the fuzz property (benches/fuzz/fuzz_protocol.py, tests/fuzz/test_fuzz_replay.py) --------

def check_fuzz_input(data: bytes) -> None:
    """One fuzz input through the wire layer; raises AssertionError (or whatever escaped) when a
    property breaks.  ``data``: api key (int16), version (int16), a mode byte, then bytes.  Mode
    bit 0 clear: the bytes are a request frame (header + body) fed to a FrameReader in pieces of
    the sizes the mode's upper bits pick; set: a response body of (api key, version)."""
    import struct

    from . import decode_request_header
    from .errors import ProtocolError
    from .framing import FrameReader
    from .messages import REQUESTS, RESPONSES

    if len(data) < 5:
        return
    api_key, version = struct.unpack_from(">hh", data)
    mode = data[4]
    body = bytes(data[5:])
    if mode & 1:
        cls = RESPONSES.get(api_key)
        if cls is not None:
            _roundtrip(cls, memoryview(body), version, 0)
        return
    reader = FrameReader(max_frame_size=1 << 20, chunk_size=256)
    stream = struct.pack(">i", len(body)) + body
    step = 1 + (mode >> 1)           # 1..128 bytes at a time: every split point is exercised
    frames: list[memoryview] = []
    try:
        for i in range(0, len(stream), step):
            frames += reader.feed(stream[i:i + step])
    except ProtocolError:
        return
    assert len(frames) == 1 and bytes(frames[0]) == body, "the frame came out changed"
    try:
        hdr = decode_request_header(frames[0])
    except ProtocolError:
        return
    rcls = REQUESTS.get(hdr.api_key)
    if rcls is not None and hdr.known:
        _roundtrip(rcls, frames[0], hdr.api_version, hdr.body_offset)


def _roundtrip(cls: type[Message], buf: memoryview, version: int, offset: int) -> None:
    from .errors import ProtocolError

    try:
        msg, _end = cls.decode(buf, version, offset)
    except ProtocolError:
        return
    again = msg.encode(version)          # what decoded must encode...
    back, end = cls.decode(again, version)
    assert end == len(again), f"{cls.__name__} v{version}: re-encoding decodes short"
    # ...and that encoding is a fixed point (bytes, not objects: a float64 field may hold NaN)
    assert back.encode(version) == again, f"{cls.__name__} v{version}: encode(decode(encode(m))) != encode(m)"
