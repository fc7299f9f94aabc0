"""Metadata's cache of encoded topic entries (python/kafka_broker/metadata_cache.py).

In process: a Broker on two log dirs, ``handle_metadata`` called directly.  Every response is
compared, byte for byte, with the same response whose cached (PreEncoded) entries are replaced
by entries built afresh from the current state (the views' uncached ``entry``) and encoded by the
generic codec: every version v0..v13, with and without include_topic_authorized_operations, for
all topics, named topics (some unknown) and topic ids; and again after each change that an entry
encodes, with the cache warm from before it (a stale entry would differ).  The cluster's view is
checked the same way over a MetadataCache fed UpdateMetadata requests (a leader change, an ISR
change, a partition added, a topic deleted), and the ACL filter over cached entries.
"""

from __future__ import annotations

import asyncio
import errno
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace as NS
from typing import Any

import kafka_protocol as kp
import pytest
from kafka_broker.acl import ALLOW, DESCRIBE, PT_LITERAL, RT_TOPIC, Acl, Authorizer
from kafka_broker.authz import guard
from kafka_broker.broker import TOPIC_OPS, Broker, _LocalView, handle_metadata
from kafka_broker.config import BrokerConfig
from kafka_broker.metadata_cache import (
    FLEXIBLE_FROM,
    NAME_NULLABLE_FROM,
    PARTITION_LAYOUT,
    TOPIC_LAYOUT,
    TopicEntries,
    TopicParts,
    encode_topic,
    parts_of,
    pre_encode,
)
from kafka_protocol.errors import ErrorCode as E
from kafka_protocol.messages import MetadataRequest, MetadataResponse

VERSIONS = range(MetadataResponse.MIN_VERSION, MetadataResponse.MAX_VERSION + 1)
NO_OPS = -2147483648
SCHEMA = Path(__file__).resolve().parents[3] / "shared" / "kafka-protocol" / "messages-4.3" / "MetadataResponse.json"


@pytest.fixture
def node(tmp_path: Path) -> Iterator[tuple[Broker, asyncio.AbstractEventLoop]]:
    loop = asyncio.new_event_loop()
    b = Broker(BrokerConfig({"log.dirs": f"{tmp_path / 'd0'},{tmp_path / 'd1'}",
                            "auto.create.topics.enable": "false"}), loop)
    b.storage.halt = lambda msg: pytest.fail(f"the broker halted: {msg}")
    b.storage.open()
    try:
        yield b, loop
    finally:
        b.storage.close()
        loop.close()


def _ctx(b: Broker, v: int, principal: str = "User:ANONYMOUS") -> Any:
    return NS(header=NS(api_key=3, api_version=v), api_version=v, listener=b.config.listeners[0],
              conn=NS(sasl=None, principal=principal, peer="127.0.0.1:40000"))


def _requests(v: int, inc: bool, names: list[str], ids: list[uuid.UUID]) -> list[Any]:
    T = MetadataRequest.MetadataRequestTopic
    kw: dict[str, Any] = {"allow_auto_topic_creation": False}
    if v >= 8:
        kw["include_topic_authorized_operations"] = inc
    out = [MetadataRequest(topics=[] if v == 0 else None, **kw),
           MetadataRequest(topics=[T(name=n) for n in names + ["no-such-topic"]], **kw)]
    if v >= 10:     # (v10-11: refused with INVALID_REQUEST, tests/broker/test_metadata_topic_id.py)
        out.append(MetadataRequest(topics=[T(name=None, topic_id=i) for i in ids + [uuid.uuid4()]], **kw))
    return out


def _uncached(resp: Any, fresh: Any) -> Any:
    """``resp`` with every PreEncoded entry replaced by ``fresh(name)`` (an unencoded entry)."""
    topics = [fresh(e.name) if isinstance(e, kp.PreEncoded) else e for e in resp.topics]
    return MetadataResponse(throttle_time_ms=resp.throttle_time_ms, brokers=resp.brokers, cluster_id=resp.cluster_id,
                            controller_id=resp.controller_id, topics=topics,
                            cluster_authorized_operations=resp.cluster_authorized_operations,
                            error_code=resp.error_code)


def _local_fresh(b: Broker, v: int, ops: int) -> Any:
    view = _LocalView(b, _ctx(b, v), ops)      # no version: entries built, not cached
    return lambda name: view.entry(b.storage.topics[name])


def check_local(b: Broker) -> dict[str, Any]:
    """Every version and request kind against the uncached encoding; returns the v12 all-topics
    response decoded, by topic name."""
    names = sorted(b.storage.topics)
    ids = [b.storage.topics[n].id for n in names]
    decoded: dict[str, Any] = {}
    spliced = 0
    for v in VERSIONS:
        for inc in (False, True):
            ops = TOPIC_OPS if (v >= 8 and inc) else NO_OPS
            for req in _requests(v, inc, names, ids):
                resp = handle_metadata(b, _ctx(b, v), req)
                spliced += sum(isinstance(e, kp.PreEncoded) for e in resp.topics)
                got = kp.encode_response(3, v, 7, resp)
                want = kp.encode_response(3, v, 7, _uncached(resp, _local_fresh(b, v, ops)))
                assert got == want, f"v{v} include_ops={inc} topics={req.topics}: cached bytes differ"
                if v == 12 and not inc and req.topics is None:
                    _, pos = kp.decode_response_header(got[4:], 3, v)
                    decoded = {t.name: t for t in MetadataResponse.decode(got[4:], v, pos)[0].topics}
    assert spliced or not names, "no cached entry was used"
    return decoded


def test_local_entries_match_the_uncached_encoding_through_every_change(node: Any) -> None:
    b, loop = node
    st = b.storage
    run = loop.run_until_complete
    run(st.create_topic("alpha", 3, {}))
    run(st.create_topic("beta", 1, {}))
    got = check_local(b)
    assert [len(got[n].partitions) for n in ("alpha", "beta")] == [3, 1]
    assert len(b.metadata_entries) == 2

    run(st.create_topic("gamma", 2, {}))                    # create
    got = check_local(b)
    assert sorted(got) == ["alpha", "beta", "gamma"]

    run(st.add_partitions(st.topics["alpha"], 6))            # CreatePartitions
    got = check_local(b)
    assert [p.partition_index for p in got["alpha"].partitions] == list(range(6))

    run(st.delete_topic(st.topics["beta"]))                  # delete
    got = check_local(b)
    assert sorted(got) == ["alpha", "gamma"]
    assert len(b.metadata_entries) == 2, "the deleted topic's entries were not dropped"
    named = handle_metadata(b, _ctx(b, 12), MetadataRequest(topics=[MetadataRequest.MetadataRequestTopic(
        name="beta")], allow_auto_topic_creation=False))
    assert [t.error_code for t in named.topics] == [E.UNKNOWN_TOPIC_OR_PARTITION]

    run(st.create_topic("delta", 5, {}, background=True))   # CreateTopics: logs made in the background
    assert st.topics["delta"].pending
    got = check_local(b)
    assert {(p.error_code, p.leader_id) for p in got["delta"].partitions} <= {
        (E.LEADER_NOT_AVAILABLE, -1), (0, b.node_id)}
    assert (E.LEADER_NOT_AVAILABLE, -1) in {(p.error_code, p.leader_id) for p in got["delta"].partitions}
    deadline = time.monotonic() + 30
    while st.topics["delta"].pending:
        assert time.monotonic() < deadline, "the background creation did not finish"
        run(asyncio.sleep(0.05))
    got = check_local(b)
    assert [(p.error_code, p.leader_id) for p in got["delta"].partitions] == [(0, b.node_id)] * 5

    old_id = st.topics["gamma"].id                           # deleted and created again: another id
    run(st.delete_topic(st.topics["gamma"]))
    run(st.create_topic("gamma", 4, {}))
    got = check_local(b)
    assert got["gamma"].topic_id != old_id and len(got["gamma"].partitions) == 4

    d1 = st.log_dirs.dirs[1]                                 # a log dir goes offline
    in_d1 = {(p.topic.name, p.index) for t in st.topics.values() for p in t.partitions if p.log_dir is d1}
    assert in_d1, "no partition was placed in the second log dir"
    d1.failed("testing", OSError(errno.EIO, "injected"))
    got = check_local(b)
    for name, t in got.items():
        for p in t.partitions:
            offline = (name, p.partition_index) in in_d1
            assert (p.error_code, p.leader_id) == ((E.LEADER_NOT_AVAILABLE, -1) if offline else (0, b.node_id))


def test_a_pre_encoded_entry_of_another_layout_is_refused() -> None:
    T = MetadataResponse.MetadataResponseTopic
    e = MetadataResponse.pre_encode("topics", 12, T(name="t", topic_id=uuid.uuid4()))
    assert MetadataResponse(topics=[e]).encode(13)      # v12 and v13 share the entry layout
    with pytest.raises(kp.EncodeError, match="another version"):
        MetadataResponse(topics=[e]).encode(8)
    with pytest.raises(ValueError, match="no pre-encoded elements"):
        MetadataResponse.pre_encode("brokers", 12, MetadataResponse.MetadataResponseBroker())


def test_acls_hide_cached_entries_as_they_hide_built_ones(node: Any) -> None:
    b, loop = node
    for n in ("open-1", "open-2", "secret"):
        loop.run_until_complete(b.storage.create_topic(n, 2, {}))
    acls = {Acl(RT_TOPIC, n, PT_LITERAL, "User:alice", "*", DESCRIBE, ALLOW) for n in ("open-1", "open-2")}
    az = Authorizer(NS(acls=acls), [], allow_if_no_acl=False)
    for v in VERSIONS:
        for inc in (False, True):
            ops = TOPIC_OPS if (v >= 8 and inc) else NO_OPS
            for req in _requests(v, inc, ["open-1", "secret"], [])[:2]:     # all, and by name
                if v == 0 and not req.topics:
                    continue            # v0's empty list: all topics, the same filter as v1+'s null
                named = [t.name for t in req.topics] if req.topics is not None else None
                resp = guard(az, b, _ctx(b, v, "User:alice"), req, handle_metadata)
                got = kp.encode_response(3, v, 7, resp)
                assert got == kp.encode_response(3, v, 7, _uncached(resp, _local_fresh(b, v, ops)))
                _, pos = kp.decode_response_header(got[4:], 3, v)
                codes = {t.name: t.error_code for t in MetadataResponse.decode(got[4:], v, pos)[0].topics}
                if named is None:
                    assert codes == {"open-1": 0, "open-2": 0}, f"v{v}: {codes}"
                else:
                    assert codes == {"open-1": 0, "secret": E.TOPIC_AUTHORIZATION_FAILED,
                                     "no-such-topic": E.TOPIC_AUTHORIZATION_FAILED}, f"v{v}: {codes}"
    # and the all-topics filter ran over cached entries
    resp = guard(az, b, _ctx(b, 12, "User:alice"), MetadataRequest(topics=None, allow_auto_topic_creation=False),
                 handle_metadata)
    assert all(isinstance(e, kp.PreEncoded) for e in resp.topics)


# -- the cold build: metadata_cache.encode_topic against the generated codec -------------------

def _layout_of(fields: list[dict[str, Any]]) -> tuple[tuple[str, str, int], ...]:
    out = []
    for f in fields:
        first, plus, last = f["versions"].partition("+")
        assert plus and not last, f"{f['name']}: versions {f['versions']} (encode_topic assumes N+)"
        out.append((f["name"], f["type"], int(first)))
    return tuple(out)


def test_encode_topic_layout_is_the_generated_codec_s() -> None:
    """The layout encode_topic writes, against the generated classes' field specs (the codec the
    wire layer is generated into: checked on every checkout)."""
    T, P = MetadataResponse.MetadataResponseTopic, MetadataResponse.MetadataResponsePartition
    for cls, layout in ((T, TOPIC_LAYOUT), (P, PARTITION_LAYOUT)):
        got = tuple((f.kafka_name, f.type, f.versions.lo) for f in cls.FIELDS)
        assert got == layout, cls.__name__
        assert all(f.versions.hi >= MetadataResponse.MAX_VERSION and f.tag is None for f in cls.FIELDS)
        nullable = {f.kafka_name: f.nullable_versions.lo for f in cls.FIELDS if f.nullable_versions.lo <= f.nullable_versions.hi}
        assert nullable == ({"Name": NAME_NULLABLE_FROM} if cls is T else {}), nullable
    assert MetadataResponse.FLEXIBLE_MIN == FLEXIBLE_FROM


@pytest.mark.skipif(not SCHEMA.is_file(), reason="the official schemas (../shared, never committed) are not "
                    "beside this checkout; the generated codec's layout is checked above")
def test_encode_topic_layout_is_the_official_schema_s() -> None:
    """The same layout against MetadataResponse.json itself, where the schemas are present."""
    import json

    from kafka_protocol.generator.generate import strip_comments
    spec = json.loads(strip_comments(SCHEMA.read_text(encoding="utf-8")))
    assert spec["flexibleVersions"] == f"{FLEXIBLE_FROM}+"
    (topics,) = [f for f in spec["fields"] if f["name"] == "Topics"]
    assert _layout_of(topics["fields"]) == TOPIC_LAYOUT
    (name,) = [f for f in topics["fields"] if f["name"] == "Name"]
    assert name["nullableVersions"] == f"{NAME_NULLABLE_FROM}+"
    assert not any("nullableVersions" in f or "taggedVersions" in f for f in topics["fields"] if f["name"] != "Name")
    (parts,) = [f for f in topics["fields"] if f["name"] == "Partitions"]
    assert _layout_of(parts["fields"]) == PARTITION_LAYOUT
    assert not any("nullableVersions" in f or "taggedVersions" in f for f in parts["fields"])


def _random_topics(rng: Any, n: int) -> list[Any]:
    T, P = MetadataResponse.MetadataResponseTopic, MetadataResponse.MetadataResponsePartition
    shared = [1, 2, 3]
    out = []
    for i in range(n):
        parts = []
        for j in range(rng.choice([0, 1, 3, 20, 200])):
            if rng.random() < 0.5:      # lists shared with the partition before (the identity path)
                reps = isr = shared
                off: list[int] = []
            else:
                reps = [rng.randrange(-1, 1 << 31) for _ in range(rng.choice([0, 1, 3, 17]))]
                isr = reps[: rng.randrange(len(reps) + 1)]
                off = reps[len(isr):]
            parts.append(P(error_code=rng.choice([0, 5, 9]), partition_index=j, leader_id=rng.randrange(-1, 1 << 31),
                           leader_epoch=rng.randrange(-1, 1 << 31), replica_nodes=reps, isr_nodes=isr,
                           offline_replicas=off))
        name = rng.choice(["t", "é-topic", "x" * 200, f"topic-{i}"])
        out.append(T(error_code=rng.choice([0, 3, 100]), name=name, topic_id=uuid.UUID(int=rng.getrandbits(128)),
                     is_internal=rng.random() < 0.3, partitions=parts,
                     topic_authorized_operations=rng.choice([NO_OPS, TOPIC_OPS, 0])))
    return out


@pytest.mark.parametrize("twin", ["kafka_core", "python"])
def test_encode_topic_is_byte_identical_to_the_generated_codec_at_every_version(
        twin: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Both partitions-array encoders: the compiled one and its Python twin."""
    import random

    from kafka_broker import metadata_cache

    import kafka_core

    monkeypatch.setattr(metadata_cache, "_encode_partitions",
                        kafka_core.encode_partitions if twin == "kafka_core" else metadata_cache.encode_partitions_py)
    rng = random.Random(16)
    topics = _random_topics(rng, 60)
    checked = 0
    for v in VERSIONS:
        for t in topics:
            if v < 8:
                t = MetadataResponse.MetadataResponseTopic(**{**{s: getattr(t, s) for s in t.__slots__},
                                                              "topic_authorized_operations": NO_OPS})
            want = MetadataResponse.pre_encode("topics", v, t)
            parts = parts_of(t)
            assert parts is not None
            got = pre_encode(v, parts)
            assert (got.data, got.layout, got.name) == (want.data, want.layout, want.name), f"v{v} {t.name!r}"
            assert pre_encode(v, t).data == want.data         # from the message object too
            checked += 1
        # and inside a whole response, decoded back
        entries = [pre_encode(v, parts_of(MetadataResponse.MetadataResponseTopic(
            **{**{s: getattr(t, s) for s in t.__slots__}, "topic_authorized_operations": NO_OPS}))) for t in topics[:5]]
        frame = kp.encode_response(3, v, 7, MetadataResponse(topics=entries))
        _, pos = kp.decode_response_header(frame[4:], 3, v)
        assert [x.name for x in MetadataResponse.decode(frame[4:], v, pos)[0].topics] == [t.name for t in topics[:5]]
    assert checked == len(VERSIONS) * len(topics)


def test_the_switch_picks_the_partitions_encoder() -> None:
    from kafka_broker import metadata_cache

    import kafka_core

    off = kafka_core.NO_EXTENSIONS
    assert metadata_cache.METADATA_PATH == ("python" if off else "c")
    assert metadata_cache._encode_partitions is (metadata_cache.encode_partitions_py if off
                                                 else kafka_core.encode_partitions)


def test_the_compiled_partitions_encoder_refuses_what_its_twin_refuses() -> None:
    import struct

    from kafka_broker.metadata_cache import encode_partitions_py

    import kafka_core

    r = [1]
    for bad in ([(1 << 15, 0, 1, 0, r, r, [])], [(0, 1 << 31, 1, 0, r, r, [])], [(0, 0, 1, 0, [1 << 32], r, [])],
                [(0, 0, 1, 0, r, r, [-(1 << 31) - 1])]):
        with pytest.raises((struct.error, OverflowError)):
            encode_partitions_py(bad, True, True, True)
        with pytest.raises(OverflowError):
            kafka_core.encode_partitions(bad, True, True, True)
    with pytest.raises(ValueError, match="7 values"):
        kafka_core.encode_partitions([(0, 0, 1, 0, r, r)], True, True, True)   # type: ignore[list-item]
    with pytest.raises(TypeError):
        kafka_core.encode_partitions([[0, 0, 1, 0, r, r, []]], True, True, True)  # type: ignore[list-item]
    for flex in (False, True):       # a count past one varint byte, arrays past the small-struct cache
        big = [(0, i, 7, i, list(range(20)), [3], []) for i in range(300)]
        assert kafka_core.encode_partitions(big, flex, True, True) == encode_partitions_py(big, flex, True, True)


def test_encode_topic_refuses_what_the_version_cannot_carry() -> None:
    unknown = TopicParts(E.UNKNOWN_TOPIC_ID, None, uuid.uuid4(), False, [])
    for v in VERSIONS:
        if v < NAME_NULLABLE_FROM:
            with pytest.raises(kp.EncodeError, match="not nullable"):
                encode_topic(v, unknown)
        else:
            assert encode_topic(v, unknown) == MetadataResponse.pre_encode(
                "topics", v, MetadataResponse.MetadataResponseTopic(error_code=E.UNKNOWN_TOPIC_ID, name=None,
                                                                    topic_id=unknown.topic_id)).data
    with pytest.raises(kp.UnsupportedVersionError):
        encode_topic(7, TopicParts(0, "t", uuid.uuid4(), False, [], TOPIC_OPS))
    tagged = MetadataResponse.MetadataResponseTopic(name="t", unknown_tagged_fields=[(7, b"x")])
    assert parts_of(tagged) is None                     # left to the generic encoder, which keeps the tags
    assert pre_encode(12, tagged).data == MetadataResponse.pre_encode("topics", 12, tagged).data


# -- the cluster's view, over its MetadataCache ------------------------------------------------

def _update(topics: dict[str, tuple[uuid.UUID, dict[int, tuple[int, int, list[int], list[int], list[int]]]]],
            brokers: tuple[int, ...] = (1, 2, 3)) -> Any:
    """An UpdateMetadata request: per topic (id, {partition: (leader, epoch, isr, replicas, offline)})."""
    R = kp.UpdateMetadataRequest
    return R(controller_id=1, controller_epoch=1, live_brokers=[
        R.UpdateMetadataBroker(id=i, endpoints=[R.UpdateMetadataEndpoint(port=9000 + i, host=f"h{i}",
                                                                         listener="PLAINTEXT", security_protocol=0)],
                               rack=None) for i in brokers],
        topic_states=[R.UpdateMetadataTopicState(topic_name=n, topic_id=tid, partition_states=[
            R.UpdateMetadataPartitionState(topic_name=n, partition_index=i, controller_epoch=1, leader=lead,
                                           leader_epoch=ep, isr=isr, zk_version=ep, replicas=reps,
                                           offline_replicas=off)
            for i, (lead, ep, isr, reps, off) in parts.items()]) for n, (tid, parts) in topics.items()])


def check_cluster(md: Any, cache: TopicEntries) -> dict[str, Any]:
    from kafka_broker.cluster.apis import MetadataView

    decoded: dict[str, Any] = {}
    for v in VERSIONS:
        for inc in (False, True):
            ops = TOPIC_OPS if (v >= 8 and inc) else NO_OPS
            cached, fresh = MetadataView(md, "PLAINTEXT", ops, v, cache), MetadataView(md, "PLAINTEXT", ops)
            for topics in (cached.all_topics(), [cached.by_name(n) for n in sorted(md.topics)]):
                assert all(isinstance(e, kp.PreEncoded) for e in topics)
                resp = MetadataResponse(brokers=cached.brokers, controller_id=cached.controller_id, topics=topics)
                got = kp.encode_response(3, v, 7, resp)
                assert got == kp.encode_response(3, v, 7, _uncached(resp, lambda n, f=fresh: f.by_name(n)))
                if v == 12 and not inc:
                    _, pos = kp.decode_response_header(got[4:], 3, v)
                    decoded = {t.name: t for t in MetadataResponse.decode(got[4:], v, pos)[0].topics}
    return decoded


def test_cluster_entries_follow_update_metadata() -> None:
    from kafka_broker.cluster.controller import LEADER_DURING_DELETE
    from kafka_broker.cluster.replicas import MetadataCache

    asyncio.set_event_loop(loop := asyncio.new_event_loop())
    try:
        md, cache = MetadataCache(), TopicEntries()
        a, b = uuid.uuid4(), uuid.uuid4()
        md.update(_update({"a": (a, {0: (1, 0, [1, 2], [1, 2], []), 1: (2, 0, [2, 3], [2, 3], [])}),
                           "b": (b, {0: (3, 0, [3], [3, 1], [])})}))
        got = check_cluster(md, cache)
        assert [p.leader_id for p in got["a"].partitions] == [1, 2]

        md.update(_update({"a": (a, {0: (2, 1, [2], [1, 2], [1])})}, brokers=(2, 3)))   # leader change
        got = check_cluster(md, cache)
        p0 = got["a"].partitions[0]
        assert (p0.leader_id, p0.leader_epoch, p0.isr_nodes, p0.offline_replicas) == (2, 1, [2], [1])
        assert sorted(x.node_id for x in _brokers(md)) == [2, 3]

        md.update(_update({"b": (b, {0: (3, 0, [3, 1], [3, 1], [])})}))                 # ISR change
        assert check_cluster(md, cache)["b"].partitions[0].isr_nodes == [3, 1]

        md.update(_update({"b": (b, {1: (1, 0, [1], [1, 3], [])})}))                    # a partition added
        assert len(check_cluster(md, cache)["b"].partitions) == 2

        md.update(_update({"b": (b, {0: (LEADER_DURING_DELETE, 0, [], [], []),          # deleted
                                     1: (LEADER_DURING_DELETE, 0, [], [], [])})}))
        assert sorted(check_cluster(md, cache)) == ["a"]
        assert len(cache) == 1
    finally:
        asyncio.set_event_loop(None)
        loop.close()


def _brokers(md: Any) -> list[Any]:
    from kafka_broker.cluster.apis import MetadataView
    return MetadataView(md, "PLAINTEXT", NO_OPS, 12, TopicEntries()).brokers
