"""Client settings given as keyword arguments: the Java client's and librdkafka's dotted names
are accepted too (``**{"linger.ms": 5}``, values from a properties file as strings), and a
setting that does not exist is a ``ValueError`` naming it and the closest valid names."""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable
from typing import Any

_NAMED = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)


def check_settings(target: Callable[..., Any], given: dict[str, Any], what: str) -> dict[str, Any]:
    """``given`` as keyword arguments of ``target``: ``linger.ms`` / ``linger-ms`` become
    ``linger_ms``; a string value for a number or boolean setting is converted; an unknown name
    raises ``ValueError`` with the closest settings of ``target``."""
    params = {n: p for n, p in inspect.signature(target).parameters.items()
              if p.kind in _NAMED and n != "self"}
    out: dict[str, Any] = {}
    for name, value in given.items():
        key = name.replace(".", "_").replace("-", "_")
        p = params.get(key)
        if p is None:
            close = difflib.get_close_matches(key, list(params), n=3)
            hint = f"; did you mean {' or '.join(close)}?" if close else f"; valid settings: {', '.join(params)}"
            raise ValueError(f"unknown {what} setting {name!r}{hint}")
        if isinstance(value, str):
            value = _convert(key, value, _kind(p))
        out[key] = value
    return out


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
