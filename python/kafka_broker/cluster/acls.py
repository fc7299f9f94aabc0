"""The cluster's ACLs in ZooKeeper, in Kafka's ZooKeeper-mode layout (``ZkAclStore``):
``/kafka-acl/<Type>/<name>`` for literal patterns and ``/kafka-acl-extended/prefixed/<Type>/<name>``
for prefixed ones, each ``{"version":1,"acls":[{"principal":...,"permissionType":"Allow",
"operation":"Read","host":"*"}]}``.  A change is announced by a sequential node under
``/kafka-acl-changes`` (literal) or ``/kafka-acl-extended-changes`` (prefixed); every broker
watches both and reloads, so an ACL created through one broker holds on all of them."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import Any

from ..acl import ALLOW, DENY, OP_NAMES, PT_LITERAL, PT_PREFIXED, RESOURCE_NAMES, Acl
from . import zk as Z

log = logging.getLogger("kafka_broker.acl")

ROOTS = {PT_LITERAL: "/kafka-acl", PT_PREFIXED: "/kafka-acl-extended/prefixed"}
CHANGES = {PT_LITERAL: "/kafka-acl-changes", PT_PREFIXED: "/kafka-acl-extended-changes"}
_TYPES = {v: k for k, v in RESOURCE_NAMES.items()}
_OPS = {v: k for k, v in OP_NAMES.items()}


class ZkAcls:
    """The ``FileAcls`` interface (``acls``, ``write``) over ZooKeeper; ``changed`` is called after
    every reload (the authorizer drops its index)."""

    def __init__(self, zk: Z.Zk, changed: Callable[[], None]) -> None:
        self.zk = zk
        self.changed = changed
        self.acls: set[Acl] = set()
        self._started = False

    async def start(self) -> None:
        for path in (*ROOTS.values(), *CHANGES.values()):
            await self.zk.ensure_path(path)
        for path in CHANGES.values():
            await self._watch(path)
        await self.reload()
        self._started = True

    async def _watch(self, path: str) -> None:
        def fired(_ev: Any) -> None:
            asyncio.ensure_future(self._on_change(path))
        await self.zk.children(path, self.zk.watcher(fired))

    async def _on_change(self, path: str) -> None:
        try:
            await self._watch(path)
            await self.reload()
        except Exception as e:  # noqa: BLE001 - ZooKeeper unreachable: the next change reloads
            log.warning("reloading ACLs from ZooKeeper: %r", e)

    async def reload(self) -> None:
        acls: set[Acl] = set()
        for pattern, root in ROOTS.items():
            for tname in await self.zk.children(root):
                rtype = _TYPES.get(tname)
                if rtype is None:
                    continue
                names = await self.zk.children(f"{root}/{tname}")
                got = await asyncio.gather(*(self.zk.get_or_none(f"{root}/{tname}/{n}") for n in names))
                for n, g in zip(names, got, strict=True):
                    if not g or not g[0]:
                        continue
                    for e in json.loads(g[0]).get("acls", []):
                        acls.add(Acl(rtype, n, pattern, e["principal"], e["host"], _OPS[e["operation"]],
                                     ALLOW if e["permissionType"] == "Allow" else DENY))
        self.acls = acls
        self.changed()

    async def write(self, acls: set[Acl]) -> None:
        before = self.acls
        touched = {(a.pattern, a.resource_type, a.name) for a in before ^ acls}
        for pattern, rtype, name in sorted(touched):
            path = f"{ROOTS[pattern]}/{RESOURCE_NAMES[rtype]}/{name}"
            mine = [a for a in acls if (a.pattern, a.resource_type, a.name) == (pattern, rtype, name)]
            if mine:
                data = json.dumps({"version": 1, "acls": [a.to_json() for a in sorted(
                    mine, key=lambda a: (a.principal, a.operation, a.host, a.permission))]}).encode()
                if await self.zk.exists(path) is None:
                    await self.zk.create(path, data, makepath=True)
                else:
                    await self.zk.set(path, data)
            elif await self.zk.exists(path) is not None:
                await self.zk.delete(path)
            change = (f"{RESOURCE_NAMES[rtype]}:{name}" if pattern == PT_LITERAL else
                      json.dumps({"version": 1, "resourceType": RESOURCE_NAMES[rtype], "name": name,
                                  "patternType": "PREFIXED"}))
            await self.zk.create(f"{CHANGES[pattern]}/acl_changes_", change.encode(), sequence=True)
        self.acls = set(acls)
        self.changed()
