"""kafka_broker: a single-node Kafka-compatible broker (asyncio, uvloop when installed).

Run it with ``kafka-core broker [--config FILE] [--set KEY=VALUE ...]`` or
``python -m kafka_broker``.  Python decides (protocol, metadata, sessions);
the C core (``kafka_core``) validates, stores and sends record bytes.
"""

from __future__ import annotations

