"""The MLLP listener: asyncio Protocol (framing) → ingestor (handling).

A connection may pipeline: frames are handled concurrently (so they share group
commits) and answered in the order they arrived. Frames go to
:meth:`~gateway.ingest.pipeline.Ingestor.submit`, which handles everything that arrived in one
turn of the event loop together; no task is created per frame. A frame big enough to be
parsed in a worker process holds back the frames behind it on its connection until it is
answered, so a connection's messages are still committed in the order they were sent
(a return after its sale).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any, cast

from adapters.base import Adapter, Issue, Outcome, OutcomeStatus, Reply, Severity
from gateway.ingest.framing import END, START, Chunk, ChunkKind, MLLPFramer
from gateway.ingest.pipeline import Ingestor

__all__ = ["MLLPProtocol", "start_mllp_server"]

log = logging.getLogger(__name__)

MAX_IN_FLIGHT = 256  # per connection, before we stop reading (back-pressure)


class _Slot:
    """One answer owed to the sender, in arrival order."""

    __slots__ = ("body", "close", "ready")

    def __init__(self, close: bool) -> None:
        self.body: bytes | None = None
        self.close = close
        self.ready = False


class MLLPProtocol(asyncio.Protocol):
    """One MLLP connection."""

    def __init__(self, ingestor: Ingestor, adapter: Adapter, max_frame: int,
                 on_close: Callable[[MLLPProtocol], None] | None = None) -> None:
        self.ingestor = ingestor
        self.adapter = adapter
        self.framer = MLLPFramer(max_frame)
        self.transport: asyncio.Transport | None = None
        self.peer = "?"
        self._owed: deque[_Slot] = deque()
        self._tasks: set[asyncio.Future[bytes | None]] = set()
        self._paused = False
        self._on_close = on_close
        self._eof = False  # the sender closed its side; close ours once all is answered
        # frames that arrived while a big one is parsed elsewhere: they follow it, in order
        self._waiting: deque[tuple[_Slot, bytes]] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        peer = transport.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)

    def data_received(self, data: bytes) -> None:
        for chunk in self.framer.feed(data):
            self._dispatch(chunk)

    def eof_received(self) -> bool:
        """The sender shut its writing side (a half-close): every complete frame it sent is
        still answered; the connection closes once the last answer is written."""
        for chunk in self.framer.close():
            self._dispatch(chunk)
        self._eof = True
        # True keeps the transport open for the answers owed; nothing owed: close now
        return bool(self._owed)

    def connection_lost(self, exc: Exception | None) -> None:
        for chunk in self.framer.close():
            self._dispatch(chunk)
        owed = sum(1 for slot in self._owed if slot.body is not None or not slot.ready)
        if owed:
            # the messages are committed or quarantined; the sender resends what it
            # did not hear about, and duplicates are recognised
            log.warning("connection from %s closed with %d answer(s) owed (%s)", self.peer,
                        owed, exc or "closed by the peer")
        if self._on_close:
            self._on_close(self)

    def _dispatch(self, chunk: Chunk) -> None:
        kind = chunk.kind
        if kind is ChunkKind.FRAME:
            slot = self._owe()
            if self._waiting is not None:
                self._waiting.append((slot, chunk.data))
            else:
                self._submit(slot, chunk.data)
        elif kind is ChunkKind.OVERSIZE:
            self._owe_later(self._refuse_oversize(chunk.data))
        elif kind is ChunkKind.TOO_LARGE:
            self._owe_later(self._refuse_oversize(chunk.data), close=True)
        else:
            reason = ("bytes outside MLLP framing" if kind is ChunkKind.GARBAGE
                      else "MLLP frame cut off before its end marker")
            self._owe_later(self.ingestor.bad_bytes(self.adapter, chunk.data, self.peer,
                                                    reason))

    def _submit(self, slot: _Slot, data: bytes) -> None:
        big = self.ingestor.parses_elsewhere(self.adapter, data)
        if big:
            self._waiting = deque()

        def answered(reply: Reply | None) -> None:
            self._pay(slot, None if reply is None else reply.body)
            if big:
                self._follow()

        self.ingestor.submit(self.adapter, data, self.peer, answered)

    def _follow(self) -> None:
        """Submit the frames that waited behind a big one, up to the next big one."""
        waiting, self._waiting = self._waiting, None
        while waiting:
            slot, data = waiting.popleft()
            self._submit(slot, data)
            if self._waiting is not None:
                self._waiting.extend(waiting)
                return

    async def _refuse_oversize(self, data: bytes) -> bytes:
        limit = self.framer.max_frame
        reason = f"MLLP frame of {len(data)} bytes exceeds the limit of {limit} bytes"
        await self.ingestor.bad_bytes(self.adapter, data, self.peer, reason)
        issue = Issue(Severity.ERROR, reason, "207", "MSH")
        head = data[: data.find(b"\r") + 1] if b"\r" in data[:4096] else b""
        reply = self.adapter.reply(None, head, Outcome(OutcomeStatus.REJECTED, (issue,)),
                                   now=self.ingestor.clock())
        return reply.body

    def _owe(self, close: bool = False) -> _Slot:
        slot = _Slot(close)
        self._owed.append(slot)
        if len(self._owed) >= MAX_IN_FLIGHT and not self._paused and self.transport:
            self.transport.pause_reading()
            self._paused = True
        return slot

    def _owe_later(self, work: Coroutine[Any, Any, bytes | None], close: bool = False) -> None:
        slot = self._owe(close)
        task = asyncio.ensure_future(work)
        self._tasks.add(task)

        def finished(t: asyncio.Future[bytes | None]) -> None:
            self._tasks.discard(t)
            body = None
            if not t.cancelled():
                if t.exception() is not None:
                    log.error("unexpected error handling bytes from %s", self.peer,
                              exc_info=t.exception())
                else:
                    body = t.result()
            self._pay(slot, body)

        task.add_done_callback(finished)

    def _pay(self, slot: _Slot, body: bytes | None) -> None:
        """Record an answer and send every answer that is due, in arrival order."""
        slot.body = body
        slot.ready = True
        owed = self._owed
        t = self.transport
        while owed and owed[0].ready:
            done = owed.popleft()
            if t is None or t.is_closing():
                continue
            if done.body is not None:  # bytes that are no message get no answer
                t.write(START + done.body + END)
            if done.close:
                log.warning("closing connection from %s after an oversize frame", self.peer)
                t.close()
        if self._paused and len(owed) < MAX_IN_FLIGHT // 2 and t is not None \
                and not t.is_closing():
            t.resume_reading()
            self._paused = False
        if self._eof and not owed and t is not None and not t.is_closing():
            t.close()  # a half-closed connection, every answer written


async def start_mllp_server(ingestor: Ingestor, adapter: Adapter, host: str, port: int,
                            max_frame: int) -> asyncio.Server:
    """Listen for MLLP connections; the server is returned started."""
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: MLLPProtocol(ingestor, adapter, max_frame), host, port, reuse_address=True)
    log.info("MLLP listener for %s on %s:%d", adapter.name, host, port)
    return server
