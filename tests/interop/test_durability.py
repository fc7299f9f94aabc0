"""Restart and crash recovery: topics survive a clean restart; after
kill -9, every record acknowledged with acks=all under
log.flush.interval.messages=1 is served again."""

from __future__ import annotations

import random
import signal

from confluent_kafka import Producer
from kafka_bench.kafka_core_broker import KafkaCoreBroker

from .conftest import create_topic
from .test_confluent import consume_n


def test_clean_restart_keeps_topics_and_data(tmp_path):
    b = KafkaCoreBroker(data_dir=tmp_path, settings={"num.partitions": "2"})
    b.start()
    try:
        create_topic(b.bootstrap, "keep", 2, {"retention.ms": "123456789"})
        p = Producer({"bootstrap.servers": b.bootstrap})
        for i in range(100):
            p.produce("keep", value=b"%d" % i, partition=i % 2)
        assert p.flush(20) == 0
        b.restart(signal.SIGTERM)
        from confluent_kafka.admin import AdminClient, ConfigResource

        admin = AdminClient({"bootstrap.servers": b.bootstrap})
        md = admin.list_topics(timeout=10)
        assert len(md.topics["keep"].partitions) == 2
        res = ConfigResource(ConfigResource.Type.TOPIC, "keep")
        assert admin.describe_configs([res])[res].result(10)["retention.ms"].value == "123456789"
        vals = [m.value() for m in consume_n(b.bootstrap, "keep", 50, partition=1)]
        assert vals == [b"%d" % i for i in range(1, 100, 2)]
        assert "clean" in b.log_text().lower()
    finally:
        b.cleanup()


def test_kill_9_loses_nothing_acknowledged(tmp_path):
    rnd = random.Random(5)
    b = KafkaCoreBroker(data_dir=tmp_path, settings={"log.flush.interval.messages": "1",
                                                     "log.segment.bytes": "65536"})
    b.start()
    try:
        create_topic(b.bootstrap, "crash", 1)
        acked: list[bytes] = []
        for _round in range(3):
            p = Producer({"bootstrap.servers": b.bootstrap, "acks": "all", "linger.ms": 0,
                          "message.timeout.ms": 5000})

            def cb(err, msg):
                if err is None:
                    acked.append(msg.value())

            for i in range(rnd.randint(200, 600)):
                p.produce("crash", value=b"r%d-%d-" % (_round, i) + b"x" * rnd.randint(0, 300),
                          partition=0, on_delivery=cb)
                if i % 50 == 0:
                    p.poll(0)
            p.flush(20)
            b.kill()           # SIGKILL: no clean shutdown
            b.start()
        got = [m.value() for m in consume_n(b.bootstrap, "crash", len(acked), timeout=60)]
        assert got[: len(acked)] == acked
    finally:
        b.cleanup()
