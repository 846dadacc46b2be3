"""Audited changes that survive a restart; CSV/XLSX export and import; FHIR; bad input."""

from __future__ import annotations

import sqlite3
from datetime import datetime

import pytest
from aiohttp.test_utils import TestServer
from api_helpers import OPERATOR, SECURITY, as_
from helpers import CROSSWALK, HOSPITAL, free_port, make_config

from canonical.errors import ConfigError
from gateway.app import build_app

BICALUTAMIDE = "XL02BBB085A001010100665"
CONFIG_ENTRIES = len(CROSSWALK.read_text("utf-8").strip().splitlines()) - 1


async def _entries(gw, **params) -> list[dict]:
    _, found = await gw.api("GET", "/entries", params={"limit": "1000", **params}, expect=200)
    return found["entries"]


async def _audit(gw, **params) -> list[dict]:
    _, found = await gw.api("GET", "/audit", params=params, expect=200)
    return found["audit"]


async def _audit_as(gw, **params) -> list[dict]:
    _, found = await gw.api("GET", "/audit", params=params, headers=as_("陈静"), expect=200)
    return found["audit"]


async def test_create_update_delete_are_audited_and_survive_a_restart(launcher) -> None:
    gw = await launcher.start(security=SECURITY)
    # the configured CSV seeded the database once, as user config-import
    seeded = await _audit_as(gw, user="config-import", limit="1000")
    _, listed = await gw.api("GET", "/entries", params={"limit": "1000"}, headers=as_("李娜"),
                             expect=200)
    assert len(seeded) == CONFIG_ENTRIES == len(listed["entries"])
    entry = {"hospital_id": HOSPITAL, "item_code": "Y0077001", "national_code": BICALUTAMIDE,
             "item_name": "比卡鲁胺片 50mg*28片", "hospital_unit": "盒", "national_unit": "片",
             "factor": "28", "valid_from": "2026-01-01"}
    await gw.api("POST", "/entries", json=entry, headers=as_("李娜"), expect=201)
    await gw.api("PUT", f"/entries/{HOSPITAL}/Y0077001", params={"valid_from": "2026-01-01"},
                 json={"valid_to": "2026-06-30", "note": "按新版目录调整"},
                 headers=as_("王强"), expect=200)
    await gw.api("DELETE", f"/entries/{HOSPITAL}/Y0012346", headers=as_("李娜"),
                 params={"valid_from": "2026-01-01"}, expect=200)
    history = await _audit_as(gw, hospital=HOSPITAL, limit="3")
    assert [(a["action"], a["user"]) for a in history] == [
        ("delete", "李娜"), ("update", "王强"), ("create", "李娜")]
    update = history[1]
    assert update["before"]["valid_to"] == "" and update["after"]["valid_to"] == "2026-06-30"
    assert update["note"] == "按新版目录调整"
    assert datetime.fromisoformat(update["at"]).tzinfo is not None
    await launcher.stop(gw)

    # the crosswalk database, not the configured CSV, is read at the next start
    gw = await launcher.start()  # (now without identities: the loopback caller is "local")
    codes = {e["item_code"]: e for e in await _entries(gw)}
    assert "Y0012346" not in codes  # the deletion stands, the CSV is not imported again
    assert codes["Y0077001"]["valid_to"] == "2026-06-30"
    assert codes["Y0077001"]["factor"] == "28"
    assert [a["action"] for a in await _audit(gw, hospital=HOSPITAL, limit="3")] == [
        "delete", "update", "create"]
    _, item = await gw.api("GET", f"/entries/{HOSPITAL}/Y0077001", expect=200)
    assert [a["action"] for a in item["audit"]] == ["update", "create"]
    # the crosswalk lives in the deployment's store (the SQLite file the config names),
    # not in a file of its own
    assert not (launcher.tmp / "var" / "crosswalk.db").exists()
    con = sqlite3.connect(launcher.tmp / "var" / "gateway.db")
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert con.execute("SELECT factor FROM crosswalk_entries WHERE item_code = 'Y0077001'"
                       ).fetchone() == ("28",)
    con.close()


async def test_a_name_the_caller_writes_is_a_note_never_the_author(launcher) -> None:
    gw = await launcher.start(security=SECURITY)
    entry = {"hospital_id": HOSPITAL, "item_code": "Y0077001", "national_code": BICALUTAMIDE,
             "factor": "28", "hospital_unit": "盒", "national_unit": "片",
             "user": "药剂科 主任", "note": "集采第五批"}
    _, made = await gw.api("POST", "/entries", json=entry,
                           headers=as_("王强", **{"X-Operator": "%E6%9D%8E%E5%A8%9C"}),
                           expect=201)
    record = made["audit"][0]
    assert record["user"] == "王强"  # the token's identity, not the header's 李娜
    assert record["note"] == "集采第五批 (stated by the caller: 李娜)"
    # without a token nothing is written, whatever name is stated
    status, _ = await gw.api("DELETE", f"/entries/{HOSPITAL}/Y0077001", headers=OPERATOR)
    assert status == 401
    assert [a["user"] for a in await _audit_as(gw, item="Y0077001")] == ["王强"]


async def test_unknown_entry_is_404_and_a_wrong_start_date_names_the_right_one(gateway) -> None:
    status, err = await gateway.api("PUT", f"/entries/{HOSPITAL}/NOPE", json={"factor": "2"},
                                    headers=OPERATOR)
    assert status == 404
    status, err = await gateway.api("DELETE", f"/entries/{HOSPITAL}/Y0012345", headers=OPERATOR)
    assert status == 404 and "2026-01-01" in err["problems"][0]


async def test_export_then_import_xlsx_round_trips_without_changes(gateway) -> None:
    _, xlsx = await gateway.api("GET", "/export.xlsx", expect=200)
    _, csv_bytes = await gateway.api("GET", "/export.csv", expect=200)
    assert csv_bytes.startswith("\ufeff".encode())
    assert csv_bytes.decode("utf-8-sig").count("\n") == CONFIG_ENTRIES + 1
    _, answer = await gateway.api("POST", "/import", data=xlsx, headers=OPERATOR,
                                  params={"filename": "export.xlsx"}, expect=200)
    assert (answer["created"], answer["updated"], answer["unchanged"]) == (0, 0, CONFIG_ENTRIES)
    assert answer["audit"] == []


async def test_bad_rows_are_all_reported_and_nothing_changes(gateway) -> None:
    before_entries = await _entries(gateway)
    before_audit = await _audit(gateway, limit="1000")
    csv_text = (
        "hospital_id,item_code,national_code,factor,valid_from,valid_to\n"
        f"{HOSPITAL},Y1000001,{BICALUTAMIDE},14,2026-01-01,\n"            # fine
        f"{HOSPITAL},Y1000002,XL02BBB085A00101010066,14,2026-01-01,\n"     # code too short
        f"{HOSPITAL},Y1000003,{BICALUTAMIDE},abc,2026-01-01,\n"            # factor
        f"{HOSPITAL},Y1000004,{BICALUTAMIDE},14,2026-13-01,\n"             # date
        f"{HOSPITAL},,{BICALUTAMIDE},14,,\n"                              # no item code
        f"{HOSPITAL},Y1000005,{BICALUTAMIDE},14,2026-01-01,2026-12-31\n"   # overlaps next
        f"{HOSPITAL},Y1000005,{BICALUTAMIDE},28,2026-06-01,\n"
    )
    status, err = await gateway.api("POST", "/import", data=csv_text.encode(), headers=OPERATOR)
    assert status == 400
    problems = "\n".join(err["problems"])
    for expected in ("row 3", "row 4", "row 5", "row 6", "Y1000005", "overlap"):
        assert expected in problems, expected
    assert len(err["problems"]) >= 5
    assert await _entries(gateway) == before_entries
    assert await _audit(gateway, limit="1000") == before_audit


async def test_invalid_code_and_overlapping_range_are_refused_with_reasons(gateway) -> None:
    bad = {"hospital_id": HOSPITAL, "item_code": "Y0012345", "national_code": "XL02BGA045A0010",
           "factor": "-1", "valid_from": "2026-03-01"}
    status, err = await gateway.api("POST", "/entries", json=bad, headers=OPERATOR)
    assert status == 400
    problems = "\n".join(err["problems"])
    assert "is invalid" in problems and "factor" in problems and "overlaps" in problems
    status, err = await gateway.api("POST", "/entries", json={"hospital_id": HOSPITAL},
                                    headers=OPERATOR)
    assert status == 400
    assert {"item_code is required", "national_code is required"} <= set(err["problems"])
    status, err = await gateway.api("POST", "/entries", data=b"{not json", headers=OPERATOR)
    assert status == 400 and "not JSON" in err["problems"][0]
    assert len(await _entries(gateway)) == CONFIG_ENTRIES


async def test_conceptmap_and_translate(gateway) -> None:
    _, cm = await gateway.api("GET", "/conceptmap", params={"hospital": HOSPITAL}, expect=200)
    assert cm["resourceType"] == "ConceptMap"
    elements = {e["code"]: e for g in cm["group"] for e in g["element"]}
    assert elements["Y0012345"]["target"][0]["code"] == "XL02BGA045A001010104520"
    system = cm["group"][0]["source"]
    _, params = await gateway.api("GET", "/$translate",
                                  params={"code": "Y0012345", "system": system}, expect=200)
    result = {p["name"]: p for p in params["parameter"]}
    assert result["result"]["valueBoolean"] is True
    concept = result["match"]["part"][1]["valueCoding"]
    assert concept["code"] == "XL02BGA045A001010104520"
    _, params = await gateway.api("GET", "/$translate",
                                  params={"code": "Y9990001", "system": system}, expect=200)
    assert params["parameter"][0]["valueBoolean"] is False
    status, _ = await gateway.api("GET", "/$translate", params={"code": "Y0012345"})
    assert status == 400


async def test_a_malformed_seed_csv_stops_the_start_with_every_problem(tmp_path) -> None:
    bad = tmp_path / "crosswalk.csv"
    bad.write_text("hospital_id,item_code,national_code,factor\n"
                   f"{HOSPITAL},Y1,XL02,14\n{HOSPITAL},Y2,{BICALUTAMIDE},zero\n", "utf-8")
    cfg = make_config(tmp_path, mllp_port=free_port(), http_port=0,
                      platform_url="http://127.0.0.1:9/x", crosswalk={"csv": str(bad)})
    server = TestServer(build_app(cfg), host="127.0.0.1")
    with pytest.raises(ConfigError) as caught:
        await server.start_server()
    await server.close()
    text = "\n".join(caught.value.problems)
    assert "crosswalk.csv" in text and "row 2" in text and "row 3" in text
