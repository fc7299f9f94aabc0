"""Client settings given as keyword arguments: the Java client's and librdkafka's dotted names
are accepted too (``**{"linger.ms": 5}``, values from a properties file as strings), and a
setting that does not exist is a ``ValueError`` naming it and the closest valid names.

``ProducerSettings``, ``ConsumerSettings`` and ``AdminSettings`` type the ``**settings`` of the
synchronous clients (``Unpack``), so type checkers and IDEs know every setting; ``lists_settings``
gives those constructors a runtime signature that lists every setting with its default, so
``help()``, ``inspect.signature`` and the API documentation (pdoc) show them too."""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

from .security import SecuritySettings

_NAMED = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)


def check_settings(target: Callable[..., Any], given: Mapping[str, Any], what: str) -> dict[str, Any]:
    """``given`` as keyword arguments of ``target``: ``linger.ms`` / ``linger-ms`` become
    ``linger_ms``; a string value for a number or boolean setting is converted; an unknown name
    raises ``ValueError`` with the closest settings of ``target``."""
    sig = inspect.signature(target).parameters
    params = {n: p for n, p in sig.items() if p.kind in _NAMED and n != "self"}
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in sig.values()):
        # ``**security``: the security settings every client takes (kafka_client.security)
        from .security import Security
        params.update({n: p for n, p in inspect.signature(Security.__init__).parameters.items()
                       if p.kind in _NAMED and n != "self"})
    from .security import ALIASES
    out: dict[str, Any] = {}
    for name, value in given.items():
        key = name.replace(".", "_").replace("-", "_")
        key = ALIASES.get(key, key)
        p = params.get(key)
        if p is None:
            close = difflib.get_close_matches(key, list(params), n=3)
            hint = f"; did you mean {' or '.join(close)}?" if close else f"; valid settings: {', '.join(params)}"
            raise ValueError(f"unknown {what} setting {name!r}{hint}")
        if isinstance(value, str):
            value = _convert(key, value, _kind(p))
        out[key] = value
    return out


_F = TypeVar("_F", bound=Callable[..., Any])


def lists_settings(source: Callable[..., Any]) -> Callable[[_F], _F]:
    """Decorate an ``__init__(self, ..., **config)`` whose settings are ``source``'s keyword
    parameters: its ``__signature__`` becomes its own leading parameters, then every setting of
    ``source`` as a keyword-only parameter with its default and annotation, then ``source``'s
    ``**security``.  The settings are written once (in ``source``); the wrapper shows them."""
    def decorate(init: _F) -> _F:
        own = [p for p in inspect.signature(init).parameters.values()
               if p.kind is not inspect.Parameter.VAR_KEYWORD]
        taken = {p.name for p in own}
        src = inspect.signature(source).parameters.values()
        keywords = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in src
                    if p.kind in _NAMED and p.name != "self" and p.name not in taken]
        rest = [p for p in src if p.kind is inspect.Parameter.VAR_KEYWORD]
        init.__signature__ = inspect.Signature([*own, *keywords, *rest])  # type: ignore[attr-defined]
        return init
    return decorate


def _kind(p: inspect.Parameter) -> type | None:
    """bool, int or float when the setting is one (its annotation, else its default)."""
    parts = str(p.annotation).replace(" ", "").split("|")
    if "str" not in parts:
        for t in (bool, float, int):
            if t.__name__ in parts:
                return t
    d = p.default
    for t in (bool, int, float):
        if isinstance(d, t):
            return t
    return None


def _convert(key: str, value: str, kind: type | None) -> Any:
    if kind is bool:
        if value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise ValueError(f"setting {key!r} must be true or false, not {value!r}")
    if kind is int:
        try:
            return int(value)
        except ValueError:
            raise ValueError(f"setting {key!r} must be an integer, not {value!r}") from None
    if kind is float:
        try:
            return float(value)
        except ValueError:
            raise ValueError(f"setting {key!r} must be a number, not {value!r}") from None
    return value


class ProducerSettings(SecuritySettings, total=False):
    """``Producer(bootstrap, **settings)`` / ``AIOProducer``: the keyword settings, typed (see
    ``ProducerConfig`` for defaults and meaning; the Java client's names with dots as underscores)."""

    client_id: str
    acks: int | str
    enable_idempotence: bool | None
    linger_ms: float
    batch_size: int
    buffer_memory: int
    max_block_ms: int
    compression_type: str | int | None
    max_request_size: int
    request_timeout_ms: int
    delivery_timeout_ms: int
    retry_backoff_ms: int
    max_in_flight_requests_per_connection: int
    metadata_max_age_ms: int
    connect_timeout_ms: int
    partitioner: Any
    allow_auto_create_topics: bool
    transactional_id: str | None
    transaction_timeout_ms: int


class ConsumerSettings(SecuritySettings, total=False):
    """``Consumer(*topics, **settings)``: AIOConsumer's keyword settings, typed."""

    bootstrap_servers: str | Iterable[str]
    group_id: str | None
    client_id: str
    auto_offset_reset: str
    enable_auto_commit: bool
    auto_commit_interval_ms: int
    fetch_min_bytes: int
    fetch_max_wait_ms: int
    fetch_max_bytes: int
    max_partition_fetch_bytes: int
    max_poll_records: int
    isolation_level: str
    check_crcs: bool
    session_timeout_ms: int
    heartbeat_interval_ms: int
    max_poll_interval_ms: int
    request_timeout_ms: int
    retry_backoff_ms: int
    metadata_max_age_ms: int
    partition_assignment_strategy: Iterable[str]
    group_instance_id: str | None
    allow_auto_create_topics: bool
    connect_timeout_ms: int
    fetch_sessions: bool


class AdminSettings(SecuritySettings, total=False):
    """``AdminClient(bootstrap, **settings)``: AIOAdminClient's keyword settings, typed."""

    client_id: str
    request_timeout_ms: int
    retry_backoff_ms: int
    connect_timeout_ms: int
