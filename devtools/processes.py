"""Child servers for the demo, the tests and the benchmarks: wait until one answers, stop them all."""

from __future__ import annotations

import subprocess
import time
from typing import Callable

import httpx


def wait_for(predicate: Callable[[], bool], timeout_s: float = 60.0) -> bool:
    """Poll ``predicate`` until it holds (True) or ``timeout_s`` passes (False); generous by default,
    as CI machines can be loaded."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def wait_http(url: str, proc: subprocess.Popen[bytes] | None = None, timeout_s: float = 120.0) -> None:
    """Wait until ``url`` answers 200 (fails early if ``proc``, the server, exits)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            command = list(proc.args)[:4] if isinstance(proc.args, (list, tuple)) else proc.args
            raise RuntimeError(f"{command!r} exited with {proc.returncode}")
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {timeout_s:.0f}s")


def stop_all(procs: list[subprocess.Popen[bytes]], grace_s: float = 15.0) -> None:
    """Terminate child servers (last started first), killing any that outlive ``grace_s``."""
    for p in reversed(procs):
        if p.poll() is None:
            p.terminate()
    for p in procs:
        try:
            p.wait(grace_s)
        except subprocess.TimeoutExpired:
            p.kill()
