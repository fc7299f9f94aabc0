"""The type-checked example application (tests/unit/typed/app.py) works against a broker."""

from __future__ import annotations

import asyncio
import uuid

from tests.unit.typed.app import produce_and_read, produce_and_read_async


def test_typed_app_against_kafka_core(broker):
    topic = f"typed-{uuid.uuid4().hex[:6]}"
    assert produce_and_read(broker.bootstrap, topic) == [b"hello"]
    assert asyncio.run(produce_and_read_async(broker.bootstrap, topic)) == 0
