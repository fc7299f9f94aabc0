"""Records of the internal topic ``__consumer_offsets``, in Apache Kafka's formats.

Every record key and value starts with an int16 schema version; strings are
int16-length UTF-8 (-1 = null), bytes int32-length (-1 = null), arrays an
int32 count (Kafka's ``group-coordinator/src/main/resources/common/message``):

- OffsetCommitKey, key versions 0-1: group, topic, partition int32.
- OffsetCommitValue: v0 offset i64, metadata, commit_ts i64; v1 adds
  expire_ts i64 (only written when a v2-4 commit gave a retention time);
  v2 = v0; v3 offset, leader_epoch i32, metadata, commit_ts; v4 is v3 in
  flexible (compact, tagged) encoding.  We write v3, or v1 with an expiry.
- GroupMetadataKey, key version 2: group.
- GroupMetadataValue v0-3: protocol_type, generation i32, protocol (nullable),
  leader (nullable), current_state_timestamp i64 (v2+), members[] of
  member_id, group_instance_id (nullable, v3+), client_id, client_host,
  rebalance_timeout i32 (v1+), session_timeout i32, subscription bytes,
  assignment bytes.  We write v3.

A record with a null value is a tombstone: the key's previous value is gone.
Keys of other versions (KIP-848 and transaction records) are skipped on load.

The partition of a group is ``abs(java String.hashCode(group_id)) % n``
(Kafka's ``Utils.abs``: MIN_VALUE maps to 0), so an operator sees the same
``__consumer_offsets-N`` as with Kafka.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

OFFSET_KEY_VERSION = 1
GROUP_KEY_VERSION = 2
OFFSET_VALUE_VERSION = 3
OFFSET_VALUE_VERSION_EXPIRY = 1
GROUP_VALUE_VERSION = 3

_h = struct.Struct(">h")
_i = struct.Struct(">i")
_q = struct.Struct(">q")


class RecordFormatError(ValueError):
    """A __consumer_offsets record that cannot be decoded."""


def java_hash(s: str) -> int:
    """Java ``String.hashCode``: over UTF-16 code units, 32-bit wrapping."""
    h = 0
    data = s.encode("utf-16-be")
    for i in range(0, len(data), 2):
        h = (31 * h + ((data[i] << 8) | data[i + 1])) & 0xFFFFFFFF
    return h - (1 << 32) if h & 0x80000000 else h


def partition_for(group_id: str, num_partitions: int) -> int:
    h = java_hash(group_id)
    return (0 if h == -(1 << 31) else abs(h)) % num_partitions


# -- primitive writers / readers ------------------------------------------------

def _str(s: str | None) -> bytes:
    if s is None:
        return _h.pack(-1)
    b = s.encode()
    return _h.pack(len(b)) + b


def _bytes(b: bytes | None) -> bytes:
    if b is None:
        return _i.pack(-1)
    return _i.pack(len(b)) + bytes(b)


class _Reader:
    __slots__ = ("buf", "pos")

    def __init__(self, buf: bytes) -> None:
        self.buf = buf
        self.pos = 0

    def _take(self, n: int, what: str) -> bytes:
        if n < 0 or self.pos + n > len(self.buf):
            raise RecordFormatError(f"{what}: wanted {n} bytes at {self.pos}, "
                                    f"{len(self.buf) - self.pos} remain")
        out = self.buf[self.pos:self.pos + n]
        self.pos += n
        return out

    def i16(self) -> int:
        return int(_h.unpack(self._take(2, "int16"))[0])

    def i32(self) -> int:
        return int(_i.unpack(self._take(4, "int32"))[0])

    def i64(self) -> int:
        return int(_q.unpack(self._take(8, "int64"))[0])

    def string(self, nullable: bool = False) -> str | None:
        n = self.i16()
        if n < 0:
            if nullable:
                return None
            raise RecordFormatError(f"null string at {self.pos}")
        return self._take(n, "string").decode()

    def blob(self) -> bytes:
        n = self.i32()
        return b"" if n < 0 else bytes(self._take(n, "bytes"))

    def uvarint(self) -> int:
        v = shift = 0
        while True:
            b = self._take(1, "varint")[0]
            v |= (b & 0x7F) << shift
            if not b & 0x80:
                return v
            shift += 7
            if shift > 63:
                raise RecordFormatError("varint too long")

    def compact_string(self) -> str | None:
        n = self.uvarint()
        return None if n == 0 else self._take(n - 1, "string").decode()


# -- offsets -------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class OffsetValue:
    offset: int
    leader_epoch: int = -1
    metadata: str = ""
    commit_timestamp: int = -1
    expire_timestamp: int = -1


def offset_key(group: str, topic: str, partition: int) -> bytes:
    return _h.pack(OFFSET_KEY_VERSION) + _str(group) + _str(topic) + _i.pack(partition)


def offset_value(v: OffsetValue) -> bytes:
    if v.expire_timestamp >= 0:
        return (_h.pack(OFFSET_VALUE_VERSION_EXPIRY) + _q.pack(v.offset) + _str(v.metadata)
                + _q.pack(v.commit_timestamp) + _q.pack(v.expire_timestamp))
    return (_h.pack(OFFSET_VALUE_VERSION) + _q.pack(v.offset) + _i.pack(v.leader_epoch)
            + _str(v.metadata) + _q.pack(v.commit_timestamp))


def decode_offset_value(buf: bytes) -> OffsetValue:
    r = _Reader(buf)
    ver = r.i16()
    if ver in (0, 2):
        return OffsetValue(r.i64(), -1, r.string() or "", r.i64())
    if ver == 1:
        return OffsetValue(r.i64(), -1, r.string() or "", r.i64(), r.i64())
    if ver == 3:
        return OffsetValue(r.i64(), r.i32(), r.string() or "", r.i64())
    if ver == 4:   # flexible: compact metadata; trailing tagged fields ignored
        off, epoch = r.i64(), r.i32()
        return OffsetValue(off, epoch, r.compact_string() or "", r.i64())
    raise RecordFormatError(f"unknown OffsetCommitValue version {ver}")


# -- group metadata ------------------------------------------------------------

@dataclass(slots=True)
class MemberRecord:
    member_id: str
    group_instance_id: str | None
    client_id: str
    client_host: str
    rebalance_timeout_ms: int
    session_timeout_ms: int
    subscription: bytes
    assignment: bytes


@dataclass(slots=True)
class GroupRecord:
    protocol_type: str
    generation: int
    protocol: str | None
    leader: str | None
    current_state_timestamp: int
    members: list[MemberRecord] = field(default_factory=list)


def group_key(group: str) -> bytes:
    return _h.pack(GROUP_KEY_VERSION) + _str(group)


def group_value(g: GroupRecord) -> bytes:
    out = [_h.pack(GROUP_VALUE_VERSION), _str(g.protocol_type), _i.pack(g.generation), _str(g.protocol),
           _str(g.leader), _q.pack(g.current_state_timestamp), _i.pack(len(g.members))]
    for m in g.members:
        out += [_str(m.member_id), _str(m.group_instance_id), _str(m.client_id), _str(m.client_host),
                _i.pack(m.rebalance_timeout_ms), _i.pack(m.session_timeout_ms), _bytes(m.subscription),
                _bytes(m.assignment)]
    return b"".join(out)


def decode_group_value(buf: bytes) -> GroupRecord:
    r = _Reader(buf)
    ver = r.i16()
    if not 0 <= ver <= 3:
        raise RecordFormatError(f"unsupported GroupMetadataValue version {ver}")
    g = GroupRecord(r.string() or "", r.i32(), r.string(True), r.string(True),
                    r.i64() if ver >= 2 else -1)
    n = r.i32()
    if n < 0 or n > len(buf):
        raise RecordFormatError(f"bad member count {n}")
    for _ in range(n):
        member_id = r.string() or ""
        instance = r.string(True) if ver >= 3 else None
        client_id, client_host = r.string() or "", r.string() or ""
        rebalance = r.i32() if ver >= 1 else -1
        session = r.i32()
        if rebalance < 0:
            rebalance = session
        g.members.append(MemberRecord(member_id, instance, client_id, client_host, rebalance, session,
                                      r.blob(), r.blob()))
    return g


# -- keys ----------------------------------------------------------------------

def decode_key(buf: bytes) -> tuple[str, str, str | None, int]:
    """("offset", group, topic, partition) or ("group", group, None, -1), or ("other", "", None, ver)."""
    r = _Reader(buf)
    ver = r.i16()
    if ver in (0, 1):
        group, topic = r.string() or "", r.string() or ""
        return "offset", group, topic, r.i32()
    if ver == 2:
        return "group", r.string() or "", None, -1
    return "other", "", None, ver
