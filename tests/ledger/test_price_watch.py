"""R10 (negotiated-price bands across the deployment's hospitals), R11 (winning products at
the winning price) and R12 (payment standard of non-winning drugs), through the ledger's
view, the rules and the report."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from ledger_helpers import EXEMESTANE_PFIZER, EXEMESTANE_WIN, HOSPITAL, cst, event, fold

from canonical.model import EventKind
from gateway.ledger import DraftLine, Ledger, LedgerSettings, build_report
from gateway.ledger.price_watch import PRICE_FACTS
from gateway.ledger.prices import PriceBands
from gateway.rules import FACTS

OTHERS = ("H36070200023", "H36070300015")
PFIZER = DraftLine(1, EXEMESTANE_PFIZER, "依西美坦片")


async def _buy(ledger: Ledger, hospital: str, code: str, price: str, day: int,
               month: int = 3, year: int = 2026) -> None:
    await fold(ledger, [event(EventKind.RECEIPT, [(code, 100, price)], hospital=hospital,
                              at=cst(year, month, day))])


async def _band(ledger: Ledger, hospital: str = HOSPITAL) -> dict[str, Any]:
    rep = await build_report(ledger, hospital, cst(2026, 3, 31))
    [row] = [b for b in rep["price_bands"] if b["national_code"] == EXEMESTANE_PFIZER]
    return {**row, "summary": (rep["summary"]["price_yellow"], rep["summary"]["price_red"])}


def _ids(ledger: Ledger, line: DraftLine, hospital: str = HOSPITAL) -> list[str]:
    return [f.rule_id for f in ledger.evaluate_lines(hospital, [line], cst(2026, 3, 31))]


@pytest.mark.parametrize(("price", "band", "summary"), [
    ("10.00", "blue", (0, 0)),  # the reference (median) itself
    ("9.00", "blue", (0, 0)),
    ("12.00", "yellow", (1, 0)),  # 1.2 × the reference exactly
    ("12.01", "red", (0, 1)),
])
async def test_r10_band_boundaries_through_the_report(ledger: Ledger, price: str, band: str,
                                                      summary: tuple[int, int]) -> None:
    # two other hospitals of the deployment bought at 10.00 and 10.00: median 10.00
    for h in OTHERS:
        await _buy(ledger, h, EXEMESTANE_PFIZER, "10.00", 2)
    await _buy(ledger, HOSPITAL, EXEMESTANE_PFIZER, price, 3)
    row = await _band(ledger)
    assert (row["reference_price"], row["hospitals"], row["band"]) == ("10.0000", 3, band)
    assert row["purchase_price"] == f"{price}00" and row["last_purchase_day"] == "2026-03-03"
    assert row["summary"] == summary
    # the red band warns the prescriber; yellow is only a reminder to the hospital
    assert ("negotiated-price-red" in _ids(ledger, PFIZER)) is (band == "red")


async def test_r10_the_latest_purchase_is_the_hospitals_price(ledger: Ledger) -> None:
    for h in OTHERS:
        await _buy(ledger, h, EXEMESTANE_PFIZER, "10.00", 2)
    await _buy(ledger, HOSPITAL, EXEMESTANE_PFIZER, "13.00", 3)
    assert (await _band(ledger))["band"] == "red"
    await _buy(ledger, HOSPITAL, EXEMESTANE_PFIZER, "10.50", 9)  # renegotiated down
    assert (await _band(ledger))["band"] == "yellow"
    assert "negotiated-price-red" not in _ids(ledger, PFIZER)


async def test_r10_bands_from_the_settings(ledger: Ledger) -> None:
    for h in OTHERS:
        await _buy(ledger, h, EXEMESTANE_PFIZER, "10.00", 2)
    await _buy(ledger, HOSPITAL, EXEMESTANE_PFIZER, "12.01", 3)
    assert (await _band(ledger))["band"] == "red"
    calendar = ledger.settings.calendar
    ledger.settings = LedgerSettings(calendar, price_bands=PriceBands(yellow_max=Decimal("1.25")))
    assert (await _band(ledger))["band"] == "yellow"
    ledger.settings = LedgerSettings(calendar, price_reference="min")
    assert (await _band(ledger))["band"] == "red"  # against the lowest, 10.00


async def test_winning_products_are_not_banded(ledger: Ledger) -> None:
    await _buy(ledger, OTHERS[0], EXEMESTANE_WIN, "1.00", 2)
    await _buy(ledger, HOSPITAL, EXEMESTANE_WIN, "2.1350", 3)
    rep = await build_report(ledger, HOSPITAL, cst(2026, 3, 31))
    assert [b["national_code"] for b in rep["price_bands"]] == []


@pytest.mark.parametrize(("price", "above", "below"), [
    ("2.1350", False, False),  # the winning price exactly
    ("2.1351", True, False),
    ("2.1349", False, True),  # renegotiated below the listed price
])
async def test_r11_winning_product_bought_off_its_winning_price(
        ledger: Ledger, price: str, above: bool, below: bool) -> None:
    await _buy(ledger, HOSPITAL, EXEMESTANE_WIN, price, 3)
    rep = await build_report(ledger, HOSPITAL, cst(2026, 3, 31))
    item = next(i for i in rep["contracts"] if i["generic_name"] == "依西美坦片")
    [product] = [p for p in item["winning_products"] if p["national_code"] == EXEMESTANE_WIN]
    assert (product["purchase_price"], product["above_winning_price"],
            product["below_winning_price"]) == (price, above, below)
    findings = ledger.evaluate_lines(HOSPITAL, [DraftLine(1, EXEMESTANE_WIN, "依西美坦片")],
                                     cst(2026, 3, 31))
    off = [f for f in findings if f.rule_id == "winning-bought-off-price"]
    assert bool(off) is (above or below)
    if off:
        assert f"采购单价{price}元" in off[0].detail and "中选价2.1350元" in off[0].detail
        assert off[0].block is False


@pytest.mark.parametrize(("last_year", "standard"), [
    ("9.80", "6.86"),  # above 2 × 2.1350: cut by 30 %
    ("4.27", "2.14"),  # 2 × the winning price exactly: the winning price
    ("4.2701", "2.99"),  # just above: 4.2701 × 0.7
    ("2.00", "2.00"),  # below the winning price: the actual price
])
async def test_r12_payment_standard_of_each_non_winning_product_bought(
        ledger: Ledger, last_year: str, standard: str) -> None:
    # last bought in 2025, the year before the cycle; bought again in 2026
    await _buy(ledger, HOSPITAL, EXEMESTANE_PFIZER, "1.00", 1, month=6, year=2025)
    await _buy(ledger, HOSPITAL, EXEMESTANE_PFIZER, last_year, 20, month=12, year=2025)
    await _buy(ledger, HOSPITAL, EXEMESTANE_PFIZER, "9.50", 3)
    rep = await build_report(ledger, HOSPITAL, cst(2026, 3, 31))
    item = next(i for i in rep["contracts"] if i["generic_name"] == "依西美坦片")
    assert item["nonwinning_payment_standards"] == [{
        "national_code": EXEMESTANE_PFIZER, "last_year_price": f"{Decimal(last_year):.4f}",
        "winning_price": "2.1350", "cycle_year": 0, "payment_standard": standard}]


async def test_r12_without_last_years_price_there_is_no_standard(ledger: Ledger) -> None:
    await _buy(ledger, HOSPITAL, EXEMESTANE_PFIZER, "9.50", 3)
    rep = await build_report(ledger, HOSPITAL, cst(2026, 3, 31))
    item = next(i for i in rep["contracts"] if i["generic_name"] == "依西美坦片")
    [row] = item["nonwinning_payment_standards"]
    assert (row["last_year_price"], row["payment_standard"]) == (None, None)


async def test_every_line_has_the_price_facts_the_rules_may_name(ledger: Ledger) -> None:
    assert set(PRICE_FACTS) <= set(FACTS)
    # a product of no contract, never bought: the facts are there, unknown
    line = DraftLine(1, "XA02AXX095A001010103357", "小儿大黄碳酸氢钠片")
    facts, _ = ledger.line_facts(HOSPITAL, line, cst(2026, 3, 31))
    assert {k: facts[k] for k in PRICE_FACTS} == {
        "purchase_price": None, "reference_price": None, "price_ratio": None,
        "price_band": None, "price_hospitals": 0, "product_winning_price": None,
        "above_winning_price": False, "below_winning_price": False}
