"""TLS for SSL listeners: Kafka's ``ssl.*`` settings turned into an ``ssl.SSLContext``, and the
principal of a client certificate.

Settings (Kafka's names, per listener through ``listener.name.<listener>.ssl.*`` overriding the
broker-wide ``ssl.*``, as Kafka's ``ListenerName.configPrefix`` does):

- keystore: ``ssl.keystore.type`` PEM (``ssl.keystore.location`` naming one file holding the
  private key, PKCS#8, optionally encrypted with ``ssl.key.password``, and the certificate chain;
  or the key and chain inline in ``ssl.keystore.key`` / ``ssl.keystore.certificate.chain``) or
  PKCS12 (``ssl.keystore.location`` + ``ssl.keystore.password``, read with ``cryptography``).
  Kafka's default type is JKS; a Java ``KeyStore`` of type JKS reads PKCS12 files too (JDK 9+), so
  a file with that type is read as PKCS12 unless it really is a JKS file (magic 0xFEEDFEED), which
  is refused with the keytool command that converts it.
- truststore: ``ssl.truststore.type`` PEM (``ssl.truststore.location`` or inline
  ``ssl.truststore.certificates``) or PKCS12/JKS as above; only needed to verify client
  certificates (``ssl.client.auth``) and, for the inter-broker client, the brokers.
- ``ssl.client.auth`` none | requested | required; ``ssl.enabled.protocols`` (TLSv1.2, TLSv1.3);
  ``ssl.cipher.suites`` (OpenSSL names for TLS 1.2; TLS 1.3 suites are OpenSSL's defaults);
  ``ssl.principal.mapping.rules`` (Kafka's SslPrincipalMapper: ``DEFAULT`` is ``User:`` + the
  certificate's subject in RFC 2253 form, as Java's ``X500Principal.getName()`` prints it;
  ``RULE:pattern/replacement/[LU]`` rules, comma-separated, are tried in order on that subject and
  the first whose pattern matches it whole gives the name, replaced as Java's ``replaceAll`` does,
  lower- or upper-cased with ``L``/``U``; a subject no rule matches fails the handshake's
  authentication and the connection is closed, as Kafka does).

Why Python's ``ssl`` and not kernel TLS: responses on a TLS connection are encrypted in user
space (OpenSSL, in C, through an ``SSLObject`` on memory BIOs, see ``server.TlsConnection``), so
file slices are read with ``pread`` and encrypted instead of sent with sendfile.  Kernel TLS
(``SSL_OP_ENABLE_KTLS``) would need OpenSSL to own the socket (a socket BIO) and Python 3.12+'s
``ssl.OP_ENABLE_KTLS``; this broker runs on 3.11 and drives its own sockets.
"""

from __future__ import annotations

import contextlib
import os
import re
import ssl
import tempfile
from collections.abc import Mapping
from typing import Any

SSL_KEYS = (
    "ssl.keystore.type", "ssl.keystore.location", "ssl.keystore.password", "ssl.key.password",
    "ssl.keystore.key", "ssl.keystore.certificate.chain", "ssl.truststore.type", "ssl.truststore.location",
    "ssl.truststore.password", "ssl.truststore.certificates", "ssl.client.auth", "ssl.enabled.protocols",
    "ssl.protocol", "ssl.cipher.suites", "ssl.endpoint.identification.algorithm", "ssl.principal.mapping.rules",
)
JKS_MAGIC = b"\xfe\xed\xfe\xed"
_PROTOCOLS = {"TLSv1.2": ssl.TLSVersion.TLSv1_2, "TLSv1.3": ssl.TLSVersion.TLSv1_3}


class TlsConfigError(ValueError):
    """A listener's TLS settings cannot be used (the broker refuses to start, naming why)."""


def _read(path: str, what: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise TlsConfigError(f"{what} {path!r} cannot be read: {e.strerror}") from None


def _pkcs12(data: bytes, password: str | None, path: str, key: str) -> tuple[bytes | None, list[bytes]]:
    """(private key PEM or None, certificate PEMs) of a PKCS12 store."""
    if data[:4] == JKS_MAGIC:
        raise TlsConfigError(
            f"{key}={path} is a JKS keystore, which kafka-core cannot read; convert it with "
            f"`keytool -importkeystore -srckeystore {path} -destkeystore store.p12 -deststoretype PKCS12` "
            "and set the type to PKCS12 (or use PEM)")
    from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, pkcs12

    try:
        k, cert, extra = pkcs12.load_key_and_certificates(data, password.encode() if password else None)
    except ValueError as e:
        raise TlsConfigError(f"{key}={path}: cannot open the PKCS12 store ({e}); check its password") from None
    pem_key = k.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()) if k is not None else None
    certs = [c.public_bytes(Encoding.PEM) for c in ([cert] if cert is not None else []) + list(extra or [])]
    return pem_key, certs


def _load_chain(ctx: ssl.SSLContext, pem: bytes, password: str | None) -> None:
    """``load_cert_chain`` reads files only: the PEM goes through a private temporary file."""
    fd, path = tempfile.mkstemp(prefix="kc-keystore-", suffix=".pem")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(pem)
        ctx.load_cert_chain(path, password=password)
    except ssl.SSLError as e:
        raise TlsConfigError(f"the keystore's key and certificate chain cannot be used: {e.reason or e}") from None
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)


def _keystore(ctx: ssl.SSLContext, s: Mapping[str, Any]) -> bool:
    """Load the keystore named by ``s`` into ``ctx``; False when there is none."""
    typ = (s.get("ssl.keystore.type") or "JKS").upper()
    loc = s.get("ssl.keystore.location")
    inline_key, inline_chain = s.get("ssl.keystore.key"), s.get("ssl.keystore.certificate.chain")
    key_pw = s.get("ssl.key.password")
    if inline_key or inline_chain:
        if typ != "PEM":
            raise TlsConfigError("ssl.keystore.key / ssl.keystore.certificate.chain need ssl.keystore.type=PEM")
        if not (inline_key and inline_chain) or loc:
            raise TlsConfigError("ssl.keystore.key and ssl.keystore.certificate.chain go together, "
                                 "without ssl.keystore.location")
        _load_chain(ctx, inline_key.encode() + b"\n" + inline_chain.encode(), key_pw)
        return True
    if not loc:
        return False
    data = _read(loc, "ssl.keystore.location")
    if typ == "PEM":
        _load_chain(ctx, data, key_pw)
        return True
    if typ not in ("PKCS12", "JKS"):
        raise TlsConfigError(f"ssl.keystore.type={typ}: only PEM, PKCS12 (and PKCS12 files typed JKS) are read")
    pem_key, certs = _pkcs12(data, s.get("ssl.keystore.password"), loc, "ssl.keystore.location")
    if pem_key is None or not certs:
        raise TlsConfigError(f"ssl.keystore.location={loc}: the store holds no private key with its certificate")
    _load_chain(ctx, pem_key + b"".join(certs), None)
    return True


def _truststore(ctx: ssl.SSLContext, s: Mapping[str, Any]) -> bool:
    typ = (s.get("ssl.truststore.type") or "JKS").upper()
    loc = s.get("ssl.truststore.location")
    inline = s.get("ssl.truststore.certificates")
    try:
        if inline:
            if typ != "PEM" or loc:
                raise TlsConfigError("ssl.truststore.certificates needs ssl.truststore.type=PEM and no "
                                     "ssl.truststore.location")
            ctx.load_verify_locations(cadata=inline)
            return True
        if not loc:
            return False
        data = _read(loc, "ssl.truststore.location")
        if typ == "PEM":
            ctx.load_verify_locations(cadata=data.decode("ascii", "replace"))
            return True
        if typ not in ("PKCS12", "JKS"):
            raise TlsConfigError(f"ssl.truststore.type={typ}: only PEM, PKCS12 (and PKCS12 files typed JKS) "
                                 "are read")
        _k, certs = _pkcs12(data, s.get("ssl.truststore.password"), loc, "ssl.truststore.location")
        if not certs:
            raise TlsConfigError(f"ssl.truststore.location={loc}: the store holds no certificate")
        ctx.load_verify_locations(cadata=b"".join(certs).decode("ascii"))
        return True
    except ssl.SSLError as e:
        raise TlsConfigError(f"the truststore cannot be used: {e.reason or e}") from None


def _protocols(ctx: ssl.SSLContext, s: Mapping[str, Any]) -> None:
    enabled = [p.strip() for p in (s.get("ssl.enabled.protocols") or ["TLSv1.2", "TLSv1.3"]) if p.strip()]
    bad = [p for p in enabled if p not in _PROTOCOLS]
    if bad or not enabled:
        raise TlsConfigError(f"ssl.enabled.protocols={','.join(enabled)}: only TLSv1.2 and TLSv1.3 are served")
    versions = sorted(_PROTOCOLS[p] for p in enabled)
    ctx.minimum_version, ctx.maximum_version = versions[0], versions[-1]
    suites = [c.strip() for c in (s.get("ssl.cipher.suites") or []) if c.strip()]
    if suites:
        try:
            ctx.set_ciphers(":".join(suites))
        except ssl.SSLError:
            raise TlsConfigError(f"ssl.cipher.suites={','.join(suites)}: none of them is known to OpenSSL "
                                 "(give OpenSSL names, e.g. ECDHE-RSA-AES128-GCM-SHA256)") from None


def server_context(s: Mapping[str, Any], listener: str) -> ssl.SSLContext:
    """The context of SSL listener ``listener`` from its effective ``ssl.*`` settings."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        if not _keystore(ctx, s):
            raise TlsConfigError("it needs a keystore: ssl.keystore.location (with ssl.keystore.type and "
                                 "ssl.keystore.password), or ssl.keystore.key and ssl.keystore.certificate.chain")
        _protocols(ctx, s)
        auth = (s.get("ssl.client.auth") or "none").lower()
        if auth != "none":
            if not _truststore(ctx, s):
                raise TlsConfigError(f"ssl.client.auth={auth} needs a truststore (ssl.truststore.location or "
                                     "ssl.truststore.certificates) to verify client certificates")
            ctx.verify_mode = ssl.CERT_REQUIRED if auth == "required" else ssl.CERT_OPTIONAL
        ctx.kc_principal_mapper = PrincipalMapper(s.get("ssl.principal.mapping.rules"))  # type: ignore[attr-defined]
    except TlsConfigError as e:
        raise TlsConfigError(f"listeners: SSL listener {listener}: {e}") from None
    return ctx


def client_context(s: Mapping[str, Any]) -> ssl.SSLContext:
    """A client context from the same settings (the inter-broker connections): the truststore
    verifies the brokers (with host names when ``ssl.endpoint.identification.algorithm`` is
    https, Kafka's default), the keystore, when present, is the broker's client certificate."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    _keystore(ctx, s)
    _protocols(ctx, s)
    if not _truststore(ctx, s):
        ctx.load_default_certs()
    ctx.check_hostname = (s.get("ssl.endpoint.identification.algorithm") or "").lower() == "https"
    return ctx


# RFC 2253 attribute names Java prints by keyword; others by OID.
_RFC2253 = {"commonName": "CN", "countryName": "C", "localityName": "L", "stateOrProvinceName": "ST",
            "organizationName": "O", "organizationalUnitName": "OU", "streetAddress": "STREET",
            "domainComponent": "DC", "userId": "UID"}


def _escape(v: str) -> str:
    out = []
    for i, ch in enumerate(v):
        if ch in ',+"\\<>;' or (ch == "#" and i == 0) or (ch == " " and i in (0, len(v) - 1)):
            out.append("\\" + ch)
        else:
            out.append(ch)
    return "".join(out)


def subject_name(peer_cert: Mapping[str, Any] | None) -> str | None:
    """The client certificate's subject in RFC 2253 order (most specific first, e.g.
    ``CN=app,OU=eng,O=Example``), or None without a certificate."""
    if not peer_cert or not peer_cert.get("subject"):
        return None
    rdns = []
    for rdn in reversed(peer_cert["subject"]):
        rdns.append("+".join(f"{_RFC2253.get(k, k)}={_escape(str(v))}" for k, v in rdn))
    return ",".join(rdns)


def principal(peer_cert: Mapping[str, Any] | None, mapper: PrincipalMapper | None = None) -> str:
    """Kafka's principal for a connection: ``User:`` + the subject mapped by the listener's
    ``ssl.principal.mapping.rules`` (DEFAULT: the subject itself), or ``User:ANONYMOUS`` without a
    certificate.  Raises ``NoMatchingRule`` when no rule applies."""
    dn = subject_name(peer_cert)
    if dn is None:
        return "User:ANONYMOUS"
    return "User:" + (mapper.name(dn) if mapper is not None else dn)


class NoMatchingRule(Exception):
    pass


# Kafka's SslPrincipalMapper grammar: DEFAULT, or RULE:pattern/replacement/ with an optional L or
# U, where a backslash escapes the next character (so a pattern may hold "/" as "\/").
_RULE = r"(DEFAULT)|RULE:((?:\\.|[^\\/])*)/((?:\\.|[^\\/])*)/([LU]?).*?|(.*?)"
_RULE_SPLITTER = re.compile(r"\s*(" + _RULE + r")\s*(?:,\s*|$)")
_RULE_PARSER = re.compile(_RULE)
_BACKREF = re.compile(r"\$(\d+)")


class PrincipalMapper:
    """``ssl.principal.mapping.rules`` parsed once (at start-up: a bad rule stops the broker)."""

    def __init__(self, rules: str | None) -> None:
        text = (rules if rules is not None else "DEFAULT").strip()
        self.rules: list[tuple[re.Pattern[str], str, str] | None] = []    # None: DEFAULT
        for m in _RULE_SPLITTER.finditer(text):
            rule = m.group(1)
            if m.start() == m.end():
                break
            pm = _RULE_PARSER.match(rule)
            if pm is None or pm.end() != len(rule):
                raise TlsConfigError(f"ssl.principal.mapping.rules: invalid rule {rule!r}")
            if pm.group(1) is not None:
                self.rules.append(None)
            elif pm.group(2) is not None:
                try:
                    pattern = re.compile(pm.group(2))
                except re.error as e:
                    raise TlsConfigError(f"ssl.principal.mapping.rules: bad pattern in {rule!r}: {e}") from None
                self.rules.append((pattern, _java_replacement(pm.group(3), pattern.groups), pm.group(4)))
            elif rule.strip():
                raise TlsConfigError(f"ssl.principal.mapping.rules: invalid rule {rule!r} (expected DEFAULT or "
                                     "RULE:pattern/replacement/[LU])")

    def name(self, dn: str) -> str:
        for rule in self.rules:
            if rule is None:
                return dn
            pattern, repl, case = rule
            if pattern.fullmatch(dn):
                out = pattern.sub(repl, dn)
                return out.lower() if case == "L" else out.upper() if case == "U" else out
        raise NoMatchingRule(f"no ssl.principal.mapping.rules rule applies to {dn}")


def _java_replacement(java: str, groups: int) -> str:
    """A Java ``replaceAll`` replacement (``$n`` group references, ``\\`` escapes) as a Python
    ``re.sub`` template.  As Java (and Kafka's escaping of references past the group count), a
    ``$`` followed by digits takes the longest number that names a group; ``$`` with none is literal."""
    out: list[str] = []
    i = 0
    while i < len(java):
        ch = java[i]
        if ch == "\\" and i + 1 < len(java):
            out.append(java[i + 1].replace("\\", "\\\\"))
            i += 2
            continue
        m = _BACKREF.match(java, i) if ch == "$" else None
        if m is not None:
            digits = m.group(1)
            n = len(digits)
            while n > 1 and int(digits[:n]) > groups:
                n -= 1
            if int(digits[:n]) <= groups:
                out.append(f"\\g<{int(digits[:n])}>" + digits[n:])
            else:
                out.append("$" + digits)
            i = m.end()
            continue
        out.append("\\\\" if ch == "\\" else ch)
        i += 1
    return "".join(out)
