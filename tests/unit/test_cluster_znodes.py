"""Znode values in Kafka's formats (ZkData.scala), as a Kafka 3.9 broker writes them."""

from __future__ import annotations

import json
import uuid

from kafka_broker.cluster import zk as Z


def test_broker_registration_round_trips_kafka_v5() -> None:
    info = Z.BrokerInfo(2, {"PLAINTEXT": ("127.0.0.1", 9093)}, {"PLAINTEXT": "PLAINTEXT"}, "r1")
    d = json.loads(info.encode())
    assert d["version"] == 5 and d["endpoints"] == ["PLAINTEXT://127.0.0.1:9093"] and d["rack"] == "r1"
    assert (d["host"], d["port"]) == ("127.0.0.1", 9093)
    back = Z.BrokerInfo.decode(2, info.encode(), 77)
    assert back.endpoints == info.endpoints and back.rack == "r1" and back.epoch == 77
    # What Kafka 3.9 writes (no rack), read back
    kafka = (b'{"features":{},"listener_security_protocol_map":{"PLAINTEXT":"PLAINTEXT"},'
             b'"endpoints":["PLAINTEXT://localhost:9092"],"jmx_port":-1,"port":9092,"host":"localhost",'
             b'"version":5,"timestamp":"1700000000000"}')
    assert Z.BrokerInfo.decode(1, kafka).endpoints == {"PLAINTEXT": ("localhost", 9092)}


def test_topic_assignment_and_kafka_uuid() -> None:
    tid = uuid.UUID("0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0")
    raw = Z.TopicAssignment(tid, {0: [1, 2, 3], 1: [2, 3, 1]}).encode()
    d = json.loads(raw)
    assert d["version"] == 3 and d["partitions"] == {"0": [1, 2, 3], "1": [2, 3, 1]}
    assert d["topic_id"] == Z.kafka_uuid(tid) and "=" not in d["topic_id"] and len(d["topic_id"]) == 22
    assert Z.TopicAssignment.decode(raw).topic_id == tid


def test_partition_state_and_controller() -> None:
    raw = Z.LeaderIsr(3, 7, [3, 1], 2).encode()
    assert json.loads(raw) == {"controller_epoch": 2, "leader": 3, "version": 1, "leader_epoch": 7, "isr": [3, 1]}
    st = Z.LeaderIsr.decode(raw, 5)
    assert (st.leader, st.leader_epoch, st.isr, st.zk_version) == (3, 7, [3, 1], 5)
    assert Z.decode_controller(Z.encode_controller(4)) == 4
    assert Z.decode_controller(b'{"version":2,"brokerid":1,"timestamp":"1","kraftControllerEpoch":-1}') == 1
    assert Z.split_connect("a:1,b:2/kafka/x") == ("a:1,b:2", "/kafka/x")
    assert Z.split_connect("a:1") == ("a:1", "")
