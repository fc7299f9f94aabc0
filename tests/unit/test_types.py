"""The packages type-check with mypy (configuration: pyproject.toml [tool.mypy]).

mypy is installed by ./dev test ([test] extras): a missing mypy is a failure, not a skip."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ["kafka_protocol", "kafka_core", "kafka_broker", "kafka_client", "kafka_bench", "kafka_cli", "kafka_tools"]


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


def test_a_mistyped_setting_is_a_type_error(tmp_path: Path) -> None:
    """The sync clients' ``**settings`` are typed (``Unpack[ProducerSettings]`` and co.): mypy
    catches a misspelt or mistyped setting before the code runs (at run time it is a ValueError)."""
    bad = tmp_path / "bad_app.py"
    bad.write_text("from kafka_client import AdminClient, Consumer, Producer\n"
                   "Producer('localhost:9092', lingr_ms=5)\n"
                   "Consumer('t', bootstrap_servers='localhost:9092', max_poll_records='ten')\n"
                   "AdminClient('localhost:9092', request_timeout_ms=1000, client='x')\n"
                   "Producer('localhost:9092', linger_ms=5, acks='all')\n")
    r = subprocess.run([sys.executable, "-m", "mypy", "--strict", "--follow-imports=silent", "--no-error-summary",
                        str(bad)], cwd=ROOT, capture_output=True, text=True)
    errors = [ln for ln in r.stdout.splitlines() if ": error:" in ln]
    assert [int(ln.split(":")[1]) for ln in errors] == [2, 3, 4], r.stdout
    assert "lingr_ms" in errors[0] and "max_poll_records" in errors[1] and "client" in errors[2]


def test_the_settings_types_list_every_setting() -> None:
    """ProducerSettings, ConsumerSettings and AdminSettings name exactly the keyword parameters of
    ProducerConfig, AIOConsumer and AIOAdminClient."""
    import inspect

    from kafka_client.admin import AIOAdminClient
    from kafka_client.consumer import AIOConsumer
    from kafka_client.producer import ProducerConfig
    from kafka_client.security import Security, SecuritySettings
    from kafka_client.settings import AdminSettings, ConsumerSettings, ProducerSettings

    # the security settings every client takes as **security: the same names as Security's
    security = [n for n in inspect.signature(Security.__init__).parameters if n != "self"]
    assert list(SecuritySettings.__annotations__) == security
    for td, fn, skip in ((ProducerSettings, ProducerConfig.__init__, {"self", "bootstrap_servers"}),
                         (ConsumerSettings, AIOConsumer.__init__, {"self", "topics"}),
                         (AdminSettings, AIOAdminClient.__init__, {"self", "bootstrap_servers"})):
        params = [n for n in inspect.signature(fn).parameters if n not in skip and n != "security"]
        assert sorted(td.__annotations__) == sorted(params + security), td.__name__
