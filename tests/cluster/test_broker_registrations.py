"""Replica placement counts the brokers registered in ZooKeeper, not the metadata cache.

A broker that has created ``/brokers/ids/N`` but is not yet in the controller's last
UpdateMetadata must count, as in Kafka's ``AdminZkClient`` (which reads the registrations):
with the cache, a CreateTopics with RF=3 sent right after a three-broker start was refused
with INVALID_REPLICATION_FACTOR ("only 2 broker(s) are registered").  These tests drive
``ZkRegistry`` against a real ZooKeeper with a metadata cache that lags on purpose.
"""

from __future__ import annotations

import asyncio
import types

from kafka_broker.cluster import zk as Z
from kafka_broker.cluster.node import ZkRegistry
from kafka_broker.cluster.replicas import MetadataCache
from kazoo.client import KazooClient


def _register(zk_client: KazooClient, broker_id: int, rack: str | None = None) -> None:
    info = Z.BrokerInfo(broker_id, {"PLAINTEXT": ("127.0.0.1", 19000 + broker_id)}, {"PLAINTEXT": "PLAINTEXT"},
                        rack)
    zk_client.create(f"{Z.BROKER_IDS}/{broker_id}", info.encode(), makepath=True, ephemeral=True)


async def _until(cond, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not cond():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached"
        await asyncio.sleep(0.01)


def test_registrations_not_the_metadata_cache_decide_placement(zk_chroot: str, zk_client: KazooClient) -> None:
    async def run() -> None:
        loop = asyncio.get_running_loop()
        zk = Z.Zk(zk_chroot, 10000, 10000, loop)
        await zk.start()
        meta = MetadataCache()
        # the controller's last UpdateMetadata named brokers 1 and 2 only
        meta.brokers = {1: ({}, None), 2: ({}, None)}
        node = types.SimpleNamespace(zk=zk, metadata=meta, closing=False, loop=loop)
        reg = ZkRegistry(node)  # type: ignore[arg-type]
        try:
            assert set(reg.brokers()) == {1, 2}       # before /brokers/ids is read: the cache
            for b, rack in ((1, "r1"), (2, "r2"), (3, "r3")):
                _register(zk_client, b, rack)
            await reg.watch_registrations()
            assert reg.brokers() == {1: "r1", 2: "r2", 3: "r3"}
            # the watch keeps it current both ways, without another read by the caller
            _register(zk_client, 4)
            await _until(lambda: 4 in reg.brokers())
            zk_client.delete(f"{Z.BROKER_IDS}/2")
            await _until(lambda: 2 not in reg.brokers())
            assert reg.brokers() == {1: "r1", 3: "r3", 4: None}
        finally:
            node.closing = True
            zk.close()
    asyncio.run(run())


def test_assignment_uses_every_registered_broker(zk_chroot: str, zk_client: KazooClient) -> None:
    from kafka_broker.cluster.assign import assign_replicas

    async def run() -> None:
        loop = asyncio.get_running_loop()
        zk = Z.Zk(zk_chroot, 10000, 10000, loop)
        await zk.start()
        meta = MetadataCache()
        meta.brokers = {1: ({}, None)}
        node = types.SimpleNamespace(zk=zk, metadata=meta, closing=False, loop=loop)
        reg = ZkRegistry(node)  # type: ignore[arg-type]
        try:
            for b in (1, 2, 3):
                _register(zk_client, b)
            await reg.watch_registrations()
            assignment = assign_replicas(6, 3, reg.brokers())
            assert all(sorted(r) == [1, 2, 3] for r in assignment.values())
        finally:
            node.closing = True
            zk.close()
    asyncio.run(run())
