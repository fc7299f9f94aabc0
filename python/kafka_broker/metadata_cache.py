"""Metadata topic entries, encoded once and spliced into every Metadata response (issue 16).

A Metadata request for all topics used to build a ``MetadataResponsePartition`` per partition
and encode them all, on every request: ~35 ms of Python for 10,000 partitions, where Apache
Kafka answers in ~8 ms.  What one topic's entry encodes changes only when the topic does, so
each entry is encoded once per (entry layout, topic authorized-operations value) and kept as a
``kafka_protocol.PreEncoded`` (versions of one layout share it: v12 and v13, v10 and v11...), which the generated MetadataResponse encoder splices into the
topics array as it is.  A request then costs a lookup per topic listed.

Invalidation is by stamp, not by hooks: the view that builds an entry hands over the object it
builds it from (``src``, compared by identity: a topic deleted and created again is another
object) and a stamp of everything else the entry encodes; an entry whose ``src`` or stamp
differs is thrown away and built again.  The views pick stamps that are O(1) to read:

- a single node (``broker._LocalView``): the number of partitions (they only grow) and the
  number of offline log dirs (a dir never comes back until a restart).  Everything else an entry
  holds is fixed for the topic object's life on a single node (name, id, leader = this node,
  replicas = ISR = [this node], leader epoch 0);
- a cluster member (``cluster.apis.MetadataView``): the ``TopicMeta.version`` that
  ``MetadataCache.update`` bumps whenever an UpdateMetadata changes the topic's id or any of its
  partitions' leader, epoch, ISR, replicas or offline replicas.

Entries of topics that are gone are dropped on the next all-topics request.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any

from kafka_protocol import PreEncoded
from kafka_protocol.messages import MetadataResponse

_TOPICS = "topics"
_LAYOUTS = tuple(MetadataResponse.pre_layout(_TOPICS, v) for v in range(MetadataResponse.MAX_VERSION + 1))


class TopicEntries:
    """Encoded ``MetadataResponseTopic`` entries, by topic name, then (entry layout, ops)."""

    __slots__ = ("_by_name", "_brokers")

    def __init__(self) -> None:
        # name -> (src, stamp, {(layout, ops): entry})
        self._by_name: dict[str, tuple[object, object, dict[tuple[object, int], PreEncoded]]] = {}
        self._brokers: dict[str, tuple[object, list[Any]]] = {}    # listener -> (key, brokers)

    def get(self, name: str, src: object, stamp: object, version: int, ops: int,
            build: Callable[[Any], Any], arg: Any) -> PreEncoded:
        """The entry of topic ``name`` at ``version``; ``build(arg)`` makes the (unencoded) entry
        when there is none for this ``src`` and ``stamp``."""
        c = self._by_name.get(name)
        if c is None or c[0] is not src or c[1] != stamp:
            c = self._by_name[name] = (src, stamp, {})
        key = (_LAYOUTS[version], ops)
        e = c[2].get(key)
        if e is None:
            e = c[2][key] = MetadataResponse.pre_encode(_TOPICS, version, build(arg))
        return e

    def prune(self, live: Collection[str]) -> None:
        """Forget the entries of topics not in ``live`` once there are more entries than topics
        (a topic deleted; a lookup never serves a deleted topic's entry, this only frees it)."""
        if len(self._by_name) > len(live):
            for n in [n for n in self._by_name if n not in live]:
                del self._by_name[n]

    def brokers(self, listener: str, key: object, build: Callable[[], list[Any]]) -> list[Any]:
        """The brokers list of ``listener``, built again only when ``key`` changes (==)."""
        b = self._brokers.get(listener)
        if b is None or b[0] != key:
            b = self._brokers[listener] = (key, build())
        return b[1]

    def __len__(self) -> int:
        return len(self._by_name)
