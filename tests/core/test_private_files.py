"""The database, its WAL and shared memory, the data directory and uploads are the
gateway's user's only, whatever the umask it was started with."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientSession
from helpers import CROSSWALK, MLLPClient, ack_fields, sample

from gateway.crosswalk import http as crosswalk_http
from gateway.store.sqlite import SqliteStore


@pytest.fixture(autouse=True)
def permissive_umask() -> Iterator[None]:
    """A umask that would leave files readable by everyone: what the gateway makes must
    not depend on the one it is started with."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_database_wal_shm_and_data_dir_are_owner_only(gateway, tmp_path: Path) -> None:
    client = await MLLPClient.connect(gateway.mllp_port)
    assert ack_fields(await client.send(sample("rds_o13_dispense_utf8.hl7")))["MSA"][1] == "AA"
    await client.close()
    var = tmp_path / "var"
    assert _mode(var) == 0o700
    for name in ("gateway.db", "gateway.db-wal", "gateway.db-shm"):
        assert _mode(var / name) == 0o600, name


async def test_files_an_earlier_release_left_open_are_tightened(tmp_path: Path) -> None:
    var = tmp_path / "var"
    var.mkdir(mode=0o755)
    db = var / "gateway.db"
    db.touch(mode=0o644)
    os.chmod(db, 0o644)
    store = SqliteStore(db)
    await store.start()
    try:
        assert (_mode(var), _mode(db)) == (0o700, 0o600)
        assert _mode(var / "gateway.db-wal") == 0o600
    finally:
        await store.close()


async def test_an_uploaded_crosswalk_is_owner_only_while_it_is_read(
        gateway, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[int, int]] = []
    upload = crosswalk_http._upload

    async def watched(request: Any) -> Any:
        path, name, fields = await upload(request)
        seen.append((_mode(path.parent), _mode(path)))
        return path, name, fields

    monkeypatch.setattr(crosswalk_http, "_upload", watched)
    async with ClientSession() as http, http.post(
            gateway.url("/api/mappings/import?format=csv"), data=CROSSWALK.read_bytes(),
            headers={"Content-Type": "text/csv"}) as r:
        assert r.status == 200, await r.text()
    assert seen == [(0o700, 0o600)]
