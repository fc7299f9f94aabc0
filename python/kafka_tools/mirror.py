"""Mirror topics from a source cluster to a target cluster (MirrorMaker-style), at least once, or
exactly once for read_committed readers of the target (``exactly_once``).

The paper runs a Kafka cluster per datacentre and one in the analytics datacentre that mirrors
them; this is that mirror, built on kafka_client: an ``AIOConsumer`` in the consumer group
``group`` on the source (so several mirror processes share the partitions) and an idempotent
``AIOProducer`` (acks=all) on the target, both on one event loop.

What is kept: key, value, headers and timestamp (sent as the record's CreateTime; a source topic
with LogAppendTime hands its append time over as the target's CreateTime), and the partition
number (the target topic is created, or grown, to the source's partition count, so source
partition p always goes to target partition p and the per-partition order is the source's).
Target topics are named by ``rename`` (``{source}`` is the source alias, ``{topic}`` the source
topic) and created with the source's partition count and its topic-level, non-default configs
(those DescribeConfigs reports as DYNAMIC_TOPIC_CONFIG), minus the ones MirrorMaker 2's
DefaultConfigPropertyFilter leaves out because they describe the source cluster, not the data
(replication throttles, min.insync.replicas, unclean leader election, message.timestamp.*: the
target keeps the timestamps it is given).

At least once: a source offset is committed only after every record before it was acknowledged
by the target.  Each poll's records of one partition are one *chunk*; only the chunk's last
record carries a delivery callback (the rest go through the producer's C append with no Python
callback), which tells the target offset for the offset syncs.  A checkpoint, every
``sync_interval_s``, flushes the producer (one round trip per checkpoint, not per record) and then
checks that its ``record-error-total`` did not move: then every record forwarded is in the
target and the consumer's positions are committed.  If it did move (a record failed for good),
every partition is sought back to its last committed offset and mirrored again (duplicates in the
target, never a gap); ``max_rewinds`` of those in a row with no progress stop the mirror with an
error (a record the target refuses every time, e.g. larger than its ``max.message.bytes``), having
committed nothing past it.  The producer's delivery timeout is practically unlimited (as Kafka
Connect sets it for source tasks), so a target that restarts only delays acknowledgements; a
source that restarts only delays fetches and commits; any other client error is logged and
retried with backoff.  Duplicates therefore come only from a crash (of the mirror, or of its
group membership): the records between the last checkpoint and the crash are mirrored again.  A
partition the group takes away is checkpointed first (flush, commit), so a rebalance copies
nothing twice.

Exactly once (``exactly_once``, KIP-618's idea for MirrorMaker 2): the target producer is
transactional (``transactional_id`` = ``kc-mirror.<alias>.<group>``) and each checkpoint is one
transaction holding the records since the last one, their offset syncs, and the source positions
committed as offsets of the group ``kc-mirror.<alias>.<group>`` *on the target* (under the target
topic names, partition for partition), with ``send_offsets_to_transaction``.  A restarted mirror
fences the old one (InitProducerId aborts its open transaction) and starts every partition from
those offsets, so a read_committed reader of the target sees each source record once, whatever
crashed.  Source and target offsets cannot share a transaction across clusters, so the progress
lives on the target; and without a group's generation to fence zombies with, this mode is one
process taking every partition (no consumer group on the source).  A transaction that fails is
aborted and its range mirrored again.

Offset translation (MirrorMaker 2's offset syncs and checkpoints, in one topic): each checkpoint
also writes, per partition whose committed offset moved, an *offset sync* to the compacted topic
``kc-mirror-offset-syncs.<source-alias>.internal`` on the target: key ``[topic, partition]`` of
the source, value ``{"upstream_offset": s, "downstream_offset": t, ...}``: source record ``s`` is
target record ``t``, and every source record after ``s`` follows ``t`` in the target (the mirror
produces in order and, after a crash, resumes from a committed offset at most ``s + 1``).  So a
consumer group's committed source offset ``C`` translates to ``t + 1`` of the newest sync with the
largest ``s < C``: no gap, and at most ``C - 1 - s`` records (the checkpoint lag) read twice.  Where
no sync below ``C`` is left (compaction keeps one sync per partition, as MirrorMaker 2's
offset-syncs topic), the translation falls back to the target partition's log start: still no
gap, more re-reads, and it says so (``exact`` false).  ``translate_offsets`` does it for a group;
``kafka-core mirror translate-offsets --group G [--execute]`` prints it or commits it on the
target.  The sync is written before the source commit and not awaited: a sync lost with a crash
only makes a later translation less exact, never wrong.

Python work is per poll and per partition (chunks, checkpoints, commits); the one per-record
statement is the producer's append, a single C call (kafka_client has no call that appends a
fetched batch as it is).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from kafka_client import (
    AIOAdminClient,
    AIOConsumer,
    AIOProducer,
    ConfigResource,
    ConfigResourceType,
    KafkaError,
    NewTopic,
    OffsetAndMetadata,
    RebalanceListener,
    TopicPartition,
)
from kafka_client.errors import BufferFullError

__all__ = ["MirrorConfig", "Mirror", "MirrorStats", "OffsetSync", "Translation", "MirrorError",
           "sync_topic_name", "read_offset_syncs", "translate", "translate_offsets", "DEFAULT_EXCLUDE",
           "EXCLUDED_CONFIGS"]

log = logging.getLogger("kafka_tools.mirror")

# Never mirrored unless named by --include explicitly *and* --exclude is changed: Kafka's internal
# topics (``__consumer_offsets``...), MirrorMaker 2's and our own ``*.internal`` topics and its
# ``*.replica`` topics (MirrorMaker 2's DefaultTopicFilter excludes the same).
DEFAULT_EXCLUDE = r"__.*|.*[-.]internal|.*\.replica"

# Topic configs not carried over (MirrorMaker 2's DefaultConfigPropertyFilter): they are about the
# source cluster's replicas and brokers, or would restamp the records we hand over.
EXCLUDED_CONFIGS = frozenset({
    "follower.replication.throttled.replicas", "leader.replication.throttled.replicas",
    "message.timestamp.difference.max.ms", "message.timestamp.type", "unclean.leader.election.enable",
    "min.insync.replicas", "message.timestamp.before.max.ms", "message.timestamp.after.max.ms",
})

DYNAMIC_TOPIC_CONFIG = 1  # DescribeConfigs' ConfigSource of a config set on the topic
# Kafka Connect's source-task producers never give up on a record (delivery.timeout.ms =
# Integer.MAX_VALUE): a target that is down only delays the mirror.
_DELIVERY_TIMEOUT_MS = 2**31 - 1
_MAX_BACKOFF_S = 10.0


class MirrorError(Exception):
    """The mirror cannot go on (bad settings, a record the target refuses again and again)."""


def sync_topic_name(source_alias: str) -> str:
    """The compacted topic on the target that holds the offset syncs of mirroring ``source_alias``."""
    return f"kc-mirror-offset-syncs.{source_alias}.internal"


@dataclass
class MirrorConfig:
    """What ``kafka-core mirror`` takes; see the module docstring for what each does."""

    source_bootstrap: str
    target_bootstrap: str
    include: str = ".*"
    exclude: str = DEFAULT_EXCLUDE
    group: str = "kafka-core-mirror"
    source_alias: str = "source"
    rename: str = "{topic}"
    until_caught_up: bool = False
    sync_interval_s: float = 1.0       # checkpoint period: commits, offset syncs (the checkpoint lag)
    refresh_topics_s: float = 30.0     # how often new source topics and partitions are looked for
    isolation_level: str = "read_committed"   # aborted transactions are not mirrored
    max_rewinds: int = 10              # rewinds in a row with no commit progress before giving up
    exactly_once: bool = False         # transactions on the target, progress kept there (see above)
    producer: dict[str, Any] = field(default_factory=dict)
    consumer: dict[str, Any] = field(default_factory=dict)

    def target_topic(self, topic: str) -> str:
        return self.rename.format(source=self.source_alias, topic=topic)

    @property
    def sync_topic(self) -> str:
        return sync_topic_name(self.source_alias)

    @property
    def eos_id(self) -> str:
        """With exactly_once: the target producer's transactional id and the target consumer group
        that holds the mirror's progress (source offsets, under the target topic names)."""
        return f"kc-mirror.{self.source_alias}.{self.group}"


@dataclass
class MirrorStats:
    """The summary ``--json`` prints."""

    records: int = 0
    checkpoints: int = 0
    commits_failed: int = 0
    rewinds: int = 0
    retries: int = 0
    seconds: float = 0.0
    caught_up: bool = False
    topics: dict[str, str] = field(default_factory=dict)
    partitions: dict[str, int] = field(default_factory=dict)   # "topic:p" -> records mirrored

    def as_dict(self) -> dict[str, Any]:
        return {"records": self.records, "seconds": round(self.seconds, 3),
                "records_per_s": round(self.records / self.seconds, 1) if self.seconds > 0 else 0.0,
                "checkpoints": self.checkpoints, "commits_failed": self.commits_failed,
                "rewinds": self.rewinds, "retries": self.retries, "caught_up": self.caught_up,
                "topics": dict(self.topics), "partitions": dict(sorted(self.partitions.items()))}


class _Chunk:
    """One poll's records of one partition; settled by the delivery report of its last record."""

    __slots__ = ("src_last", "count", "tgt", "done", "err")

    def __init__(self, src_last: int, count: int) -> None:
        self.src_last = src_last
        self.count = count
        self.tgt = -1
        self.done = False
        self.err: BaseException | None = None

    def settle(self, err: BaseException | None, md: Any) -> None:
        self.done = True
        if err is not None:
            self.err = err
        else:
            self.tgt = md.offset


class _Part:
    """A source partition this process mirrors: where it goes and what is acknowledged."""

    __slots__ = ("target", "tpartition", "pending", "acked", "last_src", "last_tgt", "synced", "committed")

    def __init__(self, target: str, tpartition: int) -> None:
        self.target = target
        self.tpartition = tpartition
        self.pending: deque[_Chunk] = deque()
        self.acked: int | None = None       # next source offset: everything before is in the target
        self.last_src = -1                  # the last acknowledged source record ...
        self.last_tgt = -1                  # ... is this target record (the next offset sync)
        self.synced = -1                    # last_src of the last offset sync written
        self.committed: int | None = None   # what the group has committed (by us)


class _Listener(RebalanceListener):
    def __init__(self, mirror: Mirror) -> None:
        self.mirror = mirror

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self.mirror._on_revoked(revoked)


class Mirror:
    """One mirror process: ``await run()`` until ``stop()`` (or caught up with ``until_caught_up``)."""

    def __init__(self, cfg: MirrorConfig) -> None:
        self.cfg = cfg
        try:
            self.include = re.compile(cfg.include)
            self.exclude = re.compile(cfg.exclude) if cfg.exclude else None
        except re.error as exc:
            raise MirrorError(f"bad topic regex: {exc}") from None
        try:
            cfg.rename.format(source="s", topic="t")
        except (KeyError, IndexError, ValueError) as exc:
            raise MirrorError(f"--rename {cfg.rename!r}: only {{source}} and {{topic}} may be named ({exc!r})") from None
        if "{topic}" not in cfg.rename:
            raise MirrorError(f"--rename {cfg.rename!r} must contain {{topic}}")
        self.stats = MirrorStats()
        self._stop = asyncio.Event()
        self._parts: dict[TopicPartition, _Part] = {}
        self._topics: dict[str, tuple[str, int]] = {}    # source topic -> (target topic, partitions)
        self._end: dict[TopicPartition, int] | None = None
        self._errors_seen = 0
        self._rewinds_in_row = 0
        self._failed = False     # run() is ending on an error: commit nothing more
        self._in_txn = False     # exactly_once: a transaction is open on the target
        self.consumer: AIOConsumer | None = None
        self.producer: AIOProducer | None = None
        self.src_admin: AIOAdminClient | None = None
        self.tgt_admin: AIOAdminClient | None = None

    def stop(self) -> None:
        """Finish the current step, checkpoint what is acknowledged and return from ``run``."""
        self._stop.set()

    # ---- start-up ----
    async def _start(self) -> None:
        cfg = self.cfg
        self.src_admin = await AIOAdminClient(cfg.source_bootstrap, client_id="kafka-core-mirror-admin").start()
        self.tgt_admin = await AIOAdminClient(cfg.target_bootstrap, client_id="kafka-core-mirror-admin").start()
        await self._ensure_sync_topic()
        pkw: dict[str, Any] = {"client_id": "kafka-core-mirror", "acks": "all", "enable_idempotence": True,
                               "linger_ms": 5, "batch_size": 262144, "delivery_timeout_ms": _DELIVERY_TIMEOUT_MS,
                               "allow_auto_create_topics": False}
        if cfg.exactly_once:
            pkw["transactional_id"] = cfg.eos_id
        pkw.update(cfg.producer)
        self.producer = await AIOProducer(cfg.target_bootstrap, **pkw).start()
        if cfg.exactly_once:
            # fences an earlier instance and completes (aborts) its open transaction
            await self.producer.init_transactions()
            self._in_txn = False
        ckw: dict[str, Any] = {"client_id": "kafka-core-mirror", "group_id": None if cfg.exactly_once else cfg.group,
                               "enable_auto_commit": False, "auto_offset_reset": "earliest",
                               "isolation_level": cfg.isolation_level, "max_poll_records": 5000,
                               "allow_auto_create_topics": False}
        ckw.update(cfg.consumer)
        self.consumer = await AIOConsumer(bootstrap_servers=cfg.source_bootstrap, **ckw).start()
        await self.producer.partitions_for(cfg.sync_topic)

    async def _ensure_sync_topic(self) -> None:
        assert self.tgt_admin is not None
        name = self.cfg.sync_topic
        if name not in await self.tgt_admin.list_topics(include_internal=True):
            res = await self.tgt_admin.create_topics([NewTopic(name, 1, -1, {"cleanup.policy": "compact"})])
            err = res.get(name)
            if err is not None and getattr(err, "error_code", None) != 36:   # TOPIC_ALREADY_EXISTS: a peer made it
                raise err

    def _wanted(self, topics: Iterable[str]) -> list[str]:
        return sorted(t for t in topics if self.include.fullmatch(t)
                      and not (self.exclude is not None and self.exclude.fullmatch(t))
                      and t != self.cfg.sync_topic)

    async def _discover(self) -> None:
        """Find the source topics to mirror, create (or grow) their target topics, subscribe."""
        assert self.src_admin is not None and self.tgt_admin is not None
        assert self.consumer is not None and self.producer is not None
        wanted = self._wanted(await self.src_admin.list_topics())
        if not wanted:
            return
        meta = await self.src_admin.describe_topics(wanted)
        counts = {t: meta[t].num_partitions for t in wanted}
        changed = [t for t in wanted if self._topics.get(t, ("", -1))[1] != counts[t]]
        if not changed:
            return
        new = [t for t in changed if t not in self._topics]
        configs = await self.src_admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, t) for t in new]) \
            if new else {}
        existing = await self.tgt_admin.list_topics()
        create, grow = [], {}
        for t in changed:
            target = self.cfg.target_topic(t)
            if target == t and self.cfg.source_bootstrap == self.cfg.target_bootstrap:
                raise MirrorError(f"mirroring {t!r} onto itself: give --rename")
            if target not in existing:
                entries = configs.get(ConfigResource(ConfigResourceType.TOPIC, t), {})
                cfgs = {k: e.value for k, e in entries.items()
                        if e.source == DYNAMIC_TOPIC_CONFIG and e.value is not None and k not in EXCLUDED_CONFIGS}
                create.append(NewTopic(target, counts[t], -1, cfgs))
            else:
                have = (await self.tgt_admin.describe_topics([target]))[target].num_partitions
                if have < counts[t]:
                    grow[target] = counts[t]
        if create:
            res = await self.tgt_admin.create_topics(create)
            for err in res.values():
                if err is not None and getattr(err, "error_code", None) != 36:
                    raise err
            log.info("created on the target: %s", ", ".join(f"{n.name} ({n.num_partitions} partitions"
                                                              f"{', ' + str(n.configs) if n.configs else ''})"
                                                              for n in create))
        if grow:
            await self.tgt_admin.create_partitions(grow, raise_on_error=True)
            log.info("grew on the target: %s", grow)
        for t in changed:
            target = self.cfg.target_topic(t)
            await self.producer.partitions_for(target)
            self._topics[t] = (target, counts[t])
            self.stats.topics[t] = target
        if self.cfg.exactly_once:
            await self._assign_from_target()
        else:
            self.consumer.subscribe(sorted(self._topics), listener=_Listener(self))
        if self.cfg.until_caught_up and self._end is None:
            tps = [TopicPartition(t, p) for t in sorted(self._topics) for p in range(self._topics[t][1])]
            self._end = await self.consumer.end_offsets(tps)
            log.info("until caught up: %d partitions, %d records to their end", len(tps),
                     sum(max(0, e) for e in self._end.values()))

    async def _assign_from_target(self) -> None:
        """exactly_once: take every partition (no group) and start each new one where the progress
        committed on the target with the last transaction says."""
        assert self.consumer is not None and self.tgt_admin is not None
        tps = [TopicPartition(t, p) for t in sorted(self._topics) for p in range(self._topics[t][1])]
        new = [tp for tp in tps if tp not in self.consumer.assignment()]
        self.consumer.assign(tps)
        if not new:
            return
        done = await self.tgt_admin.list_group_offsets(self.cfg.eos_id, [
            TopicPartition(self._topics[tp.topic][0], tp.partition) for tp in new])
        for tp in new:
            st = self._parts[tp] = _Part(self._topics[tp.topic][0], tp.partition)
            om = done.get(TopicPartition(st.target, st.tpartition))
            if om is not None and om.offset >= 0:
                self.consumer.seek(tp, om.offset)
                st.committed = st.acked = om.offset
            else:
                self.consumer.seek_to_beginning(tp)

    # ---- the loop ----
    async def run(self) -> MirrorStats:
        """Mirror until ``stop()``, or, with ``until_caught_up``, until the group's committed offsets
        reach the source end offsets seen at start.  Client errors are retried with backoff."""
        t0 = time.monotonic()
        backoff = 0.2
        started = False
        next_sync = next_refresh = 0.0
        try:
            while not self._stop.is_set():
                try:
                    if not started:
                        await self._start()
                        started = True
                    now = time.monotonic()
                    if now >= next_refresh:
                        await self._discover()
                        next_refresh = now + self.cfg.refresh_topics_s
                    assert self.consumer is not None
                    got = await self.consumer.getmany(timeout_ms=100) if self._topics else {}
                    if not self._topics:
                        await asyncio.sleep(min(1.0, self.cfg.refresh_topics_s))
                        next_refresh = 0.0
                    for tp, recs in got.items():
                        await self._forward(tp, recs)
                    # getmany returns at once while records are buffered: let the producer's and
                    # the consumer's own tasks (sends, delivery reports, fetches) run.
                    await asyncio.sleep(0)
                    if time.monotonic() >= next_sync or (not got and self._end is not None):
                        await self._checkpoint()
                        next_sync = time.monotonic() + self.cfg.sync_interval_s
                        if self._end is not None and await self._caught_up():
                            self.stats.caught_up = True
                            break
                    backoff = 0.2
                except (TimeoutError, KafkaError, OSError) as exc:
                    if not started:
                        # a cluster not up yet is waited for; a refusal (bad topic config, ACLs) is final
                        await self._close()
                        self.consumer = self.producer = self.src_admin = self.tgt_admin = None
                        if isinstance(exc, KafkaError) and not exc.retriable:
                            raise
                    self.stats.retries += 1
                    log.warning("mirror step failed (%s: %s); retrying in %.1fs", type(exc).__name__, exc, backoff)
                    try:
                        await asyncio.wait_for(self._stop.wait(), backoff)
                    except TimeoutError:
                        pass
                    backoff = min(_MAX_BACKOFF_S, backoff * 2)
            if started:
                await self._final_checkpoint()
        except BaseException:
            # Leaving the group on close revokes the partitions: their listener must not
            # checkpoint what the error made unsure.
            self._failed = True
            raise
        finally:
            self.stats.seconds = time.monotonic() - t0
            await self._close()
        return self.stats

    async def _forward(self, tp: TopicPartition, recs: list[Any]) -> None:
        st = self._parts.get(tp)
        if st is None:
            target, _n = self._topics[tp.topic]
            st = self._parts[tp] = _Part(target, tp.partition)
        assert self.producer is not None
        producer = self.producer
        if self.cfg.exactly_once and not self._in_txn:
            producer.begin_transaction()
            self._in_txn = True
        produce = producer.produce
        target, p = st.target, st.tpartition
        chunk = _Chunk(recs[-1].offset, len(recs))
        last = len(recs) - 1
        i = 0
        while True:
            try:
                while i < last:
                    r = recs[i]
                    produce(target, r.value, r.key, r.headers, p, r.timestamp)
                    i += 1
                r = recs[last]
                produce(target, r.value, r.key, r.headers, p, r.timestamp, chunk.settle)
                break
            except BufferFullError:
                # The target is slower than the source (or down): wait for room, which is the
                # mirror's backpressure; the consumer's fetches stop once its buffers are full.
                await producer.flush()
        st.pending.append(chunk)
        self.stats.records += len(recs)
        key = f"{tp.topic}:{tp.partition}"
        self.stats.partitions[key] = self.stats.partitions.get(key, 0) + len(recs)

    def _advance(self, st: _Part) -> None:
        pending = st.pending
        while pending and pending[0].done and pending[0].err is None:
            c = pending.popleft()
            st.acked = c.src_last + 1
            st.last_src, st.last_tgt = c.src_last, c.tgt

    async def _checkpoint(self, only: set[TopicPartition] | None = None) -> None:
        """Commit, per partition, the source offset up to which the target acknowledged everything,
        and write the offset syncs of the partitions that moved."""
        assert self.consumer is not None and self.producer is not None
        if self.cfg.exactly_once:
            await self._commit_transaction()
            return
        consumer, producer = self.consumer, self.producer
        # Wait until everything forwarded so far is acknowledged or failed: only then does an
        # unchanged error count prove it all reached the target (a chunk's last record can be
        # acknowledged before an earlier one fails: a batch refused as too large is split and
        # its halves settle separately).  One round trip per checkpoint, not per record.
        await producer.flush()
        errors = producer.metrics().get("record-error-total", 0)
        if errors != self._errors_seen or any(c.err is not None for st in self._parts.values() for c in st.pending):
            self._errors_seen = errors
            await self._rewind()
            return
        assigned = consumer.assignment()
        for tp in assigned:
            if tp not in self._parts and tp.topic in self._topics:
                self._parts[tp] = _Part(self._topics[tp.topic][0], tp.partition)
        for tp, st in self._parts.items():
            if only is None or tp in only:
                self._advance(st)
        offsets: dict[TopicPartition, int | OffsetAndMetadata] = {}
        syncs: list[tuple[TopicPartition, _Part]] = []
        for tp, st in self._parts.items():
            if (only is not None and tp not in only) or tp not in assigned:
                continue
            if not st.pending:
                # Nothing in flight: the consumer's position may be past the last record (control
                # batches, aborted transactions): nothing there to mirror, so commit it too.
                pos = await consumer.position(tp)
                if st.acked is None or pos > st.acked:
                    st.acked = pos
            if st.acked is not None and st.acked != st.committed:
                offsets[tp] = st.acked
            if st.last_src > st.synced:
                syncs.append((tp, st))
        for tp, st in syncs:
            self._produce_sync(tp, st)
        if offsets:
            try:
                await consumer.commit(offsets)
            except KafkaError as exc:
                self.stats.commits_failed += 1
                log.warning("commit of %d partitions failed (%s); retried at the next checkpoint", len(offsets), exc)
                return
            for tp, off in offsets.items():
                st = self._parts[tp]
                new = off if isinstance(off, int) else off.offset
                if st.committed is None or new > st.committed:
                    self._rewinds_in_row = 0     # progress past whatever failed before
                st.committed = new
        self.stats.checkpoints += 1

    async def _commit_transaction(self) -> None:
        """exactly_once's checkpoint: the records since the last one, their offset syncs and the
        source positions (as offsets of the group ``eos_id`` on the target) in one transaction."""
        assert self.consumer is not None and self.producer is not None
        consumer, producer = self.consumer, self.producer
        positions: dict[TopicPartition, int] = {}
        for tp in consumer.assignment():
            st = self._parts.get(tp)
            if st is not None:
                pos = await consumer.position(tp)
                if pos != st.committed:
                    positions[tp] = pos
        if not positions:
            return
        if not self._in_txn:        # only control batches passed: commit the positions alone
            producer.begin_transaction()
            self._in_txn = True
        await producer.flush()
        for st in self._parts.values():
            self._advance(st)
        for tp, st in self._parts.items():
            if st.last_src > st.synced:
                self._produce_sync(tp, st)
        offsets: dict[TopicPartition | tuple[str, int], Any] = {
            TopicPartition(self._parts[tp].target, self._parts[tp].tpartition): pos for tp, pos in positions.items()}
        try:
            await self._until_done(lambda: producer.send_offsets_to_transaction(offsets, self.cfg.eos_id))
            await self._until_done(producer.commit_transaction)
        except KafkaError as exc:
            log.warning("transaction failed (%s): aborting it and mirroring again from the last commit", exc)
            self.stats.commits_failed += 1
            await self._abort_and_rewind()
            return
        self._in_txn = False
        for tp, pos in positions.items():
            st = self._parts[tp]
            if st.committed is None or pos > st.committed:
                self._rewinds_in_row = 0
            st.committed = st.acked = pos
        self.stats.checkpoints += 1

    async def _until_done(self, op: Any) -> None:
        """A transaction step, again while it fails retriably (a target restarting: a step that
        timed out is called again and keeps waiting for the same outcome); the rest is raised."""
        backoff = 0.2
        while True:
            try:
                await op()
                return
            except KafkaError as exc:
                if not exc.retriable or self._stop.is_set():
                    raise
                self.stats.retries += 1
                log.warning("transaction step failed (%s); again in %.1fs", exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(_MAX_BACKOFF_S, backoff * 2)

    async def _abort_and_rewind(self) -> None:
        assert self.consumer is not None and self.producer is not None
        self.stats.rewinds += 1
        self._rewinds_in_row += 1
        if self._rewinds_in_row > self.cfg.max_rewinds:
            raise MirrorError(f"{self._rewinds_in_row} transactions in a row failed; stopping (nothing after the "
                              "last committed transaction is committed)")
        try:
            await self._until_done(self.producer.abort_transaction)
        except KafkaError as exc:
            # fenced by a newer instance, or the producer is unusable: stop (nothing is committed)
            raise MirrorError(f"cannot abort the transaction ({exc}); stopping") from exc
        self._in_txn = False
        self._errors_seen = self.producer.metrics().get("record-error-total", 0)
        for tp, st in self._parts.items():
            st.pending.clear()
            st.synced = st.last_src = -1
            if st.committed is not None:
                self.consumer.seek(tp, st.committed)
            else:
                self.consumer.seek_to_beginning(tp)

    def _produce_sync(self, tp: TopicPartition, st: _Part) -> None:
        assert self.producer is not None
        self.producer.produce(self.cfg.sync_topic, json.dumps({
            "topic": tp.topic, "partition": tp.partition, "upstream_offset": st.last_src,
            "downstream_topic": st.target, "downstream_partition": st.tpartition,
            "downstream_offset": st.last_tgt}).encode(),
            json.dumps([tp.topic, tp.partition]).encode())
        st.synced = st.last_src

    async def _rewind(self) -> None:
        """Some record failed for good: wait for what is in flight, then mirror every partition
        again from its last committed offset (duplicates, never a gap)."""
        assert self.consumer is not None and self.producer is not None
        self.stats.rewinds += 1
        self._rewinds_in_row += 1
        if self._rewinds_in_row > self.cfg.max_rewinds:
            raise MirrorError(f"the target refused records {self._rewinds_in_row} times in a row; stopping "
                              "(nothing after the last committed offsets is committed)")
        log.warning("the target failed records: mirroring again from the last committed offsets")
        await self.producer.flush()
        self._errors_seen = self.producer.metrics().get("record-error-total", 0)
        assigned = self.consumer.assignment()
        for tp, st in list(self._parts.items()):
            st.pending.clear()
            st.acked = st.committed
            if tp in assigned:
                if st.committed is not None:
                    self.consumer.seek(tp, st.committed)
                else:
                    committed = await self.consumer.committed(tp)
                    if committed is not None:
                        self.consumer.seek(tp, committed)
                    else:
                        self.consumer.seek_to_beginning(tp)

    async def _on_revoked(self, revoked: set[TopicPartition]) -> None:
        """The group takes partitions away: let what is in flight land, commit it, forget them."""
        assert self.producer is not None
        if self._failed:
            return
        try:
            await self.producer.flush(30)
            await self._checkpoint(only=revoked)
        except (TimeoutError, KafkaError) as exc:
            log.warning("checkpoint of revoked partitions failed (%s): they will be mirrored again from "
                        "the last commit", exc)
        for tp in revoked:
            self._parts.pop(tp, None)

    async def _caught_up(self) -> bool:
        """Every partition's committed offset (ours, or a peer's in the group) at its start end offset."""
        assert self._end is not None and self.src_admin is not None
        todo = {tp: end for tp, end in self._end.items() if end > 0}
        for tp, end in list(todo.items()):
            st = self._parts.get(tp)
            if st is not None and st.committed is not None and st.committed >= end:
                del todo[tp]
        if not todo or self.cfg.exactly_once:   # exactly_once: every partition is ours
            return not todo
        got = await self.src_admin.list_group_offsets(self.cfg.group, list(todo))
        return all(tp in got and got[tp].offset >= end for tp, end in todo.items())

    async def _final_checkpoint(self) -> None:
        assert self.producer is not None
        try:
            await self.producer.flush()
            await self._checkpoint()
        except KafkaError as exc:
            log.warning("final checkpoint failed (%s): the next run mirrors again from the last commit", exc)

    async def _close(self) -> None:
        for c in (self.consumer, self.producer, self.src_admin, self.tgt_admin):
            if c is not None:
                try:
                    await c.close()
                except Exception as exc:  # noqa: BLE001 - closing is best effort, the work is committed
                    log.debug("close: %s", exc)


# ---------------------------------------------------------------- offset translation

@dataclass(frozen=True)
class OffsetSync:
    """Source record ``upstream_offset`` of ``topic``/``partition`` is target record
    ``downstream_offset`` of ``downstream_topic``/``downstream_partition``."""

    topic: str
    partition: int
    upstream_offset: int
    downstream_topic: str
    downstream_partition: int
    downstream_offset: int


@dataclass
class Translation:
    """A group's committed source offset and where it resumes on the target."""

    topic: str
    partition: int
    source_offset: int
    target_topic: str
    target_partition: int
    target_offset: int
    exact: bool            # no record is read twice
    max_rereads: int | None  # at most this many records are read again (None: unknown, log start)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


async def read_offset_syncs(target_bootstrap: str, source_alias: str) -> dict[tuple[str, int], list[OffsetSync]]:
    """Every offset sync still in the target's sync topic, per source partition, in write order."""
    topic = sync_topic_name(source_alias)
    out: dict[tuple[str, int], list[OffsetSync]] = {}
    # read_committed: with exactly_once a sync belongs to its transaction (an aborted one's
    # syncs point at records that were aborted too)
    async with AIOConsumer(bootstrap_servers=target_bootstrap, enable_auto_commit=False,
                           auto_offset_reset="earliest", allow_auto_create_topics=False,
                           isolation_level="read_committed", client_id="kafka-core-mirror-translate") as c:
        parts = await c.partitions_for_topic(topic)
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        c.assign(tps)
        c.seek_to_beginning(*tps)
        end = await c.end_offsets(tps)
        todo = {tp for tp in tps if end[tp] > 0}
        deadline = time.monotonic() + 60
        while todo and time.monotonic() < deadline:
            got = await c.getmany(timeout_ms=500)
            for tp, recs in got.items():
                for r in recs:
                    if r.value is None:
                        continue
                    v = json.loads(r.value)
                    s = OffsetSync(v["topic"], v["partition"], v["upstream_offset"], v["downstream_topic"],
                                   v["downstream_partition"], v["downstream_offset"])
                    out.setdefault((s.topic, s.partition), []).append(s)
                if recs and recs[-1].offset + 1 >= end[tp]:
                    todo.discard(tp)
            for tp in list(todo):
                if await c.position(tp) >= end[tp]:
                    todo.discard(tp)
        if todo:
            raise MirrorError(f"could not read {topic} to its end within 60 s")
    return out


def translate(syncs: list[OffsetSync], committed: int) -> OffsetSync | None:
    """The sync to translate ``committed`` with: the largest upstream offset below it, the newest
    of equal ones (see the module docstring); None when no sync lies below it."""
    best: OffsetSync | None = None
    for s in syncs:   # in write order: a later equal upstream offset wins
        if s.upstream_offset < committed and (best is None or s.upstream_offset >= best.upstream_offset):
            best = s
    return best


async def translate_offsets(source_bootstrap: str, target_bootstrap: str, group: str, *,
                            source_alias: str = "source", execute: bool = False) -> list[Translation]:
    """Translate ``group``'s committed source offsets into target offsets with the offset syncs;
    with ``execute`` commit them for ``group`` on the target (the group must have no members there)."""
    syncs = await read_offset_syncs(target_bootstrap, source_alias)
    async with AIOAdminClient(source_bootstrap, client_id="kafka-core-mirror-translate") as src:
        committed = await src.list_group_offsets(group)
    out: list[Translation] = []
    fallback: list[tuple[TopicPartition, int, OffsetSync]] = []
    for tp, om in sorted(committed.items()):
        known = syncs.get((tp.topic, tp.partition))
        if not known or om.offset < 0:
            continue   # not mirrored (or nothing committed)
        best = translate(known, om.offset)
        if best is None:
            fallback.append((tp, om.offset, known[-1]))
            continue
        out.append(Translation(tp.topic, tp.partition, om.offset, best.downstream_topic, best.downstream_partition,
                               best.downstream_offset + 1, best.upstream_offset == om.offset - 1,
                               om.offset - 1 - best.upstream_offset))
    if fallback:
        async with AIOConsumer(bootstrap_servers=target_bootstrap, allow_auto_create_topics=False,
                               client_id="kafka-core-mirror-translate") as c:
            starts = await c.beginning_offsets([TopicPartition(s.downstream_topic, s.downstream_partition)
                                                for _, _, s in fallback])
        for tp, off, s in fallback:
            start = starts.get(TopicPartition(s.downstream_topic, s.downstream_partition), 0)
            out.append(Translation(tp.topic, tp.partition, off, s.downstream_topic, s.downstream_partition,
                                   max(0, start), off <= 0, None))
    out.sort(key=lambda t: (t.topic, t.partition))
    if execute and out:
        async with AIOAdminClient(target_bootstrap, client_id="kafka-core-mirror-translate") as tgt:
            await tgt.alter_group_offsets(group, {TopicPartition(t.target_topic, t.target_partition): t.target_offset
                                                  for t in out})
    return out
