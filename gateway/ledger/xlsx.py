"""The monthly report (一院一档) as an XLSX workbook, as procurement offices file it [GZ 三].

Sheet 一院一档: one row per winning product, under Chinese headers. The product's own
figures (its part of the agreed volume, quantities, savings, prepayment) stand beside
its contract's — the generic name and dosage-form group (品种) the policy measures:
completion, 序时进度, shares, non-winning purchases — which repeat on every product row
of the contract so that a filtered sheet still reads whole. Sheet 汇总: per project,
batch and agreement year the counts seen in practice (time progress, varieties
contracted, with no purchase, below time progress, over-purchased, with non-winning
purchases) and the savings. Sheet 价格监测: the drugs bought, each price banded against the
deployment's hospitals (R10); sheet 追溯码重复销售: codes sold beyond their package (R14).
Numbers are numbers, ratios fractions shown as percentages.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any

from openpyxl import Workbook
from openpyxl.styles import Font
from openpyxl.worksheet.worksheet import Worksheet

__all__ = ["PRODUCT_COLUMNS", "SUMMARY_COLUMNS", "report_xlsx", "table_xlsx", "write_sheet",
           "xlsx_bytes"]

PERCENT = "0.00%"
MONEY = "#,##0.00"
PRICE = "0.0000"
QTY = "#,##0.####"

Getter = Callable[[dict[str, Any], dict[str, Any]], Any]


def num(value: Any) -> Decimal | None:
    """A report figure (a string or None) as a number for a cell."""
    return None if value is None or value == "" else Decimal(str(value))


def _yes(value: Any) -> str | None:
    return None if value is None else ("是" if value else "否")


def _c(key: str) -> Getter:
    return lambda item, _: num(item.get(key))


def _p(key: str) -> Getter:
    return lambda _, product: num(product.get(key))


# header, value of (contract item, winning product), number format
PRODUCT_COLUMNS: tuple[tuple[str, Getter, str | None], ...] = (
    ("项目", lambda i, _: i["project"], None),
    ("批次", lambda i, _: i["batch"], None),
    ("通用名", lambda i, _: i["generic_name"], None),
    ("剂型", lambda i, _: i["dosage_form"], None),
    ("协议年度", lambda i, _: f"{i['year_start']} 至 {i['year_end']}", None),
    ("中选产品", lambda _, p: p["name"], None),
    ("国家医保编码", lambda _, p: p["national_code"], None),
    ("中选企业", lambda _, p: p["supplier"], None),
    ("中选价", _p("winning_price"), PRICE),
    ("参比价", _p("reference_price"), PRICE),
    ("约定采购量", _p("agreed_volume"), QTY),
    ("品种约定采购量", _c("agreed_volume"), QTY),
    ("本月采购量", _p("period_received_qty"), QTY),
    ("本月采购金额", _p("period_received_amount"), MONEY),
    ("累计采购量", _p("received_qty"), QTY),
    ("累计采购金额", _p("received_amount"), MONEY),
    ("品种累计采购量", _c("received_qty"), QTY),
    ("完成率", _c("completion"), PERCENT),
    ("序时进度", _c("time_progress"), PERCENT),
    ("是否落后", lambda i, _: _yes(i["lagging"]), None),
    ("中选产品数量占比", _c("qty_share"), PERCENT),
    ("中选产品金额占比", _c("amount_share"), PERCENT),
    ("非中选产品采购量", _c("nonwinning_qty"), QTY),
    ("非中选产品采购金额", _c("nonwinning_amount"), MONEY),
    ("中选产品使用比例", _c("use_share"), PERCENT),
    ("约定采购比例", _c("agreed_ratio"), PERCENT),
    ("是否超量采购", lambda i, _: _yes(i["over_purchased"]), None),
    ("本月结余金额", _p("period_savings"), MONEY),
    ("累计结余金额", _p("savings"), MONEY),
    ("应预付金额", _p("prepayment_min"), MONEY),
    ("已拨付预付款", _p("prepayment_received"), MONEY),
    ("预付款缺口", _p("prepayment_shortfall"), MONEY),
    ("最近采购价", _p("purchase_price"), PRICE),
    ("高于中选价采购", lambda _, p: _yes(p.get("above_winning_price")), None),  # R11
    ("最近平台采购日期", lambda _, p: p.get("last_platform_purchase"), None),
    ("一年无平台采购", lambda _, p: _yes(p.get("no_platform_purchase_one_year")), None),  # R13
)

_BAND = {"blue": "蓝色", "yellow": "黄色", "red": "红色"}
# R10: drugs bought at a price banded against the deployment's hospitals
BAND_COLUMNS: tuple[tuple[str, str, str | None], ...] = (
    ("national_code", "国家医保编码", None), ("last_purchase_day", "最近采购日期", None),
    ("purchase_price", "采购价", PRICE), ("reference_price", "参考价", PRICE),
    ("ratio", "比值", "0.00"), ("hospitals", "比价医院数", None), ("band", "价格标识", None))
# R14: traceability codes sold beyond their package
TRACE_COLUMNS: tuple[tuple[str, str, str | None], ...] = (
    ("trace_code", "追溯码", None), ("national_code", "国家医保编码", None),
    ("first_sale_day", "首次销售日期", None), ("first_sale_event", "首次销售单据", None),
    ("day", "再次销售日期", None), ("event_id", "再次销售单据", None))

SUMMARY_COLUMNS = ("项目", "批次", "协议年度", "时间进度", "中选品种数", "中选产品数",
                   "零采购品种数", "低于序时进度品种数", "超量采购品种数",
                   "采购非中选产品品种数", "本月结余金额", "累计结余金额")


def write_sheet(ws: Worksheet, header: Iterable[str], rows: Iterable[Iterable[Any]],
                formats: Iterable[str | None] = ()) -> None:
    """A header row in bold, then ``rows``; column *i* takes ``formats[i]``."""
    head = list(header)
    ws.append(head)
    header_row = ws.max_row
    for cell in ws[header_row]:
        cell.font = Font(bold=True)
    fmts = list(formats)
    for row in rows:
        ws.append(list(row))
        for cell, fmt in zip(ws[ws.max_row], fmts, strict=False):
            if fmt is not None:
                cell.number_format = fmt
    ws.freeze_panes = ws.cell(row=header_row + 1, column=1)
    for i, title in enumerate(head, start=1):
        ws.column_dimensions[ws.cell(row=header_row, column=i).column_letter].width = max(
            10, 2 * len(title) + 2)


def table_xlsx(title: str, columns: Sequence[tuple[str, str, str | None]],
               rows: Iterable[Mapping[str, Any]],
               labels: Mapping[str, Mapping[str, str]] | None = None) -> bytes:
    """A one-sheet workbook of JSON ``rows``: ``columns`` are (key, Chinese header, number
    format); a formatted value becomes a number, a boolean 是 / 否, and a value of a column
    in ``labels`` its label."""
    wb = Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = title
    _table_sheet(ws, columns, rows, labels or {})
    return xlsx_bytes(wb)


def xlsx_bytes(wb: Workbook) -> bytes:
    """The workbook as the bytes of an .xlsx file."""
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def _summary_rows(report: dict[str, Any]) -> list[list[Any]]:
    groups: dict[tuple[str, str, str, str], list[dict[str, Any]]] = {}
    for item in report["contracts"]:
        key = (item["project"], item["batch"], item["year_start"], item["year_end"])
        groups.setdefault(key, []).append(item)

    def counts(items: list[dict[str, Any]]) -> list[Any]:
        return [len(items), sum(len(i["winning_products"]) for i in items),
                sum(bool(i["zero_purchase"]) for i in items),
                sum(bool(i["lagging"]) for i in items),
                sum(bool(i["over_purchased"]) for i in items),
                sum((num(i["nonwinning_qty"]) or 0) > 0 for i in items),
                _total(i.get("period_savings") for i in items),
                _total(i.get("savings") for i in items)]

    rows = [[project, batch, f"{y0} 至 {y1}", num(items[0]["time_progress"]), *counts(items)]
            for (project, batch, y0, y1), items in groups.items()]
    rows.append(["合计", None, None, None, *counts(list(report["contracts"]))])
    return rows


def _total(values: Iterable[Any]) -> Decimal | None:
    known = [d for v in values if (d := num(v)) is not None]
    return sum(known, Decimal(0)) if known else None


def report_xlsx(report: dict[str, Any]) -> bytes:
    """The workbook of a report from :func:`~gateway.ledger.report.build_report`."""
    wb = Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = "一院一档"
    month = report["period"]["month"]
    headers = [h if month else h.replace("本月", "本期") for h, _, _ in PRODUCT_COLUMNS]
    write_sheet(ws, headers,
                ([get(item, p) for _, get, _ in PRODUCT_COLUMNS]
                 for item in report["contracts"] for p in item["winning_products"]),
                [fmt for _, _, fmt in PRODUCT_COLUMNS])
    summary = wb.create_sheet("汇总")
    period = report["period"]
    summary.append(["医疗机构", report["hospital_id"]])
    summary.append(["统计期间", f"{period['from'] or '协议年度开始'} 至 {period['to']}"])
    summary.append([])
    cols = [h if month else h.replace("本月", "本期") for h in SUMMARY_COLUMNS]
    write_sheet(summary, cols, _summary_rows(report),
                [None, None, None, PERCENT, *[None] * 6, MONEY, MONEY])
    _table_sheet(wb.create_sheet("价格监测"), BAND_COLUMNS, report.get("price_bands", ()),
                 {"band": _BAND})
    _table_sheet(wb.create_sheet("追溯码重复销售"), TRACE_COLUMNS,
                 report.get("trace_flags", ()), {})
    return xlsx_bytes(wb)


def _table_sheet(ws: Worksheet, columns: Sequence[tuple[str, str, str | None]],
                 rows: Iterable[Mapping[str, Any]],
                 labels: Mapping[str, Mapping[str, str]]) -> None:
    def cell(key: str, fmt: str | None, value: Any) -> Any:
        if key in labels:
            return labels[key].get(value, value)
        if isinstance(value, bool):
            return _yes(value)
        return value if fmt is None else num(value)

    write_sheet(ws, [h for _, h, _ in columns],
                ([cell(k, f, row.get(k)) for k, _, f in columns] for row in rows),
                [f for _, _, f in columns])
