"""Writes ``txnindex_v0.tar.gz``: a broker's data directory as kafka-core wrote it before
per-segment ``.txnindex`` files (one ``kc-aborted.txnindex`` per partition, commit 53290f8).

Run with that tree first on the path, e.g.::

    git archive 53290f8 python src csrc setup.py pyproject.toml | tar -x -C /tmp/legacy-kc
    (cd /tmp/legacy-kc && python3 setup.py build_ext --inplace -q)
    PYTHONPATH=/tmp/legacy-kc/python:/tmp/legacy-kc/src:. python3 tests/broker/data/make_txnindex_v0.py

Topic ``legacy-txn`` (1 partition, 600-byte segments): offsets 0-2 producer A's transaction
(committed at 3), 4-5 producer B's (aborted at 6), plain records to roll segments, then
producer B's second transaction (aborted) in a later segment.  The layout is what
test_txn_compaction.py::test_a_data_dir_with_a_per_partition_index_is_migrated expects.
"""

from __future__ import annotations

import json
import shutil
import tarfile
import tempfile
from pathlib import Path

from kafka_broker.testing import EmbeddedBroker

from tests.broker.conftest import RawClient, create_topic, make_batch, produce_req
from tests.broker.test_txn_log import marker, pid_of, produce, txn_batch

OUT = Path(__file__).with_name("txnindex_v0.tar.gz")


def main() -> None:
    d = Path(tempfile.mkdtemp(prefix="txnindex-v0-"))
    b = EmbeddedBroker(data_dir=d).start()
    try:
        with RawClient(b.port) as c:
            create_topic(c, "legacy-txn", 1, {"segment.bytes": "600"})
            a, pb = pid_of(c), pid_of(c)
            assert produce(c, "legacy-txn", txn_batch([b"a0", b"a1", b"a2"], a)) == 0      # 0-2
            assert marker(c, "legacy-txn", a, True) == [0]                                  # 3
            assert produce(c, "legacy-txn", txn_batch([b"b0", b"b1"], pb)) == 0             # 4-5
            assert marker(c, "legacy-txn", pb, False) == [0]                                # 6
            for i in range(8):                                                              # 7-14
                r = c.call(produce_req("legacy-txn", 0, make_batch([b"p%d" % i + b"x" * 100])), 9)
                assert r.responses[0].partition_responses[0].error_code == 0
            assert produce(c, "legacy-txn", txn_batch([b"b2", b"b3", b"b4"], pb, seq=2)) == 0  # 15-17
            assert marker(c, "legacy-txn", pb, False) == [0]                                # 18
            meta = {"a": a, "b": pb}
    finally:
        b.stop()
    (d / "logs" / "fixture.json").write_text(json.dumps(meta))
    with tarfile.open(OUT, "w:gz") as t:
        t.add(d / "logs", arcname="logs")
    shutil.rmtree(d)
    print(OUT, OUT.stat().st_size, "bytes")


if __name__ == "__main__":
    main()
