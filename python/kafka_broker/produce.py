"""Produce: iterate the request's partitions, append each through ``Partition.append``, build
the response.

What a batch must pass, the producer-state check, the append in C, waking fetchers and the flush
policy all live in the partition layer (``kafka_broker/log/``); here are only the checks that
belong to the request (acks, transactional id, unknown or internal topics, min.insync.replicas)
and the wait for durability: when an append leaves ``flush.messages`` or more unflushed messages
(``log.flush.interval.messages=1`` flushes every append), the response waits for the flush
thread's next group commit, as Kafka's append path flushes before answering.

Transactions (KIP-890): a transactional batch that would open its producer's transaction on a
partition (``ProducerState.needs_verification``) waits for the coordinator first
(``Txns.verify``): Produce v12+ is a TV2 client's, and the coordinator adds the partition to the
transaction (no AddPartitionsToTxn from the client); v0-11 only verify that the client added it
(``transaction.partition.verification.enable``), so a batch of a transaction that is not there is
refused (INVALID_TXN_STATE; TRANSACTION_ABORTABLE from v11) instead of opening a transaction no
marker would end.  Such a request appends after the answer, after any earlier verified request
of the same producer (arrival order: sequences must not overtake), and only if no marker of the
producer came in between (the guard).  The rest of the request's partitions wait with it, so the
response keeps one shape; requests that need no verification take the synchronous path.
"""

from __future__ import annotations

import asyncio
import struct
from typing import TYPE_CHECKING, Any, Protocol

from kafka_protocol.errors import ErrorCode as E
from kafka_protocol.messages import ProduceResponse as R

from .log import AppendError, AppendOrigin, now_ms
from .server import CloseConnection, HandlerResult, RequestContext

if TYPE_CHECKING:
    from .cluster.node import ClusterNode
    from .storage import Storage
    from .txn_apis import Txns


class ProduceDeps(Protocol):
    """What the produce handler needs of the broker: the topic registry, and in a cluster the
    replica manager (leadership, the ISR, the high watermark acks=all waits for)."""

    storage: Storage
    cluster: ClusterNode | None
    txns: Txns | None
    config: Any

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


_ATTRS = struct.Struct(">h")          # batch attributes at byte 21
_PID_EPOCH = struct.Struct(">qh")     # producer id and epoch at byte 43
_ATTR_TRANSACTIONAL = 0x10
# Verification errors a client would not retry correctly: Kafka answers NOT_ENOUGH_REPLICAS,
# which every client retries without a metadata refresh (ReplicaManager's postVerificationCallback).
_VERIFY_RETRIABLE = frozenset({E.CONCURRENT_TRANSACTIONS, E.NETWORK_EXCEPTION, E.COORDINATOR_LOAD_IN_PROGRESS,
                               E.COORDINATOR_NOT_AVAILABLE, E.NOT_COORDINATOR})
Verified = dict[tuple[str, int], tuple[int, str | None] | object]


def _to_verify(b: ProduceDeps, req: Any) -> tuple[dict[tuple[int, int], list[tuple[str, int, Any]]], set[int]]:
    """(producer id, epoch) -> the partitions whose transactional batch opens a transaction here,
    and every producer id with a transactional batch in ``req``; one header read per partition."""
    out: dict[tuple[int, int], list[tuple[str, int, Any]]] = {}
    pids: set[int] = set()
    topics = b.storage.topics
    for td in req.topic_data:
        topic = topics.get(td.name)
        if topic is None or topic.internal:
            continue
        for pd in td.partition_data:
            recs = pd.records
            if recs is None or len(recs) < 61 or not 0 <= pd.index < len(topic.partitions):
                continue
            p = topic.partitions[pd.index]
            if p is None or not _ATTRS.unpack_from(recs, 21)[0] & _ATTR_TRANSACTIONAL:
                continue
            pid, epoch = _PID_EPOCH.unpack_from(recs, 43)
            if pid < 0:
                continue
            pids.add(pid)
            if p.producers.needs_verification(pid, epoch):
                out.setdefault((pid, epoch), []).append((td.name, pd.index, p))
    return out, pids


def _verify_error(code: int, version: int) -> tuple[int, str | None]:
    """What the producer is told when the coordinator did not vouch (AddPartitionsToTxnManager)."""
    if code == E.PRODUCER_FENCED:
        return E.INVALID_PRODUCER_EPOCH, "The producer was fenced by the transaction coordinator"
    if code == E.TRANSACTION_ABORTABLE:
        if version < 11:
            return E.INVALID_TXN_STATE, "Partition was not added to the transaction"
        return E.TRANSACTION_ABORTABLE, "Partition was not added to the transaction"
    if code == E.INVALID_TXN_STATE:
        return code, "Partition was not added to the transaction"
    if code in _VERIFY_RETRIABLE:
        return E.NOT_ENOUGH_REPLICAS, ("Unable to verify the partition has been added to the transaction. "
                                       f"Underlying error: {E.get(code).name}")
    return code, None


def handle_produce(b: ProduceDeps, ctx: RequestContext, req: Any) -> HandlerResult:
    txns = b.txns
    tid = req.transactional_id
    v = ctx.api_version
    # acks=0 has no response to wait for: a transactional producer always asks for acks=all
    if tid and txns is not None and req.acks != 0 and (
            v >= 12 or b.config["transaction.partition.verification.enable"]):
        pending, pids = _to_verify(b, req)
        chain = txns.verify_chain
        # a request of a producer whose earlier request is still being verified waits behind it
        # even when it needs no verification itself: its sequences come after that one's
        waiting = {pid for pid, _epoch in pending} | {pid for pid in pids if pid in chain}
        if waiting:
            loop = asyncio.get_running_loop()
            slots = []
            for pid in sorted(waiting):
                slots.append((pid, chain.get(pid), mine := loop.create_future()))
                chain[pid] = mine
            return _verify_then_produce(b, ctx, req, txns, tid, pending, slots)
    return _produce(b, ctx, req, None)


async def _verify_then_produce(b: ProduceDeps, ctx: RequestContext, req: Any, txns: Txns, tid: str,
                               pending: dict[tuple[int, int], list[tuple[str, int, Any]]],
                               slots: list[tuple[int, Any, asyncio.Future[set[tuple[str, int]]]]]) -> Any:
    v = ctx.api_version
    verified: Verified = {}
    refused: set[tuple[str, int]] = set()
    try:
        guards = [(pid, epoch, parts, [p.producers.start_verification(pid) for _t, _i, p in parts])
                  for (pid, epoch), parts in pending.items()]
        answers = await asyncio.gather(*(txns.verify(tid, pid, epoch, [(t, i) for t, i, _p in parts], v >= 12)
                                         for pid, epoch, parts, _g in guards))
        for _pid, prev, _mine in slots:
            if prev is not None:
                # an earlier request of the producer refused on a partition: this one's later
                # sequences would be out of order there, so it is refused alike (and retried)
                refused |= await asyncio.shield(prev)
        for (_pid, _epoch, parts, gs), got in zip(guards, answers, strict=True):
            for (t, i, _p), guard in zip(parts, gs, strict=True):
                code = got.get((t, i), E.UNKNOWN_SERVER_ERROR)
                if not code and (t, i) in refused:
                    code = E.CONCURRENT_TRANSACTIONS
                verified[(t, i)] = _verify_error(code, v) if code else guard
                if code:
                    refused.add((t, i))
        res = _produce(b, ctx, req, verified)
        return await res if asyncio.iscoroutine(res) else res
    finally:
        for pid, _prev, mine in slots:
            if not mine.done():
                mine.set_result(refused)
            if txns.verify_chain.get(pid) is mine:
                del txns.verify_chain[pid]


def _produce(b: ProduceDeps, ctx: RequestContext, req: Any, verified: Verified | None) -> HandlerResult:
    """Append every partition of ``req``; ``verified``: the coordinator's answer for the
    partitions that needed one (a guard, or the refusal)."""
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
                elif verified is not None and (answer := verified.get((td.name, idx))) is not None \
                        and (isinstance(answer, tuple) or not _still_verified(p, pd.records, answer)):
                    r = _fail(idx, *answer) if isinstance(answer, tuple) else _fail(
                        idx, E.INVALID_TXN_STATE, "The transaction ended while the partition was being verified")
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


def _still_verified(p: Any, records: Any, guard: object) -> bool:
    return bool(p.producers.verified(_PID_EPOCH.unpack_from(records, 43)[0], guard))


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
