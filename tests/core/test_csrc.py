"""The C core on its own: -Wall -Wextra clean, and its C unit tests under
AddressSanitizer + UndefinedBehaviorSanitizer (csrc/Makefile)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

CSRC = Path(__file__).resolve().parents[2] / "csrc"

pytestmark = pytest.mark.skipif(shutil.which("make") is None or shutil.which("gcc") is None,
                                reason="make and gcc are needed to build the C core")


def _make(target: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["make", "-s", "-C", str(CSRC), target], capture_output=True, text=True,
                          timeout=600)


def test_csrc_compiles_without_warnings():
    r = _make("warnings")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "warning" not in r.stderr.lower(), r.stderr


def test_csrc_unit_tests_under_asan_ubsan():
    r = _make("test")
    assert r.returncode == 0, (r.stdout + r.stderr)[-6000:]
    assert "failed" in r.stdout and ", 0 failed" in r.stdout, r.stdout[-3000:]
    assert "runtime error" not in r.stderr, r.stderr[-3000:]
