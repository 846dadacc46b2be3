"""Import checks of procurement results: every national code in the latest imported
catalog (an error), and R1 — the agreed ratio, and the agreed volume against last year's
purchases, in 50–80 % (a warning) — on results generated from the real catalog sample."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from ledger_helpers import DATA, ROOT, cst

from codes.catalog import CatalogKind
from codes.catalog_files import read_catalog_csv, version_from_import
from gateway.cli.main import main
from gateway.config import parse_config
from gateway.ledger import Ledger, ledger_app
from gateway.ledger.calendar import WorkCalendar
from gateway.ledger.contract_import import checked_import
from gateway.ledger.contracts import ContractFormatError, read_contracts_csv
from gateway.ledger.settings import ledger_settings
from gateway.rules import RuleSet
from gateway.security.audit_log import RECORDER, Recorder
from gateway.store.audit_rows import AuditLogQuery
from gateway.store.sqlite import SqliteStore

RESULTS = DATA / "results_generated.csv"  # tests/data/ledger/make_results.py
CODES = ROOT / "tests" / "data" / "codes"
NOW = cst(2026, 1, 5)


@pytest.fixture
async def ledger(store: SqliteStore, calendar: WorkCalendar, rules: RuleSet) -> Ledger:
    """A ledger with no contracts yet: the generated results draw their product groups
    from the catalog at random, some of them the sample contracts' (same hospital, same
    year), which would overlap."""
    lg = Ledger(store, ledger_settings(parse_config({}, "t").ledger.thresholds, calendar),
                rules)
    await lg.load()
    return lg


def _rows() -> list[dict[str, str]]:
    with RESULTS.open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def _csv(rows: list[dict[str, str]]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def _first_contract(rows: list[dict[str, str]]) -> list[dict[str, str]]:
    """The rows (2 and 3 of the file) of the first hospital's first contract."""
    key = ("hospital_id", "batch", "generic_name")
    first = [r for r in rows if all(r[k] == rows[0][k] for k in key)]
    assert len(first) == 2, "the generated set's first contract has two winning products"
    return first


def _changed(**columns: str) -> list[dict[str, str]]:
    """The generated rows, with ``columns`` set in the first contract's rows."""
    rows = _rows()
    for r in _first_contract(rows):
        r.update(columns)
    return rows


async def _save_catalog(store: SqliteStore) -> str:
    imported = read_catalog_csv(CODES / "nhsa_drug_catalog_sample.csv", kind=CatalogKind.DRUG)
    await store.catalogs.save(version_from_import(imported, "2025-first",
                                                  imported_at=datetime(2025, 6, 1, tzinfo=UTC)))
    return "2025-first"


async def _import(ledger: Ledger, rows: list[dict[str, str]]) -> tuple[int, list[str]]:
    text = _csv(rows)
    _, n, warnings = await checked_import(
        ledger, lambda check: read_contracts_csv(text, "results.csv", check), NOW)
    return n, warnings


async def test_generated_results_import_cleanly_against_the_catalog(
        ledger: Ledger, store: SqliteStore) -> None:
    await _save_catalog(store)
    assert await _import(ledger, _rows()) == (120, [])


@pytest.mark.parametrize(("ratio", "warned"), [
    ("0.50", None), ("50%", None), ("0.80", None),  # the band's edges are inside it
    ("0.499", "49.9 %"), ("49.9%", "49.9 %"), ("0.801", "80.1 %"), ("0.30", "30.0 %"),
])
async def test_r1_agreed_ratio_outside_50_to_80_percent_is_a_warning(
        ledger: Ledger, store: SqliteStore, ratio: str, warned: str | None) -> None:
    await _save_catalog(store)
    rows = _changed(agreed_ratio=ratio, last_year_purchases="")
    n, warnings = await _import(ledger, rows)
    assert n == 120  # a warning does not stop the import
    assert warnings == ([] if warned is None else [
        f"rows 2, 3: agreed_ratio {warned} is outside 50.0 %–80.0 % of the year's use "
        "(R1, SX 三(一))"])
    [c] = [c for c in ledger.contracts(rows[0]["hospital_id"])
           if rows[0]["national_code"] in c.winning_codes]
    assert c.agreed_ratio == Decimal(ratio.rstrip("%")) / (100 if "%" in ratio else 1)


@pytest.mark.parametrize(("volume", "warned"), [
    ("16000", None), ("25600", None),  # 50 % and 80 % of 32000
    ("15968", "49.9 %"), ("25632", "80.1 %"),
])
async def test_r1_agreed_volume_against_last_years_purchases(
        ledger: Ledger, store: SqliteStore, volume: str, warned: str | None) -> None:
    await _save_catalog(store)
    _, warnings = await _import(ledger, _changed(agreed_volume=volume,
                                                 last_year_purchases="32000"))
    assert warnings == ([] if warned is None else [
        f"rows 2, 3: agreed_volume {volume} is {warned} of last_year_purchases 32000, "
        "outside 50.0 %–80.0 % (R1, SX 三(一))"])


def _code_not_in_catalog(generic_key: str) -> str:
    with (CODES / "nhsa_drug_catalog_sample.csv").open(encoding="utf-8-sig") as fh:
        listed = {r["医保药品编码"].strip() for r in csv.DictReader(fh)}
    with (CODES / "nhsa_drug_codes.csv").open(encoding="utf-8-sig") as fh:
        codes = [r["national_code"] for r in csv.DictReader(fh)]
    return next(c for c in codes if c not in listed and c.startswith("X")
                and c[:10] != generic_key)


async def test_a_code_not_in_the_latest_catalog_is_an_error_reported_with_the_others(
        ledger: Ledger, store: SqliteStore) -> None:
    version = await _save_catalog(store)
    rows = _rows()
    missing = _code_not_in_catalog(rows[0]["national_code"][:10])
    rows[5]["national_code"] = missing
    rows[9]["winning_price"] = "abc"
    before = ledger.contracts()
    with pytest.raises(ContractFormatError) as exc:
        await _import(ledger, rows)
    assert exc.value.problems == [
        f"row 7: national_code: {missing} is not in the national drug catalog {version!r} "
        "(the latest imported): check the code, or import the catalog version that lists it",
        "row 11: winning_price: 'abc' is not a number"]
    assert ledger.contracts() == before  # nothing imported


async def test_without_a_catalog_the_codes_are_not_checked_and_the_answer_says_so(
        ledger: Ledger) -> None:
    n, warnings = await _import(ledger, _rows())
    assert (n, warnings) == (120, ["no national drug catalog is imported: the drug codes were "
                                   "not checked against it"])


async def test_the_band_is_read_from_the_configuration(
        store: SqliteStore, calendar: WorkCalendar, rules: RuleSet) -> None:
    cfg = parse_config({"ledger": {"thresholds": {"agreed_ratio_min": 0.4,
                                                  "agreed_ratio_max": 0.9}}})
    lg = Ledger(store, ledger_settings(cfg.ledger.thresholds, calendar), rules)
    await lg.load()
    await _save_catalog(store)
    rows = _changed(agreed_ratio="0.40", last_year_purchases="")
    assert (await _import(lg, rows))[1] == []  # 40 % is inside 40–90 %
    rows = _changed(agreed_ratio="0.399", last_year_purchases="")
    assert (await _import(lg, rows))[1] == [
        "rows 2, 3: agreed_ratio 39.9 % is outside 40.0 %–90.0 % of the year's use "
        "(R1, SX 三(一))"]


async def test_the_import_answer_and_the_audit_log_carry_the_warnings(
        ledger: Ledger, store: SqliteStore, aiohttp_client: Any) -> None:
    await _save_catalog(store)
    rows = _changed(agreed_ratio="0.45", last_year_purchases="")
    app = web.Application()
    app[RECORDER] = Recorder(lambda: store.audit_log)
    app.add_subapp("/ledger", ledger_app(ledger, clock=lambda: NOW))
    cli = await aiohttp_client(app)
    resp = await cli.post("/ledger/contracts", data=_csv(rows).encode(),
                          headers={"Content-Type": "text/csv"})
    expected = ["rows 2, 3: agreed_ratio 45.0 % is outside 50.0 %–80.0 % of the year's use "
                "(R1, SX 三(一))"]
    assert (resp.status, await resp.json()) == (200, {"imported": 120, "warnings": expected})
    [entry] = [e for e in await store.audit_log.entries(AuditLogQuery(limit=1000))
               if e.action == "ledger.contracts.warnings"]
    assert entry.after == {"imported": 120, "warnings": expected}


def test_the_command_line_import_prints_the_count_and_warnings(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "gw.yaml"
    config.write_text(
        f"data_dir: {tmp_path}\nstore: {{sqlite_path: {tmp_path / 'gw.db'}}}\n"
        f"ledger:\n  calendar_dir: {ROOT / 'config' / 'calendar'}\n"
        f"  dosage_forms: {ROOT / 'config' / 'dosage_forms.yaml'}\n"
        f"  rules: {ROOT / 'config' / 'rules.yaml'}\n", "utf-8")
    rows = _changed(agreed_ratio="0.81", last_year_purchases="")
    results = tmp_path / "results.csv"
    results.write_text(_csv(rows), "utf-8")
    assert main(["ledger-contracts", "-c", str(config), str(results)]) == 0
    assert json.loads(capsys.readouterr().out) == {"imported": 120, "warnings": [
        "no national drug catalog is imported: the drug codes were not checked against it",
        "rows 2, 3: agreed_ratio 81.0 % is outside 50.0 %–80.0 % of the year's use "
        "(R1, SX 三(一))"]}
    rows[4]["agreed_ratio"] = "1.5"
    results.write_text(_csv(rows), "utf-8")
    assert main(["ledger-contracts", "-c", str(config), str(results)]) == 2
    assert "row 6: agreed_ratio: 1.5 is above 1" in capsys.readouterr().err

    async def audited() -> list[str]:
        store = SqliteStore(tmp_path / "gw.db")
        await store.start()
        try:
            return [e.action for e in await store.audit_log.entries(AuditLogQuery(limit=1000))]
        finally:
            await store.close()
    actions = asyncio.run(audited())
    assert actions.count("ledger.contracts.import") == 120
    assert actions.count("ledger.contracts.warnings") == 1


async def test_an_agreement_overlapping_another_batch_of_the_same_group_is_refused(
        ledger: Ledger, store: SqliteStore) -> None:
    await _save_catalog(store)
    rows = _rows()
    await _import(ledger, rows)
    first = _first_contract(rows)
    # the same hospital, product group and year in another batch: refused, nothing stored
    again = [{**r, "batch": "第十批"} for r in first]
    with pytest.raises(ContractFormatError) as err:
        await _import(ledger, again)
    (problem,) = err.value.problems
    assert "第十批" in problem and "the stored" in problem and "count into both" in problem
    assert not [c for c in ledger.contracts() if c.batch == "第十批"]
    # the next cycle (接续), starting the day after this one ends, is not an overlap
    end = datetime.strptime(first[0]["cycle_end"], "%Y-%m-%d")
    follow = [{**r, "batch": "第十批", "cycle_start": f"{end.year + 1}-01-01",
               "cycle_end": f"{end.year + 1}-12-31"} for r in first]
    assert end.month == 12 and end.day == 31
    assert (await _import(ledger, follow))[0] == 1  # one contract (its winning products)
    # importing the same results again replaces them: no overlap with themselves
    assert (await _import(ledger, rows))[0] == 120


async def test_an_identity_limited_to_some_hospitals_cannot_import_others_contracts(
        ledger: Ledger, store: SqliteStore, aiohttp_client: Any) -> None:
    from gateway.security.identity import IDENTITY, Identity

    rows = _rows()
    hospitals = sorted({r["hospital_id"] for r in rows})
    assert len(hospitals) > 1
    who = Identity("章贡区采购办", "procurement", frozenset({hospitals[0]}))

    @web.middleware
    async def authenticated(request: web.Request, handler: Any) -> web.StreamResponse:
        request[IDENTITY] = who  # as the access middleware leaves it
        return await handler(request)

    app = web.Application(middlewares=[authenticated])
    app.add_subapp("/ledger", ledger_app(ledger, clock=lambda: NOW))
    cli = await aiohttp_client(app)
    resp = await cli.post("/ledger/contracts", data=_csv(rows),
                          headers={"Content-Type": "text/csv"})
    assert resp.status == 403
    body = await resp.json()
    assert body["field"] == "hospital_id" and hospitals[1] in body["error"]
    assert ledger.contracts() == []  # nothing of it imported
    own = [r for r in rows if r["hospital_id"] == hospitals[0]]
    resp = await cli.post("/ledger/contracts", data=_csv(own),
                          headers={"Content-Type": "text/csv"})
    assert resp.status == 200, await resp.text()
    assert {c.hospital_id for c in ledger.contracts()} == {hospitals[0]}
