"""Coverage-guided fuzzing of the wire layer (issue 16): kafka_protocol's framing, request and
response headers and every generated codec, with atheris (libFuzzer for Python).

    python benches/fuzz/fuzz_protocol.py --seed DIR          # valid requests/responses of every api and version
    python benches/fuzz/fuzz_protocol.py -runs=1000000 -max_len=4096 DIR tests/fuzz/corpus/protocol

One input is: api key (int16), version (int16), then either a whole request frame (header + body)
or a response body, split into the pieces the broker's FrameReader would receive.  What must hold:

- framing and decoding raise only ``kafka_protocol.errors.ProtocolError`` subclasses on any input
  (DecodeError, UnsupportedVersionError, FrameTooLargeError) — never another exception, never a
  hang, never an allocation the input's length does not pay for;
- whatever decodes re-encodes, and that encoding decodes and encodes to the same bytes (the
  decoder and encoder agree; unknown tagged fields are kept, in ascending order).

Inputs that broke one of these are kept in ``tests/fuzz/corpus/protocol`` (``crash-*`` files
libFuzzer writes are moved there by hand) and replayed by ``tests/fuzz/test_fuzz_replay.py``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import atheris

sys.path[:0] = [str(Path(__file__).resolve().parents[2] / "python")]

with atheris.instrument_imports():
    from kafka_protocol.testing import check_fuzz_input


def test_one_input(data: bytes) -> None:
    check_fuzz_input(data)


def seed(out: Path) -> int:
    """Valid inputs to start from: a random request frame and response body of every api and version."""
    import random
    import struct

    from kafka_protocol import encode_request
    from kafka_protocol.messages import REQUESTS, RESPONSES
    from kafka_protocol.testing import random_message

    rng = random.Random(1)
    out.mkdir(parents=True, exist_ok=True)
    n = 0
    for key, cls in sorted(REQUESTS.items()):
        for v in range(cls.MIN_VERSION, cls.MAX_VERSION + 1):
            frame = encode_request(key, v, 7, "fuzz", random_message(cls, v, rng))[4:]
            (out / f"req-{key}-{v}").write_bytes(struct.pack(">hhB", key, v, 2 * rng.randrange(64)) + frame)
            rcls = RESPONSES[key]
            (out / f"resp-{key}-{v}").write_bytes(struct.pack(">hhB", key, v, 1)
                                                  + random_message(rcls, v, rng).encode(v))
            n += 2
    return n


def main() -> None:
    if sys.argv[1:2] == ["--seed"]:
        print(f"{seed(Path(sys.argv[2]))} seed inputs in {sys.argv[2]}")
        return
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
