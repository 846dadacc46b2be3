"""TLS inside an MLLP connection's own protocol, over memory BIOs.

The listener accepts plain TCP and runs TLS itself instead of handing the socket to the
event loop's TLS layer: the allow-list and the connection caps are checked before any TLS
work, a failed handshake (no client certificate, another CA) is seen and counted like any
other refusal, the handshake's deadline is the listener's own timer, and no byte can slip
past the TLS layer between accepting the connection and starting TLS (uvloop starts
reading as soon as a connection is made).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from typing import Any

__all__ = ["TlsStream"]

_READ = 65_536


class TlsStream:
    """The server side of one TLS connection on ``transport``."""

    __slots__ = ("_in", "_obj", "_out", "closed_by_peer", "ready", "transport")

    def __init__(self, ctx: ssl.SSLContext, transport: asyncio.Transport) -> None:
        self._in = ssl.MemoryBIO()
        self._out = ssl.MemoryBIO()
        self._obj = ctx.wrap_bio(self._in, self._out, server_side=True)
        self.transport = transport
        self.ready = False  # the handshake is complete
        self.closed_by_peer = False  # the client sent its close_notify

    def receive(self, data: bytes) -> bytes:
        """Bytes from the network in, application bytes out (none while the handshake
        goes on). A failed handshake raises ``ssl.SSLError``, its alert already sent."""
        self._in.write(data)
        try:
            if not self.ready:
                try:
                    self._obj.do_handshake()
                except ssl.SSLWantReadError:
                    return b""
                self.ready = True
            return self._read_all()
        finally:
            self._flush()

    def _read_all(self) -> bytes:
        out = []
        while True:
            try:
                chunk = self._obj.read(_READ)
            except ssl.SSLWantReadError:
                break
            except ssl.SSLZeroReturnError:
                chunk = b""
            if not chunk:  # no "want read": the client's close_notify
                self.closed_by_peer = True
                break
            out.append(chunk)
        return b"".join(out)

    def send(self, data: bytes) -> None:
        """Application bytes to the client."""
        self._obj.write(data)
        self._flush()

    def peercert(self) -> dict[str, Any] | None:
        """The verified client certificate, as ``SSLSocket.getpeercert()`` gives it."""
        return self._obj.getpeercert() if self.ready else None

    def close_notify(self) -> None:
        """Tell the client the session ends (best effort: the connection closes anyway)."""
        if not self.ready:
            return
        # SSLWantReadError: our close_notify is out, theirs is not waited for
        with contextlib.suppress(ssl.SSLError, OSError):
            self._obj.unwrap()
        self._flush()

    def _flush(self) -> None:
        pending = self._out.read()
        if pending and not self.transport.is_closing():
            self.transport.write(pending)
