"""Loopback ports and process groups of the servers tests start."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from typing import Any


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, timeout: float, proc: subprocess.Popen[Any] | None = None) -> None:
    """Until something accepts connections on 127.0.0.1:port (the broker listens only once its
    logs are open and its group coordinator runs)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.01)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


def terminate_group(p: subprocess.Popen[Any], timeout: float = 30, sig: int = signal.SIGTERM) -> None:
    """Stop ``p`` and every process in its session's group (it was started with
    ``start_new_session``); SIGKILL after ``timeout``."""
    if p.poll() is None:
        try:
            os.killpg(p.pid, sig)
        except (ProcessLookupError, PermissionError):
            p.send_signal(sig)
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            pass
    try:  # helpers left in the group
        os.killpg(p.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    if p.poll() is None:
        p.kill()
        p.wait(10)
