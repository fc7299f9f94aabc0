"""Counters of the log layer that the broker's metrics endpoint reads (``kafka_broker.metrics``):
``TopicStats`` per topic (the partition layer's append and fetch add to it) and ``Histogram``
(the flusher's fsync times, the server's request times).  Plain attributes: an update is an
addition on the thread that does the work; a scrape reads them from its own thread."""

from __future__ import annotations

import bisect

# Seconds; the last bucket is +Inf.
BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
           2.5, 5.0, 10.0, 30.0)


class Histogram:
    """Counts per bucket, a sum and a count: ``observe`` is one bisect and three additions."""

    __slots__ = ("counts", "sum", "count")

    def __init__(self) -> None:
        self.counts = [0] * (len(BUCKETS) + 1)
        self.sum = 0.0
        self.count = 0

    def observe(self, seconds: float) -> None:
        self.counts[bisect.bisect_left(BUCKETS, seconds)] += 1
        self.sum += seconds
        self.count += 1

    def cumulative(self) -> list[tuple[str, float]]:
        out: list[tuple[str, float]] = []
        acc = 0
        counts = list(self.counts)
        for le, c in zip((*map(str, BUCKETS), "+Inf"), counts, strict=True):
            acc += c
            out.append((le, acc))
        return out


class TopicStats:
    """Kafka's BrokerTopicMetrics of one topic (counts since the broker started)."""

    __slots__ = ("messages_in", "bytes_in", "bytes_out", "replication_bytes_in", "replication_bytes_out",
                 "produce_requests", "fetch_requests", "failed_produce", "failed_fetch")

    def __init__(self) -> None:
        self.messages_in = 0
        self.bytes_in = 0
        self.bytes_out = 0
        self.replication_bytes_in = 0
        self.replication_bytes_out = 0
        self.produce_requests = 0
        self.fetch_requests = 0
        self.failed_produce = 0
        self.failed_fetch = 0
