"""SASL on SASL_PLAINTEXT and SASL_SSL listeners: PLAIN and SCRAM-SHA-256/512 (Kafka's
SaslServerAuthenticator, in brief).

The exchange: SaslHandshake names the mechanism; with SaslHandshake v1 every token then travels
in a SaslAuthenticate request (KIP-152), with v0 as raw size-prefixed frames without a Kafka
header (the connection's ``sasl_raw`` mode).  Until the exchange succeeds a connection may only
send ApiVersions, SaslHandshake and SaslAuthenticate; anything else closes it (ILLEGAL_SASL_STATE),
as Kafka does.  A failed authentication is answered SASL_AUTHENTICATION_FAILED after
``connection.failed.authentication.delay.ms`` and the connection closed (v0: closed without an
answer).  ``connections.max.reauth.ms`` > 0 (KIP-368): the SaslAuthenticate answer carries the
session lifetime, and a connection whose session has expired is closed at its next request
unless that request re-authenticates.

PLAIN: users from the listener's JAAS config,
``listener.name.<l>.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule
required user_alice="alice-secret";`` (PlainLoginModule's ``user_<name>="<password>"`` options).

SCRAM (RFC 5802, RFC 7677): credentials are salted (salt, StoredKey, ServerKey, iterations:
never the password), kept by ``ScramCredentials`` in ``kc-scram-credentials.json`` of the first
log dir (written to a temporary file, fsynced and renamed), or in a cluster in ZooKeeper under
``/config/users/<user>`` as Kafka's ZooKeeper mode keeps them, and managed with
AlterUserScramCredentials / DescribeUserScramCredentials (Apache Kafka's ``kafka-configs
--entity-type users --alter --add-config 'SCRAM-SHA-512=[password=...]'``).  The principal of an
authenticated connection is ``User:<name>``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kafka_protocol.errors import ErrorCode as E
from kafka_protocol.sasl import MIN_ITERATIONS, SCRAM_HASH, AuthenticationFailed
from kafka_protocol.sasl import attrs as _attrs

MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
SCRAM_TYPE = {"SCRAM-SHA-256": 1, "SCRAM-SHA-512": 2}      # ScramMechanism ids on the wire
SCRAM_NAME = {v: k for k, v in SCRAM_TYPE.items()}
MAX_ITERATIONS = 16384
CREDENTIALS_FILE = "kc-scram-credentials.json"
PLAIN_MODULE = "org.apache.kafka.common.security.plain.PlainLoginModule"
SCRAM_MODULE = "org.apache.kafka.common.security.scram.ScramLoginModule"


class SaslConfigError(ValueError):
    """A SASL listener's settings cannot be used (the broker refuses to start)."""


# -- JAAS ----------------------------------------------------------------------------------

_JAAS_OPT = re.compile(r'\s*([A-Za-z0-9_.\-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s;"]+))')


def parse_jaas(text: str) -> tuple[str, dict[str, str]]:
    """(login module class, options) of a one-module ``sasl.jaas.config`` value."""
    m = re.match(r"\s*([A-Za-z0-9_.$]+)\s+(required|requisite|sufficient|optional)\b", text)
    if not m:
        raise SaslConfigError(f"cannot parse the JAAS config {text[:60]!r}: expected "
                              "'<LoginModule class> required key=\"value\" ...;'")
    opts: dict[str, str] = {}
    rest = text[m.end():]
    pos = 0
    while True:
        om = _JAAS_OPT.match(rest, pos)
        if not om:
            break
        val = om.group(2) if om.group(2) is not None else om.group(3)
        opts[om.group(1)] = re.sub(r"\\(.)", r"\1", val)
        pos = om.end()
    if rest[pos:].strip() not in (";", ""):
        raise SaslConfigError(f"cannot parse the JAAS config near {rest[pos:pos + 40]!r}")
    return m.group(1), opts


# -- SCRAM credentials ---------------------------------------------------------------------

@dataclass(frozen=True)
class ScramCredential:
    salt: bytes
    stored_key: bytes
    server_key: bytes
    iterations: int

    def to_zk(self) -> str:
        """Kafka's ZooKeeper form (``ScramCredentialUtils.credentialToString``)."""
        b64 = base64.b64encode
        return (f"salt={b64(self.salt).decode()},stored_key={b64(self.stored_key).decode()},"
                f"server_key={b64(self.server_key).decode()},iterations={self.iterations}")

    @classmethod
    def from_zk(cls, s: str) -> ScramCredential:
        d = dict(kv.split("=", 1) for kv in s.split(","))
        return cls(base64.b64decode(d["salt"]), base64.b64decode(d["stored_key"]),
                   base64.b64decode(d["server_key"]), int(d["iterations"]))

    @classmethod
    def from_salted_password(cls, mechanism: str, salt: bytes, salted: bytes, iterations: int) -> ScramCredential:
        h = SCRAM_HASH[mechanism]
        client_key = hmac.new(salted, b"Client Key", h).digest()
        return cls(salt, h(client_key).digest(), hmac.new(salted, b"Server Key", h).digest(), iterations)

    @classmethod
    def from_password(cls, mechanism: str, password: str, iterations: int = MIN_ITERATIONS,
                      salt: bytes | None = None) -> ScramCredential:
        salt = salt or secrets.token_bytes(16)
        salted = hashlib.pbkdf2_hmac(SCRAM_HASH[mechanism]().name, password.encode(), salt, iterations)
        return cls.from_salted_password(mechanism, salt, salted, iterations)


class ScramCredentials:
    """user -> mechanism -> credential, durable in a JSON file (single node).  A cluster keeps
    them in ZooKeeper instead (``kafka_broker.cluster``), through the same two methods."""

    def __init__(self, path: str | None) -> None:
        self.path = path
        self.users: dict[str, dict[str, ScramCredential]] = {}
        if path is not None and os.path.exists(path):
            with open(path, encoding="utf-8") as f:
                raw = json.load(f)
            self.users = {u: {m: ScramCredential.from_zk(c) for m, c in mechs.items()} for u, mechs in raw.items()}

    async def get(self, user: str, mechanism: str) -> ScramCredential | None:
        return self.users.get(user, {}).get(mechanism)

    async def describe(self) -> dict[str, dict[str, ScramCredential]]:
        return {u: dict(m) for u, m in self.users.items()}

    async def alter(self, changes: list[tuple[str, str, ScramCredential | None]]) -> None:
        """(user, mechanism, credential or None to delete), all written at once."""
        users = {u: dict(m) for u, m in self.users.items()}
        for user, mech, cred in changes:
            if cred is None:
                users.get(user, {}).pop(mech, None)
                if user in users and not users[user]:
                    del users[user]
            else:
                users.setdefault(user, {})[mech] = cred
        if self.path is not None:
            tmp = self.path + ".tmp"
            with open(tmp, "w", encoding="utf-8") as f:
                json.dump({u: {m: c.to_zk() for m, c in ms.items()} for u, ms in users.items()}, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        self.users = users


# -- the per-listener server side ----------------------------------------------------------

@dataclass
class ListenerSasl:
    """What a SASL listener accepts."""

    name: str
    mechanisms: tuple[str, ...]
    plain_users: dict[str, str]


def listener_sasl(listener: str, mechanisms: list[str], jaas: Mapping[str, str]) -> ListenerSasl:
    """``mechanisms``: the listener's sasl.enabled.mechanisms; ``jaas``: mechanism (upper case) ->
    its ``listener.name.<l>.<mechanism>.sasl.jaas.config``."""
    mechs = tuple(m.strip().upper() for m in mechanisms if m.strip())
    if not mechs:
        raise SaslConfigError(f"SASL listener {listener}: sasl.enabled.mechanisms is empty")
    bad = [m for m in mechs if m not in MECHANISMS]
    if bad:
        raise SaslConfigError(f"SASL listener {listener}: sasl.enabled.mechanisms={','.join(mechs)}: kafka-core "
                              f"implements {', '.join(MECHANISMS)}, not {', '.join(bad)} (Kafka's default is "
                              "GSSAPI: set the key)")
    users: dict[str, str] = {}
    if "PLAIN" in mechs:
        text = jaas.get("PLAIN")
        if not text:
            raise SaslConfigError(f"SASL listener {listener}: PLAIN needs listener.name.{listener.lower()}.plain."
                                  f"sasl.jaas.config ({PLAIN_MODULE} required user_<name>=\"<password>\" ...;)")
        module, opts = parse_jaas(text)
        if module != PLAIN_MODULE:
            raise SaslConfigError(f"SASL listener {listener}: the PLAIN JAAS config names {module}, not {PLAIN_MODULE}")
        users = {k[5:]: v for k, v in opts.items() if k.startswith("user_")}
        if not users:
            raise SaslConfigError(f"SASL listener {listener}: the PLAIN JAAS config defines no user_<name> entry")
    for mech, text in jaas.items():
        if mech.startswith("SCRAM"):
            module, _ = parse_jaas(text)
            if module != SCRAM_MODULE:
                raise SaslConfigError(f"SASL listener {listener}: the {mech} JAAS config names {module}, "
                                      f"not {SCRAM_MODULE}")
    return ListenerSasl(listener, mechs, users)


class PlainServer:
    """RFC 4616: one token ``authzid NUL authcid NUL passwd``."""

    def __init__(self, users: dict[str, str]) -> None:
        self.users = users
        self.user: str | None = None
        self.complete = False

    async def step(self, token: bytes, _store: Any) -> bytes:
        parts = token.split(b"\x00")
        if len(parts) != 3:
            raise AuthenticationFailed("Invalid SASL/PLAIN response: expected 3 tokens")
        authz, user, pw = (p.decode("utf-8", "replace") for p in parts)
        if not user or not pw:
            raise AuthenticationFailed("Authentication failed: username or password not specified")
        if authz and authz != user:
            raise AuthenticationFailed("Authentication failed: Client requested an authorization id that is "
                                       "different from username")
        want = self.users.get(user)
        if want is None or not hmac.compare_digest(want.encode(), pw.encode()):
            raise AuthenticationFailed("Authentication failed: Invalid username or password")
        self.user = user
        self.complete = True
        return b""


class ScramServer:
    """RFC 5802 server: client-first, server-first, client-final, server-final."""

    def __init__(self, mechanism: str) -> None:
        self.mechanism = mechanism
        self.h = SCRAM_HASH[mechanism]
        self.state = 0
        self.user: str | None = None
        self.complete = False
        self._cred: ScramCredential | None = None
        self._nonce = ""
        self._client_first_bare = ""
        self._server_first = ""

    async def step(self, token: bytes, store: ScramCredentials) -> bytes:
        try:
            msg = token.decode("utf-8")
        except UnicodeDecodeError:
            raise AuthenticationFailed("Invalid SCRAM message: not UTF-8") from None
        if self.state == 0:
            # gs2 header: "n,," or "n,a=authzid," (no channel binding)
            m = re.match(r"^(n|y),(a=[^,]*)?,(.*)$", msg)
            if not m:
                raise AuthenticationFailed("Invalid SCRAM client first message")
            self._client_first_bare = m.group(3)
            a = _attrs(self._client_first_bare)
            user = a.get("n", "").replace("=2C", ",").replace("=3D", "=")
            if not user or "r" not in a:
                raise AuthenticationFailed("Invalid SCRAM client first message")
            authz = (m.group(2) or "")[2:]
            if authz and authz != user:
                raise AuthenticationFailed("Authentication failed: Client requested an authorization id that is "
                                           "different from username")
            ext = {k: v for k, v in (p.split("=", 1) for p in self._client_first_bare.split(",")[2:] if "=" in p)}
            if ext.get("tokenauth") == "true":
                raise AuthenticationFailed("Authentication failed: delegation tokens are not supported")
            self._cred = await store.get(user, self.mechanism)
            if self._cred is None:
                raise AuthenticationFailed("Authentication failed: Invalid user credentials")
            self.user = user
            self._nonce = a["r"] + base64.b64encode(secrets.token_bytes(18)).decode()
            self._server_first = (f"r={self._nonce},s={base64.b64encode(self._cred.salt).decode()},"
                                  f"i={self._cred.iterations}")
            self.state = 1
            return self._server_first.encode()
        if self.state == 1:
            a = _attrs(msg)
            if a.get("r") != self._nonce or "p" not in a or "c" not in a:
                raise AuthenticationFailed("Invalid SCRAM client final message")
            without_proof = msg[:msg.rindex(",p=")]
            auth_message = f"{self._client_first_bare},{self._server_first},{without_proof}".encode()
            cred = self._cred
            assert cred is not None
            signature = hmac.new(cred.stored_key, auth_message, self.h).digest()
            try:
                proof = base64.b64decode(a["p"], validate=True)
            except ValueError:
                raise AuthenticationFailed("Invalid SCRAM client proof") from None
            if len(proof) != len(signature):
                raise AuthenticationFailed("Authentication failed: Invalid client final message")
            client_key = bytes(x ^ y for x, y in zip(proof, signature, strict=True))
            if not hmac.compare_digest(self.h(client_key).digest(), cred.stored_key):
                raise AuthenticationFailed("Authentication failed: Invalid user credentials")
            server_sig = hmac.new(cred.server_key, auth_message, self.h).digest()
            self.state = 2
            self.complete = True
            return f"v={base64.b64encode(server_sig).decode()}".encode()
        raise AuthenticationFailed("Unexpected SCRAM message after the exchange completed")


def new_server(mechanism: str, sasl: ListenerSasl) -> PlainServer | ScramServer:
    if mechanism == "PLAIN":
        return PlainServer(sasl.plain_users)
    return ScramServer(mechanism)


def error_for(e: Exception) -> tuple[int, str]:
    if isinstance(e, AuthenticationFailed):
        return E.SASL_AUTHENTICATION_FAILED, str(e)
    return E.ILLEGAL_SASL_STATE, str(e)
