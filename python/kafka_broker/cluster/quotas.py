"""Client quotas of a cluster in ZooKeeper, where Kafka's ZooKeeper mode keeps them (its
``ConfigType.User`` / ``ConfigType.Client`` entity configs):

- ``/config/users/<user>``, ``/config/users/<user>/clients/<client-id>``, ``/config/clients/<client-id>``,
  with ``<default>`` for a default entity and names sanitized as Kafka's ``Sanitizer`` does
  (URL-encoded UTF-8; only letters, digits, ``.``, ``-`` and ``_`` stay as they are);
- ``/config/ips/<address>`` (``ConfigType.Ip``, the address as it is, or ``<default>``) for
  ``connection_creation_rate``;
- each a ``{"version":1,"config":{"producer_byte_rate":"1048576"}}`` document.  A user's node also
  holds its SCRAM credentials (cluster/scram.py): only the quota keys are touched here;
- a change is announced under ``/config/changes`` with the entity path (``users/alice/clients/app``,
  ``ips/127.0.0.2``),
  and every broker reloads that entity into its ``Quotas`` (ClusterNode's config-change watcher), so a
  quota set through any broker throttles on all of them.

Apache Kafka 3.9's ``kafka-configs --zookeeper``-era layout, so a ZooKeeper holding quotas written
by Kafka's tools is read the same way.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import quote, unquote

from ..quotas import KEYS, Entity, Quotas
from . import zk as Z

CONFIG_USERS = "/config/users"
CONFIG_CLIENTS = "/config/clients"
CONFIG_IPS = "/config/ips"
DEFAULT_NAME = "<default>"


def sanitize(name: str | None) -> str:
    if name is None:
        return DEFAULT_NAME
    return quote(name, safe="").replace("~", "%7E")      # as Java's URLEncoder, with Kafka's %20 and %2A


def desanitize(name: str) -> str | None:
    return None if name == DEFAULT_NAME else unquote(name)


def entity_path(entity: Entity) -> str:
    e = dict(entity)
    if "ip" in e:
        return f"ips/{e['ip'] or DEFAULT_NAME}"
    if "user" in e:
        path = f"users/{sanitize(e['user'])}"
        return path + f"/clients/{sanitize(e['client-id'])}" if "client-id" in e else path
    return f"clients/{sanitize(e['client-id'])}"


def parse_entity_path(path: str) -> Entity | None:
    parts = path.split("/")
    if len(parts) == 2 and parts[0] == "users":
        return (("user", desanitize(parts[1])),)
    if len(parts) == 4 and parts[0] == "users" and parts[2] == "clients":
        return tuple(sorted((("user", desanitize(parts[1])), ("client-id", desanitize(parts[3])))))
    if len(parts) == 2 and parts[0] == "clients":
        return (("client-id", desanitize(parts[1])),)
    if len(parts) == 2 and parts[0] == "ips":
        return (("ip", None if parts[1] == DEFAULT_NAME else parts[1]),)
    return None


def _quota_values(data: bytes | None) -> dict[str, float]:
    if not data:
        return {}
    try:
        conf = json.loads(data).get("config") or {}
        return {k: float(v) for k, v in conf.items() if k in KEYS}
    except (ValueError, TypeError, AttributeError):
        return {}


class ZkQuotas:
    """Keeps a broker's ``Quotas`` values the ones in ZooKeeper, and writes changes there."""

    def __init__(self, zk: Z.Zk, quotas: Quotas) -> None:
        self.zk = zk
        self.quotas = quotas

    async def _paths(self) -> list[str]:
        users = await self.zk.children(CONFIG_USERS)
        clients = await self.zk.children(CONFIG_CLIENTS)
        ips = await self.zk.children(CONFIG_IPS)
        per_user = await asyncio.gather(*(self.zk.children(f"{CONFIG_USERS}/{u}/clients") for u in users),
                                        return_exceptions=True)
        paths = [f"users/{u}" for u in users] + [f"clients/{c}" for c in clients] + [f"ips/{i}" for i in ips]
        for u, kids in zip(users, per_user, strict=True):
            if isinstance(kids, list):
                paths += [f"users/{u}/clients/{c}" for c in kids]
        return paths

    async def load(self) -> None:
        """Every quota entity ZooKeeper holds (at start-up, and before DescribeClientQuotas)."""
        paths = await self._paths()
        got = await asyncio.gather(*(self.zk.get_or_none(f"/config/{p}") for p in paths))
        values: dict[Entity, dict[str, float]] = {}
        for p, g in zip(paths, got, strict=True):
            entity = parse_entity_path(p)
            v = _quota_values(g[0] if g else None)
            if entity is not None and v:
                values[entity] = v
        self.quotas.values = values

    async def reload(self, path: str) -> None:
        """One entity after its change notification (``users/...``, ``clients/...`` or ``ips/...``)."""
        entity = parse_entity_path(path)
        if entity is None:
            return
        got = await self.zk.get_or_none(f"/config/{path}")
        self.quotas.set_entity(entity, _quota_values(got[0] if got else None))

    async def alter(self, entries: list[tuple[Entity, list[tuple[str, float | None]]]],
                    validate_only: bool) -> list[tuple[int, str | None]]:
        await self.load()            # checked against what the cluster holds, not this broker's copy
        results, changed = self.quotas.plan(entries)
        if validate_only:
            return results
        for entity, values in changed.items():
            path = entity_path(entity)
            zpath = f"/config/{path}"
            got = await self.zk.get_or_none(zpath)
            doc: dict[str, Any] = json.loads(got[0]) if got and got[0] else {"version": 1, "config": {}}
            conf = {k: v for k, v in (doc.get("config") or {}).items() if k not in KEYS}
            conf.update({k: repr(v) if v != int(v) else str(int(v)) for k, v in values.items()})
            doc["config"] = conf
            data = json.dumps(doc, separators=(",", ":")).encode()
            if got is None:
                await self.zk.create(zpath, data, makepath=True)
            else:
                await self.zk.set(zpath, data, got[1].version)
            await self.zk.create(f"{Z.CONFIG_CHANGES}/config_change_", Z.encode_config_change(path),
                                 sequence=True)
            self.quotas.set_entity(entity, values)
        return results
