"""SSL listeners (issue 14): TLS 1.2/1.3 with Python's ssl on the broker, PEM and PKCS12
keystores, client authentication (none / requested / required), Kafka's principal of a client
certificate, and real clients (confluent-kafka, kafka-python, aiokafka, kcat, Apache Kafka's
console consumer) producing and consuming over TLS next to a PLAINTEXT listener."""

from __future__ import annotations

import hashlib
import shutil
import socket
import ssl
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from kafka_bench.tlskit import (
    PASSWORD,
    Pki,
    java_console_consume,
    keytool_truststore,
    make_pki,
    plaintext_answer,
)
from kafka_broker.config import BrokerConfig, ConfigError
from kafka_broker.testing import EmbeddedBroker, free_port
from kafka_broker.tls import principal, server_context

from .conftest import aio_drain


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def _tls_broker(pki: Pki, **extra: str) -> EmbeddedBroker:
    b = EmbeddedBroker()
    b.ssl_port = free_port()  # type: ignore[attr-defined]
    b.settings = {"listeners": f"PLAINTEXT://127.0.0.1:{b.port},SSL://127.0.0.1:{b.ssl_port}",  # type: ignore[attr-defined]
                  "ssl.keystore.type": "PEM", "ssl.keystore.location": str(pki.server_pem), **extra}
    return b.start()


@pytest.fixture(scope="module")
def broker(pki: Pki) -> Iterator[EmbeddedBroker]:
    b = _tls_broker(pki)
    yield b
    b.stop()
    b.cleanup()


def ssl_bootstrap(b: EmbeddedBroker) -> str:
    return f"127.0.0.1:{b.ssl_port}"  # type: ignore[attr-defined]


# -- in process: contexts and principals ------------------------------------------------

def _settings(pki: Pki, **kw: object) -> dict[str, object]:
    s: dict[str, object] = {"ssl.keystore.type": "PEM", "ssl.keystore.location": str(pki.server_pem)}
    s.update(kw)
    return s


def _handshake(ctx: ssl.SSLContext, cert: Path | None, key: Path | None, ca: Path) -> str:
    """A TLS handshake over a socketpair; the principal the server derives."""
    a, b = socket.socketpair()
    out: dict[str, object] = {}

    def serve() -> None:
        try:
            with ctx.wrap_socket(a, server_side=True) as s:
                out["principal"] = principal(s.getpeercert())
                s.recv(1)
        except (ssl.SSLError, OSError) as e:
            out["error"] = e
    t = threading.Thread(target=serve)
    t.start()
    cctx = ssl.create_default_context(cafile=str(ca))
    cctx.check_hostname = False
    if cert is not None:
        cctx.load_cert_chain(str(cert), str(key))
    try:
        with cctx.wrap_socket(b) as c:
            c.sendall(b"x")
    except (ssl.SSLError, OSError) as e:
        out.setdefault("client_error", e)
    t.join(10)
    if "error" in out:
        raise out["error"]  # type: ignore[misc]
    return str(out["principal"])


def test_principal_of_a_client_certificate_is_its_rfc2253_subject(pki: Pki) -> None:
    ctx = server_context(_settings(pki, **{"ssl.client.auth": "required", "ssl.truststore.type": "PEM",
                                           "ssl.truststore.location": str(pki.ca)}), "SSL")
    assert _handshake(ctx, pki.client_cert, pki.client_key, pki.ca) == "User:CN=app,OU=eng,O=Example"
    with pytest.raises(ssl.SSLError):       # required: no certificate, no connection
        _handshake(ctx, None, None, pki.ca)
    with pytest.raises(ssl.SSLError):       # a certificate from a CA nobody trusts
        _handshake(ctx, pki.rogue_cert, pki.rogue_key, pki.ca)
    requested = server_context(_settings(pki, **{"ssl.client.auth": "requested", "ssl.truststore.type": "PEM",
                                                 "ssl.truststore.location": str(pki.ca)}), "SSL")
    assert _handshake(requested, None, None, pki.ca) == "User:ANONYMOUS"
    assert _handshake(requested, pki.client_cert, pki.client_key, pki.ca) == "User:CN=app,OU=eng,O=Example"
    assert _handshake(server_context(_settings(pki), "SSL"), pki.client_cert, pki.client_key,
                      pki.ca) == "User:ANONYMOUS"    # ssl.client.auth=none: the certificate is not asked for


def test_pkcs12_keystore_and_truststore_and_protocol_limits(pki: Pki) -> None:
    ctx = server_context({"ssl.keystore.type": "PKCS12", "ssl.keystore.location": str(pki.server_p12),
                          "ssl.keystore.password": PASSWORD, "ssl.client.auth": "required",
                          "ssl.truststore.type": "PKCS12", "ssl.truststore.location": str(pki.truststore_p12),
                          "ssl.truststore.password": PASSWORD, "ssl.enabled.protocols": ["TLSv1.3"]}, "SSL")
    assert ctx.minimum_version == ssl.TLSVersion.TLSv1_3
    assert _handshake(ctx, pki.client_cert, pki.client_key, pki.ca) == "User:CN=app,OU=eng,O=Example"
    # Kafka's default type JKS reads a PKCS12 file too, as Java's KeyStore does
    server_context({"ssl.keystore.location": str(pki.server_p12), "ssl.keystore.password": PASSWORD}, "SSL")


@pytest.mark.skipif(shutil.which("java") is None, reason="java (keytool) is installed by ./dev test")
def test_a_truststore_made_by_keytool_verifies_clients(pki: Pki, tmp_path: Path) -> None:
    ts = keytool_truststore(pki.ca, tmp_path / "truststore.p12", PASSWORD)
    ctx = server_context(_settings(pki, **{"ssl.client.auth": "required", "ssl.truststore.location": str(ts),
                                           "ssl.truststore.password": PASSWORD}), "SSL")
    assert _handshake(ctx, pki.client_cert, pki.client_key, pki.ca) == "User:CN=app,OU=eng,O=Example"


def _cfg(port: int, **kw: str) -> BrokerConfig:
    return BrokerConfig({"listeners": f"SSL://127.0.0.1:{port}", "log.dirs": "/tmp/unused", **kw})


@pytest.mark.parametrize("settings,message", [
    ({}, "needs a keystore"),
    ({"ssl.keystore.type": "PKCS12", "ssl.keystore.password": "wrong"}, "check its password"),
    ({"ssl.keystore.type": "PEM", "ssl.client.auth": "required"}, "needs a truststore"),
    ({"ssl.keystore.type": "PEM", "ssl.enabled.protocols": "TLSv1.1"}, "invalid value"),
    ({"ssl.keystore.type": "PEM", "ssl.cipher.suites": "NOT-A-CIPHER"}, "none of them is known"),
    ({"ssl.keystore.type": "PEM", "ssl.principal.mapping.rules": "RULE:^CN=(.*$/$1/"}, "bad pattern"),
    ({"ssl.keystore.type": "PEM", "ssl.principal.mapping.rules": "RULE:^CN=(.*)$/$1/, NOT-A-RULE"}, "invalid rule"),
    ({"ssl.keystore.type": "PEM", "ssl.keymanager.algorithm": "PKIX"}, "does not implement"),
])
def test_unusable_tls_settings_stop_the_broker_with_a_reason(pki: Pki, settings: dict[str, str],
                                                             message: str) -> None:
    s = dict(settings)
    if "ssl.keystore.location" not in s and settings:
        s["ssl.keystore.location"] = str(pki.server_p12 if s.get("ssl.keystore.type") == "PKCS12"
                                         else pki.server_pem)
    with pytest.raises(ConfigError, match=message):
        _cfg(free_port(), **s)


def test_a_jks_keystore_is_refused_with_the_command_that_converts_it(tmp_path: Path) -> None:
    jks = tmp_path / "server.jks"
    jks.write_bytes(b"\xfe\xed\xfe\xed" + b"\x00" * 64)
    with pytest.raises(ConfigError, match="keytool -importkeystore"):
        _cfg(free_port(), **{"ssl.keystore.location": str(jks), "ssl.keystore.password": "x"})


def test_per_listener_settings_override_the_broker_wide_ones(pki: Pki, tmp_path: Path) -> None:
    a, b = free_port(), free_port()
    cfg = BrokerConfig({"listeners": f"SSL://127.0.0.1:{a},INTERNAL://127.0.0.1:{b}",
                        "listener.security.protocol.map": "SSL:SSL,INTERNAL:SSL", "log.dirs": str(tmp_path),
                        "ssl.keystore.type": "PEM", "ssl.keystore.location": str(pki.server_pem),
                        "listener.name.internal.ssl.client.auth": "required",
                        "listener.name.internal.ssl.truststore.type": "PEM",
                        "listener.name.internal.ssl.truststore.location": str(pki.ca)})
    assert cfg.ssl_settings("SSL")["ssl.client.auth"] == "none"
    assert cfg.ssl_settings("INTERNAL")["ssl.client.auth"] == "required"
    assert cfg.tls_contexts["INTERNAL"].verify_mode == ssl.CERT_REQUIRED
    assert cfg.tls_contexts["SSL"].verify_mode == ssl.CERT_NONE
    with pytest.raises(ConfigError, match="unknown listener"):
        BrokerConfig({"listeners": f"SSL://127.0.0.1:{a}", "log.dirs": str(tmp_path), "ssl.keystore.type": "PEM",
                      "ssl.keystore.location": str(pki.server_pem), "listener.name.other.ssl.client.auth": "required"})


# -- the broker over TLS, real clients -----------------------------------------------------

VALUES = [uuid.uuid4().bytes * (i % 40 + 1) for i in range(3000)] + [b"B" * 900_000]   # one > TLS_CHUNK


def _digest(values: list[bytes]) -> str:
    return hashlib.sha256(b"".join(sorted(values))).hexdigest()


@pytest.mark.interop
def test_confluent_kafka_over_tls_moves_every_byte(broker: EmbeddedBroker, pki: Pki) -> None:
    ck = pytest.importorskip("confluent_kafka")
    conf = {"bootstrap.servers": ssl_bootstrap(broker), "security.protocol": "SSL", "ssl.ca.location": str(pki.ca)}
    topic = f"tls-{uuid.uuid4().hex[:8]}"
    p = ck.Producer({**conf, "message.max.bytes": 2_000_000, "linger.ms": 5})
    for v in VALUES:
        p.produce(topic, v)
        p.poll(0)
    assert p.flush(30) == 0
    c = ck.Consumer({**conf, "group.id": "tls-g", "auto.offset.reset": "earliest", "fetch.max.bytes": 4_000_000})
    c.subscribe([topic])
    got: list[bytes] = []
    deadline = time.monotonic() + 60
    while len(got) < len(VALUES) and time.monotonic() < deadline:
        m = c.poll(1.0)
        if m is not None and m.error() is None:
            got.append(m.value())
    c.close()
    assert len(got) == len(VALUES) and _digest(got) == _digest(VALUES)
    # the SSL listener's metadata names the SSL listener's address, not the PLAINTEXT one
    from confluent_kafka.admin import AdminClient
    md = AdminClient(conf).list_topics(topic, timeout=10)
    assert {(b.host, b.port) for b in md.brokers.values()} == {("127.0.0.1", broker.ssl_port)}  # type: ignore[attr-defined]


@pytest.mark.interop
def test_kafka_python_and_aiokafka_over_tls(broker: EmbeddedBroker, pki: Pki) -> None:
    kp = pytest.importorskip("kafka")
    topic = f"tls-{uuid.uuid4().hex[:8]}"
    prod = kp.KafkaProducer(bootstrap_servers=ssl_bootstrap(broker), security_protocol="SSL",
                            ssl_cafile=str(pki.ca), ssl_check_hostname=True)
    for i in range(200):
        prod.send(topic, f"kp-{i}".encode())
    prod.flush(30)
    prod.close()

    import asyncio

    import aiokafka
    from aiokafka.helpers import create_ssl_context

    async def run() -> list[bytes]:
        ctx = create_ssl_context(cafile=str(pki.ca))
        p = aiokafka.AIOKafkaProducer(bootstrap_servers=ssl_bootstrap(broker), security_protocol="SSL",
                                      ssl_context=ctx)
        await p.start()
        try:
            for i in range(200):
                await p.send(topic, f"aio-{i}".encode())
            await p.flush()
        finally:
            await p.stop()
        return await aio_drain(aiokafka.AIOKafkaConsumer(
            topic, bootstrap_servers=ssl_bootstrap(broker), security_protocol="SSL", ssl_context=ctx,
            auto_offset_reset="earliest"), 400)
    got = asyncio.run(run())
    assert sorted(got) == sorted([f"kp-{i}".encode() for i in range(200)] + [f"aio-{i}".encode() for i in range(200)])


@pytest.mark.interop
@pytest.mark.skipif(shutil.which("kcat") is None, reason="kcat is installed by ./dev test")
def test_kcat_over_tls(broker: EmbeddedBroker, pki: Pki) -> None:
    topic = f"tls-{uuid.uuid4().hex[:8]}"
    tls = ["-X", "security.protocol=ssl", "-X", f"ssl.ca.location={pki.ca}"]
    lines = "".join(f"line-{i}\n" for i in range(500)).encode()
    subprocess.run(["kcat", "-b", ssl_bootstrap(broker), *tls, "-P", "-t", topic], input=lines, check=True,
                   timeout=60)
    out = subprocess.run(["kcat", "-b", ssl_bootstrap(broker), *tls, "-C", "-t", topic, "-e", "-q"],
                         capture_output=True, check=True, timeout=60).stdout
    assert out.splitlines() == lines.splitlines()


@pytest.mark.interop
@pytest.mark.parametrize("rules, dn, name", [
    ("DEFAULT", "CN=app,OU=eng,O=Example", "CN=app,OU=eng,O=Example"),
    ("RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/,DEFAULT", "CN=kafka-admin,OU=ServiceUsers,O=Org", "kafka-admin"),
    ("RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/,DEFAULT", "CN=other,OU=eng", "CN=other,OU=eng"),   # falls through
    ("RULE:^CN=(.*?),OU=(.*?),O=(.*?)$/$1@$2/L", "CN=App,OU=Eng,O=X", "app@eng"),
    ("RULE:^CN=(.*?),OU=(.*?)$/$1/U", "CN=app,OU=eng", "APP"),
    ("RULE:^.*[Cc][Nn]=([a-zA-Z0-9.]*).*$/$1/L", "CN=Duke,OU=JavaSoft,O=Sun Microsystems", "duke"),
    ("RULE:^CN=([^,]*),.*$/$1\\$x/", "CN=a,O=b", "a$x"),            # an escaped $ is literal
    ("RULE:^CN=(.*)$/$12/", "CN=a", "a2"),                            # $12 with one group: $1 then 2
    ("  RULE:^CN=(.*)$/u-$1/ ,  DEFAULT  ", "CN=z", "u-z"),
    ("RULE:^CN=(.*?)\\/x,.*$/$1/", "CN=a/x,O=b", "a"),              # an escaped / inside the pattern
])
def test_principal_mapping_rules_as_kafka_s_ssl_principal_mapper(rules: str, dn: str, name: str) -> None:
    """Cases from Kafka's SslPrincipalMapperTest and its documentation."""
    from kafka_broker.tls import PrincipalMapper

    assert PrincipalMapper(rules).name(dn) == name


def test_a_subject_no_rule_matches_is_refused() -> None:
    from kafka_broker.tls import NoMatchingRule, PrincipalMapper

    with pytest.raises(NoMatchingRule, match="CN=z"):
        PrincipalMapper("RULE:^CN=x$/y/").name("CN=z")


def test_mapped_principals_are_the_ones_acls_see(pki: Pki) -> None:
    """``ssl.principal.mapping.rules`` on a broker with ACLs: the client certificate CN=app,OU=eng
    maps to User:app, a super user, and may produce; under DEFAULT the same certificate is
    User:CN=app,OU=eng,O=Example and may not; a certificate no rule maps is refused at the
    handshake."""
    ck = pytest.importorskip("confluent_kafka")
    mtls = {"ssl.client.auth": "required", "ssl.truststore.type": "PEM", "ssl.truststore.location": str(pki.ca),
            "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "super.users": "User:app", "auto.create.topics.enable": "true"}
    client = {"security.protocol": "SSL", "ssl.ca.location": str(pki.ca), "message.timeout.ms": 4000,
              "ssl.certificate.location": str(pki.client_cert), "ssl.key.location": str(pki.client_key)}

    def produce(b: EmbeddedBroker) -> str | None:
        """The delivery error of one record (None: acknowledged)."""
        out: list[str | None] = []
        p = ck.Producer({**client, "bootstrap.servers": ssl_bootstrap(b)})
        p.produce(f"m-{uuid.uuid4().hex[:8]}", b"v", on_delivery=lambda err, _m: out.append(
            None if err is None else err.name()))
        p.flush(8)
        return out[0] if out else "no delivery report"

    for rules, expect in (("RULE:^CN=([^,]*),OU=eng,.*$/$1/L,DEFAULT", None),
                          ("DEFAULT", "TOPIC_AUTHORIZATION_FAILED"),
                          ("RULE:^CN=([^,]*),OU=ops,.*$/$1/", "_MSG_TIMED_OUT")):
        b = _tls_broker(pki, **mtls, **{"ssl.principal.mapping.rules": rules})
        try:
            assert produce(b) == expect, rules
            if expect == "_MSG_TIMED_OUT":
                assert "no ssl.principal.mapping.rules rule applies to CN=app,OU=eng,O=Example" in b.log_text()
        finally:
            b.stop()
            b.cleanup()


def test_tls_only_on_tls_ports(broker: EmbeddedBroker, pki: Pki) -> None:
    """A plaintext Kafka request to the SSL port gets no Kafka answer (the broker reads it as a
    broken ClientHello and closes); a TLS handshake to the PLAINTEXT port fails; both ports go on
    serving their own protocol."""
    from kafka_protocol import encode_request
    from kafka_protocol.messages import REQUESTS

    frame = encode_request(18, 3, 42, "t", REQUESTS[18](client_software_name="t", client_software_version="1"))
    got = plaintext_answer(broker.ssl_port)  # type: ignore[attr-defined]
    assert (42).to_bytes(4, "big") not in got[:12]        # no ApiVersions response, closed (or a TLS alert)
    assert not got or got[0] == 0x15                     # anything sent back is a TLS alert record
    cctx = ssl.create_default_context(cafile=str(pki.ca))
    cctx.check_hostname = False
    with socket.create_connection(("127.0.0.1", broker.port), timeout=10) as s, \
            pytest.raises((ssl.SSLError, ConnectionResetError, TimeoutError)):
        cctx.wrap_socket(s).do_handshake()
    from .conftest import RawClient
    with RawClient(broker.port) as c:
        assert c.call(REQUESTS[18](client_software_name="t", client_software_version="1"), 3).error_code == 0
    with socket.create_connection(("127.0.0.1", broker.ssl_port), timeout=10) as raw, \
            cctx.wrap_socket(raw) as t:                               # type: ignore[attr-defined]
        t.sendall(frame)
        head = t.recv(8)
        assert head[4:8] == (42).to_bytes(4, "big")      # over TLS: answered


def test_mutual_tls_required_admits_only_trusted_client_certificates(pki: Pki) -> None:
    ck = pytest.importorskip("confluent_kafka")
    b = _tls_broker(pki, **{"ssl.client.auth": "required", "ssl.truststore.type": "PEM",
                            "ssl.truststore.location": str(pki.ca)})
    try:
        base = {"bootstrap.servers": ssl_bootstrap(b), "security.protocol": "SSL", "ssl.ca.location": str(pki.ca)}
        topic = f"mtls-{uuid.uuid4().hex[:8]}"

        def produce(extra: dict[str, str]) -> bool:
            """Whether one record is acknowledged within 4 s."""
            acked: list[bool] = []
            p = ck.Producer({**base, **extra, "message.timeout.ms": 4000})
            p.produce(topic, b"v", on_delivery=lambda err, _m: acked.append(err is None))
            p.flush(8)
            return acked == [True]
        assert produce({"ssl.certificate.location": str(pki.client_cert), "ssl.key.location": str(pki.client_key)})
        assert not produce({})                                    # no certificate: never delivered
        assert not produce({"ssl.certificate.location": str(pki.rogue_cert), "ssl.key.location": str(pki.rogue_key)})
        assert "TLS handshake with" in b.log_text()
    finally:
        b.stop()
        b.cleanup()


@pytest.mark.interop
@pytest.mark.skipif(shutil.which("java") is None, reason="java is installed by ./dev test")
def test_apache_kafka_console_consumer_over_tls_with_a_pkcs12_truststore(broker: EmbeddedBroker, pki: Pki,
                                                                         tmp_path: Path) -> None:
    ck = pytest.importorskip("confluent_kafka")

    topic = f"tls-{uuid.uuid4().hex[:8]}"
    p = ck.Producer({"bootstrap.servers": broker.bootstrap})        # written over PLAINTEXT
    for i in range(50):
        p.produce(topic, f"java-{i}".encode())
    assert p.flush(30) == 0
    ts = keytool_truststore(pki.ca, tmp_path / "truststore.p12", PASSWORD)
    out = java_console_consume(ssl_bootstrap(broker), topic, 50, "security.protocol=SSL\nssl.truststore.type=PKCS12\n"
                               f"ssl.truststore.location={ts}\nssl.truststore.password={PASSWORD}\n", tmp_path)
    assert out == [f"java-{i}" for i in range(50)]


def test_the_inter_broker_listener_s_tls_settings_make_the_client_side(pki: Pki, tmp_path: Path) -> None:
    from kafka_broker.cluster.node import inter_broker_security

    base = {"listeners": f"PLAINTEXT://127.0.0.1:{free_port()},SSL://127.0.0.1:{free_port()}",
            "log.dirs": str(tmp_path), "zookeeper.connect": "127.0.0.1:2181", "ssl.keystore.type": "PEM",
            "ssl.keystore.location": str(pki.server_pem), "ssl.truststore.type": "PEM",
            "ssl.truststore.location": str(pki.ca)}
    cfg = BrokerConfig({**base, "security.inter.broker.protocol": "SSL"})
    assert cfg.inter_broker_listener == "SSL"
    sec = inter_broker_security(cfg)
    assert sec.ssl is not None and sec.ssl.check_hostname and sec.sasl is None   # https: names are checked
    assert inter_broker_security(BrokerConfig(base)).ssl is None                  # PLAINTEXT by default
    with pytest.raises(ConfigError, match="no listener is named SSL"):
        BrokerConfig({**base, "listeners": f"PLAINTEXT://127.0.0.1:{free_port()}",
                      "security.inter.broker.protocol": "SSL"})
    with pytest.raises(ConfigError, match="Only one of"):
        BrokerConfig({**base, "security.inter.broker.protocol": "SSL", "inter.broker.listener.name": "SSL"})
