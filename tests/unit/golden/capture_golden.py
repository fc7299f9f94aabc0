"""Capture the first request frames real Kafka clients send (test-data helper, run by hand).

    PYTHONPATH=python python tests/unit/golden/capture_golden.py

A throwaway listener on 127.0.0.1 records the first frame of each connection (size prefix
included) and closes it; each client runs in a subprocess with a short timeout. The frames
are written next to this file as ``<client>-<api>-v<version>.bin`` and are committed as
test data: test_protocol_golden.py decodes them and re-encodes them byte-exactly.
"""

from __future__ import annotations

import shutil
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

CLIENTS = {
    "kafka-python-admin": """
from kafka import KafkaAdminClient
try:
    KafkaAdminClient(bootstrap_servers='127.0.0.1:{port}', request_timeout_ms=1500,
                     client_id='golden-admin')
except Exception as e:
    print(e)
""",
    "kafka-python-producer": """
from kafka import KafkaProducer
try:
    p = KafkaProducer(bootstrap_servers='127.0.0.1:{port}', request_timeout_ms=1500, max_block_ms=3000,
                      client_id='golden-producer')
    p.send('golden', key=b'k', value=b'hello').get(timeout=5)
    p.close(timeout=2)
except Exception as e:
    print(e)
""",
    "aiokafka": """
import asyncio
from aiokafka import AIOKafkaProducer
async def main():
    p = AIOKafkaProducer(bootstrap_servers='127.0.0.1:{port}', client_id='golden-aiokafka',
                         request_timeout_ms=1500)
    try:
        await asyncio.wait_for(p.start(), 3)
        await asyncio.wait_for(p.send_and_wait('golden', b'hello', key=b'k'), 5)
        await p.stop()
    except Exception as e:
        print(e)
asyncio.run(main())
""",
    "confluent-kafka": """
import confluent_kafka
p = confluent_kafka.Producer({{'bootstrap.servers': '127.0.0.1:{port}', 'client.id': 'golden-rdkafka'}})
p.produce('golden', key=b'k', value=b'hello')
p.flush(5)
""",
}


ADVERTISED = {0: (3, 9), 1: (4, 12), 2: (1, 7), 3: (1, 12), 10: (0, 4), 18: (0, 4), 22: (0, 4)}


def answer(kp, port: int, frame: bytes) -> bytes | None:  # type: ignore[no-untyped-def]
    """A minimal fake broker: enough answers for a producer to get to its first Produce."""
    hdr = kp.decode_request_header(frame)
    key, ver = hdr.api_key, hdr.api_version
    if key == 18:
        R = kp.ApiVersionsResponse
        if not hdr.known:
            ver = 0
        body = R(api_keys=[R.ApiVersion(api_key=k, min_version=lo, max_version=hi)
                           for k, (lo, hi) in sorted(ADVERTISED.items())])
        return kp.encode_response(key, ver, hdr.correlation_id, body)
    if not hdr.known or key not in ADVERTISED:
        return None
    req, _ = kp.REQUESTS[key].decode(frame, ver, hdr.body_offset)
    if key == 3:
        R = kp.MetadataResponse
        names = [t.name for t in req.topics or []] or ["golden"]
        body = R(brokers=[R.MetadataResponseBroker(node_id=0, host="127.0.0.1", port=port)],
                 cluster_id="golden-cluster", controller_id=0,
                 topics=[R.MetadataResponseTopic(name=n, partitions=[
                     R.MetadataResponsePartition(partition_index=0, leader_id=0, leader_epoch=0,
                                                 replica_nodes=[0], isr_nodes=[0])]) for n in names])
    elif key == 22:
        body = kp.InitProducerIdResponse(producer_id=1000, producer_epoch=0)
    elif key == 10:
        body = kp.FindCoordinatorResponse(node_id=0, host="127.0.0.1", port=port)
    elif key == 0:
        R = kp.ProduceResponse
        body = R(responses=[R.TopicProduceResponse(name=t.name, partition_responses=[
            R.PartitionProduceResponse(index=p.index, base_offset=0) for p in t.partition_data])
            for t in req.topic_data])
        if req.acks == 0:
            return b""
    else:
        return None
    return kp.encode_response(key, ver, hdr.correlation_id, body)


def listen(kp, frames: list[bytes], stop: threading.Event) -> socket.socket:  # type: ignore[no-untyped-def]
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    srv.settimeout(0.2)
    port = srv.getsockname()[1]

    def serve(conn: socket.socket) -> None:
        conn.settimeout(5)
        data = b""
        try:
            while not stop.is_set():
                chunk = conn.recv(65536)
                if not chunk:
                    break
                data += chunk
                while len(data) >= 4 and len(data) >= 4 + struct.unpack(">i", data[:4])[0]:
                    n = 4 + struct.unpack(">i", data[:4])[0]
                    frame, data = data[:n], data[n:]
                    frames.append(frame)
                    reply = answer(kp, port, frame[4:])
                    if reply is None:
                        return
                    conn.sendall(reply)
        except OSError:
            pass
        finally:
            conn.close()

    def run() -> None:
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except TimeoutError:
                continue
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    threading.Thread(target=run, daemon=True).start()
    return srv


def main() -> int:
    sys.path.insert(0, str(HERE.parents[2] / "python"))
    import kafka_protocol as kp

    for name, code in CLIENTS.items():
        frames: list[bytes] = []
        stop = threading.Event()
        srv = listen(kp, frames, stop)
        port = srv.getsockname()[1]
        try:
            subprocess.run([sys.executable, "-c", code.format(port=port)], timeout=20,
                           capture_output=True)
        except subprocess.TimeoutExpired:
            pass
        time.sleep(0.3)
        stop.set()
        srv.close()
        save(kp, name, frames)
    if shutil.which("kcat"):
        frames = []
        stop = threading.Event()
        srv = listen(kp, frames, stop)
        try:
            subprocess.run(["kcat", "-b", f"127.0.0.1:{srv.getsockname()[1]}", "-P", "-t", "golden",
                            "-K:", "-m", "3"], input=b"k:hello\n", timeout=20, capture_output=True)
        except subprocess.TimeoutExpired:
            pass
        stop.set()
        srv.close()
        save(kp, "kcat", frames)
    return 0


def save(kp, name: str, frames: list[bytes]) -> None:  # type: ignore[no-untyped-def]
    seen = set()
    for frame in frames:
        hdr = kp.decode_request_header(frame[4:])
        key = (hdr.api_key, hdr.api_version)
        if key in seen:
            continue
        seen.add(key)
        api = kp.API_NAMES.get(hdr.api_key, f"api{hdr.api_key}")
        path = HERE / f"{name}-{api}-v{hdr.api_version}.bin"
        path.write_bytes(frame)
        print(f"{path.name}: {len(frame)} bytes, client_id={hdr.client_id!r}")
    if not frames:
        print(f"{name}: no frame captured")


if __name__ == "__main__":
    sys.exit(main())
