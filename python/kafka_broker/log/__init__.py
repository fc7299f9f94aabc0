"""The partition layer: every append goes through ``Partition.append``.

- ``partition.py``: ``Partition`` (log, producer state, fetch waiters) and its ``append``;
- ``validate.py``: what a client's batch must pass (Kafka's LogValidator);
- ``producer_state.py``: idempotent-producer bookkeeping;
- ``flusher.py``: the fsync thread (group commit, ``flush.ms``);
- ``dir_failure.py``: Kafka's LogDirFailureChannel (a disk failure takes its log dir offline);
- ``fetch_session.py``: KIP-227 fetch sessions;
- ``topics.py``: ``Topic``, topic names and ids, ``INTERNAL_TOPICS``.

``kafka_broker.storage.Storage`` is the registry that opens, creates and deletes them on disk.
Replication (leader append, follower append, high watermark) belongs here next.
"""

from __future__ import annotations

from .clock import now_ms
from .partition import AppendOrigin, AppendResult, Partition
from .topics import INTERNAL_TOPICS, OFFSETS_TOPIC, TRANSACTION_STATE_TOPIC, Topic, topic_name_error
from .validate import AppendError, AppendFailed

__all__ = ["INTERNAL_TOPICS", "OFFSETS_TOPIC", "TRANSACTION_STATE_TOPIC", "AppendError", "AppendFailed", "AppendOrigin", "AppendResult", "Partition",
           "Topic", "now_ms", "topic_name_error"]
