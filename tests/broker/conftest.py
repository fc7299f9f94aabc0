"""Broker tests: a kafka-core broker in a subprocess on a free port, driven over a raw
socket with the project's own codecs (kafka_protocol) and batch builder (kafka_core)."""

from __future__ import annotations

import itertools
import os
import socket
import struct
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
# The subprocess must import the in-tree packages even without `pip install -e .`.
_pp = [str(ROOT / "python"), str(ROOT / "src")]
os.environ["PYTHONPATH"] = os.pathsep.join(_pp + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep)
                                                  if p and p not in _pp])
for _p in reversed(_pp):
    if _p not in sys.path:
        sys.path.insert(0, _p)

from kafka_bench.kafka_core_broker import KafkaCoreBroker  # noqa: E402
from kafka_protocol import decode_response_header, encode_request  # noqa: E402
from kafka_protocol.messages import REQUESTS, RESPONSES  # noqa: E402


class RawClient:
    """One TCP connection speaking Kafka frames with the generated codecs."""

    def __init__(self, port: int, client_id: str | None = "kc-test", timeout: float = 15,
                 rcvbuf: int | None = None, source: str | None = None) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:   # before connect, so the advertised window stays small
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        if source:   # another loopback address (127.0.0.2...): per-address limits and quotas
            self.sock.bind((source, 0))
        self.sock.settimeout(timeout)
        self.sock.connect(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.client_id = client_id
        self._corr = itertools.count(1)
        self.pending: dict[int, tuple[int, int]] = {}

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> RawClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def send(self, req: Any, version: int) -> int:
        corr = next(self._corr)
        self.sock.sendall(encode_request(req.API_KEY, version, corr, self.client_id, req))
        self.pending[corr] = (req.API_KEY, version)
        return corr

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def recv_frame(self) -> bytes:
        head = self._recv_exact(4)
        (size,) = struct.unpack(">i", head)
        return self._recv_exact(size)

    def _recv_exact(self, n: int) -> bytes:
        buf = bytearray()
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError(f"connection closed after {len(buf)} of {n} bytes")
            buf += chunk
        return bytes(buf)

    def recv(self, corr: int | None = None) -> Any:
        frame = self.recv_frame()
        (got,) = struct.unpack_from(">i", frame, 0)
        if corr is not None:
            assert got == corr, f"response for correlation id {got}, expected {corr}"
        api_key, version = self.pending.pop(got)
        _, off = decode_response_header(frame, api_key, version)
        resp, end = RESPONSES[api_key].decode(frame, version, off)
        assert end == len(frame), f"{RESPONSES[api_key].__name__} v{version}: {len(frame) - end} trailing bytes"
        return resp

    def call(self, req: Any, version: int) -> Any:
        return self.recv(self.send(req, version))

    def is_closed_by_peer(self, timeout: float = 10) -> bool:
        self.sock.settimeout(timeout)
        try:
            return self.sock.recv(1) == b""
        except ConnectionResetError:
            return True
        except TimeoutError:
            return False


def make_batch(values: list[bytes | None], *, keys: list[bytes | None] | None = None, ts: int | None = None,
               producer_id: int = -1, producer_epoch: int = -1, base_sequence: int = -1) -> bytearray:
    from kafka_core import BatchBuilder

    ts = int(time.time() * 1000) if ts is None else ts
    size = 61 + sum(len(v or b"") + 40 for v in values) + sum(len(k or b"") for k in keys or [])
    b = BatchBuilder(size, base_timestamp=ts, producer_id=producer_id,
                     producer_epoch=producer_epoch, base_sequence=base_sequence)
    for i, v in enumerate(values):
        assert b.append(ts + i, keys[i] if keys else None, v)
    return bytearray(b.finish())


def produce_req(topic: str, partition: int, records: Any, acks: int = -1) -> Any:
    P = REQUESTS[0]
    return P(acks=acks, timeout_ms=10000, topic_data=[
        P.TopicProduceData(name=topic, partition_data=[P.PartitionProduceData(index=partition, records=records)])])


def fetch_req(topic: str, partition: int, offset: int, *, max_wait_ms: int = 0, min_bytes: int = 1,
              max_bytes: int = 1 << 20, session_id: int = 0, session_epoch: int = -1,
              topic_id: uuid.UUID | None = None) -> Any:
    F = REQUESTS[1]
    return F(replica_id=-1, max_wait_ms=max_wait_ms, min_bytes=min_bytes, max_bytes=max_bytes, isolation_level=0,
             session_id=session_id, session_epoch=session_epoch, topics=[
                 F.FetchTopic(topic=topic, topic_id=topic_id or uuid.UUID(int=0), partitions=[
                     F.FetchPartition(partition=partition, fetch_offset=offset, partition_max_bytes=max_bytes)])])


def create_topic(client: RawClient, name: str, partitions: int = 1, configs: dict[str, str] | None = None) -> Any:
    C = REQUESTS[19]
    req = C(topics=[C.CreatableTopic(name=name, num_partitions=partitions, replication_factor=1,
                                     configs=[C.CreatableTopicConfig(name=k, value=v)
                                              for k, v in (configs or {}).items()])], timeout_ms=10000)
    resp = client.call(req, 7)
    assert resp.topics[0].error_code == 0, resp
    wait_for_leaders(client, name)
    return resp.topics[0]


def wait_for_leaders(client: RawClient, name: str, timeout: float = 60) -> Any:
    """The topic's Metadata once every partition has a leader: CreateTopics is answered once the
    topic is in the metadata, its logs made afterwards (LEADER_NOT_AVAILABLE meanwhile), so a test
    that produces at once waits as Kafka's TestUtils.createTopic waits for the leaders."""
    M = REQUESTS[3]
    deadline = time.monotonic() + timeout
    while True:
        md = client.call(M(topics=[M.MetadataRequestTopic(name=name)], allow_auto_topic_creation=False), 9)
        t = md.topics[0]
        if t.error_code == 0 and t.partitions and all(p.error_code == 0 and p.leader_id >= 0 for p in t.partitions):
            return t
        assert time.monotonic() < deadline, f"{name}: partitions without a leader after {timeout}s: {t}"
        time.sleep(0.005)


@pytest.fixture(scope="session")
def broker():
    with KafkaCoreBroker(settings={"num.partitions": "1", "auto.create.topics.enable": "true"}) as b:
        yield b


@pytest.fixture
def client(broker):
    with RawClient(broker.port) as c:
        yield c


@pytest.fixture
def topic(client, request) -> str:
    name = f"{request.node.name[:40].replace('[', '-').replace(']', '')}-{uuid.uuid4().hex[:6]}"
    create_topic(client, name)
    return name


def mount_tmpfs(path: Path, size: str) -> None:
    """Mount a tmpfs of ``size`` (e.g. "4m") at ``path``, or remount it at that size.  The suite runs
    as root (./dev test installs Debian packages; CI runs it as root): a root that cannot mount is a
    failure, only an unprivileged developer's run skips."""
    import subprocess

    opts = f"size={size}" if not os.path.ismount(path) else f"remount,size={size}"
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(path)], capture_output=True, text=True)
    if r.returncode != 0:
        assert os.geteuid() != 0, f"mount -t tmpfs -o {opts} failed as root: {r.stderr.strip()}"
        pytest.skip(f"mounting a tmpfs needs root: {r.stderr.strip()}")


@pytest.fixture
def small_disk(tmp_path: Path) -> Any:
    """A 4 MiB tmpfs at ``tmp_path/small``, unmounted afterwards."""
    import subprocess

    d = tmp_path / "small"
    d.mkdir()
    mount_tmpfs(d, "4m")
    yield d
    subprocess.run(["umount", "-l", str(d)], check=False)


async def aio_drain(consumer: Any, n: int, timeout: float = 30) -> list[bytes]:
    """Start an aiokafka consumer, read ``n`` values (each getmany within ``timeout``), stop it."""
    import asyncio

    await consumer.start()
    out: list[bytes] = []
    try:
        while len(out) < n:
            batch = await asyncio.wait_for(consumer.getmany(timeout_ms=1000), timeout)
            out += [m.value for ms in batch.values() for m in ms]
    finally:
        await consumer.stop()
    return out
