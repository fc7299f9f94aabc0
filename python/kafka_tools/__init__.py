"""kafka-core's operational tools, built on kafka_client (issue 13).

The paper's system serves online *and* offline consumers: the tools here take the log to the
warehouse and between clusters, and count what each stage saw so that a loss shows up.

- ``export``: topics into Parquet / JSON Lines files, Hive-style partitioned, exactly once per
  (partition, offset range) file, as a consumer group.
- ``mirror``: MirrorMaker-style replication of topics from a source to a target cluster, with
  offset-translation checkpoints on the target.
- ``audit``: per-topic, per-time-window counts, produced versus stored, mirrored and exported.

Layering: kafka_tools uses kafka_client and kafka_core only; it never imports kafka_broker,
kafka_bench or kafka_cli (tests/unit/test_layering.py).  The ``kafka-core`` subcommands that
drive these tools live in kafka_cli.
"""
