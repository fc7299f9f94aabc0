"""Kafka wire protocol: codecs generated from Apache Kafka's message schemas. No I/O.

- Message classes (``ProduceRequest``, ``FetchResponse``, ...) with ``decode(buf, version, offset=0)``,
  ``encode(version)`` and ``encode_parts(version)``; nested struct classes hang off each message
  (``ProduceRequest.TopicProduceData``, ``ProduceRequest.PartitionProduceData``).
- ``REQUESTS`` / ``RESPONSES`` by api key, ``API_NAMES``.
- Headers: ``request_header_version``, ``response_header_version``, ``decode_request_header``,
  ``decode_response_header``, ``encode_request``, ``encode_response``, ``encode_response_parts``.
- ``FrameReader`` splits the byte stream into frames; ``errors`` holds the error codes.
"""

from __future__ import annotations

import struct
from typing import Any, NamedTuple

from . import errors
from ._runtime import (
    FieldSpec,
    Message,
    PreEncoded,
    Struct,
    VersionRange,
    join_parts,
    read_unknown_tags,
    uvarint_bytes,
)
from .errors import (
    CorruptMessageError,
    DecodeError,
    EncodeError,
    ErrorCode,
    FrameTooLargeError,
    InvalidRequestError,
    ProtocolError,
    UnsupportedVersionError,
)
from .framing import DEFAULT_MAX_FRAME_SIZE, FrameReader
from .messages import API_NAMES, MESSAGES, REQUESTS, RESPONSES, _generated
from .messages._generated import *  # noqa: F403  (the module whose __all__ type checkers can read)

API_VERSIONS_KEY = 18
_HDR = struct.Struct(">hhi")
_I32 = struct.Struct(">i")
_I16 = struct.Struct(">h")
_SIZE_CORR = struct.Struct(">ii")


class RequestHeader(NamedTuple):
    """A decoded request header. ``body_offset`` is where the body starts in the frame.

    ``known`` is False when the api key or version is outside the schemas: then only what
    could be read is filled in (for an unknown api key the header is read as v1, and
    ``body_offset`` may be unreliable), so the broker can answer ApiVersions with
    UNSUPPORTED_VERSION or close the connection."""

    api_key: int
    api_version: int
    correlation_id: int
    client_id: str | None
    body_offset: int
    header_version: int = 1
    known: bool = True
    unknown_tagged_fields: list[tuple[int, bytes]] | None = None


def request_header_version(api_key: int, api_version: int) -> int:
    """2 for flexible (api_key, version) pairs, else 1. Open-ended flexible ranges ("3+") count
    versions above the schema's maximum as flexible, as Kafka does."""
    cls = REQUESTS.get(api_key)
    if cls is None or cls.FLEXIBLE_MIN is None or api_version < cls.FLEXIBLE_MIN:
        return 1
    return 2


def response_header_version(api_key: int, api_version: int) -> int:
    """1 for flexible versions, else 0; ApiVersionsResponse always uses header v0 (clients parse
    it before they know the broker's versions)."""
    if api_key == API_VERSIONS_KEY:
        return 0
    cls = RESPONSES.get(api_key)
    if cls is None or cls.FLEXIBLE_MIN is None or api_version < cls.FLEXIBLE_MIN:
        return 0
    return 1


def decode_request_header(buf: Any) -> RequestHeader:
    """Decode the header at the start of a request frame (size prefix already removed)."""
    mv = buf if type(buf) is memoryview else memoryview(buf)
    blen = len(mv)
    if blen < 8:
        raise DecodeError(f"request header: needs 8 bytes, frame has {blen}")
    api_key, api_version, correlation_id = _HDR.unpack_from(mv, 0)
    cls = REQUESTS.get(api_key)
    known = cls is not None and cls.MIN_VERSION <= api_version <= cls.MAX_VERSION
    hv = request_header_version(api_key, api_version)
    client_id: str | None = None
    pos = 8
    unknown = None
    try:
        if blen < 10:
            raise DecodeError("request header: client_id length truncated")
        (n,) = _I16.unpack_from(mv, 8)
        pos = 10
        if n >= 0:
            if pos + n > blen:
                raise DecodeError(f"request header: client_id needs {n} bytes, {blen - pos} remaining")
            # Kafka reads the client id with new String(bytes, UTF_8), which replaces bad bytes.
            client_id = str(mv[pos:pos + n], "utf-8", "replace")
            pos += n
        if hv == 2:
            if pos >= blen:
                raise DecodeError("request header: tagged fields truncated")
            if mv[pos] == 0:
                pos += 1
            else:
                unknown, pos = read_unknown_tags(mv, pos, blen, "request header")
    except (DecodeError, IndexError) as exc:
        if known:
            raise DecodeError(f"{exc} (api key {api_key} v{api_version})") from None
    return RequestHeader(api_key, api_version, correlation_id, client_id, pos, hv, known, unknown)


def _encode_client_id(client_id: str | None) -> bytes:
    if client_id is None:
        return b"\xff\xff"
    raw = client_id.encode()
    return _I16.pack(len(raw)) + raw


def encode_request_header(api_key: int, version: int, correlation_id: int, client_id: str | None) -> bytes:
    """Header bytes (no size prefix) for the request header version of (api_key, version)."""
    hdr = _HDR.pack(api_key, version, correlation_id) + _encode_client_id(client_id)
    if request_header_version(api_key, version) == 2:
        hdr += b"\x00"
    return hdr


def encode_request(api_key: int, version: int, correlation_id: int, client_id: str | None, body: Any) -> bytes:
    """A whole request frame: size prefix, header, body (a message object or encoded bytes)."""
    if isinstance(body, Message):
        if body.API_KEY != api_key or body.KIND != "request":  # type: ignore[attr-defined]
            raise ValueError(f"{type(body).__name__} is not a request for api key {api_key}")
        body = body.encode(version)
    hdr = encode_request_header(api_key, version, correlation_id, client_id)
    return b"".join((_I32.pack(len(hdr) + len(body)), hdr, body))


def _response_header(api_key: int, version: int, correlation_id: int) -> bytes:
    if response_header_version(api_key, version) == 1:
        return _I32.pack(correlation_id) + b"\x00"
    return _I32.pack(correlation_id)


def encode_response_parts(api_key: int, version: int, correlation_id: int, body: Any) -> list[Any]:
    """A response frame as parts: bytes, and any non-bytes ``records`` objects (file slices) of the
    body on their own. The size prefix counts every part with ``len()``."""
    if isinstance(body, Message):
        if body.API_KEY != api_key or body.KIND != "response":  # type: ignore[attr-defined]
            raise ValueError(f"{type(body).__name__} is not a response for api key {api_key}")
        pieces = body._encode_list(version)
    else:
        pieces = [body]
    hdr = _response_header(api_key, version, correlation_id)
    size = len(hdr) + sum(len(p) for p in pieces)
    pieces.insert(0, _I32.pack(size))
    pieces.insert(1, hdr)
    return join_parts(pieces)


def encode_response(api_key: int, version: int, correlation_id: int, body: Any) -> bytes:
    parts = encode_response_parts(api_key, version, correlation_id, body)
    if len(parts) != 1:
        raise EncodeError("response holds non-bytes parts (file slices); use encode_response_parts()")
    return parts[0]


def decode_response_header(buf: Any, api_key: int, api_version: int) -> tuple[int, int]:
    """(correlation_id, body_offset) of a response frame (size prefix removed)."""
    mv = buf if type(buf) is memoryview else memoryview(buf)
    if len(mv) < 4:
        raise DecodeError("response header truncated")
    (correlation_id,) = _I32.unpack_from(mv, 0)
    pos = 4
    if response_header_version(api_key, api_version) == 1:
        if pos >= len(mv):
            raise DecodeError("response header tagged fields truncated")
        if mv[pos] == 0:
            pos += 1
        else:
            _, pos = read_unknown_tags(mv, pos, len(mv), "response header")
    return correlation_id, pos


__all__ = [
    "API_NAMES",
    "API_VERSIONS_KEY",
    "CorruptMessageError",
    "DEFAULT_MAX_FRAME_SIZE",
    "DecodeError",
    "EncodeError",
    "ErrorCode",
    "FieldSpec",
    "FrameReader",
    "FrameTooLargeError",
    "InvalidRequestError",
    "MESSAGES",
    "Message",
    "PreEncoded",
    "ProtocolError",
    "REQUESTS",
    "RESPONSES",
    "RequestHeader",
    "Struct",
    "UnsupportedVersionError",
    "VersionRange",
    "decode_request_header",
    "decode_response_header",
    "encode_request",
    "encode_request_header",
    "encode_response",
    "encode_response_parts",
    "errors",
    "request_header_version",
    "response_header_version",
    "uvarint_bytes",
]
__all__ += _generated.__all__   # every message class (a form type checkers follow)
