"""R14: a traceability code sold beyond its package is flagged — a return gives it back,
split-package sales add up to the package; R13: a year without platform purchases."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from ledger_helpers import DATA, EXEMESTANE_WIN, HOSPITAL, cst, event, fold, row_before_migration
from msgspec.structs import replace

from canonical.model import Event, EventKind
from gateway.ledger import Ledger, LedgerSettings, build_report, read_contracts
from gateway.ledger.calendar import WorkCalendar
from gateway.rules import RuleSet

CODE = "81000000000000000777"


def _sale(code: str, at: Any, event_id: str, *, tablets: int = 10, boxes: str = "1",
          kind: EventKind = EventKind.DISPENSE) -> Event:
    """A dispense (or its return) of ``tablets`` counted by the hospital as ``boxes``
    (a box of 10 when tablets ÷ boxes = 10), carrying one traceability code."""
    ev = event(kind, [(EXEMESTANE_WIN, tablets, "2.1350")], at=at, event_id=event_id)
    line = replace(ev.lines[0], quantity=Decimal(boxes), trace_codes=(code,))
    return ev.with_lines((line,))


@pytest.fixture
async def any_ledger(make_store: Any, calendar: WorkCalendar, rules: RuleSet) -> Ledger:
    """The sample contracts' ledger on SQLite and on PostgreSQL."""
    lg = Ledger(await make_store(), LedgerSettings(calendar=calendar), rules)
    await lg.load()
    await lg.load_contracts(read_contracts(DATA / "contracts.csv"), cst(2026, 1, 1))
    return lg


async def _flags(ledger: Ledger) -> list[tuple[str, str, str]]:
    rep = await build_report(ledger, HOSPITAL, cst(2026, 3, 31))
    return [(f["trace_code"], f["first_sale_event"], f["event_id"]) for f in rep["trace_flags"]]


async def test_trace_code_sold_twice_is_flagged_once_and_reported(any_ledger: Ledger) -> None:
    first = _sale(CODE, cst(2026, 3, 2), "sale-1")
    await fold(any_ledger, [first])
    await fold(any_ledger, [first])  # the same event again is not a second sale
    assert await _flags(any_ledger) == []
    await fold(any_ledger, [_sale(CODE, cst(2026, 3, 9), "sale-2")])
    flags = (await build_report(any_ledger, HOSPITAL, cst(2026, 3, 31)))["trace_flags"]
    assert flags == [{"trace_code": CODE, "national_code": EXEMESTANE_WIN,
                      "first_sale_event": "sale-1", "first_sale_day": "2026-03-02",
                      "event_id": "sale-2", "day": "2026-03-09"}]


async def test_a_returned_code_sold_again_is_not_flagged(any_ledger: Ledger) -> None:
    await fold(any_ledger, [_sale(CODE, cst(2026, 3, 2), "sale-1")])
    await fold(any_ledger, [_sale(CODE, cst(2026, 3, 3), "return-1",
                                  kind=EventKind.DISPENSE_RETURN)])
    await fold(any_ledger, [_sale(CODE, cst(2026, 3, 4), "sale-2")])
    assert await _flags(any_ledger) == []
    # the re-sold package sold once more without a return: flagged against the re-sale
    await fold(any_ledger, [_sale(CODE, cst(2026, 3, 5), "sale-3")])
    assert await _flags(any_ledger) == [(CODE, "sale-2", "sale-3")]


async def test_split_sales_summing_to_the_package_are_not_flagged_one_more_is(
        any_ledger: Ledger) -> None:
    # a box of 10 tablets sold 4 + 3 + 3 (拆零): the hospital counts 0.4, 0.3, 0.3 boxes
    for i, (tablets, boxes) in enumerate([(4, "0.4"), (3, "0.3"), (3, "0.3")], start=1):
        await fold(any_ledger, [_sale(CODE, cst(2026, 3, 1 + i), f"split-{i}",
                                      tablets=tablets, boxes=boxes)])
    assert await _flags(any_ledger) == []
    await fold(any_ledger, [_sale(CODE, cst(2026, 3, 9), "split-4", tablets=1, boxes="0.1")])
    assert await _flags(any_ledger) == [(CODE, "split-1", "split-4")]


async def test_a_split_return_gives_back_only_its_part(any_ledger: Ledger) -> None:
    await fold(any_ledger, [_sale(CODE, cst(2026, 3, 2), "half-1", tablets=5, boxes="0.5"),
                            _sale(CODE, cst(2026, 3, 2), "half-2", tablets=5, boxes="0.5")])
    await fold(any_ledger, [_sale(CODE, cst(2026, 3, 3), "back-2", tablets=5, boxes="0.5",
                                  kind=EventKind.DISPENSE_RETURN)])
    await fold(any_ledger, [_sale(CODE, cst(2026, 3, 4), "half-3", tablets=5, boxes="0.5")])
    assert await _flags(any_ledger) == []
    await fold(any_ledger, [_sale(CODE, cst(2026, 3, 5), "half-4", tablets=5, boxes="0.5")])
    assert await _flags(any_ledger) == [(CODE, "half-1", "half-4")]


async def test_a_hospital_counting_tablets_gives_the_package_size(any_ledger: Ledger) -> None:
    # quantities in tablets (the crosswalk's factor is 1): the line says the box holds 14
    def tablets(n: int, event_id: str, day: int) -> Event:
        ev = _sale(CODE, cst(2026, 3, day), event_id, tablets=n, boxes=str(n))
        return ev.with_lines((replace(ev.lines[0], extra=(("package_size", "14"),)),))
    await fold(any_ledger, [tablets(7, "t-1", 2), tablets(7, "t-2", 3)])
    assert await _flags(any_ledger) == []
    await fold(any_ledger, [tablets(1, "t-3", 4)])
    assert await _flags(any_ledger) == [(CODE, "t-1", "t-3")]


async def test_a_code_sold_before_the_migration_counts_as_a_whole_package(
        make_store: Any, calendar: WorkCalendar, rules: RuleSet,
        monkeypatch: pytest.MonkeyPatch) -> None:
    await row_before_migration(make_store, monkeypatch, "ledger_trace_parts", "ledger_trace",
                               (HOSPITAL, CODE, "old-sale", EXEMESTANE_WIN, "2026-03-02"))
    lg = Ledger(await make_store(), LedgerSettings(calendar=calendar), rules)
    await lg.load()
    await fold(lg, [_sale(CODE, cst(2026, 3, 9), "new-sale", tablets=1, boxes="0.1")])
    assert await _flags(lg) == [(CODE, "old-sale", "new-sale")]


async def test_a_dispense_with_thousands_of_codes_is_flagged_code_by_code(
        ledger: Ledger) -> None:
    """The store writes a big fold's codes a few hundred per transaction (so that the
    messages being acknowledged do not wait for one long write): every code counts, and
    the fold run again finds its own codes, which are not sold again."""
    codes = tuple(f"8100000000{i:010d}" for i in range(2_600))
    big = _sale(codes[0], cst(2026, 3, 2), "sale-big", tablets=26_000, boxes="2600")
    big = big.with_lines((replace(big.lines[0], trace_codes=codes),))
    await fold(ledger, [big])
    await fold(ledger, [big])
    assert await _flags(ledger) == []
    # codes from the first, a middle and the last part of the big write, sold again
    again = [_sale(codes[i], cst(2026, 3, 9), f"again-{i}") for i in (0, 1_300, 2_599)]
    await fold(ledger, again)
    assert sorted(await _flags(ledger)) == [(codes[i], "sale-big", f"again-{i}")
                                            for i in (0, 1_300, 2_599)]


async def test_a_year_without_platform_purchases_is_reported_at_the_boundary(
        ledger: Ledger) -> None:
    contract = next(c for c in ledger.contracts(HOSPITAL) if EXEMESTANE_WIN in c.winning_codes)
    start = contract.cycle_start
    bought_at = cst(start.year, start.month, start.day) + timedelta(days=10)
    await fold(ledger, [event(EventKind.RECEIPT, [(EXEMESTANE_WIN, 50, "2.1350")],
                              at=bought_at)])
    # bought off the platform, and dispensed, later: neither is a platform purchase
    later = bought_at + timedelta(days=100)
    await fold(ledger, [event(EventKind.RECEIPT, [(EXEMESTANE_WIN, 50, "2.1350")], at=later,
                              online=False),
                        event(EventKind.DISPENSE, [(EXEMESTANE_WIN, 5, None)], at=later)])

    async def unbought(now: Any) -> tuple[bool, str | None, int]:
        rep = await build_report(ledger, HOSPITAL, now)
        item = next(i for i in rep["contracts"] if i["contract_id"] == contract.contract_id)
        product = next(p for p in item["winning_products"]
                       if p["national_code"] == EXEMESTANE_WIN)
        return (product["no_platform_purchase_one_year"], product["last_platform_purchase"],
                rep["summary"]["no_platform_purchase_one_year"])

    day = bought_at.date().isoformat()
    # the year up to 364 days after the purchase still holds it; 365 days after, none
    assert (await unbought(bought_at + timedelta(days=364)))[:2] == (False, day)
    flagged, last, counted = await unbought(bought_at + timedelta(days=365))
    assert (flagged, last) == (True, day)
    assert counted >= 1


async def test_a_product_never_bought_is_reported_a_year_after_its_listing(
        ledger: Ledger) -> None:
    contract = next(c for c in ledger.contracts(HOSPITAL) if EXEMESTANE_WIN in c.winning_codes)
    start = contract.cycle_start
    listed = cst(start.year, start.month, start.day)

    async def unbought(now: Any) -> bool:
        rep = await build_report(ledger, HOSPITAL, now)
        item = next(i for i in rep["contracts"] if i["contract_id"] == contract.contract_id)
        [product] = [p for p in item["winning_products"] if p["national_code"] == EXEMESTANE_WIN]
        return bool(product["no_platform_purchase_one_year"])

    assert not await unbought(listed + timedelta(days=364))
    assert await unbought(listed + timedelta(days=365))
