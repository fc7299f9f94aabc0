"""``python -m kafka_cli ARGS`` is ``kafka-core ARGS``."""

import sys

from .main import main

sys.exit(main())
