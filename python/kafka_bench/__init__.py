"""System benchmark runner: kafka-core side by side with Apache Kafka, RabbitMQ
and ActiveMQ (``kafka-core bench`` / ``python -m kafka_bench``).  See
benches/PERFORMANCE.md and ``kafka_bench.runner``."""
