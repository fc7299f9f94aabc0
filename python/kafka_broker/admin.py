"""Admin APIs: topics, partitions, configs, records deletion, log dirs.

Errors and messages follow Kafka's (``ControllerApis``, ``ConfigHelper``,
``ReplicationControlManager``), since admin tools print them verbatim.
Disk work (creating and deleting logs, rewriting the metadata file) runs on
the storage worker; the handlers return coroutines for it.

CreateTopics and CreatePartitions wait at most the request's ``timeout_ms``
(``_within_timeout``): a topic not done by then is answered REQUEST_TIMED_OUT
and its creation goes on in the background, as Kafka's controller does
(the storage worker creates partitions in slices, so a 50,000-partition
create neither holds up other requests nor is cut short).
"""

from __future__ import annotations

import asyncio
import logging
import shutil
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol

from kafka_protocol.errors import ErrorCode as E
from kafka_protocol.errors import error_code_for as code_for_exception

from .config import (
    BROKER_CONFIGS,
    CONFIG_TYPE,
    SOURCE_DEFAULT,
    SOURCE_STATIC_BROKER,
    SOURCE_TOPIC,
    TOPIC_CONFIGS,
    ConfigError,
    render,
    validate_topic_configs,
)
from .log import topic_name_error
from .server import RequestContext

if TYPE_CHECKING:
    from .config import BrokerConfig
    from .log import Topic
    from .registry import TopicRegistry
    from .storage import Storage

log = logging.getLogger("kafka_broker.admin")

RESOURCE_TOPIC = 2
RESOURCE_BROKER = 4
RESOURCE_BROKER_LOGGER = 8
OP_SET, OP_DELETE, OP_APPEND, OP_SUBTRACT = 0, 1, 2, 3


class AdminDeps(Protocol):
    """What the admin handlers need of the broker: the registry, the configuration, the node id."""

    storage: Storage
    config: BrokerConfig
    node_id: int
    registry: TopicRegistry


# creations answered REQUEST_TIMED_OUT and still running (kept so that they are not collected)
_background: set[asyncio.Task[None]] = set()


async def _within_timeout(jobs: list[tuple[Any, Awaitable[None]]], timeout_ms: int, what: str) -> None:
    """Run every job (result, work) at once; the results of those not finished within timeout_ms
    (> 0; otherwise wait for all) get REQUEST_TIMED_OUT while their work carries on."""
    tasks = {asyncio.ensure_future(work): r for r, work in jobs}
    if not tasks:
        return
    _, pending = await asyncio.wait(tasks, timeout=timeout_ms / 1000 if timeout_ms > 0 else None)
    for t in pending:
        r = tasks[t]
        r.error_code, r.error_message = E.REQUEST_TIMED_OUT, f"Timed out waiting for {what}; it goes on."
        _background.add(t)
        t.add_done_callback(_background.discard)


def _replication_error(b: AdminDeps, rf: int) -> str | None:
    if rf <= 0:
        return "Replication factor must be larger than 0, or -1 to use the default value."
    n = len(b.registry.brokers())
    if rf > n:
        return (f"Unable to replicate the partition {rf} time(s): The target replication factor of {rf} "
                f"cannot be reached because only {n} broker(s) are registered.")
    return None


def _assignment_error(b: AdminDeps, broker_ids: list[int]) -> str | None:
    if len(broker_ids) != len(set(broker_ids)):
        return "The manual partition assignment includes the same broker twice."
    registered = b.registry.brokers()
    for bid in broker_ids:
        if bid not in registered:
            return f"The manual partition assignment includes broker {bid}, but no such broker is registered."
    if not broker_ids:
        return "The manual partition assignment includes an empty replica list."
    return None


def handle_create_topics(b: AdminDeps, ctx: RequestContext, req: Any) -> Any:
    from kafka_protocol.messages import CreateTopicsResponse as R

    v = ctx.api_version
    st = b.storage
    reg = b.registry
    counts = Counter(t.name for t in req.topics)
    results: list[Any] = []
    todo: list[tuple[Any, str, int, int, dict[int, list[int]] | None, dict[str, str]]] = []

    def fail(name: str, code: int, msg: str | None) -> None:
        results.append(R.CreatableTopicResult(name=name, error_code=code, error_message=msg, configs=None
                                              if v >= 5 else [], topic_config_error_code=0))

    for t in req.topics:
        name = t.name
        if counts[name] > 1:
            fail(name, E.INVALID_REQUEST, "Duplicate topic name.")
            continue
        err = topic_name_error(name)
        if err:
            fail(name, E.INVALID_TOPIC_EXCEPTION, err)
            continue
        if reg.get(name) is not None or reg.is_deleting(name):
            fail(name, E.TOPIC_ALREADY_EXISTS, f"Topic '{name}' already exists.")
            continue
        clash = next((t for t in reg.names() if t != name and
                      t.replace(".", "_") == name.replace(".", "_")), None)
        if clash is not None:
            # '.' and '_' collide in metric names (Topic.hasCollision)
            fail(name, E.INVALID_TOPIC_EXCEPTION, f"Topic '{name}' collides with existing topic: {clash}")
            continue
        if t.assignments:
            if t.num_partitions != -1 or t.replication_factor != -1:
                fail(name, E.INVALID_REQUEST, "A manual partition assignment was specified, but numPartitions "
                     "or replicationFactor was not set to -1.")
                continue
            idxs = sorted(a.partition_index for a in t.assignments)
            if idxs != list(range(len(idxs))):
                fail(name, E.INVALID_REPLICA_ASSIGNMENT, "Partitions should be numbered consecutively from 0.")
                continue
            bad = next((e for e in (_assignment_error(b, a.broker_ids) for a in t.assignments) if e), None)
            if bad:
                fail(name, E.INVALID_REPLICA_ASSIGNMENT, bad)
                continue
            nparts = len(idxs)
            assignment: dict[int, list[int]] | None = {a.partition_index: list(a.broker_ids)
                                                       for a in t.assignments}
            rf = len(t.assignments[0].broker_ids)
        else:
            assignment = None
            nparts = b.config["num.partitions"] if t.num_partitions == -1 else t.num_partitions
            rf = b.config["default.replication.factor"] if t.replication_factor == -1 else t.replication_factor
            if nparts <= 0:
                fail(name, E.INVALID_PARTITIONS, "Number of partitions was set to an invalid non-positive value.")
                continue
            rerr = _replication_error(b, rf)
            if rerr:
                fail(name, E.INVALID_REPLICATION_FACTOR, rerr)
                continue
        try:
            configs = st.validate_new_configs((c.name, c.value) for c in t.configs)
        except ValueError as e:
            fail(name, E.INVALID_CONFIG, str(e))
            continue
        r = R.CreatableTopicResult(name=name, error_code=0, error_message=None, num_partitions=nparts,
                                   replication_factor=rf, topic_config_error_code=0)
        if v >= 5:
            r.configs = _created_configs(b, configs)
        results.append(r)
        todo.append((r, name, nparts, rf, assignment, configs))

    if req.validate_only or not todo:
        return R(throttle_time_ms=0, topics=results)

    async def create_one(r: Any, name: str, nparts: int, rf: int, assignment: Any, configs: Any) -> None:
        try:
            # answered once the topic is durably in the metadata; the logs are made afterwards
            r.topic_id = await reg.create(name, nparts, rf, assignment, configs, background=True)
        except FileExistsError:
            r.error_code, r.error_message = E.TOPIC_ALREADY_EXISTS, f"Topic '{name}' already exists."
            r.configs, r.num_partitions, r.replication_factor = None, -1, -1
        except Exception as e:  # noqa: BLE001
            log.error("creating topic %s: %s", name, e)
            r.error_code, r.error_message = code_for_exception(e), str(e)
            r.configs, r.num_partitions, r.replication_factor = None, -1, -1

    async def create() -> Any:
        await _within_timeout([(job[0], create_one(*job)) for job in todo], req.timeout_ms, "topic creation")
        return R(throttle_time_ms=0, topics=results)
    return create()


def _created_configs(b: AdminDeps, overrides: dict[str, str]) -> list[Any]:
    from kafka_protocol.messages import CreateTopicsResponse as R

    out = []
    eff = b.config.topic_defaults()
    eff.update(validate_topic_configs(overrides))
    for name in sorted(TOPIC_CONFIGS):
        d = TOPIC_CONFIGS[name]
        src = _topic_source(b, name, overrides)
        out.append(R.CreatableTopicConfigs(name=name, value=render(d.defn, eff[name]), read_only=False,
                                           config_source=src, is_sensitive=False))
    return out


def _topic_source(b: AdminDeps, name: str, overrides: dict[str, str]) -> int:
    if name in overrides:
        return SOURCE_TOPIC
    syn = b.config.topic_synonyms(name)
    if syn and syn[0][2] == SOURCE_STATIC_BROKER:
        return SOURCE_STATIC_BROKER
    return SOURCE_DEFAULT


def handle_delete_topics(b: AdminDeps, ctx: RequestContext, req: Any) -> Any:
    from kafka_protocol.messages import DeleteTopicsResponse as R

    v = ctx.api_version
    reg = b.registry
    if v >= 6:
        wanted = [(t.name, t.topic_id) for t in req.topics]
    else:
        wanted = [(n, None) for n in req.topic_names]
    results = []
    todo: list[str] = []
    for name, tid in wanted:
        r = R.DeletableTopicResult(name=name, error_code=0)
        if tid is not None:
            r.topic_id = tid
        results.append(r)
        if name is not None and tid is not None and tid.int != 0:
            r.error_code, r.error_message = E.INVALID_REQUEST, "Please provide either a topic name or id, not both."
            continue
        if name is not None:
            topic = reg.get(name)
            if topic is None:
                r.error_code, r.error_message = E.UNKNOWN_TOPIC_OR_PARTITION, \
                    "This server does not host this topic-partition."
                continue
        else:
            topic = reg.get_by_id(tid)
            if topic is None:
                r.error_code, r.error_message = E.UNKNOWN_TOPIC_ID, "This server does not host this topic ID."
                continue
            r.name = topic.name
        r.topic_id = topic.id
        if topic.internal:
            r.error_code, r.error_message = E.INVALID_TOPIC_EXCEPTION, \
                f"Topic {topic.name} is an internal topic and cannot be deleted."
            continue
        if not b.config["delete.topic.enable"]:
            r.error_code, r.error_message = E.TOPIC_DELETION_DISABLED, "Topic deletion is disabled."
            continue
        if topic.name in todo:
            continue
        todo.append(topic.name)
    if not todo:
        return R(throttle_time_ms=0, responses=results)

    async def delete() -> Any:
        for name in todo:
            try:
                await reg.delete(name)
            except Exception as e:  # noqa: BLE001
                log.error("deleting topic %s: %s", name, e)
        return R(throttle_time_ms=0, responses=results)
    return delete()


def handle_create_partitions(b: AdminDeps, ctx: RequestContext, req: Any) -> Any:
    from kafka_protocol.messages import CreatePartitionsResponse as R

    reg = b.registry
    counts = Counter(t.name for t in req.topics)
    results = []
    todo: list[tuple[Any, str, int, list[list[int]] | None]] = []
    for t in req.topics:
        r = R.CreatePartitionsTopicResult(name=t.name, error_code=0, error_message=None)
        results.append(r)
        if counts[t.name] > 1:
            r.error_code, r.error_message = E.INVALID_REQUEST, "Duplicate topic name."
            continue
        topic = reg.get(t.name)
        if topic is None:
            r.error_code, r.error_message = E.UNKNOWN_TOPIC_OR_PARTITION, \
                "This server does not host this topic-partition."
            continue
        cur = topic.num_partitions
        if t.count < cur:
            r.error_code, r.error_message = E.INVALID_PARTITIONS, \
                f"Topic currently has {cur} partitions, which is higher than the requested {t.count}."
            continue
        if t.count == cur:
            r.error_code, r.error_message = E.INVALID_PARTITIONS, f"Topic already has {cur} partitions."
            continue
        if t.assignments is not None:
            if len(t.assignments) != t.count - cur:
                r.error_code, r.error_message = E.INVALID_REPLICA_ASSIGNMENT, \
                    (f"Attempted to add {t.count - cur} additional partition(s), but only "
                     f"{len(t.assignments)} assignment(s) were specified.")
                continue
            bad = next((e for e in (_assignment_error(b, a.broker_ids) for a in t.assignments) if e), None)
            if bad:
                r.error_code, r.error_message = E.INVALID_REPLICA_ASSIGNMENT, bad
                continue
        todo.append((r, topic.name, t.count, [list(a.broker_ids) for a in t.assignments]
                     if t.assignments is not None else None))
    if req.validate_only or not todo:
        return R(throttle_time_ms=0, results=results)

    async def add_one(r: Any, name: str, count: int, assignment: Any) -> None:
        try:
            await reg.add_partitions(name, count, assignment)
        except Exception as e:  # noqa: BLE001
            r.error_code, r.error_message = code_for_exception(e), str(e)

    async def create() -> Any:
        await _within_timeout([(job[0], add_one(*job)) for job in todo], req.timeout_ms, "partition creation")
        return R(throttle_time_ms=0, results=results)
    return create()


def handle_delete_records(b: AdminDeps, ctx: RequestContext, req: Any) -> Any:
    from kafka_protocol.messages import DeleteRecordsResponse as R

    st = b.storage
    results = []
    todo: list[tuple[Any, Any, int]] = []
    for t in req.topics:
        topic = st.topics.get(t.name)
        parts = []
        for rp in t.partitions:
            r = R.DeleteRecordsPartitionResult(partition_index=rp.partition_index, low_watermark=-1, error_code=0)
            parts.append(r)
            idx = rp.partition_index
            if topic is None or idx < 0 or idx >= len(topic.partitions):
                r.error_code = E.UNKNOWN_TOPIC_OR_PARTITION
                continue
            if topic.internal:
                # Kafka: InvalidTopicException "Cannot delete records of internal topic" (deleting
                # __consumer_offsets records would drop every group's committed offsets)
                r.error_code = E.INVALID_TOPIC_EXCEPTION
                continue
            p = topic.partitions[idx]
            if p is None or (p.replication is not None and not p.replication.is_leader):
                r.error_code = E.NOT_LEADER_OR_FOLLOWER     # not hosted here, or not led here
                continue
            if p.offline:          # its log dir failed (log/dir_failure.py)
                r.error_code = E.KAFKA_STORAGE_ERROR
                continue
            hw = p.high_watermark
            off = hw if rp.offset == -1 else rp.offset
            if off < 0 or off > hw:
                r.error_code = E.OFFSET_OUT_OF_RANGE
                continue
            if off <= p.log.start_offset:
                r.low_watermark = p.log.start_offset
                continue
            todo.append((r, p, off))
        results.append(R.DeleteRecordsTopicResult(name=t.name, partitions=parts))
    if not todo:
        return R(throttle_time_ms=0, topics=results)

    async def run() -> Any:
        for r, p, off in todo:
            try:
                await st.delete_records(p, off)
                r.error_code, r.low_watermark = await b.registry.low_watermark(p, off, req.timeout_ms)
            except KeyError:
                r.error_code = E.UNKNOWN_TOPIC_OR_PARTITION
            except Exception as e:  # noqa: BLE001
                r.error_code = code_for_exception(e)
        return R(throttle_time_ms=0, topics=results)
    return run()


def handle_describe_log_dirs(b: AdminDeps, ctx: RequestContext, req: Any) -> Any:
    from kafka_protocol.messages import DescribeLogDirsResponse as R

    st = b.storage
    wanted: dict[str, set[int] | None] | None = None
    if req.topics is not None:
        wanted = {}
        for t in req.topics:
            wanted.setdefault(t.topic, set()).update(t.partitions)  # type: ignore[union-attr]
    by_dir: dict[str, dict[str, list[Any]]] = {d: {} for d in st.dirs}
    for topic in st.topics.values():
        if wanted is not None and topic.name not in wanted:
            continue
        for p in topic.hosted():
            if wanted is not None and p.index not in (wanted[topic.name] or ()):
                continue
            if p.closed or p.offline:     # an offline dir is listed with its error alone (below)
                continue
            d = next((d for d in st.dirs if p.path.startswith(d + "/")), st.dirs[0])
            by_dir[d].setdefault(topic.name, []).append(
                R.DescribeLogDirsPartition(partition_index=p.index, partition_size=p.log.size_bytes,
                                           offset_lag=0, is_future_key=False))
    results = []
    for d, topics in by_dir.items():
        if st.log_dirs.get(d).offline is not None:
            # Kafka's describeLogDirs: an offline dir is listed with its error and nothing else
            results.append(R.DescribeLogDirsResult(error_code=E.KAFKA_STORAGE_ERROR, log_dir=d, topics=[],
                                                   total_bytes=-1, usable_bytes=-1))
            continue
        try:
            du = shutil.disk_usage(d)
            total, usable = du.total, du.free
        except OSError:
            total = usable = -1
        results.append(R.DescribeLogDirsResult(
            error_code=0, log_dir=d,
            topics=[R.DescribeLogDirsTopic(name=n, partitions=ps) for n, ps in sorted(topics.items())],
            total_bytes=total, usable_bytes=usable))
    return R(throttle_time_ms=0, error_code=0, results=results)


# ---------------------------------------------------------------------------
# configs


def _synonym_list(b: AdminDeps, name: str, topic: Topic | None) -> list[tuple[str, str | None, int]]:
    out: list[tuple[str, str | None, int]] = []
    if topic is not None and name in topic.overrides:
        out.append((name, render(TOPIC_CONFIGS[name].defn, topic.effective[name]), SOURCE_TOPIC))
    out.extend(b.config.topic_synonyms(name))
    return out


def handle_describe_configs(b: AdminDeps, ctx: RequestContext, req: Any) -> Any:
    from kafka_protocol.messages import DescribeConfigsResponse as R

    v = ctx.api_version
    results = []
    for res in req.resources:
        keys = None if res.configuration_keys is None else set(res.configuration_keys)
        r = R.DescribeConfigsResult(error_code=0, error_message=None, resource_type=res.resource_type,
                                    resource_name=res.resource_name, configs=[])
        results.append(r)
        if res.resource_type == RESOURCE_TOPIC:
            topic = b.registry.topic_view(res.resource_name)
            if topic is None:
                err = topic_name_error(res.resource_name)
                r.error_code = E.INVALID_TOPIC_EXCEPTION if err else E.UNKNOWN_TOPIC_OR_PARTITION
                r.error_message = err or f"Topic {res.resource_name} does not exist."
                continue
            for name in sorted(TOPIC_CONFIGS):
                if keys is not None and name not in keys:
                    continue
                d = TOPIC_CONFIGS[name].defn
                syn = _synonym_list(b, name, topic)
                src = syn[0][2] if syn else SOURCE_DEFAULT
                c = R.DescribeConfigsResourceResult(
                    name=name, value=render(d, topic.effective[name]), read_only=False, config_source=src,
                    is_sensitive=False, config_type=CONFIG_TYPE.get(d.type, 0), documentation=None)
                if req.include_synonyms:
                    c.synonyms = [R.DescribeConfigsSynonym(name=n, value=val, source=s) for n, val, s in syn]
                r.configs.append(c)
        elif res.resource_type == RESOURCE_BROKER:
            if res.resource_name not in ("", str(b.node_id)):
                r.error_code = E.INVALID_REQUEST
                r.error_message = (f"Unexpected broker id, expected {b.node_id} or empty string, but received "
                                   f"{res.resource_name}")
                continue
            default_only = res.resource_name == ""
            for name in sorted(BROKER_CONFIGS):
                if keys is not None and name not in keys:
                    continue
                d = BROKER_CONFIGS[name]
                explicit = name in b.config.explicit and not default_only
                if default_only and not explicit:
                    continue   # cluster-wide dynamic defaults: none are set
                value = b.config.values[name] if explicit else d.default
                if name in ("node.id", "broker.id"):
                    value, explicit = b.node_id, not default_only
                if explicit and name in ("log.retention.ms", "log.roll.ms", "log.roll.jitter.ms"):
                    value = b.config._raw_value(name)
                syn = []
                if explicit:
                    syn.append((name, render(d, value), SOURCE_STATIC_BROKER))
                if d.default is not None:
                    syn.append((name, render(d, d.default), SOURCE_DEFAULT))
                c = R.DescribeConfigsResourceResult(
                    name=name, value=None if d.sensitive else render(d, value), read_only=not d.dynamic,
                    config_source=SOURCE_STATIC_BROKER if explicit else SOURCE_DEFAULT,
                    is_sensitive=d.sensitive, config_type=CONFIG_TYPE.get(d.type, 0), documentation=None)
                if req.include_synonyms:
                    c.synonyms = [R.DescribeConfigsSynonym(name=n, value=val, source=s) for n, val, s in syn]
                r.configs.append(c)
        elif res.resource_type == RESOURCE_BROKER_LOGGER:
            r.error_code = E.INVALID_REQUEST
            r.error_message = "Broker loggers are not supported by this broker."
        else:
            r.error_code = E.INVALID_REQUEST
            r.error_message = f"Unsupported resource type {res.resource_type}"
    _ = v
    return R(throttle_time_ms=0, results=results)


def _alter_prepare(b: AdminDeps, res_type: int, res_name: str) -> tuple[int, str | None, Topic | None]:
    if res_type == RESOURCE_TOPIC:
        topic = b.registry.topic_view(res_name)
        if topic is None:
            return E.UNKNOWN_TOPIC_OR_PARTITION, f"Topic {res_name} does not exist.", None
        return 0, None, topic
    if res_type == RESOURCE_BROKER:
        return E.INVALID_REQUEST, "Dynamic broker configs are not supported by this broker.", None
    return E.INVALID_REQUEST, f"Unsupported resource type {res_type}", None


class _Refused(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _alter(b: AdminDeps, R: Any, req: Any, new_overrides: Callable[[Any, Topic], dict[str, str]]) -> Any:
    """AlterConfigs and IncrementalAlterConfigs: per resource, the topic's new overrides from
    ``new_overrides`` (raising _Refused, or ConfigError/ValueError for INVALID_CONFIG), then all
    applied at once unless validate_only."""
    results = []
    todo: list[tuple[Any, Topic, dict[str, str]]] = []
    for res in req.resources:
        r = R.AlterConfigsResourceResponse(error_code=0, error_message=None, resource_type=res.resource_type,
                                           resource_name=res.resource_name)
        results.append(r)
        code, msg, topic = _alter_prepare(b, res.resource_type, res.resource_name)
        if code:
            r.error_code, r.error_message = code, msg
            continue
        assert topic is not None
        try:
            todo.append((r, topic, new_overrides(res, topic)))
        except _Refused as e:
            r.error_code, r.error_message = e.code, e.message
        except ValueError as e:     # ConfigError included
            r.error_code, r.error_message = E.INVALID_CONFIG, str(e)
    return _apply_alters(b, R, results, todo, req.validate_only)


def handle_alter_configs(b: AdminDeps, ctx: RequestContext, req: Any) -> Any:
    from kafka_protocol.messages import AlterConfigsResponse as R

    return _alter(b, R, req, lambda res, topic: b.storage.validate_new_configs(
        (c.name, c.value) for c in res.configs))


def _incremental_overrides(res: Any, topic: Topic) -> dict[str, str]:
    names = Counter(c.name for c in res.configs)
    dup = [n for n, k in names.items() if k > 1]
    if dup:
        raise _Refused(E.INVALID_REQUEST, f"Error due to duplicate config keys: {dup[0]}")
    new = dict(topic.overrides)
    for c in res.configs:
        td = TOPIC_CONFIGS.get(c.name)
        if td is None:
            raise ConfigError(f"Unknown topic config name: {c.name}")
        op = c.config_operation
        if op == OP_SET:
            if c.value is None:
                raise ConfigError(f"Null value not supported for : {c.name}")
            new[c.name] = c.value
        elif op == OP_DELETE:
            new.pop(c.name, None)
        elif op in (OP_APPEND, OP_SUBTRACT):
            if td.defn.type != "list":
                raise ConfigError(f"Config value append is not allowed for config key: {c.name}")
            cur = [x.strip() for x in new.get(c.name, render(td.defn, topic.effective[c.name]) or "")
                   .split(",") if x.strip()]
            vals = [x.strip() for x in (c.value or "").split(",") if x.strip()]
            if op == OP_APPEND:
                cur += [x for x in vals if x not in cur]
            else:
                cur = [x for x in cur if x not in vals]
            new[c.name] = ",".join(cur)
        else:
            raise _Refused(E.INVALID_REQUEST, f"Unknown operation type {op}")
    validate_topic_configs(new)
    return new


def handle_incremental_alter_configs(b: AdminDeps, ctx: RequestContext, req: Any) -> Any:
    from kafka_protocol.messages import IncrementalAlterConfigsResponse as R

    return _alter(b, R, req, _incremental_overrides)


def _apply_alters(b: AdminDeps, R: Any, results: list[Any], todo: list[tuple[Any, Topic, dict[str, str]]],
                  validate_only: bool) -> Any:
    if validate_only or not todo:
        return R(throttle_time_ms=0, responses=results)

    async def run() -> Any:
        for r, topic, new in todo:
            try:
                await b.registry.alter_configs(topic.name, new)
                log.info("topic %s configs now %s", topic.name, new)
            except Exception as e:  # noqa: BLE001
                r.error_code, r.error_message = code_for_exception(e), str(e)
        return R(throttle_time_ms=0, responses=results)
    return run()
