"""Property tests of the partition log (kafka_core._log).

Random appends (random segment and index sizes), then damage (a torn or
corrupted last or middle segment, garbage past the end) and an unclean
reopen: the log must keep exactly the longest valid prefix, byte for byte,
and its offset and time lookups must agree with a linear scan of all
batches.  The validity rule is evaluated independently with the pure-Python
codec (kafka_protocol._pyrecords).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kafka_protocol import _pyrecords as py

from kafka_core._log import Log

records_st = st.lists(
    st.tuples(st.integers(0, 10_000), st.binary(max_size=3), st.integers(0, 300)),
    min_size=1, max_size=5,
)
buffer_st = st.lists(records_st, min_size=1, max_size=3)  # batches of one append
config_st = st.fixed_dictionaries({
    "segment_bytes": st.integers(300, 4096),
    "index_interval_bytes": st.integers(0, 600),
    "max_index_bytes": st.integers(24, 200),
})


def encode(records: list[tuple[int, bytes, int]]) -> bytes:
    base = min(ts for ts, _, _ in records)
    return py.make_batch([(ts, k, b"x" * n, []) for ts, k, n in records], base_timestamp=base)


@dataclass
class B:
    raw: bytes
    first: int
    last: int
    records: list[tuple[int, int]]  # (offset, timestamp)


def parse(raw: bytes) -> B:
    b = py.decode_batch(raw)
    recs = [(b.base_offset + r.offset_delta, b.base_timestamp + r.timestamp_delta) for r in b.records]
    return B(raw, b.base_offset, b.base_offset + b.last_offset_delta, recs)


def segment_batches(data: bytes) -> list[bytes]:
    out, pos = [], 0
    while pos < len(data):
        b = py.decode_batch(data[pos:], decode_records=False)
        out.append(data[pos:pos + b.size])
        pos += b.size
    return out


def valid_prefix(data: bytes, seg_base: int, prev_next: int) -> list[bytes]:
    """The recovery rule: whole v2 batches, CRC right, offsets increasing, in this segment."""
    out, pos = [], 0
    while pos < len(data):
        try:
            b = py.decode_batch(data[pos:], decode_records=False)
        except py.RecordsFormatError:
            break
        if b.base_offset < max(seg_base, prev_next) or b.last_offset_delta < 0:
            break
        out.append(data[pos:pos + b.size])
        prev_next = b.base_offset + b.last_offset_delta + 1
        pos += b.size
    return out


def log_batches(log: Log) -> list[bytes]:
    out: list[bytes] = []
    off = log.start_offset
    while off < log.end_offset:
        with log.read(off, 1 << 16) as s:
            data = s.read_bytes()
        got = segment_batches(data)
        assert got
        out += got
        off = parse(got[-1]).last + 1
    return out


def check_lookups(log: Log, batches: list[B], probe_ts: list[int]) -> None:
    assert log.end_offset == (batches[-1].last + 1 if batches else log.end_offset)
    for b in batches:
        for off in range(b.first, b.last + 1):
            p = log.lookup(off)
            assert (p.batch_base_offset, p.batch_last_offset, p.batch_size) == (b.first, b.last, len(b.raw))
    recs = [r for b in batches for r in b.records]
    for ts in probe_ts:
        want = next(((o, t) for o, t in recs if t >= ts), None)
        got = log.lookup_time(ts)
        assert (got[:2] if got else None) == want, ts
        if got:
            assert got[2] is True
    if recs:
        mx = max(t for _, t in recs)
        holder = next(b for b in batches if any(t == mx for _, t in b.records))
        assert log.max_timestamp() == (mx, holder.last)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cfg=config_st, appends=st.lists(buffer_st, min_size=1, max_size=25),
       probe_ts=st.lists(st.integers(-1, 10_001), max_size=6))
def test_lookups_agree_with_linear_scan(cfg: dict, appends: list, probe_ts: list[int]) -> None:
    with tempfile.TemporaryDirectory() as d:
        log = Log(Path(d) / "p", **cfg)
        for buf in appends:
            log.append(bytearray(b"".join(encode(r) for r in buf)), now_ms=0)
        batches = [parse(r) for r in log_batches(log)]
        assert sum(len(b.records) for b in batches) == sum(len(r) for buf in appends for r in buf)
        check_lookups(log, batches, probe_ts)
        log.close()
        with Log(Path(d) / "p", **cfg) as log2:  # clean reopen: same answers
            assert log2.recovery["clean"]
            check_lookups(log2, batches, probe_ts)


damage_st = st.sampled_from(["truncate", "flip", "garbage"])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cfg=config_st, appends=st.lists(buffer_st, min_size=1, max_size=25), damage=damage_st,
       where=st.floats(0, 1, exclude_max=True), seg_pick=st.floats(0, 1, exclude_max=True),
       xor=st.integers(1, 255), garbage=st.binary(min_size=1, max_size=80),
       probe_ts=st.lists(st.integers(-1, 10_001), max_size=4))
def test_unclean_reopen_keeps_longest_valid_prefix(cfg: dict, appends: list, damage: str, where: float,
                                                   seg_pick: float, xor: int, garbage: bytes,
                                                   probe_ts: list[int]) -> None:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "p"
        log = Log(path, **cfg)
        for buf in appends:
            log.append(bytearray(b"".join(encode(r) for r in buf)), now_ms=0)
        segs = [(s.base_offset, s.size_bytes) for s in log.segments()]
        log.close(clean=False)  # a crash (the page cache survives)

        files = [path / f"{base:020d}.log" for base, _ in segs]
        data = [f.read_bytes() for f in files]
        k = len(segs) - 1 if damage == "garbage" else int(seg_pick * len(segs))
        k = min(k, len(segs) - 1)
        seg = bytearray(data[k])
        if damage == "truncate" or not seg:
            seg = seg[:int(where * len(seg))]
        elif damage == "flip":
            # a byte covered by some check: anything but baseOffset and
            # partitionLeaderEpoch, which no checksum covers (as in Kafka)
            starts, pos = [], 0
            for raw in segment_batches(bytes(seg)):
                starts.append(pos)
                pos += len(raw)
            p = int(where * len(seg))
            rel = p - max(s for s in starts if s <= p)
            if rel < 8 or 12 <= rel < 16:
                p += 16 - rel if rel >= 12 else 8 - rel
            seg[p] ^= xor
        else:
            seg += garbage
        files[k].write_bytes(bytes(seg))

        data[k] = bytes(seg)
        expected: list[bytes] = []
        for raw_seg in data[:k]:
            expected += segment_batches(raw_seg)
        # from the damaged segment on, each segment keeps its valid prefix;
        # the first one cut ends the log (later segments are dropped)
        kept, cut = len(segs), False
        for j in range(k, len(segs)):
            prev_next = parse(expected[-1]).last + 1 if expected else segs[0][0]
            ok = valid_prefix(data[j], segs[j][0], prev_next)
            expected += ok
            if sum(map(len, ok)) != len(data[j]):
                kept, cut = j + 1, True
                break

        with Log(path, **cfg) as log2:
            r = log2.recovery
            assert not r["clean"]
            assert log_batches(log2) == expected  # exactly the longest valid prefix
            assert (r["first_error"] != 0) == cut
            assert log2.segment_count == kept
            batches = [parse(x) for x in expected]
            check_lookups(log2, batches, probe_ts)
            # appends continue right after the kept prefix
            nxt = batches[-1].last + 1 if batches else log2.end_offset
            assert log2.append(bytearray(encode([(5, b"", 1)])), now_ms=0).first_offset == nxt
