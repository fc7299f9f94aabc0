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
    if res.flushed is not None:
        try:
            await res.flushed
        except Exception as e:  # noqa: BLE001 - the flush thread's I/O error
            log.warning("marker on %s not flushed: %s", p.name, e)
            return E.KAFKA_STORAGE_ERROR
    if cluster is not None:
        cluster.replicas.maybe_advance_hw(p)
        w = cluster.replicas.wait_replicated(p, res.last_offset + 1)
        if w is not None:
            try:
                code = await asyncio.wait_for(w, MARKER_TIMEOUT_S)
            except TimeoutError:
                code = E.REQUEST_TIMED_OUT
            if code:
                return int(code)
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
