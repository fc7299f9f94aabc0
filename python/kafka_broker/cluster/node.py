"""This broker as a member of a cluster on ZooKeeper (on when ``zookeeper.connect`` is set).

Start-up, in Kafka's order: connect to ZooKeeper (creating the chroot), check the cluster id
(``/cluster/id`` is created by the first broker; a log dir that belongs to another cluster stops
the broker), register ``/brokers/ids/<broker.id>`` as an ephemeral znode with the advertised
endpoints and rack (its czxid is the broker epoch), then run for controller.  A broker restarted
within the ZooKeeper session timeout of its previous life waits for the old registration to
expire instead of failing.

When the session expires (a long pause, a network cut), the ephemeral znodes are gone: the
controller elsewhere has already moved leadership away.  kazoo opens a new session; the broker
registers again (a new broker epoch), and the controller treats it as a broker that restarted.

A log dir that fails (``log/dir_failure.py``): its replicas stop leading and following here
(``ReplicaManager.dir_offline``) and the broker writes ``/log_dir_event_notification/log_dir_event_N``
for the controller, which then learns from a LeaderAndIsr round which replicas are offline and
moves their leadership (``controller.py``).

Shutdown (``controlled.shutdown.enable``): ask the controller to move leadership away
(ControlledShutdown, up to ``controlled.shutdown.max.retries`` times), then stop fetching and
close the session, which removes the registration.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import kafka_protocol as kp
from kafka_protocol.errors import ErrorCode as E

from ..log import INTERNAL_TOPICS
from ..registry import TopicInfo
from . import zk as Z
from .assign import AssignmentError, assign_replicas
from .channel import Channel, ChannelError, ChannelSecurity
from .controller import NO_LEADER, Controller
from .fetcher import FetcherManager
from .replicas import MetadataCache, ReplicaManager

if TYPE_CHECKING:
    from ..broker import Broker
    from ..log import Topic
    from ..log.dir_failure import LogDir
    from ..log.partition import Partition

log = logging.getLogger("kafka_broker.cluster")

CONTROLLED_SHUTDOWN_V = 3
PRODUCER_ID_BLOCK_SIZE = 1000      # Kafka's ProducerIdsBlock.PRODUCER_ID_BLOCK_SIZE


class InconsistentClusterId(RuntimeError):
    pass


def inter_broker_security(cfg: Any) -> ChannelSecurity:
    """TLS and SASL of the inter-broker listener, as the client side of this broker's channels:
    the listener's own ssl.* settings (truststore: who the other brokers are; keystore: this
    broker's certificate when they ask for one) and its SASL credentials."""
    proto = next(ln.security_protocol for ln in cfg.listeners if ln.name == cfg.inter_broker_listener)
    ctx = None
    if proto in ("SSL", "SASL_SSL"):
        from ..tls import client_context
        ctx = client_context(cfg.ssl_settings(cfg.inter_broker_listener))
    return ChannelSecurity(ctx, cfg.inter_broker_sasl)


class ClusterNode:
    # LeaderAndIsr, StopReplica, UpdateMetadata, ControlledShutdown, ApiVersions, and the SASL exchange (the
    # controller authenticates before its first UpdateMetadata)
    EARLY_APIS = frozenset({4, 5, 6, 7, 18, 17, 36})
    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self.config = broker.config
        self.storage = broker.storage
        self.loop = broker.loop
        self.broker_id = broker.node_id
        cfg = self.config
        session_ms = cfg["zookeeper.session.timeout.ms"]
        self.zk = Z.Zk(cfg["zookeeper.connect"], session_ms, cfg["zookeeper.connection.timeout.ms"] or session_ms,
                       self.loop)
        self.listener_name = cfg.inter_broker_listener
        self.channel_security = inter_broker_security(cfg)
        self.metadata = MetadataCache()
        self.controller = Controller(self.zk, self.broker_id, self.listener_name, cfg, self._controller_changed)
        self.replicas = ReplicaManager(self)
        self.fetchers = FetcherManager(self)
        self.broker_epoch = -1
        self.registry = ZkRegistry(self)
        from .quotas import ZkQuotas
        self.zk_quotas = ZkQuotas(self.zk, broker.quotas)
        self.storage.producer_id_blocks = self.allocate_producer_ids
        self.registered = asyncio.Event()
        # Client requests are served once registered and the controller's first UpdateMetadata
        # arrived; the controller's own requests (and ApiVersions) before that.
        self.serving = asyncio.Event()
        self.session_lost = False
        self.closing = False

    # -- start-up ------------------------------------------------------------------------

    async def connect(self) -> str:
        """Connect and settle the cluster id; returns it.  Before the storage opens its logs."""
        await self.zk.start()
        self.zk.state_listeners.append(self._zk_state)
        got = await self.zk.get_or_none(Z.CLUSTER_ID)
        if got is None:
            import json

            from kazoo.exceptions import NodeExistsError
            want = self.config.get("cluster.id") or self.storage.stored_cluster_id() or _new_cluster_id()
            try:
                await self.zk.create(Z.CLUSTER_ID, json.dumps({"version": "1", "id": want}).encode(), makepath=True)
            except NodeExistsError:
                pass
            got = await self.zk.get(Z.CLUSTER_ID)
        import json as _json
        cluster_id = str(_json.loads(got[0])["id"])
        stored = self.storage.stored_cluster_id()
        if stored and stored != cluster_id:
            raise InconsistentClusterId(
                f"The Cluster ID {cluster_id} doesn't match stored clusterId {stored} in meta.properties. "
                "The broker is trying to join the wrong cluster. Configured zookeeper.connect may be wrong.")
        return cluster_id

    async def start(self, bound: dict[str, tuple[str, int]]) -> None:
        """Register (with the ports the listeners bound) and run for controller."""
        self.bound = bound
        self.replicas.start()
        self.storage.log_dirs.listeners.append(self._log_dir_offline)
        az = self.broker.authorizer
        if az is not None:      # ACLs before the first client request is served
            await az.store.start()
        await self._load_topic_configs()
        await self.zk_quotas.load()     # client quotas before the first client request too
        await self._register()
        await self.registry.watch_registrations()
        self.controller.start()

    # -- topic configs (/config/topics/T) and client quotas (cluster/quotas.py), announced in /config/changes --

    async def _load_topic_configs(self) -> None:
        kids = await self.zk.children(Z.CONFIG_CHANGES, self.zk.watcher(self._on_config_changes))
        self.config_change_seen = max((Z.sequence_of(k) for k in kids), default=-1)
        names = await self.zk.children(Z.CONFIG_TOPICS)
        got = await asyncio.gather(*(self.zk.get_or_none(f"{Z.CONFIG_TOPICS}/{n}") for n in names))
        for n, g in zip(names, got, strict=True):
            overrides = Z.decode_topic_config(g[0] if g else None)
            self.registry.configs[n] = overrides
            t = self.storage.topics.get(n)
            if t is not None and t.overrides != overrides:     # changed while this broker was away
                await self.apply_topic_config(n, overrides)

    def _on_config_changes(self, _ev: Any) -> None:
        if not self.closing:
            asyncio.ensure_future(self._config_changes())

    async def _config_changes(self) -> None:
        try:
            await self._apply_config_changes()
        except Exception as e:  # noqa: BLE001 - ZooKeeper unreachable: the next change event retries
            log.warning("reading topic config changes: %r", e)

    async def _apply_config_changes(self) -> None:
        kids = await self.zk.children(Z.CONFIG_CHANGES, self.zk.watcher(self._on_config_changes))
        for k in sorted(kids, key=Z.sequence_of):
            seq = Z.sequence_of(k)
            if seq <= self.config_change_seen:
                continue
            self.config_change_seen = seq
            got = await self.zk.get_or_none(f"{Z.CONFIG_CHANGES}/{k}")
            entity = Z.decode_config_change(got[0]) if got else None
            if entity is not None and entity.startswith(("users/", "clients/", "ips/")):
                await self.zk_quotas.reload(entity)      # a client quota (SCRAM is read at each login)
                continue
            if entity is None or not entity.startswith("topics/"):
                continue
            name = entity[len("topics/"):]
            conf = await self.zk.get_or_none(f"{Z.CONFIG_TOPICS}/{name}")
            await self.apply_topic_config(name, Z.decode_topic_config(conf[0] if conf else None))

    async def apply_topic_config(self, name: str, overrides: dict[str, str]) -> None:
        self.registry.configs[name] = overrides
        self.controller.topic_configs[name] = overrides
        t = self.storage.topics.get(name)
        if t is not None and t.overrides != overrides:
            await self.storage.alter_topic_configs(t, overrides)
            log.info("topic %s configs now %s", name, overrides)

    def _registration(self) -> Z.BrokerInfo:
        endpoints: dict[str, tuple[str, int]] = {}
        for ln in self.config.listeners:
            adv = self.config.advertised[ln.name]
            port = adv.port or self.bound.get(ln.name, (adv.host, adv.port))[1]
            endpoints[ln.name] = (adv.host, port)
        proto_map = dict(x.split(":", 1) for x in self.config["listener.security.protocol.map"])
        return Z.BrokerInfo(self.broker_id, endpoints, {n: proto_map.get(n, n) for n in endpoints},
                            self.config.get("broker.rack"))

    async def _register(self) -> None:
        from kazoo.exceptions import NodeExistsError

        path = f"{Z.BROKER_IDS}/{self.broker_id}"
        data = self._registration().encode()
        deadline = self.loop.time() + self.zk.session_timeout + 10
        while True:
            try:
                await self.zk.create(path, data, ephemeral=True)
                break
            except NodeExistsError:
                got = await self.zk.get_or_none(path)
                if got is not None and got[1].ephemeralOwner == self.zk.session_id:
                    break
                if self.loop.time() > deadline:
                    raise RuntimeError(f"broker.id {self.broker_id} is registered in ZooKeeper by another "
                                       "live broker") from None
                log.info("broker.id %d is still registered by a previous session; waiting for it to expire",
                         self.broker_id)
                await asyncio.sleep(0.5)
        got = await self.zk.get(path)
        self.broker_epoch = got[1].czxid
        self.registered.set()
        if self.broker_id in self.metadata.brokers:    # the controller was quicker than this line
            self.serving.set()
        log.info("registered broker %d at %s (broker epoch %d)", self.broker_id, path, self.broker_epoch)

    def _zk_state(self, state: str) -> None:
        if self.closing:
            return
        if state == "LOST":
            log.warning("ZooKeeper session expired: this broker is deregistered until it reconnects")
            self.session_lost = True
            self.registered.clear()
            self.controller.session_lost()
        elif state == "CONNECTED" and self.session_lost and not self.closing:
            self.session_lost = False

            async def again() -> None:
                try:
                    await self._register()
                    await self.registry.watch_registrations()   # a new session has no watches
                except Exception as e:  # noqa: BLE001
                    log.error("re-registering after session expiry: %s", e)
                    return
                self.controller.session_restored()
            asyncio.ensure_future(again())

    def _log_dir_offline(self, d: LogDir) -> None:
        """Loop thread, once per failed log dir (Kafka's ``ReplicaManager.handleLogDirFailure``)."""
        if self.closing:
            return
        n = self.replicas.dir_offline(d)
        log.warning("log dir %s failed: %d replica(s) here stop leading and following; telling the controller",
                    d.path, n)
        asyncio.ensure_future(self._propagate_log_dir_event())

    async def _propagate_log_dir_event(self) -> None:
        """``/log_dir_event_notification/log_dir_event_N`` (``KafkaZkClient.propagateLogDirEvent``),
        written until it is there: without it the controller keeps this broker leading replicas
        it can no longer serve.  A session lost meanwhile needs none: registering again brings the
        controller's LeaderAndIsr, whose answer says the same."""
        while not self.closing:
            try:
                await self.zk.create(f"{Z.LOG_DIR_EVENTS}/log_dir_event_", Z.encode_log_dir_event(self.broker_id),
                                     sequence=True)
                return
            except Exception as e:  # noqa: BLE001 - ZooKeeper unreachable: try again
                log.warning("log dir failure notification: %r; retrying", e)
                await asyncio.sleep(1.0)

    def _controller_changed(self, cid: int) -> None:
        if cid >= 0:
            self.metadata.controller_id = cid

    # -- shutdown ------------------------------------------------------------------------

    async def controlled_shutdown(self) -> None:
        if not self.config["controlled.shutdown.enable"] or not self.registered.is_set():
            return
        retries = self.config["controlled.shutdown.max.retries"]
        backoff = self.config["controlled.shutdown.retry.backoff.ms"] / 1000
        for attempt in range(retries):
            cid = self.metadata.controller_id
            ep = self.endpoint_of(cid) if cid >= 0 else None
            if ep is None:
                log.info("controlled shutdown: no controller known; retrying")
                await asyncio.sleep(backoff)
                continue
            try:
                ch = await Channel(ep[0], ep[1], client_id=f"broker-{self.broker_id}-shutdown",
                                   node_id=cid, security=self.channel_security).connect()
                try:
                    resp = await ch.send(kp.ControlledShutdownRequest(broker_id=self.broker_id,
                                                                      broker_epoch=self.broker_epoch),
                                         CONTROLLED_SHUTDOWN_V)
                finally:
                    ch.close()
            except ChannelError as e:
                log.info("controlled shutdown attempt %d: %s", attempt + 1, e)
                await asyncio.sleep(backoff)
                continue
            if resp.error_code == 0 and not resp.remaining_partitions:
                log.info("controlled shutdown: leadership moved away")
                return
            log.info("controlled shutdown attempt %d: error %d, %d partition(s) still led here", attempt + 1,
                     resp.error_code, len(resp.remaining_partitions))
            await asyncio.sleep(backoff)
        log.warning("controlled shutdown did not complete; proceeding with an unclean shutdown")

    def close(self) -> None:
        self.closing = True
        self.controller.close()
        self.fetchers.close()
        self.replicas.close()
        self.zk.close()

    # -- helpers -------------------------------------------------------------------------

    def endpoint_of(self, broker: int) -> tuple[str, int] | None:
        ep = self.metadata.endpoint(broker, self.listener_name)
        if ep is None and broker == self.broker_id:
            ep = self._registration().endpoints.get(self.listener_name)
        return ep

    async def topic_overrides(self, topic: str) -> dict[str, str]:
        got = await self.zk.get_or_none(f"{Z.CONFIG_TOPICS}/{topic}")
        return Z.decode_topic_config(got[0] if got else None)

    async def allocate_producer_ids(self) -> tuple[int, int]:
        """The next block of producer ids, from ``/latest_producer_id_block`` with a conditional
        write (Kafka's ZkProducerIdManager): unique across the cluster and across restarts."""
        import json

        from kazoo.exceptions import BadVersionError, NodeExistsError
        while True:
            got = await self.zk.get_or_none(Z.PRODUCER_ID_BLOCK)
            start = int(json.loads(got[0])["block_end"]) + 1 if got is not None and got[0] else 0
            end = start + PRODUCER_ID_BLOCK_SIZE - 1
            data = json.dumps({"version": 1, "broker": self.broker_id, "block_start": str(start),
                               "block_end": str(end)}).encode()
            try:
                if got is None:
                    await self.zk.create(Z.PRODUCER_ID_BLOCK, data)
                else:
                    await self.zk.set(Z.PRODUCER_ID_BLOCK, data, got[1].version)
            except (BadVersionError, NodeExistsError):
                continue      # another broker took that block: read again
            log.info("producer id block %d-%d", start, end)
            return start, end

    def metadata_view(self, listener: str, ops: int, version: int | None = None) -> Any:
        """The cluster through ``listener``; with a Metadata ``version``, topic entries come
        encoded from the broker's cache (metadata_cache.py)."""
        from .apis import MetadataView
        return MetadataView(self.metadata, listener, ops, version, self.broker.metadata_entries)

    def on_leadership(self, p: Partition, leader: bool) -> None:
        """Called when this broker starts or stops leading ``p`` (the group coordinator hooks here)."""
        hook = getattr(self.broker, "on_leadership", None)
        if hook is not None:
            hook(p, leader)


def _new_cluster_id() -> str:
    from ..log.topics import new_cluster_id
    return new_cluster_id()


class ZkRegistry:
    """Topics of the cluster: assignments in ZooKeeper, read through the metadata cache.

    Replica placement reads the broker registrations in ZooKeeper (``/brokers/ids``, kept by a
    children watch), not the metadata cache, as Kafka's ``AdminZkClient`` does: a broker that
    has registered but is not yet in the controller's last UpdateMetadata still counts, so an
    RF=3 CreateTopics right after a three-broker start is not refused with 2 brokers seen."""

    def __init__(self, node: ClusterNode) -> None:
        self.node = node
        self.configs: dict[str, dict[str, str]] = {}     # /config/topics, kept by the change watch
        # /brokers/ids: broker id -> rack, re-read on every change of its children (None: not yet read)
        self.registrations: dict[int, str | None] | None = None
        self._registered_gen = 0

    async def watch_registrations(self) -> None:
        """Read ``/brokers/ids`` (and each broker's rack), and again whenever it changes."""
        zk = self.node.zk
        self._registered_gen += 1
        gen = self._registered_gen

        def changed(_ev: Any) -> None:
            if not self.node.closing:
                asyncio.ensure_future(self.watch_registrations())
        kids = await zk.children(Z.BROKER_IDS, zk.watcher(changed))
        ids = sorted(int(k) for k in kids if k.isdigit())
        got = await asyncio.gather(*(zk.get_or_none(f"{Z.BROKER_IDS}/{i}") for i in ids))
        out: dict[int, str | None] = {}
        for i, g in zip(ids, got, strict=True):
            if g is not None:    # gone since the listing
                out[i] = Z.BrokerInfo.decode(i, g[0]).rack
        if gen == self._registered_gen:     # an older read finishing late must not win
            self.registrations = out

    async def low_watermark(self, p: Partition, offset: int, timeout_ms: int) -> tuple[int, int]:
        replicas = self.node.replicas
        fut = replicas.wait_low_watermark(p, offset)
        code = 0
        if fut is not None:
            try:
                code = await asyncio.wait_for(fut, max(timeout_ms, 0) / 1000)
            except TimeoutError:
                code = 0 if replicas.low_watermark(p) >= offset else E.REQUEST_TIMED_OUT
        return code, replicas.low_watermark(p)

    def topic_view(self, name: str) -> Topic | None:
        from ..log import Topic

        t = self.node.storage.topics.get(name)
        if t is not None:
            return t
        meta = self.node.metadata.topics.get(name)
        if meta is None:
            return None
        view = Topic(name, meta.id, self.configs.get(name, {}))
        self.node.storage.compute_effective(view)
        return view

    async def alter_configs(self, name: str, overrides: dict[str, str]) -> None:
        """/config/topics/T, then a change notification every broker (this one too) applies
        (AdminZkClient.changeTopicConfig)."""
        zk = self.node.zk
        path = f"{Z.CONFIG_TOPICS}/{name}"
        data = Z.encode_topic_config(overrides)
        if await zk.exists(path) is None:
            await zk.create(path, data, makepath=True)
        else:
            await zk.set(path, data)
        await zk.create(f"{Z.CONFIG_CHANGES}/config_change_", Z.encode_config_change(f"topics/{name}"),
                        sequence=True)
        await self.node.apply_topic_config(name, overrides)

    def get(self, name: str) -> TopicInfo | None:
        t = self.node.metadata.topics.get(name)
        if t is None:
            return None
        return TopicInfo(name, t.id, len(t.partitions), name in INTERNAL_TOPICS)

    def get_by_id(self, topic_id: uuid.UUID) -> TopicInfo | None:
        for name, t in self.node.metadata.topics.items():
            if t.id == topic_id:
                return self.get(name)
        return None

    def names(self) -> Iterable[str]:
        return self.node.metadata.topics.keys()

    def is_deleting(self, name: str) -> bool:
        return False

    def brokers(self) -> dict[int, str | None]:
        """Registered brokers (id -> rack): ``/brokers/ids`` once read, else the metadata cache."""
        if self.registrations is not None:
            return dict(self.registrations)
        return {b: rack for b, (_eps, rack) in self.node.metadata.brokers.items()}

    async def create(self, name: str, num_partitions: int, replication_factor: int,
                     assignment: dict[int, list[int]] | None, configs: dict[str, str],
                     background: bool = False) -> uuid.UUID:
        # background: answered once ZooKeeper holds the topic either way (its brokers make the logs)
        from kazoo.exceptions import NodeExistsError

        zk = self.node.zk
        if assignment is None:
            try:
                assignment = assign_replicas(num_partitions, replication_factor, self.brokers())
            except AssignmentError as e:
                raise ValueError(str(e)) from None
        topic_id = uuid.uuid4()
        if await zk.exists(Z.topic_path(name)) is not None:
            raise FileExistsError(name)
        # Config first, then the assignment (which the controller acts on): AdminZkClient's order.
        await zk.create(f"{Z.CONFIG_TOPICS}/{name}", Z.encode_topic_config(configs), makepath=True) \
            if await zk.exists(f"{Z.CONFIG_TOPICS}/{name}") is None else \
            await zk.set(f"{Z.CONFIG_TOPICS}/{name}", Z.encode_topic_config(configs))
        try:
            await zk.create(Z.topic_path(name), Z.TopicAssignment(topic_id, assignment).encode())
        except NodeExistsError:
            raise FileExistsError(name) from None
        # every broker's view of the topic's configs (DescribeConfigs through any broker)
        self.configs[name] = dict(configs)
        await zk.create(f"{Z.CONFIG_CHANGES}/config_change_", Z.encode_config_change(f"topics/{name}"),
                        sequence=True)
        await self._wait_for(lambda: self._online(name, len(assignment)))
        return topic_id

    def _online(self, name: str, n: int) -> bool:
        t = self.node.metadata.topics.get(name)
        return t is not None and len(t.partitions) >= n and all(pm.leader != NO_LEADER
                                                                  for pm in t.partitions.values())

    async def _wait_for(self, cond: Any, timeout: float = 30.0) -> bool:
        """Until the controller's UpdateMetadata shows ``cond`` (or the timeout)."""
        deadline = self.node.loop.time() + timeout
        while not cond():
            left = deadline - self.node.loop.time()
            if left <= 0:
                return False
            try:
                await asyncio.wait_for(self.node.metadata.changed.wait(), left)
            except TimeoutError:
                return False
        return True

    async def delete(self, name: str) -> None:
        from kazoo.exceptions import NodeExistsError
        try:
            await self.node.zk.create(f"{Z.DELETE_TOPICS}/{name}")
        except NodeExistsError:
            pass
        await self._wait_for(lambda: name not in self.node.metadata.topics)

    async def add_partitions(self, name: str, count: int, assignment: list[list[int]] | None) -> None:
        zk = self.node.zk
        data, stat = await zk.get(Z.topic_path(name))
        ta = Z.TopicAssignment.decode(data)
        cur = len(ta.partitions)
        rf = len(next(iter(ta.partitions.values())))
        if assignment is None:
            try:
                new = assign_replicas(count - cur, rf, self.brokers(), first_partition=cur)
            except AssignmentError as e:
                raise ValueError(str(e)) from None
        else:
            new = {cur + i: reps for i, reps in enumerate(assignment)}
        ta.partitions.update(new)
        await zk.set(Z.topic_path(name), ta.encode(), stat.version)
        await self._wait_for(lambda: self._online(name, count))
