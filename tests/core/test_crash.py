"""SIGKILL the gateway at random moments while a HIS sends 2,000 dispenses.

After restarts, every acknowledged message reaches the platform exactly once, and a
message whose ACK was lost in a crash and that the HIS sends again is not delivered
twice (the platform would see it under a second msgid).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from helpers import (
    ROOT,
    MLLPClient,
    ack_fields,
    eventually,
    free_port,
    numbered_dispense,
    write_config,
)

TOTAL = 2000
CONNECTIONS = 4
KILLS = 3


def _spawn(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "gateway.cli", *args], cwd=ROOT, env=env,
                            stdout=log.open("ab"), stderr=subprocess.STDOUT)


async def _listening(port: int) -> bool:
    try:
        _, w = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return False
    w.close()
    return True


async def _wait_port(port: int, timeout: float = 30.0) -> None:
    await eventually(lambda: _listening(port), timeout=timeout, interval=0.05,
                     what=f"a listener on port {port}")


@pytest.mark.slow
async def test_sigkill_at_random_moments_loses_nothing_and_delivers_once(tmp_path: Path) -> None:
    rng = random.Random(int(os.environ.get("CRASH_SEED", "20261123")))
    mllp, http, sim = free_port(), free_port(), free_port()
    cfg = write_config(tmp_path, mllp_port=mllp, http_port=http,
                       platform_url=f"http://127.0.0.1:{sim}/fsi/api/inventory")
    log = tmp_path / "gateway.log"
    simulator = _spawn(["simulate-platform", "--port", str(sim)], tmp_path / "sim.log")
    gw = _spawn(["serve", "-c", str(cfg)], log)
    acked: set[int] = set()
    kill_points = sorted(rng.sample(range(100, TOTAL - 100), KILLS))
    kills_done = 0
    try:
        await _wait_port(sim)
        await _wait_port(mllp)
        queue: asyncio.Queue[int] = asyncio.Queue()
        for n in range(TOTAL):
            queue.put_nowait(n)
        restarting = asyncio.Lock()

        async def sender() -> None:
            client: MLLPClient | None = None
            while True:
                try:
                    n = queue.get_nowait()
                except asyncio.QueueEmpty:
                    break
                while True:  # resend the same bytes until acknowledged, like an HIS does
                    try:
                        if client is None:
                            async with restarting:
                                pass
                            client = await MLLPClient.connect(mllp)
                        ack = ack_fields(await client.send(numbered_dispense(n), timeout=10))
                        assert ack["MSA"][1] == "AA", ack
                        acked.add(n)
                        break
                    except (OSError, asyncio.IncompleteReadError, TimeoutError):
                        if client is not None:
                            await client.close()
                        client = None
                        await asyncio.sleep(0.05)
            if client is not None:
                await client.close()

        async def killer() -> None:
            nonlocal gw, kills_done
            for point in kill_points:
                await eventually(lambda p=point: len(acked) >= p, timeout=240,  # type: ignore[misc]
                                 interval=0.001, what=f"{point} messages acknowledged")
                await asyncio.sleep(rng.random() * 0.05)
                async with restarting:
                    gw.kill()  # SIGKILL: no cleanup, no flush
                    gw.wait()
                    kills_done += 1
                    gw = _spawn(["serve", "-c", str(cfg)], log)
                    await _wait_port(mllp)

        await asyncio.wait_for(
            asyncio.gather(killer(), *(sender() for _ in range(CONNECTIONS))), timeout=240)
        assert kills_done == KILLS
        assert len(acked) == TOTAL

        async with aiohttp.ClientSession() as s:
            async def drained() -> dict[str, Any] | None:
                """The gateway's balance once every stored dispense has its outcome."""
                async with s.get(f"http://127.0.0.1:{http}/api/mirror/balance") as r:
                    balance: dict[str, Any] = (await r.json()).get("nhsa", {})
                done = balance.get("received", 0) >= TOTAL and balance.get("queued") == 0
                return balance if done else None

            # the store holds every acknowledged message and nothing waits in its outbox:
            # the mirror has sent all it ever will (a late resend cannot come afterwards)
            with contextlib.suppress(AssertionError):  # what is missing is reported below
                await eventually(drained, timeout=60, interval=0.2,
                                 what="the gateway's outbox drained")
            async with s.get(f"http://127.0.0.1:{sim}/_sim/received?infno=3505") as r:
                received = await r.json()
        docs = Counter(e["input"]["selinfo"]["rtal_docno"] for e in received)
        expected = {f"CFRDS{n:010d}" for n in range(TOTAL)}
        missing = expected - set(docs)
        twice = [d for d, c in docs.items() if c > 1]
        assert not missing, f"{len(missing)} acknowledged messages never reached the platform"
        assert not twice, f"delivered twice under different msgids: {twice[:5]}"
        msgids = [e["msgid"] for e in received]
        assert len(msgids) == len(set(msgids))
    finally:
        gw.kill()
        simulator.kill()
        gw.wait()
        simulator.wait()
