"""``python -m kafka_broker [ARGS]`` is ``kafka-core broker [ARGS]``."""

import argparse
import sys

from .run import add_arguments, run_broker

if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="kafka-core broker", description="run a single-node broker")
    add_arguments(parser)
    sys.exit(run_broker(parser.parse_args()))
