"""SIGTERM while eight HIS connections pipeline dispenses: the gateway stops accepting,
answers what it read, closes every connection and exits within ``shutdown_grace_s``;
every message it acknowledged is in the store."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path

from helpers import ack_fields, eventually, free_port, numbered_dispense, write_config
from serve_proc import spawn_serve, stop, wait_port

from gateway.config import ListenerConfig
from gateway.ingest.door import Door
from gateway.ingest.framing import END, START
from gateway.ingest.mllp import MLLPListener

SENDERS = 8
PER_SENDER = 2000  # bounded: a sender stops after these whatever happens
WINDOW = 16  # frames a sender has out before it waits for answers
GRACE_S = 5.0
MARGIN_S = 3.0  # interpreter start-up of the exit path, on a busy machine
SIGTERM_AFTER = 300  # acknowledgements, across senders, before the signal


@dataclass
class Sender:
    """One pipelining HIS connection: what it sent, what was answered, how it ended."""

    index: int
    sent: list[str] = field(default_factory=list)
    answers: list[tuple[str, str]] = field(default_factory=list)  # (MSA-1, MSA-2)
    ended: str = ""  # "eof", "reset" or "timeout" (left hanging)


async def _run(sender: Sender, port: int, acked_total: list[int], hang_s: float) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    window = asyncio.Semaphore(WINDOW)

    async def write() -> None:
        with contextlib.suppress(ConnectionError, OSError):
            for k in range(PER_SENDER):
                await window.acquire()
                n = sender.index * 100_000 + k
                raw = numbered_dispense(n)
                sender.sent.append(f"RDS{n:012d}")
                writer.write(START + raw + END)
                await writer.drain()

    async def read() -> None:
        while len(sender.answers) < PER_SENDER:
            try:
                frame = await asyncio.wait_for(reader.readuntil(END), hang_s)
            except TimeoutError:
                sender.ended = "timeout"
                return
            except asyncio.IncompleteReadError:
                sender.ended = "eof"
                return
            except (ConnectionError, OSError):
                sender.ended = "reset"
                return
            msa = ack_fields(frame[frame.index(START) + 1: -2])["MSA"]
            sender.answers.append((msa[1], msa[2]))
            acked_total[0] += 1
            window.release()
        sender.ended = "all answered"

    writing = asyncio.create_task(write())
    await read()
    writing.cancel()
    await asyncio.gather(writing, return_exceptions=True)
    writer.close()
    with contextlib.suppress(ConnectionError, OSError):
        await writer.wait_closed()


async def test_sigterm_mid_stream_answers_or_closes_every_connection(tmp_path: Path) -> None:
    mllp, http, sim = free_port(), free_port(), free_port()
    cfg = write_config(tmp_path, mllp_port=mllp, http_port=http, simulator_port=sim,
                       platform_url=f"http://127.0.0.1:{sim}/fsi/api/inventory",
                       shutdown_grace_s=GRACE_S)
    proc = spawn_serve(cfg, tmp_path / "stderr.log")
    senders = [Sender(i) for i in range(SENDERS)]
    acked_total = [0]
    try:
        await wait_port(mllp, proc)
        # a sender in the middle of a frame: it is owed nothing, and must not hold us up
        half_r, half_w = await asyncio.open_connection("127.0.0.1", mllp)
        half = numbered_dispense(999_999)
        half_w.write(START + half[: len(half) // 2])
        await half_w.drain()
        # a sender waiting longer than the grace period (and the margin) was left hanging
        runs = asyncio.gather(*(_run(s, mllp, acked_total, GRACE_S + MARGIN_S)
                                for s in senders))
        await eventually(lambda: acked_total[0] >= SIGTERM_AFTER, timeout=60,
                         what=f"{SIGTERM_AFTER} acknowledgements")
        proc.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        await asyncio.wait_for(runs, GRACE_S + 2 * MARGIN_S)
        # closed without an answer: its half frame was no message, it sends it again
        assert await asyncio.wait_for(half_r.read(), GRACE_S + MARGIN_S) == b""
        half_w.close()
        status = await asyncio.to_thread(proc.wait, GRACE_S + MARGIN_S)
        took = time.monotonic() - signalled
    finally:
        stop(proc)
    log = (tmp_path / "stderr.log").read_text("utf-8", "replace")
    assert status == 0, log[-3000:]  # the drain finished, not the deadline's exit
    assert took < GRACE_S + MARGIN_S, f"exit {took:.1f} s after SIGTERM"
    stopped_early = 0
    for s in senders:
        assert s.ended in ("eof", "reset", "all answered"), (s.index, s.ended)
        # answers come in the order the frames were sent, and say which frame
        assert [cid for _, cid in s.answers] == s.sent[:len(s.answers)], s.index
        assert {code for code, _ in s.answers} <= {"AA"}, s.answers[-3:]
        stopped_early += len(s.answers) < PER_SENDER
    assert stopped_early, "SIGTERM came after every message: nothing was mid-stream"
    acked = {cid for s in senders for code, cid in s.answers if code == "AA"}
    with sqlite3.connect(tmp_path / "var" / "gateway.db") as db:
        stored = {row[0] for row in db.execute("SELECT control_id FROM messages")}
        quarantined = db.execute("SELECT count(*) FROM quarantine").fetchone()[0]
    assert len(acked) >= SIGTERM_AFTER
    assert acked - stored == set(), "acknowledged but not stored"
    assert "cut off at shutdown" not in log, log[-3000:]
    assert "RDS000999999" not in stored
    assert quarantined == 0  # a frame cut short by the shutdown is not a bad message



class _Connection:
    """A connection as the door sees it; ``stuck`` ones never finish their answers."""

    def __init__(self, door: Door, stuck: bool) -> None:
        self.door, self.stuck = door, stuck
        self.aborted = False

    def check_timers(self, now: float, idle_s: float, frame_s: float) -> str | None:
        return None

    def drain(self) -> None:
        if not self.stuck:
            asyncio.get_running_loop().call_later(0.05, self.door.release, self, "127.0.0.1")

    def abort(self) -> None:
        self.aborted = True
        self.door.release(self, "127.0.0.1")


async def test_connections_still_owed_answers_at_the_deadline_are_cut_off() -> None:
    listener = ListenerConfig(name="his-mllp", adapter="hl7v2", transport="mllp",
                              host="127.0.0.1", port=free_port())
    door = Door(listener)
    server = await asyncio.get_running_loop().create_server(asyncio.Protocol, "127.0.0.1", 0)
    done, stuck = _Connection(door, stuck=False), _Connection(door, stuck=True)
    for conn in (done, stuck):
        assert door.admit(conn, "127.0.0.1") is None
    started = time.monotonic()
    assert await MLLPListener(server, door).drain(0.3) == 1
    assert 0.3 <= time.monotonic() - started < 1.0
    assert not server.is_serving()
    assert stuck.aborted and not done.aborted
    assert not door.open
