"""SaslHandshake (17), SaslAuthenticate (36), DescribeUserScramCredentials (50) and
AlterUserScramCredentials (51), and the rule of which requests a SASL connection may send
before it has authenticated (the exchange itself: ``kafka_broker/sasl.py``)."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

from kafka_protocol.errors import ErrorCode as E
from kafka_protocol.errors import ProtocolError

from .sasl import (
    MAX_ITERATIONS,
    MIN_ITERATIONS,
    SCRAM_NAME,
    SCRAM_TYPE,
    AuthenticationFailed,
    ScramCredential,
    new_server,
)

if TYPE_CHECKING:
    from .broker import Broker
    from .server import Connection, RequestContext

log = logging.getLogger("kafka_broker.sasl")

# What a SASL connection may send before it has authenticated (Kafka's SaslServerAuthenticator)
PRE_AUTH_APIS = frozenset({17, 18, 36})


class IllegalSaslState(ProtocolError):
    def __init__(self, message: str) -> None:
        super().__init__(message, E.ILLEGAL_SASL_STATE)


def check_request(conn: Connection, api_key: int) -> None:
    """Raise (the connection closes) when ``api_key`` may not be sent on ``conn`` now: before
    authentication only ApiVersions and the SASL exchange; after ``connections.max.reauth.ms``
    only a re-authentication (KIP-368)."""
    st = conn.sasl
    if st is None or api_key in PRE_AUTH_APIS:
        return
    if not st.authenticated:
        raise IllegalSaslState(f"unexpected request (api key {api_key}) before SASL authentication completed")
    if st.expires is not None and time.monotonic() > st.expires:
        raise IllegalSaslState("the SASL session expired (connections.max.reauth.ms) and the client did not "
                               "re-authenticate")


_failures_logged: dict[str, float] = {}     # client host -> when its last failure was logged


def _log_failure(conn: Connection, mechanism: str, e: Exception) -> None:
    """Each failed authentication at INFO, as Kafka does, but at most one line per client host every
    10 s (a client with a wrong password retries every 100 ms)."""
    host = conn.peer.rsplit(":", 1)[0]
    now = time.monotonic()
    if now - _failures_logged.get(host, -1e9) < 10:
        return
    if len(_failures_logged) > 4096:
        _failures_logged.clear()
    _failures_logged[host] = now
    log.info("SASL/%s authentication from %s failed: %s (logged at most every 10 s per client host)",
             mechanism, conn.peer, e)


def handle_sasl_handshake(b: Broker, ctx: RequestContext, req: Any) -> Any:
    from kafka_protocol.messages import SaslHandshakeResponse as R

    st = ctx.conn.sasl
    if st is None:
        return R(error_code=E.ILLEGAL_SASL_STATE, mechanisms=[])
    enabled = list(st.listener.mechanisms)
    if st.authenticated and not b.config["connections.max.reauth.ms"]:
        return R(error_code=E.ILLEGAL_SASL_STATE, mechanisms=enabled)
    if st.server is not None and not st.server.complete:
        # a second handshake in the middle of an exchange: Kafka's SaslServerAuthenticator throws
        # IllegalSaslStateException there, which closes the connection
        st.failed = True
        ctx.conn.close_when_sent = True
        return R(error_code=E.ILLEGAL_SASL_STATE, mechanisms=enabled)
    if req.mechanism not in enabled:
        st.failed = True
        ctx.conn.close_when_sent = True
        return R(error_code=E.UNSUPPORTED_SASL_MECHANISM, mechanisms=enabled)
    st.mechanism = req.mechanism
    st.server = new_server(req.mechanism, st.listener)
    st.raw = ctx.api_version == 0
    return R(error_code=0, mechanisms=enabled)


async def _step(b: Broker, conn: Connection, token: bytes) -> tuple[int, str | None, bytes]:
    """One token of the exchange: (error code, message, answer token)."""
    st = conn.sasl
    assert st is not None
    if st.server is None or st.server.complete:
        return E.ILLEGAL_SASL_STATE, "SaslAuthenticate before SaslHandshake", b""
    if len(token) > b.config["sasl.server.max.receive.size"]:
        return E.SASL_AUTHENTICATION_FAILED, "SASL token larger than sasl.server.max.receive.size", b""
    try:
        out = await st.server.step(token, b.scram)
    except AuthenticationFailed as e:
        _log_failure(conn, st.mechanism, e)
        await asyncio.sleep(b.config["connection.failed.authentication.delay.ms"] / 1000)
        st.failed = True
        return E.SASL_AUTHENTICATION_FAILED, str(e), b""
    if st.server.complete:
        principal = f"User:{st.server.user}"
        if st.authenticated and principal != st.principal:    # a re-authentication may not change who
            st.failed = True
            return E.SASL_AUTHENTICATION_FAILED, "re-authentication changed the principal", b""
        st.authenticated = True
        st.principal = principal
        st.raw = False
        reauth = b.config["connections.max.reauth.ms"]
        st.expires = time.monotonic() + reauth / 1000 if reauth else None
    return 0, None, out


def handle_sasl_authenticate(b: Broker, ctx: RequestContext, req: Any) -> Any:
    from kafka_protocol.messages import SaslAuthenticateResponse as R

    conn = ctx.conn
    if conn.sasl is None:
        return R(error_code=E.ILLEGAL_SASL_STATE, error_message="not a SASL listener", auth_bytes=b"",
                 session_lifetime_ms=0)

    async def run() -> Any:
        code, msg, out = await _step(b, conn, bytes(req.auth_bytes))
        if code:
            conn.close_when_sent = True
        st = conn.sasl
        assert st is not None
        life = b.config["connections.max.reauth.ms"] if not code and st.server.complete else 0
        return R(error_code=code, error_message=msg, auth_bytes=out, session_lifetime_ms=life)
    return run()


async def raw_token(b: Broker, conn: Connection, token: bytes) -> bytes | None:
    """SaslHandshake v0 framing: the answer token, or None (the connection closes)."""
    code, _msg, out = await _step(b, conn, token)
    return None if code else out


# -- SCRAM credentials ---------------------------------------------------------------------

def handle_describe_user_scram_credentials(b: Broker, ctx: RequestContext, req: Any) -> Any:
    from kafka_protocol.messages import DescribeUserScramCredentialsResponse as R

    async def run() -> Any:
        users = await b.scram.describe()
        wanted = None if req.users is None else [u.name for u in req.users]
        results = []
        if wanted is None:
            names = sorted(users)
        else:
            names = wanted
        dup = {n for n in names if names.count(n) > 1}
        for name in dict.fromkeys(names):
            if name in dup:
                results.append(R.DescribeUserScramCredentialsResult(
                    user=name, error_code=E.DUPLICATE_RESOURCE, error_message=f"Cannot describe SCRAM credentials "
                    f"for the same user twice in a single request: {name}", credential_infos=[]))
                continue
            creds = users.get(name)
            if not creds:
                results.append(R.DescribeUserScramCredentialsResult(
                    user=name, error_code=E.RESOURCE_NOT_FOUND, error_message=f"Attempt to describe a user "
                    f"credential that does not exist: {name}", credential_infos=[]))
                continue
            results.append(R.DescribeUserScramCredentialsResult(
                user=name, error_code=0, error_message=None, credential_infos=[
                    R.DescribeUserScramCredentialsResult.CredentialInfo(mechanism=SCRAM_TYPE[m],
                                                                        iterations=c.iterations)
                    for m, c in sorted(creds.items())]))
        return R(throttle_time_ms=0, error_code=0, error_message=None, results=results)
    return run()


def handle_alter_user_scram_credentials(b: Broker, ctx: RequestContext, req: Any) -> Any:
    from kafka_protocol.messages import AlterUserScramCredentialsResponse as R

    async def run() -> Any:
        errors: dict[str, tuple[int, str | None]] = {}
        changes: list[tuple[str, str, ScramCredential | None]] = []
        seen: dict[tuple[str, int], int] = {}
        existing = await b.scram.describe()
        for d in req.deletions:
            seen[(d.name, d.mechanism)] = seen.get((d.name, d.mechanism), 0) + 1
        for u in req.upsertions:
            seen[(u.name, u.mechanism)] = seen.get((u.name, u.mechanism), 0) + 1
        def common(name: str, mech_id: int) -> tuple[int, str] | None:
            """What makes any alteration of (name, mechanism) invalid."""
            if not name:
                return E.UNACCEPTABLE_CREDENTIAL, "Username must not be empty"
            if mech_id not in SCRAM_NAME:
                return E.UNSUPPORTED_SASL_MECHANISM, "Unknown SCRAM mechanism"
            if seen[(name, mech_id)] > 1:
                return E.DUPLICATE_RESOURCE, "A user credential cannot be altered twice in the same request"
            return None
        for d in req.deletions:
            mech = SCRAM_NAME.get(d.mechanism, "")
            if (err := common(d.name, d.mechanism)) is not None:
                errors[d.name] = err
            elif mech not in existing.get(d.name, {}):
                errors[d.name] = (E.RESOURCE_NOT_FOUND, f"Attempt to delete a user credential that does not "
                                                        f"exist: {d.name}")
            else:
                changes.append((d.name, mech, None))
        for u in req.upsertions:
            mech = SCRAM_NAME.get(u.mechanism, "")
            if (err := common(u.name, u.mechanism)) is not None:
                errors[u.name] = err
            elif not MIN_ITERATIONS <= u.iterations <= MAX_ITERATIONS:
                errors[u.name] = (E.UNACCEPTABLE_CREDENTIAL, f"Iterations must be between {MIN_ITERATIONS} and "
                                                             f"{MAX_ITERATIONS}: {u.iterations}")
            elif not u.salt or not u.salted_password:
                errors[u.name] = (E.UNACCEPTABLE_CREDENTIAL, "Salt and salted password must not be empty")
            else:
                changes.append((u.name, mech, ScramCredential.from_salted_password(
                    mech, bytes(u.salt), bytes(u.salted_password), u.iterations)))
        # a user with any error has none of its changes applied (Kafka validates per user)
        changes = [c for c in changes if c[0] not in errors]
        if changes:
            await b.scram.alter(changes)
        users = dict.fromkeys([d.name for d in req.deletions] + [u.name for u in req.upsertions])
        return R(throttle_time_ms=0, results=[
            R.AlterUserScramCredentialsResult(user=n, error_code=errors.get(n, (0, None))[0],
                                              error_message=errors.get(n, (0, None))[1]) for n in users])
    return run()


def handlers() -> dict[int, tuple[int, int, Any]]:
    """Kafka 4.0's advertised ranges."""
    return {17: (0, 1, handle_sasl_handshake), 36: (0, 2, handle_sasl_authenticate),
            50: (0, 0, handle_describe_user_scram_credentials), 51: (0, 0, handle_alter_user_scram_credentials)}
