"""ACLs and the authorizer (Kafka's AclAuthorizer / StandardAuthorizer semantics).

On when ``authorizer.class.name`` names Kafka's authorizer
(``org.apache.kafka.metadata.authorizer.StandardAuthorizer``, or ``kafka.security.authorizer.AclAuthorizer``
in ZooKeeper-mode configs).  An ACL binds a resource pattern (type, name, LITERAL or PREFIXED; the
literal name ``*`` matches every resource of its type) to an entry (principal or ``User:*``, host
or ``*``, operation, ALLOW or DENY).  A request's principal is allowed an operation on a resource
when it is a super user (``super.users``), or no DENY entry matches and an ALLOW entry does (the
operation itself, ALL, or one that implies it: READ, WRITE, DELETE and ALTER imply DESCRIBE;
ALTER_CONFIGS implies DESCRIBE_CONFIGS); a resource no ACL matches at all is allowed only with
``allow.everyone.if.no.acl.found=true``.  Which operation each API needs is ``authz.py``.

Storage: ``kc-acls.json`` in the first log dir (written to a temporary file, fsynced, renamed)
on a single node; in a cluster ZooKeeper, Kafka's layout: ``/kafka-acl/<Type>/<name>`` (literal)
and ``/kafka-acl-extended/prefixed/<Type>/<name>``, each ``{"version":1,"acls":[...]}``, with a
change notification that makes every broker reload.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from kafka_protocol.errors import ErrorCode as E

log = logging.getLogger("kafka_broker.acl")

KAFKA_AUTHORIZERS = ("org.apache.kafka.metadata.authorizer.StandardAuthorizer",
                     "kafka.security.authorizer.AclAuthorizer")
ACLS_FILE = "kc-acls.json"

# Kafka's codes (org.apache.kafka.common.resource / acl)
RT_ANY, RT_TOPIC, RT_GROUP, RT_CLUSTER, RT_TXN, RT_TOKEN, RT_USER = 1, 2, 3, 4, 5, 6, 7
RESOURCE_NAMES = {RT_TOPIC: "Topic", RT_GROUP: "Group", RT_CLUSTER: "Cluster", RT_TXN: "TransactionalId",
                  RT_TOKEN: "DelegationToken", RT_USER: "User"}
PT_ANY, PT_MATCH, PT_LITERAL, PT_PREFIXED = 1, 2, 3, 4
OP_ANY, OP_ALL, READ, WRITE, CREATE, DELETE, ALTER, DESCRIBE, CLUSTER_ACTION, DESCRIBE_CONFIGS, ALTER_CONFIGS, \
    IDEMPOTENT_WRITE, CREATE_TOKENS, DESCRIBE_TOKENS = range(1, 15)
OP_NAMES = {OP_ALL: "All", READ: "Read", WRITE: "Write", CREATE: "Create", DELETE: "Delete", ALTER: "Alter",
            DESCRIBE: "Describe", CLUSTER_ACTION: "ClusterAction", DESCRIBE_CONFIGS: "DescribeConfigs",
            ALTER_CONFIGS: "AlterConfigs", IDEMPOTENT_WRITE: "IdempotentWrite", CREATE_TOKENS: "CreateTokens",
            DESCRIBE_TOKENS: "DescribeTokens"}
PERM_ANY, DENY, ALLOW = 1, 2, 3
CLUSTER_NAME = "kafka-cluster"
WILDCARD = "*"
# an ALLOW of one of these grants the key too
IMPLIED_BY = {DESCRIBE: (READ, WRITE, DELETE, ALTER), DESCRIBE_CONFIGS: (ALTER_CONFIGS,)}


@dataclass(frozen=True)
class Acl:
    resource_type: int
    name: str
    pattern: int            # PT_LITERAL or PT_PREFIXED
    principal: str
    host: str
    operation: int
    permission: int

    def to_json(self) -> dict[str, Any]:
        return {"principal": self.principal, "permissionType": "Allow" if self.permission == ALLOW else "Deny",
                "operation": OP_NAMES[self.operation], "host": self.host}


def _binding_error(a: Acl) -> str | None:
    """Why Kafka refuses to create ``a`` (CreateAcls' INVALID_REQUEST cases), or None."""
    if a.resource_type not in RESOURCE_NAMES or a.pattern not in (PT_LITERAL, PT_PREFIXED):
        return "Invalid resource type or pattern type"
    if a.operation not in OP_NAMES or a.permission not in (ALLOW, DENY):
        return "Invalid operation or permission type"
    if not a.name:
        return "Resource name must not be empty"
    if a.resource_type == RT_CLUSTER and a.name != CLUSTER_NAME:
        return f"The only valid name for the CLUSTER resource is {CLUSTER_NAME}"
    if ":" not in a.principal:
        return f"Invalid principal {a.principal!r}: expected <type>:<name>, e.g. User:alice"
    if a.pattern == PT_PREFIXED and a.name == WILDCARD:
        return "A PREFIXED pattern cannot be the wildcard '*'"
    return None


class AclFilter:
    """A DescribeAcls / DeleteAcls filter (ANY matches anything; MATCH: what would apply to the name)."""

    def __init__(self, rtype: int, name: str | None, pattern: int, principal: str | None, host: str | None,
                 op: int, perm: int) -> None:
        self.rtype, self.name, self.pattern = rtype, name, pattern
        self.principal, self.host, self.op, self.perm = principal, host, op, perm

    def matches(self, a: Acl) -> bool:
        if self.rtype != RT_ANY and a.resource_type != self.rtype:
            return False
        if self.pattern == PT_MATCH:
            if self.name is not None and not (
                    (a.pattern == PT_LITERAL and a.name in (self.name, WILDCARD))
                    or (a.pattern == PT_PREFIXED and self.name.startswith(a.name))):
                return False
        else:
            if self.pattern != PT_ANY and a.pattern != self.pattern:
                return False
            if self.name is not None and a.name != self.name:
                return False
        if self.principal is not None and a.principal != self.principal:
            return False
        if self.host is not None and a.host != self.host:
            return False
        if self.op != OP_ANY and a.operation != self.op:
            return False
        return not (self.perm != PERM_ANY and a.permission != self.perm)


class FileAcls:
    """The ACLs of a single node, in ``kc-acls.json``."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.acls: set[Acl] = set()
        if os.path.exists(path):
            with open(path, encoding="utf-8") as f:
                self.acls = {Acl(*row) for row in json.load(f)}

    async def write(self, acls: set[Acl]) -> None:
        tmp = self.path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(sorted([list(a.__dict__.values()) for a in acls]), f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        self.acls = set(acls)


class Authorizer:
    """Decides; ``store`` (FileAcls, or the cluster's ZooKeeper store) keeps the ACLs."""

    def __init__(self, store: Any, super_users: Iterable[str], allow_if_no_acl: bool) -> None:
        self.store = store
        self.super_users = frozenset(s.strip() for s in super_users if s.strip())
        self.allow_if_no_acl = allow_if_no_acl
        self._index: dict[tuple[int, str], list[Acl]] | None = None

    def invalidate(self) -> None:
        self._index = None

    def _acls_for(self, rtype: int, name: str) -> list[Acl]:
        idx = self._index
        if idx is None:
            idx = {}
            for a in self.store.acls:
                idx.setdefault((a.resource_type, a.name if a.pattern == PT_LITERAL else "\0" + a.name), []).append(a)
            self._index = idx
        out = list(idx.get((rtype, name), ())) + list(idx.get((rtype, WILDCARD), ()))
        for (t, key), acls in idx.items():     # prefixed patterns: few, in practice
            if t == rtype and key.startswith("\0") and name.startswith(key[1:]):
                out += acls
        return out

    def authorize(self, principal: str, host: str, op: int, rtype: int, name: str) -> bool:
        if principal in self.super_users:
            return True
        acls = self._acls_for(rtype, name)
        if not acls:
            return self.allow_if_no_acl
        mine = [a for a in acls if a.principal in (principal, "User:*") and a.host in (host, WILDCARD)]
        if any(a.permission == DENY and a.operation in (op, OP_ALL) for a in mine):
            return False
        ok = (op, OP_ALL) + IMPLIED_BY.get(op, ())
        return any(a.permission == ALLOW and a.operation in ok for a in mine)

    def any_allowed(self, principal: str, host: str, op: int, rtype: int) -> bool:
        """Whether some resource of ``rtype`` grants ``op`` (Kafka's ``authorizeByResourceType``,
        used for IDEMPOTENT_WRITE by WRITE on any topic, KIP-679)."""
        if principal in self.super_users:
            return True
        acls = [a for a in self.store.acls if a.resource_type == rtype
                and a.principal in (principal, "User:*") and a.host in (host, WILDCARD)]
        if any(a.permission == DENY and a.operation in (op, OP_ALL) and a.name == WILDCARD
               and a.pattern == PT_LITERAL for a in acls):
            return False
        return any(a.permission == ALLOW and a.operation in (op, OP_ALL) for a in acls)

    # -- the ACL APIs ----------------------------------------------------------------

    async def create(self, acls: list[Acl]) -> list[tuple[int, str | None]]:
        results: list[tuple[int, str | None]] = []
        new = set(self.store.acls)
        for a in acls:
            err = _binding_error(a)
            results.append((E.INVALID_REQUEST, err) if err else (0, None))
            if not err:
                new.add(a)
        if new != self.store.acls:
            await self.store.write(new)
            self.invalidate()
        return results

    def describe(self, f: AclFilter) -> list[Acl]:
        return sorted((a for a in self.store.acls if f.matches(a)),
                      key=lambda a: (a.resource_type, a.pattern, a.name, a.principal, a.operation))

    async def delete(self, filters: list[AclFilter]) -> list[list[Acl]]:
        gone: list[list[Acl]] = [[a for a in self.store.acls if f.matches(a)] for f in filters]
        remaining = set(self.store.acls) - {a for g in gone for a in g}
        if remaining != self.store.acls:
            await self.store.write(remaining)
            self.invalidate()
        return gone
