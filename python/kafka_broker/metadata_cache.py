"""Metadata topic entries, encoded once and spliced into every Metadata response (issue 16).

A Metadata request for all topics used to build a ``MetadataResponsePartition`` per partition
and encode them all, on every request: ~35 ms of Python for 10,000 partitions, where Apache
Kafka answers in ~8 ms.  What one topic's entry encodes changes only when the topic does, so
each entry is encoded once per (entry layout, topic authorized-operations value) and kept as a
``kafka_protocol.PreEncoded`` (versions of one layout share it: v12 and v13, v10 and v11...), which the generated MetadataResponse encoder splices into the
topics array as it is.  A request then costs a lookup per topic listed.

Invalidation is by stamp, not by hooks: the view that builds an entry hands over the object it
builds it from (``src``, compared by identity: a topic deleted and created again is another
object) and a stamp of everything else the entry encodes; an entry whose ``src`` or stamp
differs is thrown away and built again.  The views pick stamps that are O(1) to read:

- a single node (``broker._LocalView``): the number of partitions (they only grow) and the
  number of offline log dirs (a dir never comes back until a restart).  Everything else an entry
  holds is fixed for the topic object's life on a single node (name, id, leader = this node,
  replicas = ISR = [this node], leader epoch 0);
- a cluster member (``cluster.apis.MetadataView``): the ``TopicMeta.version`` that
  ``MetadataCache.update`` bumps whenever an UpdateMetadata changes the topic's id or any of its
  partitions' leader, epoch, ISR, replicas or offline replicas.

Entries of topics that are gone are dropped on the next all-topics request.

A cold entry (a topic created or changed, or a version whose layout was not asked before: every
entry after a restart) is encoded by ``encode_topic``, an encoder of this one element written
for it, not by the generic generated one: from a ``TopicParts`` (plain tuples, no message
objects; ``broker._LocalView`` builds them) or from a ``MetadataResponseTopic`` (the cluster's
view builds those).  Per partition it packs (error, index, leader[, epoch]) in one struct call
and reuses the encoded replicas/ISR/offline arrays while they are the same list objects as the
partition before (on a single node they are shared by every healthy partition): the partitions
array is written by ``kafka_core.encode_partitions`` (a C loop, Cython), whose Python twin
``encode_partitions_py`` serves with KAFKA_CORE_NO_EXTENSIONS and is its oracle in the tests.
The generic
encoder spent ~3.5 us of Python per partition (building a MetadataResponsePartition and encoding
it field by field): 38 ms for the first request at a new version with 10,000 partitions, 2.7x
Apache Kafka's (docs/perf/2026-12-07-metadata.txt).  ``TOPIC_LAYOUT`` and ``PARTITION_LAYOUT``
are the layout it writes; tests/broker/test_metadata_cache.py checks them against
MetadataResponse.json and its output byte for byte against the generated codec at v0..v13.
"""

from __future__ import annotations

import struct
import uuid
from collections.abc import Callable, Collection, Sequence
from typing import Any, NamedTuple

from kafka_protocol import EncodeError, PreEncoded, UnsupportedVersionError, uvarint_bytes
from kafka_protocol.messages import MetadataResponse

import kafka_core

_TOPICS = "topics"
_LAYOUTS = tuple(MetadataResponse.pre_layout(_TOPICS, v) for v in range(MetadataResponse.MAX_VERSION + 1))
NO_OPS = -2147483648     # TopicAuthorizedOperations' default: not asked for

# What encode_topic writes, in order: (field, type, first version) as MetadataResponse.json has
# them (every field here runs to the last version); a topic entry then ends with its tagged fields
# from FLEXIBLE_FROM, as does each partition entry.
TOPIC_LAYOUT = (("ErrorCode", "int16", 0), ("Name", "string", 0), ("TopicId", "uuid", 10),
                ("IsInternal", "bool", 1), ("Partitions", "[]MetadataResponsePartition", 0),
                ("TopicAuthorizedOperations", "int32", 8))
PARTITION_LAYOUT = (("ErrorCode", "int16", 0), ("PartitionIndex", "int32", 0), ("LeaderId", "int32", 0),
                    ("LeaderEpoch", "int32", 7), ("ReplicaNodes", "[]int32", 0), ("IsrNodes", "[]int32", 0),
                    ("OfflineReplicas", "[]int32", 5))
FLEXIBLE_FROM = 9
NAME_NULLABLE_FROM = 12
_T_FROM = {f: v for f, _, v in TOPIC_LAYOUT}       # the versions encode_topic tests, from the tables
_P_FROM = {f: v for f, _, v in PARTITION_LAYOUT}
_ID_FROM, _INTERNAL_FROM, _OPS_FROM = _T_FROM["TopicId"], _T_FROM["IsInternal"], _T_FROM["TopicAuthorizedOperations"]
_EPOCH_FROM, _OFFLINE_FROM = _P_FROM["LeaderEpoch"], _P_FROM["OfflineReplicas"]
_H, _I, _HII, _HIII = struct.Struct(">h"), struct.Struct(">i"), struct.Struct(">hii"), struct.Struct(">hiii")
_INT32S = [struct.Struct(f">{n}i") for n in range(16)]

Partition = tuple[int, int, int, int, Sequence[int], Sequence[int], Sequence[int]]
"""(error code, index, leader, leader epoch, replicas, ISR, offline replicas)"""


class TopicParts(NamedTuple):
    """A MetadataResponseTopic's values, for ``encode_topic``: no message objects to build."""

    error_code: int
    name: str | None
    topic_id: uuid.UUID
    is_internal: bool
    partitions: list[Partition]
    topic_authorized_operations: int = NO_OPS


def _int32s(xs: Sequence[int], flex: bool) -> bytes:
    n = len(xs)
    head = uvarint_bytes(n + 1) if flex else _I.pack(n)
    if not n:
        return head
    return head + (_INT32S[n] if n < 16 else struct.Struct(f">{n}i")).pack(*xs)


def encode_topic(version: int, t: TopicParts) -> bytes:
    """The MetadataResponseTopic ``t`` encoded as MetadataResponse ``version`` lays it out (what
    ``MetadataResponse.pre_encode("topics", version, ...)`` makes of the same values)."""
    flex = version >= FLEXIBLE_FROM
    if version < _OPS_FROM and t.topic_authorized_operations != NO_OPS:
        raise UnsupportedVersionError(f"MetadataResponseTopic.topic_authorized_operations v{version}: "
                                      "has a non-default value this version cannot carry")
    out = [_H.pack(t.error_code)]
    if t.name is None:
        if version < NAME_NULLABLE_FROM:
            raise EncodeError(f"MetadataResponseTopic.name v{version}: null, and not nullable before "
                              f"v{NAME_NULLABLE_FROM}")
        out.append(b"\x00")                       # flexible there: a compact null string
    else:
        b = t.name.encode()
        out += (uvarint_bytes(len(b) + 1) if flex else _H.pack(len(b)), b)
    if version >= _ID_FROM:
        out.append(t.topic_id.bytes)
    if version >= _INTERNAL_FROM:
        out.append(b"\x01" if t.is_internal else b"\x00")
    out.append(_encode_partitions(t.partitions, flex, version >= _EPOCH_FROM, version >= _OFFLINE_FROM))
    tag = b"\x00" if flex else b""
    if version >= _OPS_FROM:
        out.append(_I.pack(t.topic_authorized_operations))
    out.append(tag)
    return b"".join(out)


def encode_partitions_py(parts: list[Partition], flex: bool, with_epoch: bool, with_offline: bool) -> bytes:
    """The Partitions array of a topic entry (its count, then each partition): the Python twin of
    ``kafka_core.encode_partitions`` (used with KAFKA_CORE_NO_EXTENSIONS, and its oracle)."""
    tag = b"\x00" if flex else b""
    out = [uvarint_bytes(len(parts) + 1) if flex else _I.pack(len(parts))]
    last_r: object = None
    last_i: object = None
    last_o: object = None
    tail = b""
    w = out.append
    head = _HIII.pack if with_epoch else _HII.pack
    for err, idx, leader, epoch, reps, isr, off in parts:
        if reps is not last_r or isr is not last_i or off is not last_o:
            last_r, last_i, last_o = reps, isr, off
            tail = (_int32s(reps, flex) + _int32s(isr, flex) + (_int32s(off, flex) if with_offline else b"")
                    + tag)
        w(head(err, idx, leader, epoch) if with_epoch else head(err, idx, leader))
        w(tail)
    return b"".join(out)


_encode_partitions: Callable[[list[Partition], bool, bool, bool], bytes] = (
    encode_partitions_py if kafka_core.NO_EXTENSIONS else kafka_core.encode_partitions)
METADATA_PATH = "python" if kafka_core.NO_EXTENSIONS else "c"   # which one (as server.SEND_PATH)


def parts_of(entry: Any) -> TopicParts | None:
    """A MetadataResponseTopic as ``TopicParts``; None if it carries unknown tagged fields (left
    to the generic encoder)."""
    if entry.unknown_tagged_fields:
        return None
    ps = []
    for p in entry.partitions:
        if p.unknown_tagged_fields:
            return None
        ps.append((p.error_code, p.partition_index, p.leader_id, p.leader_epoch, p.replica_nodes, p.isr_nodes,
                   p.offline_replicas))
    return TopicParts(entry.error_code, entry.name, entry.topic_id, entry.is_internal, ps,
                      entry.topic_authorized_operations)


def pre_encode(version: int, entry: Any) -> PreEncoded:
    """``entry`` (``TopicParts`` or a MetadataResponseTopic) as the PreEncoded element of the
    topics array at ``version``."""
    t = entry if isinstance(entry, TopicParts) else parts_of(entry)
    if t is None:
        return MetadataResponse.pre_encode(_TOPICS, version, entry)
    if not (MetadataResponse.MIN_VERSION <= version <= MetadataResponse.MAX_VERSION):
        raise UnsupportedVersionError(f"MetadataResponse v{version}")
    return PreEncoded(encode_topic(version, t), _LAYOUTS[version], t.name)


class TopicEntries:
    """Encoded ``MetadataResponseTopic`` entries, by topic name, then (entry layout, ops)."""

    __slots__ = ("_by_name", "_brokers")

    def __init__(self) -> None:
        # name -> (src, stamp, {(layout, ops): entry})
        self._by_name: dict[str, tuple[object, object, dict[tuple[object, int], PreEncoded]]] = {}
        self._brokers: dict[str, tuple[object, list[Any]]] = {}    # listener -> (key, brokers)

    def get(self, name: str, src: object, stamp: object, version: int, ops: int,
            build: Callable[[Any], Any], arg: Any) -> PreEncoded:
        """The entry of topic ``name`` at ``version``; ``build(arg)`` makes the (unencoded) entry,
        a ``TopicParts`` or a MetadataResponseTopic, when there is none for this ``src`` and
        ``stamp``."""
        c = self._by_name.get(name)
        if c is None or c[0] is not src or c[1] != stamp:
            c = self._by_name[name] = (src, stamp, {})
        key = (_LAYOUTS[version], ops)
        e = c[2].get(key)
        if e is None:
            e = c[2][key] = pre_encode(version, build(arg))
        return e

    def prune(self, live: Collection[str]) -> None:
        """Forget the entries of topics not in ``live`` once there are more entries than topics
        (a topic deleted; a lookup never serves a deleted topic's entry, this only frees it)."""
        if len(self._by_name) > len(live):
            for n in [n for n in self._by_name if n not in live]:
                del self._by_name[n]

    def brokers(self, listener: str, key: object, build: Callable[[], list[Any]]) -> list[Any]:
        """The brokers list of ``listener``, built again only when ``key`` changes (==)."""
        b = self._brokers.get(listener)
        if b is None or b[0] != key:
            b = self._brokers[listener] = (key, build())
        return b[1]

    def __len__(self) -> int:
        return len(self._by_name)
