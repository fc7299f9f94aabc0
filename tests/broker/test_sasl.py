"""SASL listeners (issue 14): SaslHandshake v0 and v1 framing with SaslAuthenticate, PLAIN users
from the listener's JAAS config, SCRAM-SHA-256/512 with salted credentials that survive a
restart and are managed through AlterUserScramCredentials (Apache Kafka's ``kafka-configs``),
failed authentication answered and closed, requests before authentication refused, KIP-368
session lifetime, and real clients (confluent-kafka, kafka-python, aiokafka, kcat, Apache
Kafka's console consumer) on SASL_PLAINTEXT and SASL_SSL."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kafka_bench.tlskit import Pki, java_console_consume, keytool_truststore, make_pki
from kafka_broker.config import BrokerConfig, ConfigError
from kafka_broker.sasl import CREDENTIALS_FILE, parse_jaas
from kafka_broker.testing import EmbeddedBroker, free_port
from kafka_protocol.errors import ErrorCode as E
from kafka_protocol.messages import REQUESTS

from .conftest import RawClient, aio_drain

JAAS_PLAIN = ('org.apache.kafka.common.security.plain.PlainLoginModule required username="admin" '
              'password="admin-secret" user_admin="admin-secret" user_alice="alice \\"quoted\\" secret";')
ALICE_PW = 'alice "quoted" secret'
JAAS_SCRAM = "org.apache.kafka.common.security.scram.ScramLoginModule required;"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def _broker(pki: Pki, data_dir: Path | None = None, **extra: str) -> EmbeddedBroker:
    b = EmbeddedBroker(data_dir=data_dir)
    b.sasl_port, b.sasl_ssl_port = free_port(), free_port()  # type: ignore[attr-defined]
    b.settings = {
        "listeners": f"PLAINTEXT://127.0.0.1:{b.port},SASL_PLAINTEXT://127.0.0.1:{b.sasl_port},"  # type: ignore[attr-defined]
                     f"SASL_SSL://127.0.0.1:{b.sasl_ssl_port}",  # type: ignore[attr-defined]
        "sasl.enabled.mechanisms": "PLAIN,SCRAM-SHA-256,SCRAM-SHA-512",
        "listener.name.sasl_plaintext.plain.sasl.jaas.config": JAAS_PLAIN,
        "listener.name.sasl_ssl.plain.sasl.jaas.config": JAAS_PLAIN,
        "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config": JAAS_SCRAM,
        "ssl.keystore.type": "PEM", "ssl.keystore.location": str(pki.server_pem),
        **extra}
    return b.start()


@pytest.fixture(scope="module")
def broker(pki: Pki) -> Iterator[EmbeddedBroker]:
    b = _broker(pki)
    yield b
    b.cleanup()


# -- a SCRAM client, as RFC 5802 and Kafka's ScramSaslClient ----------------------------------

def salted_password(mech: str, password: str, salt: bytes, iterations: int) -> bytes:
    return hashlib.pbkdf2_hmac("sha256" if mech == "SCRAM-SHA-256" else "sha512", password.encode(), salt, iterations)


def upsert(client: RawClient, user: str, password: str, mech: str = "SCRAM-SHA-256", iterations: int = 4096) -> Any:
    A = REQUESTS[51]
    salt = secrets.token_bytes(16)
    req = A(deletions=[], upsertions=[A.ScramCredentialUpsertion(
        name=user, mechanism=1 if mech == "SCRAM-SHA-256" else 2, iterations=iterations, salt=salt,
        salted_password=salted_password(mech, password, salt, iterations))])
    return client.call(req, 0)


def scram_exchange(client: RawClient, user: str, password: str, mech: str = "SCRAM-SHA-256") -> tuple[int, Any]:
    """(error code, last SaslAuthenticate response) of a full exchange over SaslHandshake v1."""
    H = REQUESTS[17]
    A = REQUESTS[36]
    h = hashlib.sha256 if mech == "SCRAM-SHA-256" else hashlib.sha512
    hs = client.call(H(mechanism=mech), 1)
    assert hs.error_code == 0, hs
    cnonce = base64.b64encode(secrets.token_bytes(12)).decode()
    first_bare = f"n={user},r={cnonce}"
    r1 = client.call(A(auth_bytes=f"n,,{first_bare}".encode()), 2)
    if r1.error_code:
        return r1.error_code, r1
    server_first = bytes(r1.auth_bytes).decode()
    attrs = dict(p.split("=", 1) for p in server_first.split(","))
    salted = salted_password(mech, password, base64.b64decode(attrs["s"]), int(attrs["i"]))
    client_key = hmac.new(salted, b"Client Key", h).digest()
    stored = h(client_key).digest()
    without_proof = f"c=biws,r={attrs['r']}"
    auth_msg = f"{first_bare},{server_first},{without_proof}".encode()
    sig = hmac.new(stored, auth_msg, h).digest()
    proof = base64.b64encode(bytes(a ^ b for a, b in zip(client_key, sig, strict=True))).decode()
    r2 = client.call(A(auth_bytes=f"{without_proof},p={proof}".encode()), 2)
    if r2.error_code:
        return r2.error_code, r2
    server_key = hmac.new(salted, b"Server Key", h).digest()
    want = base64.b64encode(hmac.new(server_key, auth_msg, h).digest()).decode()
    assert bytes(r2.auth_bytes).decode() == f"v={want}"          # the broker proved it knows the key
    return 0, r2


def plain(client: RawClient, user: str, pw: str, version: int = 2) -> Any:
    assert client.call(REQUESTS[17](mechanism="PLAIN"), 1).error_code == 0
    return client.call(REQUESTS[36](auth_bytes=f"\0{user}\0{pw}".encode()), version)


def metadata(client: RawClient) -> Any:
    return client.call(REQUESTS[3](topics=None, allow_auto_topic_creation=False,
                                   include_topic_authorized_operations=False), 12)


# -- the exchange over the raw protocol --------------------------------------------------------

def test_plain_with_users_from_the_jaas_config(broker: EmbeddedBroker) -> None:
    with RawClient(broker.sasl_port) as c:  # type: ignore[attr-defined]
        r = plain(c, "alice", ALICE_PW)
        assert r.error_code == 0 and r.session_lifetime_ms == 0
        assert metadata(c).brokers                                 # authenticated: served
    with RawClient(broker.sasl_port) as c:  # type: ignore[attr-defined]
        r = plain(c, "alice", "wrong")
        assert r.error_code == E.SASL_AUTHENTICATION_FAILED and "Invalid username or password" in r.error_message
        assert c.is_closed_by_peer()
    with RawClient(broker.sasl_port) as c:  # type: ignore[attr-defined]
        r = plain(c, "mallory", "x")
        assert r.error_code == E.SASL_AUTHENTICATION_FAILED and c.is_closed_by_peer()


def test_requests_before_authentication_close_the_connection(broker: EmbeddedBroker) -> None:
    with RawClient(broker.sasl_port) as c:  # type: ignore[attr-defined]
        assert c.call(REQUESTS[18](client_software_name="t", client_software_version="1"), 3).error_code == 0
        c.send(REQUESTS[3](topics=None, allow_auto_topic_creation=False,
                           include_topic_authorized_operations=False), 12)
        assert c.is_closed_by_peer()
    with RawClient(broker.sasl_port) as c:  # type: ignore[attr-defined]
        r = c.call(REQUESTS[17](mechanism="GSSAPI"), 1)
        assert r.error_code == E.UNSUPPORTED_SASL_MECHANISM
        assert sorted(r.mechanisms) == ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]
        assert c.is_closed_by_peer()
    with RawClient(broker.port) as c:                              # not a SASL listener
        assert c.call(REQUESTS[17](mechanism="PLAIN"), 1).error_code == E.ILLEGAL_SASL_STATE


@pytest.mark.parametrize("mechanism, token, message", [
    ("PLAIN", b"adminadmin-secret", "expected 3 tokens"),
    ("PLAIN", b"", "expected 3 tokens"),
    ("PLAIN", b"\0admin\0admin-secret\0more", "expected 3 tokens"),
    ("PLAIN", b"alice\0admin\0admin-secret", "authorization id that is different from username"),
    ("PLAIN", b"\0\xff\xfe\0x", "Invalid username or password"),
    ("PLAIN", b"\0admin\0" + b"x" * 600_000, "larger than sasl.server.max.receive.size"),
    ("SCRAM-SHA-256", b"garbage", "Invalid SCRAM client first message"),
    ("SCRAM-SHA-256", b"", "Invalid SCRAM client first message"),
    ("SCRAM-SHA-256", b"p=tls-server-end-point,,n=u,r=abc", "Invalid SCRAM client first message"),
    ("SCRAM-SHA-256", b"n,a=other,n=u,r=abc", "authorization id that is different from username"),
])
def test_malformed_tokens_fail_authentication_and_close(broker: EmbeddedBroker, mechanism: str, token: bytes,
                                                         message: str) -> None:
    """Bad input on the authentication path: SASL_AUTHENTICATION_FAILED with Kafka's message, the
    connection closed, and the broker serving the next client."""
    with RawClient(broker.sasl_port) as c:  # type: ignore[attr-defined]
        assert c.call(REQUESTS[17](mechanism=mechanism), 1).error_code == 0
        r = c.call(REQUESTS[36](auth_bytes=token), 2)
        assert r.error_code == E.SASL_AUTHENTICATION_FAILED and message in r.error_message
        assert c.is_closed_by_peer()
    with RawClient(broker.sasl_port) as c:  # type: ignore[attr-defined]
        assert plain(c, "admin", "admin-secret").error_code == 0 and metadata(c).brokers


def test_out_of_order_sasl_requests(broker: EmbeddedBroker) -> None:
    """SaslAuthenticate before any handshake, and a second handshake mid-exchange, are
    ILLEGAL_SASL_STATE and close the connection (Kafka's IllegalSaslStateException); a handshake
    after authentication (no re-authentication configured) is answered ILLEGAL_SASL_STATE on a
    connection that stays usable, as Kafka's KafkaApis answers it."""
    with RawClient(broker.sasl_port) as c:  # type: ignore[attr-defined]
        r = c.call(REQUESTS[36](auth_bytes=b"\0admin\0admin-secret"), 2)
        assert r.error_code == E.ILLEGAL_SASL_STATE and c.is_closed_by_peer()
    with RawClient(broker.sasl_port) as c:  # type: ignore[attr-defined]
        assert c.call(REQUESTS[17](mechanism="SCRAM-SHA-256"), 1).error_code == 0
        assert c.call(REQUESTS[17](mechanism="PLAIN"), 1).error_code == E.ILLEGAL_SASL_STATE
        assert c.is_closed_by_peer()
    with RawClient(broker.sasl_port) as c:  # type: ignore[attr-defined]
        assert plain(c, "admin", "admin-secret").error_code == 0
        assert c.call(REQUESTS[17](mechanism="PLAIN"), 1).error_code == E.ILLEGAL_SASL_STATE
        assert metadata(c).brokers


def test_a_thousand_failed_logins_and_stalled_handshakes_leave_others_served(broker: EmbeddedBroker) -> None:
    """Bad input on the authentication path at volume: 200 handshakes that never send a token and
    100 SaslAuthenticate frames cut short stay open and cost little, 1,000 failed PLAIN logins (20
    at a time) each get SASL_AUTHENTICATION_FAILED, no sooner than
    ``connection.failed.authentication.delay.ms`` (the rate limit on attempts), and a closed
    connection; meanwhile a fresh client authenticates and is served, and the broker's RSS stays
    within a bound."""
    import struct
    from concurrent.futures import ThreadPoolExecutor

    from .test_bombs import _status_bytes

    port = broker.sasl_port  # type: ignore[attr-defined]
    pid = broker.proc.pid  # type: ignore[union-attr]
    before = _status_bytes(pid, "VmRSS")
    stalled: list[RawClient] = []
    try:
        for _ in range(200):
            c = RawClient(port)
            assert c.call(REQUESTS[17](mechanism="PLAIN"), 1).error_code == 0
            stalled.append(c)
        for _ in range(100):
            c = RawClient(port)
            assert c.call(REQUESTS[17](mechanism="PLAIN"), 1).error_code == 0
            c.sock.sendall(struct.pack(">i", 4096) + b"\x00\x24\x00\x02" + b"\x00" * 20)   # 28 of 4,100 bytes
            stalled.append(c)

        def attempt(i: int) -> tuple[int, bool, float]:
            with RawClient(port) as c:
                t0 = time.monotonic()
                r = plain(c, "admin", f"wrong-{i}")
                return r.error_code, c.is_closed_by_peer(), time.monotonic() - t0
        with ThreadPoolExecutor(20) as ex:
            results = list(ex.map(attempt, range(1000)))
        assert all(code == E.SASL_AUTHENTICATION_FAILED and closed for code, closed, _ in results)
        assert min(took for _, _, took in results) >= 0.09       # the default 100 ms delay, each time
        with RawClient(port, timeout=5) as c:
            assert plain(c, "admin", "admin-secret").error_code == 0 and metadata(c).brokers
        grown = _status_bytes(pid, "VmRSS") - before
        assert grown < 64 << 20, f"RSS grew {grown >> 20} MiB"
    finally:
        for c in stalled:
            c.close()


def test_saslhandshake_v0_sends_raw_tokens(broker: EmbeddedBroker) -> None:
    with RawClient(broker.sasl_port) as c:  # type: ignore[attr-defined]
        assert c.call(REQUESTS[17](mechanism="PLAIN"), 0).error_code == 0
        tok = b"\0admin\0admin-secret"
        c.send_raw(len(tok).to_bytes(4, "big") + tok)
        assert c.recv_frame() == b""                               # PLAIN's empty answer, raw
        assert metadata(c).brokers
    with RawClient(broker.sasl_port) as c:  # type: ignore[attr-defined]
        assert c.call(REQUESTS[17](mechanism="PLAIN"), 0).error_code == 0
        tok = b"\0admin\0nope"
        c.send_raw(len(tok).to_bytes(4, "big") + tok)
        assert c.is_closed_by_peer()                               # v0: no answer, closed


def test_scram_credentials_are_salted_durable_and_managed_by_the_admin_apis(pki: Pki, tmp_path: Path) -> None:
    b = _broker(pki, data_dir=tmp_path / "b")
    try:
        with RawClient(b.port) as admin:
            r = upsert(admin, "bob", "bob-pw", "SCRAM-SHA-256")
            assert [x.error_code for x in r.results] == [0]
            r = upsert(admin, "bob", "bob-pw-512", "SCRAM-SHA-512", iterations=8192)
            assert [x.error_code for x in r.results] == [0]
            assert upsert(admin, "eve", "x", iterations=100).results[0].error_code == E.UNACCEPTABLE_CREDENTIAL
            D = REQUESTS[50]
            d = admin.call(D(users=None), 0)
            infos = {(x.user, i.mechanism, i.iterations) for x in d.results for i in x.credential_infos}
            assert infos == {("bob", 1, 4096), ("bob", 2, 8192)}
            d = admin.call(D(users=[D.UserName(name="nobody")]), 0)
            assert d.results[0].error_code == E.RESOURCE_NOT_FOUND
        with RawClient(b.sasl_port) as c:  # type: ignore[attr-defined]
            assert scram_exchange(c, "bob", "bob-pw", "SCRAM-SHA-256")[0] == 0
            assert metadata(c).brokers
        with RawClient(b.sasl_port) as c:  # type: ignore[attr-defined]
            assert scram_exchange(c, "bob", "bob-pw-512", "SCRAM-SHA-512")[0] == 0
        with RawClient(b.sasl_port) as c:  # type: ignore[attr-defined]
            code, r = scram_exchange(c, "bob", "wrong", "SCRAM-SHA-256")
            assert code == E.SASL_AUTHENTICATION_FAILED and c.is_closed_by_peer()
        with RawClient(b.sasl_port) as c:  # type: ignore[attr-defined]
            assert scram_exchange(c, "nobody", "x")[0] == E.SASL_AUTHENTICATION_FAILED
        stored = (tmp_path / "b" / "logs" / CREDENTIALS_FILE).read_text()
        assert "bob-pw" not in stored and "stored_key=" in stored and "salt=" in stored
        b.restart()
        with RawClient(b.sasl_port) as c:  # type: ignore[attr-defined]
            assert scram_exchange(c, "bob", "bob-pw", "SCRAM-SHA-256")[0] == 0     # after a restart
        with RawClient(b.port) as admin:
            A = REQUESTS[51]
            r = admin.call(A(deletions=[A.ScramCredentialDeletion(name="bob", mechanism=1)], upsertions=[]), 0)
            assert r.results[0].error_code == 0
        with RawClient(b.sasl_port) as c:  # type: ignore[attr-defined]
            assert scram_exchange(c, "bob", "bob-pw", "SCRAM-SHA-256")[0] == E.SASL_AUTHENTICATION_FAILED
        assert json.loads((tmp_path / "b" / "logs" / CREDENTIALS_FILE).read_text())["bob"].keys() == {"SCRAM-SHA-512"}
    finally:
        b.cleanup()


def test_session_lifetime_and_reauthentication(pki: Pki) -> None:
    b = _broker(pki, **{"connections.max.reauth.ms": "1500"})
    try:
        with RawClient(b.sasl_port) as c:  # type: ignore[attr-defined]
            r = plain(c, "alice", ALICE_PW)
            assert r.error_code == 0 and r.session_lifetime_ms == 1500
            time.sleep(1.0)
            r = plain(c, "alice", ALICE_PW)                    # re-authenticated in time (KIP-368)
            assert r.error_code == 0
            time.sleep(1.0)
            assert metadata(c).brokers                         # 2 s after the first, 1 s after the second
            # a different principal may not take the connection over
            assert plain(c, "admin", "admin-secret").error_code == E.SASL_AUTHENTICATION_FAILED
            assert c.is_closed_by_peer()
        with RawClient(b.sasl_port) as c:  # type: ignore[attr-defined]
            assert plain(c, "alice", ALICE_PW).error_code == 0
            time.sleep(1.8)
            c.send(REQUESTS[3](topics=None, allow_auto_topic_creation=False,
                               include_topic_authorized_operations=False), 12)
            assert c.is_closed_by_peer()                       # expired without re-authenticating
    finally:
        b.cleanup()


# -- configuration ---------------------------------------------------------------------

def test_jaas_parsing() -> None:
    module, opts = parse_jaas(JAAS_PLAIN)
    assert module == "org.apache.kafka.common.security.plain.PlainLoginModule"
    assert opts == {"username": "admin", "password": "admin-secret", "user_admin": "admin-secret",
                    "user_alice": ALICE_PW}


@pytest.mark.parametrize("settings,message", [
    ({}, "not GSSAPI"),                                              # Kafka's default mechanism
    ({"sasl.enabled.mechanisms": "PLAIN"}, "needs listener.name.sasl_plaintext.plain.sasl.jaas.config"),
    ({"sasl.enabled.mechanisms": "PLAIN", "listener.name.sasl_plaintext.plain.sasl.jaas.config":
      "org.example.Other required;"}, "not org.apache.kafka.common.security.plain.PlainLoginModule"),
    ({"sasl.enabled.mechanisms": "PLAIN", "listener.name.sasl_plaintext.plain.sasl.jaas.config":
      "org.apache.kafka.common.security.plain.PlainLoginModule required;"}, "no user_<name>"),
    ({"sasl.enabled.mechanisms": "SCRAM-SHA-256", "listener.name.other.sasl.enabled.mechanisms": "PLAIN"},
     "unknown listener"),
    ({"sasl.enabled.mechanisms": "OAUTHBEARER"}, "not OAUTHBEARER"),
    ({"sasl.enabled.mechanisms": "SCRAM-SHA-512", "security.inter.broker.protocol": "SASL_PLAINTEXT",
      "sasl.mechanism.inter.broker.protocol": "SCRAM-SHA-512"}, "needs username"),
    ({"sasl.enabled.mechanisms": "SCRAM-SHA-512", "security.inter.broker.protocol": "SASL_PLAINTEXT",
      "sasl.mechanism.inter.broker.protocol": "PLAIN"}, "is not enabled on the inter-broker listener"),
])
def test_unusable_sasl_settings_stop_the_broker(settings: dict[str, str], message: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)").replace("<", ".")
                       .replace(">", ".")):
        BrokerConfig({"listeners": f"SASL_PLAINTEXT://127.0.0.1:{free_port()}", "log.dirs": str(tmp_path),
                      "listener.security.protocol.map": "SASL_PLAINTEXT:SASL_PLAINTEXT", **settings})


# -- real clients ----------------------------------------------------------------------

def _roundtrip_confluent(conf: dict[str, Any], n: int = 200) -> list[bytes]:
    ck = pytest.importorskip("confluent_kafka")
    topic = f"sasl-{uuid.uuid4().hex[:8]}"
    p = ck.Producer(conf)
    for i in range(n):
        p.produce(topic, f"v{i}".encode())
    assert p.flush(30) == 0
    c = ck.Consumer({**conf, "group.id": f"g-{topic}", "auto.offset.reset": "earliest"})
    c.subscribe([topic])
    got: list[bytes] = []
    deadline = time.monotonic() + 30
    while len(got) < n and time.monotonic() < deadline:
        m = c.poll(0.5)
        if m is not None and m.error() is None:
            got.append(m.value())
    c.close()
    return got


@pytest.mark.interop
def test_confluent_kafka_plain_and_scram_on_both_sasl_listeners(broker: EmbeddedBroker, pki: Pki) -> None:
    ck = pytest.importorskip("confluent_kafka")
    from confluent_kafka.admin import (
        AdminClient,
        ScramCredentialInfo,
        ScramMechanism,
        UserScramCredentialUpsertion,
    )

    plain_conf = {"bootstrap.servers": f"127.0.0.1:{broker.sasl_port}", "security.protocol": "SASL_PLAINTEXT",  # type: ignore[attr-defined]
                  "sasl.mechanism": "PLAIN", "sasl.username": "alice", "sasl.password": ALICE_PW}
    assert len(_roundtrip_confluent(plain_conf)) == 200
    # the admin API over SASL creates a SCRAM user; it then works over SASL_SSL
    admin = AdminClient(plain_conf)
    fs = admin.alter_user_scram_credentials([UserScramCredentialUpsertion(
        "carol", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 4096), b"carol-pw")])
    for f in fs.values():
        f.result()
    ssl_conf = {"bootstrap.servers": f"127.0.0.1:{broker.sasl_ssl_port}", "security.protocol": "SASL_SSL",  # type: ignore[attr-defined]
                "ssl.ca.location": str(pki.ca), "sasl.mechanism": "SCRAM-SHA-512", "sasl.username": "carol",
                "sasl.password": "carol-pw"}
    assert len(_roundtrip_confluent(ssl_conf)) == 200
    errors: list[Any] = []
    p = ck.Producer({**ssl_conf, "sasl.password": "wrong", "error_cb": errors.append})
    p.poll(3)
    assert any(e.code() == ck.KafkaError._AUTHENTICATION for e in errors), errors


@pytest.mark.interop
def test_kafka_python_and_aiokafka_plain_and_scram(broker: EmbeddedBroker) -> None:
    kp = pytest.importorskip("kafka")
    with RawClient(broker.port) as admin:
        assert upsert(admin, "dave", "dave-pw", "SCRAM-SHA-256").results[0].error_code == 0
    topic = f"sasl-{uuid.uuid4().hex[:8]}"
    boot = f"127.0.0.1:{broker.sasl_port}"  # type: ignore[attr-defined]
    prod = kp.KafkaProducer(bootstrap_servers=boot, security_protocol="SASL_PLAINTEXT", sasl_mechanism="PLAIN",
                            sasl_plain_username="alice", sasl_plain_password=ALICE_PW)
    for i in range(100):
        prod.send(topic, f"kp-{i}".encode())
    prod.flush(30)
    prod.close()
    prod = kp.KafkaProducer(bootstrap_servers=boot, security_protocol="SASL_PLAINTEXT",
                            sasl_mechanism="SCRAM-SHA-256", sasl_plain_username="dave", sasl_plain_password="dave-pw")
    for i in range(100):
        prod.send(topic, f"kps-{i}".encode())
    prod.flush(30)
    prod.close()

    import asyncio

    import aiokafka

    async def run() -> list[bytes]:
        return await aio_drain(aiokafka.AIOKafkaConsumer(
            topic, bootstrap_servers=boot, security_protocol="SASL_PLAINTEXT", sasl_mechanism="SCRAM-SHA-256",
            sasl_plain_username="dave", sasl_plain_password="dave-pw", auto_offset_reset="earliest"), 200)
    got = asyncio.run(run())
    assert sorted(got) == sorted([f"kp-{i}".encode() for i in range(100)] + [f"kps-{i}".encode() for i in range(100)])


@pytest.mark.interop
@pytest.mark.skipif(shutil.which("kcat") is None, reason="kcat is installed by ./dev test")
def test_kcat_plain(broker: EmbeddedBroker) -> None:
    topic = f"sasl-{uuid.uuid4().hex[:8]}"
    sasl = ["-X", "security.protocol=SASL_PLAINTEXT", "-X", "sasl.mechanism=PLAIN", "-X", "sasl.username=admin",
            "-X", "sasl.password=admin-secret"]
    boot = f"127.0.0.1:{broker.sasl_port}"  # type: ignore[attr-defined]
    lines = "".join(f"line-{i}\n" for i in range(100)).encode()
    subprocess.run(["kcat", "-b", boot, *sasl, "-P", "-t", topic], input=lines, check=True, timeout=60)
    out = subprocess.run(["kcat", "-b", boot, *sasl, "-C", "-t", topic, "-e", "-q"], capture_output=True,
                         check=True, timeout=60).stdout
    assert out.splitlines() == lines.splitlines()


@pytest.mark.interop
@pytest.mark.skipif(shutil.which("java") is None, reason="java is installed by ./dev test")
def test_kafka_configs_adds_a_scram_user_and_the_java_consumer_uses_it(broker: EmbeddedBroker, pki: Pki,
                                                                        tmp_path: Path) -> None:
    ck = pytest.importorskip("confluent_kafka")
    from kafka_bench import apache_kafka as ak

    r = ak.java_main(ak.CONFIGS, ["--bootstrap-server", broker.bootstrap, "--alter", "--entity-type", "users",
                                  "--entity-name", "erin", "--add-config",
                                  "SCRAM-SHA-512=[iterations=8192,password=erin-pw]"], timeout=90, check=False)
    assert r.returncode == 0, (r.stdout + r.stderr).decode()[-3000:]
    # (kafka-configs --describe users also asks for client quotas, which kafka-core does not have)
    from confluent_kafka.admin import AdminClient
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    desc = admin.describe_user_scram_credentials(["erin"])
    infos = desc["erin"].result().scram_credential_infos
    assert [(i.mechanism.name, i.iterations) for i in infos] == [("SCRAM_SHA_512", 8192)]
    topic = f"sasl-{uuid.uuid4().hex[:8]}"
    p = ck.Producer({"bootstrap.servers": broker.bootstrap})
    for i in range(30):
        p.produce(topic, f"java-{i}".encode())
    assert p.flush(30) == 0
    ts = keytool_truststore(pki.ca, tmp_path / "truststore.p12", "changeit")
    out = java_console_consume(f"127.0.0.1:{broker.sasl_ssl_port}", topic, 30,  # type: ignore[attr-defined]
                               "security.protocol=SASL_SSL\nsasl.mechanism=SCRAM-SHA-512\n"
                               "sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required "
                               'username="erin" password="erin-pw";\n'
                               f"ssl.truststore.type=PKCS12\nssl.truststore.location={ts}\n"
                               "ssl.truststore.password=changeit\n", tmp_path)
    assert out == [f"java-{i}" for i in range(30)]



def test_the_brokers_scram_client_and_server_agree_and_detect_a_fake() -> None:
    import asyncio

    from kafka_broker.sasl import ScramCredential, ScramCredentials, ScramServer
    from kafka_protocol.sasl import AuthenticationFailed, ScramClient

    async def run(password: str, mech: str, tamper: bool = False) -> None:
        store = ScramCredentials(None)
        await store.alter([("u", mech, ScramCredential.from_password(mech, "right", 4096))])
        srv, cli = ScramServer(mech), ScramClient(mech, "u", password)
        final = await srv.step(cli.final(await srv.step(cli.first(), store)), store)
        cli.verify(b"v=" + base64.b64encode(b"\0" * 32) if tamper else final)
    for mech in ("SCRAM-SHA-256", "SCRAM-SHA-512"):
        asyncio.run(run("right", mech))
        with pytest.raises(AuthenticationFailed, match="Invalid user credentials"):
            asyncio.run(run("wrong", mech))
        with pytest.raises(AuthenticationFailed, match="not the real broker"):
            asyncio.run(run("right", mech, tamper=True))
