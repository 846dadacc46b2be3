"""MLLP framing fed byte by byte and in odd chunks, with no socket."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from gateway.ingest.framing import Chunk, ChunkKind, MLLPFramer, frame

MSG = "MSH|^~\\&|HIS|ZJSRMYY|||20261123||RDS^O13|1|P|2.5\rPID|1||0001||张^伟\r".encode()


def test_frames_split_anywhere_are_reassembled() -> None:
    stream = frame(MSG) + b"\r\n" + frame(MSG + b"X")
    for cut in range(1, len(stream)):
        f = MLLPFramer()
        chunks = f.feed(stream[:cut]) + f.feed(stream[cut:])
        assert chunks == [Chunk(ChunkKind.FRAME, MSG), Chunk(ChunkKind.FRAME, MSG + b"X")]


@given(st.lists(st.integers(min_value=1, max_value=40), min_size=1, max_size=60))
def test_any_chunking_gives_the_same_frames(sizes: list[int]) -> None:
    stream = frame(MSG) * 3
    f = MLLPFramer()
    out: list[Chunk] = []
    pos = 0
    for size in sizes:
        out += f.feed(stream[pos:pos + size])
        pos += size
    out += f.feed(stream[pos:])
    assert out == [Chunk(ChunkKind.FRAME, MSG)] * 3


def test_oversize_frame_is_kept_whole_and_flagged() -> None:
    f = MLLPFramer(max_frame=10)
    assert f.feed(frame(b"x" * 11)) == [Chunk(ChunkKind.OVERSIZE, b"x" * 11)]


def test_frame_past_hard_cap_must_close_the_connection() -> None:
    f = MLLPFramer(max_frame=10, hard_cap=100)
    out = f.feed(b"\x0b" + b"y" * 150)
    assert out == [Chunk(ChunkKind.TOO_LARGE, b"y" * 150)]
    assert f.buffered == 0


def test_garbage_truncation_and_close() -> None:
    f = MLLPFramer()
    out = f.feed(b"hello\x0bcut\x0b" + MSG + b"\x1c\r\x0bpartial")
    assert out == [Chunk(ChunkKind.GARBAGE, b"hello"), Chunk(ChunkKind.TRUNCATED, b"cut"),
                   Chunk(ChunkKind.FRAME, MSG)]
    assert f.close() == [Chunk(ChunkKind.TRUNCATED, b"partial")]
    assert f.feed(b"\r\n") == []  # line endings between frames are not garbage
