from collections import deque
from collections.abc import Callable, Iterable
from typing import Any, Final, TypeAlias

Buffer: TypeAlias = bytes | bytearray | memoryview

WAIT_FUTURE: int
WAIT_CALLBACK: int
SLOW_CLOSED: int
SLOW_TOPIC: int
SLOW_MEMORY: int
SLOW_TOO_LARGE: int
SLOW_PARTITIONER: int
SLOW_RANGE: int
SLOW_NO_PARTITION: int
SKIP_MEMORY: int

def murmur2(data: Buffer | str) -> int: ...
def partition_for_key(key: Buffer | str, num_partitions: int) -> int: ...

class Batch:
    part: Any
    data: Any
    stamped: Any
    waiters: list[tuple[int, Any, int, int]] | None
    id: float
    split_step: float
    created: float
    deadline: float
    retry_at: float
    pid: int
    epoch: int
    base_seq: int
    attempts: int
    done: bool
    transactional: bool
    capacity: Final[int]
    def __init__(self, capacity: int, base_timestamp: int, initial: int = 0) -> None: ...
    count: Final[int]
    nbytes: Final[int]
    def append(self, timestamp: int, key: Buffer | str | None, value: Buffer | str | None,
               headers: Iterable[tuple[str | bytes, Buffer | str | None]] | None = None) -> bool: ...
    def records_view(self) -> memoryview: ...
    def finish(self) -> memoryview: ...
    def finish_compressed(self, codec: int, compressed: Buffer) -> memoryview: ...
    def release(self) -> None: ...
    def add_waiter(self, kind: int, waiter: Any, idx: int, ts: int) -> None: ...
    def resolve(self, topic: str, partition: int, offset: int, log_append_time: int,
                err: BaseException | None, metadata_type: Callable[[str, int, int, int], Any]) -> int: ...

class PartState:
    topic: str
    partition: int
    open: Batch | None
    queue: deque[Batch]
    inflight: list[Batch]
    next_seq: int
    last_acked: int
    def __init__(self, topic: str, partition: int) -> None: ...

class Accumulator:
    parts: dict[tuple[str, int], PartState]
    pending: dict[tuple[str, int], PartState]
    used: int
    buffer_memory: int
    batch_size: int
    max_request_size: int
    producer_id: int
    producer_epoch: int
    idempotent: bool
    closed: bool
    delivery_timeout: float
    fatal: BaseException | None
    wake: Callable[[], Any] | None
    slow: Callable[..., Any] | None
    partitioner: Any
    def __init__(self, *, batch_size: int = 16384, max_request_size: int = 1048576,
                 buffer_memory: int = ..., delivery_timeout: float = 120.0, idempotent: bool = False,
                 wake: Callable[[], Any] | None = None, slow: Callable[..., Any] | None = None,
                 partitioner: Any = None, seed: int | None = None) -> None: ...
    def __enter__(self) -> Accumulator: ...
    def __exit__(self, *exc: object) -> bool: ...
    def owned(self) -> bool: ...
    def set_topic(self, topic: str, num_partitions: int, available: Iterable[int] | None = None) -> None: ...
    def forget_topic(self, topic: str) -> None: ...
    def num_partitions(self, topic: str) -> int: ...
    def sticky_partition(self, topic: str) -> int: ...
    def close_open(self, st: PartState) -> None: ...
    def produce(self, topic: str, value: Buffer | str | None = None, key: Buffer | str | None = None,
                headers: Iterable[tuple[str | bytes, Buffer | str | None]] | None = None,
                partition: int | None = None, timestamp_ms: int | None = None,
                on_delivery: Callable[[BaseException | None, Any], Any] | None = None) -> None: ...
    def produce_future(self, topic: str, value: Any, key: Any, headers: Any, partition: int | None,
                       timestamp_ms: int | None, future: Any) -> None: ...
    def try_append(self, topic: str, value: Any, key: Any, headers: Any, partition: int | None,
                   timestamp_ms: int | None, kind: int, waiter: Any, flags: int = 0) -> int: ...
