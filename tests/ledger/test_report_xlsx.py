"""The monthly report (一院一档) as the XLSX workbook procurement offices file: one row per
winning product under Chinese headers, real numbers, percentages formatted, a summary."""

from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path

import openpyxl
import pytest
import yaml
from aiohttp import web
from ledger_helpers import (
    ABIRATERONE_WIN_A,
    ABIRATERONE_WIN_B,
    DATA,
    EXEMESTANE_PFIZER,
    EXEMESTANE_WIN,
    HOSPITAL,
    ROOT,
    cst,
    event,
    fold,
)

from canonical.model import EventKind
from gateway.cli.main import main
from gateway.ledger import Ledger, LedgerSettings, ledger_app, read_contracts
from gateway.ledger.calendar import WorkCalendar
from gateway.store.sqlite import SqliteStore

REQUIRED = ("批次", "通用名", "剂型", "中选产品", "国家医保编码", "中选价", "约定采购量",
            "本月采购量", "本月采购金额", "累计采购量", "完成率", "序时进度", "是否落后",
            "中选产品数量占比", "中选产品金额占比", "非中选产品采购量", "非中选产品采购金额",
            "参比价", "累计结余金额", "应预付金额", "已拨付预付款", "预付款缺口")


async def _purchases(ledger: Ledger) -> None:
    await fold(ledger, [
        event(EventKind.RECEIPT, [(EXEMESTANE_WIN, 2000, "2.1350")], at=cst(2026, 2, 10)),
        event(EventKind.RECEIPT, [(EXEMESTANE_WIN, 3000, "2.1350"),
                                  (EXEMESTANE_PFIZER, 500, "9.5000"),
                                  (ABIRATERONE_WIN_A, 5000, "4.0500"),
                                  (ABIRATERONE_WIN_B, 1000, "4.2000")], at=cst(2026, 3, 5)),
        event(EventKind.RETURN, [(EXEMESTANE_WIN, 100, "2.1350")], at=cst(2026, 3, 20)),
        # April is after the month asked for
        event(EventKind.RECEIPT, [(EXEMESTANE_WIN, 7000, "2.1350")], at=cst(2026, 4, 1)),
    ])


def _rows(ws) -> list[dict[str, object]]:
    header = [c.value for c in ws[1]]
    return [dict(zip(header, r, strict=True)) for r in ws.iter_rows(min_row=2, values_only=True)]


async def test_march_workbook_has_one_row_per_winning_product(deployment: Ledger,
                                                                aiohttp_client):
    await _purchases(deployment)
    app = web.Application()
    app.add_subapp("/ledger", ledger_app(deployment, clock=lambda: cst(2026, 4, 2)))
    cli = await aiohttp_client(app)
    resp = await cli.get(f"/ledger/report/{HOSPITAL}?month=2026-03&format=xlsx")
    assert resp.status == 200
    assert resp.content_type == ("application/vnd.openxmlformats-officedocument"
                                 ".spreadsheetml.sheet")
    assert "report-H36070200012-2026-03.xlsx" in resp.headers["Content-Disposition"]
    wb = openpyxl.load_workbook(io.BytesIO(await resp.read()))
    assert wb.sheetnames == ["一院一档", "汇总", "价格监测", "追溯码重复销售"]
    ws = wb["一院一档"]
    header = [c.value for c in ws[1]]
    assert all(h in header for h in REQUIRED), set(REQUIRED) - set(header)
    rows = {r["国家医保编码"]: r for r in _rows(ws)}
    assert list(rows) == [ABIRATERONE_WIN_A, ABIRATERONE_WIN_B, EXEMESTANE_WIN]  # 第二批 first
    exe = rows[EXEMESTANE_WIN]
    assert (exe["批次"], exe["通用名"], exe["剂型"]) == ("第五批", "依西美坦片", "口服常释剂型")
    assert (exe["中选产品"], exe["中选价"], exe["参比价"]) == ("依西美坦片 25mg", 2.135, 6.98)
    assert exe["约定采购量"] == 36000
    assert exe["本月采购量"] == 2900  # 3000 received, 100 returned; April not counted
    assert exe["本月采购金额"] == pytest.approx(6191.5)
    assert exe["累计采购量"] == 4900  # February's 2000 too
    assert exe["完成率"] == pytest.approx(0.1361)  # 4900 ÷ 36000
    assert exe["序时进度"] == pytest.approx(0.2466)  # 90 of 365 days
    assert exe["是否落后"] == "是"
    assert exe["中选产品数量占比"] == pytest.approx(0.8529)  # 2900 ÷ 3400
    assert exe["中选产品金额占比"] == pytest.approx(0.5659)  # 6191.50 ÷ 10941.50
    assert (exe["非中选产品采购量"], exe["非中选产品采购金额"]) == (500, 4750)
    assert exe["累计结余金额"] == pytest.approx(23740.5)  # (6.98 − 2.135) × 4900
    assert exe["本月结余金额"] == pytest.approx(14050.5)  # × 2900
    assert exe["已拨付预付款"] is None and exe["预付款缺口"] is None
    a, b = rows[ABIRATERONE_WIN_A], rows[ABIRATERONE_WIN_B]
    # the agreed volume as the results split it between the winners
    assert (a["约定采购量"], b["约定采购量"], a["品种约定采购量"]) == (48000, 24000, 72000)
    assert (a["本月采购量"], b["本月采购量"], a["品种累计采购量"]) == (5000, 1000, 6000)
    assert a["完成率"] == b["完成率"] == pytest.approx(0.0833)  # the variety's: 6000 ÷ 72000
    assert (a["应预付金额"], a["预付款缺口"]) == (58320, 0)
    assert b["预付款缺口"] == pytest.approx(0.01)
    # R11 and R13 beside each winning product
    assert (exe["最近采购价"], exe["高于中选价采购"]) == (2.135, "否")
    assert exe["最近平台采购日期"] == "2026-03-05" and exe["一年无平台采购"] == "否"  # to March
    # R10 and R14 as the report's JSON has them, one row each
    rep = await (await cli.get(f"/ledger/report/{HOSPITAL}?month=2026-03")).json()
    bands = _rows(wb["价格监测"])
    assert [r["国家医保编码"] for r in bands] == [b["national_code"]
                                                  for b in rep["price_bands"]]
    assert [(r["采购价"], r["价格标识"]) for r in bands] == [(9.5, "蓝色")]  # 辉瑞's 阿诺新
    assert [c.value for c in wb["追溯码重复销售"][1]][:2] == ["追溯码", "国家医保编码"]
    assert len(_rows(wb["追溯码重复销售"])) == len(rep["trace_flags"])
    # percentages are numbers shown as percentages, not text
    cols = {h: i for i, h in enumerate(header, start=1)}
    for name in ("完成率", "序时进度", "中选产品数量占比", "中选产品金额占比"):
        cell = ws.cell(row=4, column=cols[name])
        assert isinstance(cell.value, float) and cell.number_format == "0.00%"
    assert ws.cell(row=4, column=cols["本月采购金额"]).number_format == "#,##0.00"

    summary = wb["汇总"]
    assert [summary["A1"].value, summary["B1"].value] == ["医疗机构", HOSPITAL]
    assert summary["B2"].value == "2026-03-01 至 2026-03-31"
    head = [c.value for c in summary[4]]
    assert head[:10] == ["项目", "批次", "协议年度", "时间进度", "中选品种数", "中选产品数",
                         "零采购品种数", "低于序时进度品种数", "超量采购品种数",
                         "采购非中选产品品种数"]
    by_batch = {r[1]: dict(zip(head, r, strict=True))
                for r in summary.iter_rows(min_row=5, values_only=True)}
    assert by_batch["第二批"]["中选产品数"] == 2 and by_batch["第二批"]["采购非中选产品品种数"] == 0
    assert by_batch["第五批"]["采购非中选产品品种数"] == 1
    assert by_batch["第五批"]["时间进度"] == pytest.approx(0.2466)
    total = next(r for r in summary.iter_rows(min_row=5, values_only=True) if r[0] == "合计")
    total_row = dict(zip(head, total, strict=True))
    assert (total_row["中选品种数"], total_row["中选产品数"], total_row["零采购品种数"],
            total_row["低于序时进度品种数"], total_row["超量采购品种数"]) == (2, 3, 0, 2, 0)
    # 23740.50 + (25.60 − 4.05) × 5000 + (25.60 − 4.20) × 1000
    assert total_row["累计结余金额"] == pytest.approx(152890.5)


async def test_to_date_workbook_says_period_not_month(deployment: Ledger, aiohttp_client):
    await _purchases(deployment)
    app = web.Application()
    app.add_subapp("/ledger", ledger_app(deployment, clock=lambda: cst(2026, 4, 2)))
    cli = await aiohttp_client(app)
    wb = openpyxl.load_workbook(io.BytesIO(
        await (await cli.get(f"/ledger/report/{HOSPITAL}?format=xlsx")).read()))
    rows = {r["国家医保编码"]: r for r in _rows(wb["一院一档"])}
    assert rows[EXEMESTANE_WIN]["本期采购量"] == 11900  # the agreement year to 2 April
    assert wb["汇总"]["B2"].value == "协议年度开始 至 2026-04-02"


async def _stored(db: Path, calendar: WorkCalendar) -> None:
    store = SqliteStore(db)
    await store.start()
    ledger = Ledger(store, LedgerSettings(calendar=calendar))
    await ledger.load()
    await ledger.load_contracts(read_contracts(DATA / "contracts_deployment.csv"),
                                cst(2026, 1, 1))
    await _purchases(ledger)
    await store.close()


def test_cli_writes_the_workbook_from_the_store(tmp_path: Path, calendar: WorkCalendar, capsys):
    db = tmp_path / "gw.db"
    asyncio.run(_stored(db, calendar))
    config = tmp_path / "gateway.yaml"
    config.write_text(yaml.safe_dump({
        "data_dir": str(tmp_path), "store": {"backend": "sqlite", "sqlite_path": str(db)},
        "ledger": {"calendar_dir": str(ROOT / "config" / "calendar"),
                   "rules": str(ROOT / "config" / "rules.yaml"),
                   "dosage_forms": str(ROOT / "config" / "dosage_forms.yaml")}},
        allow_unicode=True), "utf-8")
    out = tmp_path / "out.xlsx"
    assert main(["ledger-report", "-c", str(config), HOSPITAL, "--month", "2026-03",
                 "--xlsx", str(out)]) == 0
    rows = {r["国家医保编码"]: r for r in _rows(openpyxl.load_workbook(out)["一院一档"])}
    assert rows[EXEMESTANE_WIN]["本月采购量"] == 2900
    assert main(["ledger-report", "-c", str(config), HOSPITAL, "--month", "2026-3x"]) == 2
    capsys.readouterr()
    assert main(["ledger-ranking", "-c", str(config), "--month", "2026-03"]) == 0
    ranked = json.loads(capsys.readouterr().out)
    # every hospital behind 序时进度, none with dispensing: all tied, listed by code
    assert [(h["rank"], h["hospital_id"], h["tied"]) for h in ranked["hospitals"]] == [
        (1, HOSPITAL, True), (1, "H36070200023", True), (1, "H36072100011", True),
        (1, "H36073200035", True)]
    demand = tmp_path / "demand.xlsx"
    assert main(["ledger-demand", "-c", str(config), HOSPITAL, "--year", "2027",
                 "--xlsx", str(demand)]) == 0
    with pytest.raises(SystemExit) as bad:  # as the API: a year before 2000 is refused
        main(["ledger-demand", "-c", str(config), HOSPITAL, "--year", "0000"])
    assert bad.value.code == 2
    sheet = openpyxl.load_workbook(demand)["2027年报量"]
    # 2026's receipts to date (February to April) are the history for 2027
    assert {r["通用名"]: r["上年实际采购量"] for r in _rows(sheet)}["依西美坦片"] == 12400
