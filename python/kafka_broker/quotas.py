"""Client quotas (Kafka's ClientQuotaManager and ConnectionQuotas), set with AlterClientQuotas and
read with DescribeClientQuotas (Apache Kafka's ``kafka-configs --entity-type users|clients|ips``):

- ``producer_byte_rate`` / ``consumer_byte_rate`` (KIP-55 / KIP-219): bytes produced (the batches
  of a Produce request) and fetched (the records of a consumer's Fetch response) per second;
- ``request_percentage`` (KIP-124): the share of one thread's time the broker spends handling the
  client's requests, in percent (so 100 is one whole thread);
- ``connection_creation_rate`` for ``ip`` entities (KIP-612): new connections per second from an
  address (server.py closes the excess).

Which user/client-id quota applies: the most specific of Kafka's eight levels, user+client-id,
user+default client, user, default user+client-id, default user+default client, default user,
client-id, default client (``<default>`` is an entity name of None), looked up per key.  The user is
the connection's authenticated name (SASL, or the TLS principal without ``User:``); unauthenticated
clients are ``ANONYMOUS``.  An address's connection rate is its own ``ip`` entity's, else the
``<default>`` ip's; ip entities stand alone (never combined with a user or client id).

Measuring: per (user, client id) and per address, in ``quota.window.num`` windows of
``quota.window.size.seconds``, with Kafka's rate rule: the rate is over at least
``quota.window.num - 1`` windows.  Request time is the time from taking the request's frame to the
handler's return (decoding, authorization, the handler's synchronous part, where appends and
reads happen), Kafka's request-handler thread time; the time a request then waits (acks=all,
a long-poll fetch) is not work and is not counted, nor is the writing of the response (Kafka
records its network-thread time without throttling; we do not record it).  Inter-broker requests
(Kafka's cluster actions), follower fetches and the SASL exchange before authentication are
exempt, as in Kafka.

Over quota, the response says ``throttle_time_ms`` = (rate - quota) / quota * the measured window
and the connection is muted for that long after the response (KIP-219: the broker answers at once
and reads nothing more from that client until then).  A byte quota's throttle is capped at the
whole quota period (``window.num * window.size``), a request quota's at one window, as Kafka's
ClientRequestQuotaManager caps it; a request over both quotas is throttled by the longer one.
A connection over its address's rate is not counted (Kafka un-records it) and is closed once
its throttle time has passed, nothing read from it meanwhile (Kafka's delayed close, so a client
does not spin reconnecting); the throttle is capped at one window.

Storage: on one broker ``kc-quotas.json`` in the first log dir (written to a temporary file,
fsynced, renamed); in a cluster ZooKeeper, in Kafka's layout (cluster/quotas.py), so a quota set
through any broker holds on every broker.
"""

from __future__ import annotations

import ipaddress
import json
import os
import time
from collections import deque
from typing import Any

from kafka_protocol.errors import ErrorCode as E

QUOTAS_FILE = "kc-quotas.json"
CLIENT_KEYS = ("producer_byte_rate", "consumer_byte_rate", "request_percentage")
IP_KEYS = ("connection_creation_rate",)
KEYS = CLIENT_KEYS + IP_KEYS
ENTITY_TYPES = ("user", "client-id", "ip")
# Kafka's cluster actions (ApiKeys with clusterAction=true): inter-broker requests, never throttled
# by a request quota (KafkaApis answers them with sendResponseExemptThrottle)
EXEMPT_APIS = frozenset((4, 5, 6, 7, 27, 52, 53, 54, 55, 56, 57, 58, 62, 63, 67))
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


def _invalid(entity: Entity, ops: list[tuple[str, float | None]]) -> str | None:
    """Why AlterClientQuotas refuses an entry (INVALID_REQUEST), as Kafka's
    ClientQuotaControlManager checks it; None when it is valid."""
    types = [t for t, _ in entity]
    if not entity or len(set(types)) != len(types) or any(t not in ENTITY_TYPES for t in types):
        return f"Invalid quota entity {dict(entity)}: the entity types are user, client-id and ip"
    if "ip" in types:
        if len(types) > 1:
            return "An ip quota entity cannot be combined with a user or client-id"
        name = entity[0][1]
        if name is not None:
            try:
                ipaddress.ip_address(name)
            except ValueError:
                return f"{name} is not a valid IP address"
        allowed: tuple[str, ...] = IP_KEYS
    else:
        allowed = CLIENT_KEYS
    bad = [k for k, _ in ops if k not in allowed]
    if bad:
        return f"Invalid configuration key {bad[0]} for {'ip' if 'ip' in types else 'user/client-id'} entities " \
               f"(valid: {', '.join(allowed)})"
    for k, v in ops:
        if v is None:
            continue
        if v <= 0:
            return f"{k}: a quota must be a positive number"
        if k == "connection_creation_rate" and v != int(v):
            return f"{k} must be an integer"
    return None


def throttle_ms(s: Sensor, q: float, now: float, cap_ms: float) -> int:
    """Kafka's QuotaUtils.boundedThrottleTime: 0 within the quota, else (rate - quota) / quota *
    the measured window, at most ``cap_ms`` (a quota of 0 is always over: the cap)."""
    rate = s.rate(now)
    if rate <= q:
        return 0
    if q <= 0:
        return int(cap_ms)
    return int(min((rate - q) / q * s.window_size(now) * 1000, cap_ms))


class Quotas:
    def __init__(self, path: str, samples: int = 11, window_s: float = 1.0) -> None:
        self.path = path
        self.samples = samples
        self.window = window_s
        self._values: dict[Entity, dict[str, float]] = {}
        self.in_use: frozenset[str] = frozenset()     # the keys some entity sets
        self.sensors: dict[tuple[str, str, str], Sensor] = {}
        self.ip_sensors: dict[str, Sensor] = {}
        if os.path.exists(path):
            with open(path, encoding="utf-8") as f:
                self.values = {_parse(k): v for k, v in json.load(f).items()}

    @property
    def values(self) -> dict[Entity, dict[str, float]]:
        return self._values

    @values.setter
    def values(self, v: dict[Entity, dict[str, float]]) -> None:
        self._values = v
        self.in_use = frozenset(k for vals in v.values() for k in vals)
        if "connection_creation_rate" not in self.in_use:
            self.ip_sensors.clear()

    @property
    def active(self) -> bool:
        """Some user/client-id quota is set: requests go through Broker._throttled."""
        return any(k in self.in_use for k in CLIENT_KEYS)

    @property
    def request_quotas(self) -> bool:
        return "request_percentage" in self.in_use

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

    def _sensor(self, key: str, user: str, client_id: str) -> Sensor:
        s = self.sensors.get((key, user, client_id))
        if s is None:
            s = self.sensors[(key, user, client_id)] = Sensor(self.samples, self.window)
        return s

    def record(self, key: str, user: str, client_id: str, nbytes: int, now: float | None = None) -> int:
        """Count ``nbytes``; the throttle time (ms) the client has earned, 0 within its quota."""
        q = self.quota(key, user, client_id)
        if q is None:
            return 0
        now = time.monotonic() if now is None else now
        s = self._sensor(key, user, client_id)
        s.record(nbytes, now)
        return throttle_ms(s, q, now, self.samples * self.window * 1000)

    def record_request(self, user: str, client_id: str, seconds: float, now: float | None = None) -> int:
        """Count ``seconds`` of request handling (as percent-seconds, Kafka's nanosToPercentage);
        the throttle time (ms), at most one window (ClientRequestQuotaManager's bound)."""
        q = self.quota("request_percentage", user, client_id)
        if q is None:
            return 0
        now = time.monotonic() if now is None else now
        s = self._sensor("request_percentage", user, client_id)
        s.record(seconds * 100.0, now)
        return throttle_ms(s, q, now, self.window * 1000)

    def connection_rate(self, host: str) -> float | None:
        """The ``connection_creation_rate`` of an address: its own, else the default ip's."""
        for e in ((("ip", host),), (("ip", None),)):
            v = self.values.get(e)
            if v is not None and "connection_creation_rate" in v:
                return v["connection_creation_rate"]
        return None

    def record_connection(self, host: str, now: float | None = None) -> int:
        """A new connection from ``host``: 0 to accept it, else the ms after which to close it
        (the connection is then not counted, as Kafka's recordIpConnectionMaybeThrottle
        un-records it)."""
        if "connection_creation_rate" not in self.in_use:
            return 0
        q = self.connection_rate(host)
        if q is None:
            return 0
        now = time.monotonic() if now is None else now
        s = self.ip_sensors.get(host)
        if s is None:
            if len(self.ip_sensors) > 65536:       # addresses come and go: forget idle ones
                self.ip_sensors = {h: x for h, x in self.ip_sensors.items() if x.rate(now) > 0}
            s = self.ip_sensors[host] = Sensor(self.samples, self.window)
        s.record(1, now)
        ms = throttle_ms(s, q, now, self.window * 1000)
        if ms > 0:
            s.record(-1, now)
        return ms

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
            why = _invalid(entity, ops)
            if why is not None:
                results.append((E.INVALID_REQUEST, why))
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
        new = dict(self.values)
        if values:
            new[entity] = dict(values)
        else:
            new.pop(entity, None)
        self.values = new

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


class ConnectionRates:
    """``max.connection.creation.rate`` broker-wide and per listener (KIP-612, Kafka's
    ConnectionQuotas.recordConnectionAndGetThrottleTimeMs): each new connection is recorded, on
    the broker's sensor unless it came on the inter-broker listener while there are others (a
    protected listener), and on its listener's; over either rate, the longer throttle is the
    time the listener stops accepting (server.py: the connection is served after it, not
    refused), at most one window."""

    def __init__(self, samples: int, window_s: float, broker_rate: int | None, listener_rates: dict[str, int],
                 protected: str | None) -> None:
        self.samples, self.window = samples, window_s
        self.broker_rate = broker_rate
        self.listener_rates = listener_rates
        self.protected = protected
        self.broker = Sensor(samples, window_s)
        self.listeners = {name: Sensor(samples, window_s) for name in listener_rates}

    def _one(self, s: Sensor, q: float, now: float) -> int:
        s.record(1, now)
        return throttle_ms(s, q, now, self.window * 1000)

    def record(self, listener: str, now: float | None = None) -> int:
        now = time.monotonic() if now is None else now
        ms = 0
        if self.broker_rate is not None and listener != self.protected:
            ms = self._one(self.broker, self.broker_rate, now)
        s = self.listeners.get(listener)
        if s is not None:
            ms = max(ms, self._one(s, self.listener_rates[listener], now))
        return ms


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
