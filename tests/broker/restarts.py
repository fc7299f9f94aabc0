"""Broker restarts for the tests that check what survives one (a helper, not a test module)."""

from __future__ import annotations

from kafka_bench.kafka_core_broker import KafkaCoreBroker

RESTARTS = ["clean", "kill-9"]


def restart(b: KafkaCoreBroker, how: str) -> None:
    """Stop b cleanly ("clean") or SIGKILL it ("kill-9"), then start it again on the same data."""
    if how == "clean":
        b.stop()
    elif how == "kill-9":
        b.kill()
    else:
        raise ValueError(f"unknown restart {how!r}")
    b.start()
