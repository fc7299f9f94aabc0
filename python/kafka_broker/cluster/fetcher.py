"""Follower fetchers (Kafka's ``ReplicaFetcherThread``): one per leader broker (times
``num.replica.fetchers``), each a task that fetches every partition this broker follows from
that leader with one Fetch request (replica id = our broker id) and appends what comes back
through ``Partition.append(..., AppendOrigin.REPLICATION)``: offsets, leader epochs and producer
ids as the leader wrote them.

Before a partition's first fetch from a new leader it is truncated (KIP-101/279): an
OffsetForLeaderEpoch request asks the leader where our latest leader epoch ends in its log; we
cut our log there (or at our own end of the epoch the leader answered with, when it does not
know ours), so a replica that was leader once and kept writes nobody acknowledged drops them
before it fetches.  Without an epoch to ask about, it truncates to its high watermark.

The follower's high watermark is the leader's, capped by its own log end.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

import kafka_protocol as kp
from kafka_protocol.errors import ErrorCode as E

from ..log.partition import AppendOrigin
from ..log.validate import AppendError
from .channel import Channel, ChannelError

if TYPE_CHECKING:
    from ..log.partition import Partition
    from .node import ClusterNode

log = logging.getLogger("kafka_broker.cluster.fetcher")

FETCH_V = 12
OFFSET_FOR_LEADER_EPOCH_V = 4
RETRIABLE = {E.NOT_LEADER_OR_FOLLOWER, E.UNKNOWN_TOPIC_OR_PARTITION, E.FENCED_LEADER_EPOCH,
             E.UNKNOWN_LEADER_EPOCH, E.LEADER_NOT_AVAILABLE, E.KAFKA_STORAGE_ERROR}


class _State:
    __slots__ = ("p", "truncate", "paused_until", "moving_start")

    def __init__(self, p: Partition) -> None:
        self.p = p
        self.truncate = True
        self.paused_until = 0.0
        self.moving_start = False


class LeaderFetcher:
    def __init__(self, node: ClusterNode, leader: int, endpoint: tuple[str, int], slot: int) -> None:
        self.node = node
        self.leader = leader
        self.endpoint = endpoint
        self.slot = slot
        self.parts: dict[tuple[str, int], _State] = {}
        self.wake = asyncio.Event()
        self.channel: Channel | None = None
        self.task = asyncio.ensure_future(self._run())
        cfg = node.config
        self.max_wait = cfg["replica.fetch.wait.max.ms"]
        self.min_bytes = cfg["replica.fetch.min.bytes"]
        self.max_bytes = cfg["replica.fetch.response.max.bytes"]
        self.part_max = cfg["replica.fetch.max.bytes"]
        self.backoff = cfg["replica.fetch.backoff.ms"] / 1000

    def close(self) -> None:
        self.task.cancel()
        if self.channel is not None:
            self.channel.close()

    async def _connect(self) -> Channel:
        if self.channel is None or self.channel.closed:
            host, port = self.endpoint
            self.channel = await Channel(host, port, client_id=f"replica-fetcher-{self.node.broker_id}-{self.slot}",
                                         node_id=self.leader,
                                         request_timeout_ms=self.node.config["replica.socket.timeout.ms"],
                                         security=self.node.channel_security).connect()
        return self.channel

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            now = loop.time()
            # a replica whose log dir failed is removed on the loop's next turn: not fetched meanwhile
            active = [s for s in self.parts.values() if s.paused_until <= now and not s.p.closed and not s.p.offline]
            if not active:
                self.wake.clear()
                delay = min((s.paused_until for s in self.parts.values()), default=now + 1) - now
                try:
                    await asyncio.wait_for(self.wake.wait(), max(delay, 0.01))
                except TimeoutError:
                    pass
                continue
            try:
                ch = await self._connect()
                need = [s for s in active if s.truncate]
                if need:
                    await self._truncate(ch, need)
                    continue
                await self._fetch(ch, active)
            except ChannelError as e:
                log.info("fetcher for leader %d: %s; retrying in %.1fs", self.leader, e, self.backoff)
                await asyncio.sleep(self.backoff)
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - keep fetching the other partitions
                log.exception("fetcher for leader %d failed; retrying", self.leader)
                await asyncio.sleep(self.backoff)

    async def _truncate(self, ch: Channel, states: list[_State]) -> None:
        R = kp.OffsetForLeaderEpochRequest
        by_topic: dict[str, list[Any]] = {}
        for s in states:
            p = s.p
            by_topic.setdefault(p.topic.name, []).append(R.OffsetForLeaderPartition(
                partition=p.index, current_leader_epoch=p.leader_epoch, leader_epoch=p.epochs.latest_epoch()))
        req = R(replica_id=self.node.broker_id,
                topics=[R.OffsetForLeaderTopic(topic=t, partitions=ps) for t, ps in by_topic.items()])
        resp = await ch.send(req, OFFSET_FOR_LEADER_EPOCH_V)
        lookup = {(s.p.topic.name, s.p.index): s for s in states}
        loop = asyncio.get_running_loop()
        for tr in resp.topics:
            for pr in tr.partitions:
                st = lookup.get((tr.topic, pr.partition))
                if st is None:
                    continue
                s, p = st, st.p
                if pr.error_code:
                    s.paused_until = loop.time() + self.backoff
                    log.info("%s: OffsetForLeaderEpoch from leader %d: error %d; retrying", p.name, self.leader,
                             pr.error_code)
                    continue
                leo = p.log.end_offset
                if pr.end_offset < 0 or pr.leader_epoch < 0 or p.epochs.latest_epoch() < 0:
                    target = min(p.high_watermark, leo)
                elif pr.leader_epoch < p.epochs.latest_epoch():
                    # The leader does not know our latest epoch: cut at the end of the epoch it answered
                    # with, as we have it, or its end offset, whichever is smaller.
                    _e, ours = p.epochs.end_offset_for(pr.leader_epoch, leo)
                    target = min(pr.end_offset, ours if ours >= 0 else leo, leo)
                else:
                    target = min(pr.end_offset, leo)
                if target < leo:
                    log.info("%s: truncating from %d to %d (leader %d has epoch %d ending at %d)", p.name, leo,
                             target, self.leader, pr.leader_epoch, pr.end_offset)
                    p.truncate_to(target)
                s.truncate = False

    async def _fetch(self, ch: Channel, states: list[_State]) -> None:
        R = kp.FetchRequest
        by_topic: dict[str, list[Any]] = {}
        for s in states:
            p = s.p
            by_topic.setdefault(p.topic.name, []).append(R.FetchPartition(
                partition=p.index, current_leader_epoch=p.leader_epoch, fetch_offset=p.log.end_offset,
                last_fetched_epoch=-1, log_start_offset=p.log.start_offset, partition_max_bytes=self.part_max))
        req = R(replica_id=self.node.broker_id, max_wait_ms=self.max_wait, min_bytes=self.min_bytes,
                max_bytes=self.max_bytes, isolation_level=0, session_id=0, session_epoch=-1,
                topics=[R.FetchTopic(topic=t, partitions=ps) for t, ps in by_topic.items()],
                rack_id=self.node.config.get("broker.rack") or "")
        resp = await ch.send(req, FETCH_V, timeout=self.max_wait / 1000 + self.node.config[
            "replica.socket.timeout.ms"] / 1000)
        if resp.error_code:
            log.info("fetch from leader %d: error %d", self.leader, resp.error_code)
            await asyncio.sleep(self.backoff)
            return
        lookup = {(s.p.topic.name, s.p.index): s for s in states}
        loop = asyncio.get_running_loop()
        for tr in resp.responses:
            for pd in tr.partitions:
                st = lookup.get((tr.topic, pd.partition_index))
                if st is None or self.parts.get((tr.topic, pd.partition_index)) is not st:
                    continue       # removed while the fetch was out
                s, p = st, st.p
                if pd.error_code == E.OFFSET_OUT_OF_RANGE:
                    self._out_of_range(s, pd)
                    continue
                if pd.error_code:
                    if pd.error_code not in RETRIABLE:
                        log.warning("%s: fetch from leader %d: error %d", p.name, self.leader, pd.error_code)
                    s.paused_until = loop.time() + self.backoff
                    continue
                records = pd.records
                if records is not None and len(records):
                    res = p.append(records, AppendOrigin.REPLICATION)
                    if isinstance(res, AppendError):
                        log.error("%s: appending fetched batches failed: %s", p.name, res)
                        s.paused_until = loop.time() + self.backoff
                        continue
                hw = min(pd.high_watermark, p.log.end_offset)
                if hw > p.high_watermark:
                    p.high_watermark = hw
                    p.notify(0)
                if p.log.start_offset < pd.log_start_offset <= p.log.end_offset and not s.moving_start:
                    # DeleteRecords (or retention) moved the leader's log start: follow it
                    # (Partition.maybeIncrementLogStartOffset on the follower).
                    s.moving_start = True
                    asyncio.ensure_future(self._follow_log_start(s, pd.log_start_offset))

    async def _follow_log_start(self, s: _State, offset: int) -> None:
        try:
            await self.node.storage.delete_records(s.p, offset)
        except Exception as e:  # noqa: BLE001 - the next fetch response tries again
            log.warning("%s: moving the log start to the leader's %d: %s", s.p.name, offset, e)
        finally:
            s.moving_start = False

    def _out_of_range(self, s: _State, pd: Any) -> None:
        p = s.p
        leo = p.log.end_offset
        if leo < pd.log_start_offset:
            # Far behind: the leader deleted what we would fetch next. Start over at its log start.
            log.warning("%s: log end %d is before leader %d's log start %d: starting the log over there",
                        p.name, leo, self.leader, pd.log_start_offset)
            p.truncate_fully_and_start_at(pd.log_start_offset)
        else:
            s.truncate = True     # ahead of the leader: find where we diverge

    def add(self, p: Partition) -> None:
        s = _State(p)
        self.parts[(p.topic.name, p.index)] = s
        self.wake.set()

    def remove(self, p: Partition) -> bool:
        return self.parts.pop((p.topic.name, p.index), None) is not None


class FetcherManager:
    """Partitions this broker follows, grouped by leader."""

    def __init__(self, node: ClusterNode) -> None:
        self.node = node
        self.n = max(1, node.config["num.replica.fetchers"])
        self.fetchers: dict[tuple[int, int], LeaderFetcher] = {}
        self.where: dict[tuple[str, int], tuple[int, int]] = {}

    def add(self, p: Partition, leader: int, endpoint: tuple[str, int]) -> None:
        self.remove(p)
        slot = hash((p.topic.name, p.index)) % self.n
        key = (leader, slot)
        f = self.fetchers.get(key)
        if f is None or f.endpoint != endpoint:
            if f is not None:
                f.close()
            f = self.fetchers[key] = LeaderFetcher(self.node, leader, endpoint, slot)
        f.add(p)
        self.where[(p.topic.name, p.index)] = key

    def has(self, p: Partition) -> bool:
        return (p.topic.name, p.index) in self.where

    def remove(self, p: Partition) -> None:
        key = self.where.pop((p.topic.name, p.index), None)
        if key is None:
            return
        f = self.fetchers.get(key)
        if f is not None:
            f.remove(p)
            if not f.parts:
                f.close()
                del self.fetchers[key]

    def close(self) -> None:
        for f in self.fetchers.values():
            f.close()
        self.fetchers.clear()
        self.where.clear()
