"""The MLLP listener: asyncio Protocol (framing) → ingestor (handling).

A connection may pipeline: frames are handled concurrently (so they share group
commits) and answered in the order they arrived. Frames go to
:meth:`~gateway.ingest.pipeline.Ingestor.submit`, which handles everything that arrived in one
turn of the event loop together; no task is created per frame. A frame big enough to be
parsed in a worker process holds back the frames behind it on its connection until it is
answered, so a connection's messages are still committed in the order they were sent
(a return after its sale).

Every connection passes the listener's :class:`~gateway.ingest.door.Door` first (source
allow-list, connection caps, TLS and the client certificate's identity). What one
connection may hold is bounded: frames owed an answer (count and bytes), and answers the
sender does not read (reading stops while the transport's write buffer is full).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import tempfile
import time
from collections import deque
from collections.abc import Callable, Coroutine
from typing import IO, Any, cast

from adapters.base import Adapter, Issue, Outcome, OutcomeStatus, Reply, Severity
from gateway.config import ListenerConfig
from gateway.ingest.door import Door, source_address
from gateway.ingest.framing import END, START, Chunk, ChunkKind, MLLPFramer
from gateway.ingest.pipeline import Ingestor
from gateway.ingest.tls_stream import TlsStream
from gateway.metrics import Metrics
from gateway.security.identity import Identities, Identity

__all__ = ["MLLPListener", "MLLPProtocol", "start_mllp_server"]

log = logging.getLogger(__name__)

MAX_IN_FLIGHT = 256  # per connection, before we stop reading (back-pressure)


class _Slot:
    """One answer owed to the sender, in arrival order."""

    __slots__ = ("body", "close", "ready", "size")

    def __init__(self, close: bool, size: int = 0) -> None:
        self.body: bytes | None = None
        self.close = close
        self.ready = False
        self.size = size  # bytes of the frame, held until it is answered


class MLLPProtocol(asyncio.Protocol):
    """One MLLP connection."""

    def __init__(self, ingestor: Ingestor, adapter: Adapter, door: Door,
                 on_close: Callable[[MLLPProtocol], None] | None = None) -> None:
        self.ingestor = ingestor
        self.adapter = adapter
        self.door = door
        self.framer = MLLPFramer(door.listener.max_frame_bytes)
        self.transport: asyncio.Transport | None = None
        self.peer = "?"
        self.source = "?"
        # who the client certificate proves (mutual TLS); None: not known, not limited
        self.sender: Identity | None = None
        self._owed: deque[_Slot] = deque()
        self._owed_bytes = 0  # bytes of the frames not answered yet
        self._tasks: set[asyncio.Future[Any]] = set()
        self._paused = False
        self._write_full = False  # the sender does not read its answers: stop reading
        self._on_close = on_close
        self._eof = False  # the sender closed its side; close ours once all is answered
        # frames that arrived while a big one is parsed elsewhere: they follow it, in order
        self._waiting: deque[tuple[_Slot, bytes]] | None = None
        self._last_seen = time.monotonic()
        self._frame_since: float | None = None  # when the frame being read started
        self._tls: TlsStream | None = None
        # the parts of a frame over max_frame_bytes so far, on disk rather than in memory
        self._spill: IO[bytes] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        peer = transport.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        self.source = source_address(peer)
        refusal = self.door.admit(self, self.source)
        if refusal is not None:
            # before any byte is read or any TLS work is done: refusing costs nothing
            self.door.refused(self.source, self.peer, refusal)
            self.transport.abort()
            return
        if self.door.ssl is not None:
            self._tls = TlsStream(self.door.ssl, self.transport)
            self._frame_since = time.monotonic()  # the handshake has the frame's deadline

    def _decrypt(self, data: bytes) -> bytes:
        """Application bytes from TLS records; none until the client is identified."""
        tls = self._tls
        assert tls is not None and self.transport is not None
        handshaken = tls.ready
        try:
            plain = tls.receive(data)
        except ssl.SSLError as exc:
            if handshaken:  # a broken record after the handshake: nothing to answer
                log.warning("TLS error on the connection from %s: %s", self.peer, exc)
            else:
                self.door.refused(self.source, self.peer, "tls_handshake",
                                  exc.reason or str(exc))
            self.transport.abort()
            return b""
        if tls.ready and not handshaken:
            self._frame_since = None
            if not self._identified(tls):
                return b""
        return plain

    def _identified(self, tls: TlsStream) -> bool:
        """With mutual TLS, the certificate's identity must be a sender's (or an
        administrator's); anything it sends is read only once it is known."""
        if not self.door.mutual:
            return True
        ident, refusal, cn = self.door.identify(tls.peercert())
        if refusal is not None:
            who = f"certificate CN {cn!r}" + (
                f", identity {ident.name!r} with role {ident.role!r}" if ident
                else ": no identity has it")
            self.door.refused(self.source, self.peer, refusal, who)
            assert self.transport is not None
            self.transport.abort()
            return False
        self.sender = ident
        return True

    def check_timers(self, now: float, idle_s: float, frame_s: float) -> str | None:
        """Close the connection when a frame took longer than ``frame_s`` from its start
        block, or nothing came for ``idle_s`` while no answer is owed."""
        t = self.transport
        if t is None or t.is_closing():
            return None
        late = self._frame_since is not None and now - self._frame_since > frame_s
        if late and self._tls is not None and not self._tls.ready:
            self.door.refused(self.source, self.peer, "tls_handshake",
                              f"not complete within {frame_s:g} s (listeners[].frame_deadline_s)")
            t.abort()
            return "tls_handshake"
        if late:
            self._frame_since = None
            self.door.cut(self.peer, "frame_deadline",
                          f"a frame not complete {frame_s:g} s after it started "
                          "(listeners[].frame_deadline_s)")
            self._close_when_answered()
            return "frame_deadline"
        if not self._owed and now - self._last_seen > idle_s:
            self.door.cut(self.peer, "idle", f"nothing received for {idle_s:g} s "
                                             "(listeners[].idle_timeout_s)")
            self._close()
            return "idle"
        return None

    def drain(self) -> None:
        """The gateway is stopping: read no more and close once every answer owed is
        written. A frame not complete yet is dropped unanswered (the sender sends it again
        to the next gateway), not quarantined as cut off."""
        t = self.transport
        if t is None or t.is_closing():
            return
        self._eof = True
        self.framer.close()
        self._reading()
        if not self._owed:
            self._close()

    def abort(self) -> None:
        """Cut the connection: what it is still owed goes unanswered (the sender resends,
        and a message already committed is recognised as a resend)."""
        if self.transport is not None:
            self.transport.abort()

    def _close(self) -> None:
        """Close after what is written (a TLS session ends with its close_notify)."""
        if self._tls is not None:
            self._tls.close_notify()
        if self.transport is not None:
            self.transport.close()

    def _close_when_answered(self) -> None:
        """Read no more; the bytes of the open frame are quarantined as cut off, and the
        connection closes once every answer owed is written."""
        self._eof = True
        self._reading()
        for chunk in self.framer.close():
            self._dispatch(chunk)
        if not self._owed:
            self._close()

    def pause_writing(self) -> None:
        self._write_full = True
        self._reading()

    def resume_writing(self) -> None:
        self._write_full = False
        self._reading()

    def data_received(self, data: bytes) -> None:
        if self._eof:  # cut off: what still arrives is not read
            return
        if self._tls is not None:
            data = self._decrypt(data)
        if data:
            self._take(data)
        if self._tls is not None and self._tls.closed_by_peer and not self._eof \
                and not self.eof_received():
            self._close()  # the client ended the session, nothing is owed

    def _take(self, data: bytes) -> None:
        """The sender's bytes (decrypted) into the framer, and the frame timer set."""
        now = self._last_seen = time.monotonic()
        chunks = self.framer.feed(data)
        for chunk in chunks:
            self._dispatch(chunk)
        if not self.framer.in_frame:
            self._frame_since = None
        elif self._frame_since is None or any(c.kind is not ChunkKind.PART for c in chunks):
            # a frame ended and the next one began
            self._frame_since = now

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
        self.door.release(self, self.source)
        if self._spill is not None:  # framer.close() ended the frame; defensive
            self._spill.close()
            self._spill = None
        if self._on_close:
            self._on_close(self)

    def _dispatch(self, chunk: Chunk) -> None:
        kind = chunk.kind
        if kind is ChunkKind.PART:
            if self._spill is None:
                # open across reads until the frame ends; closed in _after_spill
                self._spill = tempfile.TemporaryFile(prefix="jcgw-oversize-")  # noqa: SIM115
            self._spill.write(chunk.data)
            return
        if self._spill is not None:
            spill, self._spill = self._spill, None
            self._owe_later(self._after_spill(kind, spill, chunk.data),
                            close=kind is ChunkKind.TOO_LARGE, size=len(chunk.data))
            return
        if kind is ChunkKind.FRAME:
            slot = self._owe(size=len(chunk.data))
            if self._waiting is not None:
                self._waiting.append((slot, chunk.data))
            else:
                self._submit(slot, chunk.data)
        else:
            self._owe_later(self._refuse(kind, chunk.data), close=kind is ChunkKind.TOO_LARGE,
                            size=len(chunk.data))

    async def _refuse(self, kind: ChunkKind, data: bytes) -> bytes | None:
        """Quarantine what is not a frame; the answer to an oversize one."""
        if kind in (ChunkKind.OVERSIZE, ChunkKind.TOO_LARGE):
            return await self._refuse_oversize(data)
        reason = ("bytes outside MLLP framing" if kind is ChunkKind.GARBAGE
                  else "MLLP frame cut off before its end marker")
        await self.ingestor.bad_bytes(self.adapter, data, self.peer, reason)
        return None

    async def _after_spill(self, kind: ChunkKind, spill: IO[bytes], tail: bytes) -> bytes | None:
        """An oversize frame whose first parts went to disk: quarantined whole, one such
        frame of the listener at a time, so that only one is ever read back into memory."""
        try:
            async with self.door.one_big_frame:
                spill.seek(0)
                whole = spill.read() + tail
                return await self._refuse(kind, whole)
        finally:
            spill.close()

    def _submit(self, slot: _Slot, data: bytes) -> None:
        big = self.ingestor.parses_elsewhere(self.adapter, data)
        if big:
            self._waiting = deque()

        def answered(reply: Reply | None) -> None:
            self._pay(slot, None if reply is None else reply.body)
            if big:
                self._follow()

        self.ingestor.submit(self.adapter, data, self.peer, answered, sender=self.sender)

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

    def _owe(self, close: bool = False, size: int = 0) -> _Slot:
        slot = _Slot(close, size)
        self._owed.append(slot)
        self._owed_bytes += size
        self._reading()
        return slot

    def _write(self, data: bytes) -> None:
        if self._tls is not None:
            self._tls.send(data)
        elif self.transport is not None:
            self.transport.write(data)

    def _reading(self) -> None:
        """Stop reading while too much is owed (frames or bytes), while the sender does not
        read its answers, or once the connection is being closed; go on when that eased."""
        t = self.transport
        if t is None or t.is_closing():
            return
        limit = self.framer.max_frame
        if not self._paused:
            if (self._eof or self._write_full or len(self._owed) >= MAX_IN_FLIGHT
                    or self._owed_bytes >= limit):
                t.pause_reading()
                self._paused = True
        elif not (self._eof or self._write_full or len(self._owed) >= MAX_IN_FLIGHT // 2
                  or self._owed_bytes >= limit // 2):
            t.resume_reading()
            self._paused = False

    def _keep(self, task: asyncio.Future[Any]) -> None:
        """Hold a reference to ``task`` until it is done (the loop keeps only weak ones)."""
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _owe_later(self, work: Coroutine[Any, Any, bytes | None], close: bool = False,
                   size: int = 0) -> None:
        slot = self._owe(close, size)
        task = asyncio.ensure_future(work)
        self._keep(task)

        def finished(t: asyncio.Future[bytes | None]) -> None:
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
        self._owed_bytes -= slot.size
        owed = self._owed
        t = self.transport
        while owed and owed[0].ready:
            done = owed.popleft()
            if t is None or t.is_closing():
                continue
            if done.body is not None:  # bytes that are no message get no answer
                self._write(START + done.body + END)
                self._last_seen = time.monotonic()  # idle counts from the last answer too
            if done.close:
                log.warning("closing connection from %s after an oversize frame", self.peer)
                self._close()
        self._reading()
        if self._eof and not owed and t is not None and not t.is_closing():
            self._close()  # a half-closed connection, every answer written


class MLLPListener:
    """A listening MLLP server and the door its connections passed."""

    def __init__(self, server: asyncio.Server, door: Door) -> None:
        self.server = server
        self.door = door

    def close(self) -> None:
        """Stop accepting connections (open ones stay: see :meth:`drain`)."""
        self.server.close()

    async def wait_closed(self) -> None:
        await self.server.wait_closed()

    async def drain(self, timeout_s: float) -> int:
        """Stop accepting; every open connection stops reading, is written the answers it
        is owed (each after its commit) and is closed; the ones still open after
        ``timeout_s`` are cut off. Returns how many were cut off."""
        self.server.close()
        for conn in list(self.door.open):
            conn.drain()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while self.door.open and loop.time() < deadline:
            await asyncio.sleep(0.02)
        left = list(self.door.open)
        for conn in left:
            conn.abort()
        if left:
            log.warning("MLLP listener %s: %d connection(s) cut off at shutdown with answers "
                        "owed", self.door.name, len(left))
        return len(left)


async def start_mllp_server(ingestor: Ingestor, adapter: Adapter, listener: ListenerConfig,
                            *, metrics: Metrics | None = None,
                            identities: Identities | None = None) -> MLLPListener:
    """Listen for MLLP connections as ``listener`` says (address, TLS, allow-list, caps,
    timers); the server is returned started. ``identities`` maps client certificates
    (mutual TLS) to senders; ``metrics`` counts refusals and open connections."""
    door = Door(listener, metrics=metrics, identities=identities)
    loop = asyncio.get_running_loop()
    assert listener.port is not None  # the configuration requires it for MLLP
    server = await loop.create_server(
        lambda: MLLPProtocol(ingestor, adapter, door), listener.host, listener.port,
        reuse_address=True)
    door.run_sweeps(server)
    tls = ("plain TCP" if listener.tls is None else "mutual TLS" if door.mutual else "TLS")
    log.info("MLLP listener %s for %s on %s:%d (%s%s)", listener.name, adapter.name,
             listener.host, listener.port, tls,
             f", from {', '.join(listener.allow_from)}" if listener.allow_from else "")
    return MLLPListener(server, door)
