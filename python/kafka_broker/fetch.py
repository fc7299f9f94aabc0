"""Fetch (with KIP-227 sessions and long polling), ListOffsets, OffsetForLeaderEpoch.

A fetch reads each partition with one ``Log.read`` (an index lookup in C)
and puts the returned ``FileSlice`` in the response as-is: the connection
sends it with sendfile, so record bytes never enter Python.  Limits follow
KIP-74: ``max_bytes`` and ``partition_max_bytes`` bound the response, except
that the first non-empty partition always returns at least one whole batch.

Long poll: when fewer than ``min_bytes`` are available, the request
registers a waiter on each of its partitions; an append calls it with the
bytes it added, and the response is rebuilt once enough arrived or
``max_wait_ms`` passed.  No timers poll the logs.

The parking rule: a fetch waits only while fewer than ``min_bytes`` are readable
for its partitions (within the partition and response limits), and answers at
once otherwise; with ``min_bytes=1`` (librdkafka's default) it never waits
while any requested partition has a record past its fetch offset.  A drain
that stalls for about a second with data in the log is the client's choice,
not a parked fetch: librdkafka stops fetching for ``fetch.queue.backoff.ms``
(1000 ms) once its local queue holds ``queued.min.messages`` (100000) or
``queued.max.messages.kbytes``, and a broker that answers faster than the
application consumes fills that queue sooner (setting it to 200 ms turns the
1.0 s stall into 0.2 s).  Measured in issue 11 with kafka_bench's drain step:
Apache Kafka stalls the same way (4 rounds of 5 at 50 partitions).

Isolation: read_uncommitted consumers read below the high watermark, read_committed ones below
the last stable offset (the first offset of the oldest open transaction, ``log/txn.py``), with
the aborted transactions overlapping what is returned in ``aborted_transactions`` so they drop
those records; a COMMIT/ABORT marker wakes parked fetches like any append.  Followers read to
the log end.

A partition whose log dir failed (``log/dir_failure.py``) answers KAFKA_STORAGE_ERROR to Fetch,
ListOffsets and OffsetForLeaderEpoch; a fetch parked on it is answered when the dir goes offline.

Sessions: a full fetch with epoch 0 creates a session holding the fetch
state of its partitions; incremental fetches (epoch > 0) send only
changes and get back only partitions with records, an error, or a changed
high watermark / log start offset / last stable offset (``FetchSession.scala``).
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any, Protocol

from kafka_protocol.errors import ErrorCode as E

from .log.fetch_session import INT_MAX, FetchSession, FetchSessionCache, SessionPartition
from .server import RequestContext

if TYPE_CHECKING:
    from .cluster.node import ClusterNode
    from .log.partition import Partition
    from .log.topics import Topic
    from .storage import Storage

__all__ = ["FetchSessionCache", "FetchStats", "handle_fetch", "handle_list_offsets", "handle_offset_for_leader_epoch"]

log = logging.getLogger("kafka_broker.fetch")

class FetchDeps(Protocol):
    """What the fetch handlers need of the broker: the registry, the session cache, the loop."""

    storage: Storage
    fetch_sessions: FetchSessionCache
    loop: asyncio.AbstractEventLoop
    cluster: ClusterNode | None
    fetch_stats: FetchStats


class FetchStats:
    """Long polls that parked, and those that parked although a record was readable (min_bytes 1):
    the broker logs both at shutdown; the second must stay 0 (tests/interop/test_fetch_parking.py)."""

    __slots__ = ("parked", "parked_with_data", "parked_now")

    def __init__(self) -> None:
        self.parked = 0
        self.parked_with_data = 0
        self.parked_now = 0       # long polls waiting at this moment (the fetch purgatory's size)


def _next_epoch(e: int) -> int:
    return 1 if e >= INT_MAX else e + 1


def handle_fetch(b: FetchDeps, ctx: RequestContext, req: Any) -> Any:
    from kafka_protocol.messages import FetchResponse as R

    v = ctx.api_version
    use_ids = v >= 13
    cache = b.fetch_sessions
    sid, sepoch = (req.session_id, req.session_epoch) if v >= 7 else (0, -1)
    session: FetchSession | None = None
    if sepoch in (0, -1):
        if sid != 0:
            cache.remove(sid)
        plist: list[SessionPartition] = []
        for ft in req.topics:
            for fp in ft.partitions:
                sp = SessionPartition(None if use_ids else ft.topic, ft.topic_id if use_ids else None,
                                      fp.partition)
                sp.fetch_offset = fp.fetch_offset
                sp.max_bytes = fp.partition_max_bytes
                sp.leader_epoch = fp.current_leader_epoch if v >= 9 else -1
                sp.replica_log_start = fp.log_start_offset if v >= 5 else -1
                plist.append(sp)
        if sepoch == 0:
            session = cache.create(use_ids)
            if session is not None:
                for sp in plist:
                    session.parts[(sp.topic_id if use_ids else sp.topic, sp.partition)] = sp
        incremental = False
    else:
        session = cache.get(sid)
        if session is None:
            return R(error_code=E.FETCH_SESSION_ID_NOT_FOUND, session_id=0)
        if session.epoch != sepoch:
            return R(error_code=E.INVALID_FETCH_SESSION_EPOCH, session_id=0)
        if session.uses_ids != use_ids:
            return R(error_code=E.FETCH_SESSION_TOPIC_ID_ERROR, session_id=0)
        session.epoch = _next_epoch(session.epoch)
        for ft in req.topics:
            tkey = ft.topic_id if use_ids else ft.topic
            for fp in ft.partitions:
                key = (tkey, fp.partition)
                known = session.parts.get(key)
                if known is not None:
                    sp = known
                else:
                    sp = session.parts[key] = SessionPartition(None if use_ids else ft.topic,
                                                                ft.topic_id if use_ids else None, fp.partition)
                sp.fetch_offset = fp.fetch_offset
                sp.max_bytes = fp.partition_max_bytes
                sp.leader_epoch = fp.current_leader_epoch if v >= 9 else -1
                sp.replica_log_start = fp.log_start_offset if v >= 5 else -1
        for fg in req.forgotten_topics_data:
            tkey = fg.topic_id if use_ids else fg.topic
            for pi in fg.partitions:
                session.parts.pop((tkey, pi), None)
        plist = list(session.parts.values())
        incremental = True

    read_committed = req.isolation_level == 1
    max_bytes = req.max_bytes if v >= 3 else INT_MAX
    resp_sid = session.id if session is not None else 0
    # A follower (replica id >= 0) reads to the log end and tells the leader its own log end;
    # consumers read below the high watermark.
    replica_id = (req.replica_id if v < 15 else req.replica_state.replica_id) if b.cluster is not None else -1
    refused: dict[int, int] = {}
    if replica_id >= 0:
        assert b.cluster is not None
        for sp in plist:
            err, p = _read_partition(b, sp, use_ids)
            if p is not None:
                code = b.cluster.replicas.follower_fetched(p, replica_id, sp.fetch_offset, sp.replica_log_start)
                if code:
                    refused[id(sp)] = code

    # Consumers skip the batches compaction left empty when they come first (kc_log.h,
    # KC_READ_SKIP_EMPTY: librdkafka takes a response of only empty batches for a record too
    # large to fetch); followers copy them, since they carry producer state.
    consumer = replica_id < 0

    def attempt(final: bool) -> Any | None:
        """Read every partition; return the response, or None to keep waiting."""
        reads = [_read_partition(b, sp, use_ids) for sp in plist]
        total = 0
        errors = False
        untaken = False       # records readable that this response has no room for
        readable = False      # some partition has records below its limit
        budget = max_bytes
        out: list[tuple[SessionPartition, int, int, int, Any, int, Any]] = []
        taken: list[tuple[Partition, int]] = []      # what the response carries, for the metrics
        for sp, (err, p) in zip(plist, reads, strict=True):
            if not err and refused:
                err = refused.get(id(sp), 0)
            if err:
                errors = True
                out.append((sp, err, -1, -1, b"", -1, None))
                continue
            assert p is not None
            lg = p.log
            hw = p.high_watermark
            lso = p.last_stable_offset
            end = lg.end_offset
            # read_committed consumers read below the last stable offset, others below the high
            # watermark, followers to the log end
            upto = (lso if read_committed else hw) if consumer else end
            ls = lg.start_offset
            off = sp.fetch_offset
            if off < ls or off > end:
                errors = True
                out.append((sp, E.OFFSET_OUT_OF_RANGE, hw, ls, b"", lso, None))
                continue
            records: Any = b""
            readable = readable or off < upto
            if off < upto and (budget > 0 or total == 0):
                limit = min(sp.max_bytes, budget) if total else max(min(sp.max_bytes, budget), 1)
                try:
                    sl = lg.read(off, limit, upto, consumer)
                except Exception as e:  # noqa: BLE001 - damaged bytes, log gone or I/O error
                    errors = True
                    out.append((sp, p.read_failed(off, e), hw, ls, b"", lso, None))
                    continue
                n = len(sl)
                if n and (total == 0 or n <= limit):
                    records = sl
                    total += n
                    budget -= n
                    taken.append((p, n))
                else:
                    sl.release()
                    untaken = True
            elif off < upto:
                untaken = True
            # the aborted transactions with records in what is returned (the client drops them)
            aborted = p.aborted.between(off, upto) if read_committed and records else ([] if read_committed
                                                                                      else None)
            out.append((sp, 0, hw, ls, records, lso, aborted))
        # Park only while fewer than min_bytes are readable: records that did not fit in this
        # response count as readable (waiting cannot make the response bigger), as Kafka's
        # DelayedFetch sums what each partition has, not what the response could take.
        if not final and not errors and total < req.min_bytes and req.max_wait_ms > 0 and not untaken:
            stats = b.fetch_stats
            stats.parked += 1
            if readable and req.min_bytes <= 1:
                # Never expected: a record was readable and the fetch waits anyway (issue 11).
                stats.parked_with_data += 1
            for _sp, _c, _hw, _ls, rec, _lso, _ab in out:
                if not isinstance(rec, bytes):
                    rec.release()
            return None
        for p, n in taken:
            st = p.topic.stats
            if consumer:
                st.bytes_out += n
            else:
                st.replication_bytes_out += n
        for (_err, p), (_sp, code, *_rest) in zip(reads, out, strict=True):
            if p is not None:
                st = p.topic.stats
                st.fetch_requests += 1
                if code:
                    st.failed_fetch += 1
        resp = _build(b, out, incremental, use_ids, read_committed, resp_sid)
        if session is not None:
            # Partitions that returned records go to the back, so that one busy partition
            # cannot starve the others of the response budget (FetchSession.scala).
            parts = session.parts
            for sp, _err, _hw, _ls, rec, _lso, _ab in out:
                if rec:
                    key = (sp.topic_id if use_ids else sp.topic, sp.partition)
                    parts[key] = parts.pop(key)
        return resp

    first = attempt(final=req.max_wait_ms <= 0 or req.min_bytes <= 0)
    if first is not None:
        return first
    return _long_poll(b, plist, use_ids, req.max_wait_ms, req.min_bytes, attempt)


def _read_partition(b: FetchDeps, sp: SessionPartition, use_ids: bool) -> tuple[int, Partition | None]:
    st = b.storage
    if use_ids:
        t = st.topics_by_id.get(sp.topic_id)
        if t is None:
            return E.UNKNOWN_TOPIC_ID, None
    else:
        t = st.topics.get(sp.topic)  # type: ignore[arg-type]
        if t is None:
            return E.UNKNOWN_TOPIC_OR_PARTITION, None
    if sp.partition < 0 or sp.partition >= len(t.partitions):
        return E.UNKNOWN_TOPIC_OR_PARTITION, None
    p = t.partitions[sp.partition]
    if p is None:   # not hosted here
        return E.NOT_LEADER_OR_FOLLOWER, None
    if p.closed:
        return E.UNKNOWN_TOPIC_OR_PARTITION, None
    if p.log_dir.offline is not None:    # its log dir failed (log/dir_failure.py)
        return E.KAFKA_STORAGE_ERROR, None
    if b.cluster is not None and (p.replication is None or not p.replication.is_leader):
        return E.NOT_LEADER_OR_FOLLOWER, None
    if sp.leader_epoch >= 0 and sp.leader_epoch != p.leader_epoch:
        return (E.FENCED_LEADER_EPOCH if sp.leader_epoch < p.leader_epoch else E.UNKNOWN_LEADER_EPOCH), None
    return 0, p


def _build(b: FetchDeps, out: list[tuple[SessionPartition, int, int, int, Any, int, Any]], incremental: bool,
           use_ids: bool, read_committed: bool, sid: int) -> Any:
    from kafka_protocol.messages import FetchResponse as R

    PD = R.PartitionData
    AT = PD.AbortedTransaction
    topics: list[Any] = []
    cur_key: Any = None
    cur: list[Any] | None = None
    for sp, err, hw, ls, records, lso, ab in out:
        if incremental and not err and not records and hw == sp.hw and ls == sp.log_start and lso == sp.lso:
            continue
        sp.hw, sp.log_start, sp.lso = hw, ls, lso
        aborted = None if ab is None else [AT(producer_id=a.producer_id, first_offset=a.first_offset) for a in ab]
        key = sp.topic_id if use_ids else sp.topic
        if cur is None or key != cur_key:
            cur = []
            cur_key = key
            if use_ids:
                topics.append(R.FetchableTopicResponse(topic_id=sp.topic_id, partitions=cur))
            else:
                topics.append(R.FetchableTopicResponse(topic=sp.topic, partitions=cur))
        cur.append(PD(partition_index=sp.partition, error_code=err, high_watermark=hw,
                      last_stable_offset=lso if lso >= 0 else hw, log_start_offset=ls,
                      aborted_transactions=aborted if read_committed else None, preferred_read_replica=-1,
                      records=records))
    return R(throttle_time_ms=0, error_code=0, session_id=sid, responses=topics)


def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


async def _long_poll(b: FetchDeps, plist: list[SessionPartition], use_ids: bool, max_wait_ms: int,
                     min_bytes: int, attempt: Any) -> Any:
    loop = b.loop
    deadline = loop.time() + max_wait_ms / 1000
    parts = []
    for sp in plist:
        err, p = _read_partition(b, sp, use_ids)
        if p is not None:
            parts.append(p)
    stats = b.fetch_stats
    stats.parked_now += 1
    try:
        return await _park(loop, deadline, parts, min_bytes, attempt)
    finally:
        stats.parked_now -= 1


async def _park(loop: asyncio.AbstractEventLoop, deadline: float, parts: list[Partition], min_bytes: int,
                attempt: Any) -> Any:
    while True:
        fut: asyncio.Future[None] = loop.create_future()
        got = [0]

        def on_data(p: Partition, n: int, fut: asyncio.Future[None] = fut, got: list[int] = got) -> None:
            got[0] += n
            if fut.done():
                return
            if n == 0 or got[0] >= min_bytes:
                fut.set_result(None)
            else:
                p.waiters.append(on_data)

        for p in parts:
            p.waiters.append(on_data)
        remaining = deadline - loop.time()
        timer = loop.call_later(max(remaining, 0), _resolve, fut)
        try:
            await fut
        finally:
            timer.cancel()
            for p in parts:
                try:
                    p.waiters.remove(on_data)
                except ValueError:
                    pass
        final = loop.time() >= deadline
        resp = attempt(final)
        if resp is not None:
            return resp


# ---------------------------------------------------------------------------

EARLIEST, LATEST, MAX_TIMESTAMP, EARLIEST_LOCAL, LATEST_TIERED = -2, -1, -3, -4, -5


def _hosted(topic: Topic | None, idx: int, cluster: bool = False) -> Partition | int:
    """The open partition, or the error code for a client asking about it (in a cluster only
    the leader answers)."""
    if topic is None or idx < 0 or idx >= len(topic.partitions):
        return E.UNKNOWN_TOPIC_OR_PARTITION
    p = topic.partitions[idx]
    if p is None:
        return E.NOT_LEADER_OR_FOLLOWER
    if cluster and (p.replication is None or not p.replication.is_leader):
        return E.NOT_LEADER_OR_FOLLOWER
    if p.closed:
        return E.UNKNOWN_TOPIC_OR_PARTITION
    return E.KAFKA_STORAGE_ERROR if p.log_dir.offline is not None else p


def handle_list_offsets(b: FetchDeps, ctx: RequestContext, req: Any) -> Any:
    from kafka_protocol.messages import ListOffsetsResponse as R

    st = b.storage
    v = ctx.api_version
    PR = R.ListOffsetsPartitionResponse
    topics = []
    seen: set[tuple[str, int]] = set()
    dups: set[tuple[str, int]] = set()
    for t in req.topics:
        for rp in t.partitions:
            key = (t.name, rp.partition_index)
            if key in seen:
                dups.add(key)
            seen.add(key)
    for t in req.topics:
        topic = st.topics.get(t.name)
        presp = []
        for rp in t.partitions:
            idx = rp.partition_index
            if (t.name, idx) in dups:
                presp.append(PR(partition_index=idx, error_code=E.INVALID_REQUEST))
                continue
            p = _hosted(topic, idx, b.cluster is not None)
            if isinstance(p, int):
                presp.append(PR(partition_index=idx, error_code=p))
                continue
            cle = rp.current_leader_epoch if v >= 4 else -1
            if cle >= 0 and cle != p.leader_epoch:
                presp.append(PR(partition_index=idx, error_code=E.FENCED_LEADER_EPOCH if cle < p.leader_epoch
                                else E.UNKNOWN_LEADER_EPOCH))
                continue
            lg = p.log
            ts = rp.timestamp
            epoch = p.leader_epoch
            if ts == EARLIEST or ts == EARLIEST_LOCAL:
                off, rts = lg.start_offset, -1
            elif ts == LATEST:
                # what a consumer can read: the last stable offset under read_committed
                off, rts = (p.last_stable_offset if req.isolation_level == 1 else p.high_watermark), -1
            elif ts == MAX_TIMESTAMP:
                rts, off = lg.max_timestamp()
                if off < 0:
                    epoch = -1
            elif ts == LATEST_TIERED:
                off, rts, epoch = -1, -1, -1
            elif ts < 0:
                presp.append(PR(partition_index=idx, error_code=E.INVALID_REQUEST))
                continue
            else:
                found = lg.lookup_time(ts)
                if found is None:
                    off, rts, epoch = -1, -1, -1
                else:
                    off, rts, _exact = found
            presp.append(PR(partition_index=idx, error_code=0, timestamp=rts, offset=off,
                            leader_epoch=epoch if v >= 4 else -1))
        topics.append(R.ListOffsetsTopicResponse(name=t.name, partitions=presp))
    return R(throttle_time_ms=0, topics=topics)


def handle_offset_for_leader_epoch(b: FetchDeps, ctx: RequestContext, req: Any) -> Any:
    from kafka_protocol.messages import OffsetForLeaderEpochResponse as R

    st = b.storage
    out = []
    for t in req.topics:
        topic = st.topics.get(t.topic)
        parts = []
        for rp in t.partitions:
            idx = rp.partition
            p = _hosted(topic, idx, b.cluster is not None)
            if isinstance(p, int):
                parts.append(R.EpochEndOffset(error_code=p, partition=idx))
                continue
            cle = rp.current_leader_epoch
            if cle >= 0 and cle != p.leader_epoch:
                parts.append(R.EpochEndOffset(error_code=E.FENCED_LEADER_EPOCH if cle < p.leader_epoch
                                              else E.UNKNOWN_LEADER_EPOCH, partition=idx))
                continue
            if p.epochs.latest >= 0 and rp.leader_epoch >= 0:
                # Where the requested epoch ends in this log (LeaderEpochFileCache.endOffsetFor): a
                # follower truncates there; a consumer learns whether its position diverged.
                epoch, end = p.epochs.end_offset_for(rp.leader_epoch, p.log.end_offset)
                parts.append(R.EpochEndOffset(error_code=0, partition=idx, leader_epoch=epoch, end_offset=end))
            elif 0 <= rp.leader_epoch <= p.leader_epoch:
                # a log written before epochs were recorded: one epoch, ending at the log end
                parts.append(R.EpochEndOffset(error_code=0, partition=idx, leader_epoch=p.leader_epoch,
                                              end_offset=p.log.end_offset))
            else:
                parts.append(R.EpochEndOffset(error_code=0, partition=idx, leader_epoch=-1, end_offset=-1))
        out.append(R.OffsetForLeaderTopicResult(topic=t.topic, partitions=parts))
    return R(throttle_time_ms=0, topics=out)

