"""Uploads count against http.max_body_bytes as they stream; a body trickled in slowly
is cut off at http.read_timeout_s. Nothing of a refused upload stays on disk."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from api_helpers import API, Launcher
from helpers import ROOT

CROSSWALK_CSV = (ROOT / "config" / "crosswalk.sample.csv").read_bytes()


def _uploads_left(tmp: Path) -> list[str]:
    directory = tmp / "var" / "uploads"
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


async def test_a_streamed_upload_over_the_body_limit_is_refused_and_removed(
        launcher: Launcher) -> None:
    gw = await launcher.start(http={"host": "127.0.0.1", "port": 0, "max_body_bytes": 4096})
    big = CROSSWALK_CSV + b"\n".join(
        "H33010200015,Y%06d,比卡鲁胺片 50mg*28片,XL02BBB011A001010104138,盒,片,28,2026-01-01,"
        .encode() % i for i in range(400))
    assert len(big) > 4096
    status, body = await gw.api("POST", "/import?format=csv", data=big,
                                headers={"Content-Type": "text/csv"})
    assert status == 413
    assert "max_body_bytes (4096 bytes)" in body["error"]
    assert _uploads_left(launcher.tmp) == []
    # a small one is still taken
    status, _ = await gw.api("GET", "/entries")
    assert status == 200


async def test_a_multipart_upload_over_the_limit_is_refused(launcher: Launcher) -> None:
    import aiohttp
    gw = await launcher.start(http={"host": "127.0.0.1", "port": 0, "max_body_bytes": 4096})
    form = aiohttp.FormData()
    form.add_field("file", CROSSWALK_CSV * 20, filename="对码.csv", content_type="text/csv")
    status, _ = await gw.api("POST", "/import", data=form)
    assert status == 413
    assert _uploads_left(launcher.tmp) == []


async def _trickle(port: int, path: str, body: bytes, pause: float) -> tuple[bytes, float]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/csv\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode()
    writer.write(head)
    started = time.monotonic()

    async def send_slowly() -> None:
        for i in range(len(body)):
            writer.write(body[i:i + 1])
            await writer.drain()
            await asyncio.sleep(pause)

    sending = asyncio.ensure_future(send_slowly())
    try:
        answer = await asyncio.wait_for(reader.read(4096), 10)
        took = time.monotonic() - started
        # and the gateway closed the connection rather than wait for the rest
        closed = await asyncio.wait_for(reader.read(), 5)
        assert closed == b"" or closed.startswith(b"{")
    finally:
        sending.cancel()
        writer.close()
    return answer, took


async def test_a_body_trickled_byte_by_byte_is_cut_off_at_the_read_timeout(
        launcher: Launcher) -> None:
    gw = await launcher.start(http={"host": "127.0.0.1", "port": 0, "read_timeout_s": 1})
    port = gw.server.port
    assert port is not None
    answer, took = await _trickle(port, API + "/entries", b'{"hospital_id": "H33010200015"}'
                                  * 10, 0.2)
    assert answer.startswith(b"HTTP/1.1 408"), answer[:80]
    assert b"read_timeout_s" in answer
    assert took < 5
    answer, took = await _trickle(port, API + "/import?format=csv", CROSSWALK_CSV, 0.2)
    assert answer.startswith(b"HTTP/1.1 408"), answer[:80]
    assert took < 5
    assert _uploads_left(launcher.tmp) == []
