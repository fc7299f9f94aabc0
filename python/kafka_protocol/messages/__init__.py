"""Generated message classes (see ``kafka_protocol.generator``)."""

from ._generated import *  # noqa: F403
from ._generated import API_NAMES, MESSAGES, REQUESTS, RESPONSES, __all__  # noqa: F401
