"""How long `./dev broker` takes to listen once everything is installed (issue 15: under 2 s).

    python benches/system/bench_dev_start.py [--runs 5]

Runs `./dev setup broker` once (installs when needed), then starts `./dev broker` --runs times on a
free port and a fresh data folder, timing each from the command to the port accepting connections,
and prints every run and the median.  Each broker is stopped with SIGTERM before the next start.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def time_to_listen(port: int, data: str, timeout: float = 60) -> float:
    t0 = time.perf_counter()
    p = subprocess.Popen([str(ROOT / "dev"), "broker", "--set", f"log.dirs={data}",
                          "--set", f"listeners=PLAINTEXT://127.0.0.1:{port}"], cwd=ROOT,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        while time.perf_counter() - t0 < timeout:
            if p.poll() is not None:
                raise RuntimeError(f"./dev broker exited with {p.returncode}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.1):
                    return time.perf_counter() - t0
            except OSError:
                time.sleep(0.01)
        raise RuntimeError(f"not listening after {timeout} s")
    finally:
        os.killpg(p.pid, signal.SIGTERM)
        p.wait(30)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    subprocess.run([str(ROOT / "dev"), "setup", "broker"], cwd=ROOT, check=True)
    runs = []
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="kc-devstart-") as d:
            runs.append(time_to_listen(free_port(), d))
    print("| ./dev broker, installed: seconds to listen | " + ", ".join(f"{r:.2f}" for r in runs)
          + f" (median {statistics.median(runs):.2f}) |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
