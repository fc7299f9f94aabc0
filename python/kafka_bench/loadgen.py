"""The librdkafka load generator (kafka_bench/data/kc_loadgen.c, built once into
the cache) and broker process accounting (CPU seconds, RSS from /proc) for system
benchmarks."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from . import paths

SRC = paths.DATA / "kc_loadgen.c"
BIN = paths.CACHE / "kc_loadgen"


def build_loadgen() -> Path:
    """Compile kc_loadgen against the system librdkafka (Debian librdkafka-dev)."""
    if BIN.exists() and BIN.stat().st_mtime >= SRC.stat().st_mtime:
        return BIN
    if not Path("/usr/include/librdkafka/rdkafka.h").exists():
        raise RuntimeError("librdkafka-dev is missing: apt-get install librdkafka-dev (./dev test does)")
    BIN.parent.mkdir(parents=True, exist_ok=True)
    cc = shutil.which("cc") or "gcc"
    subprocess.run([cc, "-std=c11", "-O2", "-Wall", "-Wextra", "-o", str(BIN), str(SRC), "-lrdkafka"], check=True)
    return BIN


def run_loadgen(mode: str, bootstrap: str, topic: str, count: int, size: int = 200, partition: int = 0,
                conf: dict[str, str] | None = None, sync: bool = False, rate: int = 0,
                timeout: float = 600) -> dict:
    cmd = [str(build_loadgen()), mode, "-b", bootstrap, "-t", topic, "-n", str(count), "-s", str(size),
           "-p", str(partition)]
    for k, v in (conf or {}).items():
        cmd += ["-X", f"{k}={v}"]
    if sync:
        cmd.append("--sync")
    if rate:
        cmd += ["--rate", str(rate)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("{")]
    if not lines:
        raise RuntimeError(f"kc_loadgen {mode} failed ({r.returncode}): {r.stderr[-2000:]}")
    return json.loads(lines[-1])


@dataclass
class ProcStats:
    cpu_seconds: float
    rss_bytes: int


def proc_stats(pid: int) -> ProcStats:
    """CPU seconds (user+system, incl. threads) and resident set size of a process."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / ticks
    rss = int(fields[21]) * os.sysconf("SC_PAGE_SIZE")
    return ProcStats(cpu, rss)
