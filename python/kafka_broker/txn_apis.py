"""Wiring of the transaction coordinator (``kafka_broker.txn``) into the broker.

``__transaction_state`` is an ``InternalTopic`` (internal_topic.py) like ``__consumer_offsets``:
``transaction.state.log.num.partitions`` partitions, compacted, ``transaction.state.log.segment.bytes``;
in a cluster created through the registry with ``transaction.state.log.replication.factor``
replicas (refused while fewer brokers are alive) and ``transaction.state.log.min.isr`` (on a
single node one broker is the whole ISR, as for the offsets topic).  Every transition is appended
through ``InternalTopic.append``: ``Partition.append``, the flush policy, then the ISR.

Ownership: on a single node every partition is loaded at start-up; in a cluster a partition is
loaded when this broker becomes its leader (``on_leadership``; the coordinator epoch is the
partition's leader epoch) and dropped when it stops leading it.

Markers go to the leader of each partition: this broker's own through a direct call to
``txn_markers.write_txn_markers`` (the WriteTxnMarkers handler of the log layer), another
broker's over an inter-broker ``Channel`` kept per broker (one in flight at a time, as Kafka's
marker channel).

Partition leaders ask the coordinator about transactional appends (KIP-890, ``verify``): Produce
v12+ and TxnOffsetCommit v5+ (TV2 clients) add the partition to the transaction, older versions
only verify that it was added (``transaction.partition.verification.enable``); the question is a
direct call when the id's coordinator is this broker and an AddPartitionsToTxn v5 batch over the
inter-broker channel otherwise (Kafka's AddPartitionsToTxnManager).

Every handler returns a coroutine when it has to wait (appends, markers); the server answers in
request order.  API ranges are Apache Kafka 4.0's.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from kafka_protocol.errors import ErrorCode as E
from kafka_protocol.messages import (
    AddOffsetsToTxnResponse,
    AddPartitionsToTxnResponse,
    EndTxnResponse,
    InitProducerIdResponse,
)
from kafka_protocol.messages import DescribeTransactionsResponse as DR
from kafka_protocol.messages import ListTransactionsResponse as LR

from .cluster.channel import Channel, ChannelError
from .groups.offsets_store import LogBackend
from .internal_topic import InternalTopic
from .log import OFFSETS_TOPIC, TRANSACTION_STATE_TOPIC
from .txn import MarkerSender, TxnCoordinator
from .txn.markers import WRITE_TXN_MARKERS_VERSION
from .txn.state import TV0, TV2
from .txn_markers import write_txn_markers

if TYPE_CHECKING:
    from .broker import Broker
    from .server import RequestContext

log = logging.getLogger("kafka_broker.txn")
AR = AddPartitionsToTxnResponse
ADD_PARTITIONS_BROKER_VERSION = 5      # broker to coordinator, with TRANSACTION_ABORTABLE


class Txns:
    """The broker's transaction coordinator plus the ``__transaction_state`` plumbing."""

    def __init__(self, b: Broker) -> None:
        self.b = b
        self.cluster = b.cluster
        cfg = b.config
        existing = b.storage.topics.get(TRANSACTION_STATE_TOPIC)
        n = len(existing.partitions) if existing is not None else cfg["transaction.state.log.num.partitions"]
        self.topic = InternalTopic(TRANSACTION_STATE_TOPIC, n, storage=b.storage, config=cfg, cluster=b.cluster,
                                   registry=b.registry, rf_key="transaction.state.log.replication.factor",
                                   segment_key="transaction.state.log.segment.bytes",
                                   what="transactions state topic", min_isr_key="transaction.state.log.min.isr",
                                   timeout_s=cfg["request.timeout.ms"] / 1000,
                                   # Kafka's TransactionStateManager.transactionTopicConfigs
                                   fixed={"unclean.leader.election.enable": "false",
                                          "compression.type": "uncompressed"})
        self.backend = LogBackend(None, n, logs=self.topic.log_for, append=self.topic.append)
        self.markers = MarkerSender(self._leader_of, self._send)
        self.coord = TxnCoordinator(config=cfg, num_partitions=n, append=self.topic.append, read=self.backend.read,
                                    allocate_producer_id=b.storage.allocate_producer_id, markers=self.markers)
        self.channels: dict[int, Channel] = {}
        # producer id -> the last verified append of it still to run (produce.py keeps them in
        # arrival order: a later batch must not overtake an earlier one being verified)
        self.verify_chain: dict[int, Any] = {}

    async def start(self) -> None:
        if self.cluster is None:
            n = 0
            for p in range(self.topic.num_partitions):
                if self.topic.offline(p):   # not coordinated here: NOT_COORDINATOR for its ids
                    log.warning("transaction coordinator: %s-%d is in an offline log dir: not loaded",
                                TRANSACTION_STATE_TOPIC, p)
                    continue
                sp = self.b.storage.partition(TRANSACTION_STATE_TOPIC, p)
                n += await self.coord.load_partition(p, sp.leader_epoch if sp is not None else 0)
            self.b.storage.log_dirs.listeners.append(self._log_dir_offline)
            log.info("transaction coordinator: %d transactional id(s) loaded from %s", n, TRANSACTION_STATE_TOPIC)
        self.coord.start()

    def close(self) -> None:
        self.coord.close()
        for ch in self.channels.values():
            ch.close()
        self.channels.clear()

    def _log_dir_offline(self, d: Any) -> None:
        for p in self.topic.offline_partitions(d.path):
            gone = self.coord.unload_partition(p)
            log.warning("transaction coordinator: %s-%d is in the offline log dir %s: %d id(s) unloaded",
                        TRANSACTION_STATE_TOPIC, p, d.path, len(gone))

    def on_leadership(self, p: Any, leader: bool) -> None:
        """Cluster: ``__transaction_state-<p>`` became led here (load it) or not (drop it)."""
        if not leader:
            gone = self.coord.unload_partition(p.index)
            log.info("transaction coordinator: %s-%d led elsewhere now: %d id(s) unloaded", TRANSACTION_STATE_TOPIC,
                     p.index, len(gone))
            return
        self.coord.spawn(self._load(p.index, p.leader_epoch))

    async def _load(self, partition: int, epoch: int) -> None:
        n = await self.coord.load_partition(partition, epoch)
        log.info("transaction coordinator: %s-%d loaded at coordinator epoch %d, %d id(s)", TRANSACTION_STATE_TOPIC,
                 partition, epoch, n)

    # -- where markers go --------------------------------------------------------------------

    def _leader_of(self, topic: str, partition: int) -> int | None:
        if self.cluster is None:
            t = self.b.storage.topics.get(topic)
            if t is None or not 0 <= partition < len(t.partitions):
                return None
            return self.b.node_id
        tm = self.cluster.metadata.topics.get(topic)
        if tm is None or partition not in tm.partitions:
            return None
        return tm.partitions[partition].leader

    async def _send(self, broker: int, req: Any) -> Any:
        if broker == self.b.node_id:
            return await write_txn_markers(self.b, req)
        return await self._channel_send(broker, req, WRITE_TXN_MARKERS_VERSION)

    async def _channel_send(self, broker: int, req: Any, version: int) -> Any:
        assert self.cluster is not None
        ch = self.channels.get(broker)
        if ch is None or ch.closed:
            ep = self.cluster.endpoint_of(broker)
            if ep is None:
                raise ChannelError(f"broker {broker} has no {self.cluster.listener_name} endpoint")
            ch = self.channels[broker] = await Channel(
                ep[0], ep[1], client_id=f"broker-{self.b.node_id}-txn-marker-sender", node_id=broker,
                request_timeout_ms=self.b.config["request.timeout.ms"],
                security=self.cluster.channel_security).connect()
        return await ch.send(req, version)

    async def verify(self, tid: str, pid: int, epoch: int, parts: list[tuple[str, int]],
                     add: bool) -> dict[tuple[str, int], int]:
        """The coordinator's answer per partition to a leader about to append a transactional
        batch that opens the producer's transaction there: ``add`` (TV2) puts the partitions in
        the transaction, else (TV1) it only says whether they are in it."""
        coord = self.coord
        if coord.unavailable(tid) == E.NONE or self.cluster is None:
            if not add:
                return coord.verify_partitions(tid, pid, epoch, parts)
            return dict.fromkeys(parts, await coord.add_partitions(tid, pid, epoch, set(parts), TV2))
        leader = self._leader_of(TRANSACTION_STATE_TOPIC, coord.partition_for(tid))
        if leader is None or leader < 0:
            return dict.fromkeys(parts, E.COORDINATOR_NOT_AVAILABLE)
        from kafka_protocol.messages import AddPartitionsToTxnRequest as Q

        by_topic: dict[str, list[int]] = {}
        for t, p in parts:
            by_topic.setdefault(t, []).append(p)
        req = Q(transactions=[Q.AddPartitionsToTxnTransaction(
            transactional_id=tid, producer_id=pid, producer_epoch=epoch, verify_only=not add,
            topics=[Q.AddPartitionsToTxnTopic(name=t, partitions=ps) for t, ps in by_topic.items()])])
        try:
            resp = await self._channel_send(leader, req, ADD_PARTITIONS_BROKER_VERSION)
        except Exception as e:  # noqa: BLE001 - a lost connection: the client retries the produce
            log.info("AddPartitionsToTxn to broker %d failed: %s", leader, e)
            return dict.fromkeys(parts, E.NETWORK_EXCEPTION)
        out = dict.fromkeys(parts, resp.error_code or E.UNKNOWN_SERVER_ERROR)
        for r in resp.results_by_transaction:
            for tr in r.topic_results:
                for pr in tr.results_by_partition:
                    out[(tr.name, pr.partition_index)] = pr.partition_error_code
        return out

    def partition_exists(self, topic: str, partition: int) -> bool:
        t = self.b.registry.get(topic)
        return t is not None and 0 <= partition < t.num_partitions


def _txns(b: Broker) -> Txns:
    t = b.txns
    assert t is not None
    return t


def handle_init_producer_id(b: Broker, ctx: RequestContext, req: Any) -> Any:
    """InitProducerId with a transactional id (without one it is broker.handle_init_producer_id's)."""
    R = InitProducerIdResponse
    txns = b.txns
    if txns is None:
        return R(error_code=E.COORDINATOR_NOT_AVAILABLE, producer_id=-1, producer_epoch=-1)
    pid = req.producer_id if ctx.api_version >= 3 else -1
    epoch = req.producer_epoch if ctx.api_version >= 3 else -1
    if (pid == -1) != (epoch == -1):
        return R(error_code=E.INVALID_REQUEST, producer_id=-1, producer_epoch=-1)

    async def run() -> Any:
        res = await txns.coord.init_producer_id(req.transactional_id, req.transaction_timeout_ms,
                                                None if pid == -1 else (pid, epoch))
        return R(throttle_time_ms=0, error_code=res.error, producer_id=res.producer_id,
                 producer_epoch=res.producer_epoch)
    return run()


def _topic_results(errors: dict[tuple[str, int], int]) -> list[Any]:
    by_topic: dict[str, list[Any]] = {}
    for (t, p), code in errors.items():
        by_topic.setdefault(t, []).append(AR.AddPartitionsToTxnPartitionResult(partition_index=p,
                                                                               partition_error_code=code))
    return [AR.AddPartitionsToTxnTopicResult(name=t, results_by_partition=ps) for t, ps in by_topic.items()]


async def _add(txns: Txns, tid: str, pid: int, epoch: int, topics: list[Any],
               verify_only: bool, broker_sent: bool) -> dict[tuple[str, int], int]:
    parts = [(t.name, p) for t in topics for p in t.partitions]
    if verify_only:
        return txns.coord.verify_partitions(tid, pid, epoch, parts)
    unknown = {tp for tp in parts if not txns.partition_exists(*tp)}
    if unknown:
        # KafkaApis: the unknown ones fail, the others are not attempted
        return {tp: E.UNKNOWN_TOPIC_OR_PARTITION if tp in unknown else E.OPERATION_NOT_ATTEMPTED for tp in parts}
    # v4+ without verify_only comes from a partition leader adding a TV2 producer's partition
    # (Produce v12+, TxnOffsetCommit v5+): Kafka records the client as TV2
    code = await txns.coord.add_partitions(tid, pid, epoch, set(parts), TV2 if broker_sent else TV0)
    return dict.fromkeys(parts, code)


def handle_add_partitions_to_txn(b: Broker, ctx: RequestContext, req: Any) -> Any:
    """v0-3: one transaction of the client; v4+: a batch of them, from brokers (``verify_only``)."""
    txns = _txns(b)
    v = ctx.api_version

    async def run() -> Any:
        if v <= 3:
            got = await _add(txns, req.v3_and_below_transactional_id, req.v3_and_below_producer_id,
                             req.v3_and_below_producer_epoch, req.v3_and_below_topics, False, False)
            return AR(throttle_time_ms=0, results_by_topic_v3_and_below=_topic_results(got))
        results = []
        for tx in req.transactions:
            got = await _add(txns, tx.transactional_id, tx.producer_id, tx.producer_epoch, tx.topics, tx.verify_only,
                             True)
            results.append(AR.AddPartitionsToTxnResult(transactional_id=tx.transactional_id,
                                                       topic_results=_topic_results(got)))
        return AR(throttle_time_ms=0, error_code=0, results_by_transaction=results)
    return run()


def handle_add_offsets_to_txn(b: Broker, ctx: RequestContext, req: Any) -> Any:
    """The group's ``__consumer_offsets`` partition joins the transaction (its TxnOffsetCommit
    records get markers like any other partition's)."""
    txns = _txns(b)
    groups = b.groups
    assert groups is not None

    async def run() -> Any:
        tp = (OFFSETS_TOPIC, groups.store.partition_for(req.group_id))
        code = await txns.coord.add_partitions(req.transactional_id, req.producer_id, req.producer_epoch, {tp})
        return AddOffsetsToTxnResponse(throttle_time_ms=0, error_code=code)
    return run()


def handle_end_txn(b: Broker, ctx: RequestContext, req: Any) -> Any:
    """v5 is a TV2 client's (Kafka's ``transactionVersionForEndTxn``: the Java client sends v5 only
    with ``transaction.version`` 2 finalized): the epoch is bumped and the answer carries the
    producer id and epoch to go on with; v0-4 end a TV0/TV1 transaction at the same epoch."""
    txns = _txns(b)
    tv = TV2 if ctx.api_version >= 5 else TV0

    async def run() -> Any:
        res = await txns.coord.end_txn(req.transactional_id, req.producer_id, req.producer_epoch, req.committed,
                                       client_tv=tv)
        return EndTxnResponse(throttle_time_ms=0, error_code=res.error, producer_id=res.producer_id,
                              producer_epoch=res.producer_epoch)
    return run()


def handle_describe_transactions(b: Broker, ctx: RequestContext, req: Any) -> Any:
    txns = _txns(b)
    out = []
    for tid in req.transactional_ids:
        code, md = txns.coord.describe(tid)
        if md is None:
            out.append(DR.TransactionState(error_code=code, transactional_id=tid, transaction_state="",
                                           producer_id=-1, producer_epoch=-1, transaction_start_time_ms=-1))
            continue
        by_topic: dict[str, list[int]] = {}
        for t, p in sorted(md.partitions):
            by_topic.setdefault(t, []).append(p)
        out.append(DR.TransactionState(
            error_code=0, transactional_id=tid, transaction_state=md.state_name,
            transaction_timeout_ms=md.timeout_ms, transaction_start_time_ms=md.start_ms, producer_id=md.producer_id,
            producer_epoch=md.producer_epoch,
            topics=[DR.TopicData(topic=t, partitions=ps) for t, ps in by_topic.items()]))
    return DR(throttle_time_ms=0, transaction_states=out)


def handle_list_transactions(b: Broker, ctx: RequestContext, req: Any) -> Any:
    txns = _txns(b)
    duration = req.duration_filter if ctx.api_version >= 1 else -1
    code, unknown, found = txns.coord.list(req.state_filters, req.producer_id_filters, duration)
    return LR(throttle_time_ms=0, error_code=code, unknown_state_filters=unknown, transaction_states=[
        LR.TransactionState(transactional_id=md.transactional_id, producer_id=md.producer_id,
                            transaction_state=md.state_name) for md in found])


Handler = Callable[["Broker", "RequestContext", Any], Any]


def handlers() -> dict[int, tuple[int, int, Handler]]:
    """The coordinator's APIs (InitProducerId stays in broker.py, which hands the transactional
    ones to ``handle_init_producer_id``)."""
    return {
        24: (0, 5, handle_add_partitions_to_txn),
        25: (0, 4, handle_add_offsets_to_txn),
        26: (0, 5, handle_end_txn),
        65: (0, 0, handle_describe_transactions),
        66: (0, 1, handle_list_transactions),
    }
