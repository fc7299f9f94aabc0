"""N kafka-core brokers on one ZooKeeper, each a subprocess on its own loopback port and data
folder, for tests, benchmarks and ``kafka-core cluster up``."""

from __future__ import annotations

import shutil
import signal
import tempfile
import time
from pathlib import Path

from .apache_kafka import free_port
from .kafka_core_broker import KafkaCoreBroker


class KafkaCoreCluster:
    """Brokers 1..n with ``zookeeper.connect=<zk_connect>``.  ``settings`` go to every broker."""

    def __init__(self, n: int, zk_connect: str, *, data_dir: str | Path | None = None,
                 settings: dict[str, str] | None = None, racks: list[str] | None = None) -> None:
        self.n = n
        self.zk_connect = zk_connect
        self._own_dir = data_dir is None
        self.data_dir = Path(data_dir or tempfile.mkdtemp(prefix="kafka-core-cluster-"))
        base = {"zookeeper.connect": zk_connect, "zookeeper.session.timeout.ms": "6000",
                "offsets.topic.replication.factor": str(min(3, n)), "group.initial.rebalance.delay.ms": "0"}
        base.update(settings or {})
        self.brokers: dict[int, KafkaCoreBroker] = {}
        for i in range(1, n + 1):
            s = dict(base, **{"broker.id": str(i)})
            if racks:
                s["broker.rack"] = racks[(i - 1) % len(racks)]
            d = self.data_dir / f"broker-{i}"
            d.mkdir(parents=True, exist_ok=True)
            self.brokers[i] = KafkaCoreBroker(d, free_port(), s)

    @property
    def bootstrap(self) -> str:
        return ",".join(b.bootstrap for b in self.brokers.values())

    def start(self, timeout: float = 60) -> KafkaCoreCluster:
        for b in self.brokers.values():
            b.start(timeout)
        return self

    def wait_registered(self, timeout: float = 30) -> None:
        """Until every running broker's metadata lists every running broker."""
        from kazoo.client import KazooClient

        zk = KazooClient(hosts=self.zk_connect)
        zk.start(timeout=10)
        try:
            want = {str(i) for i, b in self.brokers.items() if b.proc is not None}
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if zk.exists("/brokers/ids") and want <= set(zk.get_children("/brokers/ids")):
                    break
                time.sleep(0.1)
            else:
                raise TimeoutError(f"brokers {sorted(want)} did not all register in ZooKeeper")
        finally:
            zk.stop()
            zk.close()
        # registered is not yet known: each broker learns the others from the controller's
        # UpdateMetadata (a CreateTopics with RF=3 sent before that sees fewer brokers)
        from kafka_client import AdminClient

        for i, b in self.brokers.items():
            if b.proc is None:
                continue
            with AdminClient(b.bootstrap) as admin:
                while {str(x.node_id) for x in admin.describe_cluster().brokers} < want:
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"broker {i}'s metadata does not list brokers {sorted(want)}")
                    time.sleep(0.1)

    def kill(self, i: int) -> None:
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

    def cleanup(self) -> None:
        # SIGTERM all at once: a controlled shutdown of the last brokers has nobody to hand to.
        for b in self.brokers.values():
            if b.proc is not None and b.proc.poll() is None:
                b.proc.send_signal(signal.SIGTERM)
        for b in self.brokers.values():
            b.stop(timeout=30)
        if self._own_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self) -> KafkaCoreCluster:
        try:
            return self.start()
        except BaseException:
            self.cleanup()      # the brokers that did start must not outlive a failed start
            raise

    def __exit__(self, *exc: object) -> None:
        self.cleanup()
