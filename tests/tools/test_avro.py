"""kafka_tools.avro without a broker: the Arrow type each Avro schema gets, and values of the
logical types decoded into it (fastavro writes the oracle bytes)."""

from __future__ import annotations

import datetime as dt
import decimal
import io

import fastavro
import pyarrow as pa
import pytest
from kafka_tools.avro import AvroError, AvroValues, arrow_type

LOGICAL = {
    "type": "record", "name": "L", "fields": [
        {"name": "day", "type": {"type": "int", "logicalType": "date"}},
        {"name": "t_ms", "type": {"type": "int", "logicalType": "time-millis"}},
        {"name": "t_us", "type": {"type": "long", "logicalType": "time-micros"}},
        {"name": "at_us", "type": {"type": "long", "logicalType": "timestamp-micros"}},
        {"name": "price", "type": {"type": "bytes", "logicalType": "decimal", "precision": 9, "scale": 2}},
        {"name": "flag", "type": "boolean"},
        {"name": "ratio", "type": "float"},
        {"name": "raw", "type": "bytes"},
    ]}


def _encode(schema: object, value: object) -> bytes:
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, fastavro.parse_schema(schema), value)
    return buf.getvalue()


def test_logical_types_round_trip() -> None:
    import json

    values = [{"day": dt.date(2026, 12, 7), "t_ms": dt.time(13, 5, 1, 250_000), "t_us": dt.time(1, 2, 3, 4),
               "at_us": dt.datetime(2026, 12, 7, 13, 0, 0, 123456, tzinfo=dt.UTC),
               "price": decimal.Decimal("1234.50"), "flag": i % 2 == 0, "ratio": 0.5, "raw": bytes([i, 0, 255])}
              for i in range(3)]
    av = AvroValues(json.dumps(LOGICAL))
    assert av.arrow_type == pa.struct([
        ("day", pa.date32()), ("t_ms", pa.time32("ms")), ("t_us", pa.time64("us")),
        ("at_us", pa.timestamp("us", tz="UTC")), ("price", pa.decimal128(9, 2)), ("flag", pa.bool_()),
        ("ratio", pa.float32()), ("raw", pa.binary())])
    arr = av.decode([_encode(LOGICAL, v) for v in values] + [None], [0, 1, 2, 3])
    assert arr.to_pylist() == [*values, None]


def test_named_types_and_namespaces() -> None:
    schema = {"type": "record", "name": "a.b.Outer", "fields": [
        {"name": "x", "type": {"type": "fixed", "name": "Two", "size": 2}},
        {"name": "y", "type": "Two"},
        {"name": "e", "type": {"type": "enum", "name": "E", "symbols": ["A", "B"]}},
        {"name": "es", "type": {"type": "array", "items": "E"}},
        {"name": "inner", "type": {"type": "record", "name": "Inner", "fields": [{"name": "n", "type": "int"}]}},
        {"name": "again", "type": ["null", "a.b.Inner"]},
    ]}
    t = arrow_type(schema)
    assert t.field("y").type == pa.binary(2) and t.field("es").type == pa.list_(pa.string())
    assert t.field("again").type == t.field("inner").type == pa.struct([("n", pa.int32())])


@pytest.mark.parametrize("schema, message", [
    (["null", "int", "string"], "no union type"),
    ({"type": "record", "name": "R", "fields": [{"name": "me", "type": ["null", "R"]}]}, "recursive"),
    ({"type": "string", "logicalType": "uuid"}, "uuid"),
    ("Nowhere", "unknown Avro type"),
])
def test_schemas_refused(schema: object, message: str) -> None:
    with pytest.raises(AvroError, match=message):
        arrow_type(schema)


def test_bad_values_name_their_offset() -> None:
    import json

    av = AvroValues(json.dumps({"type": "record", "name": "P", "fields": [{"name": "n", "type": "long"},
                                                                        {"name": "s", "type": "string"}]}))
    good = _encode({"type": "record", "name": "P", "fields": [{"name": "n", "type": "long"},
                                                              {"name": "s", "type": "string"}]}, {"n": 1, "s": "ab"})
    with pytest.raises(AvroError, match="offset 8: not Avro"):
        av.decode([good, good[:-1]], [7, 8])
    with pytest.raises(AvroError, match="offset 9: 2 bytes left over"):
        av.decode([good, good + b"xy"], [7, 9])
