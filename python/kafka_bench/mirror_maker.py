"""Apache Kafka's MirrorMaker 2 from Maven Central, for benches/system/bench_mirror.py.

``ensure_jars()`` fetches ``org.apache.kafka:connect-mirror``, ``connect-mirror-client`` and
``connect-runtime`` (version in kafka_bench/data/mirror-maker/pom.xml, the Apache Kafka of
apache_kafka.py) with their dependencies into ``<cache>/mirror-maker/libs`` once, as
apache_kafka.py does for the broker.  ``MirrorMaker2`` runs ``connect-mirror-maker.sh``'s main
class, ``org.apache.kafka.connect.mirror.MirrorMaker``, in dedicated mode on a properties file
naming two clusters and one replication flow.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from . import paths
from .apache_kafka import _LOG4J2, fetch_jars, java

POM = paths.DATA / "mirror-maker" / "pom.xml"
CACHE = Path(os.environ.get("KC_MIRROR_MAKER_CACHE", paths.CACHE / "mirror-maker"))
LIBS = CACHE / "libs"
MAIN = "org.apache.kafka.connect.mirror.MirrorMaker"


def ensure_jars() -> Path:
    """Fetch the jars with Maven unless already cached; return the libs folder."""
    return fetch_jars(POM, LIBS, {"log4j2.yaml": _LOG4J2})


class MirrorMaker2:
    """One dedicated MirrorMaker 2 process mirroring ``topics`` (a regex) from ``source`` to ``target``
    (DefaultReplicationPolicy: the copy of T is ``<source_alias>.T``)."""

    def __init__(self, source: str, target: str, topics: str, workdir: Path, *, source_alias: str = "src",
                 target_alias: str = "tgt", tasks: int = 1, heap: str = "1g") -> None:
        self.workdir = workdir
        self.heap = heap
        self.props = {
            "clusters": f"{source_alias}, {target_alias}",
            f"{source_alias}.bootstrap.servers": source,
            f"{target_alias}.bootstrap.servers": target,
            f"{source_alias}->{target_alias}.enabled": "true",
            f"{source_alias}->{target_alias}.topics": topics,
            f"{target_alias}->{source_alias}.enabled": "false",
            "tasks.max": str(tasks),
            "replication.factor": "1",
            "checkpoints.topic.replication.factor": "1",
            "heartbeats.topic.replication.factor": "1",
            "offset-syncs.topic.replication.factor": "1",
            "offset.storage.replication.factor": "1",
            "status.storage.replication.factor": "1",
            "config.storage.replication.factor": "1",
            "sync.topic.acls.enabled": "false",
            "refresh.topics.interval.seconds": "2",
        }
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> MirrorMaker2:
        libs = ensure_jars()
        self.workdir.mkdir(parents=True, exist_ok=True)
        cfg = self.workdir / "mm2.properties"
        cfg.write_text("".join(f"{k} = {v}\n" for k, v in self.props.items()))
        log = open(self.workdir / "mm2.log", "ab")
        self.proc = subprocess.Popen([java(), f"-Xmx{self.heap}", f"-Dlog4j2.configurationFile={libs / 'log4j2.yaml'}",
                                      "-cp", str(libs / "*"), MAIN, str(cfg)],
                                     stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        return self

    def stop(self) -> tuple[int | None, float]:
        """Stop it; returns its exit code and the CPU seconds it used (user + system)."""
        if self.proc is None:
            return None, 0.0
        self.proc.terminate()
        deadline = time.monotonic() + 30
        while True:
            pid, status, ru = os.wait4(self.proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                self.proc.kill()
                deadline = float("inf")
            time.sleep(0.1)
        self.proc.returncode = code = os.waitstatus_to_exitcode(status)
        self.proc = None
        return code, ru.ru_utime + ru.ru_stime
