"""Topics: the registry's entries, their names and ids, and the internal topics.

``INTERNAL_TOPICS`` is the one list of topics no client may produce to, whose partitions only
the broker's own coordinators append to (through ``Partition.append`` with their origin).
"""

from __future__ import annotations

import base64
import re
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from .stats import TopicStats

if TYPE_CHECKING:
    from .partition import Partition

OFFSETS_TOPIC = "__consumer_offsets"
TRANSACTION_STATE_TOPIC = "__transaction_state"
INTERNAL_TOPICS = frozenset({OFFSETS_TOPIC, TRANSACTION_STATE_TOPIC})
TOPIC_NAME_RE = re.compile(r"[a-zA-Z0-9._-]+")
MAX_TOPIC_NAME = 249


def new_topic_id() -> uuid.UUID:
    """A random non-zero id whose base64 form does not start with '-' (Uuid.randomUuid)."""
    while True:
        u = uuid.uuid4()
        if u.int > 1 and not base64.urlsafe_b64encode(u.bytes).startswith(b"-"):
            return u


def new_cluster_id() -> str:
    return base64.urlsafe_b64encode(new_topic_id().bytes).rstrip(b"=").decode()


def topic_name_error(name: str | None) -> str | None:
    if not name:
        return "Topic name is illegal, it can't be empty"
    if name in (".", ".."):
        return "Topic name cannot be \".\" or \"..\""
    if len(name) > MAX_TOPIC_NAME:
        return f"Topic name is illegal, it can't be longer than {MAX_TOPIC_NAME} characters, topic name: {name}"
    if not TOPIC_NAME_RE.fullmatch(name):
        return (f"Topic name \"{name}\" is illegal, it contains a character other than ASCII "
                "alphanumerics, '.', '_' and '-'")
    return None


class Topic:
    __slots__ = ("name", "id", "partitions", "overrides", "effective", "deleted", "stats", "pending")

    def __init__(self, name: str, topic_id: uuid.UUID, overrides: dict[str, str]) -> None:
        self.name = name
        self.id = topic_id
        # Indexed by partition number.  None: this broker hosts no replica of that partition (a
        # cluster broker hosts only the replicas assigned to it); a single node hosts them all.
        self.partitions: list[Partition | None] = []
        # Partitions listed in the metadata whose logs are still being made in the background
        # (their slots are None meanwhile): Metadata reports them LEADER_NOT_AVAILABLE, Produce,
        # Fetch and ListOffsets NOT_LEADER_OR_FOLLOWER, as Kafka's broker does before it leads them.
        self.pending: set[int] = set()
        self.overrides = dict(overrides)       # text values as set by the user
        self.effective: dict[str, Any] = {}
        self.deleted = False
        self.stats = TopicStats()              # counters the metrics endpoint reads

    @property
    def internal(self) -> bool:
        return self.name in INTERNAL_TOPICS

    def hosted(self) -> Iterator[Partition]:
        """The partitions this broker hosts a replica of, by partition number."""
        return (p for p in self.partitions if p is not None)

    def hosted_partition(self, index: int) -> Partition | None:
        """Partition ``index`` when it exists and this broker hosts it, else None."""
        if 0 <= index < len(self.partitions):
            return self.partitions[index]
        return None
