"""The ZooKeeper fixture: it serves, kazoo reads and writes through a chroot, chroots keep tests
apart, and stop() leaves no process and no listener behind."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid

import pytest
from kafka_bench.zookeeper import ZooKeeper, four_letter
from kazoo.client import KazooClient


def _connect(connect: str) -> KazooClient:
    zk = KazooClient(connect, timeout=5)
    zk.start(timeout=10)
    return zk


def test_session_zookeeper_serves_standalone(zookeeper: ZooKeeper) -> None:
    assert zookeeper.connect == f"127.0.0.1:{zookeeper.port}"
    srvr = four_letter(zookeeper.port, "srvr")
    assert "Zookeeper version: 3.8.4" in srvr and "Mode: standalone" in srvr


def test_kazoo_creates_and_reads_under_the_chroot(zk_client: KazooClient, zk_chroot: str,
                                                  zookeeper: ZooKeeper) -> None:
    zk_client.create("/brokers/ids/1", b'{"host":"127.0.0.1"}', makepath=True, ephemeral=True)
    assert zk_client.get("/brokers/ids/1")[0] == b'{"host":"127.0.0.1"}'
    assert zk_client.get_children("/brokers/ids") == ["1"]
    root = _connect(zookeeper.connect)   # the same node, seen without the chroot
    try:
        chroot = zk_chroot.split("/", 1)[1]
        assert root.get_children(f"/{chroot}/brokers/ids") == ["1"]
    finally:
        root.stop()
        root.close()


def test_chroots_keep_tests_apart(zk_client: KazooClient, zookeeper: ZooKeeper) -> None:
    root = _connect(zookeeper.connect)
    other = f"/test-other-{uuid.uuid4().hex[:12]}"
    try:
        root.ensure_path(other)
        zk_client.create("/controller", b"1")
        neighbour = _connect(zookeeper.connect + other)
        assert not neighbour.exists("/controller")
        neighbour.stop()
    finally:
        root.delete(other, recursive=True)
        root.stop()


def test_stop_ends_the_process_and_frees_the_port(tmp_path) -> None:
    zk = ZooKeeper(data_dir=tmp_path / "zk").start()
    pid, port = zk.pid, zk.port
    assert pid is not None
    client = _connect(zk.connect)
    client.create("/kept", b"v")
    client.stop()
    zk.stop()
    assert zk.proc is None
    assert not os.path.exists(f"/proc/{pid}"), "the ZooKeeper JVM is still there"
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        pass
    # same data folder and port: what was written is there again
    with ZooKeeper(port=port, data_dir=tmp_path / "zk") as again:
        client = _connect(again.connect)
        assert client.get("/kept")[0] == b"v"
        client.stop()
    assert (tmp_path / "zk").exists()   # a given folder is the caller's: not removed


_ORPHAN = """
import os, sys
from kafka_bench.zookeeper import ZooKeeper
zk = ZooKeeper().start()
print(zk.pid, flush=True)
os._exit(int(sys.argv[1]))   # no atexit hook, no stop(): as a session killed by pytest-timeout
"""


def test_a_session_that_dies_leaves_no_zookeeper() -> None:
    r = subprocess.run([sys.executable, "-c", _ORPHAN, "0"], capture_output=True, text=True, timeout=60,
                       env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)))
    pid = int(r.stdout.split()[0])
    deadline = time.monotonic() + 10
    while os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not os.path.exists(f"/proc/{pid}"), "the ZooKeeper JVM outlived the process that started it"
