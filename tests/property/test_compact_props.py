"""Property tests of log compaction (Log.compact, csrc/kc_compact.c).

Random key/value workloads (small key space, tombstones, keyless records,
batches of several records, tiny segments and indexes) are compacted, maybe
twice, maybe with a crash at a random step of the swap, and compared with a
model: below the cleaner checkpoint only the latest record of each key stays
(tombstones too, until delete.retention.ms has passed), every keyless record
and everything above the checkpoint stays, offsets and order never change,
and offset lookups agree with a scan of the surviving batches.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kafka_core._log import Log
from tests.core.compact_model import expected, make, read_log

Rec = tuple[bytes | None, bytes | None]

record_st = st.tuples(
    st.one_of(st.none(), st.sampled_from([b"a", b"b", b"c", b"d", b"e", b""])),
    st.one_of(st.none(), st.binary(max_size=40)),
)
workload_st = st.lists(st.lists(record_st, min_size=1, max_size=6), min_size=1, max_size=60)
config_st = st.fixed_dictionaries({
    "segment_bytes": st.integers(200, 3000),
    "index_interval_bytes": st.integers(0, 400),
    "max_index_bytes": st.integers(24, 400),
})


def check(log: Log, model: list, end: int, drop: bool) -> None:
    recs, batches = read_log(log)
    assert recs == expected(model, end, drop)
    assert log.end_offset == len(model)
    # offsets strictly increase across batches; lookups agree with the scan
    for (_, b), (c, _) in zip(batches, batches[1:], strict=False):
        assert b < c
    for o in range(log.start_offset, log.end_offset):
        holder = next(((a, b) for a, b in batches if b >= o), None)
        if holder is None:
            continue
        pos = log.lookup(o)
        assert (pos.batch_base_offset, pos.batch_last_offset) == holder


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(work=workload_st, more=workload_st, cfg=config_st, expire=st.booleans(), second=st.booleans(),
       crash=st.integers(0, 3))
def test_compaction_matches_model(work: list[list[Rec]], more: list[list[Rec]], cfg: dict, expire: bool,
                                  second: bool, crash: int) -> None:
    # expire: every tombstone is past delete.retention.ms; else none is
    now, retention = (10**9, 1000) if expire else (5000, 10**12)
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "p-0"
        model: list = []
        log = Log(path, **cfg, now_ms=1000)

        def append(batches: list[list[Rec]], ts0: int) -> None:
            for i, recs in enumerate(batches):
                info = log.append(make(recs, ts0 + i), now_ms=ts0 + i)
                model.extend((info.first_offset + j, k, v) for j, (k, v) in enumerate(recs))

        append(work, 1000)
        log.roll(now_ms=2000)
        if crash:
            log.flush()
            try:
                log.compact(now, delete_retention_ms=retention, _crash_after=crash)
            except Exception:
                pass  # the simulated crash (or nothing to clean)
            log.close(clean=False)
            log = Log(path, **cfg, now_ms=3000)
            recs, _ = read_log(log)
            have = {o: (k, v) for o, k, v in recs}
            # whichever side of the swap recovery chose, nothing the cleaner keeps is lost
            for o, k, v in expected(model, len(model), expire):
                assert have.get(o) == (k, v)
            assert log.end_offset == len(model)
        stats = log.compact(now, delete_retention_ms=retention)
        end = log.cleaner_checkpoint
        assert stats["end_offset"] == end == log.segments()[-1].base_offset
        check(log, model, end, expire)  # after a crash too: the checkpoint did not move
        if second:
            append(more, 2500)
            log.roll(now_ms=4000)
            log.compact(now, delete_retention_ms=retention)
            end = log.cleaner_checkpoint
            check(log, model, end, expire)
        log.close(clean=bool(second))
        with Log(path, **cfg, now_ms=6000) as log2:
            assert log2.cleaner_checkpoint == end
            check(log2, model, end, expire)
