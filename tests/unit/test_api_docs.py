"""kafka_client's API documentation builds from its docstrings (``./dev docs``, pdoc; issue 15)
and shows the public classes with their methods and typed settings."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_api_docs_build(tmp_path: Path) -> None:
    r = subprocess.run([sys.executable, "-m", "pdoc", "kafka_client", "kafka_broker.testing", "-o", str(tmp_path)],
                       cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    page = (tmp_path / "kafka_client.html").read_text()
    for name in ("Producer", "AIOProducer", "Consumer", "AIOConsumer", "AdminClient", "ConsumerRecord",
                 "ProducerSettings", "TopicPartition"):
        assert f'id="{name}"' in page, name
    for method in ("Producer.send", "AIOConsumer.getone", "AIOConsumer.commit", "AdminClient.create_topics"):
        assert f'id="{method}"' in page, method
    assert "linger_ms" in page and "max_poll_records" in page      # the typed settings
    assert "kafka_core_broker" in (tmp_path / "kafka_broker" / "testing.html").read_text()


def test_every_public_method_has_a_docstring() -> None:
    import kafka_client as k

    missing = []
    for cls in (k.Producer, k.AIOProducer, k.Consumer, k.AIOConsumer, k.AdminClient, k.AIOAdminClient):
        if not (cls.__doc__ or "").strip():
            missing.append(cls.__name__)
        missing += [f"{cls.__name__}.{n}" for n, f in vars(cls).items()
                    if callable(f) and not n.startswith("_") and not (f.__doc__ or "").strip()]
    assert not missing, missing
