"""Partitioners compatible with Apache Kafka's Java client.

Keyed records: ``toPositive(murmur2(key)) % numPartitions`` over all the
topic's partitions (``BuiltInPartitioner.partitionForKey``), so the same key
lands on the same partition as with the Java client or librdkafka's
``murmur2_random``.  Records without a key use the sticky partitioner
(KIP-480/KIP-794): stay on one partition until about ``batch.size`` bytes
were sent to it, then pick another at random among partitions with a leader.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

__all__ = ["murmur2", "to_positive", "partition_for_key", "StickyPartitioner"]

_M = 0x5BD1E995
_SEED = 0x9747B28C
_MASK = 0xFFFFFFFF


def murmur2(data: bytes | bytearray | memoryview) -> int:
    """Kafka's ``Utils.murmur2``: 32-bit MurmurHash2, seed 0x9747b28c, as a signed int32."""
    data = bytes(data)
    length = len(data)
    h = (_SEED ^ length) & _MASK
    n4 = length & ~3
    for i in range(0, n4, 4):
        k = data[i] | (data[i + 1] << 8) | (data[i + 2] << 16) | (data[i + 3] << 24)
        k = (k * _M) & _MASK
        k ^= k >> 24
        k = (k * _M) & _MASK
        h = (h * _M) & _MASK
        h ^= k
    rem = length & 3
    if rem == 3:
        h ^= data[n4 + 2] << 16
    if rem >= 2:
        h ^= data[n4 + 1] << 8
    if rem >= 1:
        h ^= data[n4]
        h = (h * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    h ^= h >> 15
    return h - (1 << 32) if h & 0x80000000 else h


def to_positive(n: int) -> int:
    """Kafka's ``Utils.toPositive``: clear the sign bit (not abs())."""
    return n & 0x7FFFFFFF


def partition_for_key(key: bytes | bytearray | memoryview, num_partitions: int) -> int:
    return to_positive(murmur2(key)) % num_partitions


class StickyPartitioner:
    """Partition choice for records without a key, per topic."""

    __slots__ = ("batch_size", "_current", "_rng")

    def __init__(self, batch_size: int = 16384, seed: int | None = None) -> None:
        self.batch_size = max(1, batch_size)
        self._current: dict[str, list[int]] = {}  # topic -> [partition, bytes produced to it]
        self._rng = random.Random(seed)

    def partition(self, topic: str, num_partitions: int, available: Sequence[int] | None = None) -> int:
        cur = self._current.get(topic)
        if cur is not None and cur[0] < num_partitions:
            return cur[0]
        return self._next(topic, num_partitions, available, -1)

    def on_append(self, topic: str, partition: int, size: int, num_partitions: int,
                  available: Sequence[int] | None = None) -> None:
        """Account ``size`` bytes to the sticky partition; switch once a batch's worth went there."""
        cur = self._current.get(topic)
        if cur is None or cur[0] != partition:
            return
        cur[1] += size
        if cur[1] >= self.batch_size:
            self._next(topic, num_partitions, available, partition)

    def _next(self, topic: str, num_partitions: int, available: Sequence[int] | None, prev: int) -> int:
        choices = list(available) if available else list(range(num_partitions))
        if len(choices) > 1 and prev in choices:
            choices.remove(prev)
        p = choices[self._rng.randrange(len(choices))]
        self._current[topic] = [p, 0]
        return p
