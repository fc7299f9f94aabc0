"""Client quotas in the cluster (issue 14): AlterClientQuotas through any broker writes Kafka's
ZooKeeper layout (``/config/clients/<id>``, ``/config/users/<user>[/clients/<id>]``,
``/config/ips/<address>``, a ``/config/changes`` notification), every broker describes the same
quotas and throttles by them (byte rates, request_percentage, connection_creation_rate), a quota written into ZooKeeper as Kafka's own tools lay it out is honoured, and removing a
quota ends the throttling everywhere."""

from __future__ import annotations

import json
import shutil
import time
from typing import Any

import pytest
from broker.conftest import (  # tests/ is on sys.path (rootdir-relative packages)
    RawClient,
    make_batch,
    produce_req,
)
from kafka_bench.kafka_core_cluster import KafkaCoreCluster
from kafka_broker.cluster.quotas import entity_path, parse_entity_path, sanitize
from kafka_protocol.messages import REQUESTS
from kazoo.client import KazooClient

pytestmark = pytest.mark.interop      # a three-broker cluster (and Apache Kafka's kafka-configs)

A, D = REQUESTS[49], REQUESTS[48]


def _alter(c: RawClient, entity: list[tuple[str, str | None]], key: str, value: float | None) -> int:
    r = c.call(A(entries=[A.EntryData(entity=[A.EntityData(entity_type=t, entity_name=n) for t, n in entity],
                                      ops=[A.OpData(key=key, value=value or 0.0, remove=value is None)])],
                 validate_only=False), 1)
    return int(r.entries[0].error_code)


def _describe(c: RawClient) -> set[tuple[tuple[tuple[str, str | None], ...], tuple[tuple[str, float], ...]]]:
    r = c.call(D(components=[], strict=False), 1)
    return {(tuple(sorted((e.entity_type, e.entity_name) for e in en.entity)),
             tuple(sorted((v.key, v.value) for v in en.values))) for en in r.entries}


def _leaders(cluster: KafkaCoreCluster, topic: str, partitions: int) -> dict[int, int]:
    """broker id -> a partition it leads, once every partition has a leader."""
    M = REQUESTS[3]
    deadline = time.monotonic() + 20
    with RawClient(cluster.brokers[1].port) as c:
        while True:
            md = c.call(M(topics=[M.MetadataRequestTopic(name=topic)], allow_auto_topic_creation=False,
                          include_topic_authorized_operations=False), 12)
            parts = md.topics[0].partitions if md.topics and md.topics[0].error_code == 0 else []
            if len(parts) == partitions and all(p.leader_id >= 0 for p in parts):
                return {p.leader_id: p.partition_index for p in parts}
            assert time.monotonic() < deadline, "the topic's partitions have no leaders"
            time.sleep(0.1)


def _throttle_ms(port: int, topic: str, partition: int, client_id: str) -> int:
    """Produce 200 KB in one request as ``client_id``; the throttle_time_ms the broker answers."""
    with RawClient(port, client_id=client_id) as c:
        resp: Any = c.call(produce_req(topic, partition, make_batch([b"x" * 1000] * 200), acks=1), 9)
        assert resp.responses[0].partition_responses[0].error_code == 0
        return int(resp.throttle_time_ms)


def test_entity_paths_are_kafka_s() -> None:
    assert entity_path((("client-id", "app"),)) == "clients/app"
    assert entity_path((("client-id", None), ("user", "alice"))) == "users/alice/clients/<default>"
    assert entity_path((("user", "CN=a b*,O=x~"),)) == "users/CN%3Da%20b%2A%2CO%3Dx%7E"
    assert sanitize("a.b-c_d") == "a.b-c_d"
    assert entity_path((("ip", "127.0.0.2"),)) == "ips/127.0.0.2"
    assert entity_path((("ip", None),)) == "ips/<default>"
    for e in [(("user", None),), (("client-id", "x/y"),), (("client-id", "c"), ("user", "u@h")), (("ip", None),),
              (("ip", "::1"),)]:
        assert parse_entity_path(entity_path(e)) == e


def test_quotas_are_kept_in_zookeeper_and_hold_on_every_broker(cluster: KafkaCoreCluster,
                                                               zk_client: KazooClient) -> None:
    from kafka_client import AdminClient, NewTopic

    with AdminClient(cluster.bootstrap) as admin:
        admin.create_topics([NewTopic("q", 6, replication_factor=1)])
    leaders = _leaders(cluster, "q", 6)
    assert set(leaders) == {1, 2, 3}
    with RawClient(cluster.brokers[1].port) as c:
        assert _alter(c, [("client-id", "slow")], "producer_byte_rate", 10_000) == 0
        assert _alter(c, [("user", "alice"), ("client-id", None)], "consumer_byte_rate", 5_000) == 0
        assert _alter(c, [("client-id", "busy")], "request_percentage", 1) == 0
        assert _alter(c, [("ip", "127.0.0.2")], "connection_creation_rate", 2) == 0
    data, _ = zk_client.get("/config/clients/slow")
    assert json.loads(data) == {"version": 1, "config": {"producer_byte_rate": "10000"}}
    assert json.loads(zk_client.get("/config/clients/busy")[0])["config"] == {"request_percentage": "1"}
    assert json.loads(zk_client.get("/config/ips/127.0.0.2")[0])["config"] == {"connection_creation_rate": "2"}
    data, _ = zk_client.get("/config/users/alice/clients/<default>")
    assert json.loads(data)["config"] == {"consumer_byte_rate": "5000"}
    changes = [json.loads(zk_client.get(f"/config/changes/{k}")[0]) for k in zk_client.get_children("/config/changes")]
    assert {"version": 2, "entity_path": "clients/slow"} in changes
    want = {((("client-id", "slow"),), (("producer_byte_rate", 10000.0),)),
            ((("client-id", None), ("user", "alice")), (("consumer_byte_rate", 5000.0),)),
            ((("client-id", "busy"),), (("request_percentage", 1.0),)),
            ((("ip", "127.0.0.2"),), (("connection_creation_rate", 2.0),))}
    for b in cluster.brokers.values():
        with RawClient(b.port) as c:
            assert _describe(c) == want
    deadline = time.monotonic() + 10
    M = REQUESTS[3]
    for bid, b in cluster.brokers.items():      # request_percentage: Metadata requests until throttled
        with RawClient(b.port, client_id="busy") as c:
            while c.call(M(topics=[]), 12).throttle_time_ms == 0:
                assert time.monotonic() < deadline, f"broker {bid} does not throttle client busy's requests"
    # connection_creation_rate, on another broker: 2/s over the default 11 windows of 1 s admits
    # 2 * 10 at once (the rate is over at least 10 windows), then throttles
    served = 0
    for _ in range(26):
        try:
            with RawClient(cluster.brokers[3].port, client_id="conn", timeout=5, source="127.0.0.2") as c:
                c.call(M(topics=[]), 12)
                served += 1
        except (ConnectionError, OSError):
            pass
    assert 20 <= served <= 23, f"broker 3 served {served} of 26 connections from 127.0.0.2 at 2/s"
    deadline = time.monotonic() + 10      # each broker applies the change when its notification arrives
    for bid, part in sorted(leaders.items()):
        while _throttle_ms(cluster.brokers[bid].port, "q", part, "slow") == 0:
            assert time.monotonic() < deadline, f"broker {bid} does not throttle client slow"
        assert _throttle_ms(cluster.brokers[bid].port, "q", part, "fast") == 0      # other clients are not

    # written into ZooKeeper the way Kafka's tools write it: honoured on every broker
    zk_client.create("/config/clients/<default>", json.dumps(
        {"version": 1, "config": {"producer_byte_rate": "10000"}}).encode(), makepath=True)
    zk_client.create("/config/changes/config_change_", json.dumps(
        {"version": 2, "entity_path": "clients/<default>"}).encode(), sequence=True)
    deadline = time.monotonic() + 10
    for bid, part in sorted(leaders.items()):
        while _throttle_ms(cluster.brokers[bid].port, "q", part, f"any-{bid}") == 0:
            assert time.monotonic() < deadline, f"broker {bid} ignores the default quota written in ZooKeeper"

    with RawClient(cluster.brokers[2].port) as c:      # removed through another broker
        assert _alter(c, [("client-id", "slow")], "producer_byte_rate", None) == 0
        assert _alter(c, [("client-id", None)], "producer_byte_rate", None) == 0
    assert not zk_client.exists("/config/clients/slow") or \
        json.loads(zk_client.get("/config/clients/slow")[0])["config"] == {}
    deadline = time.monotonic() + 20
    for bid, part in sorted(leaders.items()):
        while _throttle_ms(cluster.brokers[bid].port, "q", part, "slow") != 0:
            assert time.monotonic() < deadline, f"broker {bid} still throttles client slow"


@pytest.mark.skipif(shutil.which("java") is None, reason="java is installed by ./dev test")
def test_kafka_configs_sets_a_user_quota_that_another_broker_describes(cluster: KafkaCoreCluster,
                                                                     zk_client: KazooClient) -> None:
    from kafka_bench import apache_kafka as ak

    r = ak.java_main(ak.CONFIGS, ["--bootstrap-server", cluster.brokers[1].bootstrap, "--alter", "--entity-type",
                                  "users", "--entity-name", "alice", "--entity-type", "clients", "--entity-name",
                                  "etl", "--add-config", "producer_byte_rate=1048576"], timeout=90, check=False)
    assert r.returncode == 0, (r.stdout + r.stderr).decode()[-3000:]
    assert json.loads(zk_client.get("/config/users/alice/clients/etl")[0])["config"] == \
        {"producer_byte_rate": "1048576"}
    r = ak.java_main(ak.CONFIGS, ["--bootstrap-server", cluster.brokers[3].bootstrap, "--describe", "--entity-type",
                                  "users", "--entity-name", "alice", "--entity-type", "clients", "--entity-name",
                                  "etl"], timeout=90, check=False)
    assert "producer_byte_rate=1048576.0" in r.stdout.decode(), (r.stdout + r.stderr).decode()[-3000:]
