from collections.abc import Iterable
from os import PathLike
from types import TracebackType
from typing import Any, Final, Self, TypeAlias

Buffer: TypeAlias = bytes | bytearray | memoryview

class AppendInfo:
    first_offset: Final[int]
    last_offset: Final[int]
    max_timestamp: Final[int]
    offset_of_max_timestamp: Final[int]
    log_append_time: Final[int]
    batches: Final[int]
    records: Final[int]
    segment_base: Final[int]
    position: Final[int]
    flush_due: Final[bool]

class Position:
    segment_base: Final[int]
    position: Final[int]
    batch_base_offset: Final[int]
    batch_last_offset: Final[int]
    batch_max_timestamp: Final[int]
    batch_size: Final[int]

class SegmentInfo:
    base_offset: Final[int]
    size_bytes: Final[int]
    next_offset: Final[int]
    max_timestamp: Final[int]
    created_ms: Final[int]
    index_entries: Final[int]
    timeindex_entries: Final[int]

def fd_cap() -> int: ...
def set_fd_cap(cap: int) -> None: ...
def fd_stats() -> dict[str, int]: ...

class FileSlice:
    @property
    def fd(self) -> int: ...
    @property
    def pinned(self) -> bool: ...
    def pin(self) -> int: ...
    def unpin(self) -> None: ...
    position: Final[int]
    length: Final[int]
    segment_base: Final[int]
    first_offset: Final[int]
    last_offset: Final[int]
    def __len__(self) -> int: ...
    def __bool__(self) -> bool: ...
    def release(self) -> None: ...
    def read_bytes(self) -> bytes: ...
    def __enter__(self) -> Self: ...
    def __exit__(
        self, t: type[BaseException] | None, v: BaseException | None, tb: TracebackType | None
    ) -> None: ...

class Log:
    path: Final[str]
    def __init__(
        self,
        path: str | PathLike[str],
        *,
        segment_bytes: int = ...,
        roll_ms: int = ...,
        index_interval_bytes: int = 4096,
        max_index_bytes: int = ...,
        flush_interval_messages: int | None = None,
        max_batch_size: int = 0,
        now_ms: int | None = None,
    ) -> None: ...
    def __enter__(self) -> Self: ...
    def __exit__(
        self, t: type[BaseException] | None, v: BaseException | None, tb: TracebackType | None
    ) -> None: ...
    closed: Final[bool]
    def close(self, clean: bool = True) -> None: ...
    def delete(self) -> None: ...
    def append(
        self,
        buf: Buffer,
        *,
        leader_epoch: int = 0,
        log_append_time: int = -1,
        now_ms: int | None = None,
        assign_offsets: bool = True,
        verify_crc: bool = True,
    ) -> AppendInfo: ...
    def read(self, offset: int, max_bytes: int, max_offset: int = -1, skip_empty: bool = False) -> FileSlice: ...
    def lookup(self, offset: int) -> Position: ...
    def lookup_time(self, ts: int) -> tuple[int, int, bool] | None: ...
    def max_timestamp(self) -> tuple[int, int]: ...
    def configure(self, *, segment_bytes: int = ..., roll_ms: int = ..., index_interval_bytes: int = ...,
                  max_index_bytes: int = ..., flush_interval_messages: int | None = ...,
                  max_batch_size: int = ...) -> None: ...
    def flush(self) -> None: ...
    def checkpoint(self) -> None: ...
    def roll(self, now_ms: int | None = None) -> None: ...
    def truncate_to(self, offset: int) -> None: ...
    def truncate_fully(self, offset: int) -> None: ...
    def retention(
        self, now_ms: int | None, retention_ms: int = -1, retention_bytes: int = -1, upper_bound: int = -1
    ) -> int: ...
    def delete_records(self, offset: int) -> None: ...
    def compact(
        self,
        now_ms: int | None = None,
        *,
        delete_retention_ms: int = 86400000,
        min_compaction_lag_ms: int = 0,
        max_map_bytes: int = ...,
        max_offset: int = -1,
        codec: Any = "auto",
        aborted: Iterable[tuple[int, ...]] = (),
        _crash_after: int = 0,
    ) -> dict[str, int | bool]: ...
    def cleanable_bytes(
        self, now_ms: int | None = None, min_compaction_lag_ms: int = 0, max_offset: int = -1
    ) -> tuple[int, int]: ...
    def dirty_ratio(self, now_ms: int | None = None, min_compaction_lag_ms: int = 0, max_offset: int = -1) -> float: ...
    cleaner_checkpoint: Final[int]
    start_offset: Final[int]
    end_offset: Final[int]
    size_bytes: Final[int]
    segment_count: Final[int]
    recovery_point: Final[int]
    unflushed_messages: Final[int]
    recovery: Final[dict[str, int | bool]]
    def segments(self) -> list[SegmentInfo]: ...
