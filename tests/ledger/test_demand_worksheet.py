"""The 报量 worksheet (R9, GZ 一): last year's receipts per product group against the
reported demand — below 80 % needs an explanation (exactly 80 % does not), below 100 %
falls short of the principle, history with nothing reported is watched."""

from __future__ import annotations

import io
from decimal import Decimal

import openpyxl
import pytest
from aiohttp import web
from ledger_helpers import DATA, EXEMESTANE_PFIZER, EXEMESTANE_WIN, HOSPITAL, cst, event, fold

from canonical.model import EventKind
from gateway.ledger import Ledger, ledger_app, read_contracts_csv
from gateway.ledger.demand import build_demand

TADALAFIL = "XG04BET001A001010100299"


def _group(sheet: dict, name: str) -> dict:
    return next(g for g in sheet["groups"] if g["generic_name"] == name)


@pytest.mark.parametrize(("received", "flag", "explain"), [
    (50000, "below_history", False),  # 40000 reported = 80 % exactly: no explanation
    (50001, "below_threshold", True),  # just under 80 %
    (40000, "ok", False),  # 100 %: what GZ 一 asks in principle
])
async def test_the_80_percent_boundary(ledger: Ledger, received, flag, explain):
    await fold(ledger, [
        # last year's purchases of every product of the group: the winner and Pfizer's,
        # less what went back to the supplier
        event(EventKind.RECEIPT, [(EXEMESTANE_WIN, received - 5000, "2.1350"),
                                  (EXEMESTANE_PFIZER, 6000, "9.5000")], at=cst(2025, 6, 3)),
        event(EventKind.RETURN, [(EXEMESTANE_PFIZER, 1000, "9.5000")], at=cst(2025, 9, 1)),
        # this year's do not count
        event(EventKind.RECEIPT, [(EXEMESTANE_WIN, 9999, "2.1350")], at=cst(2026, 1, 5)),
    ])
    sheet = await build_demand(ledger, HOSPITAL, 2026)
    assert sheet["history"] == {"from": "2025-01-01", "to": "2025-12-31"}
    exe = _group(sheet, "依西美坦片")
    assert (exe["history_qty"], exe["reported_demand"]) == (str(received), "40000")
    assert Decimal(exe["floor_qty"]) == received * Decimal("0.80")
    assert (exe["flag"], exe["needs_explanation"], exe["watch"]) == (flag, explain, False)
    # the platform's own figure for last year is shown beside ours
    assert exe["last_year_purchases"] == "42000"


async def test_no_history_and_far_below(ledger: Ledger):
    await fold(ledger, [event(EventKind.RECEIPT, [(TADALAFIL, 20000, "1.0500")],
                              at=cst(2025, 11, 20))])
    sheet = await build_demand(ledger, HOSPITAL, 2026)
    abi = _group(sheet, "醋酸阿比特龙片")
    assert (abi["history_qty"], abi["flag"], abi["watch"]) == ("0", "no_history", False)
    tad = _group(sheet, "他达拉非片")
    assert (tad["reported_ratio"], tad["flag"], tad["needs_explanation"]) == (
        "0.4500", "below_threshold", True)


async def test_history_but_nothing_reported_is_watched(ledger: Ledger):
    # the results give no 报量 for exemestane this time
    text = (DATA / "contracts.csv").read_text("utf-8").replace(",片,40000,42000", ",片,,42000")
    await ledger.load_contracts(read_contracts_csv(text), cst(2026, 1, 2))
    await fold(ledger, [event(EventKind.RECEIPT, [(EXEMESTANE_WIN, 30000, "2.1350")],
                              at=cst(2025, 4, 1))])
    exe = _group(await build_demand(ledger, HOSPITAL, 2026), "依西美坦片")
    assert (exe["reported_demand"], exe["flag"], exe["watch"], exe["needs_explanation"]) == (
        None, "not_reported", True, False)


async def test_next_year_before_anything_is_reported(ledger: Ledger):
    await fold(ledger, [event(EventKind.RECEIPT, [(EXEMESTANE_WIN, 12000, "2.1350")],
                              at=cst(2026, 5, 1))])
    sheet = await build_demand(ledger, HOSPITAL, 2027)
    exe = _group(sheet, "依西美坦片")
    assert (exe["history_qty"], exe["floor_qty"], exe["flag"]) == ("12000", "9600.00",
                                                                   "not_reported")
    assert _group(sheet, "醋酸阿比特龙片")["flag"] == "no_history"


async def test_worksheet_over_http_as_json_and_xlsx(ledger: Ledger, aiohttp_client):
    await fold(ledger, [
        event(EventKind.RECEIPT, [(EXEMESTANE_WIN, 50000, "2.1350")], at=cst(2025, 6, 3)),
        event(EventKind.RECEIPT, [(TADALAFIL, 20000, "1.0500")], at=cst(2025, 11, 20))])
    app = web.Application()
    app.add_subapp("/ledger", ledger_app(ledger, clock=lambda: cst(2026, 1, 2)))
    cli = await aiohttp_client(app)
    body = await (await cli.get(f"/ledger/demand/{HOSPITAL}?year=2026")).json()
    # by project and batch: 第二批, 第五批, then the province's project
    assert [g["generic_name"] for g in body["groups"]] == ["醋酸阿比特龙片", "依西美坦片",
                                                           "他达拉非片"]
    assert (await cli.get(f"/ledger/demand/{HOSPITAL}?year=26")).status == 400
    # the year before 0001 does not exist: refused, not a server error
    assert (await cli.get(f"/ledger/demand/{HOSPITAL}?year=0000")).status == 400
    # a hospital id with a line break and a quote reaches no header (it was a 500)
    odd = await cli.get('/ledger/demand/H1%0D%0AX-Evil:%20"1?year=2026&format=xlsx')
    assert odd.status == 200
    assert odd.headers["Content-Disposition"] == (
        'attachment; filename="demand-H1__X-Evil___1-2026.xlsx"')
    resp = await cli.get(f"/ledger/demand/{HOSPITAL}?year=2026&format=xlsx")
    wb = openpyxl.load_workbook(io.BytesIO(await resp.read()))
    ws = wb["2026年报量"]
    header = [c.value for c in ws[1]]
    rows = [dict(zip(header, r, strict=True)) for r in ws.iter_rows(min_row=2, values_only=True)]
    exe, tad = rows[1], rows[2]
    assert (exe["通用名"], exe["上年实际采购量"], exe["报量下限（80%）"], exe["填报需求量"]) == (
        "依西美坦片", 50000, 40000, 40000)
    assert exe["填报量/上年采购量"] == pytest.approx(0.8)
    assert (exe["审核结果"], exe["需作出说明"]) == ("低于上年实际采购量（原则上不少于）", "否")
    assert (tad["审核结果"], tad["需作出说明"]) == ("低于上年实际采购量80%，需作出说明", "是")
    assert ws.cell(row=2, column=header.index("填报量/上年采购量") + 1).number_format == "0.00%"
