"""Agreement years inside 1–3-year cycles, and renewals (接续).

A cycle with two or three winners lasts two years and may be extended by one (R2); the
agreement is signed every year with that year's agreed volume (R1: a share of annual use),
so completion and 序时进度 run per agreement year (R3).
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from ledger_helpers import EXEMESTANE_PFIZER, EXEMESTANE_WIN, cst, event, fold

from canonical.model import EventKind
from gateway.ledger import ContractFormatError, Ledger, build_report, read_contracts_csv
from gateway.ledger.contracts import agreement_years

HOSPITAL = "H33010200015"
HEADER = ("hospital_id,project,batch,generic_name,national_code,product_name,winning_price,"
          "supplier,cycle_start,cycle_end,agreed_volume,agreed_ratio,year_start,year_end,"
          "renews\n")
PROJECT = "国家组织药品集中带量采购"


def _row(volume: int, y0: str = "", y1: str = "", *, batch: str = "第五批",
         cycle: tuple[str, str] = ("2025-01-01", "2027-12-31"), project: str = PROJECT,
         renews: str = "") -> str:
    return (f"{HOSPITAL},{project},{batch},依西美坦片,{EXEMESTANE_WIN},依西美坦片 25mg,2.1350,"
            f"齐鲁制药有限公司,{cycle[0]},{cycle[1]},{volume},0.70,{y0},{y1},{renews}\n")


THREE_YEARS = HEADER + "".join([
    _row(30000, "2025-01-01", "2025-12-31"),
    _row(36000, "2026-01-01", "2026-12-31"),
    _row(40000, "2027-01-01", "2027-12-31"),
])


def test_agreement_years_of_a_cycle():
    assert agreement_years(cst(2025, 3, 1).date(), cst(2027, 2, 28).date()) == [
        (cst(2025, 3, 1).date(), cst(2026, 2, 28).date()),
        (cst(2026, 3, 1).date(), cst(2027, 2, 28).date())]
    # a 29 February start: the next year starts on 28 February
    assert agreement_years(cst(2024, 2, 29).date(), cst(2025, 12, 31).date())[1][0] \
        == cst(2025, 2, 28).date()


def test_a_row_without_years_gives_every_year_of_its_cycle_its_volume():
    [y1, y2] = read_contracts_csv(HEADER + _row(36000, cycle=("2025-01-01", "2026-12-31")))
    assert (y1.period_start, y1.period_end) == (cst(2025, 1, 1).date(), cst(2025, 12, 31).date())
    assert (y2.period_start, y2.period_end) == (cst(2026, 1, 1).date(), cst(2026, 12, 31).date())
    assert y1.agreed_volume == y2.agreed_volume == 36000
    assert (y1.year_no, y2.year_no) == (1, 2)
    assert y1.contract_id != y2.contract_id
    # a one-year cycle keeps one contract, its id without a year
    [one] = read_contracts_csv(HEADER + _row(36000, cycle=("2026-01-01", "2026-12-31")))
    assert one.year_start is None and one.contract_id.endswith("/口服常释剂型")


@pytest.mark.parametrize(("rows", "problem"), [
    (_row(1, "2025-01-01", "2025-12-31") + _row(1, "2025-07-01", "2026-06-30"),
     "row 3: the agreement year from 2025-07-01 overlaps the one of row 2"),
    (_row(1, "2024-07-01", "2025-06-30"), "is not inside the cycle 2025-01-01 – 2027-12-31"),
    (_row(1, "2025-01-01", "2026-03-31"), "is longer than a year"),
    (_row(1, "2025-01-01"), "give both year_start and year_end, or neither"),
    (_row(1, cycle=("2025-01-01", "2028-12-31")), "is longer than 3 years"),
])
def test_bad_agreement_years_are_named(rows: str, problem: str):
    with pytest.raises(ContractFormatError) as exc:
        read_contracts_csv(HEADER + rows)
    assert problem in str(exc.value)


def _year(ledger: Ledger, n: int, batch: str = "第五批"):
    [c] = [c for c in ledger.contracts(HOSPITAL) if c.batch == batch and c.year_no == n]
    return c


async def test_completion_and_time_progress_run_over_the_second_year(ledger: Ledger):
    await ledger.load_contracts(read_contracts_csv(THREE_YEARS), cst(2025, 1, 1))
    assert len(ledger.contracts(HOSPITAL)) == 3
    await fold(ledger, [
        event(EventKind.RECEIPT, [(EXEMESTANE_WIN, 30000, "2.1350")], at=cst(2025, 6, 2),
              hospital=HOSPITAL),
        event(EventKind.RECEIPT, [(EXEMESTANE_WIN, 9000, "2.1350"),
                                  (EXEMESTANE_PFIZER, 1000, "9.8000")], at=cst(2026, 2, 10),
              hospital=HOSPITAL),
    ])
    now = cst(2026, 4, 1)
    second = ledger.contract_for(HOSPITAL, EXEMESTANE_WIN, now.date())
    assert second is _year(ledger, 2)
    st = ledger.status(second, now)
    assert st.completion == Decimal(9000) / Decimal(36000)  # this year's receipts only
    assert st.time_progress == Decimal(91) / Decimal(365)  # 1 January .. 1 April 2026
    assert st.lagging is False
    assert st.qty_share == Decimal("0.9")
    assert ledger.status(_year(ledger, 2), cst(2026, 4, 2)).lagging is True  # 92/365
    first = ledger.status(_year(ledger, 1), now)
    assert first.completion == 1 and first.time_progress == 1
    assert ledger.status(_year(ledger, 3), now).received_qty == 0
    report = await build_report(ledger, HOSPITAL, now)
    rows = {r["agreement_year"]: r for r in report["contracts"]}
    assert sorted(rows) == [1, 2]  # the third year has not begun
    assert rows[2]["agreed_volume"] == "36000"
    assert rows[2]["completion"] == "0.2500"
    assert rows[2]["year_start"] == "2026-01-01"
    assert rows[2]["previous_year"] == _year(ledger, 1).contract_id


async def test_storing_one_agreement_year_keeps_the_others(ledger: Ledger):
    await ledger.load_contracts(read_contracts_csv(THREE_YEARS), cst(2025, 1, 1))
    # the second year's agreement is signed with a revised volume
    revised = read_contracts_csv(HEADER + _row(33000, "2026-01-01", "2026-12-31"))
    await ledger.load_contracts(revised, cst(2026, 1, 5))
    volumes = sorted((c.year_no, c.agreed_volume) for c in ledger.contracts(HOSPITAL))
    assert volumes == [(1, 30000), (2, 33000), (3, 40000)]
    await ledger.load()  # the same from the store
    assert sorted((c.year_no, c.agreed_volume) for c in ledger.contracts(HOSPITAL)) == volumes


async def test_a_renewal_continues_the_cycle_it_names(ledger: Ledger):
    first = _row(30000, batch="第五批", cycle=("2024-01-01", "2025-12-31"))
    renewal = _row(32000, project="浙江省药品集采接续", batch="2026年接续",
                   cycle=("2026-01-01", "2027-12-31"), renews=f"{PROJECT}/第五批")
    await ledger.load_contracts(read_contracts_csv(HEADER + first + renewal), cst(2024, 1, 1))
    await fold(ledger, [event(EventKind.RECEIPT, [(EXEMESTANE_WIN, 29000, "2.1350")],
                              at=cst(2025, 5, 6), hospital=HOSPITAL),
                        event(EventKind.RECEIPT, [(EXEMESTANE_WIN, 8000, "2.0100")],
                              at=cst(2026, 1, 20), hospital=HOSPITAL)])
    now = cst(2026, 3, 1)
    current = ledger.contract_for(HOSPITAL, EXEMESTANE_WIN, now.date())
    assert current is not None and current.batch == "2026年接续" and current.year_no == 1
    previous = ledger.predecessor(current)
    assert previous is _year(ledger, 2)  # the last year of the cycle it continues
    assert ledger.status(previous, now).received_qty == 29000
    assert ledger.status(current, now).received_qty == 8000
    assert ledger.predecessor(_year(ledger, 1)) is None
    report = await build_report(ledger, HOSPITAL, now)
    row = next(r for r in report["contracts"] if r["batch"] == "2026年接续")
    assert row["renews"] == f"{PROJECT}/第五批"
    assert row["previous_year"] == previous.contract_id
    assert row["previous_year_received_qty"] == "29000"


async def test_the_summary_counts_a_group_once_in_its_second_year(ledger: Ledger):
    await ledger.load_contracts(read_contracts_csv(THREE_YEARS), cst(2025, 1, 1))
    report = await build_report(ledger, HOSPITAL, cst(2026, 4, 1))
    # both years are listed, the product is contracted once
    assert sorted(r["agreement_year"] for r in report["contracts"]) == [1, 2]
    assert report["summary"]["contracted_products"] == 1
    assert report["summary"]["zero_purchase_products"] == 1  # this year's: nothing yet


async def test_a_renewals_products_were_listed_since_the_cycle_it_continues(ledger: Ledger):
    first = _row(30000, batch="第五批", cycle=("2024-01-01", "2025-12-31"))
    renewal = _row(32000, project="浙江省药品集采接续", batch="2026年接续",
                   cycle=("2026-01-01", "2027-12-31"), renews=f"{PROJECT}/第五批")
    await ledger.load_contracts(read_contracts_csv(HEADER + first + renewal), cst(2024, 1, 1))
    await fold(ledger, [event(EventKind.RECEIPT, [(EXEMESTANE_WIN, 29000, "2.1350")],
                              at=cst(2025, 5, 6), hospital=HOSPITAL)])

    def unbought(report: dict) -> bool:
        row = next(r for r in report["contracts"] if r["batch"] == "2026年接续")
        return row["winning_products"][0]["no_platform_purchase_one_year"]

    # five months into the renewal, a year and more after the last platform purchase:
    # the product has been listed since 2024, so R13 applies (R13 counts 365 days)
    assert unbought(await build_report(ledger, HOSPITAL, cst(2026, 5, 6))) is True
    assert unbought(await build_report(ledger, HOSPITAL, cst(2026, 5, 5))) is False
