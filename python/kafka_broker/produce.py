"""Produce: iterate the request's partitions, append each through ``Partition.append``, build
the response.

What a batch must pass, the producer-state check, the append in C, waking fetchers and the flush
policy all live in the partition layer (``kafka_broker/log/``); here are only the checks that
belong to the request (acks, transactional id, unknown or internal topics, min.insync.replicas)
and the wait for durability: when an append leaves ``flush.messages`` or more unflushed messages
(``log.flush.interval.messages=1`` flushes every append), the response waits for the flush
thread's next group commit, as Kafka's append path flushes before answering.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, Protocol

from kafka_protocol.errors import ErrorCode as E
from kafka_protocol.messages import ProduceResponse as R

from .log import AppendError, AppendOrigin, now_ms
from .server import CloseConnection, HandlerResult, RequestContext

if TYPE_CHECKING:
    from .cluster.node import ClusterNode
    from .storage import Storage


class ProduceDeps(Protocol):
    """What the produce handler needs of the broker: the topic registry, and in a cluster the
    replica manager (leadership, the ISR, the high watermark acks=all waits for)."""

    storage: Storage
    cluster: ClusterNode | None

PR = R.PartitionProduceResponse

# Produce errors logged once per client (RequestContext.warn_once): the client's data or state is
# wrong, or the broker's storage is; not the routine ones (NOT_LEADER, unknown topics).
ATTENTION = frozenset({E.CORRUPT_MESSAGE, E.INVALID_RECORD, E.MESSAGE_TOO_LARGE, E.RECORD_LIST_TOO_LARGE,
                       E.INVALID_TIMESTAMP, E.UNSUPPORTED_COMPRESSION_TYPE, E.INVALID_REQUIRED_ACKS,
                       E.INVALID_TOPIC_EXCEPTION, E.OUT_OF_ORDER_SEQUENCE_NUMBER, E.INVALID_PRODUCER_EPOCH,
                       E.UNKNOWN_PRODUCER_ID, E.KAFKA_STORAGE_ERROR, E.INVALID_TXN_STATE})


def _fail(index: int, code: int, message: str | None = None, log_start_offset: int = -1) -> Any:
    return PR(index=index, error_code=code, base_offset=-1, error_message=message,
              log_start_offset=log_start_offset)


def handle_produce(b: ProduceDeps, ctx: RequestContext, req: Any) -> HandlerResult:
    v = ctx.api_version
    acks = req.acks
    topics = b.storage.topics
    cluster = b.cluster
    now = now_ms()
    waits: list[tuple[asyncio.Future[None], Any]] = []
    replicated: list[tuple[asyncio.Future[int], Any, Any]] = []
    responses = []
    any_error = False
    request_error: tuple[int, str | None] | None = None
    if acks not in (0, 1, -1):
        request_error = (E.INVALID_REQUIRED_ACKS, None)
    for td in req.topic_data:
        topic = topics.get(td.name)
        presp = []
        for pd in td.partition_data:
            idx = pd.index
            if request_error is not None:
                r = _fail(idx, *request_error)
            elif topic is None or idx < 0 or idx >= len(topic.partitions):
                r = _fail(idx, E.UNKNOWN_TOPIC_OR_PARTITION)
            elif topic.internal:
                r = _fail(idx, E.INVALID_TOPIC_EXCEPTION, f"Cannot append to internal topic {topic.name}")
            elif (p := topic.partitions[idx]) is None:
                # a partition this broker hosts no replica of (Kafka: NOT_LEADER_OR_FOLLOWER)
                r = _fail(idx, E.NOT_LEADER_OR_FOLLOWER)
            elif cluster is None and acks == -1 and topic.effective["min.insync.replicas"] > 1:
                # One broker is the whole ISR (Partition.appendRecordsToLeader).
                r = _fail(idx, E.NOT_ENOUGH_REPLICAS,
                          f"The size of the current ISR Set(0) is insufficient to satisfy the min.isr "
                          f"requirement of {topic.effective['min.insync.replicas']} for partition "
                          f"{p.name}")
            else:
                rep = p.replication
                if cluster is not None and (rep is None or not rep.is_leader):
                    r = _fail(idx, E.NOT_LEADER_OR_FOLLOWER, f"This is not the leader of {p.name}")
                elif (cluster is not None and acks == -1 and rep is not None
                      and len(rep.isr) < topic.effective["min.insync.replicas"]):
                    r = _fail(idx, E.NOT_ENOUGH_REPLICAS,
                              f"The size of the current ISR {rep.isr} is insufficient to satisfy the min.isr "
                              f"requirement of {topic.effective['min.insync.replicas']} for partition {p.name}")
                else:
                    res = p.append(pd.records, AppendOrigin.CLIENT, produce_version=v, wait_flush=acks != 0,
                                   now=now)
                    if isinstance(res, AppendError):
                        r = _fail(idx, *res)
                    else:
                        r = PR(index=idx, error_code=0, base_offset=res.first_offset,
                               log_append_time_ms=res.log_append_time, log_start_offset=res.log_start_offset)
                        if res.flushed is not None:
                            waits.append((res.flushed, r))
                        if cluster is not None:
                            cluster.replicas.maybe_advance_hw(p)
                            if acks == -1:
                                w = cluster.replicas.wait_replicated(p, res.last_offset + 1)
                                if w is not None:
                                    replicated.append((w, r, p))
            any_error = any_error or r.error_code != 0
            presp.append(r)
        if topic is not None:
            st = topic.stats
            st.produce_requests += 1
            st.failed_produce += sum(1 for r in presp if r.error_code)
        for r in presp:
            if r.error_code in ATTENTION:
                ctx.warn_once(r.error_code, f"{td.name}-{r.index}: {r.error_message or 'refused'}")
        responses.append(R.TopicProduceResponse(name=td.name, partition_responses=presp))
    if acks == 0:
        if any_error:
            # Kafka closes the connection so that an acks=0 producer notices (it gets no response).
            raise CloseConnection("acks=0 produce request failed")
        return None
    resp = R(responses=responses, throttle_time_ms=0)
    if not waits and not replicated:
        return resp
    return _wait_durable(resp, waits, replicated, req.timeout_ms)


async def _wait_durable(resp: Any, waits: list[tuple[asyncio.Future[None], Any]],
                        replicated: list[tuple[asyncio.Future[int], Any, Any]], timeout_ms: int) -> Any:
    """Until the flushes and (acks=all in a cluster) the ISR have the data, or the timeout."""
    futs: list[asyncio.Future[Any]] = [f for f, _ in waits]
    futs.extend(f for f, _r, _p in replicated)
    await asyncio.wait(futs, timeout=max(timeout_ms, 0) / 1000 if timeout_ms > 0 else None)
    for f, r in waits:
        if not f.done():
            r.error_code = E.REQUEST_TIMED_OUT
            f.cancel()
        elif f.exception() is not None:
            r.error_code = E.KAFKA_STORAGE_ERROR
            r.error_message = str(f.exception())
    for rf, r, p in replicated:
        if r.error_code:
            continue
        if not rf.done():
            r.error_code = E.REQUEST_TIMED_OUT
            rf.cancel()
            continue
        code = rf.result()
        rep = p.replication
        if code == 0 and rep is not None and len(rep.isr) < p.topic.effective["min.insync.replicas"]:
            # Replicated to the ISR, but the ISR shrank below min.insync.replicas meanwhile
            # (Partition.checkEnoughReplicasReachOffset).
            code = E.NOT_ENOUGH_REPLICAS_AFTER_APPEND
        if code:
            r.error_code, r.base_offset = code, -1
    return resp
