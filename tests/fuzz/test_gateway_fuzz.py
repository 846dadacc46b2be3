"""A running gateway (``jicai-gateway serve``, its own process) under a few thousand
hostile inputs over its real MLLP and HTTP listeners, with a fixed seed.

Checked throughout: the process stays up, ``/healthz`` answers every poll, every frame
gets an answer and every request a status below 500, no XML entity lets a file out, and
the memory stays bounded. Checked at the end: a valid dispense is still acknowledged and
reaches the platform, and the ledger has folded everything it was given.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest
import yaml
from helpers import HTTP_LISTENERS, ROOT, free_port, numbered_dispense, write_config
from hostile import Hostile

SEED = int(os.environ.get("JCGW_FUZZ_SEED", "20261204"))
MLLP_INPUTS = 2_000
HTTP_INPUTS = 1_000
CONNECTIONS = 4
# an answer names the problems, it does not echo the message back: at most this, or
# twice the message (a FHIR batch is answered entry by entry)
MAX_ANSWER = 65_536
RSS_GROWTH_MB = 250  # the whole run may not grow the gateway's peak memory more than this



def _rss_mb(pid: int, key: str = "VmRSS") -> float:
    """Resident memory of a process and its descendants (the parse workers), in MB."""
    total = 0.0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            total += int(line.split()[1]) / 1024
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                total += _rss_mb(int(stat.parent.name), key)
    return total


class Run:
    """What the run saw."""

    def __init__(self) -> None:
        self.frames = 0
        self.answers = 0
        self.requests = 0
        self.statuses: dict[int, int] = {}
        self.faults: list[str] = []
        self.health_polls = 0
        self.health_worst_s = 0.0


async def _mllp_worker(port: int, inputs: list[bytes], run: Run) -> None:
    reader = writer = None
    try:
        for payload in inputs:
            if writer is None:
                reader, writer = await asyncio.open_connection("127.0.0.1", port,
                                                               limit=1 << 24)
            assert reader is not None
            writer.write(b"\x0b" + payload + b"\x1c\r")
            await writer.drain()
            run.frames += 1
            try:
                answer = await asyncio.wait_for(reader.readuntil(b"\x1c\r"), 30)
            except (asyncio.IncompleteReadError, ConnectionError) as exc:
                run.faults.append(f"frame {run.frames} ({len(payload)} bytes, "
                                  f"{payload[:60]!r}): connection lost: {exc}")
                writer.close()
                reader = writer = None
                continue
            run.answers += 1
            # an ACK is written with the sender's own delimiters
            fs = answer[4:5] if answer[1:4] == b"MSH" else b"|"
            if b"\rMSA" + fs not in answer:
                run.faults.append(f"frame {run.frames}: answer without MSA: {answer[:200]!r}")
            if len(answer) > max(MAX_ANSWER, 2 * len(payload)):
                run.faults.append(f"frame {run.frames}: an answer of {len(answer)} bytes "
                                  f"(to {len(payload)}): {answer[:300]!r}")
    finally:
        if writer is not None:
            writer.close()


async def _http_worker(base: str, inputs: list[tuple[str, bytes, str]], run: Run) -> None:
    async with aiohttp.ClientSession() as session:
        for path, body, ctype in inputs:
            async with session.post(base + path, data=body,
                                    headers={"Content-Type": ctype},
                                    timeout=aiohttp.ClientTimeout(total=60)) as resp:
                text = await resp.read()
            run.requests += 1
            if len(text) > max(MAX_ANSWER, 2 * len(body)):
                run.faults.append(f"{path}: an answer of {len(text)} bytes: {text[:300]!r}")
            run.statuses[resp.status] = run.statuses.get(resp.status, 0) + 1
            if resp.status >= 500:
                run.faults.append(f"{path} answered {resp.status} to {body[:120]!r}: "
                                  f"{text[:300]!r}")
            if b"root:x:0:0" in text:
                run.faults.append(f"{path} let /etc/passwd out: {body[:200]!r}")


async def _half_closers(port: int, run: Run, sample: bytes) -> None:
    """Slow senders and half-closed connections: a frame then shutdown of the writing
    side must still be answered; a partial frame then a close costs nothing."""
    for i in range(10):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        message = sample.replace(b"RDS20261123000001", f"HALF{i:06d}".encode())
        frame = b"\x0b" + message + b"\x1c\r"
        for k in range(0, len(frame), 97):  # dribbled out
            writer.write(frame[k:k + 97])
            await writer.drain()
            await asyncio.sleep(0.002)
        writer.write_eof()
        run.frames += 1
        try:
            answer = await asyncio.wait_for(reader.readuntil(b"\x1c\r"), 30)
            run.answers += 1
            if b"MSA|AA|" not in answer:
                run.faults.append(f"half-closed frame {i} not accepted: {answer[:200]!r}")
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            run.faults.append(f"half-closed frame {i} got no answer: {exc}")
        writer.close()
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(frame[: len(frame) // 2])
        await writer.drain()
        writer.close()


async def _watch_health(base: str, run: Run, stop: asyncio.Event) -> None:
    async with aiohttp.ClientSession() as session:
        while not stop.is_set():
            started = time.monotonic()
            try:
                async with session.get(base + "/healthz",
                                       timeout=aiohttp.ClientTimeout(total=5)) as resp:
                    if resp.status != 200:
                        run.faults.append(f"/healthz answered {resp.status}")
            except (aiohttp.ClientError, TimeoutError) as exc:
                run.faults.append(f"/healthz did not answer: {exc!r}")
            run.health_polls += 1
            run.health_worst_s = max(run.health_worst_s, time.monotonic() - started)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.1)


async def _wait_port(port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while True:
        assert proc.poll() is None, "the gateway exited at start"
        try:
            _, w = await asyncio.open_connection("127.0.0.1", port)
            w.close()
            return
        except OSError:
            assert time.monotonic() < deadline, f"nothing listens on {port}"
            await asyncio.sleep(0.1)


def _ledger_backlog(db: Path) -> tuple[int, int]:
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        pending = con.execute("SELECT count(*) FROM ledger_pending").fetchone()[0]
        poison = con.execute("SELECT count(*) FROM ledger_poison").fetchone()[0]
        return int(pending), int(poison)
    finally:
        con.close()


async def test_hostile_inputs_crash_nothing_and_the_gateway_goes_on(tmp_path: Path) -> None:
    mllp, http, sim = free_port(), free_port(), free_port()
    cfg = write_config(tmp_path, mllp_port=mllp, http_port=http, simulator_port=sim,
                       platform_url=f"http://127.0.0.1:{sim}/fsi/api/inventory",
                       log_level="WARNING")
    data = yaml.safe_load(cfg.read_text("utf-8"))
    data["listeners"] += HTTP_LISTENERS
    cfg.write_text(yaml.safe_dump(data, allow_unicode=True), "utf-8")
    log = (tmp_path / "gateway.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "gateway.cli", "serve", "-c", str(cfg)],
                            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{http}"
    run = Run()
    try:
        await _wait_port(mllp, proc)
        await _wait_port(http, proc)
        start_rss = _rss_mb(proc.pid)
        hostile = Hostile(SEED)
        frames = [hostile.hl7() for _ in range(MLLP_INPUTS)]
        requests = [hostile.http() for _ in range(HTTP_INPUTS)]
        stop = asyncio.Event()
        health = asyncio.create_task(_watch_health(base, run, stop))
        started = time.monotonic()
        await asyncio.gather(
            *(_mllp_worker(mllp, frames[i::CONNECTIONS], run) for i in range(CONNECTIONS)),
            *(_http_worker(base, requests[i::CONNECTIONS], run) for i in range(CONNECTIONS)),
            _half_closers(mllp, run, numbered_dispense(0)))
        elapsed = time.monotonic() - started
        assert proc.poll() is None, "the gateway died under hostile input"

        # a valid dispense after all that: acknowledged, and the platform gets it
        reader, writer = await asyncio.open_connection("127.0.0.1", mllp)
        writer.write(b"\x0b" + numbered_dispense(1, "AFTERFUZZ") + b"\x1c\r")
        await writer.drain()
        ack = await asyncio.wait_for(reader.readuntil(b"\x1c\r"), 30)
        writer.close()
        assert b"MSA|AA|AFTERFUZZ" in ack, ack
        async with aiohttp.ClientSession() as session:
            deadline = time.monotonic() + 60
            while True:
                async with session.get(f"http://127.0.0.1:{sim}/_sim/received") as resp:
                    received = await resp.text()
                if "CFAFTERFUZZ" in received or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.2)
        assert "CFAFTERFUZZ" in received, "the valid dispense never reached the platform"

        # the ledger folded every event it was given, and set none aside
        db = tmp_path / "var" / "gateway.db"
        deadline = time.monotonic() + 60
        while (backlog := _ledger_backlog(db))[0] and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        stop.set()
        await health
        peak = _rss_mb(proc.pid, "VmHWM")
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
    summary = (f"seed {SEED}: {run.frames} frames, {run.answers} answers, {run.requests} "
               f"requests {dict(sorted(run.statuses.items()))}, {elapsed:.0f} s, "
               f"/healthz {run.health_polls} polls (worst {run.health_worst_s:.2f} s), "
               f"RSS {start_rss:.0f} MB at start, peak {peak:.0f} MB")
    print(summary)
    assert not run.faults, "\n".join([summary, *run.faults[:30]])
    assert run.answers == run.frames == MLLP_INPUTS + 10
    assert run.requests == HTTP_INPUTS
    assert run.health_polls > 10
    assert backlog == (0, 0), f"ledger: {backlog[0]} events not folded, {backlog[1]} poison"
    assert peak - start_rss <= RSS_GROWTH_MB, summary


@pytest.fixture(autouse=True)
def _fuzz_path() -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
