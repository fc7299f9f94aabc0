"""Support code for the generated codecs in ``messages/_generated.py``.

The generated functions do the per-field work in straight-line code; what is
shared lives here: varints, tagged-field sections, primitive arrays, the
``Struct``/``Message`` base classes and the schema metadata types.

Wire rules (Kafka ``protocol/types``): integers are big-endian; non-flexible
strings carry an int16 length (-1 = null), bytes/arrays an int32 length;
flexible ("compact") versions use an unsigned varint of length+1 (0 = null).
Flexible structs end with a tagged-field section: uvarint count, then
(uvarint tag, uvarint size, data) in ascending tag order.
"""

from __future__ import annotations

import builtins
import struct
from typing import Any, ClassVar, NamedTuple
from uuid import UUID

from .errors import DecodeError, EncodeError, UnsupportedVersionError

__all__ = [
    "FieldSpec",
    "Message",
    "PreEncoded",
    "Struct",
    "VersionRange",
    "ZERO_UUID",
]

ZERO_UUID = UUID(int=0)
_ZERO16 = bytes(16)
_BUFFER_TYPES = (bytes, bytearray, memoryview)

# One-byte uvarints, prebuilt: almost every compact length and count is < 128.
UV1: tuple[bytes, ...] = tuple(bytes((i,)) for i in range(128))

S_b = struct.Struct(">b")
S_h = struct.Struct(">h")
S_i = struct.Struct(">i")


class VersionRange(NamedTuple):
    """Inclusive version range; ``hi`` is 0x7FFF for open ranges ("3+"); empty when lo > hi."""

    lo: int
    hi: int

    def __contains__(self, version: object) -> bool:
        return isinstance(version, int) and self.lo <= version <= self.hi

    @property
    def empty(self) -> bool:
        return self.lo > self.hi


class FieldSpec(NamedTuple):
    """Schema metadata of one field, as exposed in each class's ``FIELDS``."""

    name: str  # Python attribute name (snake_case)
    kafka_name: str  # name in the schema (CamelCase)
    type: str  # schema type: "int32", "string", "[]int32", "[]TopicData", "records", ...
    versions: VersionRange
    nullable_versions: VersionRange
    tagged_versions: VersionRange
    tag: int | None
    default: Any  # Python default (lists and structs: an empty list / None marker, see struct)
    ignorable: bool
    struct: builtins.type | None  # element / value class for struct-typed fields
    compact_override: bool  # field-level "flexibleVersions": "none" (header ClientId)

    @property
    def is_array(self) -> bool:
        return self.type.startswith("[]")

    @property
    def element_type(self) -> str:
        return self.type[2:] if self.type.startswith("[]") else self.type


def read_uvarint(buf: Any, pos: int) -> tuple[int, int]:
    """Unsigned LEB128 varint at ``pos``: (value, next position). At most 5 bytes (int32 range)."""
    b = buf[pos]
    if b < 0x80:
        return b, pos + 1
    value = b & 0x7F
    shift = 7
    while True:
        pos += 1
        b = buf[pos]
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, pos + 1
        shift += 7
        if shift > 28:
            raise DecodeError(f"varint longer than 5 bytes at offset {pos}")


def uvarint_bytes(value: int) -> bytes:
    """Unsigned varint encoding of a non-negative int."""
    if value < 0x80:
        return UV1[value]
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def truncated(what: str, pos: int, wanted: int, blen: int) -> DecodeError:
    return DecodeError(f"{what}: needs {wanted} bytes at offset {pos}, {max(blen - pos, 0)} remaining")


def bad_count(what: str, pos: int, count: int, blen: int) -> DecodeError:
    return DecodeError(f"{what}: count {count} at offset {pos} exceeds the {max(blen - pos, 0)} bytes remaining")


def null_error(what: str, pos: int) -> DecodeError:
    return DecodeError(f"{what}: non-nullable field is null at offset {pos}")


def unpack_array(code: str, size: int, buf: Any, pos: int, n: int) -> list[Any]:
    """n big-endian primitives of struct ``code`` at ``pos`` (bounds checked by struct)."""
    if n == 0:
        return []
    return list(struct.unpack_from(f">{n}{code}", buf, pos))


def pack_array(code: str, values: Any) -> bytes:
    return struct.pack(f">{len(values)}{code}", *values)


def decode_uuid(raw: bytes) -> UUID:
    return ZERO_UUID if raw == _ZERO16 else UUID(bytes=raw)


def read_unknown_tags(buf: Any, pos: int, blen: int, what: str) -> tuple[list[tuple[int, bytes]] | None, int]:
    """A tag section with no known tags: keep every entry as (tag, raw bytes)."""
    n, pos = read_uvarint(buf, pos)
    if n > blen - pos:
        raise bad_count(what + " tagged fields", pos, n, blen)
    unknown: list[tuple[int, bytes]] | None = None
    for _ in range(n):
        tag, pos = read_uvarint(buf, pos)
        size, pos = read_uvarint(buf, pos)
        end = pos + size
        if end > blen:
            raise truncated(f"{what} tag {tag}", pos, size, blen)
        if unknown is None:
            unknown = []
        unknown.append((tag, bytes(buf[pos:end])))
        pos = end
    if unknown is not None and len(unknown) > 1:
        # kept ascending (stable: a repeated tag keeps its order), the order they are written in, so
        # that decode(encode(m)) == m; Kafka's reader takes any order, its writer only ascending
        unknown.sort(key=lambda t: t[0])
    return unknown, pos


def write_tags(out: list[Any], tags: list[tuple[int, bytes]]) -> None:
    """Write a tag section; ``tags`` must already be sorted by tag."""
    w = out.append
    w(uvarint_bytes(len(tags)))
    for tag, data in tags:
        w(uvarint_bytes(tag))
        w(uvarint_bytes(len(data)))
        w(data)


def merge_tags(known: list[tuple[int, bytes]], unknown: list[tuple[int, bytes]]) -> list[tuple[int, bytes]]:
    """Known and preserved-unknown tags, ascending by tag (Kafka rejects out-of-order tags)."""
    merged = known + list(unknown)
    merged.sort(key=lambda t: t[0])
    return merged


class PreEncoded:
    """An array element encoded ahead of time (``Message.pre_encode``), spliced into its array
    as it is: a cache of encoded elements answers without building or encoding them again.

    ``layout`` is the generated element encoder that made ``data``; the array's encoder refuses
    the element under any other layout (bytes of another version would corrupt the frame).
    ``name`` is the element's ``name`` field (None without one), for code that filters the
    elements of a response before it is encoded (the authorizer's Metadata topic filter)."""

    __slots__ = ("data", "layout", "name")

    def __init__(self, data: bytes, layout: Any, name: Any = None) -> None:
        self.data = data
        self.layout = layout
        self.name = name

    def __repr__(self) -> str:
        return f"PreEncoded(name={self.name!r}, <{len(self.data)} bytes of {self.layout.__name__}>)"


def wrong_layout(e: PreEncoded, wanted: str) -> EncodeError:
    return EncodeError(f"pre-encoded element {e.name!r} was encoded by {e.layout.__name__}, not {wanted} "
                       "(another version)")


def unsupported(cls_name: str, field: str) -> UnsupportedVersionError:
    return UnsupportedVersionError(f"{cls_name}.{field} has a non-default value this version cannot carry")


class Struct:
    """Base of every generated class: slots, equality by value, a readable repr."""

    __slots__: tuple[str, ...] = ()
    FIELDS: ClassVar[tuple[FieldSpec, ...]] = ()

    def _values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in self.__slots__)

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self._values() == other._values()

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        parts = []
        for name in self.__slots__:
            value = getattr(self, name)
            if name == "unknown_tagged_fields" and not value:
                continue
            if isinstance(value, memoryview):
                value = f"<{len(value)} bytes>"
            elif isinstance(value, bytes | bytearray) and len(value) > 64:
                value = f"<{len(value)} bytes>"
            elif not isinstance(value, _BUFFER_TYPES) and not isinstance(value, list | Struct | str) \
                    and value is not None and hasattr(value, "__len__") and not isinstance(value, tuple):
                value = f"<{type(value).__name__} {len(value)} bytes>"
            else:
                value = repr(value)
            parts.append(f"{name}={value}")
        return f"{type(self).__qualname__}({', '.join(parts)})"


class Message(Struct):
    """A top-level schema (request, response, header or data): versioned decode/encode."""

    __slots__ = ()
    API_KEY: ClassVar[int] = -1
    MIN_VERSION: ClassVar[int] = 0
    MAX_VERSION: ClassVar[int] = 0
    FLEXIBLE_MIN: ClassVar[int | None] = None
    _DEC: ClassVar[tuple[Any, ...]] = ()
    _ENC: ClassVar[tuple[Any, ...]] = ()
    # field -> element encoder per version, for the arrays that take PreEncoded elements
    _PRE: ClassVar[dict[str, tuple[Any, ...]]] = {}

    @classmethod
    def _check_version(cls, version: int) -> None:
        if not (cls.MIN_VERSION <= version <= cls.MAX_VERSION):
            raise UnsupportedVersionError(
                f"{cls.__name__} version {version} is outside {cls.MIN_VERSION}-{cls.MAX_VERSION}"
            )

    @classmethod
    def is_flexible(cls, version: int) -> bool:
        return cls.FLEXIBLE_MIN is not None and version >= cls.FLEXIBLE_MIN

    @classmethod
    def decode(cls, buf: Any, version: int, offset: int = 0) -> tuple[Any, int]:
        """Decode at ``offset``: (message, offset after it). ``bytes``/``records`` become memoryview slices."""
        if not (cls.MIN_VERSION <= version <= cls.MAX_VERSION):
            cls._check_version(version)
        if type(buf) is not memoryview:
            buf = memoryview(buf)
        if buf.format != "B" or buf.ndim != 1:
            buf = buf.cast("B")
        try:
            return cls._DEC[version](buf, offset, len(buf))
        except DecodeError as exc:
            raise DecodeError(f"{cls.__name__} v{version}: {exc}") from None
        except (struct.error, IndexError) as exc:
            raise DecodeError(f"{cls.__name__} v{version}: truncated ({exc})") from exc
        except (UnicodeDecodeError, ValueError) as exc:
            raise DecodeError(f"{cls.__name__} v{version}: {exc}") from exc

    def _encode_list(self, version: int) -> list[Any]:
        if not (self.MIN_VERSION <= version <= self.MAX_VERSION):
            self._check_version(version)
        out: list[Any] = []
        try:
            self._ENC[version](self, out)
        except UnsupportedVersionError as exc:
            raise UnsupportedVersionError(f"{type(self).__name__} v{version}: {exc}") from None
        except (struct.error, AttributeError, TypeError, UnicodeEncodeError, OverflowError) as exc:
            raise EncodeError(f"{type(self).__name__} v{version}: {exc}") from exc
        return out

    @classmethod
    def pre_layout(cls, field: str, version: int) -> Any:
        """The element layout (its encoder) of array ``field`` at ``version``, when the field takes
        PreEncoded elements there, else None: versions of one layout can share an encoded element."""
        encs = cls._PRE.get(field)
        return encs[version] if encs is not None and 0 <= version < len(encs) else None

    @classmethod
    def pre_encode(cls, field: str, version: int, element: Any) -> PreEncoded:
        """``element`` of the array ``field`` encoded as ``version`` lays it out, to be put in that
        array (of a message encoded at a version of the same element layout) in its place."""
        if not (cls.MIN_VERSION <= version <= cls.MAX_VERSION):
            cls._check_version(version)
        encs = cls._PRE.get(field)
        enc = encs[version] if encs is not None else None
        if enc is None:
            raise ValueError(f"{cls.__name__}.{field} takes no pre-encoded elements at v{version}")
        out: list[Any] = []
        try:
            enc(element, out)
        except UnsupportedVersionError as exc:
            raise UnsupportedVersionError(f"{cls.__name__}.{field} v{version}: {exc}") from None
        except (struct.error, AttributeError, TypeError, UnicodeEncodeError, OverflowError) as exc:
            raise EncodeError(f"{cls.__name__}.{field} v{version}: {exc}") from exc
        return PreEncoded(b"".join(out), enc, getattr(element, "name", None))

    def encode(self, version: int) -> bytes:
        """The encoded body. A ``records`` field must hold a bytes-like object (see encode_parts)."""
        out = self._encode_list(version)
        try:
            return b"".join(out)
        except TypeError:
            raise EncodeError(
                f"{type(self).__name__}: a records field holds a non-bytes object; use encode_parts()"
            ) from None

    def encode_parts(self, version: int) -> list[Any]:
        """The encoded body as few parts as possible: bytes, plus any non-bytes ``records`` objects
        (e.g. file slices) as parts of their own, right after their length prefix."""
        return join_parts(self._encode_list(version))


def join_parts(out: list[Any]) -> list[Any]:
    """Join adjacent bytes-like pieces; keep other objects (file slices) as separate parts."""
    try:
        return [b"".join(out)]
    except TypeError:
        pass
    parts: list[Any] = []
    pending: list[Any] = []
    for piece in out:
        if isinstance(piece, _BUFFER_TYPES):
            pending.append(piece)
        else:
            if pending:
                parts.append(b"".join(pending))
                pending = []
            parts.append(piece)
    if pending:
        parts.append(b"".join(pending))
    return parts
