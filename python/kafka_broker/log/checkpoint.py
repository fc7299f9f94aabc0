"""Small files written whole: ``atomic_write`` and Kafka's checkpoint-file format.

Kafka's ``CheckpointFile`` (``leader-epoch-checkpoint`` in a partition directory,
``replication-offset-checkpoint`` in a log dir) is text::

    0            <- format version
    2            <- number of entries
    0 0          <- one entry a line, fields separated by one space
    3 1200

It is replaced atomically (temp file, fsync, rename, fsync of the directory), so a reader sees
the old file or the new one, never a mix.  A file that does not parse is ``CheckpointError``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

CHECKPOINT_VERSION = 0


class CheckpointError(ValueError):
    """A checkpoint file that does not parse (wrong version, count, or field count)."""


def atomic_write(path: str, data: bytes) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fd = os.open(os.path.dirname(path) or ".", os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_checkpoint(path: str, entries: Iterable[tuple[object, ...]]) -> None:
    lines = [" ".join(str(f) for f in e) for e in entries]
    text = f"{CHECKPOINT_VERSION}\n{len(lines)}\n" + "".join(line + "\n" for line in lines)
    atomic_write(path, text.encode())


def read_checkpoint(path: str, fields: int) -> list[list[str]] | None:
    """The entries (each ``fields`` strings) of the file at ``path``; None when it does not exist."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        return None
    except UnicodeDecodeError as e:
        raise CheckpointError(f"{path}: not text ({e})") from None
    if len(lines) < 2 or lines[0].strip() != str(CHECKPOINT_VERSION):
        raise CheckpointError(f"{path}: unrecognised version line {lines[:1]}")
    try:
        count = int(lines[1])
    except ValueError:
        raise CheckpointError(f"{path}: bad count line {lines[1]!r}") from None
    body = [line for line in lines[2:] if line.strip()]
    if count != len(body):
        raise CheckpointError(f"{path}: says {count} entries, holds {len(body)}")
    out = []
    for line in body:
        parts = line.split()
        if len(parts) != fields:
            raise CheckpointError(f"{path}: expected {fields} fields in {line!r}")
        out.append(parts)
    return out
