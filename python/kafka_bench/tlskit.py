"""Certificates for the TLS tests and benchmarks: a CA, a server certificate for 127.0.0.1/localhost, a client
certificate, and a second CA that nobody trusts, written as PEM and PKCS12 (``cryptography``)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

PASSWORD = "kc-secret"


def _name(**attrs: str) -> x509.Name:
    oids = {"CN": NameOID.COMMON_NAME, "OU": NameOID.ORGANIZATIONAL_UNIT_NAME, "O": NameOID.ORGANIZATION_NAME}
    return x509.Name([x509.NameAttribute(oids[k], v) for k, v in attrs.items()])


def _cert(subject: x509.Name, key: ec.EllipticCurvePrivateKey, issuer: x509.Name,
          issuer_key: ec.EllipticCurvePrivateKey, *, ca: bool, sans: list[x509.GeneralName] | None = None,
          ) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    b = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(key.public_key())
         .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(hours=1))
         .not_valid_after(now + dt.timedelta(days=2))
         .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if sans:
        b = b.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return b.sign(issuer_key, hashes.SHA256())


@dataclass
class Pki:
    dir: Path
    ca: Path                 # the CA certificate (PEM): the truststore
    server_pem: Path         # the server's key (PKCS#8) + certificate (PEM keystore)
    server_p12: Path         # the same as PKCS12, password PASSWORD
    truststore_p12: Path     # the CA as PKCS12 (a Java-style truststore), password PASSWORD
    client_cert: Path
    client_key: Path
    rogue_cert: Path         # a client certificate from a CA the broker does not trust
    rogue_key: Path
    client_subject: str = "CN=app,OU=eng,O=Example"   # encoded O, OU, CN (most general first), as usual


def _pem_key(k: ec.EllipticCurvePrivateKey) -> bytes:
    return k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                           serialization.NoEncryption())


def make_pki(d: Path) -> Pki:
    d.mkdir(parents=True, exist_ok=True)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name(CN="kc-test-ca")
    ca = _cert(ca_name, ca_key, ca_name, ca_key, ca=True)
    srv_key = ec.generate_private_key(ec.SECP256R1())
    import ipaddress
    srv = _cert(_name(CN="localhost"), srv_key, ca_name, ca_key, ca=False,
                sans=[x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
    cli_key = ec.generate_private_key(ec.SECP256R1())
    cli = _cert(_name(O="Example", OU="eng", CN="app"), cli_key, ca_name, ca_key, ca=False)
    rogue_ca_key = ec.generate_private_key(ec.SECP256R1())
    rogue_ca_name = _name(CN="rogue-ca")
    rogue_key = ec.generate_private_key(ec.SECP256R1())
    rogue = _cert(_name(CN="intruder"), rogue_key, rogue_ca_name, rogue_ca_key, ca=False)
    pem = serialization.Encoding.PEM
    p = Pki(d, d / "ca.pem", d / "server.pem", d / "server.p12", d / "truststore.p12", d / "client.pem",
            d / "client.key", d / "rogue.pem", d / "rogue.key")
    p.ca.write_bytes(ca.public_bytes(pem))
    p.server_pem.write_bytes(_pem_key(srv_key) + srv.public_bytes(pem) + ca.public_bytes(pem))
    enc = serialization.BestAvailableEncryption(PASSWORD.encode())
    p.server_p12.write_bytes(pkcs12.serialize_key_and_certificates(b"server", srv_key, srv, [ca], enc))
    p.truststore_p12.write_bytes(pkcs12.serialize_key_and_certificates(b"ca", None, None, [ca], enc))
    p.client_cert.write_bytes(cli.public_bytes(pem))
    p.client_key.write_bytes(_pem_key(cli_key))
    p.rogue_cert.write_bytes(rogue.public_bytes(pem))
    p.rogue_key.write_bytes(_pem_key(rogue_key))
    return p


def plaintext_answer(port: int, correlation_id: int = 42) -> bytes:
    """Send a plaintext ApiVersions request to ``port`` and read until the broker closes: what a
    TLS port sends back to a client that does not speak TLS (nothing, or a TLS alert record --
    never a Kafka response with ``correlation_id``)."""
    import socket

    from kafka_protocol import ApiVersionsRequest, encode_request

    frame = encode_request(18, 3, correlation_id, "t",
                           ApiVersionsRequest(client_software_name="t", client_software_version="1"))
    got = b""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(frame)
        try:
            while chunk := s.recv(65536):
                got += chunk
        except (ConnectionResetError, TimeoutError):
            pass
    return got


def keytool_truststore(ca: Path, path: Path, password: str) -> Path:
    """A PKCS12 truststore as a Java operator makes one: ``keytool -importcert`` marks the CA a
    trusted entry (a store written by ``cryptography`` has no such mark, and Java ignores it)."""
    import shutil
    import subprocess

    keytool = Path(shutil.which("java") or "java").resolve().parent / "keytool"
    subprocess.run([str(keytool), "-importcert", "-noprompt", "-alias", "ca", "-file", str(ca), "-keystore",
                    str(path), "-storetype", "PKCS12", "-storepass", password], check=True, capture_output=True,
                   timeout=60)
    return path


def java_console_consume(bootstrap: str, topic: str, n: int, client_properties: str, work: Path) -> list[str]:
    """Apache Kafka's console consumer reading ``n`` records of ``topic`` from the beginning with
    the given client properties (security settings); its output lines."""
    from kafka_bench import apache_kafka as ak

    props = work / "client.properties"
    props.write_text(client_properties)
    r = ak.java_main(ak.CONSOLE_CONSUMER, ["--bootstrap-server", bootstrap, "--topic", topic, "--from-beginning",
                                           "--max-messages", str(n), "--timeout-ms", "30000",
                                           "--consumer.config", str(props)], timeout=90, check=False)
    out = r.stdout.decode().splitlines()
    if len(out) != n:
        raise AssertionError(f"console consumer printed {len(out)} of {n} lines: " + r.stderr.decode()[-3000:])
    return out
