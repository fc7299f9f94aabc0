"""The `interop` marker is true: `pytest -m "not interop"` (the developer's fast loop) runs no test
that needs a third-party client or Apache Kafka, and `-m interop` runs all of them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _collect(*args: str) -> list[str]:
    r = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *args],
                       cwd=ROOT, capture_output=True, text=True)
    assert r.returncode in (0, 5), r.stdout[-3000:] + r.stderr[-3000:]   # 5: nothing collected
    return [line for line in r.stdout.splitlines() if "::" in line]


def test_fast_loop_collects_nothing_from_interop():
    assert _collect("-m", "not interop", "tests/interop") == []
    assert len(_collect("-m", "interop", "tests/interop")) > 50


def test_apache_kafka_half_of_client_tests_is_interop():
    everything = _collect("tests/client")
    apache = {t for t in everything if "[apache" in t}
    fast = _collect("-m", "not interop", "tests/client")
    assert apache and fast and not apache & set(fast)
    assert apache <= set(_collect("-m", "interop", "tests/client"))


def test_cluster_tests_on_apache_kafka_are_interop():
    """tests/cluster: the ZooKeeper tests and the `kafka-core cluster` CLI tests (our own client
    only) are in the fast loop; the Apache Kafka 3.9 ones and the kafka-core cluster tests with
    third-party clients (test_replication.py) are not."""
    everything = set(_collect("tests/cluster"))
    apache = {t for t in everything if "test_apache_zk.py" in t}
    third_party = {t for t in everything if "test_replication.py" in t}
    fast = set(_collect("-m", "not interop", "tests/cluster"))
    assert apache and third_party and fast and not (apache | third_party) & fast
    own = ("test_zookeeper.py", "test_cluster_cli.py")
    assert {t for t in fast if any(f in t for f in own)} == everything - apache - third_party
    assert apache | third_party == set(_collect("-m", "interop", "tests/cluster"))
