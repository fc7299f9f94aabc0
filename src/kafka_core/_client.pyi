from collections.abc import Callable
from typing import Any

PRODUCE_MIN_VERSION: int
PRODUCE_MAX_VERSION: int
PRODUCE_FLEX_MIN: int

class ProducePartitionResult:
    correlation_id: int
    error_code: int
    base_offset: int
    log_append_time_ms: int
    log_start_offset: int
    throttle_time_ms: int
    error_message: str | None
    @property
    def record_errors(self) -> list[Any]: ...

def produce_frame(version: int, correlation_id: int, client_id: bytes | None, transactional_id: bytes | None,
                  acks: int, timeout_ms: int, topic: bytes, partition: int, records: Any) -> bytes | None: ...
def parse_produce_response(frame: Any, version: int, topic: bytes, partition: int
                           ) -> ProducePartitionResult | None: ...

class FrameSplitter:
    max_frame_size: int
    chunk_size: int
    stopped: bool
    def __init__(self, on_frame: Callable[[memoryview], Any], on_error: Callable[[str], Any],
                 max_frame_size: int = ..., chunk_size: int = ...) -> None: ...
    @property
    def pending(self) -> int: ...
    def get_buffer(self, sizehint: int = -1) -> memoryview: ...
    def buffer_updated(self, nbytes: int) -> None: ...
