"""Request headers and response framing over the generated kafka_protocol codecs.

Request header v1: api_key i16, api_version i16, correlation_id i32,
client_id (i16-length nullable string); v2 adds a tagged-field section.
A request version inside its API's flexible versions uses header v2 and
response header v1 (correlation_id + empty tags); ApiVersions responses
always use header v0 so a client can parse them before it knows our
versions.
"""

from __future__ import annotations

import struct
from typing import Any

from kafka_protocol.messages import REQUESTS, RESPONSES

_S_HDR = struct.Struct(">hhih")
_S_II = struct.Struct(">ii")
API_VERSIONS_KEY = 18


class HeaderError(ValueError):
    pass


class RequestHeader:
    __slots__ = ("api_key", "api_version", "correlation_id", "client_id", "body_offset")

    def __init__(self, api_key: int, api_version: int, correlation_id: int, client_id: str | None,
                 body_offset: int) -> None:
        self.api_key = api_key
        self.api_version = api_version
        self.correlation_id = correlation_id
        self.client_id = client_id
        self.body_offset = body_offset


def flexible(api_key: int, version: int) -> bool:
    cls = REQUESTS.get(api_key)
    fmin = getattr(cls, "FLEXIBLE_MIN", None)
    return fmin is not None and version >= fmin


def _skip_tags(buf: memoryview, pos: int) -> int:
    def uvarint(p: int) -> tuple[int, int]:
        v = 0
        shift = 0
        while True:
            if p >= len(buf):
                raise HeaderError("truncated tagged fields in request header")
            b = buf[p]
            p += 1
            v |= (b & 0x7F) << shift
            if b < 0x80:
                return v, p
            shift += 7
            if shift > 28:
                raise HeaderError("bad varint in request header")
    n, pos = uvarint(pos)
    for _ in range(n):
        _tag, pos = uvarint(pos)
        size, pos = uvarint(pos)
        pos += size
        if pos > len(buf):
            raise HeaderError("truncated tagged field in request header")
    return pos


def decode_header(frame: memoryview) -> RequestHeader:
    """Parse the request header at the start of ``frame`` (the bytes after the size prefix)."""
    if len(frame) < 10:
        if len(frame) >= 8:
            api_key, api_version, corr = struct.unpack_from(">hhi", frame, 0)
            raise HeaderError(f"request header truncated (api key {api_key} v{api_version}, "
                              f"correlation id {corr})")
        raise HeaderError(f"request of {len(frame)} bytes is shorter than a request header")
    api_key, api_version, corr, clen = _S_HDR.unpack_from(frame, 0)
    pos = 10
    client_id: str | None = None
    if clen >= 0:
        if pos + clen > len(frame):
            raise HeaderError("client_id runs past the end of the request")
        client_id = bytes(frame[pos:pos + clen]).decode("utf-8", "replace")
        pos += clen
    elif clen != -1:
        raise HeaderError(f"bad client_id length {clen}")
    # Unknown versions of ApiVersions are parsed as flexible (as Kafka does).
    if flexible(api_key, api_version) or (api_key == API_VERSIONS_KEY and api_version > 3):
        pos = _skip_tags(frame, pos)
    return RequestHeader(api_key, api_version, corr, client_id, pos)


def response_parts(api_key: int, version: int, correlation_id: int, body: Any) -> list[Any]:
    """Size prefix + response header + encoded body, as parts (file slices stay separate)."""
    parts = body.encode_parts(version)
    size = 0
    for p in parts:
        size += len(p)
    cls = RESPONSES[api_key]
    fmin = getattr(cls, "FLEXIBLE_MIN", None)
    if api_key != API_VERSIONS_KEY and fmin is not None and version >= fmin:
        head = _S_II.pack(size + 5, correlation_id) + b"\x00"
    else:
        head = _S_II.pack(size + 4, correlation_id)
    if len(parts) == 1 and not isinstance(parts[0], bytes | bytearray | memoryview):
        return [head, parts[0]]
    if isinstance(parts[0], bytes | bytearray):
        parts[0] = head + parts[0]
        return parts
    return [head, *parts]
