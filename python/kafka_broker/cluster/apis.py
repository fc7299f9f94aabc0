"""The cluster's request handlers: the controller's requests to brokers (LeaderAndIsr, StopReplica,
UpdateMetadata), ControlledShutdown to the controller, and the client-facing views of the whole
cluster (Metadata, DescribeCluster) served from the metadata cache.
"""

from __future__ import annotations

from typing import Any

import kafka_protocol as kp
from kafka_protocol.errors import ErrorCode as E

from ..log import INTERNAL_TOPICS
from ..metadata_cache import TopicEntries
from .controller import NO_LEADER
from .replicas import MetadataCache, TopicMeta


class MetadataView:
    """Metadata as the controller last described the cluster, through one listener.

    With ``version`` and ``cache`` set, entries are the cached encoded ones (metadata_cache.py),
    stamped with ``TopicMeta.version``; without, they are built (``entry``, the uncached
    reference)."""

    def __init__(self, md: MetadataCache, listener: str, ops: int, version: int | None = None,
                 cache: TopicEntries | None = None) -> None:
        R = kp.MetadataResponse
        self.md = md
        self.ops = ops
        self.version = version if cache is not None else None
        self.cache = cache

        def brokers() -> list[Any]:
            return [R.MetadataResponseBroker(node_id=i, host=eps[listener][0], port=eps[listener][1], rack=rack)
                    for i, (eps, rack) in sorted(md.brokers.items()) if listener in eps]
        # md.brokers is a new dict at every UpdateMetadata: compared by identity, in O(1)
        self.brokers = brokers() if cache is None else cache.brokers(listener, _Same(md.brokers), brokers)
        self.controller_id = md.controller_id

    def _entry(self, name: str, t: TopicMeta) -> Any:
        if self.cache is None or self.version is None:
            return self.entry((name, t))
        return self.cache.get(name, t, t.version, self.version, self.ops, self.entry, (name, t))

    def entry(self, nt: tuple[str, TopicMeta]) -> Any:
        R = kp.MetadataResponse
        name, t = nt
        parts = []
        for idx, pm in sorted(t.partitions.items()):
            parts.append(R.MetadataResponsePartition(
                error_code=E.LEADER_NOT_AVAILABLE if pm.leader == NO_LEADER else 0, partition_index=idx,
                leader_id=pm.leader, leader_epoch=pm.leader_epoch, replica_nodes=pm.replicas, isr_nodes=pm.isr,
                offline_replicas=pm.offline))
        return R.MetadataResponseTopic(error_code=0, name=name, topic_id=t.id, is_internal=name in INTERNAL_TOPICS,
                                       partitions=parts, topic_authorized_operations=self.ops)

    def all_topics(self) -> list[Any]:
        out = [self._entry(n, t) for n, t in self.md.topics.items() if t.partitions]
        if self.cache is not None:
            self.cache.prune(self.md.topics)
        return out

    def by_name(self, name: str) -> Any | None:
        t = self.md.topics.get(name)
        return self._entry(name, t) if t is not None and t.partitions else None

    def by_id(self, topic_id: Any) -> Any | None:
        for n, t in self.md.topics.items():
            if t.id == topic_id:
                return self._entry(n, t)
        return None


class _Same:
    """A key equal only to a key of the very same object (``TopicEntries.brokers``)."""

    __slots__ = ("obj",)

    def __init__(self, obj: object) -> None:
        self.obj = obj

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Same) and other.obj is self.obj

    __hash__ = None  # type: ignore[assignment]


def handle_leader_and_isr(b: Any, ctx: Any, req: Any) -> Any:
    return b.cluster.replicas.leader_and_isr(req, ctx.api_version)


def handle_stop_replica(b: Any, ctx: Any, req: Any) -> Any:
    return b.cluster.replicas.stop_replica(req, ctx.api_version)


def handle_update_metadata(b: Any, ctx: Any, req: Any) -> Any:
    return b.cluster.replicas.update_metadata(req, ctx.api_version)


def handle_controlled_shutdown(b: Any, ctx: Any, req: Any) -> Any:
    R = kp.ControlledShutdownResponse
    ctl = b.cluster.controller
    if not ctl.active:
        return R(error_code=E.NOT_CONTROLLER)

    async def run() -> Any:
        code, remaining = await ctl.controlled_shutdown(req.broker_id, req.broker_epoch)
        return R(error_code=code, remaining_partitions=[R.RemainingPartition(topic_name=t, partition_index=p)
                                                        for t, p in remaining])
    return run()


def handle_elect_leaders(b: Any, ctx: Any, req: Any) -> Any:
    """ElectLeaders (KIP-460): preferred (type 0) or unclean (type 1), decided by the controller."""
    R = kp.ElectLeadersResponse
    ctl = b.cluster.controller
    if not ctl.active:
        return R(throttle_time_ms=0, error_code=E.NOT_CONTROLLER, replica_election_results=[])
    if req.election_type not in (0, 1):
        return R(throttle_time_ms=0, error_code=E.INVALID_REQUEST, replica_election_results=[])
    keys = None if req.topic_partitions is None else [(t.topic, p) for t in req.topic_partitions
                                                       for p in t.partitions]

    async def run() -> Any:
        got = await ctl.elect_leaders(keys, req.election_type == 1)
        by_topic: dict[str, list[Any]] = {}
        for (t, p), code in sorted(got.items()):
            if keys is None and code == E.ELECTION_NOT_NEEDED:
                continue    # all partitions: only those that moved (or failed) are listed, as Kafka does
            by_topic.setdefault(t, []).append(R.PartitionResult(
                partition_id=p, error_code=code, error_message=E.get(code).message if code else None))
        return R(throttle_time_ms=0, error_code=0, replica_election_results=[
            R.ReplicaElectionResult(topic=t, partition_result=ps) for t, ps in by_topic.items()])
    return run()


def handle_alter_partition_reassignments(b: Any, ctx: Any, req: Any) -> Any:
    R = kp.AlterPartitionReassignmentsResponse
    ctl = b.cluster.controller
    if not ctl.active:
        return R(throttle_time_ms=0, error_code=E.NOT_CONTROLLER, error_message=None, responses=[])
    items = [((t.name, p.partition_index), None if p.replicas is None else list(p.replicas))
             for t in req.topics for p in t.partitions]

    async def run() -> Any:
        got = await ctl.alter_reassignments(items)
        by_topic: dict[str, list[Any]] = {}
        for (t, p), _target in items:
            code, msg = got[(t, p)]
            by_topic.setdefault(t, []).append(R.ReassignablePartitionResponse(
                partition_index=p, error_code=code, error_message=msg))
        return R(throttle_time_ms=0, error_code=0, error_message=None, responses=[
            R.ReassignableTopicResponse(name=t, partitions=ps) for t, ps in by_topic.items()])
    return run()


def handle_list_partition_reassignments(b: Any, ctx: Any, req: Any) -> Any:
    R = kp.ListPartitionReassignmentsResponse
    ctl = b.cluster.controller
    if not ctl.active:
        return R(throttle_time_ms=0, error_code=E.NOT_CONTROLLER, error_message=None, topics=[])
    wanted = None if req.topics is None else {(t.name, p) for t in req.topics for p in t.partition_indexes}
    by_topic: dict[str, list[Any]] = {}
    for (t, p), (original, target) in sorted(ctl.reassigning.items()):
        if wanted is not None and (t, p) not in wanted:
            continue
        by_topic.setdefault(t, []).append(R.OngoingPartitionReassignment(
            partition_index=p, replicas=ctl.topics[t].replicas.get(p, []),
            adding_replicas=[r for r in target if r not in original],
            removing_replicas=[r for r in original if r not in target]))
    return R(throttle_time_ms=0, error_code=0, error_message=None,
             topics=[R.OngoingTopicReassignment(name=t, partitions=ps) for t, ps in by_topic.items()])


INTER_BROKER_APIS = {
    4: (0, 7, handle_leader_and_isr),
    5: (0, 4, handle_stop_replica),
    6: (0, 8, handle_update_metadata),
    7: (0, 3, handle_controlled_shutdown),
    43: (0, 2, handle_elect_leaders),
    45: (0, 0, handle_alter_partition_reassignments),
    46: (0, 0, handle_list_partition_reassignments),
}
