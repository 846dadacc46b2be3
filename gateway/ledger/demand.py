"""The 报量 worksheet of one hospital for an agreement year [GZ 一, R9].

GZ 一 asks hospitals to report demand "原则上不少于上一年度实际采购量" (in principle no
less than last year's actual purchases); a report below 80 % of the historical purchases
must be explained, and a hospital with history that reports nothing is watched.

Per product group (generic name + dosage-form group) the hospital holds contracts for:
the history is what it received of every product of the group (receipts less returns) in
the calendar year before ``year``; the reported demand is the ``reported_demand`` of its
contract whose agreement year begins in ``year`` (none reported when there is no such
contract or it gives none). Each group is marked:

- ``no_history``: nothing received last year, nothing to compare with;
- ``not_reported``: history but no demand reported — to be watched (重点关注);
- ``below_threshold``: below 80 % of the history — needs an explanation (作出说明);
- ``below_history``: from 80 % up to below 100 % — short of the principle, no
  explanation required;
- ``ok``: at least the history.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from gateway.ledger.contracts import Contract
from gateway.ledger.ledger import Ledger
from gateway.ledger.metrics import DemandFlag, demand_flag, ratio
from gateway.ledger.products import PURCHASE_SIGN
from gateway.ledger.xlsx import PERCENT, QTY, table_xlsx
from gateway.store.ledger_records import DailyRow

__all__ = ["BELOW_HISTORY", "DemandLine", "agreement_year", "build_demand", "demand_lines",
           "demand_xlsx"]

BELOW_HISTORY = "below_history"
_FLAG_TEXT = {DemandFlag.OK.value: "不少于上年实际采购量",
              BELOW_HISTORY: "低于上年实际采购量（原则上不少于）",
              DemandFlag.BELOW_THRESHOLD.value: "低于上年实际采购量80%，需作出说明",
              DemandFlag.NOT_REPORTED.value: "有历史采购量未报量，重点关注",
              DemandFlag.NO_HISTORY.value: "上年无采购"}


@dataclass(frozen=True, slots=True)
class DemandLine:
    """One product group of the worksheet."""

    contract: Contract  # the year's contract, or the group's latest before it
    history_qty: Decimal
    reported: Decimal | None
    threshold: Decimal
    flag: str

    @property
    def floor(self) -> Decimal:
        """The least demand that needs no explanation (80 % of the history)."""
        return self.history_qty * self.threshold


def _flag(reported: Decimal | None, history: Decimal, threshold: Decimal) -> str:
    found = demand_flag(reported, history, threshold)
    if found is DemandFlag.OK and reported is not None and reported < history:
        return BELOW_HISTORY
    return found.value


def demand_lines(contracts: Iterable[Contract], rows: Iterable[DailyRow], year: int,
                 group_of: Callable[[str], tuple[str, str] | None],
                 threshold: Decimal) -> list[DemandLine]:
    """The worksheet of one hospital's ``contracts`` from its daily ``rows`` of the year
    before ``year``; ``group_of`` gives a national code's (generic key, dosage-form key)."""
    by_group: dict[tuple[str, str], list[Contract]] = {}
    for c in contracts:
        # groups contracted last year or for the year asked
        if year - 1 <= c.period_end.year and c.period_start.year <= year:
            by_group.setdefault(c.group_key, []).append(c)
    history: dict[tuple[str, str], Decimal] = {}
    for r in rows:
        sign = PURCHASE_SIGN.get(r.kind)
        if sign is None:
            continue
        key = group_of(r.national_code)
        if key is not None and key in by_group:
            history[key] = history.get(key, Decimal(0)) + sign * r.qty
    lines = []
    for key, found in by_group.items():
        this_year = [c for c in found if c.period_start.year == year]
        shown = max(this_year or found, key=lambda c: c.period_start)
        reported = next((c.reported_demand for c in sorted(this_year, key=lambda c: c.period_start)
                         if c.reported_demand is not None), None)
        qty = history.get(key, Decimal(0))
        lines.append(DemandLine(shown, qty, reported, threshold,
                                _flag(reported, qty, threshold)))
    return sorted(lines, key=lambda d: (d.contract.project, d.contract.batch,
                                        d.contract.generic_name, d.contract.form_key))


def _s(value: Decimal | None, places: str | None = None) -> str | None:
    if value is None:
        return None
    return str(value if places is None else value.quantize(Decimal(places), ROUND_HALF_UP))


def agreement_year(text: str) -> int | None:
    """``YYYY`` of 2000 or later as a year, else None: the worksheet reads the year before
    it, and 0001's has none."""
    if text.isascii() and text.isdigit() and len(text) == 4 and int(text) >= 2000:
        return int(text)
    return None


async def build_demand(ledger: Ledger, hospital_id: str, year: int) -> dict[str, Any]:
    """The worksheet of ``hospital_id`` for the agreement year starting in ``year``."""
    since, until = date(year - 1, 1, 1), date(year - 1, 12, 31)
    rows = await ledger.daily_rows(hospital_id, since, until)
    lines = demand_lines(ledger.contracts(hospital_id), rows, year, ledger.product_key,
                         ledger.settings.demand_threshold)
    return {
        "hospital_id": hospital_id, "year": year,
        "history": {"from": since.isoformat(), "to": until.isoformat()},
        "threshold": str(ledger.settings.demand_threshold),
        "groups": [{
            "project": d.contract.project, "batch": d.contract.batch,
            "generic_name": d.contract.generic_name, "dosage_form": d.contract.dosage_form,
            "generic_key": d.contract.generic_key, "form_key": d.contract.form_key,
            "contract_id": d.contract.contract_id,
            "history_qty": _s(d.history_qty), "floor_qty": _s(d.floor, "0.01"),
            "reported_demand": _s(d.reported),
            "reported_ratio": _s(None if d.reported is None else ratio(d.reported,
                                                                        d.history_qty),
                                 "0.0001"),
            "last_year_purchases": _s(d.contract.last_year_purchases),
            "flag": d.flag,
            "needs_explanation": d.flag == DemandFlag.BELOW_THRESHOLD.value,
            "watch": d.flag == DemandFlag.NOT_REPORTED.value,
        } for d in lines],
    }


DEMAND_COLUMNS = (("project", "项目", None), ("batch", "批次", None),
                  ("generic_name", "通用名", None), ("dosage_form", "剂型", None),
                  ("history_qty", "上年实际采购量", QTY),
                  ("floor_qty", "报量下限（80%）", QTY),
                  ("reported_demand", "填报需求量", QTY),
                  ("reported_ratio", "填报量/上年采购量", PERCENT),
                  ("last_year_purchases", "平台上年采购量", QTY),
                  ("flag", "审核结果", None), ("needs_explanation", "需作出说明", None),
                  ("watch", "重点关注", None))


def demand_xlsx(worksheet: dict[str, Any]) -> bytes:
    """The worksheet as a workbook under Chinese headers."""
    return table_xlsx(f"{worksheet['year']}年报量", DEMAND_COLUMNS, worksheet["groups"],
                      {"flag": _FLAG_TEXT})
