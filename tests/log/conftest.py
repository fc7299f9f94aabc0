"""Log-layer tests: a ``Storage`` and its partitions in process, on a private event loop."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kafka_broker.config import BrokerConfig
from kafka_broker.storage import Storage


class StorageHarness:
    """Opens a Storage on ``dir`` and runs its coroutines to completion on one loop."""

    def __init__(self, dir: Path, *, replicated: bool = False, **settings: str) -> None:
        self.dir = dir
        self.replicated = replicated
        self.settings = {"log.dirs": str(dir), **settings}
        self.loop = asyncio.new_event_loop()
        self.storage: Storage | None = None

    def open(self) -> Storage:
        self.storage = Storage(BrokerConfig(self.settings), self.loop, replicated=self.replicated)
        self.storage.open()
        return self.storage

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    def close(self) -> None:
        if self.storage is not None:
            self.storage.close()
            self.storage = None

    def reopen(self) -> Storage:
        self.close()
        return self.open()

    def crash(self) -> None:
        """Stop without a clean close: the threads go, logs are left as a crash would."""
        st = self.storage
        assert st is not None
        for t in st._timers:
            t.cancel()
        st.flusher.stop()
        st.worker.shutdown(wait=True)
        for topic in st.topics.values():
            for p in topic.hosted():
                p.log.close(clean=False)
        self.storage = None


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[StorageHarness]:
    h = StorageHarness(tmp_path / "logs")
    yield h
    h.close()
    h.loop.close()


@pytest.fixture
def replicated(tmp_path: Path) -> Iterator[StorageHarness]:
    h = StorageHarness(tmp_path / "logs", replicated=True)
    yield h
    h.close()
    h.loop.close()
