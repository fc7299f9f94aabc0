"""Exceptions for the C core's error codes (csrc/kc_common.h).

One place maps a ``kc_err`` code to an exception class, in the manner of
uvloop's errors.pyx.  Record-format errors are ``ValueError`` subclasses
(bad input); storage errors are ``OSError`` subclasses.  Each carries
``code`` (the kc_err value) and ``kafka_error`` (the Kafka error-code name
a broker answers with).
"""

from __future__ import annotations

import errno as _errno
import os

# The one code with no class of its own (it becomes MemoryError). Every other kc_err value of
# csrc/kc_common.h and kc_batch.h has a class below; tests/core/test_error_codes.py checks the two
# against each other.
KC_ERR_NOMEM = -21


class KcError(Exception):
    """Base of every error raised by the C core."""

    code: int = 0
    kafka_error: str = "UNKNOWN_SERVER_ERROR"


class CorruptRecordError(KcError, ValueError):
    """A record batch failed validation."""

    kafka_error = "CORRUPT_MESSAGE"


class TruncatedBatchError(CorruptRecordError):
    code = -1


class CrcMismatchError(CorruptRecordError):
    code = -2


class InvalidMagicError(CorruptRecordError):
    code = -3


class LegacyFormatError(CorruptRecordError):
    code = -4
    kafka_error = "UNSUPPORTED_VERSION"


class InvalidBatchLengthError(CorruptRecordError):
    code = -5


class InvalidRecordCountError(CorruptRecordError):
    code = -6
    kafka_error = "INVALID_RECORD"


class InvalidRecordError(CorruptRecordError):
    code = -7
    kafka_error = "INVALID_RECORD"


class VarintUnderflowError(InvalidRecordError):
    code = -8


class VarintOverflowError(InvalidRecordError):
    code = -9


class ControlBatchError(CorruptRecordError):
    code = -10
    kafka_error = "INVALID_RECORD"


class InvalidTimestampError(CorruptRecordError):
    code = -11
    kafka_error = "INVALID_TIMESTAMP"


class MissingKeyError(InvalidRecordError):
    """A record without key in a batch for a compacted topic."""

    code = -12
    kafka_error = "INVALID_RECORD"


class LogIOError(KcError, OSError):
    code = -20
    kafka_error = "KAFKA_STORAGE_ERROR"


class InvalidArgumentError(KcError, ValueError):
    code = -22
    kafka_error = "INVALID_REQUEST"


class OffsetOutOfRangeError(KcError, IndexError):
    code = -23
    kafka_error = "OFFSET_OUT_OF_RANGE"


class UnsupportedError(KcError, NotImplementedError):
    code = -25
    kafka_error = "UNSUPPORTED_VERSION"


class ClosedError(KcError, ConnectionError):
    code = -26
    kafka_error = "NETWORK_EXCEPTION"


class TooLargeError(KcError, ValueError):
    code = -27
    kafka_error = "MESSAGE_TOO_LARGE"


class CorruptIndexError(KcError):
    code = -28
    kafka_error = "CORRUPT_MESSAGE"


class NotFoundError(KcError, LookupError):
    code = -29


_BY_CODE: dict[int, type[KcError]] = {
    cls.code: cls
    for cls in (
        TruncatedBatchError, CrcMismatchError, InvalidMagicError, LegacyFormatError,
        InvalidBatchLengthError, InvalidRecordCountError, InvalidRecordError,
        VarintUnderflowError, VarintOverflowError, ControlBatchError, InvalidTimestampError, MissingKeyError,
        LogIOError, InvalidArgumentError, OffsetOutOfRangeError, UnsupportedError,
        ClosedError, TooLargeError, CorruptIndexError, NotFoundError,
    )
}


def error_for(code: int, text: str, detail: str = "", err: int = 0) -> KcError:
    """Build the exception for a kc_err ``code``.

    ``text`` is kc_strerror(code); ``detail`` says where (field, offset,
    bytes wanted vs remaining); ``err`` is errno for KC_ERR_IO.
    """
    msg = f"{text}: {detail}" if detail else text
    if code == KC_ERR_NOMEM:
        return MemoryError(msg)  # type: ignore[return-value]
    cls = _BY_CODE.get(code, KcError)
    e: KcError
    if cls is LogIOError:
        e = LogIOError(err or _errno.EIO, f"{msg}: {os.strerror(err)}" if err else msg)
    else:
        e = cls(msg)
    e.code = code
    return e
