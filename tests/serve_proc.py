"""A ``jicai-gateway serve`` process of its own, for tests of what only a real process
shows: its log lines on stderr, its answer to SIGTERM."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

from helpers import ROOT, eventually


def spawn_serve(config: Path, stderr: Path) -> subprocess.Popen[bytes]:
    """``serve -c config`` with its stderr into a file (stdout is not used)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "gateway.cli", "serve", "-c", str(config)],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=stderr.open("wb"))


async def _listening(port: int) -> bool:
    try:
        _, w = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return False
    w.close()
    return True


async def wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    """Until something listens on ``port``; fails at once when ``proc`` exited."""
    async def up() -> bool:
        assert proc.poll() is None, f"serve exited with status {proc.returncode}"
        return await _listening(port)
    await eventually(up, timeout=timeout, interval=0.05, what=f"a listener on port {port}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Make sure the process is gone (a test that failed half-way leaves none behind)."""
    if proc.poll() is None:
        proc.kill()
        proc.wait(10)
