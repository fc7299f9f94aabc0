"""kafka_core._errors against csrc/kc_common.h: one class per kc_err code, same numbers.

The C header is the definition; the Python table is written by hand (so that each class can carry
its Kafka error name and base classes), and this test is what keeps the two equal.
"""

from __future__ import annotations

import re
from pathlib import Path

from kafka_core import _errors

HEADER = Path(__file__).resolve().parents[2] / "csrc" / "kc_common.h"

# kc_err name -> the exception class error_for() raises for it.
EXPECTED = {
    "KC_ERR_TRUNCATED": "TruncatedBatchError",
    "KC_ERR_CORRUPT_CRC": "CrcMismatchError",
    "KC_ERR_BAD_MAGIC": "InvalidMagicError",
    "KC_ERR_LEGACY_MAGIC": "LegacyFormatError",
    "KC_ERR_BAD_LENGTH": "InvalidBatchLengthError",
    "KC_ERR_BAD_COUNT": "InvalidRecordCountError",
    "KC_ERR_BAD_RECORD": "InvalidRecordError",
    "KC_ERR_VARINT_UNDERFLOW": "VarintUnderflowError",
    "KC_ERR_VARINT_OVERFLOW": "VarintOverflowError",
    "KC_ERR_CONTROL_BATCH": "ControlBatchError",
    "KC_ERR_BAD_TIMESTAMP": "InvalidTimestampError",
    "KC_ERR_MISSING_KEY": "MissingKeyError",
    "KC_ERR_IO": "LogIOError",
    "KC_ERR_ARG": "InvalidArgumentError",
    "KC_ERR_OFFSET_OUT_OF_RANGE": "OffsetOutOfRangeError",
    "KC_ERR_UNSUPPORTED": "UnsupportedError",
    "KC_ERR_CLOSED": "ClosedError",
    "KC_ERR_TOO_LARGE": "TooLargeError",
    "KC_ERR_CORRUPT_INDEX": "CorruptIndexError",
    "KC_ERR_NOT_FOUND": "NotFoundError",
}
# Codes that never reach Python as their own class: NOMEM becomes MemoryError, AGAIN is a
# would-block the transfer loop handles.
NO_CLASS = {"KC_OK", "KC_ERR_NOMEM", "KC_ERR_AGAIN"}


def header_codes() -> dict[str, int]:
    text = HEADER.read_text()
    body = re.search(r"enum kc_err \{(.*?)\};", text, re.S)
    assert body, "enum kc_err not found in kc_common.h"
    codes = {m[1]: int(m[2]) for m in re.finditer(r"\b(KC_\w+)\s*=\s*(-?\d+)", body[1])}
    assert len(codes) > 20
    return codes


def test_every_code_has_its_class_with_the_same_number():
    codes = header_codes()
    assert set(codes) - NO_CLASS == set(EXPECTED), "kc_common.h and this table disagree on the names"
    for name, cls_name in EXPECTED.items():
        cls = getattr(_errors, cls_name)
        assert cls.code == codes[name], f"{cls_name}.code is {cls.code}, {name} is {codes[name]}"
        e = _errors.error_for(codes[name], "text", "detail", 5)
        assert type(e) is cls and e.code == codes[name]
    assert set(_errors._BY_CODE) == {codes[n] for n in EXPECTED}


def test_nomem_constant_matches_and_maps_to_memory_error():
    codes = header_codes()
    assert _errors.KC_ERR_NOMEM == codes["KC_ERR_NOMEM"]
    assert isinstance(_errors.error_for(codes["KC_ERR_NOMEM"], "no memory"), MemoryError)


def test_pyx_sources_use_named_codes():
    """The .pyx bindings name kc_err codes (KC_ERR_*), never bare negative literals."""
    src = HEADER.parents[1] / "src" / "kafka_core"
    bad = []
    for f in sorted(src.glob("*.pyx")):
        for i, line in enumerate(f.read_text().splitlines(), 1):
            code = line.split("#", 1)[0]
            if re.search(r"(rc\s*==?\s*|_err\(\s*)-(?:[1-9]|[12]\d)\b", code):
                bad.append(f"{f.name}:{i}: {line.strip()}")
    assert not bad, "bare kc_err literals:\n" + "\n".join(bad)
