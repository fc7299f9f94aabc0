"""ACLs (issue 14): with Kafka's authorizer class, a principal may do only what an ACL allows
(super users everything); denied requests get TOPIC/GROUP/CLUSTER/TRANSACTIONAL_ID_AUTHORIZATION_FAILED
and no data; Metadata lists only topics the principal may describe; DENY beats ALLOW; prefixed
patterns; ACLs survive a restart; CreateAcls / DescribeAcls / DeleteAcls as Apache Kafka's
``kafka-acls`` tool drives them.  Principals come from SASL/PLAIN users here."""

from __future__ import annotations

import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kafka_broker.acl import (
    ALLOW,
    DENY,
    DESCRIBE,
    OP_ALL,
    PT_LITERAL,
    PT_PREFIXED,
    READ,
    RT_GROUP,
    RT_TOPIC,
    WRITE,
    Acl,
    Authorizer,
)
from kafka_broker.authz import RULES, UNGUARDED
from kafka_broker.testing import EmbeddedBroker, free_port
from kafka_protocol.errors import ErrorCode as E
from kafka_protocol.messages import REQUESTS

from .conftest import RawClient
from .test_sasl import plain

JAAS = ('org.apache.kafka.common.security.plain.PlainLoginModule required '
        'user_admin="admin-pw" user_alice="alice-pw" user_bob="bob-pw";')


class Store:
    def __init__(self, acls: set[Acl]) -> None:
        self.acls = acls


# -- the decision, in process -------------------------------------------------------------

def test_the_authorizer_follows_kafka_s_rules() -> None:
    acls = {Acl(RT_TOPIC, "orders", PT_LITERAL, "User:alice", "*", READ, ALLOW),
            Acl(RT_TOPIC, "logs-", PT_PREFIXED, "User:*", "*", WRITE, ALLOW),
            Acl(RT_TOPIC, "logs-secret", PT_LITERAL, "User:bob", "*", OP_ALL, DENY),
            Acl(RT_GROUP, "*", PT_LITERAL, "User:alice", "10.0.0.1", READ, ALLOW)}
    az = Authorizer(Store(acls), ["User:admin"], allow_if_no_acl=False)
    assert az.authorize("User:alice", "1.2.3.4", READ, RT_TOPIC, "orders")
    assert az.authorize("User:alice", "1.2.3.4", DESCRIBE, RT_TOPIC, "orders")     # READ implies DESCRIBE
    assert not az.authorize("User:alice", "1.2.3.4", WRITE, RT_TOPIC, "orders")
    assert not az.authorize("User:bob", "1.2.3.4", READ, RT_TOPIC, "orders")
    assert az.authorize("User:bob", "1.2.3.4", WRITE, RT_TOPIC, "logs-app")         # prefixed, any user
    assert not az.authorize("User:bob", "1.2.3.4", WRITE, RT_TOPIC, "logs-secret")  # DENY beats ALLOW
    assert az.authorize("User:alice", "1.2.3.4", WRITE, RT_TOPIC, "logs-secret")
    assert az.authorize("User:alice", "10.0.0.1", READ, RT_GROUP, "any-group")      # wildcard name, host
    assert not az.authorize("User:alice", "10.0.0.2", READ, RT_GROUP, "any-group")
    assert az.authorize("User:admin", "1.2.3.4", WRITE, RT_TOPIC, "orders")         # super user
    assert not az.authorize("User:carol", "1.2.3.4", READ, RT_TOPIC, "no-acls")
    assert Authorizer(Store(acls), [], allow_if_no_acl=True).authorize("User:carol", "h", READ, RT_TOPIC, "no-acls")


def test_every_advertised_api_has_an_authorization_rule(tmp_path: Path) -> None:
    import asyncio

    from kafka_broker.broker import Broker
    from kafka_broker.config import BrokerConfig

    b = Broker(BrokerConfig({"log.dirs": str(tmp_path)}), asyncio.new_event_loop())
    missing = sorted(set(b.apis) - set(RULES) - UNGUARDED)
    assert not missing, f"advertised APIs without an ACL rule in authz.py: {missing}"


# -- the broker, with real clients ------------------------------------------------------------

def _broker(data_dir: Path | None = None) -> EmbeddedBroker:
    b = EmbeddedBroker(data_dir=data_dir)
    b.sasl_port = free_port()  # type: ignore[attr-defined]
    b.settings = {"listeners": f"PLAINTEXT://127.0.0.1:{b.port},SASL_PLAINTEXT://127.0.0.1:{b.sasl_port}",  # type: ignore[attr-defined]
                  "sasl.enabled.mechanisms": "PLAIN", "listener.name.sasl_plaintext.plain.sasl.jaas.config": JAAS,
                  "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
                  "super.users": "User:admin", "group.initial.rebalance.delay.ms": "0"}
    return b.start()


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[EmbeddedBroker]:
    b = _broker(tmp_path / "b")
    yield b
    b.cleanup()


def conf(b: EmbeddedBroker, user: str) -> dict[str, Any]:
    return {"bootstrap.servers": f"127.0.0.1:{b.sasl_port}", "security.protocol": "SASL_PLAINTEXT",  # type: ignore[attr-defined]
            "sasl.mechanism": "PLAIN", "sasl.username": user, "sasl.password": f"{user}-pw"}


def produce_one(c: dict[str, Any], topic: str) -> str | None:
    """None when acknowledged, else the name of the error."""
    import confluent_kafka as ck

    out: list[Any] = []
    p = ck.Producer({**c, "message.timeout.ms": 5000})
    p.produce(topic, b"v", on_delivery=lambda err, _m: out.append(None if err is None else err.code()))
    p.flush(10)
    if out == [None]:
        return None
    names = {v: k for k, v in vars(ck.KafkaError).items() if isinstance(v, int)}
    return names.get(out[0], str(out[0])) if out else "TIMEOUT"


def consume_some(c: dict[str, Any], topic: str, group: str, n: int = 1, timeout: float = 15) -> tuple[int, str | None]:
    import confluent_kafka as ck

    cons = ck.Consumer({**c, "group.id": group, "auto.offset.reset": "earliest"})
    cons.subscribe([topic])
    got, err = 0, None
    deadline = time.monotonic() + timeout
    while got < n and time.monotonic() < deadline:
        m = cons.poll(0.5)
        if m is None:
            continue
        if m.error() is not None:
            err = m.error().name()
            if not m.error().retriable():
                break
            continue
        got += 1
    cons.close()
    return got, err


def add_acls(b: EmbeddedBroker, *bindings: Any) -> None:
    from confluent_kafka.admin import AdminClient

    admin = AdminClient(conf(b, "admin"))
    for f in admin.create_acls(list(bindings)).values():
        f.result(10)


def binding(rtype: str, name: str, principal: str, op: str, perm: str = "ALLOW", pattern: str = "LITERAL") -> Any:
    from confluent_kafka.admin import (
        AclBinding,
        AclOperation,
        AclPermissionType,
        ResourcePatternType,
        ResourceType,
    )

    return AclBinding(ResourceType[rtype], name, ResourcePatternType[pattern], principal, "*", AclOperation[op],
                      AclPermissionType[perm])


def acl_filter(rtype: str = "ANY", name: str | None = None, pattern: str = "ANY") -> Any:
    from confluent_kafka.admin import (
        AclBindingFilter,
        AclOperation,
        AclPermissionType,
        ResourcePatternType,
        ResourceType,
    )

    return AclBindingFilter(ResourceType[rtype], name, ResourcePatternType[pattern], None, None, AclOperation.ANY,
                            AclPermissionType.ANY)


def make_topics(b: EmbeddedBroker, *names: str) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient(conf(b, "admin"))
    for f in admin.create_topics([NewTopic(n, 1, 1) for n in names]).values():
        f.result(10)


@pytest.mark.interop
def test_a_user_without_acls_gets_nothing_and_with_them_what_they_allow(broker: EmbeddedBroker) -> None:
    pytest.importorskip("confluent_kafka")
    from confluent_kafka.admin import AdminClient

    admin = AdminClient(conf(broker, "admin"))
    topic = f"acl-{uuid.uuid4().hex[:6]}"
    make_topics(broker, topic)
    assert produce_one(conf(broker, "admin"), topic) is None
    alice = conf(broker, "alice")
    # nothing: no produce, no consume, the topic is not in her metadata, no ACL listing
    assert produce_one(alice, topic) == "TOPIC_AUTHORIZATION_FAILED"
    assert consume_some(alice, topic, "g-alice", timeout=8)[0] == 0
    assert topic not in AdminClient(alice).list_topics(timeout=10).topics
    filt = acl_filter()
    with RawClient(broker.sasl_port) as raw:  # type: ignore[attr-defined]
        assert plain(raw, "alice", "alice-pw").error_code == 0
        D = REQUESTS[29]
        r = raw.call(D(resource_type_filter=1, resource_name_filter=None, pattern_type_filter=1, principal_filter=None,
                       host_filter=None, operation=1, permission_type=1), 3)
        assert r.error_code == E.CLUSTER_AUTHORIZATION_FAILED and r.resources == []
    # WRITE on the topic: she produces (and sees it in metadata: WRITE implies DESCRIBE)
    add_acls(broker, binding("TOPIC", topic, "User:alice", "WRITE"))
    assert produce_one(alice, topic) is None
    assert topic in AdminClient(alice).list_topics(timeout=10).topics
    # READ on the topic without READ on the group: no consuming
    add_acls(broker, binding("TOPIC", topic, "User:alice", "READ"))
    got, _err = consume_some(alice, topic, "g-alice", timeout=8)
    assert got == 0
    add_acls(broker, binding("GROUP", "g-alice", "User:alice", "READ"))
    assert consume_some(alice, topic, "g-alice", n=2)[0] == 2
    # DENY beats ALLOW
    add_acls(broker, binding("TOPIC", topic, "User:alice", "WRITE", perm="DENY"))
    assert produce_one(alice, topic) == "TOPIC_AUTHORIZATION_FAILED"
    # the admin lists them all
    listed = admin.describe_acls(filt).result(10)
    assert {(a.name, a.principal, a.operation.name, a.permission_type.name) for a in listed} == {
        (topic, "User:alice", "WRITE", "ALLOW"), (topic, "User:alice", "READ", "ALLOW"),
        ("g-alice", "User:alice", "READ", "ALLOW"), (topic, "User:alice", "WRITE", "DENY")}


@pytest.mark.interop
def test_prefixed_acls_and_acls_survive_a_restart(broker: EmbeddedBroker) -> None:
    pytest.importorskip("confluent_kafka")
    from confluent_kafka.admin import AdminClient

    admin = AdminClient(conf(broker, "admin"))
    a, other = f"team-a.{uuid.uuid4().hex[:6]}", f"team-b.{uuid.uuid4().hex[:6]}"
    make_topics(broker, a, other)
    add_acls(broker, binding("TOPIC", "team-a.", "User:bob", "WRITE", pattern="PREFIXED"))
    bob = conf(broker, "bob")
    assert produce_one(bob, a) is None
    assert produce_one(bob, other) == "TOPIC_AUTHORIZATION_FAILED"
    broker.restart()
    assert produce_one(bob, a) is None                         # still allowed after the restart
    assert produce_one(bob, other) == "TOPIC_AUTHORIZATION_FAILED"
    admin = AdminClient(conf(broker, "admin"))
    gone = admin.delete_acls([acl_filter("TOPIC", "team-a.", "PREFIXED")])
    for f in gone.values():
        assert len(f.result(10)) == 1
    assert produce_one(bob, a) == "TOPIC_AUTHORIZATION_FAILED"


@pytest.mark.interop
@pytest.mark.skipif(shutil.which("java") is None, reason="java is installed by ./dev test")
def test_apache_kafka_s_kafka_acls_tool(broker: EmbeddedBroker, tmp_path: Path) -> None:
    from kafka_bench import apache_kafka as ak

    props = tmp_path / "admin.properties"
    props.write_text("security.protocol=SASL_PLAINTEXT\nsasl.mechanism=PLAIN\n"
                     "sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required "
                     'username="admin" password="admin-pw";\n')
    boot = f"127.0.0.1:{broker.sasl_port}"  # type: ignore[attr-defined]
    acls_main = "org.apache.kafka.tools.AclCommand" if _has_class("org.apache.kafka.tools.AclCommand") \
        else "kafka.admin.AclCommand"
    r = ak.java_main(acls_main, ["--bootstrap-server", boot, "--command-config", str(props), "--add",
                                 "--allow-principal", "User:alice", "--operation", "Read", "--topic", "orders",
                                 "--group", "orders-app"], timeout=90, check=False)
    assert r.returncode == 0, (r.stdout + r.stderr).decode()[-3000:]
    r = ak.java_main(acls_main, ["--bootstrap-server", boot, "--command-config", str(props), "--list",
                                 "--topic", "orders"], timeout=90, check=False)
    out = r.stdout.decode()
    assert "User:alice" in out and "READ" in out.upper(), (r.stdout + r.stderr).decode()[-3000:]
    # without the admin's credentials the tool is refused
    r = ak.java_main(acls_main, ["--bootstrap-server", broker.bootstrap, "--list"], timeout=90, check=False)
    assert r.returncode != 0 or "authoriz" in (r.stdout + r.stderr).decode().lower()


def _has_class(name: str) -> bool:
    import zipfile

    from kafka_bench import apache_kafka as ak
    path = name.replace(".", "/") + ".class"
    for jar in ak.LIBS.glob("kafka-tools-*.jar"):
        with zipfile.ZipFile(jar) as z:
            if path in z.namelist():
                return True
    return False
