"""A cluster broker's cached Metadata entries (python/kafka_broker/metadata_cache.py) follow a
leader change: with every version's entries warm on broker 3, broker 1 dies; once broker 3's v12
answer shows the new leaders and ISRs, every version v1..v13 shows the same (an entry left stale
for one layout would still name broker 1), and each response decodes and re-encodes to the very
bytes the broker sent (the spliced entries are well formed)."""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterator
from typing import Any

import kafka_protocol as kp
import pytest
from kafka_bench.kafka_core_cluster import KafkaCoreCluster
from kafka_protocol.messages import MetadataRequest, MetadataResponse

from .faultkit import wait_for as _wait

ck = pytest.importorskip("confluent_kafka")
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402

pytestmark = pytest.mark.interop

FAST = {"replica.lag.time.max.ms": "2000", "zookeeper.session.timeout.ms": "4000",
        "auto.leader.rebalance.enable": "false"}
TOPIC = "mc"
VERSIONS = range(1, MetadataResponse.MAX_VERSION + 1)


@pytest.fixture
def cluster(zk_chroot: str) -> Iterator[KafkaCoreCluster]:
    with KafkaCoreCluster(3, zk_chroot, settings=FAST) as c:
        c.wait_registered()
        yield c


def _metadata(port: int, v: int) -> dict[int, tuple[Any, ...]]:
    """Partition -> (leader, sorted ISR, leader epoch where v carries it) of TOPIC, from one
    Metadata for all topics at ``v``, after checking its bytes re-encode identically."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        req = MetadataRequest(topics=None, allow_auto_topic_creation=v < 4)     # (v0-3 cannot say False)
        s.sendall(kp.encode_request(3, v, 1, "mc-test", req))
        head = s.recv(4, socket.MSG_WAITALL)
        body = s.recv(struct.unpack(">i", head)[0], socket.MSG_WAITALL)
    _, pos = kp.decode_response_header(body, 3, v)
    resp, end = MetadataResponse.decode(body, v, pos)
    assert end == len(body)
    assert resp.encode(v) == bytes(body[pos:]), f"v{v}: the response does not re-encode to its bytes"
    t = next((t for t in resp.topics if t.name == TOPIC), None)
    if t is None:
        return {}
    return {p.partition_index: (p.leader_id, sorted(p.isr_nodes), p.leader_epoch if v >= 7 else None)
            for p in t.partitions}


def test_every_version_follows_a_leader_change(cluster: KafkaCoreCluster) -> None:
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap})
    admin.create_topics([NewTopic(TOPIC, 3, replica_assignment=[[1, 2, 3], [2, 3, 1], [3, 1, 2]])])[TOPIC].result(30)
    port = cluster.brokers[3].port
    _wait(lambda: {p: m[:2] for p, m in _metadata(port, 12).items()} ==
          {0: (1, [1, 2, 3]), 1: (2, [1, 2, 3]), 2: (3, [1, 2, 3])}, what="preferred leaders, full ISR")
    before = _metadata(port, 12)
    for v in VERSIONS:          # warm: every layout's entries cached on broker 3
        assert {p: m[:2] for p, m in _metadata(port, v).items()} == {p: m[:2] for p, m in before.items()}
    cluster.kill(1)
    _wait(lambda: all(m[0] != 1 and 1 not in m[1] for m in _metadata(port, 12).values()),
          what="broker 1 out: new leader of partition 0, ISRs without it")
    after = _metadata(port, 12)
    assert after[0][0] in (2, 3) and after[0][2] > before[0][2]      # a new leader at a new epoch
    for v in VERSIONS:
        got = _metadata(port, v)
        assert {p: m[:2] for p, m in got.items()} == {p: m[:2] for p, m in after.items()}, f"v{v} is stale"
        if v >= 7:
            assert got == after, f"v{v}: leader epochs are stale"
