"""Access to the generated kafka_protocol message classes, version-aware.

The coordinator builds responses by class name (``JoinGroupResponse``) and
reaches nested struct classes through the schema metadata each generated
class carries (``FIELDS[i].struct``), so it does not depend on whether the
generator nests struct classes or puts them at module level.

``build(cls, version, **kw)`` drops the keyword arguments whose field does not
exist at ``version``: the encoder refuses a non-default value in a field the
version lacks, and every handler would otherwise need its own version table.

Until the generated codecs exist (they are written in parallel), a plain
keyword namespace stands in, so the state machine can be exercised.
"""

from __future__ import annotations

import importlib
from types import SimpleNamespace
from typing import Any

_MODULES = ("kafka_protocol.messages", "kafka_protocol")
_cache: dict[str, type] = {}


class Generic(SimpleNamespace):
    """Stand-in for a generated class: keyword constructor, attribute access."""

    FIELDS: tuple[Any, ...] = ()


def message_class(name: str) -> type:
    cls = _cache.get(name)
    if cls is not None:
        return cls
    for modname in _MODULES:
        try:
            mod = importlib.import_module(modname)
        except ImportError:
            continue
        cls = getattr(mod, name, None)
        if isinstance(cls, type):
            break
    else:
        cls = type(name, (Generic,), {})
    _cache[name] = cls
    return cls


def have_codecs() -> bool:
    return not issubclass(message_class("JoinGroupResponse"), Generic)


def _field(cls: type, name: str) -> Any:
    for f in getattr(cls, "FIELDS", ()):
        if f.name == name:
            return f
    return None


def child(cls: type, name: str) -> type:
    """The struct class of field ``name`` of ``cls`` (element class for arrays)."""
    key = f"{cls.__qualname__}.{name}"
    sub = _cache.get(key)
    if sub is None:
        f = _field(cls, name)
        sub = f.struct if f is not None and f.struct is not None else type(key, (Generic,), {})
        _cache[key] = sub
    return sub


def build(cls: type, version: int, **kw: Any) -> Any:
    """``cls(**kw)`` without the fields ``version`` does not have."""
    fields = getattr(cls, "FIELDS", ())
    if fields:
        present = {f.name: f for f in fields}
        kw = {k: v for k, v in kw.items() if k in present and version in present[k].versions}
    return cls(**kw)


def get(obj: Any, name: str, default: Any = None) -> Any:
    """A request field that older versions (or the stand-in) may lack."""
    return getattr(obj, name, default)
