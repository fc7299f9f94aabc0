"""``Storage.persist`` is a group commit: topics created side by side share metadata writes, and
each caller returns only once a snapshot taken after its call is on disk."""

from __future__ import annotations

import asyncio
import errno
import json
from typing import Any

from .conftest import StorageHarness


def _count_writes(st: Any) -> list[bytes]:
    written: list[bytes] = []
    real = st._write_meta

    def counting(data: bytes) -> None:
        real(data)
        written.append(data)
    st._write_meta = counting
    return written


def test_topics_created_side_by_side_share_metadata_writes(harness: StorageHarness) -> None:
    st = harness.open()
    written = _count_writes(st)

    async def create_all() -> None:
        await asyncio.gather(*(st.create_topic(f"t{i}", 2, {}) for i in range(50)))
    harness.run(create_all())
    # one write per topic before the group commit; now the 50 share a handful
    assert 1 <= len(written) <= 10, len(written)
    on_disk = json.loads(written[-1])["topics"]
    assert sorted(on_disk) == sorted(f"t{i}" for i in range(50))
    assert all(on_disk[f"t{i}"]["partitions"] == 2 for i in range(50))
    # and what was written is what a restart sees
    st = harness.reopen()
    assert sorted(st.topics) == sorted(f"t{i}" for i in range(50))


def test_each_persist_waits_for_a_snapshot_taken_after_it(harness: StorageHarness) -> None:
    st = harness.open()
    written = _count_writes(st)

    async def scenario() -> None:
        first = asyncio.ensure_future(st.persist())
        for _ in range(3):                # the first write's snapshot is taken and queued
            await asyncio.sleep(0)
        assert st._meta_writer is not None
        st.producer_id_block_end += 1000  # a change after that snapshot was taken
        await st.persist()                # must not return on the first write alone
        assert json.loads(written[-1])["producer_id_block_end"] == st.producer_id_block_end
        await first
    harness.run(scenario())
    assert len(written) == 2


def test_a_failed_write_reaches_every_waiter_and_the_next_persist_writes_again(harness: StorageHarness) -> None:
    st = harness.open()
    real = st._write_meta
    fail = [True]

    def flaky(data: bytes) -> None:
        if fail[0]:
            raise OSError(errno.EIO, "injected")
        real(data)
    st._write_meta = flaky

    async def scenario() -> None:
        results = await asyncio.gather(st.persist(), st.persist(), return_exceptions=True)
        assert all(isinstance(r, OSError) for r in results), results
        fail[0] = False
        await st.persist()
    harness.run(scenario())
    assert st._meta_writer is None and st._meta_written == st._meta_dirty
    assert json.loads((harness.dir / "kc-metadata.json").read_text())["version"] == 1
