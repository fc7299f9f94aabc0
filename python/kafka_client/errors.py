"""Client exceptions: one class per Kafka error code, plus local failures.

Every exception is a ``KafkaError`` with ``.error_code`` (the wire code, or
``None`` for failures that happen on this side: timeouts, lost connections,
bad frames) and ``.retriable`` (whether trying again may succeed, as Apache
Kafka's ``RetriableException`` hierarchy says).  Broker errors are created
with ``for_code(code, message)`` and are instances of the class named after
the code: ``for_code(6)`` is a ``NotLeaderOrFollowerError`` whose ``.name``
is ``"NOT_LEADER_OR_FOLLOWER"``.
"""

from __future__ import annotations

from kafka_protocol.errors import ErrorCode

__all__ = [
    "SslAuthenticationError",
    "KafkaError",
    "BrokerResponseError",
    "KafkaConnectionError",
    "KafkaTimeoutError",
    "BadResponseError",
    "ClientClosedError",
    "UnsupportedVersionError",
    "RecordTooLargeError",
    "BufferFullError",
    "OutOfOrderSequenceError",
    "IllegalStateError",
    "TransactionAbortedError",
    "FATAL_TRANSACTION_ERRORS",
    "ErrorCode",
    "for_code",
    "raise_for_code",
    "error_class",
]


class KafkaError(Exception):
    """Base of every error this client raises."""

    error_code: int | None = None
    retriable: bool = False
    name: str = "CLIENT_ERROR"

    def __init__(self, message: str = "") -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        msg = self.message
        return f"[{self.name}] {msg}" if msg else f"[{self.name}]"


class BrokerResponseError(KafkaError):
    """A broker answered with a non-zero error code."""

    error_code: int = -1
    name = "UNKNOWN_SERVER_ERROR"


class KafkaConnectionError(KafkaError):
    """The connection failed or closed before the response came (Java: NetworkException)."""

    retriable = True
    name = "NETWORK_EXCEPTION"


class SslAuthenticationError(KafkaConnectionError):
    """The TLS handshake failed: the broker's certificate does not verify against the trusted CAs
    or its host name, or the broker refused this client's certificate (Java:
    SslAuthenticationException). Not retried: another attempt meets the same certificate."""

    retriable = False
    name = "SSL_AUTHENTICATION_FAILED"


class KafkaTimeoutError(KafkaError):
    """No answer within the configured time (request.timeout.ms, delivery.timeout.ms, ...)."""

    retriable = True
    name = "REQUEST_TIMED_OUT"


class BadResponseError(KafkaConnectionError):
    """The broker sent a frame that does not decode, or a correlation id out of order.
    The connection is closed; the request may be retried on a new one."""

    name = "BAD_RESPONSE"


class ClientClosedError(KafkaError):
    name = "CLIENT_CLOSED"


class IllegalStateError(KafkaError):
    name = "ILLEGAL_STATE"


class TransactionAbortedError(KafkaError):
    """A record's delivery failed because its transaction was aborted before the record was
    sent (Java: TransactionAbortedException): ``abort_transaction()`` drops unsent batches."""

    name = "TRANSACTION_ABORTED"


class RecordTooLargeError(KafkaError):
    """A record larger than max.request.size or buffer.memory (refused locally)."""

    name = "RECORD_TOO_LARGE"


class BufferFullError(KafkaTimeoutError):
    """The producer's buffer_memory is full and the call may not block (asyncio ``produce`` /
    ``send_nowait``): await ``flush()`` or ``send()``, or retry later."""

    name = "BUFFER_FULL"


_CLASSES: dict[int, type[BrokerResponseError]] = {}


def _camel(name: str) -> str:
    return "".join(p.capitalize() for p in name.lower().split("_"))


for _code in ErrorCode:
    if _code == ErrorCode.NONE:
        continue
    _cls_name = _camel(_code.name) + "Error"
    _cls = type(_cls_name, (BrokerResponseError,), {
        "error_code": int(_code),
        "retriable": _code.retriable,
        "name": _code.name,
        "__doc__": _code.message or _code.name,
        "__module__": __name__,
    })
    _CLASSES[int(_code)] = _cls
    globals()[_cls_name] = _cls
    __all__.append(_cls_name)

# The classes the package imports by name, spelled out so that a type checker sees them too.
UnsupportedVersionError = _CLASSES[int(ErrorCode.UNSUPPORTED_VERSION)]
OutOfOrderSequenceError = _CLASSES[int(ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER)]
OffsetOutOfRangeError = _CLASSES[int(ErrorCode.OFFSET_OUT_OF_RANGE)]
TopicAlreadyExistsError = _CLASSES[int(ErrorCode.TOPIC_ALREADY_EXISTS)]
UnknownTopicOrPartitionError = _CLASSES[int(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)]
ProducerFencedError = _CLASSES[int(ErrorCode.PRODUCER_FENCED)]
InvalidProducerEpochError = _CLASSES[int(ErrorCode.INVALID_PRODUCER_EPOCH)]
TransactionalIdAuthorizationFailedError = _CLASSES[int(ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED)]
InvalidTransactionTimeoutError = _CLASSES[int(ErrorCode.INVALID_TRANSACTION_TIMEOUT)]
InvalidTxnStateError = _CLASSES[int(ErrorCode.INVALID_TXN_STATE)]
ConcurrentTransactionsError = _CLASSES[int(ErrorCode.CONCURRENT_TRANSACTIONS)]
TransactionAbortableError = _CLASSES[int(ErrorCode.TRANSACTION_ABORTABLE)]
SaslAuthenticationFailedError = _CLASSES[int(ErrorCode.SASL_AUTHENTICATION_FAILED)]
TopicAuthorizationFailedError = _CLASSES[int(ErrorCode.TOPIC_AUTHORIZATION_FAILED)]

# Errors after which a transactional producer can do nothing but close (Java's
# TransactionManager.transitionToFatalError): fenced by a newer instance, not authorized, a
# timeout the coordinator refuses, a state the coordinator does not recognise, a broker too old.
FATAL_TRANSACTION_ERRORS = frozenset({
    int(ErrorCode.PRODUCER_FENCED), int(ErrorCode.INVALID_PRODUCER_EPOCH),
    int(ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED), int(ErrorCode.CLUSTER_AUTHORIZATION_FAILED),
    int(ErrorCode.INVALID_TRANSACTION_TIMEOUT), int(ErrorCode.INVALID_TXN_STATE),
    int(ErrorCode.UNSUPPORTED_VERSION), int(ErrorCode.UNSUPPORTED_FOR_MESSAGE_FORMAT),
    int(ErrorCode.TRANSACTION_COORDINATOR_FENCED),
})


def error_class(code: int) -> type[BrokerResponseError]:
    """The exception class of a wire error code (unknown codes: the base class, code kept)."""
    cls = _CLASSES.get(code)
    if cls is None:
        return type("UnknownCodeError", (BrokerResponseError,), {"error_code": code, "name": f"UNKNOWN_{code}"})
    return cls


def for_code(code: int, message: str | None = None) -> BrokerResponseError:
    """The exception for a non-zero error code; the message defaults to Kafka's description."""
    cls = error_class(code)
    if not message:
        try:
            message = ErrorCode(code).message
        except ValueError:
            message = f"error code {code}"
    return cls(message)


def raise_for_code(code: int, message: str | None = None) -> None:
    if code:
        raise for_code(code, message)
