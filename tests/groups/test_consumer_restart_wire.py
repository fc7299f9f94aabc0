"""A KIP-848 member survives a broker restart (clean and kill -9) over the wire: same member id,
same epoch, same assignment, no rejoin."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

pytest.importorskip("kafka_core._log")

from kafka_bench.kafka_core_broker import KafkaCoreBroker  # noqa: E402
from kafka_protocol.messages import REQUESTS  # noqa: E402

from tests.broker.conftest import RawClient, create_topic  # noqa: E402
from tests.broker.restarts import RESTARTS, restart  # noqa: E402

CGHeartbeat, CGDescribe = REQUESTS[68], REQUESTS[69]
NONE = 0


def heartbeat(c: RawClient, group: str, member: str, epoch: int, topics: list[str] | None = None,
              owned: dict[uuid.UUID, list[int]] | None = None, rebalance_ms: int = -1) -> Any:
    TP = CGHeartbeat.TopicPartitions
    return c.call(CGHeartbeat(
        group_id=group, member_id=member, member_epoch=epoch, instance_id=None, rack_id=None,
        rebalance_timeout_ms=30000 if epoch == 0 else rebalance_ms, subscribed_topic_names=topics,
        subscribed_topic_regex=None, server_assignor=None,
        topic_partitions=None if owned is None else [TP(topic_id=t, partitions=ps) for t, ps in owned.items()]), 1)


@pytest.mark.parametrize("how", RESTARTS)
def test_consumer_group_member_survives_broker_restart(tmp_path, how):
    b = KafkaCoreBroker(data_dir=tmp_path, settings={"offsets.topic.num.partitions": "3"})
    b.start()
    try:
        g, member = f"cg-{uuid.uuid4().hex[:8]}", str(uuid.uuid4())
        with RawClient(b.port) as cl:
            t = f"r-{uuid.uuid4().hex[:6]}"
            create_topic(cl, t, 4)
            r = heartbeat(cl, g, member, 0, [t], {})
            assert r.error_code == NONE and r.member_epoch >= 1
            epoch = r.member_epoch
            assigned = {tp.topic_id: sorted(tp.partitions) for tp in r.assignment.topic_partitions}
            assert sum(len(ps) for ps in assigned.values()) == 4
        restart(b, how)
        with RawClient(b.port) as cl:
            r = heartbeat(cl, g, member, epoch)
            assert r.error_code == NONE, r
            assert r.member_epoch == epoch
            # the full heartbeat a reconnecting client sends: the same assignment back
            r = heartbeat(cl, g, member, epoch, [t], assigned, 30000)
            assert r.error_code == NONE and r.member_epoch == epoch
            assert {tp.topic_id: sorted(tp.partitions) for tp in r.assignment.topic_partitions} == assigned
            d = cl.call(CGDescribe(group_ids=[g], include_authorized_operations=False), 0).groups[0]
            assert d.error_code == NONE and d.group_epoch == epoch and d.group_state == "Stable"
            assert [m.member_id for m in d.members] == [member]
    finally:
        b.cleanup()
