"""A drug sold without traceability codes on or after the day they became mandatory is
flagged in the ledger report; the day before is not, nor a consumable, a return, or a sale
that carries its codes."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from ledger_helpers import EXEMESTANE_WIN, HOSPITAL, cst, event, fold
from msgspec.structs import replace

from canonical.model import Event, EventKind
from gateway.config import LedgerThresholds
from gateway.ledger import Ledger, LedgerSettings, build_report
from gateway.ledger.calendar import WorkCalendar
from gateway.ledger.settings import ledger_settings
from gateway.rules import RuleSet

CONSUMABLE = "C0101010011303807555"
CHINESE_PATENT = "ZA09BAD0254010102017"


def _sale(code: str, at: Any, event_id: str, *, traced: bool = False,
          kind: EventKind = EventKind.DISPENSE) -> Event:
    ev = event(kind, [(code, 10, "2.1350")], at=at, event_id=event_id)
    if not traced:
        return ev
    return ev.with_lines((replace(ev.lines[0], trace_codes=("81000000000000000777",)),))


async def _ledger(make_store: Any, calendar: WorkCalendar, rules: RuleSet,
                  **settings: Any) -> Ledger:
    lg = Ledger(await make_store(), LedgerSettings(calendar=calendar, **settings), rules)
    await lg.load()
    return lg


async def test_the_day_before_is_not_flagged_the_day_itself_is(
        make_store: Any, calendar: WorkCalendar, rules: RuleSet) -> None:
    lg = await _ledger(make_store, calendar, rules)  # the default: 2025-07-01
    await fold(lg, [_sale(EXEMESTANE_WIN, cst(2025, 6, 30, 23, 59), "eve"),
                    _sale(EXEMESTANE_WIN, cst(2025, 7, 1, 0, 1), "first-day")])
    report = await build_report(lg, HOSPITAL, cst(2026, 3, 31))
    assert report["untraced_sales"] == [{"event_id": "first-day", "line": 1,
                                         "national_code": EXEMESTANE_WIN,
                                         "day": "2025-07-01"}]
    assert report["summary"]["untraced_sales"] == 1


async def test_only_untraced_drug_sales_are_flagged_from_the_configured_day(
        make_store: Any, calendar: WorkCalendar, rules: RuleSet) -> None:
    lg = await _ledger(make_store, calendar, rules,
                       trace_codes_mandatory_from=date(2026, 3, 10))
    await fold(lg, [
        _sale(EXEMESTANE_WIN, cst(2026, 3, 9), "before"),
        _sale(EXEMESTANE_WIN, cst(2026, 3, 10), "traced", traced=True),
        _sale(CONSUMABLE, cst(2026, 3, 10), "consumable"),
        _sale(EXEMESTANE_WIN, cst(2026, 3, 10), "returned", kind=EventKind.DISPENSE_RETURN),
        _sale(CHINESE_PATENT, cst(2026, 3, 11), "patent"),
        _sale(EXEMESTANE_WIN, cst(2026, 3, 10), "western"),
    ])
    await fold(lg, [_sale(EXEMESTANE_WIN, cst(2026, 3, 10), "western")])  # folded once
    report = await build_report(lg, HOSPITAL, cst(2026, 3, 31))
    assert [(u["event_id"], u["national_code"], u["day"]) for u in report["untraced_sales"]] \
        == [("western", EXEMESTANE_WIN, "2026-03-10"),
            ("patent", CHINESE_PATENT, "2026-03-11")]
    assert report["summary"]["untraced_sales"] == 2
    month = await build_report(lg, HOSPITAL, cst(2026, 4, 30), month="2026-04")
    assert month["untraced_sales"] == [] and month["summary"]["untraced_sales"] == 0


def test_the_day_is_configured_under_ledger_thresholds(calendar: WorkCalendar) -> None:
    assert LedgerThresholds().trace_codes_mandatory_from == date(2025, 7, 1)
    t = LedgerThresholds.model_validate({"trace_codes_mandatory_from": "2026-01-01"})
    assert ledger_settings(t, calendar).trace_codes_mandatory_from == date(2026, 1, 1)
    with pytest.raises(ValueError, match="trace_codes_mandatory_from"):
        LedgerThresholds.model_validate({"trace_codes_mandatory_from": "July"})
