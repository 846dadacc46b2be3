"""The MLLP listener: asyncio Protocol (framing) → ingestor (handling).

A connection may pipeline: frames are handled concurrently (so they share group
commits) and answered in the order they arrived.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import cast

from adapters.base import Adapter, Issue, Outcome, OutcomeStatus, Severity

from .ingest import Ingestor
from .mllp_framing import END, START, Chunk, ChunkKind, MLLPFramer

__all__ = ["MLLPProtocol", "start_mllp_server"]

log = logging.getLogger(__name__)

MAX_IN_FLIGHT = 256  # per connection, before we stop reading (back-pressure)


class MLLPProtocol(asyncio.Protocol):
    """One MLLP connection."""

    def __init__(self, ingestor: Ingestor, adapter: Adapter, max_frame: int,
                 on_close: Callable[[MLLPProtocol], None] | None = None) -> None:
        self.ingestor = ingestor
        self.adapter = adapter
        self.framer = MLLPFramer(max_frame)
        self.transport: asyncio.Transport | None = None
        self.peer = "?"
        self._tail: asyncio.Future[None] | None = None
        self._in_flight = 0
        self._paused = False
        self._closing = False
        self._on_close = on_close

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        peer = transport.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)

    def data_received(self, data: bytes) -> None:
        for chunk in self.framer.feed(data):
            self._dispatch(chunk)

    def connection_lost(self, exc: Exception | None) -> None:
        for chunk in self.framer.close():
            self._dispatch(chunk)
        if self._on_close:
            self._on_close(self)

    def _dispatch(self, chunk: Chunk) -> None:
        kind = chunk.kind
        if kind is ChunkKind.FRAME:
            self._queue(self._handle_frame(chunk.data))
        elif kind is ChunkKind.OVERSIZE:
            self._queue(self._refuse_oversize(chunk.data))
        elif kind is ChunkKind.TOO_LARGE:
            self._queue(self._refuse_oversize(chunk.data), close=True)
        else:
            reason = ("bytes outside MLLP framing" if kind is ChunkKind.GARBAGE
                      else "MLLP frame cut off before its end marker")
            self._queue(self.ingestor.bad_bytes(self.adapter, chunk.data, self.peer, reason))

    async def _handle_frame(self, data: bytes) -> bytes:
        try:
            return (await self.ingestor.handle(self.adapter, data, self.peer)).body
        except Exception:
            # a sender must always get an answer: without one it would wait and resend
            log.exception("unexpected error handling a message from %s", self.peer)
            issue = Issue(Severity.ERROR, "internal error, message not stored: send it again",
                          "207")
            return self.adapter.reply(None, data, Outcome(OutcomeStatus.ERROR, (issue,)),
                                      now=self.ingestor.clock()).body

    async def _refuse_oversize(self, data: bytes) -> bytes:
        limit = self.framer.max_frame
        reason = f"MLLP frame of {len(data)} bytes exceeds the limit of {limit} bytes"
        await self.ingestor.bad_bytes(self.adapter, data, self.peer, reason)
        issue = Issue(Severity.ERROR, reason, "207", "MSH")
        head = data[: data.find(b"\r") + 1] if b"\r" in data[:4096] else b""
        reply = self.adapter.reply(None, head, Outcome(OutcomeStatus.REJECTED, (issue,)),
                                   now=self.ingestor.clock())
        return reply.body

    def _queue(self, work: Awaitable[bytes | None], close: bool = False) -> None:
        prev = self._tail
        self._in_flight += 1
        if self._in_flight >= MAX_IN_FLIGHT and not self._paused and self.transport:
            self.transport.pause_reading()
            self._paused = True
        self._tail = asyncio.ensure_future(self._answer(work, prev, close))

    async def _answer(self, work: Awaitable[bytes | None], prev: asyncio.Future[None] | None,
                      close: bool) -> None:
        try:
            result = await work
        except Exception:
            log.exception("unexpected error handling a message from %s", self.peer)
            result = None
        if prev is not None:
            await prev
        self._in_flight -= 1
        t = self.transport
        if t is None or t.is_closing():
            return
        if result is not None:  # bytes that are no message get no answer
            t.write(START + result + END)
        if close:
            log.warning("closing connection from %s after an oversize frame", self.peer)
            t.close()
        elif self._paused and self._in_flight < MAX_IN_FLIGHT // 2:
            t.resume_reading()
            self._paused = False


async def start_mllp_server(ingestor: Ingestor, adapter: Adapter, host: str, port: int,
                            max_frame: int) -> asyncio.Server:
    """Listen for MLLP connections; the server is returned started."""
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: MLLPProtocol(ingestor, adapter, max_frame), host, port, reuse_address=True)
    log.info("MLLP listener for %s on %s:%d", adapter.name, host, port)
    return server
