"""The README's "Using it" commands, run in the order written on a fresh data folder (issue 15):
the broker in the background, then each client command, which must exit 0.  The only changes are
the address (a free port instead of localhost:9092), the data folder, and ``kafka-core`` run as
``python -m kafka_cli`` (the same program, whether or not the script is on PATH)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from kafka_broker.testing import free_port, wait_for_port

ROOT = Path(__file__).resolve().parents[2]


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Using it", 1)[1]
    block = re.search(r"```sh\n(.*?)```", section, re.S)
    assert block, "no sh block under 'Using it'"
    joined = re.sub(r"\\\n\s*", " ", block.group(1))
    return [ln.split("  #")[0].strip() for ln in joined.splitlines() if ln.strip() and not ln.startswith("#")]


def test_readme_commands_run_in_order(tmp_path: Path) -> None:
    cmds = readme_commands()
    assert cmds[0].startswith("kafka-core broker ") and len(cmds) >= 5, cmds
    port = free_port()
    kc = f"{sys.executable} -m kafka_cli"

    def adapt(cmd: str) -> str:
        cmd = cmd.replace("localhost:9092", f"127.0.0.1:{port}")
        cmd = cmd.replace("log.dirs=/var/lib/kafka-core", f"log.dirs={tmp_path / 'data'}")
        return re.sub(r"(^|\| *)kafka-core ", lambda m: f"{m.group(1)}{kc} ", cmd)

    broker_cmd = adapt(cmds[0]) + f" --set listeners=PLAINTEXT://127.0.0.1:{port}"
    log = open(tmp_path / "broker.log", "wb")
    broker = subprocess.Popen(["bash", "-c", f"exec {broker_cmd}"], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for_port(port, 30, broker)
        for cmd in cmds[1:]:
            r = subprocess.run(["bash", "-o", "pipefail", "-c", adapt(cmd)], cwd=ROOT, capture_output=True,
                               text=True, timeout=240)
            assert r.returncode == 0, f"{cmd}\n{r.stdout[-1500:]}\n{r.stderr[-1500:]}"
            if "group describe" in cmd:
                assert "demo" in r.stdout and "my-app" in r.stdout, r.stdout     # the group the consume made
    finally:
        broker.terminate()
        broker.wait(30)
        log.close()
    assert (tmp_path / "data").is_dir()
