"""The Prometheus endpoint (``metrics.listener``, issue 15): scraped and parsed with
``prometheus_client``'s own parser, Kafka's broker metrics move under a real load of produce,
fetch and a consumer group."""

from __future__ import annotations

import urllib.request
import uuid

import pytest
from kafka_bench.apache_kafka import free_port
from kafka_bench.kafka_core_broker import KafkaCoreBroker
from kafka_broker.config import BrokerConfig, ConfigError
from prometheus_client.parser import text_string_to_metric_families


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Sample name and labels -> value."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        text = r.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(text) for s in fam.samples}


def test_metrics_move_under_load(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from kafka_client import AdminClient, Consumer, NewTopic, Producer

    mport = free_port()
    with KafkaCoreBroker(data_dir=tmp_path, settings={"metrics.listener": f"http://127.0.0.1:{mport}",
                                                      "group.initial.rebalance.delay.ms": "0"}) as b:
        before = scrape(mport)
        assert before[("process_resident_memory_bytes", ())] > 10 << 20
        topic = f"m-{uuid.uuid4().hex[:6]}"
        with AdminClient(b.bootstrap) as admin:
            admin.create_topics([NewTopic(topic, 2, 1)], raise_on_error=True)
        with Producer(b.bootstrap, linger_ms=2) as p:
            for i in range(1000):
                p.send(topic, b"x" * 100, partition=i % 2)
            p.flush()
        group = f"g-{uuid.uuid4().hex[:6]}"
        with Consumer(bootstrap_servers=b.bootstrap, group_id=group, auto_offset_reset="earliest",
                      enable_auto_commit=False) as c:
            c.subscribe([topic])
            got = 0
            for _ in range(100):
                got += sum(len(v) for v in c.poll(1.0).values())
                if got >= 1000:
                    break
            assert got == 1000
            c.commit()
            after = scrape(mport)
            assert after[("kafka_server_socketservermetrics_connection_count", ())] >= 2
            assert after[("kafka_coordinator_group_groupmetadatamanager_numgroups", ())] >= 1
            assert after[("kafka_coordinator_group_groupmetadatamanager_rebalances_total", ())] >= 1
        t = (("topic", topic),)
        assert after[("kafka_server_brokertopicmetrics_messagesin_total", t)] == 1000
        assert after[("kafka_server_brokertopicmetrics_bytesin_total", t)] > 100_000
        assert after[("kafka_server_brokertopicmetrics_bytesout_total", t)] > 100_000
        assert after[("kafka_server_brokertopicmetrics_totalproducerequests_total", t)] > 0
        assert after[("kafka_server_brokertopicmetrics_totalfetchrequests_total", t)] > 0
        assert after[("kafka_server_brokertopicmetrics_messagesin_all_total", ())] >= 1000
        produce = (("request", "Produce"),)
        n = after[("kafka_network_requestmetrics_requests_total", produce)]
        assert n > 0 and after[("kafka_network_requestmetrics_totaltime_seconds_count", produce)] == n
        assert after[("kafka_network_requestmetrics_totaltime_seconds_bucket", (("le", "+Inf"), *produce))] == n
        assert after[("kafka_network_requestmetrics_totaltime_seconds_sum", produce)] > 0
        assert after[("kafka_network_requestmetrics_requests_total", (("request", "Fetch"),))] > 0
        assert after[("kafka_network_requestmetrics_requests_total", (("request", "OffsetCommit"),))] >= 1
        assert after[("kafka_server_replicamanager_partitioncount", ())] >= 2
        assert after[("kafka_server_replicamanager_underreplicatedpartitions", ())] == 0
        assert after[("kafka_controller_kafkacontroller_offlinepartitionscount", ())] == 0
        assert ("kafka_server_delayedoperationpurgatory_purgatorysize", (("delayedOperation", "Fetch"),)) in after
        # an fsync per acknowledged write is not the default: the flush histogram exists, maybe empty
        assert ("kafka_log_logflushstats_logflush_seconds_count", ()) in after
        # a produce to the topic moves its counter again
        with Producer(b.bootstrap, linger_ms=0) as p:
            p.send(topic, b"y", partition=0).result(10)
        again = scrape(mport)
        assert again[("kafka_server_brokertopicmetrics_messagesin_total", t)] == 1001


@pytest.mark.parametrize("value", ["127.0.0.1:9308", "https://127.0.0.1:9308", "http://127.0.0.1",
                                   "http://127.0.0.1:9308/metrics"])
def test_a_bad_metrics_listener_is_refused(value: str) -> None:
    with pytest.raises(ConfigError) as ei:
        BrokerConfig({"metrics.listener": value})
    assert "metrics.listener" in str(ei.value) and "http://HOST:PORT" in str(ei.value)


def test_log_format_json(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """log.format=json: every log line of a broker's run is one JSON object."""
    import json
    import re

    b = KafkaCoreBroker(data_dir=tmp_path, settings={"log.format": "json"})
    b.start()
    b.stop()
    lines = [ln for ln in b.log_text().splitlines() if ln.strip()]
    assert len(lines) >= 3, lines
    assert not [ln for ln in lines if re.match(r"\d{4}-\d\d-\d\d ", ln)], "a text log line"
    recs = [json.loads(ln) for ln in lines]
    assert all({"time", "level", "logger", "message"} <= r.keys() for r in recs)
    assert any("listening" in r["message"] or "long poll" in r["message"] for r in recs), recs[-3:]


def test_log_format_is_checked() -> None:
    with pytest.raises(ConfigError, match="log.format"):
        BrokerConfig({"log.format": "xml"})
