"""kafka_client pieces that need no broker: hashing, codecs, assignors, encodings, errors."""

from __future__ import annotations

import struct

import cramjam
import kafka_protocol as kp
import pytest
from hypothesis import given
from hypothesis import strategies as st
from kafka_client import errors
from kafka_client.assignors import (
    Assignment,
    CooperativeStickyAssignor,
    RangeAssignor,
    RoundRobinAssignor,
    Subscription,
    decode_assignment,
    decode_subscription,
    encode_assignment,
    encode_subscription,
)
from kafka_client.cluster import parse_bootstrap
from kafka_client.partitioner import StickyPartitioner, murmur2, partition_for_key, to_positive
from kafka_client.records import BatchBuilder, close_batch, decode_records, restamp

import kafka_core
from kafka_core import compression


# Kafka's UtilsTest.testMurmur2 vectors.
@pytest.mark.parametrize("data,expected", [
    (b"21", -973932308),
    (b"foobar", -790332482),
    (b"a-little-bit-long-string", -985981536),
    (b"a-little-bit-longer-string", -1486304829),
    (b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971),
    (b"abc", 479470107),
])
def test_murmur2_matches_kafka(data: bytes, expected: int) -> None:
    assert murmur2(data) == expected


def test_to_positive_clears_sign_bit_not_abs() -> None:
    assert to_positive(-1) == 0x7FFFFFFF
    assert to_positive(-2147483648) == 0
    assert partition_for_key(b"foobar", 7) == (-790332482 & 0x7FFFFFFF) % 7


def test_sticky_partitioner_switches_after_a_batch() -> None:
    sp = StickyPartitioner(batch_size=100, seed=1)
    p0 = sp.partition("t", 4)
    assert sp.partition("t", 4) == p0
    sp.on_append("t", p0, 60, 4)
    assert sp.partition("t", 4) == p0
    sp.on_append("t", p0, 60, 4)
    assert sp.partition("t", 4) != p0  # moved on, never to the same one


def test_sticky_partitioner_only_uses_available() -> None:
    sp = StickyPartitioner(batch_size=1, seed=3)
    seen = set()
    for _ in range(50):
        p = sp.partition("t", 6, [1, 4])
        seen.add(p)
        sp.on_append("t", p, 10, 6, [1, 4])
    assert seen == {1, 4}


@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd"])
def test_compression_round_trip(codec: str) -> None:
    data = b"".join(b"record %d " % i for i in range(5000))
    cid = compression.codec_id(codec)
    packed = compression.compress(cid, data)
    assert len(packed) < len(data)
    assert compression.decompress(cid, packed) == data


def test_snappy_reads_raw_and_xerial() -> None:
    data = bytes(range(256)) * 300
    raw = bytes(cramjam.snappy.compress_raw(data))
    assert compression.decompress(2, raw) == data
    xerial = compression.compress(2, data)
    assert xerial.startswith(b"\x82SNAPPY\x00")
    assert compression.decompress(2, xerial) == data


def test_lz4_frames_have_independent_blocks() -> None:
    packed = compression.compress(3, b"x" * 100000)
    assert packed[:4] == b"\x04\x22\x4d\x18"
    assert packed[4] & 0x20, "Kafka refuses dependent-block LZ4 streams"


def test_unknown_codec_rejected() -> None:
    with pytest.raises(ValueError):
        compression.codec_id("brotli")


def test_error_classes_carry_name_code_retriable() -> None:
    e = errors.for_code(6)
    assert isinstance(e, errors.BrokerResponseError)
    assert e.name == "NOT_LEADER_OR_FOLLOWER" and e.error_code == 6 and e.retriable
    assert type(e).__name__ == "NotLeaderOrFollowerError"
    t = errors.for_code(36, "exists")
    assert not t.retriable and "TOPIC_ALREADY_EXISTS" in str(t)
    assert errors.KafkaTimeoutError().retriable and errors.BadResponseError().retriable
    with pytest.raises(errors.KafkaError):
        errors.raise_for_code(3)
    errors.raise_for_code(0)


def test_parse_bootstrap() -> None:
    assert parse_bootstrap("a:1, b:2") == [("a", 1), ("b", 2)]
    assert parse_bootstrap(["[::1]:9093"]) == [("::1", 9093)]
    with pytest.raises(ValueError):
        parse_bootstrap("")


@given(st.lists(st.text(min_size=1, max_size=8), max_size=5),
       st.lists(st.tuples(st.sampled_from(["a", "b"]), st.integers(0, 50)), max_size=10, unique=True),
       st.integers(-1, 100), st.one_of(st.none(), st.binary(max_size=10)))
def test_subscription_encoding_matches_generated_codec(topics, owned, gen, user) -> None:  # type: ignore[no-untyped-def]
    sub = Subscription(topics, user, owned, gen)
    for v in (0, 1, 2):
        raw = encode_subscription(sub, v)
        (ver,) = struct.unpack_from(">h", raw)
        assert ver == v
        # The generated schema codec (version prefix removed) reads the same bytes back.
        obj, end = kp.ConsumerProtocolSubscription.decode(raw, v, 2)
        assert end == len(raw)
        assert obj.topics == topics
        back = decode_subscription(raw)
        assert back.topics == topics and back.user_data == user
        if v >= 1:
            assert sorted(back.owned_partitions) == sorted(owned)
        if v >= 2:
            assert back.generation_id == gen


def test_assignment_round_trip() -> None:
    a = Assignment([("t", 2), ("t", 0), ("u", 1)], b"ud")
    raw = encode_assignment(a)
    obj, _ = kp.ConsumerProtocolAssignment.decode(raw, 1, 2)
    assert [(x.topic, sorted(x.partitions)) for x in obj.assigned_partitions] == [("t", [0, 2]), ("u", [1])]
    back = decode_assignment(raw)
    assert sorted(back.partitions) == [("t", 0), ("t", 2), ("u", 1)] and back.user_data == b"ud"
    assert decode_assignment(b"").partitions == []
    with pytest.raises(ValueError):
        decode_assignment(raw[:7])


def _subs(members: dict[str, list[str]]) -> dict[str, Subscription]:
    return {m: Subscription(t) for m, t in members.items()}


def test_range_assignor_like_java() -> None:
    # Java RangeAssignorTest: 2 consumers, 2 topics with 3 partitions each.
    r = RangeAssignor().assign({"t1": 3, "t2": 3}, _subs({"c1": ["t1", "t2"], "c2": ["t1", "t2"]}))
    assert r["c1"] == [("t1", 0), ("t1", 1), ("t2", 0), ("t2", 1)]
    assert r["c2"] == [("t1", 2), ("t2", 2)]


def test_roundrobin_assignor_like_java() -> None:
    r = RoundRobinAssignor().assign({"t1": 3, "t2": 3}, _subs({"c1": ["t1", "t2"], "c2": ["t1", "t2"]}))
    assert r["c1"] == [("t1", 0), ("t1", 2), ("t2", 1)]
    assert r["c2"] == [("t1", 1), ("t2", 0), ("t2", 2)]


def test_cooperative_sticky_balanced_and_sticky() -> None:
    a = CooperativeStickyAssignor()
    first = a.assign({"t": 6}, _subs({"c1": ["t"]}))
    assert first["c1"] == [("t", p) for p in range(6)]
    # c2 joins: c1 keeps 3 of its partitions, the others are revoked (assigned to nobody this round).
    subs = {"c1": Subscription(["t"], None, first["c1"], 1), "c2": Subscription(["t"], None, [], -1)}
    second = a.assign({"t": 6}, subs)
    assert set(second["c1"]) < set(first["c1"]) and len(second["c1"]) == 3
    assert second["c2"] == []
    # Next round (c1 gave them up): c2 gets exactly the three c1 no longer has.
    subs = {"c1": Subscription(["t"], None, second["c1"], 2), "c2": Subscription(["t"], None, [], 2)}
    third = a.assign({"t": 6}, subs)
    assert third["c1"] == second["c1"]
    assert sorted(third["c2"]) == sorted(set(first["c1"]) - set(second["c1"]))


def test_restamp_keeps_batch_valid() -> None:
    b = BatchBuilder(1024, base_timestamp=1000, producer_id=7, producer_epoch=0, base_sequence=10)
    b.append(1000, b"k", b"v")
    b.append(1001, None, b"w")
    data = close_batch(b, 0)
    new = restamp(data, 7, 1, 0)
    infos, n = kafka_core.scan_batches(new, verify_crc=True)
    assert n == len(new)
    assert (infos[0].producer_id, infos[0].producer_epoch, infos[0].base_sequence) == (7, 1, 0)


@pytest.mark.parametrize("codec", [0, 1, 2, 3, 4])
def test_decode_records_skips_before_fetch_offset(codec: int) -> None:
    b = BatchBuilder(4096, base_timestamp=5)
    for i in range(10):
        b.append(5 + i, None, b"v%d" % i, [("h", b"x")])
    data = bytearray(close_batch(b, codec))
    kafka_core.assign_offsets(data, 100)
    recs, nxt = decode_records(data, 104)
    assert [r.offset for r in recs] == list(range(104, 110))
    assert recs[0].value == b"v4" and recs[0].headers == [("h", b"x")]
    assert nxt == 110
    # A truncated trailing batch is ignored, not an error.
    recs, nxt = decode_records(data + data[:30], 100)
    assert len(recs) == 10 and nxt == 110


def test_decode_records_detects_corruption() -> None:
    b = BatchBuilder(4096, base_timestamp=5)
    b.append(5, None, b"value")
    data = bytearray(b.finish())
    data[-1] ^= 0xFF
    with pytest.raises(Exception):  # noqa: B017 - kafka_core's CRC error type
        decode_records(data, 0)


def test_loop_thread_stop_unwinds_unstarted_tasks() -> None:
    """A task created just before stop() never ran: stop must cancel and await it rather than
    drop its coroutine ("coroutine ... was never awaited")."""
    import asyncio
    import gc
    import warnings

    from kafka_client._loop import LoopThread

    ran: list[str] = []

    async def job() -> None:
        try:
            await asyncio.sleep(10)
        finally:
            ran.append("unwound")

    t = LoopThread("test-loop")
    t.loop.call_soon_threadsafe(lambda: asyncio.ensure_future(job()))
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        t.stop()
        assert ran == ["unwound"]  # unwound by stop(), not later by the garbage collector
        gc.collect()
    assert not [x for x in w if "never awaited" in str(x.message)]


def _txn_log() -> bytearray:
    """Offsets 0-1: pid 5 (aborted), 2-3: pid 6, 4: ABORT(5), 5: COMMIT(6), 6: pid 5 again,
    7: COMMIT(5), 8: plain record."""
    from kafka_core import assign_offsets

    def batch(pid: int, values: list[bytes], control: int | None = None) -> bytes:
        attrs = 0x10 if pid >= 0 else 0
        if control is not None:
            attrs |= 0x20
        b = BatchBuilder(1024, base_timestamp=1, producer_id=pid, producer_epoch=0 if pid >= 0 else -1,
                         base_sequence=0 if pid >= 0 else -1, attributes=attrs)
        if control is not None:
            b.append(1, b"\x00\x00\x00" + bytes([control]), b"\x00\x00\x00\x00\x00\x00")
        for v in values:
            b.append(1, None, v)
        return bytes(b.finish())

    buf = bytearray(batch(5, [b"a0", b"a1"]) + batch(6, [b"c2", b"c3"]) + batch(5, [], control=0)
                    + batch(6, [], control=1) + batch(5, [b"c6"]) + batch(5, [], control=1) + batch(-1, [b"p8"]))
    assign_offsets(buf, 0)
    return buf


def test_decode_records_read_committed_skips_aborted_transactions() -> None:
    buf = _txn_log()
    recs, nxt = decode_records(buf, 0)
    assert [r.value for r in recs] == [b"a0", b"a1", b"c2", b"c3", b"c6", b"p8"] and nxt == 9
    recs, nxt = decode_records(buf, 0, aborted=[(5, 0)])
    assert [(r.offset, r.value) for r in recs] == [(2, b"c2"), (3, b"c3"), (6, b"c6"), (8, b"p8")]
    assert nxt == 9
    recs, _ = decode_records(buf, 1, aborted=[(5, 0)])  # fetch starts inside the aborted transaction
    assert [r.value for r in recs] == [b"c2", b"c3", b"c6", b"p8"]
    recs, _ = decode_records(buf, 3, aborted=[])
    assert [r.value for r in recs] == [b"c3", b"c6", b"p8"]


def test_delivery_future_shares_a_condition() -> None:
    import concurrent.futures
    import threading
    import time

    from kafka_client.producer import DeliveryFuture

    cond = threading.Condition()
    a, b = DeliveryFuture(cond), DeliveryFuture(cond)
    threading.Timer(0.05, a.set_result, ("done",)).start()
    with pytest.raises(concurrent.futures.TimeoutError):
        b.result(timeout=0.3)  # woken by a's completion, but b is not done
    assert a.result(timeout=5) == "done"
    done, pending = concurrent.futures.wait([a, b], timeout=0.1)
    assert done == {a} and pending == {b}
    seen: list = []
    b.add_done_callback(lambda f: seen.append(f.exception()))
    err = ValueError("x")
    threading.Timer(0.05, b.set_exception, (err,)).start()
    t0 = time.monotonic()
    assert b.exception() is err and seen == [err]
    assert time.monotonic() - t0 < 5


def test_a_typo_in_a_setting_names_the_closest_ones() -> None:
    """issue 15: ``lingr_ms`` is a ValueError saying ``linger_ms``, before any connection."""
    from kafka_client import AdminClient, Consumer, Producer

    with pytest.raises(ValueError, match=r"unknown producer setting 'lingr_ms'; did you mean linger_ms"):
        Producer("127.0.0.1:1", lingr_ms=5)
    with pytest.raises(ValueError, match=r"unknown consumer setting 'group.idd'; did you mean group_id"):
        Consumer(bootstrap_servers="127.0.0.1:1", **{"group.idd": "g"})
    with pytest.raises(ValueError, match=r"unknown admin setting"):
        AdminClient("127.0.0.1:1", no_such_thing=1)


def test_dotted_names_and_string_values_as_in_java_configs() -> None:
    from kafka_client.producer import ProducerConfig
    from kafka_client.settings import check_settings

    got = check_settings(ProducerConfig.__init__, {"linger.ms": "7", "batch-size": "1000", "acks": "1",
                                                   "enable.idempotence": "false", "compression.type": "lz4"},
                         "producer")
    assert got == {"linger_ms": 7, "batch_size": 1000, "acks": "1", "enable_idempotence": False,
                   "compression_type": "lz4"}
    cfg = ProducerConfig("x:1", **got)
    assert cfg.linger == 0.007 and cfg.batch_size == 1000 and cfg.acks == 1 and not cfg.idempotent
    with pytest.raises(ValueError, match="linger_ms' must be a number"):
        check_settings(ProducerConfig.__init__, {"linger.ms": "soon"}, "producer")
    with pytest.raises(ValueError, match="must be true or false"):
        check_settings(ProducerConfig.__init__, {"enable.idempotence": "yes"}, "producer")


@pytest.mark.parametrize("name", ["Producer", "AIOProducer", "Consumer", "AdminClient"])
def test_constructors_list_every_setting_with_its_default(name: str) -> None:
    """issue 15: ``help(Producer)``, ``inspect.signature`` and the API docs show each setting
    with its default, not ``**config`` (the settings are those of the config it builds)."""
    import inspect
    import pydoc

    import kafka_client
    from kafka_client.admin import AIOAdminClient
    from kafka_client.consumer import AIOConsumer
    from kafka_client.producer import ProducerConfig

    cls = getattr(kafka_client, name)
    source = {"Consumer": AIOConsumer.__init__, "AdminClient": AIOAdminClient.__init__}.get(name, ProducerConfig.__init__)
    want = {n: p.default for n, p in inspect.signature(source).parameters.items()
            if n != "self" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    got = inspect.signature(cls).parameters
    assert {n: got[n].default for n in want if n in got} == want
    assert "config" not in got and "security" in got
    page = pydoc.render_doc(cls, renderer=pydoc.plaintext)
    example = {"Consumer": "fetch_max_wait_ms: 'int' = 500", "AdminClient": "request_timeout_ms: 'int' = 30000"}
    assert example.get(name, "linger_ms: 'float' = 5") in page


def test_a_dead_broker_fails_the_producer_within_max_block_ms() -> None:
    """issue 15: no broker answers: the constructor gives up after max_block_ms with the reason
    (it waited 30 s and then raised a bare TimeoutError)."""
    import time

    from kafka_client import Producer
    from kafka_client.errors import KafkaTimeoutError

    t0 = time.monotonic()
    with pytest.raises(KafkaTimeoutError, match=r"no broker of '127.0.0.1:1' answered within max_block_ms \(1500 ms\)"):
        Producer("127.0.0.1:1", max_block_ms=1500)
    assert time.monotonic() - t0 < 1500 / 1000 + 5     # the limit, not request_timeout_ms (30 s)


def test_admin_client_methods_are_real_methods() -> None:
    """issue 15: dir(), help() and IDEs see AdminClient's API (it came through __getattr__): the same
    methods as AIOAdminClient, with the same parameters."""
    import inspect

    from kafka_client import AdminClient
    from kafka_client.admin import AIOAdminClient

    public = {n for n, f in vars(AIOAdminClient).items() if inspect.iscoroutinefunction(f) and not n.startswith("_")}
    public -= {"start", "close"}
    assert public <= set(vars(AdminClient)), sorted(public - set(vars(AdminClient)))
    for n in public:
        sync, aio = inspect.signature(getattr(AdminClient, n)), inspect.signature(getattr(AIOAdminClient, n))
        assert list(sync.parameters) == list(aio.parameters), n
        assert getattr(AdminClient, n).__doc__, n
