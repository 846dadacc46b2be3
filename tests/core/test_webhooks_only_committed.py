"""Prescription-warning webhooks go out for committed, new messages only: not for a resend,
not for a message whose commit failed."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from helpers import MLLPClient, ack_fields, eventually, free_port, make_config, sample

from gateway.app import STORE, build_app
from gateway.store.sqlite import SqliteStore

PRESCRIPTION = sample("rde_o11_prescription_utf8.hl7")  # 阿那曲唑片(瑞宁得): a warning


def _numbered(n: int) -> bytes:
    """The sample prescription under its own MSH-10 and prescription number (ORC-2)."""
    return (PRESCRIPTION.replace(b"RDE20261123000042", f"RDE2026112300{n:04d}".encode())
            .replace(b"CF20261123000456", f"CF2026112301{n:04d}".encode()))


@dataclass
class Rig:
    app: web.Application
    mllp_port: int
    pushed: list[dict[str, Any]]

    async def send(self, raw: bytes) -> str:
        client = await MLLPClient.connect(self.mllp_port)
        try:
            return ack_fields(await client.send(raw))["MSA"][1]
        finally:
            await client.close()

    async def pushed_documents(self, count: int) -> list[str]:
        """The prescriptions pushed, once ``count`` arrived and a moment passed in which
        one more would have arrived too."""
        await eventually(lambda: len(self.pushed) >= count, what=f"{count} webhook(s)")
        await asyncio.sleep(0.3)
        return [p["document_no"] for p in self.pushed]


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    pushed: list[dict[str, Any]] = []

    async def hook(request: web.Request) -> web.Response:
        body = orjson.loads(await request.read())
        if body["type"] == "prescription.warning":
            pushed.append(body)
        return web.json_response({"ok": True})

    receiver_app = web.Application()
    receiver_app.router.add_post("/hook", hook)
    receiver = TestServer(receiver_app, host="127.0.0.1")
    await receiver.start_server()
    mllp, sim = free_port(), free_port()
    cfg = make_config(tmp_path, mllp_port=mllp, http_port=0, simulator_port=sim,
                      platform_url=f"http://127.0.0.1:{sim}/fsi/api/inventory",
                      webhooks=[{"url": str(receiver.make_url("/hook")), "secret": "k"}])
    app = build_app(cfg)
    gw = TestServer(app, host="127.0.0.1")
    await gw.start_server()
    try:
        yield Rig(app, mllp, pushed)
    finally:
        await gw.close()
        await receiver.close()


async def test_a_resent_prescription_is_not_pushed_again(rig: Rig) -> None:
    assert await rig.send(_numbered(1)) == "AA"
    assert await rig.send(_numbered(1)) == "AA"  # the resend: acknowledged again
    assert await rig.send(_numbered(2)) == "AA"
    assert await rig.pushed_documents(2) == ["CF20261123010001", "CF20261123010002"]


async def test_a_prescription_whose_commit_failed_is_not_pushed(
        rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    store = rig.app[STORE]
    assert isinstance(store, SqliteStore)
    write_rows = store._write_rows
    failures = [sqlite3.OperationalError("database or disk is full")]

    def full_disk_once(*args: Any) -> Any:
        if failures:
            raise failures.pop()
        return write_rows(*args)

    monkeypatch.setattr(store, "_write_rows", full_disk_once)
    assert await rig.send(_numbered(3)) == "AE"  # not stored: the HIS sends it again
    assert await rig.send(_numbered(4)) == "AA"
    assert await rig.send(_numbered(3)) == "AA"  # the resend after the failure
    assert await rig.pushed_documents(2) == ["CF20261123010004", "CF20261123010003"]
