"""Cross-check against an independent, hand-written codec: kafka-python's ``kafka.protocol.old``
classes (one class per API version, written from the protocol guide, not from the JSON schemas).

Our encoder's bytes must decode with kafka-python's class of the same API and version, consume
the whole buffer, and re-encode to the same bytes. A wrong field order, width or nullability
in the generated code shows up here even though our own round-trip would not notice it.
"""

from __future__ import annotations

import importlib
import io
import pkgutil
import random
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "python"))

import kafka_protocol as kp  # noqa: E402
from kafka_protocol.testing import random_message  # noqa: E402

old = pytest.importorskip("kafka.protocol.old")


def old_classes() -> list[tuple[str, int, int, type]]:
    found: dict[tuple[str, int, int], type] = {}
    for mod in pkgutil.iter_modules(old.__path__):
        module = importlib.import_module(f"kafka.protocol.old.{mod.name}")
        for obj in vars(module).values():
            if not isinstance(obj, type) or not hasattr(obj, "SCHEMA") or not hasattr(obj, "API_KEY"):
                continue
            version = getattr(obj, "API_VERSION", None)
            if not isinstance(version, int) or not isinstance(obj.API_KEY, int):
                continue
            name = obj.__name__
            kind = "request" if "Request" in name else "response" if "Response" in name else None
            if kind is None:
                continue
            found[(kind, obj.API_KEY, version)] = obj
    return [(k, a, v, c) for (k, a, v), c in sorted(found.items())]


CASES = [(kind, key, ver, cls) for kind, key, ver, cls in old_classes()
         if ((kp.REQUESTS if kind == "request" else kp.RESPONSES).get(key) is not None
             and (kp.REQUESTS if kind == "request" else kp.RESPONSES)[key].MIN_VERSION <= ver
             <= (kp.REQUESTS if kind == "request" else kp.RESPONSES)[key].MAX_VERSION)]


def has_tagged_fields(t: object) -> bool:
    if type(t).__name__ == "TaggedFields" or t is old.types.TaggedFields:
        return True
    return any(has_tagged_fields(f) for f in getattr(t, "fields", ())) or (
        hasattr(t, "array_of") and has_tagged_fields(t.array_of))


def test_enough_cases() -> None:
    assert len(CASES) >= 100


@pytest.mark.parametrize("kind,api_key,version,old_cls", CASES,
                         ids=[f"{c.__name__}" for _, _, _, c in CASES])
def test_kafka_python_decodes_our_bytes(kind: str, api_key: int, version: int, old_cls: type) -> None:
    ours = (kp.REQUESTS if kind == "request" else kp.RESPONSES)[api_key]
    if ours.is_flexible(version) and not has_tagged_fields(old_cls.SCHEMA):
        pytest.skip("kafka-python's class for this flexible version reuses the non-flexible schema")
    rng = random.Random(f"{old_cls.__name__}")
    for _ in range(8):
        # kafka-python keeps no unknown tags, so none are generated here
        obj = random_message(ours, version, rng, unknown_tags=False)
        data = obj.encode(version)
        buf = io.BytesIO(data)
        try:
            theirs = old_cls.SCHEMA.decode(buf)
        except Exception as exc:  # pragma: no cover - diagnostic
            raise AssertionError(f"kafka-python failed to decode our {ours.__name__} v{version}: {exc!r}") from exc
        assert buf.tell() == len(data), f"kafka-python consumed {buf.tell()} of {len(data)} bytes"
        assert old_cls.SCHEMA.encode(theirs) == data
