"""Admin client: topics, partitions, configs, cluster, consumer groups and their offsets.

Each call returns per-item results: a dict from the item (topic, resource,
group) to ``None`` (success) or the ``KafkaError`` the broker returned for
it, unless it returns data.  ``raise_on_error=True`` raises the first error
instead.  Topic-level calls go to the controller the metadata names (KRaft
brokers forward them anyway); group calls go to the group's coordinator.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, Unpack

import kafka_protocol as kp

from ._loop import LoopThread
from .assignors import decode_assignment
from .cluster import Cluster, TopicMeta
from .conn import ApiKey
from .errors import KafkaError, KafkaTimeoutError, for_code
from .group import OffsetAndMetadata, TopicPartition, commit_offsets, fetch_committed
from .security import Security, SecuritySettings
from .settings import AdminSettings, check_settings, lists_settings

__all__ = ["AIOAdminClient", "AdminClient", "NewTopic", "ConfigResource", "ConfigResourceType", "AlterConfigOp",
           "ConfigEntry", "ClusterDescription", "BrokerDescription", "GroupListing", "GroupDescription",
           "MemberDescription"]


class ConfigResourceType(IntEnum):
    TOPIC = 2
    BROKER = 4
    BROKER_LOGGER = 8


@dataclass(frozen=True)
class ConfigResource:
    type: ConfigResourceType
    name: str


@dataclass
class NewTopic:
    name: str
    num_partitions: int = -1
    replication_factor: int = -1
    configs: dict[str, str] = field(default_factory=dict)
    replica_assignments: dict[int, list[int]] | None = None


@dataclass
class AlterConfigOp:
    name: str
    value: str | None = None
    op: str = "set"  # set | delete | append | subtract

    OPS = {"set": 0, "delete": 1, "append": 2, "subtract": 3}


@dataclass
class ConfigEntry:
    name: str
    value: str | None
    read_only: bool
    source: int
    is_sensitive: bool


@dataclass
class BrokerDescription:
    node_id: int
    host: str
    port: int
    rack: str | None


@dataclass
class ClusterDescription:
    cluster_id: str | None
    controller_id: int
    brokers: list[BrokerDescription]


@dataclass
class GroupListing:
    group_id: str
    protocol_type: str
    state: str | None


@dataclass
class MemberDescription:
    member_id: str
    group_instance_id: str | None
    client_id: str
    client_host: str
    assignment: list[TopicPartition]


@dataclass
class GroupDescription:
    group_id: str
    state: str
    protocol_type: str
    protocol: str
    members: list[MemberDescription]


def _check(results: Mapping[Any, KafkaError | None], raise_on_error: bool) -> Any:
    if raise_on_error:
        for err in results.values():
            if err is not None:
                raise err
    return results


class AIOAdminClient:
    """asyncio admin client: topics, configs, the cluster and groups (``await start()`` first, or use the
    sync ``AdminClient``)."""
    def __init__(self, bootstrap_servers: str | Iterable[str] = "localhost:9092", *,
                 client_id: str = "kafka-core-admin", request_timeout_ms: int = 30000,
                 retry_backoff_ms: int = 100, connect_timeout_ms: int = 10000,
                 **security: Unpack[SecuritySettings]) -> None:
        self.cluster = Cluster(bootstrap_servers, client_id=client_id, request_timeout_ms=request_timeout_ms,
                               retry_backoff_ms=retry_backoff_ms, connect_timeout_ms=connect_timeout_ms,
                               allow_auto_create_topics=False, security=Security(**security))
        self.timeout = request_timeout_ms / 1000

    async def start(self) -> AIOAdminClient:
        """Connect to a bootstrap server; returns self."""
        await self.cluster.bootstrap_metadata()
        return self

    async def __aenter__(self) -> AIOAdminClient:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the connections."""
        await self.cluster.close()

    async def _controller(self) -> Any:
        node = self.cluster.controller_id
        if node in self.cluster.brokers:
            try:
                return await self.cluster.connection(node)
            except KafkaError:
                pass
        return await self.cluster.any_connection()

    # ---- topics ----
    async def create_topics(self, topics: Iterable[NewTopic], *, timeout_ms: int = 30000, validate_only: bool = False,
                            wait: bool = True, raise_on_error: bool = False) -> dict[str, KafkaError | None]:
        """Create topics; with ``wait`` also wait until every created topic has leaders in metadata."""
        topics = list(topics)
        req = kp.CreateTopicsRequest(topics=[kp.CreateTopicsRequest.CreatableTopic(
            name=t.name, num_partitions=t.num_partitions if not t.replica_assignments else -1,
            replication_factor=t.replication_factor if not t.replica_assignments else -1,
            assignments=[kp.CreateTopicsRequest.CreatableReplicaAssignment(partition_index=p, broker_ids=b)
                         for p, b in (t.replica_assignments or {}).items()],
            configs=[kp.CreateTopicsRequest.CreatableTopicConfig(name=k, value=v) for k, v in t.configs.items()])
            for t in topics], timeout_ms=timeout_ms, validate_only=validate_only)
        conn = await self._controller()
        resp = await conn.send(req, timeout=timeout_ms / 1000 + 5)
        out: dict[str, KafkaError | None] = {
            r.name: for_code(r.error_code, r.error_message) if r.error_code else None for r in resp.topics}
        if wait and not validate_only:
            ok = [n for n, e in out.items() if e is None]
            await self._wait_topics(ok, present=True, timeout=timeout_ms / 1000)
        return _check(out, raise_on_error)

    async def _wait_topics(self, names: list[str], present: bool, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while names:
            conn = await self.cluster.any_connection()
            resp = await conn.send(kp.MetadataRequest(
                topics=[kp.MetadataRequest.MetadataRequestTopic(name=n) for n in names],
                allow_auto_topic_creation=False))
            pending = []
            for t in resp.topics:
                ready = not t.error_code and t.partitions and all(p.leader_id >= 0 for p in t.partitions)
                if present != bool(ready):
                    pending.append(t.name)
            names = pending
            if not names:
                return
            if time.monotonic() > deadline:
                raise KafkaTimeoutError(f"topics {names} not {'created' if present else 'deleted'} in metadata "
                                        f"after {timeout:.3g}s")
            await asyncio.sleep(0.05)

    async def delete_topics(self, names: Iterable[str], *, timeout_ms: int = 30000, wait: bool = True,
                            raise_on_error: bool = False) -> dict[str, KafkaError | None]:
        """Delete topics; with ``wait`` also until they are gone from metadata."""
        names = list(names)
        conn = await self._controller()
        resp = await conn.send(kp.DeleteTopicsRequest(topic_names=names, timeout_ms=timeout_ms),
                               timeout=timeout_ms / 1000 + 5)
        out: dict[str, KafkaError | None] = {
            r.name: for_code(r.error_code, r.error_message) if r.error_code else None for r in resp.responses}
        if wait:
            await self._wait_topics([n for n, e in out.items() if e is None], present=False,
                                    timeout=timeout_ms / 1000)
        for n in names:
            self.cluster.topics.pop(n, None)
        return _check(out, raise_on_error)

    async def create_partitions(self, new_counts: Mapping[str, int], *, timeout_ms: int = 30000,
                                validate_only: bool = False, raise_on_error: bool = False) -> dict[str, KafkaError | None]:
        """Grow each topic to the given total number of partitions."""
        conn = await self._controller()
        req = kp.CreatePartitionsRequest(topics=[kp.CreatePartitionsRequest.CreatePartitionsTopic(
            name=t, count=n, assignments=None) for t, n in new_counts.items()],
            timeout_ms=timeout_ms, validate_only=validate_only)
        resp = await conn.send(req, timeout=timeout_ms / 1000 + 5)
        out = {r.name: for_code(r.error_code, r.error_message) if r.error_code else None for r in resp.results}
        return _check(out, raise_on_error)

    async def list_topics(self, include_internal: bool = False) -> set[str]:
        """Names of the cluster's topics (``__consumer_offsets`` and co. with ``include_internal``)."""
        conn = await self.cluster.any_connection()
        resp = await conn.send(kp.MetadataRequest(topics=None, allow_auto_topic_creation=False))
        return {t.name for t in resp.topics if not t.error_code and (include_internal or not t.is_internal)}

    async def describe_topics(self, names: Iterable[str]) -> dict[str, TopicMeta]:
        """Partition layout of each topic; raises the error of a topic that does not exist."""
        names = list(names)
        conn = await self.cluster.any_connection()
        resp = await conn.send(kp.MetadataRequest(
            topics=[kp.MetadataRequest.MetadataRequestTopic(name=n) for n in names], allow_auto_topic_creation=False))
        self.cluster._apply_metadata(resp)
        out = {}
        for t in resp.topics:
            if t.error_code:
                raise for_code(t.error_code, f"topic {t.name!r}")
            out[t.name] = self.cluster.topics[t.name]
        return out

    # ---- configs ----
    async def describe_configs(self, resources: Iterable[ConfigResource], *, keys: Iterable[str] | None = None
                               ) -> dict[ConfigResource, dict[str, ConfigEntry]]:
        """Configs of topics or brokers (all, or only ``keys``)."""
        resources = list(resources)
        key_list = list(keys) if keys is not None else None
        req = kp.DescribeConfigsRequest(resources=[kp.DescribeConfigsRequest.DescribeConfigsResource(
            resource_type=int(r.type), resource_name=r.name, configuration_keys=key_list) for r in resources],
            include_synonyms=False, include_documentation=False)
        # Broker resources must go to that broker.
        brokers = {int(r.name) for r in resources if r.type == ConfigResourceType.BROKER and r.name.isdigit()}
        if len(brokers) == 1:
            conn = await self.cluster.connection(brokers.pop())
        else:
            conn = await self.cluster.any_connection()
        resp = await conn.send(req)
        out: dict[ConfigResource, dict[str, ConfigEntry]] = {}
        for r in resp.results:
            if r.error_code:
                raise for_code(r.error_code, r.error_message or f"DescribeConfigs {r.resource_name!r}")
            out[ConfigResource(ConfigResourceType(r.resource_type), r.resource_name)] = {
                c.name: ConfigEntry(c.name, c.value, c.read_only, c.config_source, c.is_sensitive) for c in r.configs}
        return out

    async def incremental_alter_configs(self, changes: Mapping[ConfigResource, Iterable[AlterConfigOp]], *,
                                        validate_only: bool = False, raise_on_error: bool = False
                                        ) -> dict[ConfigResource, KafkaError | None]:
        """Set, delete, append to or subtract from config values (IncrementalAlterConfigs)."""
        req = kp.IncrementalAlterConfigsRequest(resources=[kp.IncrementalAlterConfigsRequest.AlterConfigsResource(
            resource_type=int(r.type), resource_name=r.name,
            configs=[kp.IncrementalAlterConfigsRequest.AlterableConfig(
                name=op.name, config_operation=AlterConfigOp.OPS[op.op], value=op.value) for op in ops])
            for r, ops in changes.items()], validate_only=validate_only)
        conn = await self._controller()
        resp = await conn.send(req)
        out = {ConfigResource(ConfigResourceType(r.resource_type), r.resource_name):
               for_code(r.error_code, r.error_message) if r.error_code else None for r in resp.responses}
        return _check(out, raise_on_error)

    # ---- cluster ----
    async def describe_cluster(self) -> ClusterDescription:
        """Cluster id, controller and brokers."""
        conn = await self.cluster.any_connection()
        if conn.supports(ApiKey.DESCRIBE_CLUSTER):
            resp = await conn.send(kp.DescribeClusterRequest(include_cluster_authorized_operations=False))
            if resp.error_code:
                raise for_code(resp.error_code, resp.error_message)
            return ClusterDescription(resp.cluster_id, resp.controller_id,
                                      [BrokerDescription(b.broker_id, b.host, b.port, b.rack) for b in resp.brokers])
        resp = await conn.send(kp.MetadataRequest(topics=[], allow_auto_topic_creation=False))
        return ClusterDescription(resp.cluster_id, resp.controller_id,
                                  [BrokerDescription(b.node_id, b.host, b.port, b.rack) for b in resp.brokers])

    # ---- groups ----
    async def list_groups(self) -> list[GroupListing]:
        """Groups of every broker (each lists the groups it coordinates)."""
        await self.cluster.refresh_metadata()
        out: dict[str, GroupListing] = {}
        for node in list(self.cluster.brokers):
            resp = await self.cluster.send(node, kp.ListGroupsRequest(states_filter=[], types_filter=[]))
            if resp.error_code:
                raise for_code(resp.error_code, "ListGroups")
            for g in resp.groups:
                out[g.group_id] = GroupListing(g.group_id, g.protocol_type, g.group_state or None)
        return sorted(out.values(), key=lambda g: g.group_id)

    async def describe_groups(self, group_ids: Iterable[str]) -> dict[str, GroupDescription]:
        """State, protocol and members (with their assignments) of each group."""
        out = {}
        for gid in group_ids:
            node = await self.cluster.coordinator(gid)
            resp = await self.cluster.send(node, kp.DescribeGroupsRequest(groups=[gid],
                                                                          include_authorized_operations=False))
            for g in resp.groups:
                if g.error_code:
                    raise for_code(g.error_code, g.error_message or f"DescribeGroups {gid!r}")
                members = []
                for m in g.members:
                    try:
                        parts = [TopicPartition(t, p) for t, p in decode_assignment(m.member_assignment).partitions] \
                            if g.protocol_type == "consumer" else []
                    except ValueError:
                        parts = []
                    members.append(MemberDescription(m.member_id, m.group_instance_id, m.client_id, m.client_host,
                                                     parts))
                out[g.group_id] = GroupDescription(g.group_id, g.group_state, g.protocol_type, g.protocol_data,
                                                   members)
        return out

    async def delete_groups(self, group_ids: Iterable[str], *, raise_on_error: bool = False
                            ) -> dict[str, KafkaError | None]:
        """Delete groups that have no members, with their committed offsets."""
        out: dict[str, KafkaError | None] = {}
        for gid in group_ids:
            node = await self.cluster.coordinator(gid)
            resp = await self.cluster.send(node, kp.DeleteGroupsRequest(groups_names=[gid]))
            for r in resp.results:
                out[r.group_id] = for_code(r.error_code) if r.error_code else None
        return _check(out, raise_on_error)

    async def list_group_offsets(self, group_id: str, partitions: Iterable[TopicPartition] | None = None
                                 ) -> dict[TopicPartition, OffsetAndMetadata]:
        """Committed offsets of a group (all its partitions, or ``partitions``)."""
        got = await fetch_committed(self.cluster, group_id, partitions, timeout=self.timeout)
        return {tp: om for tp, om in got.items() if om is not None}

    async def alter_group_offsets(self, group_id: str, offsets: Mapping[TopicPartition, int | OffsetAndMetadata]) -> None:
        """Set committed offsets of a group that has no active members."""
        oam = {TopicPartition(*tp): o if isinstance(o, OffsetAndMetadata) else OffsetAndMetadata(o)
               for tp, o in offsets.items()}
        await commit_offsets(self.cluster, group_id, oam, timeout=self.timeout)


class AdminClient:
    """Synchronous admin client (the AIO one on a background loop)."""

    @lists_settings(AIOAdminClient.__init__)
    def __init__(self, bootstrap_servers: str | Iterable[str] = "localhost:9092",
                 **config: Unpack[AdminSettings]) -> None:
        settings = check_settings(AIOAdminClient.__init__, config, "admin")
        self._thread = LoopThread("kafka-admin")

        async def make() -> AIOAdminClient:
            return await AIOAdminClient(bootstrap_servers, **settings).start()
        self._a: AIOAdminClient = self._thread.run(make())

    def __enter__(self) -> AdminClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # The same methods as AIOAdminClient, each run to completion on the client's loop thread.

    def create_topics(self, topics: Iterable[NewTopic], *, timeout_ms: int = 30000, validate_only: bool = False,
                      wait: bool = True, raise_on_error: bool = False) -> dict[str, KafkaError | None]:
        """Create topics; with ``wait`` also wait until every created topic has leaders in metadata.
        Returns each topic's error (None: created); ``raise_on_error`` raises the first instead."""
        return self._thread.run(self._a.create_topics(topics, timeout_ms=timeout_ms, validate_only=validate_only,
                                                      wait=wait, raise_on_error=raise_on_error))

    def delete_topics(self, names: Iterable[str], *, timeout_ms: int = 30000, wait: bool = True,
                      raise_on_error: bool = False) -> dict[str, KafkaError | None]:
        """Delete topics; with ``wait`` also until they are gone from metadata."""
        return self._thread.run(self._a.delete_topics(names, timeout_ms=timeout_ms, wait=wait,
                                                      raise_on_error=raise_on_error))

    def create_partitions(self, new_counts: Mapping[str, int], *, timeout_ms: int = 30000,
                          validate_only: bool = False, raise_on_error: bool = False) -> dict[str, KafkaError | None]:
        """Grow each topic to the given total number of partitions."""
        return self._thread.run(self._a.create_partitions(new_counts, timeout_ms=timeout_ms,
                                                          validate_only=validate_only, raise_on_error=raise_on_error))

    def list_topics(self, include_internal: bool = False) -> set[str]:
        """Names of the cluster's topics (``__consumer_offsets`` and co. with ``include_internal``)."""
        return self._thread.run(self._a.list_topics(include_internal))

    def describe_topics(self, names: Iterable[str]) -> dict[str, TopicMeta]:
        """Partition layout of each topic; raises the error of a topic that does not exist."""
        return self._thread.run(self._a.describe_topics(names))

    def describe_configs(self, resources: Iterable[ConfigResource], *, keys: Iterable[str] | None = None
                         ) -> dict[ConfigResource, dict[str, ConfigEntry]]:
        """Configs of topics or brokers (all, or only ``keys``)."""
        return self._thread.run(self._a.describe_configs(resources, keys=keys))

    def incremental_alter_configs(self, changes: Mapping[ConfigResource, Iterable[AlterConfigOp]], *,
                                  validate_only: bool = False, raise_on_error: bool = False
                                  ) -> dict[ConfigResource, KafkaError | None]:
        """Set, delete, append to or subtract from config values (IncrementalAlterConfigs)."""
        return self._thread.run(self._a.incremental_alter_configs(changes, validate_only=validate_only,
                                                                  raise_on_error=raise_on_error))

    def describe_cluster(self) -> ClusterDescription:
        """Cluster id, controller and brokers."""
        return self._thread.run(self._a.describe_cluster())

    def list_groups(self) -> list[GroupListing]:
        """Groups of every broker (each lists the groups it coordinates)."""
        return self._thread.run(self._a.list_groups())

    def describe_groups(self, group_ids: Iterable[str]) -> dict[str, GroupDescription]:
        """State, protocol and members (with their assignments) of each group."""
        return self._thread.run(self._a.describe_groups(group_ids))

    def delete_groups(self, group_ids: Iterable[str], *, raise_on_error: bool = False
                      ) -> dict[str, KafkaError | None]:
        """Delete groups that have no members, with their committed offsets."""
        return self._thread.run(self._a.delete_groups(group_ids, raise_on_error=raise_on_error))

    def list_group_offsets(self, group_id: str, partitions: Iterable[TopicPartition] | None = None
                           ) -> dict[TopicPartition, OffsetAndMetadata]:
        """Committed offsets of a group (all its partitions, or ``partitions``)."""
        return self._thread.run(self._a.list_group_offsets(group_id, partitions))

    def alter_group_offsets(self, group_id: str, offsets: Mapping[TopicPartition, int | OffsetAndMetadata]) -> None:
        """Set committed offsets of a group that has no active members."""
        self._thread.run(self._a.alter_group_offsets(group_id, offsets))

    def close(self) -> None:
        """Close the connections and the client's thread."""
        if self._thread.stopped:
            return
        try:
            self._thread.run(self._a.close())
        finally:
            self._thread.stop()
