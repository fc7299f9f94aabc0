"""Where topics are created, deleted and grown: the one node's storage, or the cluster's ZooKeeper.

The admin handlers validate a request the same way in both cases and then ask the registry.
On a single node (``LocalRegistry``) the topic is the local logs and ``kc-metadata.json``; in a
cluster (``cluster.node.ZkRegistry``) it is the assignment written to ZooKeeper, which the
controller turns into replicas on the brokers it names.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import TYPE_CHECKING, NamedTuple, Protocol

if TYPE_CHECKING:
    from .log import Partition, Topic
    from .storage import Storage


class TopicInfo(NamedTuple):
    name: str
    id: uuid.UUID
    num_partitions: int
    internal: bool


class TopicRegistry(Protocol):
    def get(self, name: str) -> TopicInfo | None: ...

    def get_by_id(self, topic_id: uuid.UUID) -> TopicInfo | None: ...

    def names(self) -> Iterable[str]: ...

    def is_deleting(self, name: str) -> bool: ...

    def brokers(self) -> dict[int, str | None]:
        """Registered broker ids -> rack."""
        ...

    async def create(self, name: str, num_partitions: int, replication_factor: int,
                     assignment: dict[int, list[int]] | None, configs: dict[str, str],
                     background: bool = False) -> uuid.UUID:
        """Create the topic; ``background``: return once it is durably in the metadata, its logs
        made afterwards (CreateTopics, as Kafka's controller answers), else once they exist."""
        ...

    async def delete(self, name: str) -> None: ...

    async def add_partitions(self, name: str, count: int, assignment: list[list[int]] | None) -> None: ...

    def topic_view(self, name: str) -> Topic | None:
        """The topic with its config overrides and effective values (DescribeConfigs/AlterConfigs):
        the hosted ``Topic``, or in a cluster one built from ZooKeeper's ``/config/topics``."""
        ...

    async def alter_configs(self, name: str, overrides: dict[str, str]) -> None:
        """Replace the topic's overrides (every broker applies them)."""
        ...

    async def low_watermark(self, p: Partition, offset: int, timeout_ms: int) -> tuple[int, int]:
        """After DeleteRecords moved this leader's log start to ``offset``: (0 or an error code,
        the low watermark), once every replica on a live broker has moved its own log start
        too, or after ``timeout_ms`` (REQUEST_TIMED_OUT)."""
        ...


class LocalRegistry:
    """The single node: every topic is local, this broker is the only replica."""

    def __init__(self, storage: Storage, node_id: int, rack: str | None) -> None:
        self.storage = storage
        self.node_id = node_id
        self.rack = rack

    @staticmethod
    def _info(t: object) -> TopicInfo:
        from .log import Topic

        assert isinstance(t, Topic)
        return TopicInfo(t.name, t.id, len(t.partitions), t.internal)

    def get(self, name: str) -> TopicInfo | None:
        t = self.storage.topics.get(name)
        return self._info(t) if t is not None else None

    def get_by_id(self, topic_id: uuid.UUID) -> TopicInfo | None:
        t = self.storage.topics_by_id.get(topic_id)
        return self._info(t) if t is not None else None

    def names(self) -> Iterable[str]:
        return self.storage.topics.keys()

    def is_deleting(self, name: str) -> bool:
        return name in self.storage.deleting

    def brokers(self) -> dict[int, str | None]:
        return {self.node_id: self.rack}

    async def create(self, name: str, num_partitions: int, replication_factor: int,
                     assignment: dict[int, list[int]] | None, configs: dict[str, str],
                     background: bool = False) -> uuid.UUID:
        topic = await self.storage.create_topic(name, num_partitions, configs, background=background)
        return topic.id

    async def delete(self, name: str) -> None:
        t = self.storage.topics.get(name)
        if t is not None:
            await self.storage.delete_topic(t)

    async def add_partitions(self, name: str, count: int, assignment: list[list[int]] | None) -> None:
        t = self.storage.topics[name]
        await self.storage.add_partitions(t, count)

    def topic_view(self, name: str) -> Topic | None:
        return self.storage.topics.get(name)

    async def alter_configs(self, name: str, overrides: dict[str, str]) -> None:
        await self.storage.alter_topic_configs(self.storage.topics[name], overrides)

    async def low_watermark(self, p: Partition, offset: int, timeout_ms: int) -> tuple[int, int]:
        return 0, p.log.start_offset     # the only replica
