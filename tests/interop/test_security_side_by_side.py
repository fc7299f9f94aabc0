"""The security cases of issue 14, the same test bodies against kafka-core and Apache Kafka 4.x.

One module-scoped broker per side, started from the same security keys of ``server.properties``
(``SECURITY``: the listeners PLAINTEXT, SASL_SSL and SSL with ``ssl.client.auth=required`` on the
SSL one, PLAIN users in the listener's JAAS config, SCRAM-SHA-512, the StandardAuthorizer with
``super.users=User:admin``) -- an operator's configuration works on both.  Apache Kafka also gets
the keys of its KRaft controller (``KRAFT``), which kafka-core, one combined node, has no use for;
its controller listener authenticates the broker as ``User:admin`` with SASL/PLAIN, so that no
listener clients reach runs as a super user and the PLAINTEXT listener is good for nothing: its
principal ``User:ANONYMOUS`` has no ACL.

Each case asserts one observable outcome on both brokers (the error a client reports, the records
it reads, the topics Metadata lists), with a mix of clients: confluent-kafka for produce, consume
and groups, kafka-python for Metadata and DescribeAcls, aiokafka for a SCRAM producer, kafka_client
for a refused login and certificate, Apache Kafka's console consumer, and its ``kafka-acls`` and
``kafka-configs`` to manage ACLs, SCRAM credentials and quotas.  The restart case restarts the side's broker on its data dir.
Users: ``alice`` (PLAIN) starts with no ACL, ``carol`` (PLAIN) is for DENY, ``bob`` (SCRAM, made
with ``kafka-configs``) for prefixed ACLs and the restart, ``quota`` (PLAIN) for the quota, and
the client certificate ``CN=app,OU=eng,O=Example`` for mutual TLS; each case uses its own users,
so the ACLs one case adds do not decide another.
"""

from __future__ import annotations

import shutil
import socket
import ssl
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kafka_bench.tlskit import (
    PASSWORD,
    Pki,
    java_console_consume,
    keytool_truststore,
    make_pki,
    plaintext_answer,
)
from kafka_broker.testing import EmbeddedBroker, free_port

from tests.broker.test_acls import binding

pytestmark = [pytest.mark.interop,
              pytest.mark.skipif(shutil.which("java") is None, reason="java is installed by ./dev test")]

ck = pytest.importorskip("confluent_kafka")

USERS = {"admin": "admin-pw", "alice": "alice-pw", "carol": "carol-pw", "quota": "quota-pw"}
PLAIN_JAAS = ('org.apache.kafka.common.security.plain.PlainLoginModule required username="admin" '
              'password="admin-pw" ' + " ".join(f'user_{u}="{p}"' for u, p in USERS.items()) + ";")
SCRAM_JAAS = "org.apache.kafka.common.security.scram.ScramLoginModule required;"
CERT_PRINCIPAL = "User:CN=app,OU=eng,O=Example"


class Side:
    """One broker of the comparison: ``kind`` "kafka-core" or "apache", its three listeners."""

    def __init__(self, kind: str, pki: Pki, truststore: Path, work: Path) -> None:
        self.kind, self.pki, self.truststore, self.work = kind, pki, truststore, work
        self.ports = {"PLAINTEXT": free_port(), "SASL_SSL": free_port(), "SSL": free_port()}
        self.proc: Any = None

    def security(self) -> dict[str, str]:
        """The server.properties keys both brokers get."""
        listeners = ",".join(f"{n}://127.0.0.1:{p}" for n, p in self.ports.items())
        return {
            "listeners": listeners,
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,SASL_SSL:SASL_SSL,SSL:SSL",
            "inter.broker.listener.name": "SASL_SSL",
            "sasl.mechanism.inter.broker.protocol": "PLAIN",
            "sasl.enabled.mechanisms": "PLAIN,SCRAM-SHA-512",
            "listener.name.sasl_ssl.plain.sasl.jaas.config": PLAIN_JAAS,
            "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config": SCRAM_JAAS,
            "ssl.keystore.type": "PKCS12", "ssl.keystore.location": str(self.pki.server_p12),
            "ssl.keystore.password": PASSWORD, "ssl.key.password": PASSWORD,
            "ssl.truststore.type": "PKCS12", "ssl.truststore.location": str(self.truststore),
            "ssl.truststore.password": PASSWORD,
            "listener.name.ssl.ssl.client.auth": "required",
            "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "super.users": "User:admin",
            "allow.everyone.if.no.acl.found": "false",
            "auto.create.topics.enable": "false",
            "num.partitions": "1",
            "offsets.topic.num.partitions": "1",
            "group.initial.rebalance.delay.ms": "0",
            # quotas measured over 2 windows of 1 s (Kafka: 11): a burst is paid back within 2 s
            "quota.window.num": "2", "quota.window.size.seconds": "1",
        }

    def start(self) -> Side:
        if self.kind == "apache":
            from kafka_bench.apache_kafka import ApacheKafka

            (self.work / "apache").mkdir(exist_ok=True)
            ak = ApacheKafka(data_dir=self.work / "apache", port=self.ports["PLAINTEXT"])
            s = self.security()
            s.update({   # KRAFT: the controller, authenticated as the super user admin
                "listeners": s["listeners"] + f",CONTROLLER://127.0.0.1:{ak.controller_port}",
                "advertised.listeners": s["listeners"],
                "listener.security.protocol.map": s["listener.security.protocol.map"] + ",CONTROLLER:SASL_PLAINTEXT",
                "sasl.mechanism.controller.protocol": "PLAIN",
                "listener.name.controller.sasl.enabled.mechanisms": "PLAIN",
                "listener.name.controller.plain.sasl.jaas.config": PLAIN_JAAS})
            ak.extra = s
            self.proc = ak.start()
        else:
            b = EmbeddedBroker(data_dir=self.work / "kafka-core", port=self.ports["PLAINTEXT"])
            b.settings = self.security()
            self.proc = b.start()
        return self

    def restart(self) -> None:
        if self.kind == "apache":
            self.proc.stop()
            self.proc.start()
        else:
            self.proc.restart()

    def stop(self) -> None:
        self.proc.stop()

    def boot(self, listener: str = "SASL_SSL") -> str:
        return f"127.0.0.1:{self.ports[listener]}"

    def conf(self, user: str, password: str | None = None, mechanism: str = "PLAIN") -> dict[str, Any]:
        """confluent-kafka settings for ``user`` on the SASL_SSL listener."""
        return {"bootstrap.servers": self.boot(), "security.protocol": "SASL_SSL", "ssl.ca.location": str(self.pki.ca),
                "sasl.mechanism": mechanism, "sasl.username": user,
                "sasl.password": USERS.get(user, f"{user}-pw") if password is None else password}

    def cert_conf(self, cert: Path | None, key: Path | None) -> dict[str, Any]:
        c = {"bootstrap.servers": self.boot("SSL"), "security.protocol": "SSL", "ssl.ca.location": str(self.pki.ca)}
        if cert is not None:
            c.update({"ssl.certificate.location": str(cert), "ssl.key.location": str(key)})
        return c

    def client_props(self, user: str) -> str:
        """Java client properties for the PLAIN ``user`` on the SASL_SSL listener."""
        return ("security.protocol=SASL_SSL\nsasl.mechanism=PLAIN\n"
                f"ssl.truststore.type=PKCS12\nssl.truststore.location={self.truststore}\n"
                f"ssl.truststore.password={PASSWORD}\n"
                "sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required "
                f'username="{user}" password="{USERS[user]}";\n')

    def tool_props(self) -> Path:
        """Client properties of Apache Kafka's tools: the admin over SASL_SSL."""
        p = self.work / "admin.properties"
        p.write_text(self.client_props("admin"))
        return p

    def tool(self, main: str, *args: str) -> str:
        """Run an Apache Kafka tool as the admin; its stdout (fails the test on a non-zero exit)."""
        from kafka_bench import apache_kafka as ak

        r = ak.java_main(main, ["--bootstrap-server", self.boot(), "--command-config", str(self.tool_props()),
                                *args], timeout=90, check=False)
        assert r.returncode == 0, (r.stdout + r.stderr).decode()[-3000:]
        return r.stdout.decode()

    def acls(self, *args: str) -> str:
        return self.tool(_acl_command(), *args)

    def configs(self, *args: str) -> str:
        from kafka_bench import apache_kafka as ak

        return self.tool(ak.CONFIGS, *args)


def _acl_command() -> str:
    """AclCommand moved from kafka.admin to org.apache.kafka.tools in Kafka 4.x."""
    import zipfile

    from kafka_bench import apache_kafka as ak
    for jar in ak.LIBS.glob("kafka-tools-*.jar"):
        with zipfile.ZipFile(jar) as z:
            if "org/apache/kafka/tools/AclCommand.class" in z.namelist():
                return "org.apache.kafka.tools.AclCommand"
    return "kafka.admin.AclCommand"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module", params=["kafka-core", "apache"])
def side(request: pytest.FixtureRequest, pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Side]:
    work = tmp_path_factory.mktemp(request.param)
    ts = keytool_truststore(pki.ca, work / "truststore.p12", PASSWORD)
    s = Side(request.param, pki, ts, work).start()
    # bob: a SCRAM user, made the operator's way
    s.configs("--alter", "--entity-type", "users", "--entity-name", "bob",
              "--add-config", "SCRAM-SHA-512=[iterations=4096,password=bob-pw]")
    try:
        yield s
    finally:
        s.stop()


# -- helpers: what a client observes ------------------------------------------------------------

def _error_names() -> dict[int, str]:
    return {v: k for k, v in vars(ck.KafkaError).items() if isinstance(v, int)}


def produce_one(conf: dict[str, Any], topic: str, timeout: float = 6) -> str | None:
    """Produce one record: None when acknowledged, else the name of the error."""
    out: list[Any] = []
    p = ck.Producer({**conf, "message.timeout.ms": int(timeout * 1000)})
    p.produce(topic, b"v", on_delivery=lambda err, _m: out.append(None if err is None else err.code()))
    p.flush(timeout + 4)
    if out == [None]:
        return None
    return _error_names().get(out[0], str(out[0])) if out else "NO_DELIVERY_REPORT"


def login_error(conf: dict[str, Any], timeout: float = 6) -> str | None:
    """The first error librdkafka reports on a client with ``conf`` (its error callback), None
    when it connects and fetches metadata without one."""
    errors: list[str] = []
    p = ck.Producer({**conf, "error_cb": lambda e: errors.append(e.name())})
    deadline = time.monotonic() + timeout
    while not errors and time.monotonic() < deadline:
        p.poll(0.2)
    p.flush(1)
    return errors[0] if errors else None


def consume(conf: dict[str, Any], topic: str, group: str, n: int = 1, timeout: float = 15) -> tuple[int, str | None]:
    """Consume ``n`` records from the start as ``group``: (records read, the first fatal error)."""
    # no commits: a later reader in the group starts from the beginning too
    c = ck.Consumer({**conf, "group.id": group, "auto.offset.reset": "earliest", "enable.auto.commit": False})
    c.subscribe([topic])
    got, err = 0, None
    deadline = time.monotonic() + timeout
    try:
        while got < n and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is None:
                continue
            if m.error() is not None:
                if err is None:
                    err = m.error().name()
                if not m.error().retriable():
                    break
                continue
            got += 1
    finally:
        c.close()
    return got, err


def create_topics(side: Side, *names: str) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient(side.conf("admin"))      # kept: a collected client cancels its futures
    for f in admin.create_topics([NewTopic(n, 1, 1) for n in names]).values():
        f.result(15)
    for n in names:     # as the admin: the topic is in place before any case uses it
        assert produce_one(side.conf("admin"), n) is None, n


def visible_topics(side: Side, user: str) -> set[str]:
    """The topics Metadata lists to ``user`` (kafka-python)."""
    from kafka import KafkaConsumer

    c = KafkaConsumer(bootstrap_servers=side.boot(), security_protocol="SASL_SSL", ssl_cafile=str(side.pki.ca),
                      sasl_mechanism="PLAIN", sasl_plain_username=user, sasl_plain_password=USERS[user],
                      request_timeout_ms=15000)
    try:
        return {t for t in c.topics() if not t.startswith("__")}
    finally:
        c.close()


def describe_acls_error(side: Side, user: str) -> str | None:
    """DescribeAcls of every ACL as ``user`` (kafka-python's admin): the kind of error raised."""
    from kafka import KafkaAdminClient
    from kafka.admin import (
        ACLFilter,
        ACLOperation,
        ACLPermissionType,
        ACLResourcePatternType,
        ResourcePatternFilter,
        ResourceType,
    )

    admin = KafkaAdminClient(bootstrap_servers=side.boot(), security_protocol="SASL_SSL", ssl_cafile=str(side.pki.ca),
                             sasl_mechanism="PLAIN", sasl_plain_username=user, sasl_plain_password=USERS[user])
    try:
        admin.describe_acls(ACLFilter(principal=None, host="*", operation=ACLOperation.ANY,
                                      permission_type=ACLPermissionType.ANY,
                                      resource_pattern=ResourcePatternFilter(ResourceType.ANY, None,
                                                                             ACLResourcePatternType.ANY)))
        return None
    except Exception as e:
        return type(e).__name__
    finally:
        admin.close()


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


# -- the cases --------------------------------------------------------------------------------------

def test_tls_only_on_tls_ports(side: Side) -> None:
    """A plaintext ApiVersions request to a TLS port gets no Kafka answer (nothing, or a TLS alert
    record, then the connection closes); a TLS handshake to the PLAINTEXT port fails."""
    for listener in ("SSL", "SASL_SSL"):
        got = plaintext_answer(side.ports[listener])
        assert (42).to_bytes(4, "big") not in got[:12], (listener, got[:32])
        assert not got or got[0] == 0x15, (listener, got[:32])      # a TLS alert, if anything
    cctx = ssl.create_default_context(cafile=str(side.pki.ca))
    with socket.create_connection(("127.0.0.1", side.ports["PLAINTEXT"]), timeout=10) as s, \
            pytest.raises((ssl.SSLError, ConnectionResetError, TimeoutError)):
        cctx.wrap_socket(s, server_hostname="127.0.0.1").do_handshake()


def until(fn: Any, want: Any, timeout: float = 15) -> Any:
    """``fn()`` until it returns ``want`` (an ACL reaches Apache Kafka's authorizer through its
    metadata log a moment after CreateAcls answers) or ``timeout``; the last value."""
    deadline = time.monotonic() + timeout
    while True:
        got = fn()
        if got == want or time.monotonic() > deadline:
            return got
        time.sleep(0.3)


def add_acls(side: Side, *bindings: Any) -> None:
    """CreateAcls as the admin, with confluent-kafka's AdminClient."""
    from confluent_kafka.admin import AdminClient

    admin = AdminClient(side.conf("admin"))
    for f in admin.create_acls(list(bindings)).values():
        f.result(15)


@pytest.mark.parametrize("mechanism,user", [("PLAIN", "alice"), ("SCRAM-SHA-512", "bob")])
def test_wrong_passwords_are_refused(side: Side, mechanism: str, user: str) -> None:
    from confluent_kafka.admin import AdminClient
    from kafka_client import AdminClient as KcAdmin
    from kafka_client.errors import SaslAuthenticationFailedError

    assert login_error(side.conf(user, "wrong", mechanism)) == "_AUTHENTICATION"
    with pytest.raises(SaslAuthenticationFailedError):
        KcAdmin(side.boot(), security_protocol="SASL_SSL", ssl_cafile=str(side.pki.ca), sasl_mechanism=mechanism,
                sasl_plain_username=user, sasl_plain_password="wrong", connect_timeout_ms=5000).list_topics()
    # the right password logs in (Metadata answers; no topic is visible to a user without ACLs)
    assert AdminClient(side.conf(user, None, mechanism)).list_topics(timeout=10).brokers


def test_a_user_without_acls_gets_nothing_until_allowed(side: Side) -> None:
    """alice, with no ACL: no produce, no consume, no group, no DescribeAcls, no topic in Metadata;
    WRITE on the topic lets her produce (and see it), READ on the topic alone still no consuming
    (the group is refused), READ on the group too and she reads."""
    from confluent_kafka.admin import (
        AclBindingFilter,
        AclOperation,
        AclPermissionType,
        AdminClient,
        ResourcePatternType,
        ResourceType,
    )

    topic, group = unique("acl"), unique("g-alice")
    create_topics(side, topic)
    alice = side.conf("alice")
    assert produce_one(alice, topic) == "TOPIC_AUTHORIZATION_FAILED"
    assert consume(alice, topic, group, timeout=8) == (0, "GROUP_AUTHORIZATION_FAILED")
    assert visible_topics(side, "alice") == set()
    assert describe_acls_error(side, "alice") == "ClusterAuthorizationFailedError"
    everything = AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, None, None, AclOperation.ANY,
                                  AclPermissionType.ANY)
    admin = AdminClient(alice)      # librdkafka (2.16) reports CLUSTER_AUTHORIZATION_FAILED as no ACLs, on both
    assert admin.describe_acls(everything).result(15) == []

    add_acls(side, binding("TOPIC", topic, "User:alice", "WRITE"))
    assert until(lambda: produce_one(alice, topic), None) is None
    assert visible_topics(side, "alice") == {topic}              # WRITE implies DESCRIBE
    add_acls(side, binding("TOPIC", topic, "User:alice", "READ"))
    assert consume(alice, topic, group, timeout=8) == (0, "GROUP_AUTHORIZATION_FAILED")
    add_acls(side, binding("GROUP", group, "User:alice", "READ"))
    assert until(lambda: consume(alice, topic, group, n=2, timeout=15), (2, None)) == (2, None)
    # and Apache Kafka's console consumer, as alice in the same group, reads them too
    assert java_console_consume(side.boot(), topic, 2, side.client_props("alice") + f"group.id={group}\n",
                                side.work) == ["v", "v"]


def test_deny_beats_allow(side: Side) -> None:
    """carol may write every topic (an ALLOW on the wildcard name, CreateAcls from confluent-kafka)
    but one, denied with ``kafka-acls --deny-principal``; ``kafka-acls --list`` shows the DENY."""
    topic, other = unique("deny"), unique("deny-other")
    create_topics(side, topic, other)
    carol = side.conf("carol")
    add_acls(side, binding("TOPIC", "*", "User:carol", "WRITE"))
    assert until(lambda: produce_one(carol, topic), None) is None
    side.acls("--add", "--deny-principal", "User:carol", "--operation", "Write", "--topic", topic)
    assert until(lambda: produce_one(carol, topic), "TOPIC_AUTHORIZATION_FAILED") == "TOPIC_AUTHORIZATION_FAILED"
    assert produce_one(carol, other) is None
    listed = side.acls("--list", "--topic", topic)
    assert "User:carol" in listed and "DENY" in listed.upper(), listed


def test_prefixed_acls(side: Side) -> None:
    """``kafka-acls --resource-pattern-type prefixed``: bob (SCRAM, through aiokafka) writes every
    topic whose name starts with the prefix, and no other."""
    import asyncio

    import aiokafka
    from aiokafka.helpers import create_ssl_context

    prefix = unique("team-a") + "."
    mine, theirs = prefix + "orders", unique("team-b") + ".orders"
    create_topics(side, mine, theirs)
    side.acls("--add", "--allow-principal", "User:bob", "--operation", "Write", "--topic", prefix,
              "--resource-pattern-type", "prefixed")

    async def send(topic: str) -> str | None:
        p = aiokafka.AIOKafkaProducer(bootstrap_servers=side.boot(), security_protocol="SASL_SSL",
                                      ssl_context=create_ssl_context(cafile=str(side.pki.ca)),
                                      sasl_mechanism="SCRAM-SHA-512", sasl_plain_username="bob",
                                      sasl_plain_password="bob-pw", request_timeout_ms=8000)
        await p.start()
        try:
            await asyncio.wait_for(p.send_and_wait(topic, b"v"), 10)
            return None
        except Exception as e:      # the kind of error is what both brokers must agree on
            return type(e).__name__
        finally:
            await p.stop()
    assert until(lambda: asyncio.run(send(mine)), None) is None
    assert asyncio.run(send(theirs)) == "TopicAuthorizationFailedError"
    assert produce_one(side.conf("bob", mechanism="SCRAM-SHA-512"), theirs) == "TOPIC_AUTHORIZATION_FAILED"


def test_a_client_certificate_is_its_subject_and_client_auth_is_required(side: Side) -> None:
    """On the SSL listener (``ssl.client.auth=required``) the client certificate's principal is
    ``User:CN=app,OU=eng,O=Example``: an ACL for that name lets it write; without a certificate,
    or with one from another CA, no connection is made."""
    from kafka_client import AdminClient as KcAdmin
    from kafka_client.errors import SslAuthenticationError

    topic, other = unique("mtls"), unique("mtls-other")
    create_topics(side, topic, other)
    pki = side.pki
    app = side.cert_conf(pki.client_cert, pki.client_key)
    assert produce_one(app, topic) == "TOPIC_AUTHORIZATION_FAILED"
    add_acls(side, binding("TOPIC", topic, CERT_PRINCIPAL, "WRITE"))
    assert until(lambda: produce_one(app, topic), None) is None
    assert produce_one(app, other) == "TOPIC_AUTHORIZATION_FAILED"
    for cert, key in ((None, None), (pki.rogue_cert, pki.rogue_key)):
        assert produce_one(side.cert_conf(cert, key), topic, timeout=4) == "_MSG_TIMED_OUT"
        kw: dict[str, Any] = {"security_protocol": "SSL", "ssl_cafile": str(pki.ca), "connect_timeout_ms": 5000}
        if cert is not None:
            kw.update(ssl_certfile=str(cert), ssl_keyfile=str(key))
        with pytest.raises(SslAuthenticationError):       # at once: the broker's TLS alert, no retries
            KcAdmin(side.boot("SSL"), **kw).list_topics()


def test_a_user_quota_holds_a_producer_to_its_rate(side: Side) -> None:
    """``kafka-configs --entity-type users --add-config producer_byte_rate=262144``: a confluent-kafka
    producer as that user is acknowledged 256 KiB/s, measured over 10 s, within 20%."""
    rate = 262144
    topic = unique("quota")
    create_topics(side, topic)
    add_acls(side, binding("TOPIC", topic, "User:quota", "WRITE"))
    side.configs("--alter", "--entity-type", "users", "--entity-name", "quota",
                 "--add-config", f"producer_byte_rate={rate}")
    acked = [0]

    def on_delivery(err: object, _m: object) -> None:
        if err is None:
            acked[0] += 1
    p = ck.Producer({**side.conf("quota"), "linger.ms": 5, "queue.buffering.max.messages": 100000})
    value = b"x" * 1000

    def run(seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            try:
                p.produce(topic, value, on_delivery=on_delivery)
            except BufferError:
                pass
            p.poll(0.001)
    run(3)                       # the burst the quota windows allow first
    start, t0 = acked[0], time.monotonic()
    run(10)
    got = (acked[0] - start) * len(value) / (time.monotonic() - t0)
    p.purge()
    p.flush(1)
    print(f"\n{side.kind}: {got:.0f} B/s acknowledged over 10 s, quota {rate} B/s ({got / rate:.2f}x)")
    assert 0.8 * rate <= got <= 1.2 * rate, f"{side.kind}: {got:.0f} B/s acknowledged, quota {rate} B/s"


def test_scram_credentials_and_acls_survive_a_restart(side: Side) -> None:
    """After a restart on the same data: bob's SCRAM login works (a wrong password still does not),
    and the ACLs are in force (an ALLOW for User:*, a DENY for carol on the same topic)."""
    topic = unique("restart")
    create_topics(side, topic)
    side.acls("--add", "--allow-principal", "User:*", "--deny-principal", "User:carol", "--operation", "Write",
              "--topic", topic)
    bob = side.conf("bob", mechanism="SCRAM-SHA-512")
    assert until(lambda: produce_one(bob, topic), None) is None
    side.restart()
    assert until(lambda: produce_one(bob, topic), None, timeout=30) is None
    assert produce_one(side.conf("alice"), topic) is None
    assert produce_one(side.conf("carol"), topic) == "TOPIC_AUTHORIZATION_FAILED"
    assert login_error(side.conf("bob", "wrong", "SCRAM-SHA-512")) == "_AUTHENTICATION"
