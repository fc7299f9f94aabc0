"""Kafka's ZooKeeper layout and the asyncio face of kazoo.

Paths and JSON are Kafka's (``ZkData.scala``), so a Kafka operator finds things where they
expect them: ``/brokers/ids/N`` (ephemeral registration: endpoints, rack), ``/controller`` and
``/controller_epoch``, ``/brokers/topics/T`` (replica assignment and topic id),
``/brokers/topics/T/partitions/P/state`` (leader, leader epoch, ISR, controller epoch; its znode
version is the partition's "zk version"), ``/config/topics/T``, ``/admin/delete_topics/T``,
``/isr_change_notification/isr_change_N``, ``/log_dir_event_notification/log_dir_event_N`` (a
broker whose log dir failed asks the controller to look at its replicas), ``/cluster/id`` and
``/latest_producer_id_block``.

kazoo runs its own thread; every call here returns an asyncio future settled on the loop, and
watches are delivered to the loop with ``call_soon_threadsafe``.  Watches are one-shot, as
ZooKeeper's are: whoever reads with a watch reads again when it fires.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("kafka_broker.cluster.zk")

BROKER_IDS = "/brokers/ids"
BROKER_TOPICS = "/brokers/topics"
CONTROLLER = "/controller"
CONTROLLER_EPOCH = "/controller_epoch"
CONFIG_TOPICS = "/config/topics"
CONFIG_CHANGES = "/config/changes"
DELETE_TOPICS = "/admin/delete_topics"
ISR_CHANGES = "/isr_change_notification"
LOG_DIR_EVENTS = "/log_dir_event_notification"
LOG_DIR_FAILURE_EVENT = 1       # Kafka's LogDirEventNotificationHandler.LogDirFailureEvent
CLUSTER_ID = "/cluster/id"
PRODUCER_ID_BLOCK = "/latest_producer_id_block"
PERSISTENT_PATHS = (BROKER_IDS, BROKER_TOPICS, "/brokers/seqid", CONFIG_TOPICS, CONFIG_CHANGES,
                    "/config/clients", "/config/users", "/config/ips", "/config/brokers", "/admin", DELETE_TOPICS,
                    ISR_CHANGES, "/latest_producer_id_block", LOG_DIR_EVENTS)


def topic_path(topic: str) -> str:
    return f"{BROKER_TOPICS}/{topic}"


def partition_state_path(topic: str, partition: int) -> str:
    return f"{BROKER_TOPICS}/{topic}/partitions/{partition}/state"


def kafka_uuid(u: uuid.UUID) -> str:
    """Kafka's ``Uuid.toString``: URL-safe base64 of the 16 bytes, no padding."""
    return base64.urlsafe_b64encode(u.bytes).decode().rstrip("=")


def parse_kafka_uuid(s: str) -> uuid.UUID:
    return uuid.UUID(bytes=base64.urlsafe_b64decode(s + "=" * (-len(s) % 4)))


def _j(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


# -- znode values -------------------------------------------------------------------------


@dataclass
class BrokerInfo:
    """``/brokers/ids/N`` (``BrokerIdZNode`` v5).  ``epoch`` is the znode's czxid (Kafka's broker
    epoch): a broker that re-registers gets a larger one, so requests for its old self are told
    apart."""

    id: int
    endpoints: dict[str, tuple[str, int]]           # listener name -> (host, port)
    protocols: dict[str, str]                       # listener name -> security protocol
    rack: str | None = None
    epoch: int = -1

    def encode(self) -> bytes:
        plain = self.endpoints.get("PLAINTEXT")
        d: dict[str, Any] = {
            "features": {},
            "listener_security_protocol_map": self.protocols,
            "endpoints": [f"{n}://{h}:{p}" for n, (h, p) in self.endpoints.items()],
            "jmx_port": -1,
            "host": plain[0] if plain else None,
            "port": plain[1] if plain else -1,
            "timestamp": str(int(time.time() * 1000)),
            "version": 5,
        }
        if self.rack is not None:
            d["rack"] = self.rack
        return _j(d)

    @classmethod
    def decode(cls, broker_id: int, data: bytes, czxid: int = -1) -> BrokerInfo:
        d = json.loads(data)
        protocols = d.get("listener_security_protocol_map") or {"PLAINTEXT": "PLAINTEXT"}
        endpoints: dict[str, tuple[str, int]] = {}
        for ep in d.get("endpoints") or []:
            name, rest = ep.split("://", 1)
            host, _, port = rest.rpartition(":")
            endpoints[name] = (host.strip("[]"), int(port))
        if not endpoints and d.get("host"):
            endpoints["PLAINTEXT"] = (d["host"], int(d["port"]))
        return cls(broker_id, endpoints, protocols, d.get("rack"), czxid)


@dataclass
class LeaderIsr:
    """``/brokers/topics/T/partitions/P/state``; ``zk_version`` is the znode version that a
    conditional update must name."""

    leader: int
    leader_epoch: int
    isr: list[int]
    controller_epoch: int
    zk_version: int = -1

    def encode(self) -> bytes:
        return _j({"controller_epoch": self.controller_epoch, "leader": self.leader, "version": 1,
                   "leader_epoch": self.leader_epoch, "isr": self.isr})

    @classmethod
    def decode(cls, data: bytes, zk_version: int) -> LeaderIsr:
        d = json.loads(data)
        return cls(int(d["leader"]), int(d["leader_epoch"]), [int(x) for x in d["isr"]],
                   int(d["controller_epoch"]), zk_version)


@dataclass
class TopicAssignment:
    """``/brokers/topics/T`` (``TopicZNode`` v3): partition -> replicas, and the topic id."""

    topic_id: uuid.UUID
    partitions: dict[int, list[int]]
    adding: dict[int, list[int]] = field(default_factory=dict)
    removing: dict[int, list[int]] = field(default_factory=dict)

    def encode(self) -> bytes:
        def m(d: dict[int, list[int]]) -> dict[str, list[int]]:
            return {str(p): r for p, r in sorted(d.items())}
        return _j({"partitions": m(self.partitions), "topic_id": kafka_uuid(self.topic_id),
                   "adding_replicas": m(self.adding), "removing_replicas": m(self.removing), "version": 3})

    @classmethod
    def decode(cls, data: bytes) -> TopicAssignment:
        d = json.loads(data)
        tid = d.get("topic_id")

        def m(x: Any) -> dict[int, list[int]]:
            return {int(p): [int(r) for r in rs] for p, rs in (x or {}).items()}
        return cls(parse_kafka_uuid(tid) if tid else uuid.uuid4(), m(d.get("partitions")),
                   m(d.get("adding_replicas")), m(d.get("removing_replicas")))


def encode_topic_config(config: dict[str, str]) -> bytes:
    return _j({"version": 1, "config": config})


def decode_topic_config(data: bytes | None) -> dict[str, str]:
    if not data:
        return {}
    return {str(k): str(v) for k, v in (json.loads(data).get("config") or {}).items()}


def encode_controller(broker_id: int) -> bytes:
    return _j({"version": 1, "brokerid": broker_id, "timestamp": str(int(time.time() * 1000))})


def decode_controller(data: bytes | None) -> int:
    if not data:
        return -1
    try:
        return int(json.loads(data)["brokerid"])
    except (ValueError, KeyError, TypeError):
        return int(data)     # the pre-0.9 format: the id alone


def encode_config_change(entity_path: str) -> bytes:
    return _j({"version": 2, "entity_path": entity_path})


def decode_config_change(data: bytes) -> str | None:
    try:
        return str(json.loads(data)["entity_path"])
    except (ValueError, KeyError, TypeError):
        return None


def sequence_of(name: str) -> int:
    """The number ZooKeeper appended to a sequential znode's name (config_change_0000000012 -> 12)."""
    digits = name[-10:]
    return int(digits) if digits.isdigit() else -1


def encode_isr_change(partitions: list[tuple[str, int]]) -> bytes:
    return _j({"version": 1, "partitions": [{"topic": t, "partition": p} for t, p in partitions]})


def decode_isr_change(data: bytes) -> list[tuple[str, int]]:
    return [(d["topic"], int(d["partition"])) for d in json.loads(data).get("partitions", [])]


def encode_log_dir_event(broker_id: int) -> bytes:
    """``LogDirEventNotificationSequenceZNode``: a log dir of ``broker_id`` failed."""
    return _j({"version": 1, "broker": broker_id, "event": LOG_DIR_FAILURE_EVENT})


def decode_log_dir_event(data: bytes | None) -> int | None:
    """The broker a log-dir failure notification names (None: not one, or unreadable)."""
    try:
        d = json.loads(data or b"")
        if int(d.get("event", LOG_DIR_FAILURE_EVENT)) != LOG_DIR_FAILURE_EVENT:
            return None
        return int(d["broker"])
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


# -- the client ---------------------------------------------------------------------------


def split_connect(connect: str) -> tuple[str, str]:
    """``host:port[,host:port...][/chroot]`` -> (hosts, chroot or "")."""
    slash = connect.find("/")
    if slash < 0:
        return connect, ""
    chroot = connect[slash:].rstrip("/")
    return connect[:slash], chroot


class Zk:
    """kazoo on an asyncio loop.  ``state_listener(state)`` runs on the loop for every kazoo
    connection state change (``LOST`` means the session expired: ephemerals are gone)."""

    def __init__(self, connect: str, session_timeout_ms: int, connection_timeout_ms: int,
                 loop: asyncio.AbstractEventLoop) -> None:
        self.connect = connect
        self.hosts, self.chroot = split_connect(connect)
        self.session_timeout = session_timeout_ms / 1000
        self.connection_timeout = connection_timeout_ms / 1000
        self.loop = loop
        self.kz: Any = None
        self.state_listeners: list[Callable[[str], None]] = []

    async def start(self) -> None:
        from kazoo.client import KazooClient

        if self.chroot:   # Kafka creates the chroot when it is missing
            boot = KazooClient(hosts=self.hosts, timeout=self.session_timeout)
            await self.loop.run_in_executor(None, lambda: boot.start(timeout=self.connection_timeout))
            try:
                await self.loop.run_in_executor(None, boot.ensure_path, self.chroot)
            finally:
                await self.loop.run_in_executor(None, boot.stop)
                boot.close()
        # Reconnect for ever (kazoo's default gives up after one failed attempt and closes the
        # client): a broker cut off from ZooKeeper must come back when the network does.
        from kazoo.retry import KazooRetry
        self.kz = KazooClient(hosts=self.connect, timeout=self.session_timeout,
                              connection_retry=KazooRetry(max_tries=-1, delay=0.1, backoff=2, max_delay=1.0))

        def on_state(state: str) -> None:
            self.loop.call_soon_threadsafe(self._state, str(state))
        self.kz.add_listener(on_state)
        try:
            await self.loop.run_in_executor(None, lambda: self.kz.start(timeout=self.connection_timeout))
        except Exception as e:
            raise RuntimeError(f"cannot connect to ZooKeeper at {self.connect} within "
                               f"zookeeper.connection.timeout.ms ({e})") from None
        await asyncio.gather(*(self.ensure_path(p) for p in PERSISTENT_PATHS))

    def _state(self, state: str) -> None:
        for fn in list(self.state_listeners):
            fn(state)

    def close(self) -> None:
        kz, self.kz = self.kz, None
        if kz is not None:
            try:
                kz.stop()
                kz.close()
            except Exception as e:  # noqa: BLE001 - best effort at shutdown
                log.debug("closing ZooKeeper client: %s", e)

    @property
    def session_id(self) -> int:
        sid = self.kz.client_id if self.kz is not None else None
        return sid[0] if sid else -1

    # -- asyncio wrappers ----------------------------------------------------------

    def _aw(self, ar: Any) -> asyncio.Future[Any]:
        fut: asyncio.Future[Any] = self.loop.create_future()

        def settle() -> None:
            if fut.done():
                return
            try:
                fut.set_result(ar.get_nowait())
            except Exception as e:  # noqa: BLE001 - kazoo errors go to the awaiting caller
                fut.set_exception(e)
        ar.rawlink(lambda _r: self.loop.call_soon_threadsafe(settle))
        return fut

    def watcher(self, fn: Callable[[Any], None]) -> Callable[[Any], None]:
        """A kazoo watch that runs ``fn(event)`` on the loop."""
        def watch(ev: Any) -> None:
            self.loop.call_soon_threadsafe(fn, ev)
        return watch

    def get(self, path: str, watch: Callable[[Any], None] | None = None) -> asyncio.Future[Any]:
        """(data, ZnodeStat); NoNodeError when absent."""
        return self._aw(self.kz.get_async(path, watch=self.watcher(watch) if watch else None))

    async def get_or_none(self, path: str, watch: Callable[[Any], None] | None = None) -> Any:
        from kazoo.exceptions import NoNodeError
        try:
            return await self.get(path, watch)
        except NoNodeError:
            return None

    def children(self, path: str, watch: Callable[[Any], None] | None = None) -> asyncio.Future[Any]:
        return self._aw(self.kz.get_children_async(path, watch=self.watcher(watch) if watch else None))

    def exists(self, path: str, watch: Callable[[Any], None] | None = None) -> asyncio.Future[Any]:
        return self._aw(self.kz.exists_async(path, watch=self.watcher(watch) if watch else None))

    def create(self, path: str, value: bytes = b"", *, ephemeral: bool = False, sequence: bool = False,
               makepath: bool = False) -> asyncio.Future[Any]:
        return self._aw(self.kz.create_async(path, value, ephemeral=ephemeral, sequence=sequence,
                                             makepath=makepath))

    def set(self, path: str, value: bytes, version: int = -1) -> asyncio.Future[Any]:
        """Conditional when ``version`` >= 0 (BadVersionError when someone wrote in between)."""
        return self._aw(self.kz.set_async(path, value, version))

    def delete(self, path: str, version: int = -1, recursive: bool = False) -> asyncio.Future[Any]:
        if recursive:
            return asyncio.ensure_future(self.loop.run_in_executor(
                None, lambda: self.kz.delete(path, version=version, recursive=True)))
        return self._aw(self.kz.delete_async(path, version))

    def ensure_path(self, path: str) -> asyncio.Future[Any]:
        return self._aw(self.kz.ensure_path_async(path))
