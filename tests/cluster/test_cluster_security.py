"""The cluster over TLS and SASL (issue 14): brokers that reach each other through a SASL_SSL
inter-broker listener (TLS verified against the cluster's CA, SASL/PLAIN as the broker user, a
super user under ACLs) replicate and elect as over PLAINTEXT; SCRAM credentials kept in ZooKeeper
(``/config/users``) let a user created through one broker log in on every other; ACLs created
through one broker (``/kafka-acl``) hold on all of them."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kafka_bench.kafka_core_cluster import KafkaCoreCluster
from kafka_bench.tlskit import Pki, make_pki
from kafka_broker.testing import free_port
from kazoo.client import KazooClient

pytestmark = pytest.mark.interop

JAAS = ('org.apache.kafka.common.security.plain.PlainLoginModule required username="broker" '
        'password="broker-pw" user_broker="broker-pw" user_app="app-pw";')


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return make_pki(tmp_path / "pki")


@pytest.fixture
def secure_cluster(zk_chroot: str, pki: Pki) -> Iterator[KafkaCoreCluster]:
    settings = {
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,INTERNAL:SASL_SSL",
        "inter.broker.listener.name": "INTERNAL",
        "sasl.enabled.mechanisms": "PLAIN,SCRAM-SHA-512",
        "sasl.mechanism.inter.broker.protocol": "PLAIN",
        "listener.name.internal.plain.sasl.jaas.config": JAAS,
        "ssl.keystore.type": "PEM", "ssl.keystore.location": str(pki.server_pem),
        "ssl.truststore.type": "PEM", "ssl.truststore.location": str(pki.ca),
        # ACLs on: the brokers (User:broker over SASL) and PLAINTEXT clients (the tests' admin) are super users
        "authorizer.class.name": "kafka.security.authorizer.AclAuthorizer",
        "super.users": "User:broker;User:ANONYMOUS",
    }
    c = KafkaCoreCluster(3, zk_chroot, settings=settings)
    for b in c.brokers.values():
        b.internal_port = free_port()  # type: ignore[attr-defined]
        b.settings["listeners"] = f"PLAINTEXT://127.0.0.1:{b.port},INTERNAL://127.0.0.1:{b.internal_port}"  # type: ignore[attr-defined]
    with c:                 # starts the brokers
        c.wait_registered()
        yield c


def test_replication_and_failover_over_a_sasl_ssl_inter_broker_listener(secure_cluster: KafkaCoreCluster,
                                                                         zk_chroot: str) -> None:
    ck = pytest.importorskip("confluent_kafka")
    from confluent_kafka.admin import AdminClient, NewTopic

    c = secure_cluster
    admin = AdminClient({"bootstrap.servers": c.bootstrap})
    topic = f"sec-{uuid.uuid4().hex[:6]}"
    for f in admin.create_topics([NewTopic(topic, 3, 3, config={"min.insync.replicas": "2"})]).values():
        f.result(30)
    # every broker registered its INTERNAL endpoint, the one the others connect to
    zk = KazooClient(zk_chroot)
    zk.start(10)
    try:
        import json
        for i, b in c.brokers.items():
            eps = json.loads(zk.get(f"/brokers/ids/{i}")[0])["endpoints"]
            assert f"INTERNAL://127.0.0.1:{b.internal_port}" in eps  # type: ignore[attr-defined]
    finally:
        zk.stop()
    p = ck.Producer({"bootstrap.servers": c.bootstrap, "acks": "all", "enable.idempotence": True})
    for i in range(3000):
        p.produce(topic, f"v{i}".encode(), partition=i % 3)
    assert p.flush(60) == 0     # acks=all with min.insync.replicas=2: followers fetched over SASL_SSL

    def full_isr() -> bool:
        md = admin.list_topics(topic, timeout=10).topics[topic]
        return all(len(pm.isrs) == 3 for pm in md.partitions.values())
    deadline = time.monotonic() + 30
    while not full_isr():
        assert time.monotonic() < deadline, "followers did not join the ISR over SASL_SSL"
        time.sleep(0.3)
    leader = admin.list_topics(topic, timeout=10).topics[topic].partitions[0].leader
    c.kill(leader)
    p2 = ck.Producer({"bootstrap.servers": ",".join(b.bootstrap for i, b in c.brokers.items() if i != leader),
                      "acks": "all"})
    for i in range(300):
        p2.produce(topic, f"after-{i}".encode(), partition=0)
    assert p2.flush(60) == 0    # a new leader, elected and replicated to over SASL_SSL
    # (no group: __consumer_offsets, first needed now, cannot be created with RF=3 on two brokers, as in Kafka)
    cons = ck.Consumer({"bootstrap.servers": ",".join(b.bootstrap for i, b in c.brokers.items() if i != leader),
                        "group.id": f"g-{topic}", "enable.auto.commit": False})
    cons.assign([ck.TopicPartition(topic, p, 0) for p in range(3)])
    got = 0
    deadline = time.monotonic() + 60
    while got < 3300 and time.monotonic() < deadline:
        m = cons.poll(0.5)
        if m is not None and m.error() is None:
            got += 1
    cons.close()
    assert got == 3300


def test_scram_credentials_in_zookeeper_hold_on_every_broker(secure_cluster: KafkaCoreCluster, pki: Pki) -> None:
    ck = pytest.importorskip("confluent_kafka")
    from confluent_kafka.admin import (
        AdminClient,
        ScramCredentialInfo,
        ScramMechanism,
        UserScramCredentialUpsertion,
    )

    c = secure_cluster
    b1 = c.brokers[1]
    admin = AdminClient({"bootstrap.servers": b1.bootstrap})
    for f in admin.alter_user_scram_credentials([UserScramCredentialUpsertion(
            "zoe", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 4096), b"zoe-pw")]).values():
        f.result(30)
    topic = f"scram-{uuid.uuid4().hex[:6]}"
    from confluent_kafka.admin import (
        AclBinding,
        AclOperation,
        AclPermissionType,
        ResourcePatternType,
        ResourceType,
    )
    for f in admin.create_acls([AclBinding(ResourceType.TOPIC, "scram-", ResourcePatternType.PREFIXED, "User:zoe",
                                           "*", AclOperation.ALL, AclPermissionType.ALLOW)]).values():
        f.result(30)
    from confluent_kafka.admin import NewTopic
    for f in admin.create_topics([NewTopic(topic, 1, 3)]).values():
        f.result(30)
    for i, b in c.brokers.items():     # the user logs in on every broker's SASL_SSL listener
        acked: list[bool] = []
        p = ck.Producer({"bootstrap.servers": f"127.0.0.1:{b.internal_port}", "security.protocol": "SASL_SSL",  # type: ignore[attr-defined]
                         "ssl.ca.location": str(pki.ca), "sasl.mechanism": "SCRAM-SHA-512",
                         "sasl.username": "zoe", "sasl.password": "zoe-pw", "message.timeout.ms": 20000})
        p.produce(topic, f"from-{i}".encode(), on_delivery=lambda err, _m, acked=acked: acked.append(err is None))
        p.flush(30)
        assert acked == [True], f"SCRAM login through broker {i} failed"
    desc = admin.describe_user_scram_credentials(["zoe"])["zoe"].result()
    assert [(x.mechanism.name, x.iterations) for x in desc.scram_credential_infos] == [("SCRAM_SHA_512", 4096)]


def test_acls_in_zookeeper_hold_on_every_broker(secure_cluster: KafkaCoreCluster, pki: Pki, zk_chroot: str) -> None:
    ck = pytest.importorskip("confluent_kafka")
    from confluent_kafka.admin import (
        AclBinding,
        AclOperation,
        AclPermissionType,
        AdminClient,
        NewTopic,
        ResourcePatternType,
        ResourceType,
    )

    c = secure_cluster
    admin = AdminClient({"bootstrap.servers": c.brokers[1].bootstrap})
    ok, no = f"ok-{uuid.uuid4().hex[:6]}", f"no-{uuid.uuid4().hex[:6]}"
    for f in admin.create_topics([NewTopic(ok, 1, 3), NewTopic(no, 1, 3)]).values():
        f.result(30)
    for f in admin.create_acls([AclBinding(ResourceType.TOPIC, ok, ResourcePatternType.LITERAL, "User:app", "*",
                                           AclOperation.WRITE, AclPermissionType.ALLOW)]).values():
        f.result(30)
    zk = KazooClient(zk_chroot)
    zk.start(10)
    try:
        import json
        stored = json.loads(zk.get(f"/kafka-acl/Topic/{ok}")[0])
        assert stored["acls"] == [{"principal": "User:app", "permissionType": "Allow", "operation": "Write",
                                   "host": "*"}]
    finally:
        zk.stop()

    def produce(b: Any, topic: str) -> bool:
        acked: list[bool] = []
        p = ck.Producer({"bootstrap.servers": f"127.0.0.1:{b.internal_port}", "security.protocol": "SASL_SSL",
                         "ssl.ca.location": str(pki.ca), "sasl.mechanism": "PLAIN", "sasl.username": "app",
                         "sasl.password": "app-pw", "message.timeout.ms": 8000})
        p.produce(topic, b"v", on_delivery=lambda err, _m: acked.append(err is None))
        p.flush(15)
        return acked == [True]
    deadline = time.monotonic() + 20
    for i, b in c.brokers.items():   # every broker reloads the ACLs from ZooKeeper's change notification
        while not produce(b, ok):
            assert time.monotonic() < deadline, f"broker {i} does not allow what the ACL allows"
        assert not produce(b, no), f"broker {i} allowed a topic without an ACL"
