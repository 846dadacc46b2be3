"""Savings against the reference price and the fund's prepayment per winning product (R15):
the results file's new columns, their errors, the report's figures, the store."""

from __future__ import annotations

import csv
import io
from decimal import Decimal
from typing import Any

import pytest
from ledger_helpers import (
    ABIRATERONE_WIN_A,
    ABIRATERONE_WIN_B,
    DATA,
    EXEMESTANE_PFIZER,
    EXEMESTANE_WIN,
    HOSPITAL,
    cst,
    event,
    fold,
)

from canonical.model import EventKind
from gateway.ledger import (
    ContractFormatError,
    Ledger,
    LedgerSettings,
    build_report,
    read_contracts,
    read_contracts_csv,
    read_contracts_json,
    report_csv,
)
from gateway.ledger.calendar import WorkCalendar

HEAD = ("hospital_id,project,batch,generic_name,national_code,winning_price,cycle_start,"
        "cycle_end,agreed_volume,agreed_ratio")
ROW = (f"{HOSPITAL},国家组织药品集中带量采购,第二批,醋酸阿比特龙片,{{code}},{{price}},"
       "2026-01-01,2026-12-31,72000,0.60")


def _results(extra_head: str, *rows: tuple[str, str, str]) -> str:
    """Abiraterone's results with extra columns: (code, price, extra values) per row."""
    return "\n".join([f"{HEAD},{extra_head}",
                      *(ROW.format(code=c, price=p) + f",{x}" for c, p, x in rows)]) + "\n"


def _item(report: dict[str, Any], name: str) -> dict[str, Any]:
    return next(i for i in report["contracts"] if i["generic_name"] == name)


def _product(item: dict[str, Any], code: str) -> dict[str, Any]:
    return next(p for p in item["winning_products"] if p["national_code"] == code)


def test_new_columns_are_read_per_product_with_chinese_headers():
    contracts = read_contracts(DATA / "contracts_deployment.csv")
    abi = next(c for c in contracts if c.generic_name == "醋酸阿比特龙片")
    a, b = abi.product(ABIRATERONE_WIN_A), abi.product(ABIRATERONE_WIN_B)
    assert a is not None and b is not None
    assert (a.reference_price, a.agreed_volume, a.prepayment_received) == (
        Decimal("25.6000"), Decimal("48000"), Decimal("58320.00"))
    assert (b.agreed_volume, b.prepayment_received) == (Decimal("24000"), Decimal("30239.99"))
    exe = next(c for c in contracts if c.generic_name == "依西美坦片")
    assert exe.products[0].agreed_volume is None and exe.products[0].prepayment_received is None
    # JSON rows take the English names
    [from_json] = read_contracts_json([{
        "hospital_id": HOSPITAL, "project": "p", "batch": "b", "generic_name": "依西美坦片",
        "national_code": EXEMESTANE_WIN, "winning_price": "2.1350",
        "cycle_start": "2026-01-01", "cycle_end": "2026-12-31", "agreed_volume": 36000,
        "agreed_ratio": 0.7, "reference_price": "6.98", "prepayment_received": 23058}])
    assert from_json.products[0].reference_price == Decimal("6.98")
    assert from_json.products[0].prepayment_received == Decimal("23058")


@pytest.mark.parametrize(("head", "rows", "problem"), [
    ("参比价", [(ABIRATERONE_WIN_A, "4.05", "二十五元")],
     "row 2: reference_price: '二十五元' is not a number"),
    ("reference_price", [(ABIRATERONE_WIN_A, "4.05", "-1")],
     "row 2: reference_price: '-1' is negative"),
    ("集采前价格", [(ABIRATERONE_WIN_A, "4.05", "25%")],
     "row 2: reference_price: '25%' is a percentage, not an amount"),
    ("已拨付预付款", [(ABIRATERONE_WIN_A, "4.05", "abc")],
     "row 2: prepayment_received: 'abc' is not a number"),
    ("产品约定采购量", [(ABIRATERONE_WIN_A, "4.05", "48000"), (ABIRATERONE_WIN_B, "4.20", "24001")],
     "row 2: product_agreed_volume of the winning products adds up to 72001, more than the "
     "agreed volume 72000"),
])
def test_bad_values_in_the_new_columns_are_named(head, rows, problem):
    with pytest.raises(ContractFormatError) as err:
        read_contracts_csv(_results(head, *rows))
    assert err.value.problems == [problem]


def test_prepayment_received_needs_the_agreement_year():
    # a two-year cycle: the row speaks for both years, the prepayment is one year's
    text = _results("prepayment_received", (ABIRATERONE_WIN_A, "4.05", "100")).replace(
        "2026-12-31", "2027-12-31")
    with pytest.raises(ContractFormatError) as err:
        read_contracts_csv(text)
    assert err.value.problems == ["row 2: prepayment_received is paid per agreement year: "
                                  "give year_start and year_end with it"]
    named = text.replace("prepayment_received\n", "prepayment_received,year_start,year_end\n")
    named = named.replace(",100\n", ",100,2026-01-01,2026-12-31\n")
    [c] = read_contracts_csv(named)
    assert c.products[0].prepayment_received == Decimal("100")


async def test_savings_per_product_and_per_group(deployment: Ledger):
    await fold(deployment, [
        event(EventKind.RECEIPT, [(EXEMESTANE_WIN, 1000, "2.1350"),
                                  (EXEMESTANE_PFIZER, 300, "9.5000"),
                                  (ABIRATERONE_WIN_A, 2000, "4.0500")], at=cst(2026, 2, 3)),
        event(EventKind.RECEIPT, [(EXEMESTANE_WIN, 500, "2.1350"),
                                  (ABIRATERONE_WIN_B, 700, "4.2000")], at=cst(2026, 3, 3)),
        event(EventKind.RETURN, [(ABIRATERONE_WIN_A, 10, "4.0500")], at=cst(2026, 3, 9)),
    ])
    rep = await build_report(deployment, HOSPITAL, cst(2026, 4, 1), "2026-03")
    exe = _item(rep, "依西美坦片")
    # non-winning purchases save nothing: 4.845 × (1000 + 500), and 4.845 × 500 in March
    assert (exe["savings"], exe["period_savings"]) == ("7267.50", "2422.50")
    abi = _item(rep, "醋酸阿比特龙片")
    a, b = _product(abi, ABIRATERONE_WIN_A), _product(abi, ABIRATERONE_WIN_B)
    assert (a["received_qty"], a["savings"], a["period_savings"]) == ("1990", "42884.50",
                                                                      "-215.50")
    assert (b["received_qty"], b["savings"]) == ("700", "14980.00")  # 21.40 × 700
    assert abi["savings"] == "57864.50"
    rows = list(csv.DictReader(io.StringIO(report_csv(rep).lstrip("\ufeff"))))
    by_name = {r["generic_name"]: r for r in rows}
    assert by_name["醋酸阿比特龙片"]["savings"] == "57864.50"
    assert by_name["依西美坦片"]["period_savings"] == "2422.50"


async def test_no_reference_price_no_savings(ledger: Ledger):
    await fold(ledger, [event(EventKind.RECEIPT, [(EXEMESTANE_WIN, 1000, "2.1350")],
                              at=cst(2026, 2, 3))])
    exe = _item(await build_report(ledger, HOSPITAL, cst(2026, 3, 1)), "依西美坦片")
    assert exe["savings"] is None and exe["winning_products"][0]["savings"] is None


async def test_r15_per_product_at_its_own_price_and_share(deployment: Ledger):
    abi = _item(await build_report(deployment, HOSPITAL, cst(2026, 1, 2)), "醋酸阿比特龙片")
    a, b = _product(abi, ABIRATERONE_WIN_A), _product(abi, ABIRATERONE_WIN_B)
    # 30 % × 48000 × 4.05 received to the cent: met
    assert (a["prepayment_min"], a["prepayment_received"], a["prepayment_shortfall"]) == (
        "58320.00", "58320.00", "0.00")
    # 30 % × 24000 × 4.20 = 30240.00, one cent short
    assert (b["prepayment_min"], b["prepayment_received"], b["prepayment_shortfall"]) == (
        "30240.00", "30239.99", "0.01")
    # not the lowest price for all 72000: 0.30 × 72000 × 4.05 would be 87480.00
    assert (abi["prepayment_min"], abi["prepayment_received"], abi["prepayment_shortfall"]) == (
        "88560.00", "88559.99", "0.01")
    exe = _item(await build_report(deployment, HOSPITAL, cst(2026, 1, 2)), "依西美坦片")
    assert (exe["prepayment_min"], exe["prepayment_received"], exe["prepayment_shortfall"]) == (
        "23058.00", None, None)  # nothing recorded: no shortfall claimed


async def test_r15_without_product_volumes_splits_the_agreed_volume_equally(ledger: Ledger):
    abi = _item(await build_report(ledger, HOSPITAL, cst(2026, 1, 2)), "醋酸阿比特龙片")
    a, b = _product(abi, ABIRATERONE_WIN_A), _product(abi, ABIRATERONE_WIN_B)
    assert (a["agreed_volume"], b["agreed_volume"]) == ("36000", "36000")
    assert (a["prepayment_min"], b["prepayment_min"]) == ("43740.00", "45360.00")
    assert abi["prepayment_min"] == "89100.00"


def test_a_product_without_a_volume_takes_what_the_others_leave():
    from gateway.ledger.products import product_volumes

    text = _results("product_agreed_volume", (ABIRATERONE_WIN_A, "4.05", "50000"),
                    (ABIRATERONE_WIN_B, "4.20", ""))
    [c] = read_contracts_csv(text)
    assert product_volumes(c) == {ABIRATERONE_WIN_A: Decimal(50000),
                                  ABIRATERONE_WIN_B: Decimal(22000)}


async def test_new_columns_survive_the_store_and_a_second_process(
        make_store: Any, calendar: WorkCalendar):
    store = await make_store()
    first = Ledger(store, LedgerSettings(calendar=calendar))
    await first.load()
    contracts = read_contracts(DATA / "contracts_deployment.csv")
    await first.load_contracts(contracts, cst(2026, 1, 1))
    # a replica (PostgreSQL) or a restart (SQLite) reads them back from the store
    other = store if make_store.backend == "sqlite" else await make_store()
    second = Ledger(other, LedgerSettings(calendar=calendar))
    await second.load()
    assert sorted(second.contracts(), key=lambda c: c.contract_id) == sorted(
        contracts, key=lambda c: c.contract_id)
    # recording a prepayment: the same results imported again with the figure filled in
    text = (DATA / "contracts_deployment.csv").read_text("utf-8").replace(
        "30239.99", "30240.00")
    await first.load_contracts(read_contracts_csv(text), cst(2026, 2, 1))
    await second.catch_up()
    abi = _item(await build_report(second, HOSPITAL, cst(2026, 2, 2)), "醋酸阿比特龙片")
    assert abi["prepayment_shortfall"] == "0.00"
