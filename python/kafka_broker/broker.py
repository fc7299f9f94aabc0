"""The broker: configuration, storage, the API table, and dispatch.

Only APIs with a handler are advertised in ApiVersions, with the version
ranges of Apache Kafka 4.0 (so clients that infer the broker release from
the ranges, like kafka-python, pick 4.0 and message format v2).

Features (ApiVersions v3+, KIP-584): ``transaction.version`` is the one feature
advertised, supported 0..2 and finalized at the start-up key
``transaction.version`` (Kafka 4.x finalizes 2 on a fresh cluster; Kafka sets it
with ``kafka-storage format --feature`` or ``kafka-features upgrade``, which
needs UpdateFeatures, not served here).  At 2 the Java 4.x producer runs
KIP-890 part 2 transactions (EndTxn v5, Produce v12 adding partitions
implicitly: txn/, produce.py); clients that ignore features (librdkafka,
kafka-python, aiokafka) go on with TV1, which the broker serves alongside.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import re
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from kafka_protocol import API_VERSIONS_KEY
from kafka_protocol.errors import ErrorCode as E
from kafka_protocol.errors import InvalidRequestError, ProtocolError, UnsupportedVersionError
from kafka_protocol.messages import REQUESTS

from . import admin, fetch, produce
from .config import BrokerConfig, Listener
from .log import OFFSETS_TOPIC, TRANSACTION_STATE_TOPIC, topic_name_error
from .metrics import MetricsServer, parse_listener
from .registry import LocalRegistry, TopicRegistry

if TYPE_CHECKING:
    from .cluster.node import ClusterNode
from .server import HandlerResult, RequestContext, Server
from .storage import Storage

log = logging.getLogger("kafka_broker")

Handler = Callable[["Broker", RequestContext, Any], HandlerResult]

# Topic operations bit field for include_topic_authorized_operations (AclOperation codes):
# READ 3, WRITE 4, CREATE 5, DELETE 6, ALTER 7, DESCRIBE 8, DESCRIBE_CONFIGS 10, ALTER_CONFIGS 11
TOPIC_OPS = sum(1 << b for b in (3, 4, 5, 6, 7, 8, 10, 11))
# Cluster: CREATE 5, ALTER 7, DESCRIBE 8, CLUSTER_ACTION 9, DESCRIBE_CONFIGS 10, ALTER_CONFIGS 11,
# IDEMPOTENT_WRITE 12
CLUSTER_OPS = sum(1 << b for b in (5, 7, 8, 9, 10, 11, 12))
FINALIZED_FEATURES_EPOCH = 1
SOFTWARE_RE = re.compile(r"[a-zA-Z0-9](?:[a-zA-Z0-9\-.]*[a-zA-Z0-9])?")


class Broker:
    def __init__(self, config: BrokerConfig, loop: asyncio.AbstractEventLoop) -> None:
        self.config = config
        self.loop = loop
        self.node_id = config.node_id
        self.storage = Storage(config, loop)
        self.registry: TopicRegistry = LocalRegistry(self.storage, self.node_id, config.get("broker.rack"))
        self.fetch_sessions = fetch.FetchSessionCache()
        self.fetch_stats = fetch.FetchStats()
        self.apis: dict[int, tuple[int, int, Handler]] = {
            0: (0, 12, produce.handle_produce),
            1: (4, 17, fetch.handle_fetch),
            2: (1, 10, fetch.handle_list_offsets),
            3: (0, 13, handle_metadata),
            18: (0, 4, handle_api_versions),
            19: (2, 7, admin.handle_create_topics),
            20: (1, 6, admin.handle_delete_topics),
            21: (0, 2, admin.handle_delete_records),
            22: (0, 5, handle_init_producer_id),
            23: (2, 4, fetch.handle_offset_for_leader_epoch),
            32: (1, 4, admin.handle_describe_configs),
            33: (0, 2, admin.handle_alter_configs),
            35: (1, 4, admin.handle_describe_log_dirs),
            37: (0, 3, admin.handle_create_partitions),
            44: (0, 1, admin.handle_incremental_alter_configs),
            60: (0, 2, handle_describe_cluster),
        }
        from . import group_apis, sasl_apis, txn_apis, txn_markers
        self.apis.update(group_apis.handlers())
        self.apis.update(txn_apis.handlers())
        self.apis[27] = (1, 1, txn_markers.handle_write_txn_markers)     # Kafka 4.0 advertises v1
        self.apis[61] = (0, 0, txn_markers.handle_describe_producers)
        # (partition, producer id, commit) once a transaction marker is durable (txn_markers.py)
        self.txn_marker_listeners: list[Callable[[Any, int, bool], None]] = []
        self.apis.update(sasl_apis.handlers())
        import os

        from .sasl import CREDENTIALS_FILE, ScramCredentials
        # SCRAM credentials: a file of the first log dir (a cluster keeps them in ZooKeeper)
        self.scram: Any = ScramCredentials(os.path.join(config.log_dirs[0], CREDENTIALS_FILE))
        from . import acl_apis, quotas
        from .acl import ACLS_FILE, Authorizer, FileAcls
        self.apis.update(acl_apis.handlers())
        self.apis[48] = (0, 1, quotas.handle_describe_client_quotas)
        self.apis[49] = (0, 1, quotas.handle_alter_client_quotas)
        self.quotas = quotas.Quotas(os.path.join(config.log_dirs[0], quotas.QUOTAS_FILE),
                                    config["quota.window.num"], config["quota.window.size.seconds"])
        # ACLs: on with Kafka's authorizer class (a cluster keeps them in ZooKeeper)
        self.authorizer: Authorizer | None = None
        if config["authorizer.class.name"]:
            self.authorizer = Authorizer(FileAcls(os.path.join(config.log_dirs[0], ACLS_FILE)),
                                         config["super.users"].split(";"), config["allow.everyone.if.no.acl.found"])
        self._api_versions_cache: dict[int, bytes] = {}
        from .metadata_cache import TopicEntries
        self.metadata_entries = TopicEntries()    # Metadata topic entries, encoded (metadata_cache.py)
        self.server: Server | None = None
        self.metrics_server: Any = None
        self.groups: group_apis.Groups | None = None
        self.txns: txn_apis.Txns | None = None
        self.cleaner: Any = None
        self.cluster: ClusterNode | None = None
        if config.get("zookeeper.connect"):
            from .cluster.apis import INTER_BROKER_APIS
            from .cluster.node import ClusterNode

            self.cluster = ClusterNode(self)
            self.registry = self.cluster.registry
            from .cluster.scram import ZkScramCredentials
            self.scram = ZkScramCredentials(self.cluster.zk)
            if self.authorizer is not None:
                from .cluster.acls import ZkAcls
                self.authorizer.store = ZkAcls(self.cluster.zk, self.authorizer.invalidate)
            self.apis.update(INTER_BROKER_APIS)

    # -- lifecycle -------------------------------------------------------------

    def open(self, cluster_id: str | None = None) -> None:
        self.storage.open(cluster_id)

    async def start_groups(self) -> None:
        """Load ``__consumer_offsets`` and ``__transaction_state``, start the group and
        transaction coordinators and the log cleaner."""
        from .cleaner import LogCleaner
        from .group_apis import Groups
        from .txn_apis import Txns

        self.groups = Groups(self.storage, self.config, self.node_id, self.cluster, self.registry)
        await self.groups.start()
        coord = self.groups.coord

        def settle(p: Any, pid: int, commit: bool) -> None:    # TxnOffsetCommit's offsets
            if p.topic.name == OFFSETS_TOPIC:
                coord.complete_txn(p.index, pid, commit)
        self.txn_marker_listeners.append(settle)
        self.txns = Txns(self)
        await self.txns.start()
        coord.transactions = True    # FindCoordinator answers key type 1 too
        if self.config["log.cleaner.enable"] and self.config["log.cleaner.threads"] > 0:
            self.cleaner = LogCleaner(self.storage, self.config)
            self.cleaner.start()

    def on_leadership(self, p: Any, leader: bool) -> None:
        """Cluster: this broker started or stopped leading ``p`` (the group coordinator follows
        the leadership of ``__consumer_offsets``, the transaction coordinator that of
        ``__transaction_state``)."""
        if p.topic.name == OFFSETS_TOPIC and self.groups is not None:
            self.groups.on_leadership(p.index, leader)
        elif p.topic.name == TRANSACTION_STATE_TOPIC and self.txns is not None:
            self.txns.on_leadership(p, leader)

    def start_server(self) -> list[tuple[str, int]]:
        self.server = Server(self.loop, self.config.listeners, self.config["socket.request.max.bytes"],
                             self.dispatch, self.config["socket.listen.backlog.size"],
                             idle_ms=self.config["connections.max.idle.ms"],
                             max_connections=self.config["max.connections"],
                             max_per_ip=self.config["max.connections.per.ip"],
                             per_ip_overrides=self.config.connections_per_ip,
                             tls=self.config.tls_contexts, sasl=self.config.sasl_listeners,
                             sasl_token=self._sasl_token, connection_throttle=self.quotas.record_connection,
                             accept_throttle=self._connection_rates())
        where = parse_listener(self.config["metrics.listener"])
        if where is not None:     # first: once the Kafka port accepts, the metrics answer too
            self.metrics_server = MetricsServer(self, *where)
            self.metrics_server.start()
        return self.server.start()

    def _connection_rates(self) -> Callable[[str], int] | None:
        """max.connection.creation.rate broker-wide and per listener (quotas.ConnectionRates), or
        None when neither is set."""
        from .config import INT_MAX
        from .quotas import ConnectionRates

        c = self.config
        broker_rate = c["max.connection.creation.rate"]
        if broker_rate == INT_MAX and not c.listener_conn_rate:
            return None
        protected = c.inter_broker_listener if len(c.listeners) > 1 else None
        return ConnectionRates(c["quota.window.num"], c["quota.window.size.seconds"],
                               None if broker_rate == INT_MAX else broker_rate, dict(c.listener_conn_rate),
                               protected).record

    def _sasl_token(self, conn: Any, token: bytes) -> Any:
        from .sasl_apis import raw_token
        return raw_token(self, conn, token)

    def offline_partitions(self) -> int:
        """Partitions with no leader in this broker's view of the cluster (a single node: those in
        a failed log dir)."""
        if self.cluster is None:
            return sum(1 for t in list(self.storage.topics.values()) for p in t.hosted() if p.offline)
        return sum(1 for t in list(self.cluster.metadata.topics.values())
                   for pm in list(t.partitions.values()) if pm.leader < 0)

    async def join_cluster(self, bound: list[tuple[str, int]]) -> None:
        """Cluster mode: register in ZooKeeper with the bound ports and run for controller."""
        if self.cluster is not None:
            ports = {ln.name: hp for ln, hp in zip(self.config.listeners, bound, strict=False)}
            await self.cluster.start(ports)

    async def shutdown(self) -> None:
        """Controlled shutdown (cluster mode), then close."""
        if self.cluster is not None:
            try:
                await self.cluster.controlled_shutdown()
            except Exception as e:  # noqa: BLE001 - an unclean shutdown is still a shutdown
                log.warning("controlled shutdown failed: %s", e)
        self.close()

    def close(self) -> None:
        st = self.fetch_stats
        log.info("fetch: %d long poll(s) parked, %d of them with a record readable", st.parked,
                 st.parked_with_data)
        if self.metrics_server is not None:
            self.metrics_server.stop()
            self.metrics_server = None
        if self.server is not None:
            self.server.close()
        if self.cluster is not None:
            self.cluster.close()
        if self.txns is not None:
            self.txns.close()
        if self.groups is not None:
            self.groups.close()
        if self.cleaner is not None:
            self.cleaner.stop()
            self.cleaner = None
        self.fetch_sessions.clear()
        self.storage.close()

    # -- dispatch ----------------------------------------------------------------

    def dispatch(self, ctx: RequestContext, frame: memoryview) -> HandlerResult:
        """Decode the body and call the API's handler. A request that cannot be served raises a
        ``ProtocolError`` naming its error code (the connection closes, as in Kafka); ApiVersions
        at a version we do not serve is answered with UNSUPPORTED_VERSION in v0, as Kafka does."""
        h = ctx.header
        entry = self.apis.get(h.api_key)
        if entry is None:
            raise InvalidRequestError(f"unknown or unsupported api key {h.api_key}")
        lo, hi, handler = entry
        if not lo <= h.api_version <= hi:
            if h.api_key == API_VERSIONS_KEY:
                ctx.response_version = 0
                return self.api_versions_unsupported()
            raise UnsupportedVersionError(f"unsupported version {h.api_version} of api key {h.api_key} "
                                          f"(supported {lo}-{hi})")
        cls = REQUESTS[h.api_key]
        if h.api_version < cls.MIN_VERSION:
            raise UnsupportedVersionError(f"{cls.__name__} v{h.api_version} is no longer supported "
                                          f"(minimum {cls.MIN_VERSION}, KIP-896)")
        try:
            req, _end = cls.decode(frame, h.api_version, h.body_offset)
        except ProtocolError as e:
            raise type(e)(f"cannot parse {cls.__name__} v{h.api_version}: {e}", e.error_code) from None
        if ctx.conn.sasl is not None:
            from .sasl_apis import check_request
            check_request(ctx.conn, h.api_key)
        cluster = self.cluster
        if cluster is not None and not cluster.serving.is_set() and h.api_key not in cluster.EARLY_APIS:
            return self._when_serving(handler, ctx, req)
        if self.quotas.active and (h.api_key in (0, 1) or self.quotas.request_quotas):
            return self._throttled(ctx, req, handler)
        if self.authorizer is not None:
            from .authz import guard
            return guard(self.authorizer, self, ctx, req, handler)
        return handler(self, ctx, req)

    def _throttled(self, ctx: RequestContext, req: Any, handler: Handler) -> HandlerResult:
        """A request under client quotas (quotas.py): Produce's and a consumer Fetch's bytes count
        against the byte rates, the time to handle any request but the exempt ones against
        ``request_percentage``; over either, the response carries the longer throttle time and
        the connection is muted for as long (Kafka's KafkaApis takes the maximum the same way)."""
        from .authz import principal_of
        from .quotas import EXEMPT_APIS

        conn = ctx.conn
        q = self.quotas
        user = principal_of(conn).split(":", 1)[-1]
        cid = ctx.client_id or ""
        api = ctx.header.api_key
        produce = api == 0
        follower = api == 1 and req.replica_id is not None and req.replica_id >= 0
        nbytes = sum(len(pd.records) for td in req.topic_data for pd in td.partition_data if pd.records) \
            if produce else 0
        # a SASL exchange before authentication is not a request Kafka's KafkaApis sees (its
        # network layer answers it), so it is not timed either
        authenticating = conn.sasl is not None and not conn.sasl.authenticated
        timed = q.request_quotas and api not in EXEMPT_APIS and not follower and not authenticating
        if self.authorizer is not None:
            from .authz import guard
            res = guard(self.authorizer, self, ctx, req, handler)
        else:
            res = handler(self, ctx, req)
        # request-handler time: from taking the frame to the handler's return (see quotas.py)
        spent = time.perf_counter() - ctx.started if timed else 0.0

        def fix(resp: Any) -> Any:
            ms = 0
            if produce:
                ms = q.record("producer_byte_rate", user, cid, nbytes)
            elif api == 1 and not follower and resp is not None:
                got = sum(len(p.records) for t in resp.responses for p in t.partitions if p.records)
                ms = q.record("consumer_byte_rate", user, cid, got)
            if timed:
                ms = max(ms, q.record_request(user, cid, spent))
            if ms:
                if resp is not None and hasattr(resp, "throttle_time_ms"):
                    resp.throttle_time_ms = ms
                conn.mute(ms)
            return resp
        if inspect.isawaitable(res):
            async def later() -> Any:
                return fix(await res)
            return later()
        return fix(res)

    async def _when_serving(self, handler: Handler, ctx: RequestContext, req: Any) -> Any:
        """Cluster: a client request that arrives before this broker is registered and has the
        controller's first UpdateMetadata waits for that (Kafka processes requests only once its
        start-up is complete), so nobody is told the cluster has no brokers or no such topic."""
        assert self.cluster is not None
        await self.cluster.serving.wait()
        if self.authorizer is not None:
            from .authz import guard
            res = guard(self.authorizer, self, ctx, req, handler)
        else:
            res = handler(self, ctx, req)
        return await res if inspect.isawaitable(res) else res

    # -- helpers for handlers ------------------------------------------------------

    def advertised(self, listener: Listener) -> Listener:
        return self.config.advertised[listener.name]

    def api_versions_body(self, version: int) -> bytes:
        """The ApiVersions response body, encoded once per version (it never changes)."""
        from kafka_protocol.messages import ApiVersionsResponse as R

        raw = self._api_versions_cache.get(version)
        if raw is None:
            keys = [R.ApiVersion(api_key=k, min_version=lo, max_version=hi)
                    for k, (lo, hi, _) in sorted(self.apis.items())]
            level = self.config["transaction.version"]
            # Kafka lists a finalized feature only above level 0; the epoch only has to be
            # non-negative and never go down (clients keep the highest they saw).
            raw = R(error_code=0, api_keys=keys, throttle_time_ms=0,
                    supported_features=[R.SupportedFeatureKey(name="transaction.version", min_version=0,
                                                              max_version=2)],
                    finalized_features_epoch=FINALIZED_FEATURES_EPOCH,
                    finalized_features=[R.FinalizedFeatureKey(name="transaction.version", max_version_level=level,
                                                              min_version_level=level)] if level else []
                    ).encode(version)
            self._api_versions_cache[version] = raw
        return raw

    def api_versions_unsupported(self) -> Any:
        from kafka_protocol.messages import ApiVersionsResponse as R

        lo, hi, _ = self.apis[API_VERSIONS_KEY]
        return R(error_code=E.UNSUPPORTED_VERSION,
                 api_keys=[R.ApiVersion(api_key=API_VERSIONS_KEY, min_version=lo, max_version=hi)])


# ---------------------------------------------------------------------------
# ApiVersions, Metadata, DescribeCluster, InitProducerId


def handle_api_versions(b: Broker, ctx: RequestContext, req: Any) -> Any:
    from kafka_protocol.messages import ApiVersionsResponse as R

    v = ctx.api_version
    if v >= 3:
        name, ver = req.client_software_name, req.client_software_version
        if not SOFTWARE_RE.fullmatch(name or "") or not SOFTWARE_RE.fullmatch(ver or ""):
            return R(error_code=E.INVALID_REQUEST)
    return b.api_versions_body(v)


def handle_metadata(b: Broker, ctx: RequestContext, req: Any) -> Any:
    from kafka_protocol.messages import MetadataResponse as R

    v = ctx.api_version
    st = b.storage
    include_ops = v >= 8 and req.include_topic_authorized_operations
    auto_ok = b.config["auto.create.topics.enable"] and (v < 4 or req.allow_auto_topic_creation)
    ops = TOPIC_OPS if include_ops else -2147483648
    view = (b.cluster.metadata_view(ctx.listener.name, ops, v) if b.cluster is not None
            else _LocalView(b, ctx, ops, v))

    def build(topics: list[Any]) -> Any:
        return R(throttle_time_ms=0, brokers=view.brokers, cluster_id=st.cluster_id, controller_id=view.controller_id,
                 topics=topics,
                 cluster_authorized_operations=CLUSTER_OPS if (8 <= v <= 10 and
                                                               req.include_cluster_authorized_operations)
                 else -2147483648)

    if req.topics is None or (v == 0 and not req.topics):
        return build(view.all_topics())

    if 10 <= v < 12 and any(rt.name is None or rt.topic_id.int != 0 for rt in req.topics):
        return _metadata_ids_refused(req)

    out: list[Any] = []
    to_create: list[tuple[int, str]] = []
    for rt in req.topics:
        name = rt.name
        if name is None:
            entry = view.by_id(rt.topic_id)
            out.append(entry if entry is not None else
                       R.MetadataResponseTopic(error_code=E.UNKNOWN_TOPIC_ID, name=None, topic_id=rt.topic_id))
            continue
        entry = view.by_name(name)
        if entry is not None:
            out.append(entry)
            continue
        if topic_name_error(name):
            out.append(R.MetadataResponseTopic(error_code=E.INVALID_TOPIC_EXCEPTION, name=name))
        elif auto_ok:
            to_create.append((len(out), name))
            out.append(None)
        else:
            out.append(R.MetadataResponseTopic(error_code=E.UNKNOWN_TOPIC_OR_PARTITION, name=name))
    if not to_create:
        return build(out)

    async def create_then_reply() -> Any:
        for i, name in to_create:
            try:
                if name == OFFSETS_TOPIC and b.groups is not None:
                    await (b.groups.ensure_cluster_topic() if b.cluster is not None else b.groups.ensure_topic())
                elif name == TRANSACTION_STATE_TOPIC and b.txns is not None:
                    it = b.txns.topic
                    await (it.ensure_cluster_topic() if b.cluster is not None else it.ensure_topic())
                elif b.registry.get(name) is None:
                    await b.registry.create(name, b.config["num.partitions"], b.config["default.replication.factor"],
                                            None, {})
            except FileExistsError:
                pass
            except Exception as e:  # noqa: BLE001
                log.error("auto-creating topic %s: %s", name, e)
            out[i] = view.by_name(name) or R.MetadataResponseTopic(error_code=E.LEADER_NOT_AVAILABLE, name=name)
        return build(out)
    return create_then_reply()


def _metadata_ids_refused(req: Any) -> Any:
    """Kafka's answer to a Metadata v10-11 that names a topic by id (its name null, or its id not
    zero): topic ids are only honoured from v12, and Name is not nullable before v12.  KafkaApis
    throws InvalidRequestException and MetadataRequest.getErrorResponse answers INVALID_REQUEST for
    every topic asked, echoing its id, with a null name sent as "" (the schema has no null there);
    no brokers, no cluster id, controller -1."""
    from kafka_protocol.messages import MetadataResponse as R

    return R(throttle_time_ms=0, error_code=E.INVALID_REQUEST, topics=[
        R.MetadataResponseTopic(error_code=E.INVALID_REQUEST, name=rt.name if rt.name is not None else "",
                                topic_id=rt.topic_id, is_internal=False, partitions=[]) for rt in req.topics])


class _LocalView:
    """Metadata of the single node: every partition led here.

    With ``version`` set, entries are the cached encoded ones of ``metadata_cache`` (stamped
    with the partition count and the number of offline log dirs: nothing else an entry holds
    changes on a single node); without, they are built (``entry``, the uncached reference)."""

    def __init__(self, b: Broker, ctx: RequestContext, ops: int, version: int | None = None) -> None:
        from kafka_protocol.messages import MetadataResponse as R

        self.b = b
        self.ops = ops
        self.version = version
        self.cache = b.metadata_entries
        adv = b.advertised(ctx.listener)
        rack = b.config.get("broker.rack")
        self.brokers = self.cache.brokers(ctx.listener.name, (adv.host, adv.port, rack), lambda: [
            R.MetadataResponseBroker(node_id=b.node_id, host=adv.host, port=adv.port, rack=rack)])
        self.controller_id = b.node_id
        self.offline = sum(1 for d in b.storage.log_dirs.dirs if d.offline is not None)

    def entry(self, t: Any) -> Any:
        from kafka_protocol.messages import MetadataResponse as R

        nid = self.b.node_id
        # A partition whose log dir failed has lost its only replica: Kafka's controller leaves it
        # with no leader (LEADER_NOT_AVAILABLE) and this broker among its offline replicas.  One
        # whose log is still being made (Topic.pending, slot None) has no leader yet either.
        parts = [R.MetadataResponsePartition(error_code=E.LEADER_NOT_AVAILABLE, partition_index=i, leader_id=-1,
                                             leader_epoch=-1, replica_nodes=[nid], isr_nodes=[nid],
                                             offline_replicas=[])
                 if p is None else
                 R.MetadataResponsePartition(error_code=0, partition_index=i, leader_id=nid,
                                             leader_epoch=p.leader_epoch, replica_nodes=[nid], isr_nodes=[nid],
                                             offline_replicas=[])
                 if p.log_dir.offline is None else
                 R.MetadataResponsePartition(error_code=E.LEADER_NOT_AVAILABLE, partition_index=i,
                                             leader_id=-1, leader_epoch=p.leader_epoch, replica_nodes=[nid],
                                             isr_nodes=[nid], offline_replicas=[nid])
                 for i, p in enumerate(t.partitions)]
        return R.MetadataResponseTopic(error_code=0, name=t.name, topic_id=t.id, is_internal=t.internal,
                                       partitions=parts, topic_authorized_operations=self.ops)

    def parts(self, t: Any) -> Any:
        """What ``entry`` holds, as ``metadata_cache.TopicParts`` (the cached entries' cold build:
        no message object per partition; the healthy partitions share their lists)."""
        from .metadata_cache import Partition, TopicParts

        nid = self.b.node_id
        mine: list[int] = [nid]
        none_: list[int] = []
        parts: list[Partition] = [(E.LEADER_NOT_AVAILABLE, i, -1, -1, mine, mine, none_) if p is None else
                 (0, i, nid, p.leader_epoch, mine, mine, none_) if p.log_dir.offline is None else
                 (E.LEADER_NOT_AVAILABLE, i, -1, p.leader_epoch, mine, mine, mine)
                 for i, p in enumerate(t.partitions)]
        return TopicParts(0, t.name, t.id, t.internal, parts, self.ops)

    def _entry(self, t: Any) -> Any:
        if self.version is None:
            return self.entry(t)
        return self.cache.get(t.name, t, (len(t.partitions), len(t.pending), self.offline), self.version, self.ops,
                              self.parts, t)

    def all_topics(self) -> list[Any]:
        topics = self.b.storage.topics
        if self.version is None:
            return [self.entry(t) for t in topics.values() if t.partitions]
        get, v, ops, build, offline = self.cache.get, self.version, self.ops, self.parts, self.offline
        out = [get(t.name, t, (len(t.partitions), len(t.pending), offline), v, ops, build, t)
               for t in topics.values() if t.partitions]
        self.cache.prune(topics)
        return out

    def by_name(self, name: str) -> Any | None:
        t = self.b.storage.topics.get(name)
        return self._entry(t) if t is not None and t.partitions else None

    def by_id(self, topic_id: Any) -> Any | None:
        t = self.b.storage.topics_by_id.get(topic_id)
        return self._entry(t) if t is not None else None


def handle_describe_cluster(b: Broker, ctx: RequestContext, req: Any) -> Any:
    from kafka_protocol.messages import DescribeClusterResponse as R

    v = ctx.api_version
    adv = b.advertised(ctx.listener)
    brokers = [R.DescribeClusterBroker(broker_id=b.node_id, host=adv.host, port=adv.port,
                                       rack=b.config.get("broker.rack"), is_fenced=False)]
    controller_id = b.node_id
    if b.cluster is not None:
        view = b.cluster.metadata_view(ctx.listener.name, 0)
        brokers = [R.DescribeClusterBroker(broker_id=x.node_id, host=x.host, port=x.port, rack=x.rack,
                                           is_fenced=False) for x in view.brokers]
        controller_id = view.controller_id
    if v >= 1 and req.endpoint_type != 1:
        return R(error_code=E.MISMATCHED_ENDPOINT_TYPE,
                 error_message="The request was sent to an endpoint of type BROKER, but we wanted an "
                               "endpoint of type CONTROLLER" if req.endpoint_type == 2 else
                               "Unsupported endpoint type", endpoint_type=1, cluster_id=b.storage.cluster_id)
    return R(error_code=0, endpoint_type=1, cluster_id=b.storage.cluster_id, controller_id=controller_id,
             brokers=brokers,
             cluster_authorized_operations=CLUSTER_OPS if req.include_cluster_authorized_operations
             else -2147483648)


def handle_init_producer_id(b: Broker, ctx: RequestContext, req: Any) -> Any:
    from kafka_protocol.messages import InitProducerIdResponse as R

    if req.transactional_id is not None:
        from .txn_apis import handle_init_producer_id as transactional
        return transactional(b, ctx, req)

    if (req.producer_id == -1) != (req.producer_epoch == -1):
        return R(error_code=E.INVALID_REQUEST, producer_id=-1, producer_epoch=-1)

    async def alloc() -> Any:
        pid = await b.storage.allocate_producer_id()
        return R(error_code=0, producer_id=pid, producer_epoch=0)
    st = b.storage
    if st.next_producer_id < st.producer_id_block_end:
        pid = st.next_producer_id
        st.next_producer_id += 1
        return R(error_code=0, producer_id=pid, producer_epoch=0)
    return alloc()
