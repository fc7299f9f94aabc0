"""kafka_client over TLS and SASL (issue 14): ``security_protocol`` SSL, SASL_PLAINTEXT and
SASL_SSL with PLAIN and SCRAM-SHA-512, the kafka-python setting names and librdkafka's dotted
ones, against kafka-core and Apache Kafka 4.x configured alike (PLAIN users from the listener's
JAAS config, a SCRAM user created with AlterUserScramCredentials, a test CA's certificate)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kafka_bench.apache_kafka import ApacheKafka
from kafka_bench.tlskit import PASSWORD, Pki, make_pki
from kafka_broker.testing import EmbeddedBroker, free_port
from kafka_client import AdminClient, AIOConsumer, AIOProducer, Consumer, NewTopic, Producer
from kafka_client.errors import SaslAuthenticationFailedError, SslAuthenticationError

JAAS_PLAIN = ('org.apache.kafka.common.security.plain.PlainLoginModule required username="admin" '
              'password="admin-pw" user_admin="admin-pw" user_alice="alice-pw";')
JAAS_SCRAM = "org.apache.kafka.common.security.scram.ScramLoginModule required;"


class Secured:
    """A broker with SSL, SASL_PLAINTEXT and SASL_SSL listeners next to PLAINTEXT."""

    def __init__(self, kind: str, pki: Pki) -> None:
        self.kind = kind
        self.pki = pki
        self.ports = {"SSL": free_port(), "SASL_PLAINTEXT": free_port(), "SASL_SSL": free_port()}
        self.proc: Any = None

    def settings(self, plain_port: int) -> dict[str, str]:
        eps = f"PLAINTEXT://127.0.0.1:{plain_port}," + ",".join(f"{n}://127.0.0.1:{p}" for n, p in self.ports.items())
        return {"listeners": eps, "advertised.listeners": eps,
                "sasl.enabled.mechanisms": "PLAIN,SCRAM-SHA-512",
                "listener.name.sasl_plaintext.plain.sasl.jaas.config": JAAS_PLAIN,
                "listener.name.sasl_ssl.plain.sasl.jaas.config": JAAS_PLAIN,
                "listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config": JAAS_SCRAM,
                "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config": JAAS_SCRAM,
                "ssl.keystore.type": "PKCS12", "ssl.keystore.location": str(self.pki.server_p12),
                "ssl.keystore.password": PASSWORD, "ssl.key.password": PASSWORD}

    def start(self) -> Secured:
        if self.kind == "apache":
            ak = ApacheKafka()
            s = self.settings(ak.port)
            s["listeners"] += f",CONTROLLER://127.0.0.1:{ak.controller_port}"
            s["listener.security.protocol.map"] = ("CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SSL:SSL,"
                                                   "SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL")
            ak.extra = s
            self.proc = ak.start()
        else:
            b = EmbeddedBroker()
            b.settings = self.settings(b.port)
            del b.settings["advertised.listeners"]
            self.proc = b.start()
        self.plain = f"127.0.0.1:{self.proc.port}"
        return self

    def stop(self) -> None:
        if self.kind == "apache":
            self.proc.stop()
        else:
            self.proc.cleanup()

    def boot(self, listener: str) -> str:
        return f"127.0.0.1:{self.ports[listener]}"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module", params=[pytest.param("apache", marks=pytest.mark.interop), "kafka-core"])
def secured(request: pytest.FixtureRequest, pki: Pki) -> Iterator[Secured]:
    s = Secured(request.param, pki).start()
    # a SCRAM user, created the way an operator does (AlterUserScramCredentials)

    import kafka_protocol as kp  # noqa: F401
    _alter_scram(s.plain, "bob", "bob-pw")
    yield s
    s.stop()


def _alter_scram(bootstrap: str, user: str, password: str) -> None:
    import hashlib
    import secrets

    from kafka_client.cluster import Cluster
    from kafka_protocol.messages import AlterUserScramCredentialsRequest as A

    async def run() -> None:
        c = Cluster(bootstrap)
        await c.bootstrap_metadata()
        salt = secrets.token_bytes(16)
        req = A(deletions=[], upsertions=[A.ScramCredentialUpsertion(
            name=user, mechanism=2, iterations=4096, salt=salt,
            salted_password=hashlib.pbkdf2_hmac("sha512", password.encode(), salt, 4096))])
        conn = await c.connection(next(iter(c.brokers)))
        resp = await conn.send(req, version=0)
        assert [r.error_code for r in resp.results] == [0], resp
        await c.close()
    asyncio.run(run())


def _settings(s: Secured, listener: str, **kw: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"security_protocol": listener}
    if "SSL" in listener:
        out["ssl_cafile"] = str(s.pki.ca)
    out.update(kw)
    return out


CASES = [
    ("SSL", {}),
    ("SASL_PLAINTEXT", {"sasl_mechanism": "PLAIN", "sasl_plain_username": "alice", "sasl_plain_password": "alice-pw"}),
    ("SASL_PLAINTEXT", {"sasl_mechanism": "SCRAM-SHA-512", "sasl_plain_username": "bob", "sasl_plain_password": "bob-pw"}),
    ("SASL_SSL", {"sasl_mechanism": "SCRAM-SHA-512", "sasl_plain_username": "bob", "sasl_plain_password": "bob-pw"}),
]


@pytest.mark.parametrize("listener,creds", CASES, ids=["ssl", "sasl-plain", "sasl-scram", "sasl-ssl-scram"])
def test_produce_and_consume(secured: Secured, listener: str, creds: dict[str, str]) -> None:
    topic = f"sec-{uuid.uuid4().hex[:8]}"
    conf = _settings(secured, listener, **creds)
    boot = secured.boot(listener)
    with AdminClient(boot, **conf) as admin:
        admin.create_topics([NewTopic(topic, 2)])

    async def run() -> list[bytes]:
        async with AIOProducer(boot, **conf) as p:
            for i in range(300):
                await p.send(topic, f"v{i}".encode())
            await p.flush()
        out: list[bytes] = []
        async with AIOConsumer(topic, bootstrap_servers=boot, group_id=f"g-{topic}", auto_offset_reset="earliest",
                               **conf) as c:
            while len(out) < 300:
                batch = await asyncio.wait_for(c.getmany(timeout_ms=1000), 30)
                out += [r.value for rs in batch.values() for r in rs]
        return out
    assert sorted(asyncio.run(run())) == sorted(f"v{i}".encode() for i in range(300))


def test_sync_clients_take_librdkafka_names(secured: Secured) -> None:
    topic = f"sec-{uuid.uuid4().hex[:8]}"
    conf = {"security.protocol": "SASL_SSL", "ssl.ca.location": str(secured.pki.ca), "sasl.mechanism": "PLAIN",
            "sasl.username": "alice", "sasl.password": "alice-pw"}
    boot = secured.boot("SASL_SSL")
    with Producer(boot, **conf) as p:    # type: ignore[arg-type]
        for i in range(50):
            p.send(topic, f"s{i}".encode())
        p.flush(30)
    with Consumer(topic, bootstrap_servers=boot, auto_offset_reset="earliest", group_id=f"g-{topic}", **conf) as c:  # type: ignore[arg-type]
        got: list[bytes] = []
        for _ in range(60):
            got += [r.value for rs in c.poll(1.0).values() for r in rs]
            if len(got) >= 50:
                break
    assert sorted(got) == sorted(f"s{i}".encode() for i in range(50))


def test_wrong_credentials_and_an_untrusted_server_are_refused(secured: Secured, tmp_path: Path) -> None:
    for mech, user in (("PLAIN", "alice"), ("SCRAM-SHA-512", "bob")):
        conf = _settings(secured, "SASL_PLAINTEXT", sasl_mechanism=mech, sasl_plain_username=user,
                         sasl_plain_password="wrong")
        with pytest.raises(SaslAuthenticationFailedError):
            AdminClient(secured.boot("SASL_PLAINTEXT"), connect_timeout_ms=5000, **conf).list_topics()
    other = make_pki(tmp_path / "other")        # a CA that did not sign the broker's certificate
    with pytest.raises(SslAuthenticationError, match="CERTIFICATE_VERIFY_FAILED|certificate verify failed"):
        AdminClient(secured.boot("SSL"), security_protocol="SSL", ssl_cafile=str(other.ca),
                    connect_timeout_ms=5000).list_topics()


def test_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="security_protocol='TLS'"):
        AdminClient("127.0.0.1:1", security_protocol="TLS")
    with pytest.raises(ValueError, match="needs sasl_plain_username"):
        AdminClient("127.0.0.1:1", security_protocol="SASL_PLAINTEXT")
    with pytest.raises(ValueError, match="sasl_mechanism='GSSAPI'"):
        AdminClient("127.0.0.1:1", security_protocol="SASL_PLAINTEXT", sasl_mechanism="GSSAPI",
                    sasl_plain_username="u", sasl_plain_password="p")
