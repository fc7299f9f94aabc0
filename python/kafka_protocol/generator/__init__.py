"""Code generator for kafka_protocol.messages (run ``python -m kafka_protocol.generator``)."""
