"""The one error type of the ``kafka-core`` subcommands."""

from __future__ import annotations


class CliError(Exception):
    """A user-facing failure: printed as one line on stderr, exit status ``code``
    (1: a broker, group, topic or record failed; 2: bad arguments)."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code
