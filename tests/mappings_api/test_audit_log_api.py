"""The audit log through a whole gateway: every change made over the API is an entry under
the identity its token proves; tampering with the table is reported by the API and by
``jicai-gateway audit-log --verify`` (online and offline), on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import hashlib
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from api_helpers import SECURITY, TOKENS, as_
from helpers import HOSPITAL, ROOT, free_port, write_config
from pg import PG_DSN

from gateway.app import build_app
from gateway.cli.main import main
from gateway.config import load_config

ANASTROZOLE_HISUN = "XL02BGA045A001010104641"  # 阿那曲唑片 1mg×14 浙江海正
BICALUTAMIDE = "XL02BBB085A001010100665"  # 比卡鲁胺片 50mg
CATALOG = ROOT / "tests" / "data" / "codes" / "nhsa_drug_catalog_sample.csv"
CONTRACTS = ROOT / "config" / "contracts.sample.csv"


@dataclass
class Audited:
    """A gateway started from a configuration file, with an HTTP session."""

    server: TestServer
    session: aiohttp.ClientSession
    config: Path

    async def call(self, method: str, path: str, who: str, *, expect: int | None = None,
                   headers: dict[str, str] | None = None, **kw: Any) -> Any:
        async with self.session.request(method, self.server.make_url(path),
                                        headers=as_(who, **(headers or {})), **kw) as r:
            body = await r.json() if r.content_type == "application/json" else await r.text()
            if expect is not None:
                assert r.status == expect, body
            return body

    async def log(self, **params: Any) -> list[dict[str, Any]]:
        found = await self.call("GET", "/api/audit-log", "陈静", params=params, expect=200)
        return list(found["entries"])

    async def verify(self) -> dict[str, Any]:
        return dict(await self.call("GET", "/api/audit-log/verify", "陈静", expect=200))

    async def cli(self, *argv: str) -> int:
        # the CLI blocks on urllib: in a thread, so that this loop keeps serving it
        return await asyncio.to_thread(main, ["audit-log", *argv])

    def cli_online(self, *argv: str) -> list[str]:
        return ["--url", str(self.server.make_url("/")).rstrip("/"), "--token",
                TOKENS["陈静"], *argv]


async def _start(tmp: Path, **extra: Any) -> Audited:
    sim = free_port()
    path = write_config(tmp, mllp_port=free_port(), http_port=0, simulator_port=sim,
                        platform_url=f"http://127.0.0.1:{sim}/fsi/api/inventory",
                        **{"security": SECURITY, **extra})
    server = TestServer(build_app(load_config(path), config_file=path), host="127.0.0.1")
    await server.start_server()
    return Audited(server, aiohttp.ClientSession(), path)


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[Audited]:
    gw = await _start(tmp_path)
    try:
        yield gw
    finally:
        await gw.session.close()
        await gw.server.close()


async def _changes(gw: Audited) -> None:
    """A pharmacist's day: add, correct, remove and import crosswalk entries."""
    entry = {"hospital_id": HOSPITAL, "item_code": "Y9990001",
             "national_code": ANASTROZOLE_HISUN, "item_name": "阿那曲唑片(海正)",
             "hospital_unit": "盒", "national_unit": "片", "factor": "14",
             "valid_from": "2026-01-01"}
    await gw.call("POST", "/api/mappings/entries", "李娜", json=entry, expect=201,
                  headers={"X-Operator": "%E4%B8%BB%E4%BB%BB"})  # "主任", only a note
    await gw.call("PUT", f"/api/mappings/entries/{HOSPITAL}/Y9990001", "王强",
                  params={"valid_from": "2026-01-01"},
                  json={"factor": "28", "note": "改为28片装"}, expect=200)
    await gw.call("DELETE", f"/api/mappings/entries/{HOSPITAL}/Y0012346", "李娜",
                  params={"valid_from": "2026-01-01"}, expect=200)
    csv_text = ("医疗机构编码,院内编码,国家医保编码,项目名称,院内单位,医保单位,换算系数,生效日期\n"
                f"{HOSPITAL},Y9990002,{BICALUTAMIDE},比卡鲁胺片,盒,片,28,2026-01-01\n"
                f"{HOSPITAL},Y9990003,{ANASTROZOLE_HISUN},阿那曲唑片,盒,片,14,2026-01-01\n")
    await gw.call("POST", "/api/mappings/import", "王强", data=csv_text.encode(),
                  params={"filename": "对码表.csv"}, expect=200)


async def test_every_change_through_the_api_is_logged_under_its_identity(
        gateway: Audited) -> None:
    gw = gateway
    [start] = await gw.log()
    assert (start["action"], start["identity"], start["role"]) == ("config.start", "gateway",
                                                                  "system")
    assert start["after"]["sha256"] == hashlib.sha256(gw.config.read_bytes()).hexdigest()
    assert start["prev_hash"] == "0" * 64

    await _changes(gw)
    await gw.call("POST", "/api/mappings/catalogs", "张伟", data=CATALOG.read_bytes(),
                  params={"version": "2025-first"}, headers={"Content-Type": "text/csv"},
                  expect=201)
    # the first contract's agreed volume changes from 36000 to 40000
    contracts = CONTRACTS.read_text("utf-8").replace(",36000,0.70,", ",40000,0.70,", 1)
    await gw.call("POST", "/ledger/contracts", "张伟", data=contracts.encode(),
                  headers={"Content-Type": "text/csv"}, expect=200)
    await gw.call("POST", "/ledger/poison/refold", "张伟", json={}, expect=200)
    await gw.call("POST", "/api/replay", "张伟", json={"all": True, "limit": 100}, expect=200)

    entries = (await gw.log())[1:]
    assert [(e["action"], e["identity"], e["role"]) for e in entries] == [
        ("crosswalk.add", "李娜", "pharmacist"),
        ("crosswalk.replace", "王强", "pharmacist"),
        ("crosswalk.delete", "李娜", "pharmacist"),
        ("crosswalk.import", "王强", "pharmacist"),
        ("crosswalk.import", "王强", "pharmacist"),
        ("catalog.import", "张伟", "admin"),
        ("ledger.contracts.import", "张伟", "admin"),
        ("ledger.poison.refold", "张伟", "admin"),
        ("mirror.replay", "张伟", "admin"),
    ]
    add, replace, delete, imp, _, catalog, contract, refold, replay = entries
    assert add["target"] == f"{HOSPITAL}/Y9990001" and add["hospital_id"] == HOSPITAL
    assert add["before"] is None and add["after"]["national_code"] == ANASTROZOLE_HISUN
    assert "主任" in add["detail"]  # what the caller stated is kept, as a note
    assert (replace["before"]["factor"], replace["after"]["factor"]) == ("14", "28")
    assert "改为28片装" in replace["detail"]
    assert delete["before"]["item_code"] == "Y0012346" and delete["after"] is None
    assert imp["after"]["national_code"] == BICALUTAMIDE and "对码表.csv" in imp["detail"]
    assert catalog["target"] == "drug/2025-first" and catalog["after"]["entries"] > 0
    assert contract["hospital_id"] == "H36070200012"
    assert (contract["before"]["agreed_volume"], contract["after"]["agreed_volume"]) == (
        "36000", "40000")
    assert refold["before"] == {"seqs": "all"} and refold["after"] == {"queued": 0}
    assert replay["before"]["limit"] == 100 and replay["after"]["queued"] == 0

    assert (await gw.verify()) == {"ok": True, "entries": 10, "broken_at": None,
                                   "reason": None, "head": entries[-1]["hash"]}
    assert await gw.cli(*gw.cli_online("--verify")) == 0


async def test_the_log_is_filtered_paged_and_for_auditors_only(gateway: Audited) -> None:
    gw = gateway
    await _changes(gw)
    assert {e["action"] for e in await gw.log(identity="李娜")} == {"crosswalk.add",
                                                                    "crosswalk.delete"}
    assert len(await gw.log(action="crosswalk.")) == 5
    assert len(await gw.log(action="crosswalk.import", hospital=HOSPITAL)) == 2
    assert await gw.log(hospital="H36070200012") == []
    assert await gw.log(since="2099-01-01T00:00:00") == []
    assert len(await gw.log(until="2099-01-01T00:00:00+08:00")) == 6
    first = await gw.call("GET", "/api/audit-log", "张伟", params={"limit": "2"}, expect=200)
    assert [e["id"] for e in first["entries"]] == [1, 2] and first["next_after_id"] == 2
    rest = await gw.log(after_id=first["next_after_id"], limit=1000)
    assert [e["id"] for e in rest] == [3, 4, 5, 6]
    # a pharmacist changes the crosswalk but does not read the audit log
    await gw.call("GET", "/api/audit-log", "李娜", expect=403)
    await gw.call("GET", "/api/audit-log/verify", "李娜", expect=403)
    await gw.call("GET", "/api/audit-log", "陈静", params={"limit": "1001"}, expect=400)
    await gw.call("GET", "/api/audit-log", "陈静", params={"since": "昨天"}, expect=400)


async def test_an_edited_entry_fails_the_api_and_both_cli_checks(gateway: Audited,
                                                                  capsys) -> None:  # type: ignore[no-untyped-def]
    gw = gateway
    await _changes(gw)
    assert (await gw.verify())["ok"]
    # someone with access to the database file makes the deletion look like another's
    con = sqlite3.connect(gw.config.parent / "var" / "gateway.db")
    with con:
        con.execute("UPDATE audit_log SET identity = '王强' WHERE action = 'crosswalk.delete'")
    con.close()
    verdict = await gw.verify()
    assert (verdict["ok"], verdict["broken_at"]) == (False, 4)
    assert "edited" in verdict["reason"]
    capsys.readouterr()
    assert await gw.cli(*gw.cli_online("--verify")) == 1
    assert "BROKEN at entry 4" in capsys.readouterr().err
    assert await gw.cli("--verify", "--offline", "-c", str(gw.config)) == 1
    assert "BROKEN at entry 4" in capsys.readouterr().err
    # listing still works (and shows the edited entry as it now reads)
    assert await gw.cli(*gw.cli_online("--identity", "王强")) == 0
    assert "crosswalk.delete" in capsys.readouterr().out


async def test_a_deleted_entry_is_reported_on_postgresql(tmp_path: Path, pg_schema: str,
                                                          capsys) -> None:  # type: ignore[no-untyped-def]
    import asyncpg

    gw = await _start(tmp_path, store={"backend": "postgres", "postgres_dsn": PG_DSN,
                                       "postgres_schema": pg_schema})
    try:
        await _changes(gw)
        assert (await gw.verify())["entries"] == 6
        con = await asyncpg.connect(PG_DSN)
        try:
            await con.execute(f'DELETE FROM "{pg_schema}".audit_log WHERE id = 3')
        finally:
            await con.close()
        verdict = await gw.verify()
        assert (verdict["ok"], verdict["broken_at"]) == (False, 4)
        assert "missing" in verdict["reason"]
        assert await gw.cli("--verify", "--offline", "-c", str(gw.config)) == 1
        assert "BROKEN at entry 4" in capsys.readouterr().err
    finally:
        await gw.session.close()
        await gw.server.close()


async def test_a_reload_of_the_identities_file_is_logged(tmp_path: Path) -> None:
    ids = tmp_path / "identities.yaml"
    ids.write_text("- {name: 陈静, role: auditor, token_sha256: "
                   f"{SECURITY['identities'][3]['token_sha256']}}}\n", "utf-8")
    gw = await _start(tmp_path, security={"identities_file": str(ids)})
    try:
        await gw.log()
        ids.write_text(ids.read_text("utf-8") + "- {name: 李娜, role: pharmacist, token_sha256: "
                       f"{SECURITY['identities'][0]['token_sha256']}}}\n", "utf-8")
        for _ in range(40):  # the file is looked at once a second at most
            reloads = await gw.log(action="identities.reload")
            if reloads:
                break
            await asyncio.sleep(0.1)
        [entry] = reloads
        assert (entry["identity"], entry["before"], entry["after"]) == (
            "gateway", ["陈静"], ["李娜", "陈静"])
        assert "added: 李娜" in entry["detail"]
    finally:
        await gw.session.close()
        await gw.server.close()
