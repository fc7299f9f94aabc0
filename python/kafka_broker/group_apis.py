"""Wiring of the group coordinator (``kafka_broker.groups``) into the broker.

``__consumer_offsets`` is an ordinary compacted topic of ``Storage`` (so the
log cleaner, DescribeLogDirs and fetches see it), created on the first write
with ``offsets.topic.num.partitions`` partitions; the coordinator reads it
back at start-up through the same ``kafka_core.Log`` objects.  Appends go
through ``append``: in call order on the event loop, then (when the flush
policy asks) the flush thread's group commit, exactly like an acks=all
produce, so an OffsetCommit answered with NONE is in the log (page cache at
least: it survives kill -9 of the broker).

Every group API handler returns the coordinator's coroutine; the server runs
it as a task (JoinGroup/SyncGroup may park) and answers in request order.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from kafka_protocol.errors import ErrorCode as E

from .groups import GroupCoordinator, LogBackend, NodeInfo, OffsetsStore, RequestContext, TopicInfo
from .log import INTERNAL_TOPICS, OFFSETS_TOPIC, AppendError, AppendFailed, AppendOrigin

if TYPE_CHECKING:
    from .config import BrokerConfig, Listener
    from .log import Topic
    from .server import RequestContext as ServerContext
    from .storage import Storage

log = logging.getLogger("kafka_broker.groups")

# api key -> (min, max advertised, coordinator method): Apache Kafka 4.0's ranges (groups/__init__.py)
GROUP_APIS: dict[int, tuple[int, int, str]] = {
    8: (2, 9, "offset_commit"),
    9: (1, 9, "offset_fetch"),
    10: (0, 6, "find_coordinator"),
    11: (0, 9, "join_group"),
    12: (0, 4, "heartbeat"),
    13: (0, 5, "leave_group"),
    14: (0, 5, "sync_group"),
    15: (0, 6, "describe_groups"),
    16: (0, 5, "list_groups"),
    42: (0, 2, "delete_groups"),
    47: (0, 0, "offset_delete"),
    68: (0, 1, "consumer_group_heartbeat"),
    69: (0, 0, "consumer_group_describe"),
}


class GroupDeps(Protocol):
    """What the group handlers need of the broker: the coordinator and the advertised addresses."""

    groups: Groups | None

    def advertised(self, listener: Listener) -> Listener: ...


class Groups:
    """The broker's coordinator plus the ``__consumer_offsets`` plumbing."""

    def __init__(self, storage: Storage, config: BrokerConfig, node_id: int) -> None:
        self.storage = storage
        self.config = config
        self._creating: asyncio.Future[Topic] | None = None
        existing = self.storage.topics.get(OFFSETS_TOPIC)
        n = len(existing.partitions) if existing is not None else self.config["offsets.topic.num.partitions"]
        self.backend = LogBackend(None, n, logs=self._log_for, append=self._append)
        self.store = OffsetsStore(self.backend)
        adv = next(iter(self.config.advertised.values()))
        self.coord = GroupCoordinator(
            self.store, config=self.config,
            node=lambda: NodeInfo(node_id, adv.host, adv.port),
            topic_info=self._topic_info, topic_name=self._topic_name,
            all_topics=lambda: [t for t in self.storage.topics if t not in INTERNAL_TOPICS])

    async def start(self) -> None:
        await self.coord.start()
        log.info("group coordinator: %d group(s) loaded from %s", len(self.coord.groups), OFFSETS_TOPIC)

    def close(self) -> None:
        self.coord.close()

    # -- callables handed to the coordinator ------------------------------------

    def _topic_info(self, name: str) -> TopicInfo | None:
        t = self.storage.topics.get(name)
        if t is None or not t.partitions:
            return None
        return TopicInfo(t.name, t.id, len(t.partitions))

    def _topic_name(self, topic_id: Any) -> str | None:
        t = self.storage.topics_by_id.get(topic_id)
        return None if t is None else t.name

    def _log_for(self, partition: int) -> Any:
        p = self.storage.partition(OFFSETS_TOPIC, partition)
        return None if p is None or p.closed else p.log

    async def ensure_topic(self) -> Topic:
        """``__consumer_offsets`` (created once, on first use, like Kafka does)."""
        t = self.storage.topics.get(OFFSETS_TOPIC)
        if t is not None and t.partitions:
            return t
        if self._creating is None:
            self._creating = asyncio.ensure_future(self._create())
        return await asyncio.shield(self._creating)

    async def _create(self) -> Topic:
        overrides = {"cleanup.policy": "compact",
                     "segment.bytes": str(self.config["offsets.topic.segment.bytes"])}
        try:
            return await self.storage.create_topic(OFFSETS_TOPIC, self.backend.num_partitions, overrides)
        finally:
            self._creating = None

    async def _append(self, partition: int, batch: bytearray) -> None:
        t = self.storage.topics.get(OFFSETS_TOPIC)
        if t is None or not t.partitions:
            t = await self.ensure_topic()
        p = t.partitions[partition]
        if p is None:   # not hosted here: this broker cannot coordinate its groups
            raise AppendFailed(f"{OFFSETS_TOPIC}-{partition}", AppendError(E.NOT_LEADER_OR_FOLLOWER, None))
        res = p.append(batch, AppendOrigin.COORDINATOR)
        if isinstance(res, AppendError):
            raise AppendFailed(p.name, res)
        if res.flushed is not None:
            await res.flushed


def _group_handler(method: str) -> Callable[[GroupDeps, ServerContext, Any], Any]:
    def handle(b: GroupDeps, ctx: ServerContext, req: Any) -> Any:
        g = b.groups
        assert g is not None
        return getattr(g.coord, method)(req, ctx.api_version, _ctx(ctx))
    handle.__name__ = f"handle_{method}"
    return handle


def _ctx(ctx: ServerContext) -> RequestContext:
    host = ctx.conn.peer.rsplit(":", 1)[0]
    return RequestContext(client_id=ctx.client_id or "", client_host=f"/{host}")


def handle_find_coordinator(b: GroupDeps, ctx: ServerContext, req: Any) -> Any:
    """The coordinator is this node, as reached through the listener the request came in on."""
    g = b.groups
    assert g is not None
    adv = b.advertised(ctx.listener)

    async def run() -> Any:
        resp = await g.coord.find_coordinator(req, ctx.api_version, _ctx(ctx))
        entries = getattr(resp, "coordinators", None) if ctx.api_version >= 4 else [resp]
        for e in entries or []:
            if e.error_code == 0:
                e.host, e.port = adv.host, adv.port
        return resp
    return run()


def handlers() -> dict[int, tuple[int, int, Any]]:
    out: dict[int, tuple[int, int, Any]] = {}
    for key, (lo, hi, method) in GROUP_APIS.items():
        out[key] = (lo, hi, handle_find_coordinator if key == 10 else _group_handler(method))
    return out
