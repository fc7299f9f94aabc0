"""The controller (Kafka's ZooKeeper-mode ``KafkaController``): one broker of the cluster, elected
through ZooKeeper, that decides leaders and ISRs and tells the brokers.

Election: every broker tries to create the ephemeral ``/controller``; the one that succeeds, in
the same ZooKeeper transaction, bumps ``/controller_epoch`` with a conditional write.  Every
request it sends carries that epoch, and brokers refuse an older one (STALE_CONTROLLER_EPOCH),
so a controller that lost its session and does not know it yet is fenced.  The others watch
``/controller`` and run for it when it disappears.

The active controller handles one event at a time from a queue (as Kafka's
``ControllerEventManager`` does): brokers coming and going (``/brokers/ids`` children), new
topics and partitions (``/brokers/topics``), deletions (``/admin/delete_topics``), ISR changes
the leaders wrote (``/isr_change_notification``), log-dir failures (``/log_dir_event_notification``)
and controlled shutdowns.  For each it writes
the new leader and ISR to ``/brokers/topics/T/partitions/P/state`` with a conditional update
(the znode version it read), then sends LeaderAndIsr to the replicas concerned and
UpdateMetadata to every live broker.

Leader election (``PartitionLeaderElectionAlgorithms``): the first replica in assignment order
that is alive and in the ISR; none: the partition goes offline (leader -1) unless
``unclean.leader.election.enable``, which takes the first live replica and accepts losing what
only the ISR had.  Every leader change bumps the leader epoch.

Offline replicas (Kafka's ``replicasOnOfflineDirs``): a broker answers KAFKA_STORAGE_ERROR in its
LeaderAndIsr response for a replica whose log dir failed.  Every LeaderAndIsr response is read for
that; a broker whose dir fails while it runs writes ``/log_dir_event_notification/log_dir_event_N``
so that the controller (which deletes the notification) sends it LeaderAndIsr for all its replicas
and learns which they are.  An offline replica counts as dead for that partition alone: it leaves
the ISR, leadership moves to another in-sync replica, and UpdateMetadata lists it among the
partition's offline replicas, until the broker registers again (a restart: its dirs are loaded
anew, and a replica whose dir is still bad is reported again).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import kafka_protocol as kp
from kafka_protocol.errors import ErrorCode as E

from . import zk as Z
from .channel import PLAINTEXT, Channel, ChannelError

log = logging.getLogger("kafka_broker.cluster.controller")
T = TypeVar("T")

LEADER_AND_ISR_V = 6
UPDATE_METADATA_V = 7
STOP_REPLICA_V = 3
NO_LEADER = -1
LEADER_DURING_DELETE = -2
SECURITY_PROTOCOLS = {"PLAINTEXT": 0, "SSL": 1, "SASL_PLAINTEXT": 2, "SASL_SSL": 3}
STATE_WRITE_ATTEMPTS = 5        # a conflicting ISR write by the leader is rare; several in a row, rarer


@dataclass
class TopicState:
    id: uuid.UUID
    replicas: dict[int, list[int]]


class _BrokerSender:
    """Requests to one broker, in order; reconnects and resends until the broker is gone."""

    def __init__(self, ctl: Controller, info: Z.BrokerInfo) -> None:
        self.ctl = ctl
        self.info = info
        self.queue: asyncio.Queue[tuple[kp.Message, int, asyncio.Future[Any] | None]] = asyncio.Queue()
        self.channel: Channel | None = None
        self.task = asyncio.ensure_future(self._run())

    def send(self, req: kp.Message, version: int) -> asyncio.Future[Any]:
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.queue.put_nowait((req, version, fut))
        return fut

    async def _run(self) -> None:
        while True:
            req, version, fut = await self.queue.get()
            while True:
                try:
                    if self.channel is None or self.channel.closed:
                        host, port = self.ctl.endpoint_of(self.info)
                        self.channel = await Channel(host, port, client_id=f"controller-{self.ctl.broker_id}",
                                                     node_id=self.info.id, security=self.ctl.security).connect()
                    resp = await self.channel.send(req, version)
                    if fut is not None and not fut.done():
                        fut.set_result(resp)
                    break
                except ChannelError as e:
                    log.info("controller: request to broker %d failed (%s); retrying", self.info.id, e)
                    await asyncio.sleep(0.3)

    def close(self) -> None:
        self.task.cancel()
        if self.channel is not None:
            self.channel.close()


class Controller:
    def __init__(self, zk: Z.Zk, broker_id: int, listener_name: str, config: Any,
                 on_change: Callable[[int], None]) -> None:
        self.zk = zk
        self.broker_id = broker_id
        self.listener_name = listener_name
        self.config = config
        from .node import inter_broker_security
        self.security = inter_broker_security(config) if hasattr(config, "inter_broker_listener") else PLAINTEXT
        self.on_change = on_change            # active controller id changed (broker updates its view)
        self.active = False
        self.epoch = 0
        self.epoch_zk_version = -1
        self.controller_id = -1
        self.events: asyncio.Queue[Callable[[], Awaitable[None]]] = asyncio.Queue()
        self.worker: asyncio.Task[None] | None = None
        self.brokers: dict[int, Z.BrokerInfo] = {}
        self.topics: dict[str, TopicState] = {}
        self.states: dict[tuple[str, int], Z.LeaderIsr] = {}
        self.shutting_down: set[int] = set()
        self.deleting: set[str] = set()
        self.delete_pending: dict[str, set[int]] = {}     # deleted topic -> brokers down that hold replicas
        self.senders: dict[int, _BrokerSender] = {}
        self.topic_configs: dict[str, dict[str, str]] = {}
        # partition -> (original replicas, target replicas) while a reassignment runs
        self.reassigning: dict[tuple[str, int], tuple[list[int], list[int]]] = {}
        # broker -> its replicas in a failed log dir (as its LeaderAndIsr responses said)
        self.offline_replicas: dict[int, set[tuple[str, int]]] = {}
        self._rebalance_timer: asyncio.TimerHandle | None = None
        self.closed = False

    # -- election ----------------------------------------------------------------------

    def start(self) -> None:
        self.worker = asyncio.ensure_future(self._work())
        self.enqueue(self._elect)
        self._arm_rebalance()

    def enqueue(self, fn: Callable[[], Awaitable[None]]) -> None:
        if not self.closed:
            self.events.put_nowait(fn)

    async def _in_queue(self, fn: Callable[[], Awaitable[T]]) -> T:
        """Run ``fn`` as one event of the queue (after those before it) and return its result."""
        fut: asyncio.Future[T] = asyncio.get_running_loop().create_future()

        async def run() -> None:
            try:
                fut.set_result(await fn())
            except Exception as e:  # noqa: BLE001 - the caller gets it
                fut.set_exception(e)
        self.enqueue(run)
        return await fut

    async def _work(self) -> None:
        while True:
            fn = await self.events.get()
            try:
                await fn()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - one failed event must not stop the controller
                log.exception("controller event failed")

    def _on_controller_znode(self, _ev: Any) -> None:
        self.enqueue(self._elect)

    async def _elect(self) -> None:
        from kazoo.exceptions import BadVersionError, NodeExistsError, NoNodeError

        got = await self.zk.get_or_none(Z.CONTROLLER, self._on_controller_znode)
        if got is not None:
            cid = Z.decode_controller(got[0])
            if cid != self.broker_id and self.active:
                self._resign()
            self._set_controller(cid)
            return
        # Run for controller: create /controller and bump /controller_epoch atomically.
        epoch_got = await self.zk.get_or_none(Z.CONTROLLER_EPOCH)
        if epoch_got is None:
            try:
                await self.zk.create(Z.CONTROLLER_EPOCH, b"0")
            except NodeExistsError:
                pass
            epoch_got = await self.zk.get(Z.CONTROLLER_EPOCH)
        epoch, version = int(epoch_got[0] or b"0"), epoch_got[1].version
        tx = self.zk.kz.transaction()
        tx.create(Z.CONTROLLER, Z.encode_controller(self.broker_id), ephemeral=True)
        tx.set_data(Z.CONTROLLER_EPOCH, str(epoch + 1).encode(), version)
        results = await self.zk._aw(tx.commit_async())
        failed = [r for r in results if isinstance(r, Exception)]
        if failed:
            if any(isinstance(r, (NodeExistsError, BadVersionError, NoNodeError)) for r in failed):
                self.enqueue(self._elect)      # someone else won, or raced us on the epoch: read again
                return
            raise failed[0]
        await self.zk.exists(Z.CONTROLLER, self._on_controller_znode)
        self.epoch = epoch + 1
        self.epoch_zk_version = version + 1
        log.info("broker %d is the controller (epoch %d)", self.broker_id, self.epoch)
        self.active = True
        self._set_controller(self.broker_id)
        await self._failover()

    def _set_controller(self, cid: int) -> None:
        if cid != self.controller_id:
            self.controller_id = cid
            self.on_change(cid)

    def _resign(self) -> None:
        log.info("broker %d resigns as controller", self.broker_id)
        self.active = False
        for s in self.senders.values():
            s.close()
        self.senders.clear()
        self.brokers.clear()
        self.topics.clear()
        self.states.clear()
        self.offline_replicas.clear()

    def session_lost(self) -> None:
        """ZooKeeper session expired: /controller (if ours) is gone; run again when reconnected."""
        if self.active:
            self._resign()
        self._set_controller(-1)

    def session_restored(self) -> None:
        self.enqueue(self._elect)

    def close(self) -> None:
        self.closed = True
        if self.worker is not None:
            self.worker.cancel()
        if self._rebalance_timer is not None:
            self._rebalance_timer.cancel()
        for s in self.senders.values():
            s.close()
        self.senders.clear()

    # -- failover: read everything, repair, tell everyone --------------------------------

    async def _failover(self) -> None:
        await self._read_brokers()
        names = await self.zk.children(Z.BROKER_TOPICS, self._watch(self._topics_changed))
        await asyncio.gather(*(self._read_topic(t) for t in names))
        await self.zk.children(Z.DELETE_TOPICS, self._watch(self._deletions))
        await self.zk.children(Z.ISR_CHANGES, self._watch(self._isr_changes))
        await self.zk.children(Z.LOG_DIR_EVENTS, self._watch(self._log_dir_events))
        await self._drop_dead_replicas()
        changed = await self._elect_offline(set(self.states))
        await self._init_new_partitions()
        self._send_update_metadata(list(self.brokers), None)
        for b in list(self.brokers):
            self._send_leader_and_isr(b, [k for k, _ in self._replicas_on(b)])
        del changed
        await self._deletions()
        await self._isr_changes()
        await self._log_dir_events()

    async def _drop_dead_replicas(self) -> None:
        """At failover, brokers named in an ISR but not registered (the old controller died with
        them, or before acting on them) leave it, and partitions they led get a new leader, as
        Kafka's replica state machine moves their replicas to OfflineReplica at start-up.  Else
        the ISR keeps a dead broker, and the leader's high watermark waits for it until the
        leader drops it for lag."""
        dead = {r for st in self.states.values() for r in st.isr} - set(self.brokers)
        if dead:
            log.info("controller: broker(s) %s in ISRs are not registered", sorted(dead))
            await self._on_brokers_failed(dead)

    def _watch(self, fn: Callable[[], Awaitable[None]]) -> Callable[[Any], None]:
        def fire(_ev: Any) -> None:
            if self.active:
                self.enqueue(fn)
        return fire

    def endpoint_of(self, info: Z.BrokerInfo) -> tuple[str, int]:
        ep = info.endpoints.get(self.listener_name)
        if ep is None:
            ep = next(iter(info.endpoints.values()))
        return ep

    async def _read_brokers(self) -> tuple[set[int], set[int]]:
        """(started, gone) since the last read; a broker that re-registered counts as both."""
        ids = [int(x) for x in await self.zk.children(Z.BROKER_IDS, self._watch(self._brokers_changed))]
        got = await asyncio.gather(*(self.zk.get_or_none(f"{Z.BROKER_IDS}/{i}") for i in ids))
        now: dict[int, Z.BrokerInfo] = {}
        for i, g in zip(ids, got, strict=True):
            if g is not None:
                now[i] = Z.BrokerInfo.decode(i, g[0], g[1].czxid)
        old = self.brokers
        bounced = {i for i in now if i in old and old[i].epoch != now[i].epoch}
        started = (set(now) - set(old)) | bounced
        gone = (set(old) - set(now)) | bounced
        self.brokers = now
        for i in gone | started:     # a broker that starts loads its log dirs anew
            self.offline_replicas.pop(i, None)
        for i in gone:
            s = self.senders.pop(i, None)
            if s is not None:
                s.close()
            self.shutting_down.discard(i)
        for i in started:
            self.senders[i] = _BrokerSender(self, now[i])
        return started, gone

    async def _read_topic(self, name: str) -> None:
        got = await self.zk.get_or_none(Z.topic_path(name), self._watch(lambda: self._topic_data_changed(name)))
        if got is None:
            self.topics.pop(name, None)
            return
        ta = Z.TopicAssignment.decode(got[0])
        self.topics[name] = TopicState(ta.topic_id, ta.partitions)
        for p, reps in ta.partitions.items():     # a reassignment the previous controller started
            adding, removing = ta.adding.get(p, []), ta.removing.get(p, [])
            if adding or removing:
                self.reassigning[(name, p)] = ([r for r in reps if r not in adding],
                                               [r for r in reps if r not in removing])
        conf = await self.zk.get_or_none(f"{Z.CONFIG_TOPICS}/{name}")
        self.topic_configs[name] = Z.decode_topic_config(conf[0] if conf else None)
        states = await asyncio.gather(*(self.zk.get_or_none(Z.partition_state_path(name, p))
                                        for p in ta.partitions))
        for p, s in zip(ta.partitions, states, strict=True):
            if s is not None:
                self.states[(name, p)] = Z.LeaderIsr.decode(s[0], s[1].version)

    def _replicas_on(self, broker: int) -> list[tuple[tuple[str, int], list[int]]]:
        return [((t, p), reps) for t, ts in self.topics.items() if t not in self.deleting
                for p, reps in ts.replicas.items() if broker in reps]

    def _replicas(self, key: tuple[str, int]) -> list[int]:
        return self.topics[key[0]].replicas.get(key[1], [])

    def _online(self, broker: int, key: tuple[str, int]) -> bool:
        """``broker`` is alive and its replica of ``key`` is not in a failed log dir."""
        return broker in self.brokers and key not in self.offline_replicas.get(broker, ())

    # -- events --------------------------------------------------------------------------

    async def _brokers_changed(self) -> None:
        started, gone = await self._read_brokers()
        if gone:
            log.info("controller: broker(s) %s gone", sorted(gone))
            await self._on_brokers_failed(gone)
        if started:
            log.info("controller: broker(s) %s started", sorted(started))
            await self._on_brokers_started(started)

    async def _on_brokers_failed(self, gone: set[int]) -> None:
        keys = [k for k, st in self.states.items() if st.leader in gone or gone & set(st.isr)]
        def decide(k: tuple[str, int], st: Z.LeaderIsr) -> Z.LeaderIsr | None:
            if st.leader in gone or st.leader == NO_LEADER:
                return self._elect_leader(k, st)
            if not gone & set(st.isr):
                return None
            return Z.LeaderIsr(st.leader, st.leader_epoch + 1, [r for r in st.isr if r not in gone], self.epoch)
        changed = []
        for k in keys:
            if await self._change_state(k, functools.partial(decide, k)):
                changed.append(k)
        self._propagate(changed)

    async def _on_brokers_started(self, started: set[int]) -> None:
        # The new brokers learn the whole cluster; everyone learns of them.
        self._send_update_metadata([b for b in self.brokers if b not in started], [])
        self._send_update_metadata(list(started), None)
        await self._resume_deletions(started)
        offline = {k for k, st in self.states.items() if not self._online(st.leader, k)}
        changed = await self._elect_offline(offline)
        for b in started:
            self._send_leader_and_isr(b, [k for k, _ in self._replicas_on(b)])
        self._propagate(changed, skip=started)

    async def _elect_offline(self, keys: set[tuple[str, int]]) -> list[tuple[str, int]]:
        def decide(k: tuple[str, int], st: Z.LeaderIsr) -> Z.LeaderIsr | None:
            if self._online(st.leader, k) and st.leader not in self.shutting_down:
                return None
            return self._elect_leader(k, st)
        changed = []
        for k in keys:
            if await self._change_state(k, functools.partial(decide, k)):
                changed.append(k)
        return changed

    def _elect_leader(self, key: tuple[str, int], st: Z.LeaderIsr,
                      exclude: set[int] | frozenset[int] = frozenset()) -> Z.LeaderIsr | None:
        """The new state of an offline partition (or None when nothing changes)."""
        if key[0] in self.deleting:
            return None
        live = [r for r in self._replicas(key) if self._online(r, key) and r not in exclude]
        isr_live = [r for r in live if r in st.isr]
        if isr_live:
            leader = isr_live[0]
            isr = [r for r in st.isr if self._online(r, key) and r not in exclude]
        elif live and self._unclean(key[0]):
            leader = live[0]
            isr = [leader]
            log.warning("controller: unclean leader election for %s-%d: %d (data only the old ISR %s had "
                        "is lost)", key[0], key[1], leader, st.isr)
        else:
            if st.leader == NO_LEADER:
                return None
            log.warning("controller: %s-%d is offline: no live replica in ISR %s", key[0], key[1], st.isr)
            # Kafka keeps the last ISR member so that it may lead again when it returns.
            isr = st.isr if all(not self._online(r, key) for r in st.isr) else [r for r in st.isr if r not in exclude]
            return Z.LeaderIsr(NO_LEADER, st.leader_epoch + 1, isr or st.isr, self.epoch)
        return Z.LeaderIsr(leader, st.leader_epoch + 1, isr, self.epoch)

    def _unclean(self, topic: str) -> bool:
        v = self.topic_config(topic).get("unclean.leader.election.enable")
        if v is not None:
            return v.strip().lower() == "true"
        return bool(self.config["unclean.leader.election.enable"])

    def topic_config(self, topic: str) -> dict[str, str]:
        return self.topic_configs.get(topic, {})

    async def _change_state(self, key: tuple[str, int],
                            decide: Callable[[Z.LeaderIsr], Z.LeaderIsr | None]) -> bool:
        """Write ``decide(current state)`` (None: no change) with a conditional update.  A version
        conflict means a leader changed the ISR since we read it: decide again from the state
        that is there now, as Kafka's controller retries the partitions whose update failed
        (giving up would leave, say, a dead broker leading the partition)."""
        for _ in range(STATE_WRITE_ATTEMPTS):
            st = self.states.get(key)
            if st is None:
                return False
            new = decide(st)
            if new is None:
                return False
            if await self._write_state(key, new):
                return True
        log.warning("controller: gave up updating the state of %s-%d after %d conflicting writes", *key,
                    STATE_WRITE_ATTEMPTS)
        return False

    async def _write_state(self, key: tuple[str, int], new: Z.LeaderIsr) -> bool:
        """Conditional write of a partition's state; on a version conflict read it back (the
        leader changed the ISR meanwhile) and report no change (``_change_state`` decides again)."""
        from kazoo.exceptions import BadVersionError, NoNodeError

        old = self.states.get(key)
        path = Z.partition_state_path(*key)
        try:
            if old is None:
                await self.zk.create(path, new.encode(), makepath=True)
                new.zk_version = 0
            else:
                stat = await self.zk.set(path, new.encode(), old.zk_version)
                new.zk_version = stat.version
        except (BadVersionError, NoNodeError):
            got = await self.zk.get_or_none(path)
            if got is not None:
                self.states[key] = Z.LeaderIsr.decode(got[0], got[1].version)
            log.info("controller: state of %s-%d changed underneath; reread", *key)
            return False
        self.states[key] = new
        return True

    def _propagate(self, changed: list[tuple[str, int]], skip: set[int] | frozenset[int] = frozenset()) -> None:
        """LeaderAndIsr to the live replicas of the changed partitions, UpdateMetadata to all."""
        if not changed:
            return
        per_broker: dict[int, list[tuple[str, int]]] = {}
        for k in changed:
            for r in self._replicas(k):
                if r in self.brokers and r not in skip:
                    per_broker.setdefault(r, []).append(k)
        for b, keys in per_broker.items():
            self._send_leader_and_isr(b, keys)
        self._send_update_metadata(list(self.brokers), changed)

    async def _topics_changed(self) -> None:
        names = set(await self.zk.children(Z.BROKER_TOPICS, self._watch(self._topics_changed)))
        for gone in set(self.topics) - names:
            self._forget_topic(gone)
        new = names - set(self.topics)
        await asyncio.gather(*(self._read_topic(t) for t in new))
        await self._init_new_partitions()

    async def _topic_data_changed(self, name: str) -> None:
        await self._read_topic(name)
        await self._init_new_partitions()

    async def _init_new_partitions(self) -> None:
        """Partitions with an assignment but no state yet: leader = first live replica, ISR = the
        live replicas (Kafka's NewPartition -> OnlinePartition)."""
        changed = []
        for t, ts in list(self.topics.items()):
            if t in self.deleting:
                continue
            for p, reps in ts.replicas.items():
                if (t, p) in self.states:
                    continue
                live = [r for r in reps if r in self.brokers]
                if not live:
                    log.warning("controller: new partition %s-%d has no live replica among %s", t, p, reps)
                    continue
                if await self._write_state((t, p), Z.LeaderIsr(live[0], 0, live, self.epoch)):
                    changed.append((t, p))
        if changed:
            per_broker: dict[int, list[tuple[str, int]]] = {}
            for k in changed:
                for r in self._replicas(k):
                    if r in self.brokers:
                        per_broker.setdefault(r, []).append(k)
            for b, keys in per_broker.items():
                self._send_leader_and_isr(b, keys, is_new=True)
            self._send_update_metadata(list(self.brokers), changed)

    def _forget_topic(self, name: str) -> None:
        ts = self.topics.pop(name, None)
        if ts is None:
            return
        for p in ts.replicas:
            self.states.pop((name, p), None)
        self.topic_configs.pop(name, None)

    async def _isr_changes(self) -> None:
        kids = await self.zk.children(Z.ISR_CHANGES, self._watch(self._isr_changes))
        if not kids:
            return
        keys: set[tuple[str, int]] = set()
        for k in kids:
            got = await self.zk.get_or_none(f"{Z.ISR_CHANGES}/{k}")
            if got is not None:
                keys.update(Z.decode_isr_change(got[0]))
        for t, p in keys:
            got = await self.zk.get_or_none(Z.partition_state_path(t, p))
            if got is not None and t in self.topics:
                self.states[(t, p)] = Z.LeaderIsr.decode(got[0], got[1].version)
        await asyncio.gather(*(self.zk.delete(f"{Z.ISR_CHANGES}/{k}") for k in kids), return_exceptions=True)
        known = [k for k in keys if k in self.states]
        if known:
            self._send_update_metadata(list(self.brokers), known)
        for k in known:
            if k in self.reassigning:
                await self._maybe_complete_reassignment(k)

    async def _log_dir_events(self) -> None:
        """``/log_dir_event_notification``: brokers whose log dir failed.  Ask each for all its
        replicas with LeaderAndIsr; its answer names the offline ones (``_leader_and_isr_done``)."""
        kids = await self.zk.children(Z.LOG_DIR_EVENTS, self._watch(self._log_dir_events))
        if not kids:
            return
        got = await asyncio.gather(*(self.zk.get_or_none(f"{Z.LOG_DIR_EVENTS}/{k}") for k in kids))
        brokers = {b for g in got if g is not None and (b := Z.decode_log_dir_event(g[0])) is not None}
        await asyncio.gather(*(self.zk.delete(f"{Z.LOG_DIR_EVENTS}/{k}") for k in kids), return_exceptions=True)
        for b in sorted(brokers):
            if b in self.brokers:
                log.info("controller: broker %d reports a failed log dir; asking about its replicas", b)
                self._send_leader_and_isr(b, [k for k, _ in self._replicas_on(b)])

    async def _deletions(self) -> None:
        kids = await self.zk.children(Z.DELETE_TOPICS, self._watch(self._deletions))
        for name in kids:
            ts = self.topics.get(name)
            if ts is None:
                await asyncio.gather(self.zk.delete(f"{Z.DELETE_TOPICS}/{name}"), return_exceptions=True)
                continue
            if name not in self.deleting:
                self.deleting.add(name)
                log.info("controller: deleting topic %s", name)
                # Clients stop seeing it now (leader -2: LeaderDuringDelete), as in Kafka.
                self._send_update_metadata(list(self.brokers), [(name, p) for p in ts.replicas], deleted=ts)
            holders = {r for reps in ts.replicas.values() for r in reps}
            waits = [self._send_stop_replica(b, name, [p for p, reps in ts.replicas.items() if b in reps],
                                             delete=True) for b in holders if b in self.brokers]
            await asyncio.gather(*waits, return_exceptions=True)
            pending = holders - set(self.brokers)
            if pending:
                # Kafka's TopicDeletionManager: the deletion waits (its znodes stay) until those
                # brokers return and delete their replicas too.
                self.delete_pending[name] = pending
                log.warning("controller: topic %s is deleted once brokers %s, which hold replicas of it "
                            "and are down, return", name, sorted(pending))
                continue
            await self._finish_deletion(name)

    async def _finish_deletion(self, name: str) -> None:
        await asyncio.gather(self.zk.delete(Z.topic_path(name), recursive=True),
                             self.zk.delete(f"{Z.CONFIG_TOPICS}/{name}"), return_exceptions=True)
        await asyncio.gather(self.zk.delete(f"{Z.DELETE_TOPICS}/{name}"), return_exceptions=True)
        self._forget_topic(name)
        self.deleting.discard(name)
        self.delete_pending.pop(name, None)
        log.info("controller: topic %s deleted", name)

    async def _resume_deletions(self, started: set[int]) -> None:
        for name, pending in list(self.delete_pending.items()):
            back = pending & started
            if not back:
                continue
            ts = self.topics.get(name)
            if ts is not None:
                await asyncio.gather(*(self._send_stop_replica(
                    b, name, [p for p, reps in ts.replicas.items() if b in reps], delete=True) for b in back),
                    return_exceptions=True)
            pending -= back
            if not pending:
                await self._finish_deletion(name)

    # -- leader elections asked for: preferred (ElectLeaders, auto rebalance) and unclean ------

    async def elect_leaders(self, keys: list[tuple[str, int]] | None, unclean: bool) -> dict[tuple[str, int], int]:
        """ElectLeaders: partition -> 0 or its error (all partitions when ``keys`` is None)."""
        return await self._in_queue(lambda: self._elect_leaders(keys, unclean))

    async def _elect_leaders(self, keys: list[tuple[str, int]] | None, unclean: bool) -> dict[tuple[str, int], int]:
        out: dict[tuple[str, int], int] = {}
        if not self.active:
            return {k: E.NOT_CONTROLLER for k in keys or []}
        changed = []
        for k in (list(self.states) if keys is None else keys):
            st = self.states.get(k)
            if st is None or k[0] not in self.topics or k[0] in self.deleting:
                out[k] = E.UNKNOWN_TOPIC_OR_PARTITION
                continue
            reps = self._replicas(k)
            if unclean:
                if st.leader in self.brokers:
                    out[k] = E.ELECTION_NOT_NEEDED
                    continue
                live = [r for r in reps if r in self.brokers and r not in self.shutting_down]
                if not live:
                    out[k] = E.ELIGIBLE_LEADERS_NOT_AVAILABLE
                    continue
                isr_live = [r for r in live if r in st.isr]
                leader = (isr_live or live)[0]
                new = Z.LeaderIsr(leader, st.leader_epoch + 1, isr_live or [leader], self.epoch)
            else:
                preferred = reps[0] if reps else -1
                if st.leader == preferred:
                    out[k] = E.ELECTION_NOT_NEEDED
                    continue
                if preferred not in self.brokers or preferred not in st.isr or preferred in self.shutting_down:
                    out[k] = E.PREFERRED_LEADER_NOT_AVAILABLE
                    continue
                new = Z.LeaderIsr(preferred, st.leader_epoch + 1, st.isr, self.epoch)
            if await self._write_state(k, new):
                changed.append(k)
                out[k] = 0
            else:
                out[k] = E.NOT_CONTROLLER if not self.active else E.PREFERRED_LEADER_NOT_AVAILABLE
        self._propagate(changed)
        return out

    async def _auto_rebalance(self) -> None:
        """auto.leader.rebalance.enable: every leader.imbalance.check.interval.seconds, a broker that
        leads fewer than (100 - leader.imbalance.per.broker.percentage)% of the partitions it is
        preferred for gets them back (KafkaController.checkAndTriggerAutoLeaderRebalance)."""
        if not self.active:
            return
        pct = self.config["leader.imbalance.per.broker.percentage"]
        by_pref: dict[int, list[tuple[str, int]]] = {}
        for k in self.states:
            reps = self._replicas(k) if k[0] in self.topics else []
            if reps and k[0] not in self.deleting:
                by_pref.setdefault(reps[0], []).append(k)
        todo: list[tuple[str, int]] = []
        for b, keys in by_pref.items():
            if b not in self.brokers or b in self.shutting_down:
                continue
            off = [k for k in keys if self.states[k].leader != b]
            if keys and len(off) * 100 > pct * len(keys):
                todo.extend(k for k in off if b in self.states[k].isr)
        if todo:
            log.info("controller: auto leader rebalance of %d partition(s)", len(todo))
            await self._elect_leaders(todo, unclean=False)

    def _arm_rebalance(self) -> None:
        if self.config["auto.leader.rebalance.enable"] and not self.closed:
            interval = self.config["leader.imbalance.check.interval.seconds"]

            def fire() -> None:
                self.enqueue(self._auto_rebalance)
                self._arm_rebalance()
            self._rebalance_timer = asyncio.get_running_loop().call_later(interval, fire)

    # -- partition reassignment (KIP-455) ----------------------------------------------------

    async def alter_reassignments(self, items: list[tuple[tuple[str, int], list[int] | None]]
                                  ) -> dict[tuple[str, int], tuple[int, str | None]]:
        async def run() -> dict[tuple[str, int], tuple[int, str | None]]:
            return {key: await self._reassign(key, target) for key, target in items}
        return await self._in_queue(run)

    async def _reassign(self, key: tuple[str, int], target: list[int] | None) -> tuple[int, str | None]:
        """Start (or cancel: ``target`` None) moving a partition to ``target``: the replicas become
        target + original while the new ones catch up; when all of target is in the ISR, the
        leader moves into target if it must, and the others are stopped and deleted
        (KafkaController.onPartitionReassignment)."""
        if not self.active:
            return E.NOT_CONTROLLER, None
        st = self.states.get(key)
        if st is None or key[0] not in self.topics or key[0] in self.deleting:
            return E.UNKNOWN_TOPIC_OR_PARTITION, None
        current = self.reassigning.get(key)
        original = current[0] if current is not None else list(self._replicas(key))
        if target is None:
            if current is None:
                return E.NO_REASSIGNMENT_IN_PROGRESS, "No reassignment is in progress for this partition."
            target = original
        if not target or len(set(target)) != len(target):
            return E.INVALID_REPLICA_ASSIGNMENT, "The replica list is empty or names a broker twice."
        unknown = [r for r in target if r not in self.brokers]
        if unknown:
            return E.INVALID_REPLICA_ASSIGNMENT, f"Brokers {unknown} are not registered."
        if target == original and current is None:
            return 0, None
        rs = list(target) + [r for r in original if r not in target]
        self.reassigning[key] = (original, list(target))
        if not await self._write_assignment(key, rs, [r for r in target if r not in original],
                                            [r for r in original if r not in target]):
            return E.UNKNOWN_TOPIC_OR_PARTITION, None
        if not await self._write_state(key, Z.LeaderIsr(st.leader, st.leader_epoch + 1, st.isr, self.epoch)):
            return E.REASSIGNMENT_IN_PROGRESS, "The partition state changed meanwhile; try again."
        log.info("controller: reassigning %s-%d from %s to %s", *key, original, target)
        self._propagate([key])
        await self._maybe_complete_reassignment(key)
        return 0, None

    async def _write_assignment(self, key: tuple[str, int], replicas: list[int], adding: list[int],
                                removing: list[int]) -> bool:
        from kazoo.exceptions import BadVersionError, NoNodeError

        topic, p = key
        while True:
            try:
                data, stat = await self.zk.get(Z.topic_path(topic))
            except NoNodeError:
                return False
            ta = Z.TopicAssignment.decode(data)
            ta.partitions[p] = replicas
            for d, v in ((ta.adding, adding), (ta.removing, removing)):
                if v:
                    d[p] = v
                else:
                    d.pop(p, None)
            try:
                await self.zk.set(Z.topic_path(topic), ta.encode(), stat.version)
            except BadVersionError:
                continue
            self.topics[topic].replicas[p] = list(replicas)
            return True

    async def _maybe_complete_reassignment(self, key: tuple[str, int]) -> None:
        entry = self.reassigning.get(key)
        st = self.states.get(key)
        if entry is None or st is None:
            return
        original, target = entry
        if not set(target) <= set(st.isr):
            return          # the new replicas are still catching up
        leader = st.leader
        if leader not in target or leader not in self.brokers:
            leader = next((r for r in target if r in self.brokers and r in st.isr), NO_LEADER)
        new = Z.LeaderIsr(leader, st.leader_epoch + 1, [r for r in st.isr if r in target], self.epoch)
        if not await self._write_state(key, new):
            return          # an ISR change raced us: its notification brings us back here
        await self._write_assignment(key, list(target), [], [])
        del self.reassigning[key]
        log.info("controller: reassignment of %s-%d to %s complete (leader %d)", *key, target, leader)
        self._propagate([key])
        for r in original:
            if r not in target and r in self.brokers:
                self._send_stop_replica(r, key[0], [key[1]], delete=True)

    # -- controlled shutdown -------------------------------------------------------------

    async def controlled_shutdown(self, broker_id: int, broker_epoch: int) -> tuple[int, list[tuple[str, int]]]:
        """Move leadership off ``broker_id`` and take it out of the ISRs; returns (error, the
        partitions it still leads)."""
        return await self._in_queue(lambda: self._controlled_shutdown(broker_id, broker_epoch))

    async def _controlled_shutdown(self, broker_id: int, broker_epoch: int) -> tuple[int, list[tuple[str, int]]]:
        if not self.active:
            return E.NOT_CONTROLLER, []
        info = self.brokers.get(broker_id)
        if info is None:
            return E.BROKER_NOT_AVAILABLE, []
        if broker_epoch >= 0 and broker_epoch != info.epoch:
            return E.STALE_BROKER_EPOCH, []
        self.shutting_down.add(broker_id)
        changed = []
        stop: list[tuple[str, int]] = []
        def decide(k: tuple[str, int], st: Z.LeaderIsr) -> Z.LeaderIsr | None:
            if st.leader == broker_id:
                new = self._elect_leader(k, st, exclude={broker_id} | self.shutting_down)
                # no other ISR member: it keeps leading until it stops
                return None if new is None or new.leader == NO_LEADER else new
            if broker_id in st.isr:
                return Z.LeaderIsr(st.leader, st.leader_epoch + 1, [r for r in st.isr if r != broker_id],
                                   self.epoch)
            return None
        for k, reps in self._replicas_on(broker_id):
            st = self.states.get(k)
            if st is None or len(reps) < 2:
                continue
            led_here = st.leader == broker_id     # only the controller moves leaders: a retry keeps this
            if await self._change_state(k, functools.partial(decide, k)):
                changed.append(k)
                if not led_here:
                    stop.append(k)
        self._propagate(changed, skip={broker_id})
        # The shutting-down broker follows the new leaders until it stops (Kafka sends it
        # LeaderAndIsr for partitions it led, StopReplica without delete for the others).
        led = [k for k in changed if k not in stop]
        if led:
            self._send_leader_and_isr(broker_id, led)
        by_topic: dict[str, list[int]] = {}
        for t, p in stop:
            by_topic.setdefault(t, []).append(p)
        for t, ps in by_topic.items():
            self._send_stop_replica(broker_id, t, ps, delete=False)
        remaining = [k for k, _ in self._replicas_on(broker_id)
                     if (st := self.states.get(k)) is not None and st.leader == broker_id]
        return 0, remaining

    # -- requests ------------------------------------------------------------------------

    def _live_broker_entries(self) -> list[Any]:
        R = kp.UpdateMetadataRequest
        out = []
        for b in self.brokers.values():
            eps = [R.UpdateMetadataEndpoint(port=port, host=host, listener=name,
                                            security_protocol=SECURITY_PROTOCOLS.get(b.protocols.get(name, name), 0))
                   for name, (host, port) in b.endpoints.items()]
            out.append(R.UpdateMetadataBroker(id=b.id, endpoints=eps, rack=b.rack))
        return out

    def _send_update_metadata(self, to: list[int], keys: list[tuple[str, int]] | None,
                              deleted: TopicState | None = None) -> None:
        """``keys`` None: every partition; [] only the brokers."""
        if not to:
            return
        R = kp.UpdateMetadataRequest
        if keys is None:
            keys = [k for k in self.states if k[0] not in self.deleting]   # being deleted: not shown
        by_topic: dict[str, list[Any]] = {}
        for t, p in keys:
            st = self.states.get((t, p))
            if st is None:
                continue
            reps = self.topics[t].replicas.get(p, []) if t in self.topics else []
            leader = LEADER_DURING_DELETE if deleted is not None else st.leader
            by_topic.setdefault(t, []).append(R.UpdateMetadataPartitionState(
                partition_index=p, controller_epoch=st.controller_epoch, leader=leader,
                leader_epoch=st.leader_epoch, isr=st.isr, zk_version=st.zk_version, replicas=reps,
                offline_replicas=[r for r in reps if not self._online(r, (t, p))]))
        topic_states = [R.UpdateMetadataTopicState(topic_name=t, topic_id=(deleted.id if deleted is not None else
                                                                         self.topics[t].id), partition_states=ps)
                        for t, ps in by_topic.items()]
        live = self._live_broker_entries()
        for b in to:
            s = self.senders.get(b)
            if s is None:
                continue
            req = R(controller_id=self.broker_id, controller_epoch=self.epoch, broker_epoch=s.info.epoch,
                    topic_states=topic_states, live_brokers=live)
            s.send(req, UPDATE_METADATA_V)

    def _send_leader_and_isr(self, broker: int, keys: list[tuple[str, int]], is_new: bool = False) -> None:
        s = self.senders.get(broker)
        if s is None or not keys:
            return
        R = kp.LeaderAndIsrRequest
        by_topic: dict[str, list[Any]] = {}
        leaders: set[int] = set()
        for t, p in keys:
            st = self.states.get((t, p))
            if st is None or t not in self.topics:
                continue
            reps = self.topics[t].replicas.get(p, [])
            by_topic.setdefault(t, []).append(R.LeaderAndIsrPartitionState(
                partition_index=p, controller_epoch=st.controller_epoch, leader=st.leader,
                leader_epoch=st.leader_epoch, isr=st.isr, partition_epoch=st.zk_version, replicas=reps,
                is_new=is_new))
            if st.leader >= 0:
                leaders.add(st.leader)
        if not by_topic:
            return
        live_leaders = []
        for lid in leaders:
            info = self.brokers.get(lid)
            if info is not None:
                host, port = self.endpoint_of(info)
                live_leaders.append(R.LeaderAndIsrLiveLeader(broker_id=lid, host_name=host, port=port))
        req = R(controller_id=self.broker_id, controller_epoch=self.epoch, broker_epoch=s.info.epoch,
                topic_states=[R.LeaderAndIsrTopicState(topic_name=t, topic_id=self.topics[t].id,
                                                       partition_states=ps) for t, ps in by_topic.items()],
                live_leaders=live_leaders)
        epoch = s.info.epoch
        s.send(req, LEADER_AND_ISR_V).add_done_callback(
            lambda f: self._leader_and_isr_done(broker, epoch, f))

    def _leader_and_isr_done(self, broker: int, epoch: int, fut: asyncio.Future[Any]) -> None:
        """A LeaderAndIsr answer: replicas it refused with KAFKA_STORAGE_ERROR are in a failed log
        dir (Kafka's ``handleLeaderAndIsrResponse``)."""
        if fut.cancelled() or fut.exception() is not None:
            return
        resp = fut.result()
        if resp.error_code:
            return
        names = {ts.id: t for t, ts in self.topics.items()}
        bad = {(names[te.topic_id], pe.partition_index) for te in resp.topics if te.topic_id in names
               for pe in te.partition_errors if pe.error_code == E.KAFKA_STORAGE_ERROR}
        if bad and not bad <= self.offline_replicas.get(broker, set()):
            self.enqueue(lambda: self._on_replicas_offline(broker, epoch, bad))

    async def _on_replicas_offline(self, broker: int, epoch: int, keys: set[tuple[str, int]]) -> None:
        """Replicas of ``broker`` went offline (Kafka's ``onReplicasBecomeOffline``): partitions
        it led get a new leader from the rest of the ISR, it leaves the other ISRs, and every
        broker learns the offline replicas."""
        info = self.brokers.get(broker)
        if not self.active or info is None or info.epoch != epoch:
            return      # gone or restarted since it answered: its next answers say again
        offline = self.offline_replicas.setdefault(broker, set())
        new = sorted(k for k in keys - offline if k in self.states and k[0] in self.topics)
        if not new:
            return
        offline.update(new)
        log.warning("controller: %d replica(s) of broker %d are in a failed log dir: %s", len(new), broker,
                    ", ".join(f"{t}-{p}" for t, p in new))

        def decide(k: tuple[str, int], st: Z.LeaderIsr) -> Z.LeaderIsr | None:
            if st.leader == broker:
                return self._elect_leader(k, st)
            if broker in st.isr and len(st.isr) > 1:
                return Z.LeaderIsr(st.leader, st.leader_epoch + 1, [r for r in st.isr if r != broker], self.epoch)
            return None
        changed = [k for k in new if await self._change_state(k, functools.partial(decide, k))]
        self._propagate(changed, skip={broker})
        rest = [k for k in new if k not in changed]
        if rest:        # no state change, but their offline replicas are news too
            self._send_update_metadata(list(self.brokers), rest)

    def _send_stop_replica(self, broker: int, topic: str, partitions: list[int], delete: bool) -> Awaitable[Any]:
        s = self.senders.get(broker)
        if s is None:
            return asyncio.sleep(0)
        R = kp.StopReplicaRequest
        epochs = {p: (self.states[(topic, p)].leader_epoch if (topic, p) in self.states else -1) for p in partitions}
        req = R(controller_id=self.broker_id, controller_epoch=self.epoch, broker_epoch=s.info.epoch,
                topic_states=[R.StopReplicaTopicState(topic_name=topic, partition_states=[
                    R.StopReplicaPartitionState(partition_index=p,
                                                leader_epoch=-2 if delete else epochs[p],  # -2: deletion sentinel
                                                delete_partition=delete) for p in partitions])])
        return s.send(req, STOP_REPLICA_V)
