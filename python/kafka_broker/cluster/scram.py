"""SCRAM credentials of a cluster in ZooKeeper, where Kafka's ZooKeeper mode keeps them:
``/config/users/<user>`` holds ``{"version":1,"config":{"SCRAM-SHA-256":"salt=...,stored_key=...,
server_key=...,iterations=4096"}}`` (``ScramCredentialUtils``), and a change is announced under
``/config/changes`` as ``users/<user>``.  Every broker reads a user's credentials at
authentication time (one ZooKeeper read per SCRAM login), so a credential altered through any
broker holds on all of them at once; nothing is cached to go stale."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from ..sasl import ScramCredential
from . import zk as Z

CONFIG_USERS = "/config/users"


def _decode(data: bytes | None) -> dict[str, ScramCredential]:
    if not data:
        return {}
    conf = json.loads(data).get("config") or {}
    return {m: ScramCredential.from_zk(v) for m, v in conf.items() if m.startswith("SCRAM-")}


class ZkScramCredentials:
    """The ``ScramCredentials`` interface (get, describe, alter) over ZooKeeper."""

    def __init__(self, zk: Z.Zk) -> None:
        self.zk = zk

    async def get(self, user: str, mechanism: str) -> ScramCredential | None:
        got = await self.zk.get_or_none(f"{CONFIG_USERS}/{user}")
        return _decode(got[0] if got else None).get(mechanism)

    async def describe(self) -> dict[str, dict[str, ScramCredential]]:
        users = await self.zk.children(CONFIG_USERS)
        got = await asyncio.gather(*(self.zk.get_or_none(f"{CONFIG_USERS}/{u}") for u in users))
        out = {u: _decode(g[0] if g else None) for u, g in zip(users, got, strict=True)}
        return {u: c for u, c in out.items() if c}

    async def alter(self, changes: list[tuple[str, str, ScramCredential | None]]) -> None:
        by_user: dict[str, list[tuple[str, ScramCredential | None]]] = {}
        for user, mech, cred in changes:
            by_user.setdefault(user, []).append((mech, cred))
        for user, mine in by_user.items():
            path = f"{CONFIG_USERS}/{user}"
            got = await self.zk.get_or_none(path)
            doc: dict[str, Any] = json.loads(got[0]) if got and got[0] else {"version": 1, "config": {}}
            conf = doc.setdefault("config", {})
            for mech, cred in mine:
                if cred is None:
                    conf.pop(mech, None)
                else:
                    conf[mech] = cred.to_zk()
            data = json.dumps(doc, separators=(",", ":")).encode()
            if got is None:
                await self.zk.create(path, data, makepath=True)
            else:
                await self.zk.set(path, data, got[1].version)
            await self.zk.create(f"{Z.CONFIG_CHANGES}/config_change_", Z.encode_config_change(f"users/{user}"),
                                 sequence=True)
