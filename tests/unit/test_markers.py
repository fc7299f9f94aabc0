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
    """tests/cluster: the ZooKeeper tests, the `kafka-core cluster` CLI tests (our own client
    only) and the in-process race tests are in the fast loop; everything else there (Apache Kafka 3.9, third-party clients on
    a kafka-core cluster, the fault tests) is interop."""
    everything = set(_collect("tests/cluster"))
    own = ("test_zookeeper.py", "test_cluster_cli.py", "test_controller_races.py", "test_replica_races.py",
           "test_broker_registrations.py")
    fast = set(_collect("-m", "not interop", "tests/cluster"))
    assert fast and {t for t in everything if any(f in t for f in own)} == fast
    assert everything - fast == set(_collect("-m", "interop", "tests/cluster"))
    assert any("test_apache_zk.py" in t for t in everything - fast)
