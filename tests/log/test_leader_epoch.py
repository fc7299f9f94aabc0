"""LeaderEpochCache: the cases of Kafka's LeaderEpochFileCacheTest, and the checkpoint file."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from kafka_broker.log.checkpoint import read_checkpoint
from kafka_broker.log.leader_epoch import LEADER_EPOCH_CHECKPOINT, UNDEFINED_EPOCH, LeaderEpochCache

UNDEF = (UNDEFINED_EPOCH, -1)


@pytest.fixture
def cache(tmp_path: Path) -> LeaderEpochCache:
    return LeaderEpochCache(str(tmp_path))


def three(cache: LeaderEpochCache) -> LeaderEpochCache:
    for e, o in ((2, 6), (3, 8), (4, 11)):
        cache.assign(e, o)
    return cache


def test_add_epoch_and_offset(cache: LeaderEpochCache) -> None:
    assert cache.latest_epoch() == -1 and cache.entries() == []
    assert cache.assign(2, 10)
    assert cache.latest_epoch() == 2
    assert cache.end_offset_for(2, 11) == (2, 11)


def test_latest_epoch_requested_returns_log_end(cache: LeaderEpochCache) -> None:
    three(cache)
    assert cache.end_offset_for(4, 20) == (4, 20)


def test_undefined_epoch_requested(cache: LeaderEpochCache) -> None:
    assert cache.end_offset_for(UNDEFINED_EPOCH, 73) == UNDEF
    three(cache)
    assert cache.end_offset_for(UNDEFINED_EPOCH, 73) == UNDEF


def test_empty_cache_is_undefined(cache: LeaderEpochCache) -> None:
    assert cache.end_offset_for(0, 0) == UNDEF


def test_same_epoch_later_offset_is_ignored(cache: LeaderEpochCache) -> None:
    cache.assign(2, 6)
    assert not cache.assign(2, 7)
    assert cache.entries() == [(2, 6)]
    assert cache.end_offset_for(2, 8) == (2, 8)


def test_same_epoch_earlier_offset_moves_it(cache: LeaderEpochCache) -> None:
    for e, o in ((5, 11), (6, 12), (7, 13)):
        cache.assign(e, o)
    assert cache.assign(7, 12)
    assert cache.entries() == [(5, 11), (7, 12)]


def test_start_offsets_increase(cache: LeaderEpochCache) -> None:
    cache.assign(2, 1)
    cache.assign(3, 0)
    assert cache.entries() == [(3, 0)]


def test_epochs_increase(cache: LeaderEpochCache) -> None:
    cache.assign(1, 5)
    cache.assign(2, 6)
    cache.assign(1, 7)    # an epoch in the past: later epochs go
    assert cache.latest_epoch() == 1
    assert cache.end_offset_for(1, 8) == (1, 8)
    assert cache.end_offset_for(2, 8) == UNDEF
    assert cache.entries() == [(1, 7)]


def test_requested_epoch_below_first_returns_first_start(cache: LeaderEpochCache) -> None:
    cache.assign(5, 11)
    cache.assign(6, 12)
    assert cache.end_offset_for(4, 0) == (4, 11)


def test_end_of_previous_epoch_is_start_of_next(cache: LeaderEpochCache) -> None:
    for e, o in ((1, 5), (1, 6), (1, 7), (2, 8), (2, 9)):
        cache.assign(e, o)
    assert cache.entries() == [(1, 5), (2, 8)]
    assert cache.end_offset_for(1, 10) == (1, 8)


def test_no_exact_epoch_returns_the_floor(cache: LeaderEpochCache) -> None:
    for e, o in ((0, 10), (2, 13), (4, 17)):
        cache.assign(e, o)
    assert cache.end_offset_for(0, 20) == (0, 13)
    assert cache.end_offset_for(1, 20) == (0, 13)
    assert cache.end_offset_for(2, 20) == (2, 17)
    assert cache.end_offset_for(3, 20) == (2, 17)


def test_epoch_above_every_known(cache: LeaderEpochCache) -> None:
    cache.assign(2, 100)
    assert cache.end_offset_for(3, 100) == UNDEF


def test_epochs_not_starting_at_zero(cache: LeaderEpochCache) -> None:
    cache.assign(2, 6)
    assert cache.end_offset_for(2, 7) == (2, 7)


def test_invalid_entries_refused(cache: LeaderEpochCache) -> None:
    with pytest.raises(ValueError):
        cache.assign(-1, 0)
    with pytest.raises(ValueError):
        cache.assign(0, -1)


def test_persisted_between_instances(tmp_path: Path) -> None:
    c = LeaderEpochCache(str(tmp_path))
    c.assign(2, 6)
    c.assign(3, 9)
    path = tmp_path / LEADER_EPOCH_CHECKPOINT
    assert path.read_text() == "0\n2\n2 6\n3 9\n"
    assert read_checkpoint(str(path), 2) == [["2", "6"], ["3", "9"]]
    assert LeaderEpochCache(str(tmp_path)).entries() == [(2, 6), (3, 9)]


def test_truncations_written_on_flush(tmp_path: Path) -> None:
    c = three(LeaderEpochCache(str(tmp_path)))
    c.truncate_from_end(8)
    assert LeaderEpochCache(str(tmp_path)).entries() == [(2, 6), (3, 8), (4, 11)]
    c.flush()
    assert LeaderEpochCache(str(tmp_path)).entries() == [(2, 6)]
    c.truncate_from_start(7)
    c.flush()
    assert LeaderEpochCache(str(tmp_path)).entries() == [(2, 7)]


def test_corrupt_file_starts_empty(tmp_path: Path) -> None:
    (tmp_path / LEADER_EPOCH_CHECKPOINT).write_text("0\n3\n1 2\n")
    assert LeaderEpochCache(str(tmp_path)).entries() == []
    (tmp_path / LEADER_EPOCH_CHECKPOINT).write_text("1\n0\n")
    assert LeaderEpochCache(str(tmp_path)).entries() == []
    assert not os.path.exists(tmp_path / (LEADER_EPOCH_CHECKPOINT + ".tmp"))


# -- truncate_from_end -----------------------------------------------------------------------

@pytest.mark.parametrize("end, kept", [
    (8, [(2, 6)]),                          # on an epoch boundary
    (9, [(2, 6), (3, 8)]),                  # inside an epoch
    (11, [(2, 6), (3, 8)]),
    (12, [(2, 6), (3, 8), (4, 11)]),        # past the last start: nothing goes
    (6, []),                                # at the first start: everything goes
    (0, []),
    (-1, [(2, 6), (3, 8), (4, 11)]),        # UNDEFINED_EPOCH_OFFSET: nothing goes
])
def test_truncate_from_end(cache: LeaderEpochCache, end: int, kept: list[tuple[int, int]]) -> None:
    three(cache).truncate_from_end(end)
    assert cache.entries() == kept
    assert cache.latest_epoch() == (kept[-1][0] if kept else -1)


# -- truncate_from_start ---------------------------------------------------------------------

@pytest.mark.parametrize("start, kept", [
    (11, [(4, 11)]),                        # clear all earliest, keep the latest
    (12, [(4, 12)]),                        # past the last start: the latest moves up
    (9, [(3, 9), (4, 11)]),                 # between epochs: the one holding it moves up
    (8, [(3, 8), (4, 11)]),                 # on an epoch boundary
    (6, [(2, 6), (3, 8), (4, 11)]),         # at the first start: nothing changes
    (5, [(2, 6), (3, 8), (4, 11)]),         # before it
    (-1, [(2, 6), (3, 8), (4, 11)]),        # UNDEFINED: nothing changes
])
def test_truncate_from_start(cache: LeaderEpochCache, start: int, kept: list[tuple[int, int]]) -> None:
    three(cache).truncate_from_start(start)
    assert cache.entries() == kept
    assert cache.latest_epoch() == 4


def test_truncate_from_start_between_boundaries(cache: LeaderEpochCache) -> None:
    for e, o in ((0, 0), (1, 7), (2, 10)):
        cache.assign(e, o)
    cache.truncate_from_start(8)
    assert cache.entries() == [(1, 8), (2, 10)]


def test_clear(cache: LeaderEpochCache) -> None:
    three(cache).clear()
    assert cache.entries() == [] and cache.latest_epoch() == -1
    cache.flush()
    assert LeaderEpochCache(os.path.dirname(cache.path)).entries() == []
