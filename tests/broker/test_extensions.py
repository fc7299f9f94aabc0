"""Which code path ran: the C extensions, or the pure-Python twins under KAFKA_CORE_NO_EXTENSIONS.

The switch is read once by kafka_core; each module with a twin names the path it took
(``server.SEND_PATH``, ``offsets_store.RECORDS_PATH``), and the broker says so in its log. These
tests assert the path of this process and run one broker each way end to end: produce, fetch
(file slices: Transfer or pread), commit, restart, read the commit back (offsets batches: C or
pure Python)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import pytest
from kafka_bench.kafka_core_broker import KafkaCoreBroker

import kafka_core

NO_EXT = "KAFKA_CORE_NO_EXTENSIONS"
WARNING = "file slices are sent by pread + send (the pure-Python path)"


def test_this_process_takes_the_path_the_switch_names():
    from kafka_broker import server
    from kafka_broker.groups import offsets_store

    off = kafka_core.NO_EXTENSIONS
    assert server.SEND_PATH == ("copy" if off else "transfer")
    assert offsets_store.RECORDS_PATH == ("python" if off else "c")
    assert kafka_core.check_build()["extensions"] == (f"off ({NO_EXT})" if off else "on")


@pytest.mark.parametrize("value, expected", [("1", ("copy", "python")), ("0", ("transfer", "c")),
                                             ("", ("transfer", "c")), ("yes", ("copy", "python"))])
def test_switch_values(value, expected):
    code = ("from kafka_broker import server; from kafka_broker.groups import offsets_store; "
            "print(server.SEND_PATH, offsets_store.RECORDS_PATH)")
    env = dict(os.environ, **{NO_EXT: value})
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert tuple(out.stdout.split()) == expected


def test_offsets_batches_agree_across_paths():
    """The C and pure-Python offsets codecs read each other's batches."""
    code = ("import sys; from kafka_broker.groups import offsets_store as o; "
            "b = o.build_batch([(b'k1', b'v1'), (b'k2', None)], 1700000000000); "
            "other = bytes.fromhex(sys.argv[1]) if len(sys.argv) > 1 else b''; "
            "print(bytes(b).hex(), list(o.decode_records(other)) if other else '')")
    runs = {}
    for value in ("0", "1"):
        env = dict(os.environ, **{NO_EXT: value})
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
        runs[value] = out.stdout.split()[0]
    for value, other in (("0", "1"), ("1", "0")):
        env = dict(os.environ, **{NO_EXT: value})
        out = subprocess.run([sys.executable, "-c", code, runs[other]], env=env, capture_output=True,
                             text=True, check=True)
        assert out.stdout.split(" ", 1)[1].strip() == "[(b'k1', b'v1'), (b'k2', None)]"


@pytest.mark.parametrize("no_ext", [False, True], ids=["extensions", "pure-python"])
def test_broker_end_to_end_on_each_path(no_ext, monkeypatch):
    from kafka_client import Consumer, Producer, TopicPartition

    monkeypatch.setenv(NO_EXT, "1" if no_ext else "0")   # the broker subprocess inherits it
    topic, group = f"ext-{uuid.uuid4().hex[:6]}", f"g-{uuid.uuid4().hex[:6]}"
    with KafkaCoreBroker(settings={"num.partitions": "1", "auto.create.topics.enable": "true"}) as b:
        with Producer(b.bootstrap) as p:
            for i in range(50):
                p.produce(topic, f"v{i}".encode())
            p.flush(30)
        tp = TopicPartition(topic, 0)
        with Consumer(bootstrap_servers=b.bootstrap, group_id=group, auto_offset_reset="earliest",
                      enable_auto_commit=False) as c:
            c.assign([tp])
            got: list[bytes] = []
            while len(got) < 50:
                for recs in c.poll(5).values():
                    got += [r.value for r in recs]
            assert got == [f"v{i}".encode() for i in range(50)]
            c.commit({tp: 37})
        b.restart()   # the committed offset comes back from __consumer_offsets through the chosen codec
        with Consumer(bootstrap_servers=b.bootstrap, group_id=group, enable_auto_commit=False) as c:
            assert c.committed(tp) == 37
        assert (WARNING in b.log_text()) is no_ext
