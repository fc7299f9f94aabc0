"""Admin APIs: topics, partitions, configs, DeleteRecords, log dirs, cluster."""

from __future__ import annotations

import uuid

from kafka_protocol.messages import REQUESTS

from .conftest import create_topic, fetch_req, make_batch, produce_req

CreateTopics = REQUESTS[19]
DeleteTopics = REQUESTS[20]
DeleteRecords = REQUESTS[21]
DescribeConfigs = REQUESTS[32]
AlterConfigs = REQUESTS[33]
DescribeLogDirs = REQUESTS[35]
CreatePartitions = REQUESTS[37]
IncrementalAlterConfigs = REQUESTS[44]
DescribeCluster = REQUESTS[60]
Metadata = REQUESTS[3]


def _name(prefix: str = "adm") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _create(client, topics, version=7, validate_only=False):
    return client.call(CreateTopics(topics=topics, timeout_ms=10000, validate_only=validate_only), version).topics


def test_create_topics_errors(client, topic):
    T = CreateTopics.CreatableTopic
    fresh = _name()
    res = _create(client, [
        T(name=topic, num_partitions=1, replication_factor=1),
        T(name="bad name", num_partitions=1, replication_factor=1),
        T(name=_name(), num_partitions=0, replication_factor=1),
        T(name=_name(), num_partitions=1, replication_factor=3),
        T(name=_name(), num_partitions=1, replication_factor=1,
          configs=[CreateTopics.CreatableTopicConfig(name="retention.mss", value="1")]),
        T(name=_name(), num_partitions=1, replication_factor=1,
          configs=[CreateTopics.CreatableTopicConfig(name="retention.ms", value="soon")]),
        T(name=fresh, num_partitions=-1, replication_factor=-1),
    ])
    assert [r.error_code for r in res] == [36, 17, 37, 38, 40, 40, 0]
    assert "already exists" in res[0].error_message
    assert res[6].num_partitions == 1 and res[6].replication_factor == 1 and res[6].topic_id.int != 0
    cfg = {c.name: c for c in res[6].configs}
    assert cfg["retention.ms"].value == "604800000" and cfg["retention.ms"].config_source == 5


def test_create_topics_validate_only_and_versions(client):
    name = _name()
    T = CreateTopics.CreatableTopic
    res = _create(client, [T(name=name, num_partitions=3, replication_factor=1)], validate_only=True)
    assert res[0].error_code == 0 and res[0].num_partitions == 3
    md = client.call(Metadata(topics=[Metadata.MetadataRequestTopic(name=name)], allow_auto_topic_creation=False), 12)
    assert md.topics[0].error_code == 3
    for v in (2, 4, 5):
        n = _name()
        assert _create(client, [T(name=n, num_partitions=2, replication_factor=1)], version=v)[0].error_code == 0
        md = client.call(Metadata(topics=[Metadata.MetadataRequestTopic(name=n)]), 12)
        assert len(md.topics[0].partitions) == 2


def test_delete_topics_by_name_and_id(client):
    a, b = _name(), _name()
    create_topic(client, a)
    tid = create_topic(client, b, 2).topic_id
    client.call(produce_req(a, 0, make_batch([b"x"])), 9)
    res = client.call(DeleteTopics(topic_names=[a, "no-such-topic-q"], timeout_ms=5000), 5).responses
    assert [(r.name, r.error_code) for r in res] == [(a, 0), ("no-such-topic-q", 3)]
    res = client.call(DeleteTopics(topics=[DeleteTopics.DeleteTopicState(name=None, topic_id=tid),
                                           DeleteTopics.DeleteTopicState(name=None, topic_id=uuid.uuid4())],
                                   timeout_ms=5000), 6).responses
    assert (res[0].name, res[0].error_code) == (b, 0)
    assert res[1].error_code == 100
    md = client.call(Metadata(topics=[Metadata.MetadataRequestTopic(name=a), Metadata.MetadataRequestTopic(name=b)],
                              allow_auto_topic_creation=False), 12)
    assert [t.error_code for t in md.topics] == [3, 3]
    # the name can be reused right away, starting empty
    create_topic(client, a)
    pd = client.call(fetch_req(a, 0, 0), 12).responses[0].partitions[0]
    assert pd.error_code == 0 and pd.high_watermark == 0


def test_create_partitions(client, topic):
    P = CreatePartitions.CreatePartitionsTopic
    res = client.call(CreatePartitions(topics=[P(name=topic, count=3, assignments=None)], timeout_ms=5000,
                                       validate_only=False), 3).results
    assert res[0].error_code == 0
    md = client.call(Metadata(topics=[Metadata.MetadataRequestTopic(name=topic)]), 12)
    assert [p.partition_index for p in md.topics[0].partitions] == [0, 1, 2]
    assert client.call(produce_req(topic, 2, make_batch([b"p2"])), 9).responses[0] \
        .partition_responses[0].error_code == 0
    res = client.call(CreatePartitions(topics=[P(name=topic, count=2, assignments=None),
                                               P(name="nope-zz", count=2, assignments=None)],
                                       timeout_ms=5000, validate_only=False), 3).results
    assert [r.error_code for r in res] == [37, 3]


def _describe_topic(client, topic, keys=None, synonyms=True, version=4):
    R = DescribeConfigs.DescribeConfigsResource
    resp = client.call(DescribeConfigs(resources=[R(resource_type=2, resource_name=topic, configuration_keys=keys)],
                                       include_synonyms=synonyms), version)
    return resp.results[0]


def test_describe_configs_topic_and_broker(client, topic):
    r = _describe_topic(client, topic)
    assert r.error_code == 0
    cfg = {c.name: c for c in r.configs}
    assert cfg["cleanup.policy"].value == "delete" and cfg["cleanup.policy"].config_source == 5
    assert cfg["max.message.bytes"].value == "1048588"
    syn = [(s.name, s.value, s.source) for s in cfg["retention.ms"].synonyms]
    assert syn == [("log.retention.hours", "168", 5)]
    only = _describe_topic(client, topic, keys=["segment.bytes"], version=1)
    assert [c.name for c in only.configs] == ["segment.bytes"]
    missing = _describe_topic(client, "no-such-topic-r")
    assert missing.error_code == 3
    R = DescribeConfigs.DescribeConfigsResource
    br = client.call(DescribeConfigs(resources=[R(resource_type=4, resource_name="0", configuration_keys=None)],
                                     include_synonyms=True), 4).results[0]
    bcfg = {c.name: c for c in br.configs}
    assert br.error_code == 0
    assert bcfg["num.partitions"].value == "1" and bcfg["num.partitions"].config_source == 4
    assert bcfg["message.max.bytes"].value == "1048588" and bcfg["message.max.bytes"].config_source == 5
    other = client.call(DescribeConfigs(resources=[R(resource_type=4, resource_name="7", configuration_keys=None)]),
                        4).results[0]
    assert other.error_code == 42


def test_incremental_alter_configs(client, topic):
    A = IncrementalAlterConfigs.AlterConfigsResource
    C = IncrementalAlterConfigs.AlterableConfig
    res = client.call(IncrementalAlterConfigs(resources=[A(resource_type=2, resource_name=topic, configs=[
        C(name="retention.ms", config_operation=0, value="60000"),
        C(name="cleanup.policy", config_operation=2, value="compact"),
    ])], validate_only=False), 1).responses
    assert res[0].error_code == 0, res
    cfg = {c.name: c for c in _describe_topic(client, topic).configs}
    assert cfg["retention.ms"].value == "60000" and cfg["retention.ms"].config_source == 1
    assert [s.source for s in cfg["retention.ms"].synonyms][0] == 1
    assert cfg["cleanup.policy"].value == "delete,compact"
    # delete goes back to the default
    res = client.call(IncrementalAlterConfigs(resources=[A(resource_type=2, resource_name=topic, configs=[
        C(name="retention.ms", config_operation=1, value=None)])], validate_only=False), 0).responses
    assert res[0].error_code == 0
    cfg = {c.name: c for c in _describe_topic(client, topic).configs}
    assert cfg["retention.ms"].value == "604800000" and cfg["retention.ms"].config_source == 5
    # errors: unknown key, bad value, append to a non-list, unknown topic
    bad = client.call(IncrementalAlterConfigs(resources=[
        A(resource_type=2, resource_name=topic, configs=[C(name="nope.ms", config_operation=0, value="1")]),
        A(resource_type=2, resource_name=topic, configs=[C(name="segment.bytes", config_operation=0, value="x")]),
        A(resource_type=2, resource_name=topic, configs=[C(name="retention.ms", config_operation=2, value="1")]),
        A(resource_type=2, resource_name="zz-unknown", configs=[C(name="retention.ms", config_operation=0,
                                                                  value="1")]),
    ], validate_only=False), 1).responses
    assert [r.error_code for r in bad] == [40, 40, 40, 3]


def test_alter_configs_replaces_all(client, topic):
    A = AlterConfigs.AlterConfigsResource
    C = AlterConfigs.AlterableConfig
    res = client.call(AlterConfigs(resources=[A(resource_type=2, resource_name=topic, configs=[
        C(name="retention.bytes", value="1000000"), C(name="max.message.bytes", value="2000")])],
        validate_only=False), 1).responses
    assert res[0].error_code == 0
    cfg = {c.name: c.value for c in _describe_topic(client, topic).configs}
    assert cfg["retention.bytes"] == "1000000" and cfg["max.message.bytes"] == "2000"
    # the new max.message.bytes applies at once
    pr = client.call(produce_req(topic, 0, make_batch([b"y" * 3000])), 9).responses[0].partition_responses[0]
    assert pr.error_code == 10
    res = client.call(AlterConfigs(resources=[A(resource_type=2, resource_name=topic, configs=[
        C(name="retention.bytes", value="5")])], validate_only=False), 2).responses
    cfg = {c.name: c.value for c in _describe_topic(client, topic).configs}
    assert cfg["retention.bytes"] == "5" and cfg["max.message.bytes"] == "1048588"


def test_delete_records(client, topic):
    for i in range(3):
        client.call(produce_req(topic, 0, make_batch([b"r%d" % i])), 9)
    D = DeleteRecords
    res = client.call(D(topics=[D.DeleteRecordsTopic(name=topic, partitions=[
        D.DeleteRecordsPartition(partition_index=0, offset=2)])], timeout_ms=5000), 2).topics[0].partitions[0]
    assert (res.error_code, res.low_watermark) == (0, 2)
    pd = client.call(fetch_req(topic, 0, 0), 12).responses[0].partitions[0]
    assert pd.error_code == 1 and pd.log_start_offset == 2
    res = client.call(D(topics=[D.DeleteRecordsTopic(name=topic, partitions=[
        D.DeleteRecordsPartition(partition_index=0, offset=99)])], timeout_ms=5000), 2).topics[0].partitions[0]
    assert res.error_code == 1


def test_a_topic_with_a_249_character_name_is_deleted_from_disk(broker, client):
    """issue 16: the rename to ``<topic>-<partition>.<uuid>-delete`` failed with ENAMETOOLONG and the
    data stayed for ever although DeleteTopics reported success; the name is cut as Kafka does."""
    import time

    name = "L" * 240 + uuid.uuid4().hex[:9]
    assert len(name) == 249
    create_topic(client, name, partitions=2)
    client.call(produce_req(name, 1, make_batch([b"x"])), 9)
    logs = broker.data_dir / "logs"
    assert (logs / f"{name}-1").is_dir()
    res = client.call(DeleteTopics(topic_names=[name], timeout_ms=5000), 5).responses
    assert res[0].error_code == 0
    deadline = time.monotonic() + 10
    while any(e.name.startswith("L" * 200) for e in logs.iterdir()):
        assert time.monotonic() < deadline, sorted(e.name[-60:] for e in logs.iterdir())
        time.sleep(0.05)
    assert "ENAMETOOLONG" not in broker.log_text() and "File name too long" not in broker.log_text()


def test_delete_records_of_an_internal_topic_is_refused(client):
    """issue 16: DeleteRecords on __consumer_offsets dropped every group's committed offsets after a
    restart; Kafka refuses it (InvalidTopicException), and so do we."""
    import time

    Metadata = REQUESTS[3]
    deadline = time.monotonic() + 20
    while True:     # a metadata request naming __consumer_offsets creates it, as Kafka does
        md = client.call(Metadata(topics=[Metadata.MetadataRequestTopic(name="__consumer_offsets")],
                                  allow_auto_topic_creation=True), 9)
        if md.topics[0].error_code == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert md.topics[0].error_code == 0 and md.topics[0].is_internal
    D = DeleteRecords
    res = client.call(D(topics=[D.DeleteRecordsTopic(name="__consumer_offsets", partitions=[
        D.DeleteRecordsPartition(partition_index=0, offset=-1)])], timeout_ms=5000), 2).topics[0].partitions[0]
    assert res.error_code == 17      # INVALID_TOPIC_EXCEPTION


def test_describe_log_dirs_and_cluster(client, topic):
    client.call(produce_req(topic, 0, make_batch([b"abc"])), 9)
    resp = client.call(DescribeLogDirs(topics=None), 4)
    assert resp.error_code == 0 and len(resp.results) == 1
    topics = {t.name: t for t in resp.results[0].topics}
    assert topics[topic].partitions[0].partition_size > 0
    assert resp.results[0].total_bytes > 0
    dc = client.call(DescribeCluster(include_cluster_authorized_operations=False), 1)
    assert dc.error_code == 0 and dc.brokers[0].broker_id == 0 and dc.controller_id == 0 and dc.cluster_id
    ctl = client.call(DescribeCluster(include_cluster_authorized_operations=False, endpoint_type=2), 1)
    assert ctl.error_code != 0


def test_topic_name_collision(client):
    base = uuid.uuid4().hex[:8]
    create_topic(client, f"dot.{base}")
    res = _create(client, [CreateTopics.CreatableTopic(name=f"dot_{base}", num_partitions=1, replication_factor=1)])
    assert res[0].error_code == 17 and "collides" in res[0].error_message
