"""The state of one transactional id and its legal transitions (Kafka's TransactionMetadata).

A transition is computed first (``prepare_*`` returns a ``Transit``, the target
state; the metadata's ``pending`` is set to its state), written to
``__transaction_state``, and only applied (``complete``) once the append was
acknowledged; a failed append clears ``pending`` and leaves the state as it was.
While ``pending`` is set, any other request on the id answers
CONCURRENT_TRANSACTIONS (the client backs off and retries), which is what
serialises the requests of one id on our single event loop.

States and their ids (TransactionStatus in the log; names as DescribeTransactions
and ListTransactions show them):

    Empty 0 -> Ongoing 1 -> PrepareCommit 2 / PrepareAbort 3 -> CompleteCommit 4 / CompleteAbort 5
    Dead 6 (expired, never written as a value: a tombstone is), PrepareEpochFence 7 (in memory only:
    an InitProducerId or the timeout fencing an ongoing transaction, written as PrepareAbort with
    the bumped epoch)

Transaction version 2 (KIP-890 part 2; ``client_tv`` records which version the client that made
the last transition spoke, Kafka's ClientTransactionVersion): PrepareCommit/PrepareAbort bump the
epoch (the markers carry it, so a write of the ended transaction's epoch is fenced at every
partition) and remember the old one as ``last_producer_epoch``; when that bump would reach
Short.MAX_VALUE - 1's successor the coordinator hands over ``next_producer_id`` instead, and
Complete* moves to it at epoch 0 (``last_producer_id`` keeps the old id: a retried EndTxn of the
old id is recognised).  With TV2 an abort is also legal from Empty/Complete* (the producer aborts
a transaction whose first send never reached a partition).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from kafka_protocol.errors import ErrorCode as E

from .records import TxnLogValue

EMPTY, ONGOING, PREPARE_COMMIT, PREPARE_ABORT, COMPLETE_COMMIT, COMPLETE_ABORT, DEAD, PREPARE_EPOCH_FENCE = range(8)
STATE_NAMES = ("Empty", "Ongoing", "PrepareCommit", "PrepareAbort", "CompleteCommit", "CompleteAbort", "Dead",
               "PrepareEpochFence")
STATE_BY_NAME = {n: i for i, n in enumerate(STATE_NAMES)}
# Kafka's validPreviousStates
VALID_PREVIOUS: dict[int, frozenset[int]] = {
    EMPTY: frozenset({EMPTY, COMPLETE_COMMIT, COMPLETE_ABORT}),
    ONGOING: frozenset({ONGOING, EMPTY, COMPLETE_COMMIT, COMPLETE_ABORT}),
    PREPARE_COMMIT: frozenset({ONGOING}),
    # Empty and Complete*: a TV2 client aborts a transaction none of whose sends reached a partition
    PREPARE_ABORT: frozenset({ONGOING, PREPARE_EPOCH_FENCE, EMPTY, COMPLETE_COMMIT, COMPLETE_ABORT}),
    COMPLETE_COMMIT: frozenset({PREPARE_COMMIT}),
    COMPLETE_ABORT: frozenset({PREPARE_ABORT}),
    DEAD: frozenset({EMPTY, COMPLETE_COMMIT, COMPLETE_ABORT}),
    PREPARE_EPOCH_FENCE: frozenset({ONGOING}),
}
EXPIRATION_ALLOWED = frozenset({EMPTY, COMPLETE_COMMIT, COMPLETE_ABORT})
TV0, TV1, TV2 = 0, 1, 2
NO_PRODUCER_ID = -1
NO_PRODUCER_EPOCH = -1
MAX_EPOCH = 32767


def is_epoch_exhausted(epoch: int) -> bool:
    """Kafka keeps the last epoch (Short.MaxValue) for fencing: at MaxValue - 1 a new id is due."""
    return epoch >= MAX_EPOCH - 1


class IllegalTransition(RuntimeError):
    """A transition Kafka's state machine forbids: a coordinator bug, never a client error."""


@dataclass(frozen=True, slots=True)
class Transit:
    """The target of a transition (Kafka's TxnTransitMetadata)."""

    producer_id: int
    last_producer_id: int
    producer_epoch: int
    last_producer_epoch: int
    timeout_ms: int
    state: int
    partitions: frozenset[tuple[str, int]]
    start_ms: int
    last_update_ms: int
    next_producer_id: int = NO_PRODUCER_ID
    client_tv: int = TV0

    def log_value(self) -> TxnLogValue:
        parts: dict[str, list[int]] = {}
        if self.state != EMPTY:
            for t, p in sorted(self.partitions):
                parts.setdefault(t, []).append(p)
        return TxnLogValue(self.producer_id, self.producer_epoch, self.timeout_ms, self.state, parts,
                           self.last_update_ms, self.start_ms, self.last_producer_id, self.next_producer_id,
                           self.client_tv)


@dataclass(slots=True)
class TxnMetadata:
    transactional_id: str
    producer_id: int
    last_producer_id: int = NO_PRODUCER_ID
    producer_epoch: int = NO_PRODUCER_EPOCH
    last_producer_epoch: int = NO_PRODUCER_EPOCH
    timeout_ms: int = 60000
    state: int = EMPTY
    partitions: set[tuple[str, int]] = field(default_factory=set)
    start_ms: int = -1
    last_update_ms: int = -1
    pending: int | None = None
    # A fence whose PrepareAbort could not be written: the bumped epoch was never handed out, so
    # the next fence does not bump again (Kafka's hasFailedEpochFence).
    failed_epoch_fence: bool = False
    next_producer_id: int = NO_PRODUCER_ID   # TV2: the id an exhausted epoch moves to at Complete*
    client_tv: int = TV0

    @classmethod
    def from_log(cls, tid: str, v: TxnLogValue) -> TxnMetadata:
        if not 0 <= v.status < len(STATE_NAMES) or v.status in (DEAD, PREPARE_EPOCH_FENCE):
            raise ValueError(f"transactional id {tid}: state {v.status} cannot be stored")
        parts = set() if v.status == EMPTY else {(t, p) for t, ps in v.partitions.items() for p in ps}
        return cls(tid, v.producer_id, v.previous_producer_id, v.producer_epoch, NO_PRODUCER_EPOCH, v.timeout_ms,
                   v.status, parts, v.start_ms, v.last_update_ms, next_producer_id=v.next_producer_id,
                   client_tv=v.client_transaction_version)

    @property
    def state_name(self) -> str:
        return STATE_NAMES[self.state]

    def _transit(self, state: int, producer_id: int, epoch: int, last_epoch: int, timeout_ms: int,
                 partitions: frozenset[tuple[str, int]], start_ms: int, update_ms: int,
                 next_producer_id: int = NO_PRODUCER_ID, client_tv: int | None = None) -> Transit:
        if self.pending is not None:
            raise IllegalTransition(f"{self.transactional_id}: {STATE_NAMES[state]} while "
                                    f"{STATE_NAMES[self.pending]} is pending")
        if self.state not in VALID_PREVIOUS[state]:
            raise IllegalTransition(f"{self.transactional_id}: {self.state_name} -> {STATE_NAMES[state]}")
        self.pending = state
        return Transit(producer_id, self.last_producer_id if producer_id == self.producer_id else self.producer_id,
                       epoch, last_epoch, timeout_ms, state, partitions, start_ms, update_ms, next_producer_id,
                       self.client_tv if client_tv is None else client_tv)

    # -- the transitions ------------------------------------------------------------

    def prepare_fence_epoch(self) -> Transit:
        """Ongoing -> PrepareEpochFence: bump the epoch so the current producer is fenced."""
        if self.producer_epoch == MAX_EPOCH:
            raise IllegalTransition("cannot fence a producer at epoch Short.MaxValue")
        epoch = self.producer_epoch if self.failed_epoch_fence else self.producer_epoch + 1
        return self._transit(PREPARE_EPOCH_FENCE, self.producer_id, epoch, NO_PRODUCER_EPOCH, self.timeout_ms,
                             frozenset(self.partitions), self.start_ms, self.last_update_ms)

    def prepare_increment_epoch(self, timeout_ms: int, expected_epoch: int | None, now: int) -> Transit | int:
        """InitProducerId on an idle id: the next epoch (or, for a retry of a bump whose answer was
        lost, the same one); PRODUCER_FENCED when ``expected_epoch`` is neither."""
        if is_epoch_exhausted(self.producer_epoch):
            raise IllegalTransition(f"no epochs left for producer id {self.producer_id}")
        bumped = self.producer_epoch + 1
        if expected_epoch is None:
            epoch, last = bumped, NO_PRODUCER_EPOCH
        elif self.producer_epoch == NO_PRODUCER_EPOCH or expected_epoch == self.producer_epoch:
            epoch, last = bumped, self.producer_epoch
        elif expected_epoch == self.last_producer_epoch:
            epoch, last = self.producer_epoch, self.last_producer_epoch
        else:
            return E.PRODUCER_FENCED
        return self._transit(EMPTY, self.producer_id, epoch, last, timeout_ms, frozenset(), -1, now)

    def prepare_producer_id_rotation(self, new_producer_id: int, timeout_ms: int, now: int,
                                     record_last_epoch: bool) -> Transit:
        """Epochs exhausted: a new producer id at epoch 0."""
        if self.state in (ONGOING, PREPARE_COMMIT, PREPARE_ABORT):
            raise IllegalTransition("cannot rotate the producer id of a pending transaction")
        return self._transit(EMPTY, new_producer_id, 0, self.producer_epoch if record_last_epoch else NO_PRODUCER_EPOCH,
                             timeout_ms, frozenset(), -1, now)

    def prepare_add_partitions(self, added: set[tuple[str, int]], now: int, client_tv: int = TV0) -> Transit:
        start = now if self.state in (EMPTY, COMPLETE_ABORT, COMPLETE_COMMIT) else self.start_ms
        return self._transit(ONGOING, self.producer_id, self.producer_epoch, self.last_producer_epoch, self.timeout_ms,
                             frozenset(self.partitions | added), start, now, client_tv=client_tv)

    def prepare_abort_or_commit(self, state: int, now: int, client_tv: int = TV0,
                                next_producer_id: int = NO_PRODUCER_ID) -> Transit:
        """Kafka's prepareAbortOrCommit: with TV2 the epoch is bumped (except an abort at
        Short.MAX_VALUE, the broken state it recovers from) and the old one kept as the last."""
        epoch, last = self.producer_epoch, self.last_producer_epoch
        if client_tv >= TV2:
            if not (epoch == MAX_EPOCH and state == PREPARE_ABORT):
                epoch += 1
            last = self.producer_epoch
        # TV2 aborts with nothing added have no start time yet: the update time stands in
        no_partition = self.state in (EMPTY, COMPLETE_COMMIT, COMPLETE_ABORT)
        return self._transit(state, self.producer_id, epoch, last, self.timeout_ms, frozenset(self.partitions),
                             now if no_partition else self.start_ms, now, next_producer_id, client_tv)

    def prepare_complete(self, now: int) -> Transit:
        """Kafka's prepareComplete: TV2 with an exhausted epoch moves to ``next_producer_id`` at
        epoch 0 (``last_producer_epoch`` stays the epoch the client last saw)."""
        state = COMPLETE_COMMIT if self.state == PREPARE_COMMIT else COMPLETE_ABORT
        self.failed_epoch_fence = False
        pid, epoch = self.producer_id, self.producer_epoch
        if self.client_tv >= TV2 and self.next_producer_id != NO_PRODUCER_ID:
            pid, epoch = self.next_producer_id, 0
        return self._transit(state, pid, epoch, self.last_producer_epoch, self.timeout_ms,
                             frozenset(), self.start_ms, now)

    def prepare_dead(self) -> Transit:
        return self._transit(DEAD, self.producer_id, self.producer_epoch, self.last_producer_epoch, self.timeout_ms,
                             frozenset(), self.start_ms, self.last_update_ms)

    # -- after the append --------------------------------------------------------------

    def complete(self, t: Transit) -> None:
        """The transition was written: make it the current state (Kafka's completeTransitionTo)."""
        if self.pending != t.state:
            raise IllegalTransition(f"{self.transactional_id}: completing {STATE_NAMES[t.state]}, pending "
                                    f"{None if self.pending is None else STATE_NAMES[self.pending]}")
        self.last_producer_id = t.last_producer_id
        self.producer_id = t.producer_id
        self.producer_epoch = t.producer_epoch
        self.last_producer_epoch = t.last_producer_epoch
        self.timeout_ms = t.timeout_ms
        self.state = t.state
        self.partitions = set(t.partitions)
        self.start_ms = t.start_ms
        self.last_update_ms = t.last_update_ms
        self.next_producer_id = t.next_producer_id
        self.client_tv = t.client_tv
        self.pending = None

    def abandon(self) -> None:
        """The append failed: the transition did not happen."""
        self.pending = None
