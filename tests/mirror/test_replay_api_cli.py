"""Dead letters and replay from the HTTP API and the CLI."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web
from factory import HOSPITALS, dispense, incoming

from gateway.app import STORE
from gateway.cli.main import main
from gateway.mirror.http import add_mirror_routes
from gateway.security.audit_log import RECORDER, Recorder, shell_identity
from gateway.store.audit_rows import AuditLogQuery
from gateway.store.base import DeliveryUpdate, OutboxQuery
from gateway.store.sqlite import SqliteStore


async def _dead_and_delivered(store: SqliteStore) -> tuple[int, int]:
    a = (await store.commit(incoming([dispense(1)], [("nhsa", 1)]))).outbox_ids[0]
    b = (await store.commit(incoming([dispense(2, HOSPITALS[1])], [("nhsa", 1)]))).outbox_ids[0]
    await store.record_deliveries([DeliveryUpdate(a, "dead", "infcode -1: 医疗目录编码无效",
                                                  at=time.time()),
                                   DeliveryUpdate(b, "delivered", at=time.time())])
    return a, b


async def test_http_api_lists_inspects_and_replays_refusing_delivered(
        tmp_path: Path, aiohttp_client) -> None:  # type: ignore[no-untyped-def]
    store = SqliteStore(tmp_path / "gw.db")
    await store.start()
    dead, delivered = await _dead_and_delivered(store)
    app = web.Application()
    app[STORE] = store
    add_mirror_routes(app)
    client = await aiohttp_client(app)
    listed = await (await client.get(
        f"/api/deadletters?transaction=3505&hospital={HOSPITALS[0]}")).json()
    assert [r["id"] for r in listed] == [dead] and "医疗目录编码无效" in listed[0]["last_error"]
    one = await (await client.get(f"/api/outbox/{dead}")).json()
    assert one["event"]["document_no"] == dispense(1).document_no
    assert (await client.get("/api/outbox/999")).status == 404
    r = await client.post("/api/replay", json={"ids": [dead, delivered]})
    assert r.status == 409
    body = await r.json()
    assert body["queued"] == [dead] and body["refused"] == [delivered]
    r = await client.post("/api/replay", json={"ids": [delivered], "force": True})
    assert r.status == 200 and (await r.json())["queued"] == [delivered]
    bal = await (await client.get("/api/mirror/balance")).json()
    assert bal["nhsa"] == {"received": 2, "delivered": 0, "queued": 2, "dead": 0, "held": 0}
    assert (await client.post("/api/replay", json={"since": "yesterday"})).status == 400
    await store.close()


def test_cli_lists_and_replays_by_hospital_and_time(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    db = tmp_path / "gw.db"

    async def prepare() -> tuple[int, int]:
        store = SqliteStore(db)
        await store.start()
        try:
            return await _dead_and_delivered(store)
        finally:
            await store.close()
    dead, delivered = asyncio.run(prepare())
    cfg = tmp_path / "gw.yaml"
    cfg.write_text(yaml.safe_dump({"store": {"sqlite_path": str(db)}}), "utf-8")
    assert main(["deadletters", "-c", str(cfg)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{dead}\tdead\tnhsa\t{HOSPITALS[0]}")
    assert main(["replay", "-c", str(cfg), "--id", str(delivered)]) == 1
    assert "already delivered" in capsys.readouterr().err
    assert main(["replay", "-c", str(cfg), "--hospital", HOSPITALS[0],
                 "--since", "2000-01-01T00:00:00", "--to", "backup"]) == 0
    assert "1 outbox row(s) queued again for backup" in capsys.readouterr().out
    assert main(["deadletters", "-c", str(cfg), "--state", "pending",
                 "--destination", "backup"]) == 0
    assert "\tpending\tbackup\t" in capsys.readouterr().out
    assert main(["replay", "-c", str(cfg)]) == 2  # says what to name
    assert main(["ledger-poison", "-c", str(cfg), "--refold", "--seq", "7"]) == 0

    async def logged() -> list[Any]:
        store = SqliteStore(db)
        await store.start()
        try:
            return await store.audit_log.entries(AuditLogQuery())
        finally:
            await store.close()
    # no gateway authenticated anyone: the entries name the account that ran the command
    refused_try, replayed, refolded = asyncio.run(logged())
    assert refused_try.before["ids"] == [delivered] and refused_try.after["refused"] == 1
    assert (replayed.action, replayed.role) == ("mirror.replay", "shell")
    assert replayed.identity == shell_identity()[0]
    assert replayed.before["hospital_id"] == HOSPITALS[0] and replayed.target == "backup"
    assert replayed.after["queued"] == 1 and replayed.after["refused"] == 0
    assert (refolded.action, refolded.before, refolded.after) == (
        "ledger.poison.refold", {"seqs": [7]}, {"queued": 0})


async def test_listings_and_replays_name_their_rows_and_are_capped(
        tmp_path: Path, aiohttp_client) -> None:  # type: ignore[no-untyped-def]
    store = SqliteStore(tmp_path / "gw.db")
    await store.start()
    dead, delivered = await _dead_and_delivered(store)
    app = web.Application()
    app[STORE] = store
    app[RECORDER] = Recorder(lambda: store.audit_log)
    add_mirror_routes(app)
    client = await aiohttp_client(app)

    async def refused(method: str, path: str, **kw: object) -> str:
        r = await client.request(method, path, **kw)
        assert r.status == 400, await r.text()
        body = await r.json()  # the API's error format
        assert body["problems"] == [body["error"]]
        return str(body["error"])

    # nothing named: refused, saying what to send
    assert "from_id/to_id" in await refused("GET", "/api/deadletters")
    await refused("GET", "/api/deadletters?transaction=3505")  # a kind of row names none
    # "everything" only with an explicit cap, also when forcing delivered rows again
    assert '{"all": true, "limit": 500}' in await refused("POST", "/api/replay",
                                                          json={"all": True, "force": True})
    assert "explicit limit" in await refused("GET", "/api/deadletters?all=true")
    assert "between 1 and 5000" in await refused("GET", "/api/deadletters?all=1&limit=5001")
    assert "between 1 and 5000" in await refused(
        "GET", f"/api/deadletters?hospital={HOSPITALS[0]}&limit=0")
    assert (await store.list_outbox(OutboxQuery(states=("pending",)))) == []  # nothing replayed

    every = await (await client.get("/api/deadletters?all=true&limit=1&states=dead,delivered"
                                    )).json()
    assert [r["id"] for r in every] == [dead]  # the cap holds
    by_id = await (await client.get(f"/api/deadletters?from_id={delivered}&to_id={delivered}"
                                    "&states=delivered")).json()
    assert [r["id"] for r in by_id] == [delivered]
    r = await client.post("/api/replay", json={"all": True, "force": True, "limit": 10})
    assert r.status == 200 and sorted((await r.json())["queued"]) == sorted([dead, delivered])

    # the replay is in the audit log with the filter it was given and what it did
    [entry] = await store.audit_log.entries(AuditLogQuery(action="mirror.replay"))
    assert entry.identity == "local" and entry.role == "admin"
    assert entry.before["limit"] == 10 and entry.before["force"] is True
    assert entry.after["queued"] == 2 and entry.after["refused"] == 0
    await store.close()
