"""An internal compacted topic written by one of the broker's coordinators:
``__consumer_offsets`` (group_apis.py) and ``__transaction_state`` (txn_apis.py).

It is an ordinary topic of ``Storage`` (the log cleaner, DescribeLogDirs and fetches see it),
created on first use: on a single node locally with one replica, in a cluster through the
registry with its replication factor, refused while fewer brokers are alive (Kafka's
``AutoTopicCreationManager``: the client gets COORDINATOR_NOT_AVAILABLE and retries).

``append`` is the coordinators' only write path: ``Partition.append`` with the COORDINATOR
origin, in call order on the event loop; then the flush policy's group commit and, in a
cluster, the ISR (acks=all, with the topic's min ISR), so an answer that follows it survives
kill -9 of the broker and the loss of the leader.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from kafka_protocol.errors import ErrorCode as E

from .log import AppendError, AppendFailed, AppendOrigin

if TYPE_CHECKING:
    from .cluster.node import ClusterNode
    from .config import BrokerConfig
    from .log import Topic
    from .registry import TopicRegistry
    from .storage import Storage


class InternalTopic:
    """``rf_key``/``segment_key``/``min_isr_key``: the broker keys of its replication factor,
    segment size and (cluster only: one broker is the whole ISR) min ISR; ``what`` names it in
    errors as Kafka does ("offsets topic", "transactions state topic"); ``fixed``: topic configs the
    coordinator enforces besides compaction and the segment size."""

    def __init__(self, name: str, num_partitions: int, *, storage: Storage, config: BrokerConfig,
                 cluster: ClusterNode | None, registry: TopicRegistry, rf_key: str, segment_key: str,
                 what: str, min_isr_key: str | None = None, timeout_s: float = 5.0,
                 fixed: dict[str, str] | None = None) -> None:
        self.name = name
        self.num_partitions = num_partitions
        self.storage = storage
        self.config = config
        self.cluster = cluster
        self.registry = registry
        self.rf_key = rf_key
        self.segment_key = segment_key
        self.min_isr_key = min_isr_key
        self.what = what
        self.timeout_s = timeout_s
        self.fixed = fixed or {}
        self._creating: asyncio.Future[Topic] | None = None

    def overrides(self, cluster: bool) -> dict[str, str]:
        out = {"cleanup.policy": "compact", "segment.bytes": str(self.config[self.segment_key]), **self.fixed}
        if cluster and self.min_isr_key is not None:
            out["min.insync.replicas"] = str(self.config[self.min_isr_key])
        return out

    def log_for(self, partition: int) -> Any:
        p = self.storage.partition(self.name, partition)
        return None if p is None or p.closed else p.log

    def offline(self, partition: int) -> bool:
        """Single node: the partition is hosted in a log dir that went offline (at start-up or
        since): its coordinator state cannot be read or written, so this broker does not
        coordinate its keys (Kafka: no leader, FindCoordinator answers COORDINATOR_NOT_AVAILABLE)."""
        p = self.storage.partition(self.name, partition)
        return p is not None and p.offline

    def offline_partitions(self, path: str) -> list[int]:
        """The partitions hosted in the log dir ``path``."""
        t = self.storage.topics.get(self.name)
        if t is None:
            return []
        return [i for i in range(len(t.partitions))
                if (p := t.hosted_partition(i)) is not None and p.log_dir.path == path]

    async def ensure_cluster_topic(self) -> None:
        """In a cluster: the topic in ZooKeeper with its replication factor; RuntimeError while
        fewer brokers are alive."""
        reg = self.registry
        if reg.get(self.name) is not None:
            return
        rf = self.config[self.rf_key]
        live = len(reg.brokers())
        if live < rf:
            raise RuntimeError(f"Number of alive brokers '{live}' does not meet the required replication "
                               f"factor '{rf}' for the {self.what} (configured via '{self.rf_key}')")
        try:
            await reg.create(self.name, self.num_partitions, rf, None, self.overrides(True))
        except FileExistsError:
            pass

    async def ensure_topic(self) -> Topic:
        """Single node: the topic, created once, on first use (like Kafka does)."""
        t = self.storage.topics.get(self.name)
        if t is not None and t.partitions:
            return t
        if self._creating is None:
            self._creating = asyncio.ensure_future(self._create())
        return await asyncio.shield(self._creating)

    async def _create(self) -> Topic:
        try:
            return await self.storage.create_topic(self.name, self.num_partitions, self.overrides(False))
        finally:
            self._creating = None

    async def append(self, partition: int, batch: bytearray) -> None:
        """Append a coordinator's batch; raises ``AppendFailed`` with Kafka's code."""
        t = self.storage.topics.get(self.name)
        cluster = self.cluster
        if (t is None or not t.partitions) and cluster is not None:
            raise AppendFailed(f"{self.name}-{partition}", AppendError(E.NOT_LEADER_OR_FOLLOWER, None))
        if t is None or not t.partitions:
            t = await self.ensure_topic()
        p = t.partitions[partition]
        if p is None:   # not hosted here: this broker cannot coordinate its keys
            raise AppendFailed(f"{self.name}-{partition}", AppendError(E.NOT_LEADER_OR_FOLLOWER, None))
        if cluster is not None:
            rep = p.replication
            if rep is None or not rep.is_leader:
                raise AppendFailed(p.name, AppendError(E.NOT_LEADER_OR_FOLLOWER, None))
            if self.min_isr_key is not None and len(rep.isr) < t.effective["min.insync.replicas"]:
                raise AppendFailed(p.name, AppendError(E.NOT_ENOUGH_REPLICAS, None))
        res = p.append(batch, AppendOrigin.COORDINATOR)
        if isinstance(res, AppendError):
            raise AppendFailed(p.name, res)
        code = await durable(cluster, p, res, self.timeout_s)
        if code:
            raise AppendFailed(p.name, AppendError(code, None))


async def durable(cluster: Any, p: Any, res: Any, timeout_s: float) -> int:
    """After an append: until the flush policy's fsync (its error propagates) and, in a cluster,
    the ISR have it, as an acks=all produce is acknowledged; 0, or the error code."""
    if res.flushed is not None:
        await res.flushed
    if cluster is None:
        return 0
    cluster.replicas.maybe_advance_hw(p)
    w = cluster.replicas.wait_replicated(p, res.last_offset + 1)
    if w is None:
        return 0
    try:
        return int(await asyncio.wait_for(w, timeout_s))
    except TimeoutError:
        return int(E.REQUEST_TIMED_OUT)
