"""The marker sender: WriteTxnMarkers to the leader of every partition of a transaction
(Kafka's TransactionMarkerChannelManager and TransactionMarkerRequestCompletionHandler).

``write`` returns once every partition has its marker (or was skipped because its topic is
gone, as Kafka does for a deleted topic) and raises ``MarkersAbandoned`` when a leader says
the transaction is stale (INVALID_PRODUCER_EPOCH, TRANSACTION_COORDINATOR_FENCED: a newer
epoch or coordinator has taken over, nothing more to do here).  A partition with no known
leader, a leader that moved (NOT_LEADER_OR_FOLLOWER) or is short of replicas, a timeout or a
lost connection is retried with backoff until metadata names a leader that takes it.

Where a request goes is the wiring's business: ``leader_of(topic, partition)`` answers the
leader's broker id (-1: none known yet; None: the topic does not exist) and
``send(broker_id, request)`` delivers a ``WriteTxnMarkersRequest`` (locally by a direct call to
``txn_markers.write_txn_markers``, else over an inter-broker ``Channel``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from kafka_protocol.errors import ErrorCode as E
from kafka_protocol.messages import WriteTxnMarkersRequest as WReq

log = logging.getLogger("kafka_broker.txn")

WRITE_TXN_MARKERS_VERSION = 1       # Kafka 4.0 speaks only v1 (flexible) between brokers
_RETRY = frozenset({E.UNKNOWN_TOPIC_OR_PARTITION, E.NOT_LEADER_OR_FOLLOWER, E.NOT_ENOUGH_REPLICAS,
                    E.NOT_ENOUGH_REPLICAS_AFTER_APPEND, E.REQUEST_TIMED_OUT, E.KAFKA_STORAGE_ERROR,
                    E.COORDINATOR_LOAD_IN_PROGRESS})
_STALE = frozenset({E.INVALID_PRODUCER_EPOCH, E.TRANSACTION_COORDINATOR_FENCED})
# The partition cannot take a marker at all: Kafka logs it and counts the partition as done.
_SKIP = frozenset({E.UNSUPPORTED_FOR_MESSAGE_FORMAT, E.UNSUPPORTED_VERSION})


class MarkersAbandoned(Exception):
    """A leader refused the markers as stale: the transaction is someone else's now."""


class MarkerSender:
    def __init__(self, leader_of: Callable[[str, int], int | None],
                 send: Callable[[int, Any], Awaitable[Any]], *,
                 backoff_ms: int = 100, max_backoff_ms: int = 2000) -> None:
        self.leader_of = leader_of
        self.send = send
        self.backoff_ms = backoff_ms
        self.max_backoff_ms = max_backoff_ms
        self.sent = 0           # WriteTxnMarkers requests sent (tests and logs)

    async def write(self, tid: str, producer_id: int, epoch: int, commit: bool, coordinator_epoch: int,
                    partitions: set[tuple[str, int]]) -> None:
        remaining = set(partitions)
        backoff = self.backoff_ms / 1000
        while remaining:
            by_leader: dict[int, list[tuple[str, int]]] = {}
            for tp in sorted(remaining):
                leader = self.leader_of(*tp)
                if leader is None:
                    log.info("transactional id %s: %s-%d no longer exists, no marker for it", tid, *tp)
                    remaining.discard(tp)
                elif leader >= 0:
                    by_leader.setdefault(leader, []).append(tp)
            results = await asyncio.gather(*(self._send_one(b, producer_id, epoch, commit, coordinator_epoch, tps)
                                             for b, tps in by_leader.items()))
            for got in results:
                for tp, code in got.items():
                    if code == E.NONE or code in _SKIP:
                        if code:
                            log.warning("transactional id %s: %s-%d cannot take a marker (%s); skipped", tid,
                                        *tp, E.get(code).name)
                        remaining.discard(tp)
                    elif code in _STALE:
                        raise MarkersAbandoned(f"{tp[0]}-{tp[1]} answered {E.get(code).name} to the markers of "
                                               f"producer {producer_id} epoch {epoch}")
                    elif code not in _RETRY:
                        log.warning("transactional id %s: marker on %s-%d failed with %s; retrying", tid, *tp,
                                    E.get(code).name)
            if remaining:
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.max_backoff_ms / 1000)

    async def _send_one(self, broker: int, producer_id: int, epoch: int, commit: bool, coordinator_epoch: int,
                        tps: list[tuple[str, int]]) -> dict[tuple[str, int], int]:
        topics: dict[str, list[int]] = {}
        for t, p in tps:
            topics.setdefault(t, []).append(p)
        req = WReq(markers=[WReq.WritableTxnMarker(
            producer_id=producer_id, producer_epoch=epoch, transaction_result=commit,
            coordinator_epoch=coordinator_epoch,
            topics=[WReq.WritableTxnMarkerTopic(name=t, partition_indexes=ps) for t, ps in topics.items()])])
        self.sent += 1
        try:
            resp = await self.send(broker, req)
        except asyncio.CancelledError:
            raise
        except Exception as e:  # noqa: BLE001 - a lost connection or a timeout: retried
            log.info("WriteTxnMarkers to broker %d failed (%s); retrying", broker, e)
            return {}
        out: dict[tuple[str, int], int] = {}
        for m in resp.markers:
            for t in m.topics:
                for pr in t.partitions:
                    out[(t.name, pr.partition_index)] = pr.error_code
        return out
