"""The cap on open segment files (issue 16): a broker whose open-file limit is 1,024 serves 5,000
partitions that all hold data, round after round.  Before the cap every partition written kept its
active .log open, so the 1,025th partition written failed with "Too many open files"
(KAFKA_STORAGE_ERROR); now the segment fds form one process-wide pool of at most half the soft
RLIMIT_NOFILE, the least recently used unpinned one closed to open another, and a fetch response
pins each slice's fd only while sending it (csrc/kc_segment.h, kafka_core/_transfer.pyx).

Shown with confluent-kafka: 2 rounds of one record to each of the 5,000 partitions (acks=all) and a
consumer reading all of them back from offset 0 (one fetch names all 5,000); every record is
checked, the broker never logs EMFILE, and a sampler reading /proc/<pid>/fd throughout sees the
.log fds stay at or under the cap and the process far from its limit."""

from __future__ import annotations

import os
import re
import threading
import time
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient, NewTopic
from kafka_bench.kafka_core_broker import KafkaCoreBroker

from .test_partition_scale import _consume, _fd_limit, _produce

pytestmark = [pytest.mark.interop, pytest.mark.slow]

PARTITIONS = 5000
FD_LIMIT = 1024
CAP = FD_LIMIT // 2          # kc_segment.c derive_cap: half the soft limit
ROUNDS = 2
SEGMENT = re.compile(r"/\d{20}\.log$")   # not the broker's own stdout/stderr files


class _FdSampler(threading.Thread):
    """The broker's open fds every 20 ms: all of them, and those on segment .log files."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.max_all, self.max_logs, self.samples = pid, 0, 0, 0
        self.halt = threading.Event()

    def run(self) -> None:
        d = f"/proc/{self.pid}/fd"
        while not self.halt.is_set():
            n_all = n_logs = 0
            try:
                for name in os.listdir(d):
                    n_all += 1
                    try:
                        n_logs += SEGMENT.search(os.readlink(f"{d}/{name}")) is not None
                    except OSError:
                        pass          # closed meanwhile
            except OSError:
                return
            self.max_all, self.max_logs = max(self.max_all, n_all), max(self.max_logs, n_logs)
            self.samples += 1
            time.sleep(0.02)


def test_5000_partitions_with_data_under_1024_fds(tmp_path: Path) -> None:
    b = KafkaCoreBroker(data_dir=tmp_path)
    with _fd_limit(FD_LIMIT):
        b.start(timeout=120)
    assert b.proc is not None
    sampler = _FdSampler(b.proc.pid)
    sampler.start()
    try:
        bootstrap = f"127.0.0.1:{b.port}"
        admin = AdminClient({"bootstrap.servers": bootstrap})
        admin.create_topics([NewTopic("wide", PARTITIONS, 1)], operation_timeout=60)["wide"].result(90)
        for r in range(ROUNDS):
            _produce(b.port, "wide", list(range(PARTITIONS)), f"r{r}")
            got = _consume(b.port, "wide", list(range(PARTITIONS)), PARTITIONS * (r + 1))
            want = {i: [f"r{k}-{i}".encode() for k in range(r + 1)] for i in range(PARTITIONS)}
            assert got == want, f"round {r}: {sum(map(len, got.values()))} records"
        sampler.halt.set()
        sampler.join(5)
        assert sampler.samples > 10
        assert sampler.max_logs <= CAP, (sampler.max_logs, CAP)
        assert sampler.max_all < FD_LIMIT - 100, sampler.max_all
        assert sampler.max_logs > CAP // 2   # the pool was used up to its cap, not bypassed
        text = b.log_text()
        assert "Too many open files" not in text and "EMFILE" not in text
        print(f"max fds {sampler.max_all}, max .log fds {sampler.max_logs} (cap {CAP}), "
              f"{sampler.samples} samples")
    finally:
        sampler.halt.set()
        b.stop()
