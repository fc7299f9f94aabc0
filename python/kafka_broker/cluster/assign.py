"""Replica assignment for new topics and partitions: Kafka's ``AdminUtils`` algorithm.

Rack-unaware: the first replica of each partition walks round the sorted broker list from a
random start, and the followers are shifted from it by an amount that grows once per round,
so that replicas of consecutive partitions land on different broker pairs.  Rack-aware (every
broker has ``broker.rack``): the same walk over a broker list that alternates racks, and a
follower is only placed on a rack (and broker) that holds no replica of the partition yet,
until every rack (broker) has one.
"""

from __future__ import annotations

import random


class AssignmentError(ValueError):
    """The replication factor cannot be met (Kafka's INVALID_REPLICATION_FACTOR)."""


def _replica_index(first: int, shift: int, j: int, n: int) -> int:
    s = 1 + (shift + j) % (n - 1)
    return (first + s) % n


def _rack_alternated(racks: dict[int, str]) -> list[int]:
    by_rack: dict[str, list[int]] = {}
    for b, r in sorted(racks.items()):
        by_rack.setdefault(r, []).append(b)
    iters = {r: iter(bs) for r, bs in by_rack.items()}
    order = sorted(by_rack)
    out: list[int] = []
    while len(out) < len(racks):
        for r in order:
            nxt = next(iters[r], None)
            if nxt is not None:
                out.append(nxt)
    return out


def assign_replicas(n_partitions: int, replication_factor: int, brokers: dict[int, str | None], *,
                    first_partition: int = 0, start_index: int = -1, shift: int = -1) -> dict[int, list[int]]:
    """partition -> replicas for partitions ``first_partition .. first_partition + n - 1``.
    ``brokers``: live broker id -> rack (None when unset)."""
    if replication_factor <= 0:
        raise AssignmentError("Replication factor must be larger than 0.")
    if replication_factor > len(brokers):
        raise AssignmentError(f"Replication factor: {replication_factor} larger than available brokers: "
                              f"{len(brokers)}.")
    racks = {b: r for b, r in brokers.items() if r is not None}
    if racks and len(racks) != len(brokers):
        raise AssignmentError("Not all brokers have rack information for replica rack aware assignment.")
    ids = _rack_alternated(racks) if racks else sorted(brokers)
    n = len(ids)
    start = random.randrange(n) if start_index < 0 else start_index
    next_shift = random.randrange(n) if shift < 0 else shift
    out: dict[int, list[int]] = {}
    pid = first_partition
    if not racks:
        for _ in range(n_partitions):
            if pid > 0 and pid % n == 0:
                next_shift += 1
            first = (pid + start) % n
            out[pid] = [ids[first]] + [ids[_replica_index(first, next_shift, j, n)]
                                       for j in range(replication_factor - 1)]
            pid += 1
        return out
    n_racks = len(set(racks.values()))
    for _ in range(n_partitions):
        if pid > 0 and pid % n == 0:
            next_shift += 1
        first = (pid + start) % n
        leader = ids[first]
        replicas = [leader]
        used_racks = {racks[leader]}
        used = {leader}
        k = 0
        for _ in range(replication_factor - 1):
            while True:
                b = ids[_replica_index(first, next_shift * n_racks, k, n)]
                k += 1
                if ((racks[b] not in used_racks or len(used_racks) == n_racks)
                        and (b not in used or len(used) == n)):
                    replicas.append(b)
                    used_racks.add(racks[b])
                    used.add(b)
                    break
        out[pid] = replicas
        pid += 1
    return out
