"""Package layering (issue 9): kafka_broker and kafka_client import nothing of each other, of
kafka_cli or kafka_bench, nor of tests/ or benches/; the ``kafka-core`` command (kafka_cli) and the
benchmark runner work from outside the checkout, with only the packages on the path."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE_DIRS = [str(ROOT / "python"), str(ROOT / "src")]   # not ROOT: tests/ and benches/ stay out of reach

_IMPORT_ALL = """
import importlib, json, pkgutil, sys
pkg = importlib.import_module(sys.argv[1])
names = [pkg.__name__]
for m in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + "."):
    if m.name.rsplit(".", 1)[-1] != "__main__":
        importlib.import_module(m.name)
        names.append(m.name)
print(json.dumps({"imported": names, "loaded": sorted({n.split(".")[0] for n in sys.modules})}))
"""


def _env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=os.pathsep.join(PACKAGE_DIRS))


def _import_all(package: str, tmp_path: Path) -> tuple[list[str], set[str]]:
    r = subprocess.run([sys.executable, "-c", _IMPORT_ALL, package], cwd=tmp_path, env=_env(),
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    got = json.loads(r.stdout)
    return got["imported"], set(got["loaded"])


@pytest.mark.parametrize("package, forbidden, modules", [
    ("kafka_broker", {"kafka_client", "kafka_bench", "kafka_cli", "tests", "benches"}, 40),
    ("kafka_client", {"kafka_broker", "kafka_bench", "kafka_cli", "tests", "benches"}, 10),
    ("kafka_tools", {"kafka_broker", "kafka_bench", "kafka_cli", "tests", "benches"}, 5),
])
def test_package_imports_nothing_above_it(package: str, forbidden: set[str], modules: int, tmp_path: Path) -> None:
    imported, loaded = _import_all(package, tmp_path)
    assert len(imported) >= modules, imported   # the walk found the package's modules
    assert not loaded & forbidden, f"importing every module of {package} loads {sorted(loaded & forbidden)}"


@pytest.mark.parametrize("package, forbidden", [
    ("kafka_broker", {"kafka_client", "kafka_bench", "kafka_cli", "tests", "benches"}),
    ("kafka_client", {"kafka_broker", "kafka_bench", "kafka_cli", "tests", "benches"}),
    ("kafka_bench", {"kafka_cli", "tests", "benches"}),
    ("kafka_tools", {"kafka_broker", "kafka_bench", "kafka_cli", "tests", "benches"}),
])
def test_no_import_statement_names_a_package_above(package: str, forbidden: set[str]) -> None:
    """Also the imports inside functions, which importing the modules does not run."""
    found = []
    for path in sorted((ROOT / "python" / package).rglob("*.py")):
        if path.name == "__main__.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            found += [f"{path.relative_to(ROOT)}:{node.lineno} {n}" for n in names if n.split(".")[0] in forbidden]
    assert not found, found


def test_kafka_bench_needs_neither_tests_nor_benches(tmp_path: Path) -> None:
    _, loaded = _import_all("kafka_bench", tmp_path)
    assert not loaded & {"tests", "benches", "kafka_cli"}, sorted(loaded)


def _run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], cwd=tmp_path, env=_env(), capture_output=True, text=True,
                          timeout=120)


def test_kafka_cli_help_lists_the_subcommands(tmp_path: Path) -> None:
    r = _run(tmp_path, "-m", "kafka_cli", "--help")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("usage: kafka-core")
    for cmd in ("broker", "group", "topic", "produce", "consume", "perf", "bench"):
        assert cmd in r.stdout, cmd


def test_bench_help_outside_the_checkout(tmp_path: Path) -> None:
    r = _run(tmp_path, "-m", "kafka_cli", "bench", "--help")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("usage: kafka-core bench") and "--quick" in r.stdout
    assert r.stderr == ""


def test_python_m_kafka_broker_still_runs_the_broker(tmp_path: Path) -> None:
    r = _run(tmp_path, "-m", "kafka_broker", "--help")
    assert r.returncode == 0, r.stderr
    assert "--config" in r.stdout and "--set" in r.stdout
