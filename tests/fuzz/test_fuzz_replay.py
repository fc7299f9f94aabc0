"""Replay the fuzz corpora in the suite: the C targets (kc_batch scanning and decoding, log
recovery and reads) under ASan+UBSan via ``make -C csrc fuzz-replay FUZZ=<target>`` (gcc alone
suffices), and the wire layer's property (kafka_protocol.testing.check_fuzz_input) over
tests/fuzz/corpus/protocol.  The coverage-guided runs these corpora come from are
``make -C csrc fuzz-run`` (clang's libFuzzer) and ``benches/fuzz/fuzz_protocol.py`` (atheris):
see benches/fuzz/README.md."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CSRC = ROOT / "csrc"


@pytest.mark.skipif(shutil.which("make") is None or shutil.which("gcc") is None,
                    reason="needs make and gcc")
@pytest.mark.parametrize("target", ["batch", "log"])
def test_fuzz_corpus_replays_clean(target: str) -> None:
    """csrc/fuzz/fuzz_<target>.c over its corpus (seeds and every crash a libFuzzer run found,
    ``make -C csrc fuzz-run FUZZ=<target>``), plus mutations and random inputs."""
    corpus = CSRC / "fuzz" / "corpus" / target
    assert any(corpus.iterdir()), "seed corpus missing"
    proc = subprocess.run(["make", "-s", "-C", str(CSRC), "fuzz-replay", f"FUZZ={target}"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "replayed" in proc.stdout and "ERROR" not in proc.stderr


PROTOCOL_CORPUS = Path(__file__).resolve().parent / "corpus" / "protocol"


def test_protocol_corpus_replays_clean() -> None:
    """The wire layer's fuzz property (kafka_protocol.testing.check_fuzz_input; the coverage-guided
    run is benches/fuzz/fuzz_protocol.py) over the inputs that once broke it, a valid request frame
    and response body of every api and version, and single-byte mutations of those."""
    import random
    import struct

    from kafka_protocol import encode_request
    from kafka_protocol.messages import REQUESTS, RESPONSES
    from kafka_protocol.testing import check_fuzz_input, random_message

    kept = sorted(PROTOCOL_CORPUS.iterdir())
    assert kept, "the protocol corpus is missing"
    for f in kept:
        check_fuzz_input(f.read_bytes())
    rng = random.Random(7)
    n = 0
    for key, cls in sorted(REQUESTS.items()):
        for v in range(cls.MIN_VERSION, cls.MAX_VERSION + 1):
            frame = encode_request(key, v, 7, "fuzz", random_message(cls, v, rng))[4:]
            resp = random_message(RESPONSES[key], v, rng).encode(v)
            for data in (struct.pack(">hhB", key, v, 2 * rng.randrange(64)) + frame,
                         struct.pack(">hhB", key, v, 1) + resp):
                check_fuzz_input(data)
                for _ in range(3):
                    b = bytearray(data)
                    if len(b) > 5:
                        b[rng.randrange(5, len(b))] = rng.randrange(256)
                    check_fuzz_input(bytes(b))
                n += 4
    assert n > 1000


def test_broker_survives_mutated_frames(tmp_path: Path) -> None:
    """A short round of benches/fuzz/fuzz_broker.py: 3,000 mutated request frames of every api
    over 20 connections; after each 1,000 a fresh client's produce/consume round trip; the
    broker alive at the end, within a memory bound (an allocation driven by a lying count or
    size would blow it), with no traceback in its log."""
    import sys

    sys.path.insert(0, str(ROOT / "benches" / "fuzz"))
    import fuzz_broker
    from kafka_bench.kafka_core_broker import KafkaCoreBroker

    with KafkaCoreBroker(data_dir=tmp_path, settings={"auto.create.topics.enable": "true"}) as b:
        assert b.proc is not None
        out = fuzz_broker.run(b.bootstrap, b.port, 3000, 20, 1000, seed=3, pid=b.proc.pid)
        assert b.proc.poll() is None, b.log_text()[-3000:]
        assert "Traceback" not in b.log_text(), b.log_text()[-3000:]
    print(out)
    assert out["frames"] == 3000 and out["checks"] == 3
    # Idle, the broker is ~45-55 MiB.  It stayed at ~180 MiB when start-up's freed heap (the
    # compile of kafka_protocol's generated module without a .pyc) was not given back
    # (kafka_broker/run.py release_freed_memory), which was the whole "fuzz RSS spike" (issue 16:
    # frames replayed one at a time, none moved RSS by 3 MiB).
    assert out["peak_rss_mib"] is not None and out["peak_rss_mib"] < 100, out
