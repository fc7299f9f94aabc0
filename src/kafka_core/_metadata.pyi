from collections.abc import Sequence

Partition = tuple[int, int, int, int, Sequence[int], Sequence[int], Sequence[int]]

def encode_partitions(parts: list[Partition], flex: bool, with_epoch: bool, with_offline: bool) -> bytes: ...
