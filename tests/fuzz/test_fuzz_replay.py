"""Replay the kc_batch fuzz corpus (plus mutations and random inputs) under
ASan+UBSan via `make -C csrc fuzz-replay FUZZ=batch`; gcc alone suffices."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CSRC = ROOT / "csrc"


@pytest.mark.skipif(shutil.which("make") is None or shutil.which("gcc") is None,
                    reason="needs make and gcc")
def test_fuzz_batch_corpus_replays_clean() -> None:
    corpus = CSRC / "fuzz" / "corpus" / "batch"
    assert any(corpus.iterdir()), "seed corpus missing"
    proc = subprocess.run(["make", "-s", "-C", str(CSRC), "fuzz-replay", "FUZZ=batch"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "replayed" in proc.stdout and "ERROR" not in proc.stderr
