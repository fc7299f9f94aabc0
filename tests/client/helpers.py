"""Shared helpers for the kafka_client tests."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from kafka_client import AIOConsumer, TopicPartition


async def aconsume(bootstrap: str, topic: str, n: int, partitions: int = 1, timeout: float = 30,
                   **kw: Any) -> dict[int, list[Any]]:
    """Read the first ``n`` records of ``topic`` (assign mode, from the beginning), by partition."""
    c = AIOConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest", **kw)
    await c.start()
    try:
        c.assign([TopicPartition(topic, p) for p in range(partitions)])
        out: dict[int, list[Any]] = {p: [] for p in range(partitions)}
        got = 0
        deadline = time.monotonic() + timeout
        while got < n and time.monotonic() < deadline:
            for tp, recs in (await c.getmany(timeout_ms=500)).items():
                out[tp.partition] += recs
                got += len(recs)
        return out
    finally:
        await c.close()


def consume(bootstrap: str, topic: str, n: int, partitions: int = 1, timeout: float = 30,
            **kw: Any) -> dict[int, list[Any]]:
    return asyncio.run(aconsume(bootstrap, topic, n, partitions, timeout, **kw))


def flat(by_partition: dict[int, list[Any]]) -> list[Any]:
    return [r for p in sorted(by_partition) for r in by_partition[p]]
