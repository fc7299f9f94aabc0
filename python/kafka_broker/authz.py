"""Which ACL operation each API needs, applied in one place around the handlers (KafkaApis'
``authorize`` calls, gathered): with an authorizer on, ``Broker.dispatch`` calls ``guard``.

Per API, the rule either refuses the whole request (the response's top-level error code: e.g.
CLUSTER_AUTHORIZATION_FAILED for a controller request from a non-broker, GROUP_AUTHORIZATION_FAILED
for a JoinGroup), or takes the resources the principal may not touch out of the request before
the handler sees it and puts them back into the response with TOPIC_AUTHORIZATION_FAILED (or
the group / transactional id code) afterwards, so no handler runs for them and no data of them
leaves.  Metadata, ListGroups, OffsetFetch of all topics and ListTransactions list only what the
principal may DESCRIBE.  An advertised API without a rule here is refused outright
(tests/broker/test_acls.py checks that every advertised API has one).

The principal of a connection is its SASL user, else its TLS client certificate's subject, else
``User:ANONYMOUS``; the host is the peer's address.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from kafka_protocol.errors import ErrorCode as E
from kafka_protocol.errors import ProtocolError
from kafka_protocol.messages import RESPONSES as _RESPONSES

from .acl import (
    ALTER,
    ALTER_CONFIGS,
    CLUSTER_ACTION,
    CLUSTER_NAME,
    CREATE,
    DELETE,
    DESCRIBE,
    DESCRIBE_CONFIGS,
    IDEMPOTENT_WRITE,
    READ,
    RT_CLUSTER,
    RT_GROUP,
    RT_TOPIC,
    RT_TXN,
    WRITE,
    Authorizer,
)

if TYPE_CHECKING:
    from .server import Connection, RequestContext

Call = Callable[[Any], Any]
RESPONSES: dict[int, Any] = dict(_RESPONSES)     # response classes by api key (built with keywords)
TOPIC_DENIED = E.TOPIC_AUTHORIZATION_FAILED
GROUP_DENIED = E.GROUP_AUTHORIZATION_FAILED
CLUSTER_DENIED = E.CLUSTER_AUTHORIZATION_FAILED
TXN_DENIED = E.TRANSACTIONAL_ID_AUTHORIZATION_FAILED


def principal_of(conn: Connection) -> str:
    st = conn.sasl
    if st is not None:
        return st.principal
    return getattr(conn, "principal", "User:ANONYMOUS")


def _child(cls: Any, name: str) -> Any:
    """The struct class of field ``name`` (the element class of an array)."""
    f = next(f for f in cls.FIELDS if f.name == name)
    assert f.struct is not None
    return f.struct


def _then(result: Any, fix: Callable[[Any], Any]) -> Any:
    """Apply ``fix`` to a handler's response, now or once its awaitable completes."""
    if result is None:
        return None
    if inspect.isawaitable(result):
        async def later() -> Any:
            return fix(await result)
        return later()
    return fix(result)


class Check:
    """The principal and host of one request, against the authorizer."""

    __slots__ = ("az", "principal", "host", "b", "api_key")

    def __init__(self, az: Authorizer, ctx: RequestContext, b: Any) -> None:
        self.api_key = ctx.header.api_key
        self.az = az
        self.principal = principal_of(ctx.conn)
        self.host = ctx.conn.peer.rsplit(":", 1)[0].strip("[]")
        self.b = b

    def ok(self, op: int, rtype: int, name: str) -> bool:
        return self.az.authorize(self.principal, self.host, op, rtype, name)

    def cluster(self, op: int) -> bool:
        return self.ok(op, RT_CLUSTER, CLUSTER_NAME)

    def topic_name(self, name: str | None, topic_id: Any) -> str:
        if name:
            return name
        t = self.b.registry.get_by_id(topic_id) if topic_id is not None else None
        return t.name if t is not None else ""


_DENIED_TEXT: dict[int, str] = {TOPIC_DENIED: "Topic authorization failed.", GROUP_DENIED: "Group authorization failed.",
                CLUSTER_DENIED: "Cluster authorization failed.", TXN_DENIED: "Transactional Id authorization failed."}


def _top_error(api_key: int, code: int) -> Any:
    """The API's response with ``code`` at the top (and Kafka's text where it has a message field)."""
    cls = RESPONSES[api_key]
    kw: dict[str, Any] = {"error_code": code}
    if any(f.name == "error_message" for f in cls.FIELDS):
        kw["error_message"] = _DENIED_TEXT.get(code)
    return cls(**kw)


# -- rules -----------------------------------------------------------------------------

def _produce(c: Check, req: Any, call: Call) -> Any:
    R = RESPONSES[0]
    T, P = _child(R, "responses"), _child(_child(R, "responses"), "partition_responses")
    txn_ok = req.transactional_id is None or c.ok(WRITE, RT_TXN, req.transactional_id)
    denied = [t for t in req.topic_data if not txn_ok or not c.ok(WRITE, RT_TOPIC, c.topic_name(t.name, t.topic_id))]
    if not denied:
        return call(req)
    code = TOPIC_DENIED if txn_ok else TXN_DENIED
    errs = [T(name=t.name, topic_id=t.topic_id, partition_responses=[
        P(index=p.index, error_code=code, base_offset=-1) for p in t.partition_data]) for t in denied]
    req.topic_data = [t for t in req.topic_data if t not in denied]
    if not req.topic_data:
        return None if req.acks == 0 else R(responses=errs, throttle_time_ms=0)

    def fix(resp: Any) -> Any:
        resp.responses = list(resp.responses) + errs
        return resp
    return _then(call(req), fix)


def _fetch(c: Check, req: Any, call: Call) -> Any:
    R = RESPONSES[1]
    T, P = _child(R, "responses"), _child(_child(R, "responses"), "partitions")
    replica = req.replica_id if req.replica_id is not None and req.replica_id >= 0 else \
        (req.replica_state.replica_id if getattr(req, "replica_state", None) is not None else -1)
    if replica >= 0:
        allowed = c.cluster(CLUSTER_ACTION)
        denied = [] if allowed else list(req.topics)
    else:
        denied = [t for t in req.topics if not c.ok(READ, RT_TOPIC, c.topic_name(t.topic, t.topic_id))]
    if not denied:
        return call(req)
    errs = [T(topic=t.topic, topic_id=t.topic_id, partitions=[
        P(partition_index=p.partition, error_code=TOPIC_DENIED, high_watermark=-1, last_stable_offset=-1,
          log_start_offset=-1, records=None) for p in t.partitions]) for t in denied]
    req.topics = [t for t in req.topics if t not in denied]

    def fix(resp: Any) -> Any:
        resp.responses = list(resp.responses) + errs
        return resp
    return _then(call(req), fix)


def _per_topic(field: str, name_of: Callable[[Any], str], op: int, make_err: Callable[[Any], Any],
               resp_field: str) -> Callable[[Check, Any, Call], Any]:
    """A request whose ``field`` lists topics: the denied ones are answered by ``make_err``."""
    def rule(c: Check, req: Any, call: Call) -> Any:
        items = list(getattr(req, field) or [])
        denied = [t for t in items if not c.ok(op, RT_TOPIC, c.topic_name(name_of(t), getattr(t, "topic_id", None)))]
        if not denied:
            return call(req)
        errs = [make_err(t) for t in denied]
        setattr(req, field, [t for t in items if t not in denied])

        def fix(resp: Any) -> Any:
            setattr(resp, resp_field, list(getattr(resp, resp_field)) + errs)
            return resp
        return _then(call(req), fix)
    return rule


def _list_offsets_err(t: Any) -> Any:
    T = _child(RESPONSES[2], "topics")
    P = _child(T, "partitions")
    return T(name=t.name, partitions=[P(partition_index=p.partition_index, error_code=TOPIC_DENIED, timestamp=-1,
                                        offset=-1, leader_epoch=-1) for p in t.partitions])


def _offset_for_leader_epoch(c: Check, req: Any, call: Call) -> Any:
    T = _child(RESPONSES[23], "topics")
    P = _child(T, "partitions")
    if req.replica_id is not None and req.replica_id >= 0 and not c.cluster(CLUSTER_ACTION):
        return RESPONSES[23](topics=[T(topic=t.topic, partitions=[
            P(error_code=CLUSTER_DENIED, partition=p.partition, leader_epoch=-1, end_offset=-1)
            for p in t.partitions]) for t in req.topics])
    return _per_topic("topics", lambda t: t.topic, DESCRIBE, lambda t: T(topic=t.topic, partitions=[
        P(error_code=TOPIC_DENIED, partition=p.partition, leader_epoch=-1, end_offset=-1) for p in t.partitions]),
        "topics")(c, req, call)


def _metadata(c: Check, req: Any, call: Call) -> Any:
    T = _child(RESPONSES[3], "topics")
    asked = None if req.topics is None else [c.topic_name(t.name, t.topic_id) for t in req.topics]
    if asked and req.allow_auto_topic_creation and not c.cluster(CREATE):
        req.allow_auto_topic_creation = all(c.ok(CREATE, RT_TOPIC, n) for n in asked)
    denied = set() if asked is None else {n for n in asked if not c.ok(DESCRIBE, RT_TOPIC, n)}
    if denied:      # (all of them denied: an empty list, which v1+ reads as no topics)
        req.topics = [t for t in req.topics if c.topic_name(t.name, t.topic_id) not in denied]

    def fix(resp: Any) -> Any:
        if asked is None:       # all topics: only those the principal may describe
            resp.topics = [t for t in resp.topics if c.ok(DESCRIBE, RT_TOPIC, t.name)]
        resp.topics = list(resp.topics) + [T(error_code=TOPIC_DENIED, name=n, is_internal=False, partitions=[])
                                           for n in sorted(denied)]
        return resp
    return _then(call(req), fix)


def _group_top(op: int, field: str = "group_id") -> Callable[[Check, Any, Call], Any]:
    def rule(c: Check, req: Any, call: Call) -> Any:
        if c.ok(op, RT_GROUP, getattr(req, field)):
            return call(req)
        return _top_error(c.api_key, GROUP_DENIED)
    return rule


def _offset_commit(c: Check, req: Any, call: Call) -> Any:
    T = _child(RESPONSES[8], "topics")
    P = _child(T, "partitions")
    if not c.ok(READ, RT_GROUP, req.group_id):
        return RESPONSES[8](topics=[T(name=t.name, topic_id=t.topic_id, partitions=[
            P(partition_index=p.partition_index, error_code=GROUP_DENIED) for p in t.partitions]) for t in req.topics])
    return _per_topic("topics", lambda t: t.name, READ, lambda t: T(name=t.name, topic_id=t.topic_id, partitions=[
        P(partition_index=p.partition_index, error_code=TOPIC_DENIED) for p in t.partitions]), "topics")(c, req, call)


def _offset_fetch(c: Check, req: Any, call: Call) -> Any:
    R = RESPONSES[9]
    if req.groups:      # v8+: one entry per group
        G = _child(R, "groups")
        denied = [g for g in req.groups if not c.ok(DESCRIBE, RT_GROUP, g.group_id)]
        req.groups = [g for g in req.groups if g not in denied]
        errs = [G(group_id=g.group_id, topics=[], error_code=GROUP_DENIED) for g in denied]

        def fix8(resp: Any) -> Any:
            for g in resp.groups:
                g.topics = [t for t in g.topics if c.ok(DESCRIBE, RT_TOPIC, c.topic_name(t.name, t.topic_id))]
            resp.groups = list(resp.groups) + errs
            return resp
        if not req.groups:
            return R(groups=errs)
        return _then(call(req), fix8)
    if not c.ok(DESCRIBE, RT_GROUP, req.group_id):
        return R(error_code=GROUP_DENIED, topics=[])

    def fix(resp: Any) -> Any:
        resp.topics = [t for t in resp.topics if c.ok(DESCRIBE, RT_TOPIC, t.name)]
        return resp
    return _then(call(req), fix)


def _find_coordinator(c: Check, req: Any, call: Call) -> Any:
    R = RESPONSES[10]
    kind = req.key_type or 0
    rtype, code = (RT_TXN, TXN_DENIED) if kind == 1 else (RT_GROUP, GROUP_DENIED)
    if req.coordinator_keys:        # v4+
        C = _child(R, "coordinators")
        denied = [k for k in req.coordinator_keys if not c.ok(DESCRIBE, rtype, k)]
        if not denied:
            return call(req)
        req.coordinator_keys = [k for k in req.coordinator_keys if k not in denied]
        errs = [C(key=k, node_id=-1, host="", port=-1, error_code=code, error_message=None) for k in denied]
        if not req.coordinator_keys:
            return R(coordinators=errs)

        def fix(resp: Any) -> Any:
            resp.coordinators = list(resp.coordinators) + errs
            return resp
        return _then(call(req), fix)
    if c.ok(DESCRIBE, rtype, req.key):
        return call(req)
    return R(error_code=code, node_id=-1, host="", port=-1)


def _per_group(field: str, op: int, resp_field: str, make_err: Callable[[str], Any]) -> Callable[[Check, Any, Call], Any]:
    def rule(c: Check, req: Any, call: Call) -> Any:
        ids = list(getattr(req, field))
        denied = [g for g in ids if not c.ok(op, RT_GROUP, g)]
        if not denied:
            return call(req)
        setattr(req, field, [g for g in ids if g not in denied])
        errs = [make_err(g) for g in denied]

        def fix(resp: Any) -> Any:
            setattr(resp, resp_field, list(getattr(resp, resp_field)) + errs)
            return resp
        return _then(call(req), fix)
    return rule


def _list_groups(c: Check, req: Any, call: Call) -> Any:
    if c.cluster(DESCRIBE):
        return call(req)

    def fix(resp: Any) -> Any:
        resp.groups = [g for g in resp.groups if c.ok(DESCRIBE, RT_GROUP, g.group_id)]
        return resp
    return _then(call(req), fix)


def _offset_delete(c: Check, req: Any, call: Call) -> Any:
    T = _child(RESPONSES[47], "topics")
    P = _child(T, "partitions")
    if not c.ok(DELETE, RT_GROUP, req.group_id):
        return RESPONSES[47](error_code=GROUP_DENIED, topics=[])
    return _per_topic("topics", lambda t: t.name, READ, lambda t: T(name=t.name, partitions=[
        P(partition_index=p.partition_index, error_code=TOPIC_DENIED) for p in t.partitions]), "topics")(c, req, call)


def _create_topics(c: Check, req: Any, call: Call) -> Any:
    if c.cluster(CREATE):
        return call(req)
    T = _child(RESPONSES[19], "topics")
    return _per_topic("topics", lambda t: t.name, CREATE, lambda t: T(
        name=t.name, error_code=TOPIC_DENIED, error_message="Authorization failed.", num_partitions=-1,
        replication_factor=-1, configs=None), "topics")(c, req, call)


def _delete_topics(c: Check, req: Any, call: Call) -> Any:
    T = _child(RESPONSES[20], "responses")
    if req.topic_names:     # v0-5
        denied = [n for n in req.topic_names if not c.ok(DELETE, RT_TOPIC, n)]
        req.topic_names = [n for n in req.topic_names if n not in denied]
        errs = [T(name=n, error_code=TOPIC_DENIED) for n in denied]
    else:
        denied_t = [t for t in req.topics if not c.ok(DELETE, RT_TOPIC, c.topic_name(t.name, t.topic_id))]
        req.topics = [t for t in req.topics if t not in denied_t]
        errs = [T(name=t.name, topic_id=t.topic_id, error_code=TOPIC_DENIED) for t in denied_t]
    if not errs:
        return call(req)

    def fix(resp: Any) -> Any:
        resp.responses = list(resp.responses) + errs
        return resp
    return _then(call(req), fix)


def _configs(op_topic: int, resp_field: str, api: int) -> Callable[[Check, Any, Call], Any]:
    def rule(c: Check, req: Any, call: Call) -> Any:
        R = RESPONSES[api]
        X = _child(R, resp_field)

        def allowed(r: Any) -> bool:
            if r.resource_type == 2:
                return c.ok(op_topic, RT_TOPIC, r.resource_name)
            return c.cluster(op_topic)      # brokers and broker loggers: the cluster resource
        denied = [r for r in req.resources if not allowed(r)]
        if not denied:
            return call(req)
        req.resources = [r for r in req.resources if r not in denied]
        errs = [X(error_code=TOPIC_DENIED if r.resource_type == 2 else CLUSTER_DENIED,
                  error_message="Authorization failed.", resource_type=r.resource_type,
                  resource_name=r.resource_name) for r in denied]

        def fix(resp: Any) -> Any:
            setattr(resp, resp_field, list(getattr(resp, resp_field)) + errs)
            return resp
        return _then(call(req), fix)
    return rule


def _cluster_top(op: int) -> Callable[[Check, Any, Call], Any]:
    def rule(c: Check, req: Any, call: Call) -> Any:
        return call(req) if c.cluster(op) else _top_error(c.api_key, CLUSTER_DENIED)
    return rule


def _init_producer_id(c: Check, req: Any, call: Call) -> Any:
    R = RESPONSES[22]
    if req.transactional_id is not None:
        ok = c.ok(WRITE, RT_TXN, req.transactional_id)
        return call(req) if ok else R(error_code=TXN_DENIED, producer_id=-1, producer_epoch=-1)
    # idempotence: IDEMPOTENT_WRITE on the cluster, or WRITE on any topic (KIP-679)
    if c.cluster(IDEMPOTENT_WRITE) or c.az.any_allowed(c.principal, c.host, WRITE, RT_TOPIC):
        return call(req)
    return R(error_code=CLUSTER_DENIED, producer_id=-1, producer_epoch=-1)


def _consumer_group_heartbeat(c: Check, req: Any, call: Call) -> Any:
    R = RESPONSES[68]
    if not c.ok(READ, RT_GROUP, req.group_id):
        return R(error_code=GROUP_DENIED, error_message=None, member_id=req.member_id, member_epoch=-1)
    if req.subscribed_topic_names and not all(c.ok(DESCRIBE, RT_TOPIC, n) for n in req.subscribed_topic_names):
        return R(error_code=TOPIC_DENIED, error_message=None, member_id=req.member_id, member_epoch=-1)
    return call(req)


def _add_partitions_to_txn(c: Check, req: Any, call: Call) -> Any:
    R = RESPONSES[24]
    if req.transactions:    # v4+: from brokers (KIP-890 verification)
        return call(req) if c.cluster(CLUSTER_ACTION) else R(error_code=CLUSTER_DENIED, results_by_transaction=[])
    T = _child(R, "results_by_topic_v3_and_below")
    P = _child(T, "results_by_partition")
    tid = req.v3_and_below_transactional_id
    txn_ok = c.ok(WRITE, RT_TXN, tid)
    if txn_ok and all(c.ok(WRITE, RT_TOPIC, t.name) for t in req.v3_and_below_topics):
        return call(req)
    # Kafka answers every partition: the denied ones with the error, the others OPERATION_NOT_ATTEMPTED
    return R(results_by_topic_v3_and_below=[T(name=t.name, results_by_partition=[
        P(partition_index=p, partition_error_code=(TXN_DENIED if not txn_ok else
                                                   TOPIC_DENIED if not c.ok(WRITE, RT_TOPIC, t.name)
                                                   else E.OPERATION_NOT_ATTEMPTED))
        for p in t.partitions]) for t in req.v3_and_below_topics])


def _txn_top(extra_group: bool = False) -> Callable[[Check, Any, Call], Any]:
    def rule(c: Check, req: Any, call: Call) -> Any:
        if not c.ok(WRITE, RT_TXN, req.transactional_id):
            return _top_error(c.api_key, TXN_DENIED)
        if extra_group and not c.ok(READ, RT_GROUP, req.group_id):
            return _top_error(c.api_key, GROUP_DENIED)
        return call(req)
    return rule


def _txn_offset_commit(c: Check, req: Any, call: Call) -> Any:
    T = _child(RESPONSES[28], "topics")
    P = _child(T, "partitions")
    code = TXN_DENIED if not c.ok(WRITE, RT_TXN, req.transactional_id) else \
        GROUP_DENIED if not c.ok(READ, RT_GROUP, req.group_id) else 0
    if code:
        return RESPONSES[28](topics=[T(name=t.name, partitions=[
            P(partition_index=p.partition_index, error_code=code) for p in t.partitions]) for t in req.topics])
    return _per_topic("topics", lambda t: t.name, READ, lambda t: T(name=t.name, partitions=[
        P(partition_index=p.partition_index, error_code=TOPIC_DENIED) for p in t.partitions]), "topics")(c, req, call)


def _describe_transactions(c: Check, req: Any, call: Call) -> Any:
    S = _child(RESPONSES[65], "transaction_states")
    denied = [t for t in req.transactional_ids if not c.ok(DESCRIBE, RT_TXN, t)]
    if not denied:
        return call(req)
    req.transactional_ids = [t for t in req.transactional_ids if t not in denied]
    errs = [S(error_code=TXN_DENIED, transactional_id=t, transaction_state="", transaction_timeout_ms=0,
              transaction_start_time_ms=-1, producer_id=-1, producer_epoch=-1, topics=[]) for t in denied]

    def fix(resp: Any) -> Any:
        resp.transaction_states = list(resp.transaction_states) + errs
        return resp
    return _then(call(req), fix)


def _list_transactions(c: Check, req: Any, call: Call) -> Any:
    def fix(resp: Any) -> Any:
        resp.transaction_states = [t for t in resp.transaction_states if c.ok(DESCRIBE, RT_TXN, t.transactional_id)]
        return resp
    return _then(call(req), fix)


def _describe_producers_err(t: Any) -> Any:
    T = _child(RESPONSES[61], "topics")
    P = _child(T, "partitions")
    return T(name=t.name, partitions=[P(partition_index=p, error_code=TOPIC_DENIED, error_message=None,
                                        active_producers=[]) for p in t.partition_indexes])


def _delete_records_err(t: Any) -> Any:
    T = _child(RESPONSES[21], "topics")
    P = _child(T, "partitions")
    return T(name=t.name, partitions=[P(partition_index=p.partition_index, low_watermark=-1, error_code=TOPIC_DENIED)
                                      for p in t.partitions])


def _create_partitions_err(t: Any) -> Any:
    return _child(RESPONSES[37], "results")(name=t.name, error_code=TOPIC_DENIED, error_message="Authorization failed.")


def _describe_groups_err(g: str) -> Any:
    return _child(RESPONSES[15], "groups")(error_code=GROUP_DENIED, group_id=g, group_state="", protocol_type="",
                                           protocol_data="", members=[])


RULES: dict[int, Callable[[Check, Any, Call], Any]] = {
    0: _produce,
    1: _fetch,
    2: _per_topic("topics", lambda t: t.name, DESCRIBE, _list_offsets_err, "topics"),
    3: _metadata,
    4: _cluster_top(CLUSTER_ACTION), 5: _cluster_top(CLUSTER_ACTION), 6: _cluster_top(CLUSTER_ACTION),
    7: _cluster_top(CLUSTER_ACTION),
    8: _offset_commit,
    9: _offset_fetch,
    10: _find_coordinator,
    11: _group_top(READ), 12: _group_top(READ), 13: _group_top(READ), 14: _group_top(READ),
    15: _per_group("groups", DESCRIBE, "groups", _describe_groups_err),
    16: _list_groups,
    19: _create_topics,
    20: _delete_topics,
    21: _per_topic("topics", lambda t: t.name, DELETE, _delete_records_err, "topics"),
    22: _init_producer_id,
    23: _offset_for_leader_epoch,
    24: _add_partitions_to_txn,
    25: _txn_top(extra_group=True),
    26: _txn_top(),
    27: _cluster_top(CLUSTER_ACTION),
    28: _txn_offset_commit,
    29: _cluster_top(DESCRIBE), 30: _cluster_top(ALTER), 31: _cluster_top(ALTER),
    32: _configs(DESCRIBE_CONFIGS, "results", 32),
    33: _configs(ALTER_CONFIGS, "responses", 33),
    35: _cluster_top(DESCRIBE),
    37: _per_topic("topics", lambda t: t.name, ALTER, _create_partitions_err, "results"),
    42: _per_group("groups_names", DELETE, "results",
                   lambda g: _child(RESPONSES[42], "results")(group_id=g, error_code=GROUP_DENIED)),
    44: _configs(ALTER_CONFIGS, "responses", 44),
    47: _offset_delete,
    48: _cluster_top(DESCRIBE_CONFIGS), 49: _cluster_top(ALTER_CONFIGS),
    50: _cluster_top(DESCRIBE), 51: _cluster_top(ALTER),
    60: _cluster_top(DESCRIBE),
    61: _per_topic("topics", lambda t: t.name, READ, _describe_producers_err, "topics"),
    65: _describe_transactions,
    66: _list_transactions,
    68: _consumer_group_heartbeat,
    69: _per_group("group_ids", DESCRIBE, "groups", lambda g: _child(RESPONSES[69], "groups")(
        error_code=GROUP_DENIED, error_message=None, group_id=g, group_state="", group_epoch=-1, assignment_epoch=-1,
        assignor_name="", members=[])),
}
UNGUARDED = frozenset({17, 18, 36})     # the SASL exchange and ApiVersions


def guard(az: Authorizer, b: Any, ctx: RequestContext, req: Any, handler: Callable[..., Any]) -> Any:
    """Run ``handler`` under the API's rule (see the module docstring)."""
    key = ctx.header.api_key
    if key in UNGUARDED:
        return handler(b, ctx, req)
    rule = RULES.get(key)
    if rule is None:
        raise ProtocolError(f"api key {key} has no authorization rule", E.CLUSTER_AUTHORIZATION_FAILED)
    c = Check(az, ctx, b)
    return rule(c, req, lambda r: handler(b, ctx, r))
