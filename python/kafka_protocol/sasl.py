"""SASL mechanisms without I/O, for the client and the broker's own connections: PLAIN (RFC 4616)
and SCRAM-SHA-256/512 (RFC 5802, RFC 7677) client messages, and ``authenticate``, which runs the
exchange over SaslHandshake v1 + SaslAuthenticate v2 through any ``send(request, version)``."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from typing import Any

from .errors import ErrorCode as E

SCRAM_HASH = {"SCRAM-SHA-256": hashlib.sha256, "SCRAM-SHA-512": hashlib.sha512}
MIN_ITERATIONS = 4096         # Kafka's ScramMechanism minIterations


class AuthenticationFailed(Exception):
    """Wrong credentials, or a peer that does not prove it knows them (SASL_AUTHENTICATION_FAILED)."""


def attrs(msg: str) -> dict[str, str]:
    """The ``k=value`` attributes of a SCRAM message."""
    out: dict[str, str] = {}
    for part in msg.split(","):
        if len(part) >= 2 and part[1] == "=":
            out[part[0]] = part[2:]
    return out



class ScramClient:
    """RFC 5802 client: ``first()``, then ``final(server_first)``, then ``verify(server_final)``."""

    def __init__(self, mechanism: str, user: str, password: str) -> None:
        self.h = SCRAM_HASH[mechanism]
        self.mechanism = mechanism
        self.user = user.replace("=", "=3D").replace(",", "=2C")
        self.password = password
        self.nonce = base64.b64encode(secrets.token_bytes(18)).decode()
        self._first_bare = f"n={self.user},r={self.nonce}"
        self._server_sig = b""

    def first(self) -> bytes:
        return f"n,,{self._first_bare}".encode()

    def final(self, server_first: bytes) -> bytes:
        sf = server_first.decode()
        a = attrs(sf)
        if not a.get("r", "").startswith(self.nonce) or "s" not in a or "i" not in a:
            raise AuthenticationFailed("invalid SCRAM server first message")
        iterations = int(a["i"])
        if iterations < MIN_ITERATIONS:
            raise AuthenticationFailed(f"SCRAM iterations {iterations} below {MIN_ITERATIONS}")
        salted = hashlib.pbkdf2_hmac(self.h().name, self.password.encode(), base64.b64decode(a["s"]), iterations)
        client_key = hmac.new(salted, b"Client Key", self.h).digest()
        without_proof = f"c=biws,r={a['r']}"
        auth = f"{self._first_bare},{sf},{without_proof}".encode()
        sig = hmac.new(self.h(client_key).digest(), auth, self.h).digest()
        proof = base64.b64encode(bytes(x ^ y for x, y in zip(client_key, sig, strict=True))).decode()
        self._server_sig = hmac.new(hmac.new(salted, b"Server Key", self.h).digest(), auth, self.h).digest()
        return f"{without_proof},p={proof}".encode()

    def verify(self, server_final: bytes) -> None:
        a = attrs(server_final.decode())
        if "e" in a:
            raise AuthenticationFailed(f"SCRAM server error: {a['e']}")
        if not hmac.compare_digest(base64.b64decode(a.get("v", "")), self._server_sig):
            raise AuthenticationFailed("the server's SCRAM signature does not match: not the real broker")


async def authenticate(send: Any, mechanism: str, user: str, password: str) -> None:
    """Authenticate a fresh connection (SaslHandshake v1, SaslAuthenticate v2) through
    ``send(request, version) -> awaitable response``; raises AuthenticationFailed."""
    from .messages import SaslAuthenticateRequest, SaslHandshakeRequest

    hs = await send(SaslHandshakeRequest(mechanism=mechanism), 1)
    if hs.error_code:
        raise AuthenticationFailed(f"SaslHandshake {mechanism}: error {E(hs.error_code).name} "
                                   f"(the broker offers {hs.mechanisms})")

    async def step(token: bytes) -> bytes:
        r = await send(SaslAuthenticateRequest(auth_bytes=token), 2)
        if r.error_code:
            raise AuthenticationFailed(r.error_message or E(r.error_code).name)
        return bytes(r.auth_bytes)
    if mechanism == "PLAIN":
        await step(f"\0{user}\0{password}".encode())
        return
    c = ScramClient(mechanism, user, password)
    c.verify(await step(c.final(await step(c.first()))))
