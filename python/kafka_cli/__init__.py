"""kafka_cli: the ``kafka-core`` command (``kafka_cli.main:main``, ``python -m kafka_cli``).

Subcommands, one module each: ``broker`` (runs kafka_broker), ``group`` (consumer
groups, over kafka_client), ``topic``/``produce``/``consume``/``perf`` (client tools,
``client``) and ``bench`` (kafka_bench).  kafka_cli imports the other packages;
none of them imports kafka_cli.
"""

from __future__ import annotations

from .errors import CliError

__all__ = ["CliError"]
