"""The replica manager: what this broker is for each partition it hosts, and the cluster view it
serves metadata from (Kafka's ``ReplicaManager``, ``Partition`` leader state and ``MetadataCache``).

The controller tells it (LeaderAndIsr): for each replica here, leader or follower, at which
leader epoch, with which ISR.  ``Partition.replication`` holds that state (None on a single
node, where nothing here runs).

As leader it tracks each follower's log end from the offsets in its fetches, and moves the high
watermark to the smallest log end over the ISR; acks=all produce requests wait for it to pass
their last offset, and consumers' fetches read only below it.  A follower that has not caught up
with the log end for ``replica.lag.time.max.ms`` leaves the ISR; one that reaches the high
watermark joins it again.  The leader writes either change to the partition's state znode with
a conditional update (the znode version is the partition epoch the controller gave it; a
mismatch means the controller changed the state, and its LeaderAndIsr will follow) and leaves
an ``/isr_change_notification`` for the controller to propagate.

As follower it hands the partition to the fetcher of its leader (``fetcher.py``).

A replica whose log dir failed (``log/dir_failure.py``) stops being either (Kafka's
``handleLogDirFailure``): its fetcher stops, acks=all requests waiting on it answer
KAFKA_STORAGE_ERROR, and every LeaderAndIsr for it answers KAFKA_STORAGE_ERROR, which tells the
controller the replica is offline.  So does a LeaderAndIsr for a replica this broker does not hold
while a log dir is offline, unless the controller says it is new: it may be in the failed dir, and
an empty log made elsewhere would pass for it (Kafka's ``getOrCreateLog``).
"""

from __future__ import annotations

import asyncio
import collections
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import kafka_protocol as kp
from kafka_protocol.errors import ErrorCode as E

from ..log.clock import now_ms
from . import zk as Z
from .controller import LEADER_DURING_DELETE, NO_LEADER

if TYPE_CHECKING:
    from ..log.dir_failure import LogDir
    from ..log.partition import Partition
    from .node import ClusterNode

log = logging.getLogger("kafka_broker.cluster.replicas")


@dataclass
class FollowerState:
    leo: int = -1                   # its log end as its last fetch told (-1: not fetched yet)
    log_start: int = -1             # its log start, likewise
    last_caught_up_ms: int = 0
    last_fetch_leader_leo: int = -1
    last_fetch_ms: int = 0


@dataclass
class Replication:
    """``Partition.replication``: this broker's role for the partition."""

    leader: int
    leader_epoch: int
    isr: list[int]
    replicas: list[int]
    zk_version: int
    controller_epoch: int
    is_leader: bool
    followers: dict[int, FollowerState] = field(default_factory=dict)
    # acks=all produce requests waiting for the high watermark: (offset it must pass, future)
    acks_waiting: collections.deque[tuple[int, asyncio.Future[int]]] = field(default_factory=collections.deque)
    # DeleteRecords waiting for every live replica's log start: (offset it must reach, future)
    deletes_waiting: list[tuple[int, asyncio.Future[int]]] = field(default_factory=list)
    isr_pending: bool = False       # a conditional ISR write in flight


@dataclass
class PartitionMeta:
    leader: int
    leader_epoch: int
    isr: list[int]
    replicas: list[int]
    offline: list[int]
    zk_version: int


@dataclass
class TopicMeta:
    id: Any
    partitions: dict[int, PartitionMeta]
    version: int = 0    # bumped by every change of the above (stamps the cached Metadata entry)


class MetadataCache:
    """The cluster as the controller last described it (UpdateMetadata)."""

    def __init__(self) -> None:
        self.brokers: dict[int, tuple[dict[str, tuple[str, int]], str | None]] = {}
        self.topics: dict[str, TopicMeta] = {}
        self.controller_id = -1
        self.changed = asyncio.Event()

    def update(self, req: Any) -> None:
        self.controller_id = req.controller_id
        self.brokers = {b.id: ({e.listener: (e.host, e.port) for e in b.endpoints}, b.rack)
                        for b in req.live_brokers}
        for ts in req.topic_states:
            for ps in ts.partition_states:
                if ps.leader == LEADER_DURING_DELETE:
                    t = self.topics.get(ts.topic_name)
                    if t is not None:
                        if t.partitions.pop(ps.partition_index, None) is not None:
                            t.version += 1
                        if not t.partitions:
                            del self.topics[ts.topic_name]
                    continue
                t = self.topics.get(ts.topic_name)
                if t is None:
                    t = self.topics[ts.topic_name] = TopicMeta(ts.topic_id, {})
                if t.id != ts.topic_id:
                    t.id = ts.topic_id
                    t.version += 1
                pm = PartitionMeta(ps.leader, ps.leader_epoch, list(ps.isr), list(ps.replicas),
                                   list(ps.offline_replicas), ps.zk_version)
                if t.partitions.get(ps.partition_index) != pm:
                    t.partitions[ps.partition_index] = pm
                    t.version += 1
        self.changed.set()
        self.changed = asyncio.Event()

    def endpoint(self, broker: int, listener: str) -> tuple[str, int] | None:
        b = self.brokers.get(broker)
        if b is None:
            return None
        return b[0].get(listener)

    def leader_of(self, topic: str, partition: int) -> int:
        t = self.topics.get(topic)
        pm = t.partitions.get(partition) if t is not None else None
        return pm.leader if pm is not None else NO_LEADER


class ReplicaManager:
    def __init__(self, node: ClusterNode) -> None:
        self.node = node
        self.broker_id = node.broker_id
        self.storage = node.storage
        self.config = node.config
        self.controller_epoch = 0
        self.lag_ms = self.config["replica.lag.time.max.ms"]
        self.isr_notify: set[tuple[str, int]] = set()
        self.isr_notify_handle: asyncio.TimerHandle | None = None
        self.isr_task: asyncio.Task[None] | None = None
        self.deleting: set[Partition] = set()    # leaders with DeleteRecords waiting
        self.lock = asyncio.Lock()       # LeaderAndIsr / StopReplica are applied one at a time

    def start(self) -> None:
        self.isr_task = asyncio.ensure_future(self._isr_expiry())

    def close(self) -> None:
        if self.isr_task is not None:
            self.isr_task.cancel()
        for t in list(self.storage.topics.values()):
            for p in t.hosted():
                rep = p.replication
                if rep is not None:
                    self._fail_waiters(rep, E.NOT_LEADER_OR_FOLLOWER)

    # -- controller requests ---------------------------------------------------------

    def _stale(self, req: Any) -> bool:
        if req.controller_epoch < self.controller_epoch:
            log.warning("ignoring a request from controller %d of stale epoch %d (current %d)",
                        req.controller_id, req.controller_epoch, self.controller_epoch)
            return True
        self.controller_epoch = req.controller_epoch
        return False

    async def leader_and_isr(self, req: Any, version: int) -> Any:
        R = kp.LeaderAndIsrResponse
        if self._stale(req):
            return R(error_code=E.STALE_CONTROLLER_EPOCH)
        async with self.lock:
            endpoints = {ll.broker_id: (ll.host_name, ll.port) for ll in req.live_leaders}
            topics_out = []
            for ts in req.topic_states:
                errs = []
                for ps in ts.partition_states:
                    code = await self._apply(ts.topic_name, ts.topic_id, ps, endpoints)
                    errs.append(R.LeaderAndIsrPartitionError(topic_name=ts.topic_name,
                                                             partition_index=ps.partition_index, error_code=code))
                topics_out.append(R.LeaderAndIsrTopicError(topic_id=ts.topic_id, partition_errors=errs))
        return R(error_code=0, topics=topics_out)

    async def _apply(self, topic: str, topic_id: Any, ps: Any, endpoints: dict[int, tuple[str, int]]) -> int:
        if self.broker_id not in ps.replicas:
            return E.UNKNOWN_TOPIC_OR_PARTITION
        st = self.storage
        t = st.topics.get(topic)
        idx = ps.partition_index
        if t is None or idx >= len(t.partitions) or t.partitions[idx] is None:
            failed = [d.path for d in st.log_dirs.dirs if d.offline is not None]
            if failed and not ps.is_new:
                log.warning("cannot create log for %s-%d because log directories %s are offline", topic, idx,
                            ", ".join(failed))
                return E.KAFKA_STORAGE_ERROR
            overrides = await self.node.topic_overrides(topic)
            n = max(idx + 1, len(t.partitions) if t is not None else 0)
            try:
                t = await st.ensure_topic(topic, topic_id, n, overrides)
                p = await st.create_replica(t, idx)
            except Exception as e:  # noqa: BLE001 - a disk error refuses this replica only
                log.error("cannot create replica %s-%d: %s", topic, idx, e)
                return E.KAFKA_STORAGE_ERROR
        else:
            p = t.partitions[idx]
        assert p is not None
        if p.offline:
            return E.KAFKA_STORAGE_ERROR
        rep = p.replication
        if rep is not None and ps.leader_epoch < rep.leader_epoch:
            log.info("%s: LeaderAndIsr at leader epoch %d is older than the current %d; ignored",
                     p.name, ps.leader_epoch, rep.leader_epoch)
            return E.STALE_CONTROLLER_EPOCH
        if rep is not None and ps.leader_epoch == rep.leader_epoch and ps.partition_epoch < rep.zk_version:
            # Our own ISR write got there first (Kafka's makeLeader: "already at a newer partition
            # epoch"): taking this would put back the ISR and znode version we just replaced.
            log.info("%s: LeaderAndIsr at partition epoch %d is older than the current %d; ignored",
                     p.name, ps.partition_epoch, rep.zk_version)
            return E.STALE_CONTROLLER_EPOCH
        if ps.leader == self.broker_id:
            self._make_leader(p, ps)
        else:
            self._make_follower(p, ps, endpoints)
        return 0

    def _make_leader(self, p: Partition, ps: Any) -> None:
        old = p.replication
        self.node.fetchers.remove(p)
        now = now_ms()
        new_epoch = old is None or not old.is_leader or ps.leader_epoch != old.leader_epoch
        rep = Replication(self.broker_id, ps.leader_epoch, list(ps.isr), list(ps.replicas), ps.partition_epoch,
                          ps.controller_epoch, True)
        for r in ps.replicas:
            if r == self.broker_id:
                continue
            prev = old.followers.get(r) if old is not None and old.is_leader and not new_epoch else None
            rep.followers[r] = prev or FollowerState(last_caught_up_ms=now if r in ps.isr else 0)
        if old is not None and old.is_leader and not new_epoch:
            rep.acks_waiting = old.acks_waiting
            rep.deletes_waiting = old.deletes_waiting
        elif old is not None:
            self._fail_waiters(old, E.NOT_LEADER_OR_FOLLOWER)
        p.leader_epoch = ps.leader_epoch
        if new_epoch:
            p.epochs.assign(ps.leader_epoch, p.log.end_offset)
            log.info("%s: leader at epoch %d, ISR %s, high watermark %d, log end %d", p.name, ps.leader_epoch,
                     ps.isr, p.high_watermark, p.log.end_offset)
        p.replication = rep
        self.maybe_advance_hw(p)
        self.node.on_leadership(p, True)

    def _make_follower(self, p: Partition, ps: Any, endpoints: dict[int, tuple[str, int]]) -> None:
        old = p.replication
        if old is not None:
            self._fail_waiters(old, E.NOT_LEADER_OR_FOLLOWER)
        changed = old is None or old.is_leader or old.leader != ps.leader or old.leader_epoch != ps.leader_epoch
        p.replication = Replication(ps.leader, ps.leader_epoch, list(ps.isr), list(ps.replicas),
                                    ps.partition_epoch, ps.controller_epoch, False)
        p.leader_epoch = ps.leader_epoch
        if old is None or old.is_leader:
            self.node.on_leadership(p, False)
        p.notify(0)       # parked consumer fetches answer NOT_LEADER_OR_FOLLOWER now
        if not changed and self.node.fetchers.has(p):
            return
        self.node.fetchers.remove(p)
        if ps.leader >= 0 and ps.leader != self.broker_id:
            ep = endpoints.get(ps.leader) or self.node.endpoint_of(ps.leader)
            if ep is None:
                log.warning("%s: leader %d has no known endpoint yet", p.name, ps.leader)
                return
            log.info("%s: follower of %d at epoch %d (log end %d, high watermark %d)", p.name, ps.leader,
                     ps.leader_epoch, p.log.end_offset, p.high_watermark)
            self.node.fetchers.add(p, ps.leader, ep)

    def dir_offline(self, d: LogDir) -> int:
        """Loop thread: log dir ``d`` failed.  Its replicas here neither lead nor follow any more;
        returns how many there are."""
        n = 0
        for t in list(self.storage.topics.values()):
            for p in t.hosted():
                if p.log_dir is not d:
                    continue
                n += 1
                self.node.fetchers.remove(p)
                rep = p.replication
                if rep is None:
                    continue
                self._fail_waiters(rep, E.KAFKA_STORAGE_ERROR)
                if rep.is_leader:
                    self.node.on_leadership(p, False)
                rep.is_leader = False
                rep.leader = NO_LEADER
        return n

    async def stop_replica(self, req: Any, version: int) -> Any:
        R = kp.StopReplicaResponse
        if self._stale(req):
            return R(error_code=E.STALE_CONTROLLER_EPOCH)
        errs = []
        async with self.lock:
            for ts in req.topic_states:
                t = self.storage.topics.get(ts.topic_name)
                for sp in ts.partition_states:
                    idx = sp.partition_index
                    p = t.partitions[idx] if t is not None and 0 <= idx < len(t.partitions) else None
                    code = 0
                    if p is not None:
                        self.node.fetchers.remove(p)
                        rep = p.replication
                        if rep is not None:
                            self._fail_waiters(rep, E.NOT_LEADER_OR_FOLLOWER)
                            if rep.is_leader:
                                self.node.on_leadership(p, False)
                            rep.is_leader = False
                            rep.leader = NO_LEADER
                        if sp.delete_partition and t is not None:
                            try:
                                await self.storage.delete_replica(t, idx)
                            except Exception as e:  # noqa: BLE001
                                log.error("deleting replica %s-%d: %s", ts.topic_name, idx, e)
                                code = E.KAFKA_STORAGE_ERROR
                    errs.append(R.StopReplicaPartitionError(topic_name=ts.topic_name, partition_index=idx,
                                                            error_code=code))
        return R(error_code=0, partition_errors=errs)

    def update_metadata(self, req: Any, version: int) -> Any:
        if self._stale(req):
            return kp.UpdateMetadataResponse(error_code=E.STALE_CONTROLLER_EPOCH)
        self.node.metadata.update(req)
        for p in list(self.deleting):       # a broker that died no longer holds them back
            if p.replication is not None:
                self._wake_deletes(p, p.replication)
        if self.node.registered.is_set() and self.broker_id in self.node.metadata.brokers:
            self.node.serving.set()
        return kp.UpdateMetadataResponse(error_code=0)

    # -- the leader's side of replication -----------------------------------------------

    def follower_fetched(self, p: Partition, replica_id: int, fetch_offset: int, log_start: int = -1) -> int:
        """A follower's fetch at ``fetch_offset`` (its log end) with its log start (-1: Fetch
        below v5 does not say): 0, or the error to answer."""
        rep = p.replication
        if rep is None or not rep.is_leader:
            return E.NOT_LEADER_OR_FOLLOWER
        f = rep.followers.get(replica_id)
        if f is None:
            return E.NOT_LEADER_OR_FOLLOWER   # not a replica of this partition (Kafka: UNKNOWN_... in newer)
        now = now_ms()
        leo = p.log.end_offset
        if fetch_offset >= leo:
            f.last_caught_up_ms = max(f.last_caught_up_ms, now)
        elif fetch_offset >= f.last_fetch_leader_leo:
            f.last_caught_up_ms = max(f.last_caught_up_ms, f.last_fetch_ms)
        f.last_fetch_leader_leo = leo
        f.last_fetch_ms = now
        f.leo = fetch_offset
        if log_start >= 0 and log_start != f.log_start:
            f.log_start = log_start
            if rep.deletes_waiting:
                self._wake_deletes(p, rep)
        if replica_id not in rep.isr:
            start = p.epochs.start_offset_of(rep.leader_epoch) if hasattr(p.epochs, "start_offset_of") else -1
            if fetch_offset >= p.high_watermark and fetch_offset >= start:
                self._change_isr(p, [*rep.isr, replica_id])
        self.maybe_advance_hw(p)
        return 0

    def maybe_advance_hw(self, p: Partition) -> None:
        rep = p.replication
        if rep is None or not rep.is_leader:
            return
        hw = p.log.end_offset
        for r in rep.isr:
            if r != self.broker_id:
                f = rep.followers.get(r)
                if f is None or f.leo < 0:
                    return        # an ISR member we have not heard from since leading: wait
                hw = min(hw, f.leo)
        if hw > p.high_watermark:
            p.high_watermark = hw
            waiting = rep.acks_waiting
            while waiting and waiting[0][0] <= hw:
                _, fut = waiting.popleft()
                if not fut.done():
                    fut.set_result(0)
            p.notify(0)

    def wait_replicated(self, p: Partition, end_offset: int) -> asyncio.Future[int] | None:
        """For acks=all: a future resolved (with 0, or an error code) once the high watermark
        reaches ``end_offset``; None when it already has."""
        if p.high_watermark >= end_offset:
            return None
        rep = p.replication
        fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        if rep is None or not rep.is_leader:
            fut.set_result(E.NOT_LEADER_OR_FOLLOWER)
            return fut
        rep.acks_waiting.append((end_offset, fut))
        return fut

    def low_watermark(self, p: Partition) -> int:
        """The smallest log start over the leader and its replicas on live brokers (-1 while one
        has not said): what DeleteRecords answers (Kafka's ``lowWatermarkIfLeader``)."""
        rep = p.replication
        lw = p.log.start_offset
        if rep is None:
            return lw
        live = self.node.metadata.brokers
        for r, f in rep.followers.items():
            if r in live and f.log_start < lw:
                lw = f.log_start
        return lw

    def wait_low_watermark(self, p: Partition, offset: int) -> asyncio.Future[int] | None:
        """After DeleteRecords moved the leader's log start to ``offset``: a future resolved (with
        0, or an error code) once every live replica has followed; None when they already have
        (Kafka's ``DelayedDeleteRecords``)."""
        rep = p.replication
        if rep is None or not rep.is_leader:
            fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
            fut.set_result(E.NOT_LEADER_OR_FOLLOWER)
            return fut
        if self.low_watermark(p) >= offset:
            return None
        fut = asyncio.get_running_loop().create_future()
        rep.deletes_waiting.append((offset, fut))
        self.deleting.add(p)
        return fut

    def _wake_deletes(self, p: Partition, rep: Replication) -> None:
        lw = self.low_watermark(p)
        keep = []
        for offset, fut in rep.deletes_waiting:
            if fut.done():
                continue
            if lw >= offset:
                fut.set_result(0)
            else:
                keep.append((offset, fut))
        rep.deletes_waiting = keep
        if not keep:
            self.deleting.discard(p)

    @staticmethod
    def _fail_waiters(rep: Replication, code: int) -> None:
        while rep.acks_waiting:
            _, fut = rep.acks_waiting.popleft()
            if not fut.done():
                fut.set_result(code)
        waiting, rep.deletes_waiting = rep.deletes_waiting, []
        for _, fut in waiting:
            if not fut.done():
                fut.set_result(code)

    async def _isr_expiry(self) -> None:
        """Every replica.lag.time.max.ms / 2: drop followers that have not caught up in that time."""
        while True:
            await asyncio.sleep(max(self.lag_ms / 2000, 0.05))
            now = now_ms()
            for t in list(self.storage.topics.values()):
                for p in t.hosted():
                    rep = p.replication
                    if rep is None or not rep.is_leader or rep.isr_pending or len(rep.isr) <= 1:
                        continue
                    out = [r for r in rep.isr if r != self.broker_id
                           and now - rep.followers.get(r, FollowerState()).last_caught_up_ms > self.lag_ms]
                    if out:
                        log.info("%s: shrinking ISR %s: %s not caught up within replica.lag.time.max.ms "
                                 "(%d ms)", p.name, rep.isr, out, self.lag_ms)
                        self._change_isr(p, [r for r in rep.isr if r not in out])

    def _change_isr(self, p: Partition, isr: list[int]) -> None:
        rep = p.replication
        if rep is None or rep.isr_pending:
            return
        rep.isr_pending = True
        asyncio.ensure_future(self._write_isr(p, rep, isr))

    async def _write_isr(self, p: Partition, rep: Replication, isr: list[int]) -> None:
        from kazoo.exceptions import BadVersionError, NoNodeError

        zk = self.node.zk
        topic, idx = p.topic.name, p.index
        path = Z.partition_state_path(topic, idx)
        state = Z.LeaderIsr(self.broker_id, rep.leader_epoch, isr, rep.controller_epoch)
        try:
            stat = await zk.set(path, state.encode(), rep.zk_version)
        except (BadVersionError, NoNodeError):
            got = await zk.get_or_none(path)
            cur = Z.LeaderIsr.decode(got[0], got[1].version) if got is not None else None
            log.info("%s: ISR update to %s refused (znode changed: %s); waiting for the controller",
                     p.name, isr, cur)
            rep.isr_pending = False
            return
        except Exception as e:  # noqa: BLE001 - ZooKeeper unreachable: try again at the next check
            log.warning("%s: ISR update to %s failed: %s", p.name, isr, e)
            rep.isr_pending = False
            return
        finally:
            pass
        rep.isr_pending = False
        if p.replication is not rep:
            # A LeaderAndIsr of the same leader epoch replaced our state while the write was out:
            # one that a controller sent before it saw our write holds an older znode version, and
            # the write still stands in ZooKeeper, so it stands here too.
            cur = p.replication
            if (cur is None or not cur.is_leader or cur.leader_epoch != rep.leader_epoch
                    or cur.zk_version >= stat.version):
                return
            rep = cur
        if len(isr) > len(rep.isr):
            log.info("%s: expanding ISR %s -> %s", p.name, rep.isr, isr)
        rep.isr = isr
        rep.zk_version = stat.version
        self.maybe_advance_hw(p)
        self._notify_isr_change(topic, idx)

    def _notify_isr_change(self, topic: str, partition: int) -> None:
        self.isr_notify.add((topic, partition))
        if self.isr_notify_handle is None:
            self.isr_notify_handle = asyncio.get_running_loop().call_later(0.05, self._flush_isr_notify)

    def _flush_isr_notify(self) -> None:
        self.isr_notify_handle = None
        keys, self.isr_notify = sorted(self.isr_notify), set()
        fut = self.node.zk.create(f"{Z.ISR_CHANGES}/isr_change_", Z.encode_isr_change(keys), sequence=True)
        def done(f: asyncio.Future[Any]) -> None:
            if f.exception() is not None:
                log.warning("ISR change notification: %s", f.exception())
        fut.add_done_callback(done)
