"""WriteTxnMarkers (API 27): the transaction coordinator's COMMIT / ABORT markers, appended to the
partitions this broker leads (``Partition.append_marker``, log/txn.py).

Answered per partition only once the marker is durable per the flush policy and, in a cluster,
in the ISR (``transaction.state.log``-style acks=all: Kafka appends markers with
``requiredAcks=-1``): NOT_LEADER_OR_FOLLOWER where another broker leads (the coordinator looks
again), UNKNOWN_TOPIC_OR_PARTITION for a partition that does not exist (the coordinator drops it,
the topic was deleted), INVALID_PRODUCER_EPOCH / TRANSACTION_COORDINATOR_FENCED from the
partition's producer state, the append's errors otherwise.  Once a marker is durable every
callable in ``Broker.txn_marker_listeners`` hears (partition, producer id, commit): the group
coordinator settles the transaction's offsets on ``__consumer_offsets``.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from kafka_protocol.errors import ErrorCode as E

from .internal_topic import durable
from .log import AppendError

if TYPE_CHECKING:
    from .broker import Broker
    from .server import RequestContext

log = logging.getLogger("kafka_broker.txn")
MARKER_TIMEOUT_S = 30.0


async def _one(b: Broker, topic: str, index: int, pid: int, epoch: int, commit: bool, coord_epoch: int) -> int:
    t = b.storage.topics.get(topic)
    if t is None or not 0 <= index < len(t.partitions):
        return E.UNKNOWN_TOPIC_OR_PARTITION
    p = t.partitions[index]
    if p is None or p.closed:
        return E.NOT_LEADER_OR_FOLLOWER if p is None else E.UNKNOWN_TOPIC_OR_PARTITION
    cluster = b.cluster
    if cluster is not None and (p.replication is None or not p.replication.is_leader):
        return E.NOT_LEADER_OR_FOLLOWER
    res = p.append_marker(pid, epoch, commit, coord_epoch)
    if isinstance(res, AppendError):
        return res.error_code
    try:
        code = await durable(cluster, p, res, MARKER_TIMEOUT_S)
    except Exception as e:  # noqa: BLE001 - the flush thread's I/O error
        log.warning("marker on %s not flushed: %s", p.name, e)
        return E.KAFKA_STORAGE_ERROR
    if code:
        return code
    for listener in b.txn_marker_listeners:
        listener(p, pid, commit)
    return 0


async def write_txn_markers(b: Broker, req: Any) -> Any:
    """Append every marker of ``req`` (a WriteTxnMarkersRequest) led here; the response."""
    from kafka_protocol.messages import WriteTxnMarkersResponse as R

    TR = R.WritableTxnMarkerTopicResult
    PR = R.WritableTxnMarkerPartitionResult
    results = []
    for m in req.markers:
        commit = bool(m.transaction_result)
        jobs = [(t.name, i) for t in m.topics for i in t.partition_indexes]
        codes = await asyncio.gather(*(_one(b, name, i, m.producer_id, m.producer_epoch, commit,
                                            m.coordinator_epoch) for name, i in jobs))
        by_topic: dict[str, list[Any]] = {}
        for (name, i), code in zip(jobs, codes, strict=True):
            by_topic.setdefault(name, []).append(PR(partition_index=i, error_code=code))
        results.append(R.WritableTxnMarkerResult(producer_id=m.producer_id, topics=[
            TR(name=n, partitions=ps) for n, ps in by_topic.items()]))
    return R(markers=results)


def handle_write_txn_markers(b: Broker, ctx: RequestContext, req: Any) -> Any:
    return write_txn_markers(b, req)


def handle_describe_producers(b: Broker, ctx: RequestContext, req: Any) -> Any:
    """DescribeProducers (API 61): the active producers of each partition led here, from its
    producer state (Apache Kafka's ``kafka-transactions describe-producers``)."""
    from kafka_protocol.messages import DescribeProducersResponse as R

    topics = []
    for t in req.topics:
        parts = []
        topic = b.storage.topics.get(t.name)
        for i in t.partition_indexes:
            p = topic.partitions[i] if topic is not None and 0 <= i < len(topic.partitions) else None
            if topic is None or not 0 <= i < len(topic.partitions):
                parts.append(R.PartitionResponse(partition_index=i, error_code=E.UNKNOWN_TOPIC_OR_PARTITION,
                                                 active_producers=[]))
                continue
            if p is None or (b.cluster is not None and (p.replication is None or not p.replication.is_leader)):
                parts.append(R.PartitionResponse(partition_index=i, error_code=E.NOT_LEADER_OR_FOLLOWER,
                                                 active_producers=[]))
                continue
            st = p.producers
            producers = []
            for pid, e in sorted(st.entries.items()):
                last = e.batches[-1] if e.batches else None
                producers.append(R.ProducerState(
                    producer_id=pid, producer_epoch=e.epoch, last_sequence=last[1] if last else -1,
                    last_timestamp=last[4] if last else -1, coordinator_epoch=e.coordinator_epoch,
                    current_txn_start_offset=st.ongoing.get(pid, -1)))
            parts.append(R.PartitionResponse(partition_index=i, error_code=0, active_producers=producers))
        topics.append(R.TopicResponse(name=t.name, partitions=parts))
    return R(throttle_time_ms=0, topics=topics)
