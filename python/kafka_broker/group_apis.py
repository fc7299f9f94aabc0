"""Wiring of the group coordinator (``kafka_broker.groups``) into the broker.

``__consumer_offsets`` is an ``InternalTopic`` (internal_topic.py): an ordinary
compacted topic of ``Storage``, created on the first write with
``offsets.topic.num.partitions`` partitions; the coordinator reads it back at
start-up through the same ``kafka_core.Log`` objects.  Appends go through
``InternalTopic.append``: in call order on the event loop, then (when the flush
policy asks) the flush thread's group commit, exactly like an acks=all
produce, so an OffsetCommit answered with NONE is in the log (page cache at
least: it survives kill -9 of the broker).

Every group API handler returns the coordinator's coroutine; the server runs
it as a task (JoinGroup/SyncGroup may park) and answers in request order.

TxnOffsetCommit v5+ is a TV2 client's (KIP-890 part 2: no AddOffsetsToTxn): the
group's ``__consumer_offsets`` partition is added to the transaction through
the transaction coordinator (``Txns.verify``) before the offsets are written;
v0-4 only verify that AddOffsetsToTxn added it
(``transaction.partition.verification.enable``, KIP-890 part 1).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from kafka_protocol.errors import ErrorCode as E

from .groups import GroupCoordinator, LogBackend, NodeInfo, OffsetsStore, RequestContext, TopicInfo
from .internal_topic import InternalTopic
from .log import INTERNAL_TOPICS, OFFSETS_TOPIC
from .registry import LocalRegistry, TopicRegistry

if TYPE_CHECKING:
    from .cluster.node import ClusterNode
    from .config import BrokerConfig, Listener
    from .log import Topic
    from .server import RequestContext as ServerContext
    from .storage import Storage
    from .txn_apis import Txns

log = logging.getLogger("kafka_broker.groups")
OFFSETS_COMMIT_TIMEOUT_S = 5.0      # Kafka's offsets.commit.timeout.ms default

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
    28: (0, 5, "txn_offset_commit"),
    42: (0, 2, "delete_groups"),
    47: (0, 0, "offset_delete"),
    68: (0, 1, "consumer_group_heartbeat"),
    69: (0, 0, "consumer_group_describe"),
}


class GroupDeps(Protocol):
    """What the group handlers need of the broker: the coordinator and the advertised addresses."""

    groups: Groups | None
    txns: Txns | None
    config: BrokerConfig

    def advertised(self, listener: Listener) -> Listener: ...


class Groups:
    """The broker's coordinator plus the ``__consumer_offsets`` plumbing."""

    def __init__(self, storage: Storage, config: BrokerConfig, node_id: int,
                 cluster: ClusterNode | None = None, registry: TopicRegistry | None = None) -> None:
        self.storage = storage
        self.config = config
        self.cluster = cluster
        self.registry: TopicRegistry = registry or LocalRegistry(storage, node_id, config.get("broker.rack"))
        existing = self.storage.topics.get(OFFSETS_TOPIC)
        n = len(existing.partitions) if existing is not None else self.config["offsets.topic.num.partitions"]
        self.topic = InternalTopic(OFFSETS_TOPIC, n, storage=storage, config=config, cluster=cluster,
                                   registry=self.registry, rf_key="offsets.topic.replication.factor",
                                   segment_key="offsets.topic.segment.bytes", what="offsets topic",
                                   timeout_s=OFFSETS_COMMIT_TIMEOUT_S)
        self.backend = LogBackend(None, n, logs=self.topic.log_for, append=self.topic.append)
        self.store = OffsetsStore(self.backend)
        # In a cluster this broker coordinates the groups of the __consumer_offsets partitions it
        # leads, loaded when it becomes their leader (Kafka's GroupMetadataManager).
        self.owned: set[int] = set()
        self.loading: dict[int, asyncio.Task[None]] = {}
        if cluster is not None:
            self.store.loaded = True      # nothing to read before leadership arrives
        adv = next(iter(self.config.advertised.values()))
        self.coord = GroupCoordinator(
            self.store, config=self.config,
            node=lambda: NodeInfo(node_id, adv.host, adv.port),
            topic_info=self._topic_info, topic_name=self._topic_name,
            all_topics=lambda: [t for t in self.registry.names() if t not in INTERNAL_TOPICS])
        if cluster is not None:
            self.coord.owner = self._owner
        else:
            self.coord.owner = self._owner_local
            storage.log_dirs.listeners.append(self._log_dir_offline)

    async def start(self) -> None:
        await self.coord.start()
        log.info("group coordinator: %d group(s) loaded from %s", len(self.coord.groups), OFFSETS_TOPIC)

    def close(self) -> None:
        for t in self.loading.values():
            t.cancel()
        self.coord.close()

    # -- the cluster: coordinator of the partitions this broker leads ------------

    def _owner(self, group_id: str) -> int:
        p = self.store.partition_for(group_id)
        if p in self.owned:
            return 0
        return E.COORDINATOR_LOAD_IN_PROGRESS if p in self.loading else E.NOT_COORDINATOR

    # -- a single node: partitions of __consumer_offsets in a failed log dir --------

    def _owner_local(self, group_id: str) -> int:
        """Not the coordinator of a group whose ``__consumer_offsets`` partition is in an offline
        log dir: its committed offsets cannot be read or written (answering "none committed"
        would reset its consumers)."""
        return E.NOT_COORDINATOR if self.topic.offline(self.store.partition_for(group_id)) else E.NONE

    def _log_dir_offline(self, d: Any) -> None:
        for p in self.topic.offline_partitions(d.path):
            gone = self.coord.unload_partition(p)
            log.warning("group coordinator: %s-%d is in the offline log dir %s: %d group(s) unloaded",
                        OFFSETS_TOPIC, p, d.path, len(gone))

    def on_leadership(self, partition: int, leader: bool) -> None:
        """``__consumer_offsets-<partition>`` became led here (load its groups) or not (unload)."""
        task = self.loading.pop(partition, None)
        if task is not None:
            task.cancel()
        if not leader:
            if partition in self.owned:
                self.owned.discard(partition)
                gone = self.coord.unload_partition(partition)
                log.info("group coordinator: %s-%d led elsewhere now: %d group(s) unloaded", OFFSETS_TOPIC,
                         partition, len(gone))
            return
        self.owned.discard(partition)
        self.coord.unload_partition(partition)    # whatever an earlier term left in memory

        async def load() -> None:
            await self.coord.load_partition(partition)
            self.owned.add(partition)
            self.loading.pop(partition, None)
            n = sum(1 for g in self.coord.groups if self.store.partition_for(g) == partition)
            log.info("group coordinator: %s-%d loaded, %d group(s)", OFFSETS_TOPIC, partition, n)
        self.loading[partition] = asyncio.ensure_future(load())

    # -- callables handed to the coordinator ------------------------------------

    def _topic_info(self, name: str) -> TopicInfo | None:
        t = self.registry.get(name)
        if t is None or not t.num_partitions:
            return None
        return TopicInfo(t.name, t.id, t.num_partitions)

    def _topic_name(self, topic_id: Any) -> str | None:
        t = self.registry.get_by_id(topic_id)
        return None if t is None else t.name

    async def ensure_cluster_topic(self) -> None:
        """In a cluster: ``__consumer_offsets`` in ZooKeeper with offsets.topic.replication.factor
        replicas; refused (COORDINATOR_NOT_AVAILABLE to the asking client) while fewer brokers
        are alive, as Kafka does."""
        await self.topic.ensure_cluster_topic()

    async def ensure_topic(self) -> Topic:
        """``__consumer_offsets`` (created once, on first use, like Kafka does)."""
        return await self.topic.ensure_topic()


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
    """The coordinator is this node, as reached through the listener the request came in on; in a
    cluster, the leader of the key's partition of ``__consumer_offsets`` (groups) or of
    ``__transaction_state`` (key type 1, transactional ids), created on first use."""
    g = b.groups
    assert g is not None
    adv = b.advertised(ctx.listener)
    cluster = g.cluster
    topic: InternalTopic = g.topic
    partition_for: Callable[[str], int] = g.store.partition_for
    txns = b.txns
    if ctx.api_version >= 1 and req.key_type == 1 and txns is not None:
        topic, partition_for = txns.topic, txns.coord.partition_for

    async def run() -> Any:
        resp = await g.coord.find_coordinator(req, ctx.api_version, _ctx(ctx))
        entries = getattr(resp, "coordinators", None) if ctx.api_version >= 4 else [resp]
        if cluster is not None:
            try:
                await topic.ensure_cluster_topic()
                missing = None
            except Exception as exc:  # noqa: BLE001 - not enough brokers yet, or ZooKeeper unreachable
                missing = str(exc)
            for e in entries or []:
                if e.error_code != 0:
                    continue
                key = e.key if ctx.api_version >= 4 else req.key
                leader = cluster.metadata.leader_of(topic.name, partition_for(key))
                ep = cluster.metadata.endpoint(leader, ctx.listener.name) if leader >= 0 else None
                if missing is not None or ep is None:
                    e.error_code, e.error_message = E.COORDINATOR_NOT_AVAILABLE, missing
                    e.node_id, e.host, e.port = -1, "", -1
                else:
                    e.node_id, (e.host, e.port) = leader, ep
            return resp
        for e in entries or []:
            if e.error_code != 0:
                continue
            if topic.offline(partition_for(e.key if ctx.api_version >= 4 else req.key)):
                e.error_code, e.error_message = E.COORDINATOR_NOT_AVAILABLE, "its partition's log dir is offline"
                e.node_id, e.host, e.port = -1, "", -1
            else:
                e.host, e.port = adv.host, adv.port
        return resp
    return run()


_plain_txn_offset_commit = _group_handler("txn_offset_commit")
# what the producer hears when the transaction coordinator did not add the partition: fenced is
# INVALID_PRODUCER_EPOCH (AddPartitionsToTxnManager), a retriable failure COORDINATOR_NOT_AVAILABLE
_ADD_ERRORS: dict[int, int] = {E.PRODUCER_FENCED: E.INVALID_PRODUCER_EPOCH, E.CONCURRENT_TRANSACTIONS: E.COORDINATOR_NOT_AVAILABLE,
               E.NETWORK_EXCEPTION: E.COORDINATOR_NOT_AVAILABLE, E.NOT_COORDINATOR: E.COORDINATOR_NOT_AVAILABLE,
               E.COORDINATOR_LOAD_IN_PROGRESS: E.COORDINATOR_NOT_AVAILABLE}


def handle_txn_offset_commit(b: GroupDeps, ctx: ServerContext, req: Any) -> Any:
    g, txns = b.groups, b.txns
    assert g is not None
    v = ctx.api_version
    if (txns is None or g.coord.unavailable(req.group_id) or not req.group_id
            or req.producer_id < 0 or req.producer_epoch < 0
            or (v < 5 and not b.config["transaction.partition.verification.enable"])):
        return _plain_txn_offset_commit(b, ctx, req)

    async def run() -> Any:
        from kafka_protocol.messages import TxnOffsetCommitResponse as R

        tp = (OFFSETS_TOPIC, g.store.partition_for(req.group_id))
        got = await txns.verify(req.transactional_id, req.producer_id, req.producer_epoch, [tp], v >= 5)
        code = got.get(tp, E.UNKNOWN_SERVER_ERROR)
        if code:
            code = _ADD_ERRORS.get(code, code)
            if code == E.TRANSACTION_ABORTABLE and v < 4:     # v4 added TRANSACTION_ABORTABLE
                code = E.INVALID_TXN_STATE
            return R(throttle_time_ms=0, topics=[R.TxnOffsetCommitResponseTopic(name=t.name, partitions=[
                R.TxnOffsetCommitResponsePartition(partition_index=p.partition_index, error_code=code)
                for p in t.partitions]) for t in req.topics])
        return await g.coord.txn_offset_commit(req, v, _ctx(ctx))
    return run()


def handlers() -> dict[int, tuple[int, int, Any]]:
    out: dict[int, tuple[int, int, Any]] = {}
    for key, (lo, hi, method) in GROUP_APIS.items():
        out[key] = (lo, hi, handle_find_coordinator if key == 10 else
                    handle_txn_offset_commit if key == 28 else _group_handler(method))
    return out
