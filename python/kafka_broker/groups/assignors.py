"""Server-side partition assignors of KIP-848 consumer groups: "uniform" and "range".

An assignor maps each member to the partitions it should own, from the
members' subscriptions (topic ids), the partition count of each topic, and
the previous target assignment:

- every partition of a subscribed topic goes to exactly one member that
  subscribes to it (complete and disjoint);
- "uniform" (the default, like Kafka's UniformAssignor) balances the number
  of partitions per member and is sticky: a partition stays with its owner
  unless balance needs it elsewhere, so a rebalance moves as little as it can;
- "range" (like the classic RangeAssignor) gives each member of a topic a
  contiguous range, members ordered by member id, so co-partitioned topics
  line up.
"""

from __future__ import annotations

from collections.abc import Mapping
from uuid import UUID

Assignment = dict[str, dict[UUID, set[int]]]


class UniformAssignor:
    name = "uniform"

    def assign(self, members: Mapping[str, set[UUID]], topics: Mapping[UUID, int],
               previous: Mapping[str, Mapping[UUID, set[int]]]) -> Assignment:
        owned: dict[str, set[tuple[UUID, int]]] = {m: set() for m in members}
        taken: set[tuple[UUID, int]] = set()
        # 1. keep what each member owned and may still own
        for m in sorted(members):
            subs = members[m]
            for tid, parts in previous.get(m, {}).items():
                if tid not in subs or tid not in topics:
                    continue
                for p in parts:
                    tp = (tid, p)
                    if p < topics[tid] and tp not in taken:
                        owned[m].add(tp)
                        taken.add(tp)
        # 2. a member over its fair share gives back its surplus (homogeneous quota as a bound)
        total = sum(topics[t] for t in {t for s in members.values() for t in s if t in topics})
        if members:
            cap = -(-total // len(members))
            for m in sorted(members):
                if len(owned[m]) > cap:
                    for tp in sorted(owned[m])[cap:]:
                        owned[m].discard(tp)
                        taken.discard(tp)
        # 3. each free partition to the least-loaded eligible member
        for tid in sorted(topics):
            subscribers = sorted(m for m, s in members.items() if tid in s)
            if not subscribers:
                continue
            for p in range(topics[tid]):
                if (tid, p) in taken:
                    continue
                best = min(subscribers, key=lambda m: (len(owned[m]), m))
                owned[best].add((tid, p))
                taken.add((tid, p))
        # 4. move partitions from heavy to light members while that narrows the gap
        #    (each move lowers the sum of squared loads, so this ends)
        moved = True
        while moved:
            moved = False
            order = sorted(owned, key=lambda m: (len(owned[m]), m))
            for heavy in reversed(order):
                for light in order:
                    if len(owned[heavy]) - len(owned[light]) < 2:
                        break
                    movable = sorted(tp for tp in owned[heavy] if tp[0] in members[light])
                    if movable:
                        tp = movable[-1]
                        owned[heavy].discard(tp)
                        owned[light].add(tp)
                        moved = True
                        break
                if moved:
                    break
        return _grouped(owned)


class RangeAssignor:
    name = "range"

    def assign(self, members: Mapping[str, set[UUID]], topics: Mapping[UUID, int],
               previous: Mapping[str, Mapping[UUID, set[int]]]) -> Assignment:
        owned: dict[str, set[tuple[UUID, int]]] = {m: set() for m in members}
        for tid, n in topics.items():
            subscribers = sorted(m for m, s in members.items() if tid in s)
            if not subscribers:
                continue
            quota, extra = divmod(n, len(subscribers))
            start = 0
            for i, m in enumerate(subscribers):
                count = quota + (1 if i < extra else 0)
                owned[m].update((tid, p) for p in range(start, start + count))
                start += count
        return _grouped(owned)


def _grouped(owned: Mapping[str, set[tuple[UUID, int]]]) -> Assignment:
    out: Assignment = {}
    for m, tps in owned.items():
        d: dict[UUID, set[int]] = {}
        for tid, p in tps:
            d.setdefault(tid, set()).add(p)
        out[m] = d
    return out


ASSIGNORS = {a.name: a for a in (UniformAssignor(), RangeAssignor())}
DEFAULT_ASSIGNOR = "uniform"
