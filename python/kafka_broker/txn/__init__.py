"""The transaction coordinator (KIP-98, KIP-447, KIP-890; Kafka 4.x's TransactionCoordinator,
TransactionStateManager and TransactionMarkerChannelManager): TV1 clients and, with
``transaction.version`` 2 finalized, TV2 clients (an epoch bump per transaction).

- ``records.py``: ``__transaction_state`` keys and values in Kafka's byte layout.
- ``state.py``: one transactional id's state and its legal transitions.
- ``markers.py``: WriteTxnMarkers to the leaders of a transaction's partitions, with retries.
- ``coordinator.py``: the APIs' semantics, loading, recovery of Prepare* and the two timers.

The broker wiring (the topic, appends through ``Partition.append``, leadership, the request
handlers) is ``kafka_broker/txn_apis.py``.
"""

from .coordinator import TOPIC, InitResult, TxnCoordinator
from .markers import MarkersAbandoned, MarkerSender

__all__ = ["TOPIC", "InitResult", "MarkerSender", "MarkersAbandoned", "TxnCoordinator"]
