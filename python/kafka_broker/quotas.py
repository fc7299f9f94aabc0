"""Client quotas: ``producer_byte_rate`` and ``consumer_byte_rate`` per user and client id (Kafka's
ClientQuotaManager, KIP-55 / KIP-219), set with AlterClientQuotas and read with
DescribeClientQuotas (Apache Kafka's ``kafka-configs --entity-type users|clients``).

Which quota applies: the most specific of Kafka's eight levels, user+client-id, user+default
client, user, default user+client-id, default user+default client, default user, client-id,
default client (``<default>`` is an entity name of None).  The user is the connection's
authenticated name (SASL, or the TLS principal without ``User:``); unauthenticated clients are
``ANONYMOUS``.

Measuring: bytes produced (the batches of a Produce request) and fetched (the records of a
consumer's Fetch response) per (user, client id), in ``quota.window.num`` windows of
``quota.window.size.seconds``, with Kafka's rate rule: the rate is over at least
``quota.window.num - 1`` windows.  Over quota, the response says ``throttle_time_ms`` =
(rate - quota) / quota * window, and the connection is muted for that long after the response
(KIP-219: the broker answers at once and reads nothing more from that client until then).

Storage: on one broker ``kc-quotas.json`` in the first log dir (written to a temporary file,
fsynced, renamed); in a cluster ZooKeeper, in Kafka's layout (cluster/quotas.py), so a quota set
through any broker holds on every broker.
``request_percentage`` and connection-rate quotas are refused (INVALID_REQUEST), not ignored.
"""

from __future__ import annotations

import json
import os
import time
from collections import deque
from typing import Any

from kafka_protocol.errors import ErrorCode as E

QUOTAS_FILE = "kc-quotas.json"
KEYS = ("producer_byte_rate", "consumer_byte_rate")
ENTITY_TYPES = ("user", "client-id")
DEFAULT = None     # an entity's default (Kafka's <default>)
Entity = tuple[tuple[str, str | None], ...]      # sorted (type, name or None)


def _key(entity: Entity) -> str:
    return ",".join(f"{t}={'<default>' if n is None else n}" for t, n in entity)


def _parse(key: str) -> Entity:
    out = []
    for part in key.split(","):
        t, _, n = part.partition("=")
        out.append((t, None if n == "<default>" else n))
    return tuple(sorted(out))


class Sensor:
    """Bytes in ``samples`` windows of ``window`` seconds, Kafka's Rate over a SampledStat: a
    window starts with the first record after the previous one ended, windows older than
    ``samples * window`` are dropped, and the rate is over at least ``samples - 1`` windows."""

    __slots__ = ("samples", "window", "buckets")

    def __init__(self, samples: int, window: float) -> None:
        self.samples = samples
        self.window = window
        self.buckets: deque[list[float]] = deque()      # [window start, bytes]

    def record(self, n: float, now: float) -> None:
        self._purge(now)
        b = self.buckets
        if not b or now >= b[-1][0] + self.window:
            b.append([now, 0.0])
            while len(b) > self.samples:
                b.popleft()
        b[-1][1] += n

    def _purge(self, now: float) -> None:
        b = self.buckets
        while b and b[0][0] < now - self.samples * self.window:
            b.popleft()

    def window_size(self, now: float) -> float:
        """Kafka's ``Rate.windowSize``: the elapsed time of the kept windows, at least
        ``samples - 1`` whole windows."""
        b = self.buckets
        elapsed = now - b[0][0] if b else 0.0
        full = int(elapsed // self.window)
        if full < self.samples - 1:
            elapsed += (self.samples - 1 - full) * self.window
        return max(elapsed, self.window)

    def rate(self, now: float) -> float:
        self._purge(now)
        return sum(x[1] for x in self.buckets) / self.window_size(now)


class Quotas:
    def __init__(self, path: str, samples: int = 11, window_s: float = 1.0) -> None:
        self.path = path
        self.samples = samples
        self.window = window_s
        self.values: dict[Entity, dict[str, float]] = {}
        self.sensors: dict[tuple[str, str, str], Sensor] = {}
        if os.path.exists(path):
            with open(path, encoding="utf-8") as f:
                self.values = {_parse(k): v for k, v in json.load(f).items()}

    @property
    def active(self) -> bool:
        return bool(self.values)

    def quota(self, key: str, user: str, client_id: str) -> float | None:
        """The quota that applies (Kafka's precedence, see the module docstring)."""
        levels: tuple[Entity, ...] = (
            (("client-id", client_id), ("user", user)), (("client-id", None), ("user", user)), (("user", user),),
            (("client-id", client_id), ("user", None)), (("client-id", None), ("user", None)), (("user", None),),
            (("client-id", client_id),), (("client-id", None),))
        for e in levels:
            v = self.values.get(e)
            if v is not None and key in v:
                return v[key]
        return None

    def record(self, key: str, user: str, client_id: str, nbytes: int, now: float | None = None) -> int:
        """Count ``nbytes``; the throttle time (ms) the client has earned, 0 within its quota."""
        q = self.quota(key, user, client_id)
        if q is None:
            return 0
        now = time.monotonic() if now is None else now
        s = self.sensors.get((key, user, client_id))
        if s is None:
            s = self.sensors[(key, user, client_id)] = Sensor(self.samples, self.window)
        s.record(nbytes, now)
        rate = s.rate(now)
        if rate <= q or q <= 0:
            return 0 if q > 0 else int(self.samples * self.window * 1000)
        ms = (rate - q) / q * s.window_size(now) * 1000
        return int(min(ms, self.samples * self.window * 1000))

    # -- the APIs ---------------------------------------------------------------------

    def describe(self, components: list[tuple[str, int, str | None]], strict: bool) -> list[tuple[Entity, dict[str, float]]]:
        """DescribeClientQuotas: components are (entity type, match type 0 exact / 1 default /
        2 any, name)."""
        out = []
        for e, v in self.values.items():
            types = dict(e)
            ok = True
            for t, mt, name in components:
                if t not in types:
                    ok = False
                    break
                if mt == 0 and types[t] != name or mt == 1 and types[t] is not None:
                    ok = False
                    break
            if ok and strict and set(types) != {c[0] for c in components}:
                ok = False
            if ok:
                out.append((e, dict(v)))
        return out

    def plan(self, entries: list[tuple[Entity, list[tuple[str, float | None]]]],
             ) -> tuple[list[tuple[int, str | None]], dict[Entity, dict[str, float]]]:
        """AlterClientQuotas checked against the current values: a result per entry, and the new
        values of every entity a valid entry changes (an empty dict: the entity has no quota left)."""
        results: list[tuple[int, str | None]] = []
        changed: dict[Entity, dict[str, float]] = {}
        for entity, ops in entries:
            types = [t for t, _ in entity]
            if not entity or len(set(types)) != len(types) or any(t not in ENTITY_TYPES for t in types):
                results.append((E.INVALID_REQUEST, "Quota entities are user and/or client-id (ip quotas and "
                                                   "other entity types are not implemented by kafka-core)"))
                continue
            bad = [k for k, _ in ops if k not in KEYS]
            if bad:
                results.append((E.INVALID_REQUEST, f"Quota keys {bad}: kafka-core enforces only "
                                                   f"{', '.join(KEYS)}"))
                continue
            if any(v is not None and v <= 0 for _, v in ops):
                results.append((E.INVALID_REQUEST, "A quota must be a positive number"))
                continue
            cur = changed.setdefault(entity, dict(self.values.get(entity, {})))
            for k, v in ops:
                if v is None:
                    cur.pop(k, None)
                else:
                    cur[k] = float(v)
            results.append((0, None))
        return results, {e: v for e, v in changed.items() if v != self.values.get(e, {})}

    def set_entity(self, entity: Entity, values: dict[str, float]) -> None:
        if values:
            self.values[entity] = dict(values)
        else:
            self.values.pop(entity, None)

    def alter(self, entries: list[tuple[Entity, list[tuple[str, float | None]]]], validate_only: bool,
              ) -> list[tuple[int, str | None]]:
        """AlterClientQuotas on one broker: the quotas file rewritten (fsynced, renamed) first."""
        results, changed = self.plan(entries)
        if not validate_only and changed:
            new = dict(self.values)
            for e, v in changed.items():
                if v:
                    new[e] = v
                else:
                    new.pop(e, None)
            tmp = self.path + ".tmp"
            with open(tmp, "w", encoding="utf-8") as f:
                json.dump({_key(e): v for e, v in new.items()}, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
            self.values = new
        return results


def handle_describe_client_quotas(b: Any, ctx: Any, req: Any) -> Any:
    from kafka_protocol.messages import DescribeClientQuotasResponse as R

    comps = [(c.entity_type, c.match_type, c.match) for c in req.components]

    def answer() -> Any:
        found = b.quotas.describe(comps, req.strict)
        return R(throttle_time_ms=0, error_code=0, error_message=None, entries=[
            R.EntryData(entity=[R.EntityData(entity_type=t, entity_name=n) for t, n in e],
                        values=[R.ValueData(key=k, value=v) for k, v in sorted(vals.items())])
            for e, vals in found])
    if b.cluster is None:
        return answer()

    async def run() -> Any:     # in a cluster: what ZooKeeper holds now, as Kafka's ZooKeeper mode reads it
        await b.cluster.zk_quotas.load()
        return answer()
    return run()


def handle_alter_client_quotas(b: Any, ctx: Any, req: Any) -> Any:
    from kafka_protocol.messages import AlterClientQuotasResponse as R

    entries = [(tuple(sorted((x.entity_type, x.entity_name) for x in en.entity)),
                [(op.key, None if op.remove else op.value) for op in en.ops]) for en in req.entries]

    def answer(res: list[tuple[int, str | None]]) -> Any:
        return R(throttle_time_ms=0, entries=[
            R.EntryData(error_code=code, error_message=msg,
                        entity=[R.EntityData(entity_type=x.entity_type, entity_name=x.entity_name) for x in en.entity])
            for (code, msg), en in zip(res, req.entries, strict=True)])
    if b.cluster is None:
        return answer(b.quotas.alter(entries, req.validate_only))

    async def run() -> Any:
        return answer(await b.cluster.zk_quotas.alter(entries, req.validate_only))
    return run()
