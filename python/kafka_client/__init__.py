"""kafka_client: kafka-core's own Kafka client (producer, consumer, admin).

Speaks the Kafka protocol (kafka_protocol codecs) to kafka-core's broker and
to Apache Kafka 4.x; record batches are built and parsed by kafka_core (C).

- ``AIOProducer`` / ``Producer``: batching, compression, Java-compatible
  partitioning, idempotence by default, pipelined requests, transactions
  (``transactional_id``; kafka_client.transaction).
- ``AIOConsumer`` / ``Consumer``: manual assignment or classic consumer
  groups, pipelined fetches, commits, seeks, offsets for times.
- ``AIOAdminClient`` / ``AdminClient``: topics, partitions, configs,
  cluster and consumer groups.
"""

from __future__ import annotations

from .admin import (
    AdminClient,
    AIOAdminClient,
    AlterConfigOp,
    ConfigResource,
    ConfigResourceType,
    NewTopic,
)
from .assignors import CooperativeStickyAssignor, RangeAssignor, RoundRobinAssignor
from .conn import BrokerConnection
from .consumer import AIOConsumer, Consumer, ConsumerRecord, OffsetAndTimestamp
from .errors import KafkaConnectionError, KafkaError, KafkaTimeoutError, for_code
from .group import ConsumerGroupMetadata, OffsetAndMetadata, RebalanceListener, TopicPartition
from .partitioner import murmur2, partition_for_key
from .producer import AIOProducer, Producer, RecordMetadata
from .settings import AdminSettings, ConsumerSettings, ProducerSettings

__all__ = [
    "AIOAdminClient", "AIOConsumer", "AIOProducer", "AdminClient", "AdminSettings", "AlterConfigOp",
    "BrokerConnection", "ConsumerGroupMetadata", "ConsumerSettings", "ProducerSettings",
    "ConfigResource", "ConfigResourceType", "Consumer", "ConsumerRecord", "CooperativeStickyAssignor",
    "KafkaConnectionError", "KafkaError", "KafkaTimeoutError", "NewTopic", "OffsetAndMetadata",
    "OffsetAndTimestamp", "Producer", "RangeAssignor", "RebalanceListener", "RecordMetadata",
    "RoundRobinAssignor", "TopicPartition", "for_code", "murmur2", "partition_for_key",
]
