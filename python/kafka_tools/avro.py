"""Schemaless Avro values (``kafka-core export --value-format avro-schemaless``): the record's
value is Avro binary with no header (no container file, no schema registry id), written with
the schema the user gives.

The Arrow type is derived from the Avro schema, not inferred from the data, so every file of a
topic has the same Parquet schema however its values vary: records are structs, arrays lists,
maps maps, enums strings, fixed fixed-size binary, ``[null, T]`` a nullable T, and the logical
types timestamp-millis/micros, date, time-millis/micros and decimal their Arrow kinds.  Unions
of several non-null types and recursive records have no Parquet counterpart and are refused, as
is uuid (fastavro hands out uuid.UUID objects Arrow cannot take).

Decoding is fastavro's C reader, one call per record (Avro has no batch layout); a value that
does not decode, or leaves bytes over, is an error naming the record.
"""

from __future__ import annotations

import io
import json
from typing import Any

__all__ = ["AvroError", "AvroValues"]

_PRIMITIVES = ("null", "boolean", "int", "long", "float", "double", "bytes", "string")


class AvroError(ValueError):
    """A schema that cannot be exported, or a value that is not Avro of the schema."""


def _fastavro() -> Any:
    try:
        import fastavro
    except ImportError as exc:  # pragma: no cover - installed with kafka-core[tools]
        raise AvroError("--value-format avro-schemaless needs fastavro: pip install 'kafka-core[tools]'") from exc
    return fastavro


class AvroValues:
    """Decodes Kafka values written with one Avro schema into an Arrow array of its type."""

    def __init__(self, schema_text: str) -> None:
        fastavro = _fastavro()
        try:
            schema = json.loads(schema_text)
        except ValueError as exc:
            raise AvroError(f"the Avro schema is not JSON: {exc}") from exc
        try:
            self.parsed = fastavro.parse_schema(schema)
        except Exception as exc:   # fastavro raises SchemaParseException and others
            raise AvroError(f"bad Avro schema: {exc}") from exc
        self.reader = fastavro.schemaless_reader
        self.arrow_type = arrow_type(schema)

    def decode(self, values: list[bytes | None], offsets: list[int]) -> Any:
        import pyarrow as pa

        out: list[Any] = []
        reader, parsed = self.reader, self.parsed
        for v, off in zip(values, offsets, strict=True):
            if v is None:
                out.append(None)
                continue
            bio = io.BytesIO(v)
            try:
                out.append(reader(bio, parsed, None))
            except Exception as exc:   # EOFError, ValueError, IndexError from a corrupt value
                raise AvroError(f"offset {off}: not Avro of the given schema ({type(exc).__name__}: {exc})") from exc
            if bio.tell() != len(v):
                raise AvroError(f"offset {off}: {len(v) - bio.tell()} bytes left over after the Avro value")
        try:
            return pa.array(out, self.arrow_type)
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise AvroError(f"Avro values do not fit the schema's Arrow type: {exc}") from exc


def arrow_type(schema: Any, named: dict[str, Any] | None = None, namespace: str = "") -> Any:
    """The Arrow type of an Avro schema (JSON form)."""
    import pyarrow as pa

    named = {} if named is None else named
    if isinstance(schema, str):
        prim = {"null": pa.null(), "boolean": pa.bool_(), "int": pa.int32(), "long": pa.int64(),
                "float": pa.float32(), "double": pa.float64(), "bytes": pa.binary(), "string": pa.string()}
        if schema in prim:
            return prim[schema]
        full = schema if "." in schema or not namespace else f"{namespace}.{schema}"
        for name in (full, schema):
            if name in named:
                if named[name] is None:
                    raise AvroError(f"the record {schema!r} contains itself: Arrow and Parquet have no "
                                    "recursive types")
                return named[name]
        raise AvroError(f"unknown Avro type {schema!r}")
    if isinstance(schema, list):
        branches = [b for b in schema if b != "null"]
        if len(branches) != 1:
            raise AvroError(f"the union {json.dumps(schema)} has {len(branches)} non-null branches: "
                            "Parquet has no union type (only [\"null\", T] is exported)")
        return arrow_type(branches[0], named, namespace)
    if not isinstance(schema, dict):
        raise AvroError(f"bad Avro schema {schema!r}")
    kind = schema.get("type")
    logical = schema.get("logicalType")
    if logical == "uuid":
        raise AvroError("the uuid logical type is not supported: declare the field a plain string")
    if logical == "timestamp-millis" and kind == "long":
        return pa.timestamp("ms", tz="UTC")
    if logical == "timestamp-micros" and kind == "long":
        return pa.timestamp("us", tz="UTC")
    if logical == "date" and kind == "int":
        return pa.date32()
    if logical == "time-millis" and kind == "int":
        return pa.time32("ms")
    if logical == "time-micros" and kind == "long":
        return pa.time64("us")
    if logical == "decimal" and kind in ("bytes", "fixed"):
        return pa.decimal128(int(schema["precision"]), int(schema.get("scale", 0)))
    if kind in ("record", "error", "enum", "fixed"):
        # A named type: known by its full name (and its short one) from here on; its namespace,
        # from a dotted name or its "namespace", is the default of the names inside it.
        name = schema["name"]
        ns = name.rsplit(".", 1)[0] if "." in name else schema.get("namespace", namespace)
        names = {name if "." in name or not ns else f"{ns}.{name}", name.rsplit(".", 1)[-1]}
        if kind == "enum":
            t = pa.string()
        elif kind == "fixed":
            t = pa.binary(int(schema["size"]))
        else:
            named.update(dict.fromkeys(names))          # being defined: a reference now is recursion
            t = pa.struct([pa.field(f["name"], arrow_type(f["type"], named, ns)) for f in schema["fields"]])
        named.update(dict.fromkeys(names, t))
        return t
    if kind == "array":
        return pa.list_(arrow_type(schema["items"], named, namespace))
    if kind == "map":
        return pa.map_(pa.string(), arrow_type(schema["values"], named, namespace))
    if kind in _PRIMITIVES:
        return arrow_type(kind, named, namespace)
    raise AvroError(f"unsupported Avro type {kind!r}")
