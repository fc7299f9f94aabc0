"""Cluster view shared by producer, consumer and admin: bootstrap, one connection
per broker, the metadata cache and its refresh, group coordinator lookup.

Metadata refreshes are single-flight: callers that ask while one is running
wait for it.  A refresh asks any live broker (the least loaded connection),
falling back to every known broker and then to the bootstrap servers, so a
cluster whose brokers all restarted is found again.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import kafka_protocol as kp

from .conn import ApiKey, BrokerConnection
from .errors import (
    KafkaConnectionError,
    KafkaError,
    KafkaTimeoutError,
    SaslAuthenticationFailedError,
    SslAuthenticationError,
    for_code,
)
from .security import Security

__all__ = ["Cluster", "TopicMeta", "PartitionMeta", "parse_bootstrap"]

log = logging.getLogger("kafka_client")

RETRIABLE_METADATA_ERRORS = {3, 5, 6, 9, 74, 75}  # unknown topic, leader n/a, not leader, replica n/a, epochs


def parse_bootstrap(servers: str | Iterable[str]) -> list[tuple[str, int]]:
    if isinstance(servers, str):
        servers = servers.split(",")
    out = []
    for s in servers:
        s = s.strip()
        if not s:
            continue
        if s.startswith("["):  # [ipv6]:port
            host, _, port = s[1:].partition("]:")
        else:
            host, _, port = s.rpartition(":")
            if not host:
                host, port = port, "9092"
        out.append((host, int(port or 9092)))
    if not out:
        raise ValueError("bootstrap_servers is empty")
    return out


@dataclass
class PartitionMeta:
    partition: int
    leader: int
    leader_epoch: int
    error_code: int
    replicas: list[int] = field(default_factory=list)
    isr: list[int] = field(default_factory=list)


@dataclass
class TopicMeta:
    name: str
    error_code: int
    partitions: dict[int, PartitionMeta]
    topic_id: Any = None
    is_internal: bool = False

    @property
    def num_partitions(self) -> int:
        return len(self.partitions)

    def available(self) -> list[int]:
        return [p for p, m in self.partitions.items() if m.leader >= 0]


_COORDINATOR_BASE = 0x7FFFFFFF   # Integer.MAX_VALUE, as in the Java client


class Cluster:
    def __init__(self, bootstrap_servers: str | Iterable[str], *, client_id: str = "kafka-core-python",
                 request_timeout_ms: int = 30000, connect_timeout_ms: int = 10000,
                 metadata_max_age_ms: int = 300000, retry_backoff_ms: int = 100,
                 reconnect_backoff_ms: int = 50, allow_auto_create_topics: bool = True,
                 security: Security | None = None) -> None:
        self.bootstrap = parse_bootstrap(bootstrap_servers)
        self.security = security
        self.client_id = client_id
        self.request_timeout_ms = request_timeout_ms
        self.connect_timeout_ms = connect_timeout_ms
        self.metadata_max_age = metadata_max_age_ms / 1000
        self.retry_backoff = retry_backoff_ms / 1000
        self.reconnect_backoff = reconnect_backoff_ms / 1000
        self.allow_auto_create_topics = allow_auto_create_topics
        self.brokers: dict[int, tuple[str, int]] = {}
        self.topics: dict[str, TopicMeta] = {}
        self.cluster_id: str | None = None
        self.controller_id = -1
        self.tracked: set[str] = set()
        self.last_refresh = 0.0
        self._conns: dict[int, BrokerConnection] = {}
        self._connecting: dict[int, asyncio.Future[BrokerConnection]] = {}
        self._last_fail: dict[int, float] = {}
        self._refresh: asyncio.Future[None] | None = None
        self._refresh_again = False
        self._refresh_started = 0.0
        self._coordinators: dict[tuple[int, str], int] = {}
        self._coordinator_nodes: dict[int, int] = {}     # coordinator connection id -> broker id
        self._bootstrap_ids: dict[tuple[str, int], int] = {}
        self.closed = False
        self.metadata_listeners: list[Any] = []

    # ---- connections ----
    def _address(self, node_id: int) -> tuple[str, int]:
        real = self._coordinator_nodes.get(node_id)
        if real is not None:
            node_id = real
        addr = self.brokers.get(node_id)
        if addr is None:
            for a, i in self._bootstrap_ids.items():
                if i == node_id:
                    return a
            raise KafkaConnectionError(f"unknown broker node {node_id}")
        return addr

    def connection_if_ready(self, node_id: int) -> BrokerConnection | None:
        c = self._conns.get(node_id)
        return c if c is not None and c.connected else None

    async def connection(self, node_id: int) -> BrokerConnection:
        c = self._conns.get(node_id)
        if c is not None and c.connected:
            return c
        fut = self._connecting.get(node_id)
        if fut is None:
            fut = asyncio.ensure_future(self._connect(node_id))
            self._connecting[node_id] = fut
            fut.add_done_callback(functools.partial(self._connect_done, node_id))
        return await asyncio.shield(fut)

    def _connect_done(self, node_id: int, fut: asyncio.Future[BrokerConnection]) -> None:
        self._connecting.pop(node_id, None)

    async def _connect(self, node_id: int) -> BrokerConnection:
        if self.closed:
            raise KafkaConnectionError("client closed")
        wait = self._last_fail.get(node_id, 0) + self.reconnect_backoff - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        host, port = self._address(node_id)
        conn = BrokerConnection(host, port, node_id=node_id, client_id=self.client_id,
                                request_timeout_ms=self.request_timeout_ms,
                                connect_timeout_ms=self.connect_timeout_ms, security=self.security)
        try:
            await conn.connect()
        except KafkaError:
            self._last_fail[node_id] = time.monotonic()
            raise
        conn.on_close(self._on_conn_close)
        self._conns[node_id] = conn
        return conn

    def _on_conn_close(self, conn: BrokerConnection, exc: KafkaError) -> None:
        if self._conns.get(conn.node_id) is conn:
            del self._conns[conn.node_id]
            self._last_fail[conn.node_id] = time.monotonic()
            if not self.closed:
                log.debug("connection to node %s closed: %s", conn.node_id, exc)

    async def send(self, node_id: int, request: kp.Message, *, timeout: float | None = None,
                   version: int | None = None) -> Any:
        conn = await self.connection(node_id)
        return await conn.send(request, timeout=timeout, version=version)

    def _candidates(self) -> list[int]:
        """Nodes to ask for metadata: connected ones (least loaded first), then known brokers,
        then the bootstrap servers."""
        live = sorted((c.in_flight, n) for n, c in self._conns.items() if c.connected and n >= 0)
        out = [n for _, n in live]
        known = [n for n in self.brokers if n not in out]
        random.shuffle(known)
        out += known
        for addr in self.bootstrap:
            if addr not in self._bootstrap_ids:
                self._bootstrap_ids[addr] = -1 - len(self._bootstrap_ids)
            out.append(self._bootstrap_ids[addr])
        return out

    async def send_any(self, request: kp.Message, *, timeout: float | None = None) -> Any:
        """Send to the least loaded reachable broker."""
        errors: list[str] = []
        for node in self._candidates():
            try:
                conn = await self.connection(node)
            except KafkaError as exc:
                errors.append(str(exc))
                continue
            return await conn.send(request, timeout=timeout)
        raise KafkaConnectionError("no broker reachable: " + "; ".join(errors[-4:]))

    async def any_connection(self) -> BrokerConnection:
        errors: list[str] = []
        for node in self._candidates():
            try:
                return await self.connection(node)
            except KafkaError as exc:
                errors.append(str(exc))
        raise KafkaConnectionError("no broker reachable: " + "; ".join(errors[-4:]))

    # ---- metadata ----
    async def bootstrap_metadata(self, timeout: float | None = None) -> None:
        await self.refresh_metadata(timeout=timeout)

    async def refresh_metadata(self, topics: Iterable[str] | None = None, *, timeout: float | None = None) -> None:
        """Refresh brokers and the tracked topics (plus ``topics``, which become tracked)."""
        if topics:
            new = set(topics) - self.tracked
            if new:
                self.tracked |= new
                if self._refresh is not None and not self._refresh.done():
                    await asyncio.shield(self._refresh)  # it did not ask for the new topics
        if self._refresh is None or self._refresh.done():
            self._refresh = asyncio.ensure_future(self._do_refresh(timeout))
            self._refresh.add_done_callback(self._refresh_done)
        await asyncio.shield(self._refresh)

    def request_refresh(self) -> None:
        """Refresh soon, without waiting (after NOT_LEADER and friends).  As in the Java client,
        a request that comes while a refresh is already under way asks for another one after
        it (the running one may have been answered before the leader moved), and refreshes
        asked for this way start at most one per retry_backoff_ms."""
        if self._refresh is None or self._refresh.done():
            self._refresh = asyncio.ensure_future(self._do_refresh(None, backoff=True))
            self._refresh.add_done_callback(self._refresh_done)
        else:
            self._refresh_again = True

    def _refresh_done(self, fut: asyncio.Future[None]) -> None:
        if not fut.cancelled():
            fut.exception()  # retrieved: a failed background refresh is retried on demand
        if self._refresh_again and not self.closed:
            self.request_refresh()

    def invalidate_leader(self, topic: str, partition: int) -> None:
        """The broker said it does not lead ``topic``-``partition`` (NOT_LEADER_OR_FOLLOWER,
        LEADER_NOT_AVAILABLE, ...): forget the leader, so nothing is sent to the old one until
        a metadata refresh names the new one."""
        t = self.topics.get(topic)
        p = t.partitions.get(partition) if t is not None else None
        if p is not None:
            p.leader = -1

    def stale(self) -> bool:
        return time.monotonic() - self.last_refresh > self.metadata_max_age

    async def _do_refresh(self, timeout: float | None, backoff: bool = False) -> None:
        if backoff:
            wait = self._refresh_started + self.retry_backoff - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
        self._refresh_started = time.monotonic()
        deadline = time.monotonic() + (timeout if timeout is not None else self.request_timeout_ms / 1000)
        last: Exception | None = None
        while True:
            for node in self._candidates():
                if time.monotonic() > deadline:
                    break
                try:
                    conn = await asyncio.wait_for(self.connection(node), max(0.01, deadline - time.monotonic()))
                    version = conn.version(ApiKey.METADATA)
                    self._refresh_again = False  # what is asked from now on needs another refresh
                    topics = [kp.MetadataRequest.MetadataRequestTopic(name=t) for t in sorted(self.tracked)]
                    req = kp.MetadataRequest(topics=topics,
                                             allow_auto_topic_creation=self.allow_auto_create_topics)
                    resp = await conn.send(req, version=version)
                except (SaslAuthenticationFailedError, SslAuthenticationError):
                    raise       # wrong credentials or certificates do not get better with retries (Java's rule too)
                except (TimeoutError, KafkaError) as exc:
                    last = exc
                    continue
                self._apply_metadata(resp)
                return
            if time.monotonic() > deadline:
                raise KafkaTimeoutError(f"metadata refresh failed: {last}")
            await asyncio.sleep(self.retry_backoff)

    def _apply_metadata(self, resp: Any) -> None:
        self.brokers = {b.node_id: (b.host, b.port) for b in resp.brokers}
        self.cluster_id = resp.cluster_id
        self.controller_id = resp.controller_id
        for t in resp.topics:
            if t.name is None:
                continue
            parts = {p.partition_index: PartitionMeta(p.partition_index, p.leader_id, p.leader_epoch,
                                                      p.error_code, list(p.replica_nodes), list(p.isr_nodes))
                     for p in t.partitions}
            if t.error_code and t.error_code not in RETRIABLE_METADATA_ERRORS:
                self.topics[t.name] = TopicMeta(t.name, t.error_code, {})
            elif t.error_code:
                self.topics.pop(t.name, None) if not parts else None
                if parts:
                    self.topics[t.name] = TopicMeta(t.name, t.error_code, parts, t.topic_id, t.is_internal)
            else:
                self.topics[t.name] = TopicMeta(t.name, 0, parts, t.topic_id, t.is_internal)
        # Connections to brokers that left the cluster are closed.
        for n in list(self._conns):
            if n >= 0 and n not in self.brokers:
                self._conns[n].close()
        self.last_refresh = time.monotonic()
        for cb in self.metadata_listeners:
            cb()

    def leader_for(self, topic: str, partition: int) -> int:
        t = self.topics.get(topic)
        if t is None:
            return -1
        p = t.partitions.get(partition)
        return p.leader if p is not None else -1

    def leader_epoch(self, topic: str, partition: int) -> int:
        t = self.topics.get(topic)
        p = t.partitions.get(partition) if t else None
        return p.leader_epoch if p is not None else -1

    async def wait_for_topic(self, topic: str, timeout: float) -> TopicMeta:
        """Metadata of ``topic`` with at least one partition; raises its error when the broker says
        it cannot exist (e.g. INVALID_TOPIC_EXCEPTION), or a timeout."""
        deadline = time.monotonic() + timeout
        while True:
            t = self.topics.get(topic)
            if t is not None and t.error_code and t.error_code not in RETRIABLE_METADATA_ERRORS:
                raise for_code(t.error_code, f"topic {topic!r}")
            if t is not None and t.partitions:
                return t
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise KafkaTimeoutError(f"topic {topic!r} not present in metadata after {timeout:.3g}s")
            await self.refresh_metadata([topic], timeout=remaining)
            if topic not in self.topics or not self.topics[topic].partitions:
                await asyncio.sleep(min(self.retry_backoff, max(0.0, deadline - time.monotonic())))

    # ---- coordinators ----
    async def coordinator(self, key: str, key_type: int = 0, *, timeout: float | None = None) -> int:
        """Node id of the group (key_type 0) or transaction (1) coordinator of ``key``."""
        cached = self._coordinators.get((key_type, key))
        if cached is not None and cached in self.brokers:
            return cached
        deadline = time.monotonic() + (timeout if timeout is not None else self.request_timeout_ms / 1000)
        while True:
            conn = await self.any_connection()
            v = conn.version(ApiKey.FIND_COORDINATOR)
            if v >= 4:
                req = kp.FindCoordinatorRequest(key_type=key_type, coordinator_keys=[key])
            else:
                req = kp.FindCoordinatorRequest(key=key, key_type=key_type)
            resp = await conn.send(req, version=v)
            if v >= 4:
                c = resp.coordinators[0]
                code, msg, node, host, port = c.error_code, c.error_message, c.node_id, c.host, c.port
            else:
                code, msg, node, host, port = resp.error_code, resp.error_message, resp.node_id, resp.host, resp.port
            if not code:
                self.brokers.setdefault(node, (host, port))
                self._coordinators[(key_type, key)] = node
                return node
            err = for_code(code, msg)
            if not err.retriable or time.monotonic() > deadline:
                raise err
            await asyncio.sleep(self.retry_backoff)

    async def coordinator_connection(self, node_id: int) -> BrokerConnection:
        """A connection to broker ``node_id`` of its own for coordinator requests (commits,
        heartbeats, joins), as the Java client (node id ``Integer.MAX_VALUE - id``) and librdkafka
        (its "GroupCoordinator" handle) keep one: a broker answers a connection's requests in
        order, so a commit sent behind a fetch parked for ``fetch_max_wait_ms`` would wait for it."""
        cid = _COORDINATOR_BASE - node_id
        self._coordinator_nodes[cid] = node_id
        return await self.connection(cid)

    def coordinator_dead(self, key: str, key_type: int = 0) -> None:
        self._coordinators.pop((key_type, key), None)

    async def close(self) -> None:
        self.closed = True
        pending: list[asyncio.Future[Any]] = [f for f in self._connecting.values() if not f.done()]
        if self._refresh is not None and not self._refresh.done():
            self._refresh.cancel()
            pending.append(self._refresh)
        for f in pending:
            f.cancel()
        if pending:  # let them unwind (an unstarted task would warn "never awaited")
            await asyncio.gather(*pending, return_exceptions=True)
        for c in list(self._conns.values()):
            c.close()
        self._conns.clear()
