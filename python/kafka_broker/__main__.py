"""``python -m kafka_broker [ARGS]`` is ``kafka-core broker [ARGS]``."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main(["broker", *sys.argv[1:]]))
