"""What the MLLP framer holds is bounded by max_frame_bytes (plus one read), whatever the
sender does: bytes outside frames are handed back at once, a frame over the limit in parts
that together are the whole frame."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from gateway.ingest.framing import END, START, Chunk, ChunkKind, MLLPFramer, frame

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
