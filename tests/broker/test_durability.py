"""Restarts: clean (SIGTERM) and crash (SIGKILL) with log.flush.interval.messages=1 and acks=all."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest
from kafka_bench.kafka_core_broker import KafkaCoreBroker
from kafka_protocol.messages import REQUESTS

from .conftest import ROOT, RawClient, create_topic, fetch_req, make_batch, produce_req

Metadata = REQUESTS[3]
InitProducerId = REQUESTS[22]
DescribeConfigs = REQUESTS[32]


def _read_all(c: RawClient, topic: str, partition: int = 0) -> bytes:
    pd = c.call(fetch_req(topic, partition, 0, max_bytes=64 << 20), 12).responses[0].partitions[0]
    assert pd.error_code == 0, pd
    return bytes(pd.records)


@pytest.fixture
def own_broker(tmp_path):
    b = KafkaCoreBroker(data_dir=tmp_path, settings={"log.flush.interval.messages": "1"})
    b.start()
    yield b
    b.cleanup()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_restart_keeps_acknowledged_data(own_broker, sig):
    with RawClient(own_broker.port) as c:
        tid = create_topic(c, "durable", 2, configs={"retention.ms": "86400000"}).topic_id
        pid = c.call(InitProducerId(transactional_id=None, transaction_timeout_ms=1000), 4).producer_id
        batches = []
        seq = [0, 0]
        for i in range(20):
            b = make_batch([b"record-%d" % i] * 3, producer_id=pid, producer_epoch=0, base_sequence=seq[i % 2])
            seq[i % 2] += 3
            pr = c.call(produce_req("durable", i % 2, bytearray(b)), 9).responses[0].partition_responses[0]
            assert pr.error_code == 0
            batches.append(b)
        before = [_read_all(c, "durable", p) for p in (0, 1)]
    code = own_broker.stop(sig)
    assert code == (0 if sig == signal.SIGTERM else -signal.SIGKILL)
    own_broker.start()
    with RawClient(own_broker.port) as c:
        md = c.call(Metadata(topics=[Metadata.MetadataRequestTopic(name="durable")]), 12).topics[0]
        assert md.error_code == 0 and md.topic_id == tid and len(md.partitions) == 2
        assert [_read_all(c, "durable", p) for p in (0, 1)] == before
        cfg = c.call(DescribeConfigs(resources=[DescribeConfigs.DescribeConfigsResource(
            resource_type=2, resource_name="durable", configuration_keys=["retention.ms"])]), 4).results[0]
        assert cfg.configs[0].value == "86400000"
        # producer state survived: a retry of the last batch is a duplicate, the next sequence follows on
        pr = c.call(produce_req("durable", 1, bytearray(batches[-1])), 9).responses[0].partition_responses[0]
        assert (pr.error_code, pr.base_offset) == (0, 27)
        nxt = make_batch([b"next"], producer_id=pid, producer_epoch=0, base_sequence=30)
        pr = c.call(produce_req("durable", 1, nxt), 9).responses[0].partition_responses[0]
        assert (pr.error_code, pr.base_offset) == (0, 30)
        # new producer ids do not collide with the old one
        pid2 = c.call(InitProducerId(transactional_id=None, transaction_timeout_ms=1000), 4).producer_id
        assert pid2 != pid


def test_unknown_config_key_fails_start(tmp_path):
    cmd = [sys.executable, "-m", "kafka_cli", "broker", "--set", f"log.dirs={tmp_path}",
           "--set", "log.retention.hourz=1"]
    res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert res.returncode != 0
    assert "log.retention.hourz" in res.stderr


def test_unreachable_zookeeper_fails_start(tmp_path):
    """A broker given zookeeper.connect joins that cluster or does not start: it never falls back
    to being a single node that claims to be the whole cluster."""
    cmd = [sys.executable, "-m", "kafka_cli", "broker", "--set", f"log.dirs={tmp_path}",
           "--set", "zookeeper.connect=127.0.0.1:1", "--set", "zookeeper.connection.timeout.ms=1000"]
    res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert res.returncode == 1
    assert "cannot connect to ZooKeeper at 127.0.0.1:1" in res.stderr


@pytest.mark.parametrize("setting, says", [
    ("zookeeper.set.acl=true", "ZooKeeper client setting"),
    ("ssl.engine.factory.class=com.example.Engine", "TLS"),
])
def test_unimplemented_feature_fails_start(tmp_path, setting, says):
    """Settings of features kafka-core lacks stop the broker: TLS settings must not be taken as
    TLS being on."""
    cmd = [sys.executable, "-m", "kafka_cli", "broker", "--set", f"log.dirs={tmp_path}", "--set", setting]
    res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert res.returncode == 1
    assert setting.split("=")[0] in res.stderr and says in res.stderr and "does not implement" in res.stderr


def test_readme_broker_command_with_the_shipped_config_starts(tmp_path):
    """The README's first "Using it" command, with the config file the repository ships."""
    import socket

    from kafka_bench.apache_kafka import free_port, wait_for_port

    port = free_port()
    cmd = [sys.executable, "-m", "kafka_cli", "broker", "--config", "config/server.properties",
           "--set", f"log.dirs={tmp_path}", "--set", "num.partitions=3",
           "--set", f"listeners=PLAINTEXT://127.0.0.1:{port}"]
    p = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_for_port(port, 30, p)
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
    finally:
        p.terminate()
        _, err = p.communicate(timeout=30)
    assert p.returncode == 0, err[-2000:]


def test_invalid_value_fails_start(tmp_path):
    props = tmp_path / "server.properties"
    props.write_text("# test\nnum.partitions = three\n")
    cmd = [sys.executable, "-m", "kafka_cli", "broker", "--config", str(props), "--set", f"log.dirs={tmp_path}"]
    res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert res.returncode != 0
    assert "num.partitions" in res.stderr


def test_clean_shutdown_skips_recovery_and_crash_recovers_torn_tail(own_broker):
    with RawClient(own_broker.port) as c:
        create_topic(c, "torn")
        for i in range(5):
            assert c.call(produce_req("torn", 0, make_batch([b"t%d" % i])), 9) \
                .responses[0].partition_responses[0].error_code == 0
        before = _read_all(c, "torn")
    own_broker.stop(signal.SIGTERM)
    own_broker.log_path.write_text("")
    own_broker.start()
    with RawClient(own_broker.port) as c:
        assert _read_all(c, "torn") == before
    assert "recovered" not in own_broker.log_text()
    own_broker.stop(signal.SIGKILL)
    # a torn write at the end of the active segment: half a batch of junk
    segs = sorted((own_broker.data_dir / "logs" / "torn-0").glob("*.log"))
    with open(segs[-1], "ab") as f:
        f.write(bytes(make_batch([b"never acknowledged"]))[:40])
    own_broker.start()
    with RawClient(own_broker.port) as c:
        assert _read_all(c, "torn") == before
        pr = c.call(produce_req("torn", 0, make_batch([b"after"])), 9).responses[0].partition_responses[0]
        assert (pr.error_code, pr.base_offset) == (0, 5)
    assert "recovered" in own_broker.log_text()


def test_retention_deletes_old_segments(tmp_path):
    b = KafkaCoreBroker(data_dir=tmp_path, settings={"log.retention.check.interval.ms": "200"})
    b.start()
    try:
        with RawClient(b.port) as c:
            create_topic(c, "ret", configs={"segment.bytes": "2000", "retention.bytes": "3000"})
            for i in range(12):
                c.call(produce_req("ret", 0, make_batch([bytes([65 + i]) * 900])), 9)
            from kafka_protocol.messages import REQUESTS as RQ
            L = RQ[2]
            req = L(replica_id=-1, topics=[L.ListOffsetsTopic(name="ret", partitions=[
                L.ListOffsetsPartition(partition_index=0, timestamp=-2)])])
            deadline = time.monotonic() + 20
            start = 0
            while time.monotonic() < deadline and start == 0:
                start = c.call(req, 7).topics[0].partitions[0].offset
                time.sleep(0.1)
            assert start > 0
            pd = c.call(fetch_req("ret", 0, 0), 12).responses[0].partitions[0]
            assert pd.error_code == 1 and pd.log_start_offset == start and pd.high_watermark == 12
    finally:
        b.cleanup()
