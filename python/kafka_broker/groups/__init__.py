"""Consumer-group coordinator of the kafka-core broker (classic protocol and KIP-848).

The broker wires it in ``kafka_broker/group_apis.py`` (``__consumer_offsets`` as a compacted
topic of the broker's storage, the handlers and advertised versions below); the log cleaner
that compacts it is ``kafka_broker/cleaner.py``.

Wiring (the server does this once at start-up)::

    from kafka_broker.groups import GroupCoordinator, LogBackend, NodeInfo, OffsetsStore, TopicInfo

    backend = LogBackend(log_dir, config["offsets.topic.num.partitions"],
                         logs=None or storage.log_for("__consumer_offsets"),   # partition -> kafka_core.Log
                         append=server_append)      # async (partition, batch: bytearray) -> None
    store = OffsetsStore(backend)
    coord = GroupCoordinator(store, config=config,
                             node=lambda: NodeInfo(node_id, host, port),      # FindCoordinator's answer
                             topic_info=lambda name: TopicInfo(name, topic_id, n_partitions) or None,
                             topic_name=lambda topic_id: name or None,        # OffsetCommit/Fetch v10, KIP-848
                             all_topics=lambda: names)                        # KIP-848 regex subscriptions
    await coord.start()       # scans __consumer_offsets, rebuilds groups; until then: COORDINATOR_LOAD_IN_PROGRESS
    ...
    coord.close()

``server_append`` must append in call order and return only once the batch
is durable per the broker's flush policy (acks=all semantics: wait for the
group-commit fsync when ``log.flush.interval.messages`` asks for it).  Without
it, ``LogBackend`` appends to the Log itself and fsyncs in a worker thread.
Batches are uncompressed RecordBatch v2 with offsets to assign.

Per request: ``response = await coord.<method>(request, api_version, ctx)``
where ``ctx`` has ``client_id`` and ``client_host`` (``RequestContext``); the
response object is encoded at the same version.  JoinGroup and SyncGroup may
park for up to the rebalance timeout: run each request in its own task so
the connection keeps reading (responses still leave in request order).

| key | API | coroutine | advertise (Kafka 4.0) |
|---|---|---|---|
| 8 | OffsetCommit | ``offset_commit`` | 2-9 (v10, topic ids, also works) |
| 9 | OffsetFetch | ``offset_fetch`` | 1-9 (v10 too) |
| 10 | FindCoordinator | ``find_coordinator`` | 0-6 (transactional keys: COORDINATOR_NOT_AVAILABLE unless ``transactions=True``) |
| 11 | JoinGroup | ``join_group`` | 0-9 |
| 12 | Heartbeat | ``heartbeat`` | 0-4 |
| 13 | LeaveGroup | ``leave_group`` | 0-5 |
| 14 | SyncGroup | ``sync_group`` | 0-5 |
| 15 | DescribeGroups | ``describe_groups`` | 0-6 |
| 16 | ListGroups | ``list_groups`` | 0-5 |
| 28 | TxnOffsetCommit | ``txn_offset_commit`` | 0-5 (settled by ``complete_txn`` when the marker is in the log) |
| 42 | DeleteGroups | ``delete_groups`` | 0-2 |
| 47 | OffsetDelete | ``offset_delete`` | 0 |
| 68 | ConsumerGroupHeartbeat | ``consumer_group_heartbeat`` | 0-1 |
| 69 | ConsumerGroupDescribe | ``consumer_group_describe`` | 0 (the schema we have) |

Checked end to end (a throwaway harness adding these handlers to ``Broker.apis``): kafka-python and
confluent-kafka (librdkafka 2.16) consumer groups share partitions, commit, and find their offsets
after the broker is killed with -9 and restarted; librdkafka with ``group.protocol=consumer`` (KIP-848)
gets server-side assignments.

Operators: ``coord.list_group_summaries()`` and ``coord.describe_offsets(group)``
(committed offset per partition; the CLI computes lag).  Config keys read
(``config.get``; Kafka names and defaults): group.initial.rebalance.delay.ms,
group.min/max.session.timeout.ms, group.max.size, offsets.retention.minutes,
offsets.retention.check.interval.ms, offset.metadata.max.bytes,
group.consumer.heartbeat.interval.ms, group.consumer.session.timeout.ms.
"""

from .coordinator import GroupCoordinator, NodeInfo, RequestContext, TopicInfo
from .offsets_store import LogBackend, MemoryBackend, OffsetsStore

__all__ = ["GroupCoordinator", "LogBackend", "MemoryBackend", "NodeInfo", "OffsetsStore", "RequestContext",
           "TopicInfo"]
