"""Replica assignment: Kafka's AdminUtils cases (AdminZkClientTest, AdminRackAwareTest)."""

from __future__ import annotations

from collections import Counter

import pytest
from kafka_broker.cluster.assign import AssignmentError, _rack_alternated, assign_replicas


def test_rack_unaware_matches_kafka() -> None:
    got = assign_replicas(10, 3, {b: None for b in range(5)}, start_index=0, shift=0)
    assert got == {0: [0, 1, 2], 1: [1, 2, 3], 2: [2, 3, 4], 3: [3, 4, 0], 4: [4, 0, 1],
                   5: [0, 2, 3], 6: [1, 3, 4], 7: [2, 4, 0], 8: [3, 0, 1], 9: [4, 1, 2]}


def test_rack_alternated_broker_list_matches_kafka() -> None:
    racks = {0: "rack1", 1: "rack3", 2: "rack3", 3: "rack2", 4: "rack2", 5: "rack1"}
    assert _rack_alternated(racks) == [0, 3, 1, 5, 4, 2]


def test_rack_aware_spreads_racks_and_leaders() -> None:
    racks: dict[int, str | None] = {0: "rack1", 1: "rack2", 2: "rack2", 3: "rack3", 4: "rack3", 5: "rack1"}
    got = assign_replicas(6, 3, racks, start_index=2, shift=0)
    for reps in got.values():
        assert len({racks[r] for r in reps}) == 3, got
        assert len(set(reps)) == 3
    assert Counter(reps[0] for reps in got.values()) == Counter({b: 1 for b in range(6)})
    assert Counter(r for reps in got.values() for r in reps) == Counter({b: 3 for b in range(6)})


def test_new_partitions_continue_the_walk() -> None:
    brokers: dict[int, str | None] = {1: None, 2: None, 3: None}
    got = assign_replicas(3, 2, brokers, first_partition=3, start_index=0, shift=0)
    assert sorted(got) == [3, 4, 5]
    assert all(len(set(r)) == 2 for r in got.values())


def test_replication_factor_errors() -> None:
    with pytest.raises(AssignmentError, match="larger than available brokers: 2"):
        assign_replicas(1, 3, {1: None, 2: None})
    with pytest.raises(AssignmentError, match="must be larger than 0"):
        assign_replicas(1, 0, {1: None})
    with pytest.raises(AssignmentError, match="Not all brokers have rack information"):
        assign_replicas(1, 1, {1: "a", 2: None})
