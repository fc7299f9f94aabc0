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
KIP-848 records (key versions 3-8) are described below; other keys (transaction
records) are skipped on load.

The partition of a group is ``abs(java String.hashCode(group_id)) % n``
(Kafka's ``Utils.abs``: MIN_VALUE maps to 0), so an operator sees the same
``__consumer_offsets-N`` as with Kafka.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar
from uuid import UUID

from kafka_protocol import uvarint_bytes

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
    """("offset", group, topic, partition), ("group", group, None, -1), ("consumer", group, member id or
    None, key version) for the KIP-848 keys 3-8, or ("other", "", None, ver)."""
    r = _Reader(buf)
    ver = r.i16()
    if ver in (0, 1):
        group, topic = r.string() or "", r.string() or ""
        return "offset", group, topic, r.i32()
    if ver == 2:
        return "group", r.string() or "", None, -1
    if ver in CG_GROUP_KEYS or ver in CG_MEMBER_KEYS:
        group = r.string() or ""
        return "consumer", group, (r.string() or "") if ver in CG_MEMBER_KEYS else None, ver
    return "other", "", None, ver


# -- KIP-848 consumer group records ------------------------------------------------
#
# Kafka's group-coordinator record schemas: keys are non-flexible (int16
# version, int16-length strings), values are flexible from v0 (compact
# strings/arrays: uvarint length+1, 0 = null; a trailing tagged-field count,
# we write 0 and skip any we read).  Key versions 3-8 never collide with the
# classic ones (0-1 offsets, 2 group metadata).
#
# - 3 ConsumerGroupMetadata(GroupId) -> Epoch i32
# - 4 ConsumerGroupPartitionMetadata(GroupId) -> Topics[TopicId uuid, TopicName,
#   NumPartitions i32, PartitionMetadata[Partition i32, Racks[string]]]
# - 5 ConsumerGroupMemberMetadata(GroupId, MemberId) -> InstanceId?, RackId?,
#   ClientId, ClientHost, SubscribedTopicNames[string], SubscribedTopicRegex?,
#   ServerAssignor?, RebalanceTimeoutMs i32
# - 6 ConsumerGroupTargetAssignmentMetadata(GroupId) -> AssignmentEpoch i32
# - 7 ConsumerGroupTargetAssignmentMember(GroupId, MemberId) -> TopicPartitions[TopicId, Partitions[i32]]
# - 8 ConsumerGroupCurrentMemberAssignment(GroupId, MemberId) -> MemberEpoch i32,
#   PreviousMemberEpoch i32, State i8, AssignedPartitions[..], PartitionsPendingRevocation[..]
#
# Every value is written at version 0.

CG_METADATA_KEY = 3
CG_PARTITION_METADATA_KEY = 4
CG_MEMBER_METADATA_KEY = 5
CG_TARGET_METADATA_KEY = 6
CG_TARGET_MEMBER_KEY = 7
CG_CURRENT_MEMBER_KEY = 8
CG_GROUP_KEYS = (CG_METADATA_KEY, CG_PARTITION_METADATA_KEY, CG_TARGET_METADATA_KEY)
CG_MEMBER_KEYS = (CG_MEMBER_METADATA_KEY, CG_TARGET_MEMBER_KEY, CG_CURRENT_MEMBER_KEY)

# Kafka's MemberState codes
MEMBER_STATE_STABLE = 1
MEMBER_STATE_UNREVOKED = 2
MEMBER_STATE_UNRELEASED = 3
MEMBER_STATE_UNKNOWN = 127

_b = struct.Struct(">b")

TopicPartitions = dict[UUID, list[int]]
T = TypeVar("T")


def _cstr(s: str | None) -> bytes:
    if s is None:
        return b"\x00"
    b = s.encode()
    return uvarint_bytes(len(b) + 1) + b


def _carray(items: list[bytes]) -> bytes:
    return uvarint_bytes(len(items) + 1) + b"".join(items)


_NO_TAGS = b"\x00"


def _tps(a: TopicPartitions) -> bytes:
    return _carray([t.bytes + _carray([_i.pack(p) for p in sorted(ps)]) + _NO_TAGS
                    for t, ps in sorted(a.items())])


class _FlexReader(_Reader):
    __slots__ = ()

    def cstr(self, nullable: bool = False) -> str | None:
        s = self.compact_string()
        if s is None and not nullable:
            raise RecordFormatError(f"null string at {self.pos}")
        return s

    def count(self) -> int:
        n = self.uvarint() - 1
        if n > len(self.buf) - self.pos:    # every element takes at least one byte
            raise RecordFormatError(f"array of {n} at {self.pos}, {len(self.buf) - self.pos} bytes remain")
        return n

    def uuid(self) -> UUID:
        return UUID(bytes=bytes(self._take(16, "uuid")))

    def i8(self) -> int:
        return int(_b.unpack(self._take(1, "int8"))[0])

    def tags(self) -> None:
        for _ in range(self.uvarint()):
            self.uvarint()
            self._take(self.uvarint(), "tagged field")

    def tps(self) -> TopicPartitions:
        out: TopicPartitions = {}
        for _ in range(max(self.count(), 0)):
            t = self.uuid()
            out[t] = [self.i32() for _ in range(max(self.count(), 0))]
            self.tags()
        return out

    def value_version(self, what: str) -> int:
        ver = self.i16()
        if ver != 0:
            raise RecordFormatError(f"unsupported {what} version {ver}")
        return ver


def _flex_value(buf: bytes, what: str, read: Callable[[_FlexReader], T]) -> T:
    """A flexible (v0, tagged fields) record value whose fields ``read`` takes."""
    r = _FlexReader(buf)
    r.value_version(what)
    value = read(r)
    r.tags()
    return value


def cg_key(key_version: int, group: str, member_id: str | None = None) -> bytes:
    """Key of a KIP-848 record; member keys (5, 7, 8) carry the member id."""
    out = _h.pack(key_version) + _str(group)
    if key_version in CG_MEMBER_KEYS:
        out += _str(member_id or "")
    return out


def decode_cg_key(buf: bytes) -> tuple[int, str, str | None]:
    """(key version, group, member id or None) of a KIP-848 key."""
    r = _Reader(buf)
    ver = r.i16()
    if ver not in CG_GROUP_KEYS and ver not in CG_MEMBER_KEYS:
        raise RecordFormatError(f"not a consumer group key version: {ver}")
    group = r.string() or ""
    return ver, group, (r.string() or "") if ver in CG_MEMBER_KEYS else None


def cg_epoch_value(epoch: int) -> bytes:
    """ConsumerGroupMetadataValue and ConsumerGroupTargetAssignmentMetadataValue (same shape)."""
    return _h.pack(0) + _i.pack(epoch) + _NO_TAGS


def decode_cg_epoch_value(buf: bytes) -> int:
    return _flex_value(buf, "consumer group epoch value", _FlexReader.i32)


@dataclass(frozen=True, slots=True)
class CgTopicMetadata:
    topic_id: UUID
    name: str
    partitions: int


def cg_partition_metadata_value(topics: list[CgTopicMetadata]) -> bytes:
    return _h.pack(0) + _carray([t.topic_id.bytes + _cstr(t.name) + _i.pack(t.partitions) + _carray([]) + _NO_TAGS
                                 for t in topics]) + _NO_TAGS


def decode_cg_partition_metadata_value(buf: bytes) -> list[CgTopicMetadata]:
    r = _FlexReader(buf)
    r.value_version("ConsumerGroupPartitionMetadataValue")
    out = []
    for _ in range(max(r.count(), 0)):
        tid, name, n = r.uuid(), r.cstr() or "", r.i32()
        for _ in range(max(r.count(), 0)):     # per-partition racks: not used by our assignors
            r.i32()
            for _ in range(max(r.count(), 0)):
                r.cstr()
            r.tags()
        r.tags()
        out.append(CgTopicMetadata(tid, name, n))
    r.tags()
    return out


@dataclass(slots=True)
class CgMemberMetadata:
    instance_id: str | None = None
    rack_id: str | None = None
    client_id: str = ""
    client_host: str = ""
    subscribed_topic_names: list[str] = field(default_factory=list)
    subscribed_topic_regex: str | None = None
    server_assignor: str | None = None
    rebalance_timeout_ms: int = -1


def cg_member_metadata_value(m: CgMemberMetadata) -> bytes:
    return b"".join([_h.pack(0), _cstr(m.instance_id), _cstr(m.rack_id), _cstr(m.client_id), _cstr(m.client_host),
                     _carray([_cstr(n) for n in m.subscribed_topic_names]), _cstr(m.subscribed_topic_regex),
                     _cstr(m.server_assignor), _i.pack(m.rebalance_timeout_ms), _NO_TAGS])


def decode_cg_member_metadata_value(buf: bytes) -> CgMemberMetadata:
    r = _FlexReader(buf)
    r.value_version("ConsumerGroupMemberMetadataValue")
    m = CgMemberMetadata(r.cstr(True), r.cstr(True), r.cstr() or "", r.cstr() or "")
    m.subscribed_topic_names = [r.cstr() or "" for _ in range(max(r.count(), 0))]
    m.subscribed_topic_regex = r.cstr(True)
    m.server_assignor = r.cstr(True)
    m.rebalance_timeout_ms = r.i32()
    r.tags()
    return m


def cg_target_member_value(a: TopicPartitions) -> bytes:
    return _h.pack(0) + _tps(a) + _NO_TAGS


def decode_cg_target_member_value(buf: bytes) -> TopicPartitions:
    return _flex_value(buf, "ConsumerGroupTargetAssignmentMemberValue", _FlexReader.tps)


@dataclass(slots=True)
class CgCurrentAssignment:
    member_epoch: int
    previous_member_epoch: int
    state: int
    assigned: TopicPartitions = field(default_factory=dict)
    pending_revocation: TopicPartitions = field(default_factory=dict)


def cg_current_assignment_value(c: CgCurrentAssignment) -> bytes:
    return (_h.pack(0) + _i.pack(c.member_epoch) + _i.pack(c.previous_member_epoch) + _b.pack(c.state)
            + _tps(c.assigned) + _tps(c.pending_revocation) + _NO_TAGS)


def decode_cg_current_assignment_value(buf: bytes) -> CgCurrentAssignment:
    return _flex_value(buf, "ConsumerGroupCurrentMemberAssignmentValue",
                       lambda r: CgCurrentAssignment(r.i32(), r.i32(), r.i8(), r.tps(), r.tps()))
