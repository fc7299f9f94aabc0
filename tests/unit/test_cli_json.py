"""issue 15: every ``kafka-core`` subcommand takes ``--json`` (or ``--format json``), so that its
machine output can go alone to stdout.  The tests that run each command with it, and parse what
it prints, are in tests/broker/test_cli_shell.py, test_cli_*.py and tests/cluster/test_cluster_cli.py."""

from __future__ import annotations

import argparse
from collections.abc import Iterator

from kafka_cli.main import build_parser


def _leaves(p: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    subs = [a for a in p._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield " ".join(path), p
    for a in subs:
        for name, sp in a.choices.items():
            yield from _leaves(sp, (*path, name))


def _takes_json(p: argparse.ArgumentParser) -> bool:
    for a in p._actions:
        if "--json" in a.option_strings:
            return True
        if "--format" in a.option_strings and a.choices is not None and "json" in a.choices:
            return True
    return False


def test_every_subcommand_takes_json() -> None:
    leaves = dict(_leaves(build_parser()))
    assert len(leaves) > 15 and "cluster up" in leaves and "broker" in leaves
    # `bench` passes its arguments through to kafka_bench.runner's own parser
    from kafka_bench.runner import parse

    assert parse(["--json"]).json
    leaves.pop("bench")
    assert [name for name, p in leaves.items() if not _takes_json(p)] == []
