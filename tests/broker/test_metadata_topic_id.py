"""Metadata v10-v13 naming topics by id (issue 16), with requests framed by hand (not by the
generated request encoder) and the answers decoded by the generated response decoder at the
version asked, which refuses a null in a non-nullable position.

Apache Kafka's answers (KafkaApis.handleTopicMetadataRequest, MetadataRequest.getErrorResponse):
- v12+: an unknown id gets UNKNOWN_TOPIC_ID with a null name and the id echoed (Name is nullable
  from v12: "Null for non-existing topics queried by ID"); a known id gets the topic's metadata
  under its name.
- v10-11: topic ids are not honoured (the request schema has the field, the broker refuses it):
  a topic with a null name or a non-zero id makes the whole request INVALID_REQUEST, every topic
  asked listed with that error, its id echoed and a null name sent as "" (Name is not nullable
  there).  This broker used to try to encode the null name and closed the connection."""

from __future__ import annotations

import struct
import uuid
from typing import Any

from kafka_protocol import uvarint_bytes as _uvarint
from kafka_protocol.errors import ErrorCode as E

from .conftest import RawClient, create_topic

ZERO = uuid.UUID(int=0)


def _metadata_frame(version: int, corr: int, topics: list[tuple[uuid.UUID, str | None]]) -> bytes:
    """A Metadata request v10-v13 (flexible: request header v2), byte by byte from the schema:
    Topics (compact array of TopicId uuid, Name compact nullable string, tags),
    AllowAutoTopicCreation, IncludeClusterAuthorizedOperations (v8-10 only),
    IncludeTopicAuthorizedOperations, tags."""
    assert 10 <= version <= 13
    client_id = b"topic-id-test"
    head = struct.pack(">hhih", 3, version, corr, len(client_id)) + client_id + b"\x00"
    body = bytearray(_uvarint(len(topics) + 1))
    for tid, name in topics:
        body += tid.bytes
        body += b"\x00" if name is None else _uvarint(len(name.encode()) + 1) + name.encode()
        body += b"\x00"                       # the topic's tagged fields
    body += b"\x00"                           # AllowAutoTopicCreation false
    if version == 10:
        body += b"\x00"                       # IncludeClusterAuthorizedOperations
    body += b"\x00"                           # IncludeTopicAuthorizedOperations
    body += b"\x00"                           # tagged fields
    frame = head + bytes(body)
    return struct.pack(">i", len(frame)) + frame


def _ask(c: RawClient, version: int, topics: list[tuple[uuid.UUID, str | None]]) -> Any:
    corr = 1000 + version
    c.send_raw(_metadata_frame(version, corr, topics))
    c.pending[corr] = (3, version)
    return c.recv(corr)       # decoded at `version`; trailing bytes are an assertion error


def _topic_id(c: RawClient, name: str) -> uuid.UUID:
    resp = _ask(c, 12, [(ZERO, name)])
    (t,) = resp.topics
    assert t.error_code == 0 and t.name == name and t.topic_id != ZERO, t
    return t.topic_id


def test_unknown_and_known_ids_at_v12_and_v13(client: RawClient) -> None:
    name = f"by-id-{uuid.uuid4().hex[:8]}"
    create_topic(client, name, partitions=3)
    other = f"by-id-{uuid.uuid4().hex[:8]}"
    create_topic(client, other, partitions=1)
    tid, other_id = _topic_id(client, name), _topic_id(client, other)
    unknown = uuid.uuid4()
    for v in (12, 13):
        resp = _ask(client, v, [(unknown, None), (tid, None), (other_id, None)])
        by_id = {t.topic_id: t for t in resp.topics}
        assert sorted(by_id, key=str) == sorted([unknown, tid, other_id], key=str), resp.topics
        u = by_id[unknown]
        assert (u.error_code, u.name, u.partitions) == (E.UNKNOWN_TOPIC_ID, None, []), u
        k = by_id[tid]
        assert (k.error_code, k.name) == (0, name), k
        assert sorted(p.partition_index for p in k.partitions) == [0, 1, 2]
        assert all(p.error_code == 0 and p.leader_id >= 0 for p in k.partitions), k.partitions
        o = by_id[other_id]
        assert (o.error_code, o.name, len(o.partitions)) == (0, other, 1), o
        assert resp.brokers, "the brokers list is missing"
        if v == 13:
            assert resp.error_code == 0


def test_ids_at_v10_and_v11_are_refused_with_invalid_request_not_a_hang_up(client: RawClient) -> None:
    name = f"by-id-{uuid.uuid4().hex[:8]}"
    create_topic(client, name, partitions=2)
    tid = _topic_id(client, name)
    unknown = uuid.uuid4()
    for v in (10, 11):
        for asked in ([(unknown, None)],                       # an unknown id, name null
                      [(tid, None)],                           # a known id, name null
                      [(ZERO, name), (unknown, None)],          # a name beside an id
                      [(tid, name)]):                          # a name with its (non-zero) id
            resp = _ask(client, v, asked)
            got = [(t.error_code, t.name, t.topic_id, t.partitions) for t in resp.topics]
            assert got == [(E.INVALID_REQUEST, n if n is not None else "", i, []) for i, n in asked], (v, asked, got)
            assert resp.brokers == [] and resp.controller_id == -1, resp
        # the connection still serves, and names alone are answered as before
        resp = _ask(client, v, [(ZERO, name)])
        (t,) = resp.topics
        assert (t.error_code, t.name, t.topic_id, len(t.partitions)) == (0, name, tid, 2), t
