"""A real kafka-core cluster for tests: n brokers on one ZooKeeper, each a child process.

::

    from kafka_broker.testing import EmbeddedCluster

    with EmbeddedCluster(3) as cluster:      # ZooKeeper, brokers 1..3, every broker knows the others
        admin.create_topics([NewTopic("t", 6, replication_factor=3)])   # any client, cluster.bootstrap
        cluster.kill(2)                       # kill -9 a broker, cluster.restart(2) brings it back

ZooKeeper is the one service a cluster needs beyond kafka-core, and it is Java, so it is not
shipped: the cluster uses a running ZooKeeper when given one (``zookeeper=`` or the
``KAFKA_CORE_ZOOKEEPER`` connect string; each cluster takes a fresh chroot of its own under it,
so many clusters share one server) and otherwise starts its own ``EmbeddedZooKeeper`` from the
jars at ``zookeeper_classpath=`` or ``KAFKA_CORE_ZOOKEEPER_CLASSPATH``.  With neither, the
constructor says so.

Ready (on ``with`` or ``wait_registered()``) means every broker is registered in ZooKeeper and
the metadata of every running broker lists them all: registration alone is not enough, a broker
learns its peers from the controller's UpdateMetadata, and a CreateTopics with replication
factor 3 that comes before that sees fewer brokers.

Settings suit a test cluster of any size: the internal topics' replication factors are
``min(3, n)`` (Kafka's default 3 would make a one- or two-broker cluster refuse groups and
transactions) and ``transaction.state.log.min.isr`` ``min(2, n)``; ``settings=`` overrides or
adds any broker key, for every broker.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import struct
import tempfile
import time
import uuid
from pathlib import Path
from typing import ClassVar

import kafka_protocol as kp

from .broker import EmbeddedBroker
from .process import free_port
from .zookeeper import EmbeddedZooKeeper

ZOOKEEPER_ENV = "KAFKA_CORE_ZOOKEEPER"
CLASSPATH_ENV = "KAFKA_CORE_ZOOKEEPER_CLASSPATH"
_I32 = struct.Struct(">i")


def metadata_broker_ids(port: int, timeout: float = 5.0) -> set[int]:
    """The broker ids in the Metadata answer of the broker on 127.0.0.1:port."""
    version = 12
    req = kp.MetadataRequest(topics=[], allow_auto_topic_creation=False)
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(kp.encode_request(kp.MetadataRequest.API_KEY, version, 1, "kafka-core-testing", req))
        buf = b""
        while len(buf) < 4 or len(buf) < 4 + _I32.unpack_from(buf)[0]:
            chunk = s.recv(65536)
            if not chunk:
                raise ConnectionError(f"broker on port {port} closed the connection before answering Metadata")
            buf += chunk
    frame = memoryview(buf)[4:]
    _, pos = kp.decode_response_header(frame, kp.MetadataRequest.API_KEY, version)
    resp, _ = kp.MetadataResponse.decode(frame, version, pos)
    return {b.node_id for b in resp.brokers}


class EmbeddedCluster:
    """Brokers 1..n (``brokers[i]``, each an ``EmbeddedBroker`` with its own port and folder under
    ``data_dir``) with ``zookeeper.connect`` on one ZooKeeper chroot (``zk_connect``)."""

    BROKER: ClassVar[type[EmbeddedBroker]] = EmbeddedBroker

    def __init__(self, n: int = 3, zookeeper: str | None = None, *, data_dir: str | Path | None = None,
                 settings: dict[str, str] | None = None, racks: list[str] | None = None,
                 zookeeper_classpath: str | None = None) -> None:
        if n < 1:
            raise ValueError(f"a cluster has at least one broker, not {n}")
        self.n = n
        self._own_dir = data_dir is None
        self.data_dir = Path(data_dir or tempfile.mkdtemp(prefix="kafka-core-cluster-"))
        self.zookeeper_server: EmbeddedZooKeeper | None = None
        if zookeeper is None and os.environ.get(ZOOKEEPER_ENV):
            zookeeper = os.environ[ZOOKEEPER_ENV].rstrip("/") + f"/kafka-core-{uuid.uuid4().hex[:12]}"
        if zookeeper is None:
            classpath = zookeeper_classpath or os.environ.get(CLASSPATH_ENV)
            if not classpath:
                raise RuntimeError(
                    f"a kafka-core cluster needs ZooKeeper: give EmbeddedCluster(zookeeper='HOST:PORT') or set "
                    f"{ZOOKEEPER_ENV} to a running one, or give zookeeper_classpath='DIR/*' or set {CLASSPATH_ENV} "
                    f"to the folder of ZooKeeper's jars (org.apache.zookeeper:zookeeper with its dependencies) "
                    f"to start one")
            self.zookeeper_server = EmbeddedZooKeeper(classpath, data_dir=self.data_dir / "zookeeper")
            zookeeper = self.zookeeper_server.connect + "/kafka-core"
        self.zk_connect = zookeeper
        base = {"zookeeper.connect": zookeeper, "zookeeper.session.timeout.ms": "6000",
                "offsets.topic.replication.factor": str(min(3, n)),
                "transaction.state.log.replication.factor": str(min(3, n)),
                "transaction.state.log.min.isr": str(min(2, n)),
                "group.initial.rebalance.delay.ms": "0"}
        base.update(settings or {})
        self.brokers: dict[int, EmbeddedBroker] = {}
        for i in range(1, n + 1):
            s = dict(base, **{"broker.id": str(i)})
            if racks:
                s["broker.rack"] = racks[(i - 1) % len(racks)]
            d = self.data_dir / f"broker-{i}"
            d.mkdir(parents=True, exist_ok=True)
            self.brokers[i] = self.BROKER(d, free_port(), s)

    @property
    def bootstrap(self) -> str:
        return ",".join(b.bootstrap for b in self.brokers.values())

    def start(self, timeout: float = 60) -> EmbeddedCluster:
        """Start ZooKeeper (when the cluster owns it) and every broker; not yet ready (see
        ``wait_registered``)."""
        if self.zookeeper_server is not None and self.zookeeper_server.proc is None:
            self.zookeeper_server.start()
        for b in self.brokers.values():
            b.start(timeout)
        return self

    def wait_registered(self, timeout: float = 30) -> None:
        """Until every running broker is registered and every running broker's metadata lists them all."""
        from kazoo.client import KazooClient

        want = {i for i, b in self.brokers.items() if b.proc is not None}
        deadline = time.monotonic() + timeout
        zk = KazooClient(hosts=self.zk_connect)
        zk.start(timeout=10)
        try:
            while not (zk.exists("/brokers/ids") and {str(i) for i in want} <= set(zk.get_children("/brokers/ids"))):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"brokers {sorted(want)} did not all register in ZooKeeper")
                time.sleep(0.1)
        finally:
            zk.stop()
            zk.close()
        for i in want:
            while True:
                try:
                    # A restarted broker answers only once it is registered again, which after a
                    # kill -9 waits for its old ZooKeeper session to expire.
                    if metadata_broker_ids(self.brokers[i].port, timeout=max(0.5, deadline - time.monotonic())) >= want:
                        break
                except OSError:
                    pass
                if time.monotonic() > deadline:
                    raise TimeoutError(f"broker {i}'s metadata does not list brokers {sorted(want)}")
                time.sleep(0.1)

    def kill(self, i: int) -> None:
        """kill -9 broker ``i`` (its folder stays; ``restart(i)`` recovers it)."""
        self.brokers[i].stop(signal.SIGKILL)

    def stop_broker(self, i: int, sig: int = signal.SIGTERM, timeout: float = 60) -> int | None:
        return self.brokers[i].stop(sig, timeout)

    def restart(self, i: int) -> None:
        b = self.brokers[i]
        if b.proc is not None:
            b.stop()
        b.start()

    def stop(self) -> None:
        for b in self.brokers.values():
            b.stop()
        if self.zookeeper_server is not None:
            self.zookeeper_server.stop()

    def cleanup(self) -> None:
        # SIGTERM all at once: a controlled shutdown of the last brokers has nobody to hand to.
        for b in self.brokers.values():
            if b.proc is not None and b.proc.poll() is None:
                b.proc.send_signal(signal.SIGTERM)
        for b in self.brokers.values():
            b.stop(timeout=30)
        if self.zookeeper_server is not None:
            self.zookeeper_server.cleanup()
        if self._own_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self) -> EmbeddedCluster:
        try:
            self.start()
            self.wait_registered()
        except BaseException:
            self.cleanup()      # the brokers that did start must not outlive a failed start
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.cleanup()
