"""The packages type-check with mypy (configuration: pyproject.toml [tool.mypy]).

mypy is installed by ./dev test ([test] extras): a missing mypy is a failure, not a skip."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ["kafka_protocol", "kafka_core", "kafka_broker", "kafka_client", "kafka_bench", "kafka_cli"]


def test_mypy_clean():
    args = [sys.executable, "-m", "mypy", "--no-error-summary"]
    for p in PACKAGES:
        args += ["-p", p]
    r = subprocess.run(args, cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, (r.stdout + r.stderr)[-6000:]


def test_an_application_type_checks_strictly_against_kafka_client():
    """kafka_client ships py.typed; an application using its public API passes ``mypy --strict``
    (tests/unit/typed/app.py, also run against a broker in tests/broker/test_typed_app.py)."""
    app = ROOT / "tests" / "unit" / "typed" / "app.py"
    assert (ROOT / "python" / "kafka_client" / "py.typed").exists()
    r = subprocess.run([sys.executable, "-m", "mypy", "--strict", "--follow-imports=silent", "--no-error-summary",
                        str(app)], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, (r.stdout + r.stderr)[-4000:]
