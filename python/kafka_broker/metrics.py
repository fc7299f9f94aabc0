"""The broker's metrics, served to Prometheus (``metrics.listener=http://HOST:PORT``).

The hot paths only add to plain counters: ``Topic.stats`` (``TopicStats``: per topic, by the
partition layer's append and by fetch), ``RequestMetrics`` (per API: count and a latency
histogram, by the server when it has the response) and the flusher's ``Histogram``.  A scrape
(``prometheus_client``'s HTTP server, on its own thread) reads them and the state the broker
already keeps (connections, parked fetches, groups, partitions and their ISR) in
``BrokerCollector.collect``: nothing is computed per record, and per request only a few
additions.

Names follow what Apache Kafka's metrics become under the Prometheus JMX exporter (its MBean
``kafka.server:type=BrokerTopicMetrics,name=BytesInPerSec,topic=T`` is
``kafka_server_brokertopicmetrics_bytesin_total{topic="T"}``), so dashboards built for Kafka find
them; ``process_*`` (RSS, CPU, open files) come from ``prometheus_client``.
"""

from __future__ import annotations

import logging
import time
import urllib.parse
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from .log.stats import Histogram

if TYPE_CHECKING:
    from .broker import Broker

log = logging.getLogger("kafka_broker.metrics")

class RequestMetrics:
    """Per API key: requests answered and the time from the request's frame to its response."""

    def __init__(self) -> None:
        self.by_api: dict[int, Histogram] = {}

    def done(self, api_key: int, started: float) -> None:
        h = self.by_api.get(api_key)
        if h is None:
            h = self.by_api[api_key] = Histogram()
        h.observe(time.perf_counter() - started)


def parse_listener(value: str) -> tuple[str, int] | None:
    """``metrics.listener``: "" (off) or ``http://HOST:PORT``; raises ValueError otherwise."""
    if not value:
        return None
    u = urllib.parse.urlsplit(value)
    if u.scheme != "http" or not u.hostname or u.port is None or u.path not in ("", "/"):
        raise ValueError(f"metrics.listener must be http://HOST:PORT (or empty), not {value!r}")
    return u.hostname, u.port


class BrokerCollector:
    """A ``prometheus_client`` collector over one broker's counters and state."""

    def __init__(self, broker: Broker) -> None:
        self.b = broker

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

        b = self.b
        topics = list(b.storage.topics.values())
        fams = {
            "messagesin": ("messages appended by producers", "messages_in"),
            "bytesin": ("bytes appended by producers", "bytes_in"),
            "bytesout": ("bytes sent to consumers", "bytes_out"),
            "replicationbytesin": ("bytes appended from leaders (followers)", "replication_bytes_in"),
            "replicationbytesout": ("bytes sent to followers", "replication_bytes_out"),
            "totalproducerequests": ("produce requests per topic", "produce_requests"),
            "totalfetchrequests": ("fetch requests per topic", "fetch_requests"),
            "failedproducerequests": ("produce partitions answered with an error", "failed_produce"),
            "failedfetchrequests": ("fetch partitions answered with an error", "failed_fetch"),
        }
        for short, (doc, attr) in fams.items():
            per_topic = CounterMetricFamily(f"kafka_server_brokertopicmetrics_{short}", doc, labels=["topic"])
            total = 0
            for t in topics:
                v = getattr(t.stats, attr)
                total += v
                per_topic.add_metric([t.name], v)
            yield per_topic
            all_topics = CounterMetricFamily(f"kafka_server_brokertopicmetrics_{short}_all", doc + ", all topics")
            all_topics.add_metric([], total)
            yield all_topics

        from kafka_protocol import API_NAMES

        req_total = CounterMetricFamily("kafka_network_requestmetrics_requests", "requests answered",
                                        labels=["request"])
        req_time = HistogramMetricFamily("kafka_network_requestmetrics_totaltime_seconds",
                                         "time from a request's frame to its response", labels=["request"])
        by_api = b.server.metrics.by_api if b.server is not None else {}
        for key, h in sorted(list(by_api.items())):
            name = str(API_NAMES.get(key, key))
            req_total.add_metric([name], h.count)
            req_time.add_metric([name], h.cumulative(), h.sum)
        yield req_total
        yield req_time

        flush = HistogramMetricFamily("kafka_log_logflushstats_logflush_seconds", "time of one log fsync")
        fh = b.storage.flusher.flush_times
        flush.add_metric([], fh.cumulative(), fh.sum)
        yield flush

        g = GaugeMetricFamily("kafka_server_socketservermetrics_connection_count", "open client connections")
        g.add_metric([], len(b.server.connections) if b.server is not None else 0)
        yield g

        purg = GaugeMetricFamily("kafka_server_delayedoperationpurgatory_purgatorysize",
                                 "requests waiting: parked fetches, acks=all produces and DeleteRecords",
                                 labels=["delayedOperation"])
        hosted = [p for t in topics for p in t.hosted()]
        waiting_produce = sum(len(p.replication.acks_waiting) for p in hosted
                              if p.replication is not None and p.replication.is_leader)
        purg.add_metric(["Fetch"], b.fetch_stats.parked_now)
        purg.add_metric(["Produce"], waiting_produce)
        yield purg

        parts = GaugeMetricFamily("kafka_server_replicamanager_partitioncount", "partitions hosted here")
        parts.add_metric([], len(hosted))
        yield parts
        leaders = GaugeMetricFamily("kafka_server_replicamanager_leadercount", "partitions led here")
        under = GaugeMetricFamily("kafka_server_replicamanager_underreplicatedpartitions",
                                  "partitions led here whose ISR is smaller than their replicas")
        led = [p for p in hosted if p.replication is None or p.replication.is_leader]
        leaders.add_metric([], len(led))
        under.add_metric([], sum(1 for p in led if p.replication is not None
                                 and len(p.replication.isr) < len(p.replication.replicas)))
        yield leaders
        yield under
        offline = GaugeMetricFamily("kafka_controller_kafkacontroller_offlinepartitionscount",
                                    "partitions without a leader (as this broker's metadata says)")
        offline.add_metric([], b.offline_partitions())
        yield offline

        coord = b.groups.coord if b.groups is not None else None
        ng = GaugeMetricFamily("kafka_coordinator_group_groupmetadatamanager_numgroups",
                               "groups this broker coordinates")
        ng.add_metric([], len(coord.groups) if coord is not None else 0)
        yield ng
        rb = CounterMetricFamily("kafka_coordinator_group_groupmetadatamanager_rebalances",
                                 "classic generations started and KIP-848 group epochs bumped")
        rb.add_metric([], coord.rebalances if coord is not None else 0)
        yield rb


class MetricsServer:
    """The Prometheus endpoint: ``prometheus_client``'s HTTP server with the broker's collector
    (and its process collector) in a registry of its own."""

    def __init__(self, broker: Broker, host: str, port: int) -> None:
        self.broker, self.host, self.port = broker, host, port
        self._server: Any = None
        self._thread: Any = None

    def start(self) -> tuple[str, int]:
        from prometheus_client import CollectorRegistry, ProcessCollector, start_http_server

        reg = CollectorRegistry()
        reg.register(BrokerCollector(self.broker))
        ProcessCollector(registry=reg)
        self._server, self._thread = start_http_server(self.port, addr=self.host, registry=reg)
        host, port = self._server.server_address[:2]
        log.info("metrics on http://%s:%d/metrics", host, port)
        return host, port

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
