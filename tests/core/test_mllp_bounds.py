"""What the MLLP framer holds is bounded by max_frame_bytes (plus one read), whatever the
sender does: bytes outside frames are handed back at once, a frame over the limit in parts
that together are the whole frame; and the listener stops reading while a connection owes
too much or its sender does not read the answers."""

from __future__ import annotations

from collections.abc import Callable

from hypothesis import given
from hypothesis import strategies as st

from adapters.base import Reply
from gateway.config import ListenerConfig
from gateway.ingest.door import Door
from gateway.ingest.framing import END, START, Chunk, ChunkKind, MLLPFramer, frame
from gateway.ingest.mllp import MLLPProtocol

MSG = "MSH|^~\\&|HIS|ZJSRMYY|||20261123||RDS^O13|1|P|2.5\rPID|1||0001||张^伟\r".encode()
LIMIT = 1024


def _feed(f: MLLPFramer, stream: bytes, size: int) -> list[Chunk]:
    out: list[Chunk] = []
    for pos in range(0, len(stream), size):
        out += f.feed(stream[pos:pos + size])
        assert f.buffered <= LIMIT + 1 + size
    return out


def _joined(chunks: list[Chunk]) -> list[tuple[ChunkKind, bytes]]:
    """Parts joined to the chunk that ends them, as the listener puts them together."""
    out: list[tuple[ChunkKind, bytes]] = []
    parts = b""
    for c in chunks:
        if c.kind is ChunkKind.PART:
            parts += c.data
        else:
            out.append((c.kind, parts + c.data))
            parts = b""
    assert parts == b""
    return out


def test_an_oversize_frame_is_handed_back_in_parts_never_held_whole() -> None:
    big = MSG + b"NTE|1||" + b"X" * 200_000 + b"\r"
    f = MLLPFramer(max_frame=LIMIT)
    chunks = _feed(f, frame(big) + frame(MSG), 4096)
    assert sum(c.kind is ChunkKind.PART for c in chunks) > 10
    assert _joined(chunks) == [(ChunkKind.OVERSIZE, big), (ChunkKind.FRAME, MSG)]
    assert f.buffered == 0


def test_bytes_outside_frames_are_never_held() -> None:
    f = MLLPFramer(max_frame=LIMIT)
    chunks = _feed(f, b"junk " * 50_000 + frame(MSG) + b"more junk" * 10_000, 4096)
    assert f.buffered == 0
    kinds = [c.kind for c in chunks]
    assert kinds.count(ChunkKind.FRAME) == 1 and set(kinds) == {ChunkKind.FRAME,
                                                                 ChunkKind.GARBAGE}


def test_an_oversize_frame_past_the_hard_cap_counts_its_parts() -> None:
    f = MLLPFramer(max_frame=LIMIT, hard_cap=50_000)
    chunks = _feed(f, START + b"y" * 60_000, 4096)
    (kind, data), *after = _joined(chunks)
    assert kind is ChunkKind.TOO_LARGE and 50_000 < len(data) <= 50_000 + 4096
    # the listener closes the connection there; the framer is out of the frame
    assert {k for k, _ in after} == {ChunkKind.GARBAGE}
    assert f.buffered == 0 and not f.in_frame


def test_an_oversize_frame_cut_off_is_truncated_whole() -> None:
    f = MLLPFramer(max_frame=LIMIT)
    cut = b"z" * 10_000
    chunks = _feed(f, START + cut, 1000) + f.close()
    assert _joined(chunks) == [(ChunkKind.TRUNCATED, cut)]
    f = MLLPFramer(max_frame=LIMIT)
    chunks = _feed(f, START + cut + frame(MSG), 1000)
    assert _joined(chunks) == [(ChunkKind.TRUNCATED, cut), (ChunkKind.FRAME, MSG)]


@given(st.integers(min_value=1, max_value=3000), st.integers(min_value=0, max_value=4000))
def test_any_split_of_an_oversize_frame_gives_it_back_whole(size: int, extra: int) -> None:
    """Also when a read ends between <FS> and <CR>."""
    body = (MSG * 40)[: LIMIT + extra]
    f = MLLPFramer(max_frame=LIMIT)
    out: list[Chunk] = []
    stream = frame(body) + frame(MSG)
    for pos in range(0, len(stream), size):
        out += f.feed(stream[pos:pos + size])
    kind = ChunkKind.OVERSIZE if len(body) > LIMIT else ChunkKind.FRAME
    assert _joined(out) == [(kind, body), (ChunkKind.FRAME, MSG)]
    assert END not in b"".join(c.data for c in out)


class _Transport:
    """Just enough of a transport to see whether the listener reads."""

    def __init__(self) -> None:
        self.reading = True
        self.written: list[bytes] = []

    def get_extra_info(self, name: str) -> object:
        return ("10.20.8.7", 40000) if name == "peername" else None

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def is_closing(self) -> bool:
        return False

    def write(self, data: bytes) -> None:
        self.written.append(data)


class _Ingestor:
    """Holds every message unanswered until told."""

    def __init__(self) -> None:
        self.waiting: list[Callable[[Reply | None], None]] = []

    def parses_elsewhere(self, adapter: object, raw: bytes) -> bool:
        return False

    def submit(self, adapter: object, raw: bytes, peer: str,
               done: Callable[[Reply | None], None], *, sender: object = None) -> None:
        self.waiting.append(done)


def _connection(max_frame: int) -> tuple[MLLPProtocol, _Transport, _Ingestor]:
    door = Door(ListenerConfig(name="x", adapter="hl7v2", port=1, max_frame_bytes=max_frame))
    ingestor = _Ingestor()
    conn = MLLPProtocol(ingestor, object(), door)  # type: ignore[arg-type]
    transport = _Transport()
    conn.connection_made(transport)  # type: ignore[arg-type]
    return conn, transport, ingestor


def test_reading_stops_while_the_frames_owed_an_answer_reach_max_frame_bytes() -> None:
    conn, transport, ingestor = _connection(4096)
    payload = MSG + b"NTE|1||" + b"x" * 1400 + b"\r"  # ~1.5 KB
    conn.data_received(frame(payload) * 2)
    assert transport.reading  # 3 KB owed
    conn.data_received(frame(payload))
    assert not transport.reading  # 4.5 KB owed: no more read until answers go out
    for done in ingestor.waiting:
        done(Reply(b"MSH|ACK"))
    assert transport.reading and len(transport.written) == 3


def test_reading_stops_while_the_sender_does_not_read_its_answers() -> None:
    conn, transport, _ = _connection(4096)
    conn.pause_writing()
    assert not transport.reading
    conn.resume_writing()
    assert transport.reading
