"""R14: a traceability code sold twice is flagged; R13: a year without sales is reported."""

from __future__ import annotations

from datetime import timedelta

from ledger_helpers import EXEMESTANE_WIN, HOSPITAL, cst, event, fold
from msgspec.structs import replace

from canonical.model import EventKind
from gateway.ledger import Ledger, build_report


def _dispense_with_trace(code: str, at, event_id: str):  # type: ignore[no-untyped-def]
    ev = event(EventKind.DISPENSE, [(EXEMESTANE_WIN, 10, "2.1350")], at=at, event_id=event_id)
    line = replace(ev.lines[0], trace_codes=(code,))
    return ev.with_lines((line,))


async def test_trace_code_sold_twice_is_flagged_once_and_reported(ledger: Ledger) -> None:
    first = _dispense_with_trace("81000000000000000777", cst(2026, 3, 2), "sale-1")
    await fold(ledger, [first])
    await fold(ledger, [first])  # the same event again is not a second sale
    assert (await build_report(ledger, HOSPITAL, cst(2026, 3, 31)))["trace_flags"] == []
    again = _dispense_with_trace("81000000000000000777", cst(2026, 3, 9), "sale-2")
    await fold(ledger, [again])
    flags = (await build_report(ledger, HOSPITAL, cst(2026, 3, 31)))["trace_flags"]
    assert flags == [{"trace_code": "81000000000000000777", "national_code": EXEMESTANE_WIN,
                      "first_sale_event": "sale-1", "first_sale_day": "2026-03-02",
                      "event_id": "sale-2", "day": "2026-03-09"}]


async def test_a_year_without_sales_is_reported_at_the_boundary(ledger: Ledger) -> None:
    contract = next(c for c in ledger.contracts(HOSPITAL) if EXEMESTANE_WIN in c.winning_codes)
    start = contract.cycle_start
    sold_at = cst(start.year, start.month, start.day) + timedelta(days=10)
    await fold(ledger, [event(EventKind.DISPENSE, [(EXEMESTANE_WIN, 5, None)], at=sold_at)])

    async def unsold(now):  # type: ignore[no-untyped-def]
        rep = await build_report(ledger, HOSPITAL, now)
        item = next(i for i in rep["contracts"] if i["contract_id"] == contract.contract_id)
        product = next(p for p in item["winning_products"]
                       if p["national_code"] == EXEMESTANE_WIN)
        return product["no_sales_one_year"], product["last_sale"]

    # exactly 365 days after the last sale: not yet a whole year without one
    assert await unsold(sold_at + timedelta(days=365)) == (False, sold_at.date().isoformat())
    assert await unsold(sold_at + timedelta(days=366)) == (True, sold_at.date().isoformat())


async def test_a_dispense_with_thousands_of_codes_is_flagged_code_by_code(
        ledger: Ledger) -> None:
    """The store writes a big fold's codes a few hundred per transaction (so that the
    messages being acknowledged do not wait for one long write): every code counts, and
    the fold run again finds its own codes, which are not sold again."""
    codes = tuple(f"8100000000{i:010d}" for i in range(2_600))
    big = _dispense_with_trace(codes[0], cst(2026, 3, 2), "sale-big")
    big = big.with_lines((replace(big.lines[0], trace_codes=codes),))
    await fold(ledger, [big])
    await fold(ledger, [big])
    assert (await build_report(ledger, HOSPITAL, cst(2026, 3, 31)))["trace_flags"] == []
    # codes from the first, a middle and the last part of the big write, sold again
    again = [_dispense_with_trace(codes[i], cst(2026, 3, 9), f"again-{i}")
             for i in (0, 1_300, 2_599)]
    await fold(ledger, again)
    flags = (await build_report(ledger, HOSPITAL, cst(2026, 3, 31)))["trace_flags"]
    assert sorted((f["trace_code"], f["first_sale_event"], f["event_id"]) for f in flags) == [
        (codes[i], "sale-big", f"again-{i}") for i in (0, 1_300, 2_599)]
