"""MLLP framing as a pure byte-stream state machine: <VT> payload <FS><CR>.

Feeding bytes yields complete frames and, separately, whatever does not belong:
bytes outside any frame, a frame that was never closed, a frame over the size
limit. Nothing is thrown away; the caller quarantines what is not a frame.

The framer holds at most ``max_frame`` bytes plus the bytes of one ``feed``: bytes outside
a frame are handed back at once, and a frame growing past ``max_frame`` is handed back in
parts as it arrives (``PART`` chunks, then the chunk that ends it), for the caller to keep
out of memory.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

__all__ = ["END", "START", "Chunk", "ChunkKind", "MLLPFramer", "frame"]

START = b"\x0b"
END = b"\x1c\x0d"


class ChunkKind(StrEnum):
    """What a piece of the stream turned out to be."""

    FRAME = "frame"
    GARBAGE = "garbage"  # bytes outside <VT>…<FS><CR>
    OVERSIZE = "oversize"  # a complete frame larger than the limit
    TRUNCATED = "truncated"  # a frame cut off by a new <VT> or the end of the connection
    TOO_LARGE = "too_large"  # an oversize frame past the hard cap: the connection must close
    # the first bytes of a frame over the limit; more follow, then the chunk that ends it
    # (OVERSIZE, TRUNCATED or TOO_LARGE) with the last bytes
    PART = "part"


@dataclass(frozen=True, slots=True)
class Chunk:
    """A frame payload or bytes to quarantine."""

    kind: ChunkKind
    data: bytes


def frame(payload: bytes) -> bytes:
    """Wrap a payload in MLLP framing."""
    return START + payload + END


class MLLPFramer:
    """Incremental MLLP decoder; ``hard_cap`` bounds an oversize frame (in all its parts)."""

    __slots__ = ("_buf", "_in_frame", "_scan", "_spilled", "hard_cap", "max_frame")

    def __init__(self, max_frame: int = 1_048_576, hard_cap: int | None = None) -> None:
        self.max_frame = max_frame
        self.hard_cap = hard_cap if hard_cap is not None else max(64 * 1024 * 1024, max_frame)
        self._buf = bytearray()
        self._in_frame = False
        self._scan = 0  # where to resume looking for <FS><CR> inside the open frame
        self._spilled = 0  # bytes of the open frame already handed back as PART chunks

    def feed(self, data: bytes) -> list[Chunk]:
        """Add bytes; return the chunks they completed, in stream order."""
        buf = self._buf
        buf += data
        out: list[Chunk] = []
        pos = 0
        n = len(buf)
        while pos < n:
            if not self._in_frame:
                s = buf.find(START, pos)
                stop = n if s < 0 else s
                if bytes(buf[pos:stop]).strip(b"\r\n\t "):
                    out.append(Chunk(ChunkKind.GARBAGE, bytes(buf[pos:stop])))
                if s < 0:
                    pos = n
                    break
                pos = s + 1
                self._in_frame = True
                self._scan = pos
            e = buf.find(END, self._scan)
            restart = buf.find(START, self._scan, e if e >= 0 else n)
            if restart >= 0:  # a new frame began before this one ended
                out.append(Chunk(ChunkKind.TRUNCATED, bytes(buf[pos:restart])))
                self._in_frame = False
                self._spilled = 0
                pos = restart
                continue
            if e < 0:
                self._scan = max(pos, n - 1)  # <FS> may be the last byte, <CR> still to come
                if self._spilled + n - pos > self.hard_cap:
                    out.append(Chunk(ChunkKind.TOO_LARGE, bytes(buf[pos:])))
                    self._in_frame = False
                    self._spilled = 0
                    pos = n
                elif n - pos - 1 > self.max_frame:
                    # over the limit whatever follows (even if the last byte is the <FS> of
                    # <FS><CR>): hand the bytes on instead of holding them, all but that last
                    out.append(Chunk(ChunkKind.PART, bytes(buf[pos:n - 1])))
                    self._spilled += n - 1 - pos
                    pos = self._scan = n - 1
                break
            payload = bytes(buf[pos:e])
            over = self._spilled > 0 or len(payload) > self.max_frame
            out.append(Chunk(ChunkKind.OVERSIZE if over else ChunkKind.FRAME, payload))
            self._in_frame = False
            self._spilled = 0
            pos = e + 2
        del buf[:pos]
        if self._in_frame:
            self._scan -= pos
        return out

    def close(self) -> list[Chunk]:
        """The connection ended: an open frame is truncated, leftovers are garbage."""
        out = []
        if self._buf or self._spilled:
            data = bytes(self._buf)
            if self._in_frame:
                out.append(Chunk(ChunkKind.TRUNCATED, data))
            elif data.strip(b"\r\n\t "):
                out.append(Chunk(ChunkKind.GARBAGE, data))
        self._buf.clear()
        self._in_frame = False
        self._scan = 0
        self._spilled = 0
        return out

    @property
    def in_frame(self) -> bool:
        """Whether a frame has started (its start block was read) and not yet ended."""
        return self._in_frame

    @property
    def buffered(self) -> int:
        """Bytes held waiting for the end of a frame."""
        return len(self._buf)
