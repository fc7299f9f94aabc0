"""Typed stub of kafka_core._transfer (csrc/kc_transfer.c)."""

from collections.abc import Iterable
from typing import Final, Protocol

from _typeshed import ReadableBuffer

XFER_AUTO: int
XFER_SENDFILE: int
XFER_URING: int
XFER_COPY: int

class _FileSliceLike(Protocol):
    @property
    def fd(self) -> int: ...
    @property
    def position(self) -> int: ...
    @property
    def length(self) -> int: ...

class _HasFileno(Protocol):
    def fileno(self) -> int: ...

Part = ReadableBuffer | tuple[int, int, int] | _FileSliceLike

def uring_available() -> bool: ...
def auto_mode() -> int: ...
def mode_name(mode: int) -> str: ...
def set_uring_disabled(disabled: bool) -> None: ...

class Transfer:
    def __init__(self, parts: Iterable[Part]) -> None: ...
    def send(self, sock: int | _HasFileno, mode: int = ...) -> bool: ...
    sent: Final[int]
    total: Final[int]
    remaining: Final[int]
    done: Final[bool]
    def __len__(self) -> int: ...
