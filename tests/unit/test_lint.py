"""ruff-clean Python (pyproject.toml [tool.ruff])."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(shutil.which("ruff") is None, reason="ruff is installed by ./dev test")
def test_ruff_clean():
    r = subprocess.run(["ruff", "check", "python", "src", "tests", "benches"], cwd=ROOT,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout[-5000:]
