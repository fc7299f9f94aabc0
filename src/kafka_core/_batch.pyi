from collections.abc import Callable, Iterable
from typing import Final, TypeAlias

Buffer: TypeAlias = bytes | bytearray | memoryview
WritableBuffer: TypeAlias = bytearray | memoryview

GIL_RELEASE_MIN: int
HEADER_SIZE: int
CODEC_NONE: int
CODEC_GZIP: int
CODEC_SNAPPY: int
CODEC_LZ4: int
CODEC_ZSTD: int

class BatchInfo:
    base_offset: Final[int]
    batch_length: Final[int]
    partition_leader_epoch: Final[int]
    magic: Final[int]
    crc: Final[int]
    attributes: Final[int]
    last_offset_delta: Final[int]
    base_timestamp: Final[int]
    max_timestamp: Final[int]
    producer_id: Final[int]
    producer_epoch: Final[int]
    base_sequence: Final[int]
    record_count: Final[int]
    position: Final[int]
    size: Final[int]
    last_offset: Final[int]
    codec: Final[int]
    is_transactional: Final[bool]
    is_control: Final[bool]
    timestamp_type: Final[int]

class BatchSummary:
    batches: Final[int]
    records: Final[int]
    offsets: Final[int]
    max_timestamp: Final[int]
    offset_delta_of_max_ts: Final[int]
    first_timestamp: Final[int]
    first: Final[BatchInfo]

class Record:
    def __init__(self, offset: int, timestamp: int, key: bytes | None, value: bytes | None,
                 headers: Iterable[tuple[str, bytes | None]] = ..., topic: str | None = None,
                 partition: int = -1) -> None: ...
    offset: Final[int]
    timestamp: Final[int]
    key: Final[bytes | None]
    value: Final[bytes | None]
    headers: Final[list[tuple[str, bytes | None]]]
    topic: Final[str | None]
    partition: Final[int]

def scan_batches(buf: Buffer, *, verify_crc: bool = True, allow_partial: bool = False,
                 reject_control: bool = False, max_batch_size: int = 0,
                 allow_compacted: bool = False) -> tuple[list[BatchInfo], int]: ...
def validate_batches(buf: Buffer, *, max_batch_size: int = 0, reject_control: bool = True) -> BatchSummary: ...
def assign_offsets(buf: WritableBuffer, base_offset: int, leader_epoch: int = -1,
                   log_append_time: int = -1) -> int: ...
def iter_records(batch: Buffer, base_offset: int | None = None, base_timestamp: int | None = None, *,
                 log_append_time: int = -1, verify_crc: bool = False, topic: str | None = None,
                 partition: int = -1) -> list[Record]: ...
def check_records(batch: Buffer, records: Buffer | None = None, *, require_keys: bool = False,
                  verify_crc: bool = False, allow_compacted: bool = False) -> int: ...
def recompress_batch(batch: Buffer, target_codec: int, level: int | None = None, *,
                     compress: Callable[[memoryview | bytes], Buffer] | None = None,
                     records: Buffer | None = None, require_keys: bool = False,
                     verify_crc: bool = True) -> bytearray: ...

class BatchBuilder:
    def __init__(self, capacity: int, *, base_timestamp: int, producer_id: int = -1, producer_epoch: int = -1,
                 base_sequence: int = -1, attributes: int = 0) -> None: ...
    def append(self, timestamp: int, key: Buffer | str | None, value: Buffer | str | None,
               headers: Iterable[tuple[str | bytes, Buffer | str | None]] = ()) -> bool: ...
    def finish(self) -> memoryview: ...
    def finish_compressed(self, codec: int, compressed: Buffer) -> memoryview: ...
    def records_view(self) -> memoryview: ...
    def __len__(self) -> int: ...
    count: Final[int]
    capacity: Final[int]
    max_timestamp: Final[int]
