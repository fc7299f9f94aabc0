"""TLS and SASL for every kafka_client connection: kafka-python's and aiokafka's setting names
(``security_protocol``, ``ssl_context`` or ``ssl_cafile``/``ssl_certfile``/``ssl_keyfile``/
``ssl_password``, ``ssl_check_hostname``, ``sasl_mechanism``, ``sasl_plain_username``/
``sasl_plain_password``), librdkafka's dotted ones too (``ssl.ca.location``, ``sasl.username`` ...).

A connection is TLS (Python's ``ssl``, the server's certificate checked against ``ssl_cafile`` or
the system's CAs, and its host name unless ``ssl_check_hostname=False``) for SSL and SASL_SSL, then
authenticates with SASL/PLAIN or SCRAM-SHA-256/512 (``kafka_protocol.sasl``: SaslHandshake v1 +
SaslAuthenticate) for SASL_PLAINTEXT and SASL_SSL, right after ApiVersions.
"""

from __future__ import annotations

import ssl
from typing import Any, TypedDict

PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
# librdkafka / Java names -> ours (dots are underscores once check_settings has seen them)
ALIASES = {"ssl_ca_location": "ssl_cafile", "ssl_certificate_location": "ssl_certfile",
           "ssl_key_location": "ssl_keyfile", "ssl_key_password": "ssl_password",
           "sasl_username": "sasl_plain_username", "sasl_password": "sasl_plain_password",
           "sasl_mechanisms": "sasl_mechanism"}


class SecuritySettings(TypedDict, total=False):
    """The security keyword settings every client takes."""

    security_protocol: str
    ssl_context: ssl.SSLContext | None
    ssl_cafile: str | None
    ssl_certfile: str | None
    ssl_keyfile: str | None
    ssl_password: str | None
    ssl_check_hostname: bool
    sasl_mechanism: str
    sasl_plain_username: str | None
    sasl_plain_password: str | None


class Security:
    """How to reach the brokers; ``Security()`` is PLAINTEXT."""

    def __init__(self, security_protocol: str = "PLAINTEXT", ssl_context: ssl.SSLContext | None = None,
                 ssl_cafile: str | None = None, ssl_certfile: str | None = None, ssl_keyfile: str | None = None,
                 ssl_password: str | None = None, ssl_check_hostname: bool = True, sasl_mechanism: str = "PLAIN",
                 sasl_plain_username: str | None = None, sasl_plain_password: str | None = None) -> None:
        proto = security_protocol.upper()
        if proto not in PROTOCOLS:
            raise ValueError(f"security_protocol={security_protocol!r}: one of {', '.join(PROTOCOLS)}")
        self.protocol = proto
        self.context: ssl.SSLContext | None = None
        if proto in ("SSL", "SASL_SSL"):
            if ssl_context is not None:
                self.context = ssl_context
            else:
                ctx = ssl.create_default_context(cafile=ssl_cafile)
                ctx.check_hostname = ssl_check_hostname
                if ssl_certfile:
                    ctx.load_cert_chain(ssl_certfile, ssl_keyfile, password=ssl_password)
                self.context = ctx
        self.sasl: tuple[str, str, str] | None = None
        if proto.startswith("SASL_"):
            mech = sasl_mechanism.upper()
            if mech not in MECHANISMS:
                raise ValueError(f"sasl_mechanism={sasl_mechanism!r}: one of {', '.join(MECHANISMS)}")
            if not sasl_plain_username or sasl_plain_password is None:
                raise ValueError(f"security_protocol={proto} needs sasl_plain_username and sasl_plain_password")
            self.sasl = (mech, sasl_plain_username, sasl_plain_password)

    def __repr__(self) -> str:
        user = f" as {self.sasl[1]!r} ({self.sasl[0]})" if self.sasl else ""
        return f"<Security {self.protocol}{user}>"


def security_from(settings: dict[str, Any]) -> Security:
    """Pop the security settings out of ``settings`` (a client's keyword arguments)."""
    mine = {k: settings.pop(k) for k in list(settings) if k in SecuritySettings.__annotations__}
    return Security(**mine)
