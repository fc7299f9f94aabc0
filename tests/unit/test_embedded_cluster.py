"""EmbeddedCluster's refusals, without starting anything: no ZooKeeper known, no brokers."""

from __future__ import annotations

import pytest
from kafka_broker.testing import EmbeddedCluster
from kafka_broker.testing.cluster import CLASSPATH_ENV, ZOOKEEPER_ENV


def test_without_zookeeper_it_says_where_to_give_one(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.delenv(ZOOKEEPER_ENV, raising=False)
    monkeypatch.delenv(CLASSPATH_ENV, raising=False)
    with pytest.raises(RuntimeError) as e:
        EmbeddedCluster(3, data_dir=tmp_path)
    assert ZOOKEEPER_ENV in str(e.value) and CLASSPATH_ENV in str(e.value)


def test_a_cluster_has_brokers(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError):
        EmbeddedCluster(0, "127.0.0.1:2181", data_dir=tmp_path)


def test_settings_suit_the_size(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv(ZOOKEEPER_ENV, "127.0.0.1:2181/apps")
    c = EmbeddedCluster(2, data_dir=tmp_path, settings={"num.partitions": "4"})
    assert c.zk_connect.startswith("127.0.0.1:2181/apps/kafka-core-")
    assert EmbeddedCluster(2, data_dir=tmp_path).zk_connect != c.zk_connect     # a chroot per cluster
    for i, b in c.brokers.items():
        assert b.settings["broker.id"] == str(i) and b.settings["zookeeper.connect"] == c.zk_connect
        assert b.settings["offsets.topic.replication.factor"] == "2"
        assert b.settings["transaction.state.log.min.isr"] == "2" and b.settings["num.partitions"] == "4"
    assert len({b.port for b in c.brokers.values()}) == 2
