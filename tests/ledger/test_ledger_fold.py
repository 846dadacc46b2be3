"""The ledger folded from events: completion, progress, shares, online rate, report."""

from __future__ import annotations

import csv
import io
from decimal import Decimal
from pathlib import Path

import openpyxl
import pytest
from ledger_helpers import (
    ABIRATERONE_OTHER,
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
    DemandFlag,
    Ledger,
    build_report,
    demand_flag,
    read_contracts,
    read_contracts_csv,
    read_contracts_xlsx,
    report_csv,
)
from gateway.store.sqlite import SqliteStore


def _exemestane(ledger: Ledger):
    [c] = [c for c in ledger.contracts(HOSPITAL) if c.generic_name == "依西美坦片"]
    return c


def test_import_groups_winning_products_and_reads_xlsx(tmp_path: Path):
    from_csv = read_contracts(DATA / "contracts.csv")
    abi = next(c for c in from_csv if c.generic_name == "醋酸阿比特龙片")
    assert abi.winning_codes == {ABIRATERONE_WIN_A, ABIRATERONE_WIN_B}
    assert abi.generic_key == "XL02BBA292"
    wb = openpyxl.Workbook()
    ws = wb.active
    for row in csv.reader(io.StringIO((DATA / "contracts.csv").read_text(encoding="utf-8"))):
        ws.append(row)
    buf = io.BytesIO()
    wb.save(buf)
    assert read_contracts_xlsx(buf.getvalue()) == from_csv


def test_import_errors_name_row_and_column():
    text = ("hospital_id,project,batch,generic_name,national_code,winning_price,cycle_start,"
            "cycle_end,agreed_volume,agreed_ratio\n"
            "H36070200012,国采,第五批,依西美坦片,XL02BGY096A001010204021,abc,2026-01-01,"
            "2026-12-31,36000,0.7\n"
            "H36070200012,国采,第五批,依西美坦片,ZZ123,2.1,2026-01-01,2026-12-31,36000,0.7\n")
    with pytest.raises(ContractFormatError) as exc:
        read_contracts_csv(text, "results.csv")
    assert "row 2: winning_price: 'abc' is not a number" in str(exc.value)
    assert "row 3: national_code" in str(exc.value)


async def test_completion_and_time_progress(ledger):
    await fold(ledger, [event(EventKind.RECEIPT, [(EXEMESTANE_WIN, 9000, "2.1350")],
                              at=cst(2026, 2, 10))])
    st = ledger.status(_exemestane(ledger), cst(2026, 4, 1))
    assert st.completion == Decimal("0.25")  # 9000 / 36000
    assert st.time_progress == Decimal(91) / Decimal(365)  # Jan 1 .. Apr 1 inclusive
    assert st.lagging is False
    st = ledger.status(_exemestane(ledger), cst(2026, 4, 2))  # 92/365 = 0.2521 > 0.25
    assert st.lagging is True


async def test_same_event_committed_twice_counts_once_and_survives_restart(ledger, tmp_path,
                                                                           store, rules):
    ev = event(EventKind.RECEIPT, [(EXEMESTANE_WIN, 1200, "2.1350")], at=cst(2026, 3, 3))
    await fold(ledger, [ev])
    await fold(ledger, [ev, ev])
    assert ledger.status(_exemestane(ledger), cst(2026, 3, 3)).received_qty == 1200
    await store.close()
    reopened = SqliteStore(tmp_path / "gateway.db")
    await reopened.start()
    try:
        again = Ledger(reopened, ledger.settings, rules)
        await again.load()
        st = again.status(_exemestane(again), cst(2026, 3, 3))
        assert st.received_qty == 1200
        assert st.received_amount == Decimal("2562.0000")
        assert again.stock(HOSPITAL, EXEMESTANE_WIN) == 1200
        assert await fold(again, [ev]) == 0
        assert again.status(_exemestane(again), cst(2026, 3, 3)).received_qty == 1200
    finally:
        await reopened.close()


async def test_shares_non_winning_and_over_purchase(ledger):
    await fold(ledger, [
        event(EventKind.RECEIPT, [(ABIRATERONE_WIN_A, 60000, "4.05"),
                                  (ABIRATERONE_WIN_B, 20000, "4.20"),
                                  (ABIRATERONE_OTHER, 20000, "9.00")], at=cst(2026, 5, 6)),
        event(EventKind.DISPENSE, [(ABIRATERONE_WIN_A, 300, None),
                                   (ABIRATERONE_OTHER, 200, None)], at=cst(2026, 5, 7)),
    ])
    [c] = [c for c in ledger.contracts(HOSPITAL) if c.generic_name == "醋酸阿比特龙片"]
    st = ledger.status(c, cst(2026, 5, 7))
    assert st.qty_share == Decimal("0.8")  # 80000 of 100000
    assert st.amount_share == Decimal("327000") / Decimal("507000")
    assert st.nonwinning_qty == 20000
    assert st.nonwinning_codes == (ABIRATERONE_OTHER,)
    assert st.over_purchased is True  # 80000 > 72000 agreed
    assert st.use_share == Decimal("0.6")  # 300 / 500; agreed ratio 0.60 exactly met


async def test_winning_product_above_winning_price_is_flagged(ledger):
    await fold(ledger, [event(EventKind.RECEIPT, [(EXEMESTANE_WIN, 10, "2.1350"),
                                                  (EXEMESTANE_WIN, 10, "2.1400")],
                              at=cst(2026, 6, 1), event_id="RK-price")])
    flags = await ledger.price_flags(HOSPITAL)
    assert [(f.line, f.price) for f in flags] == [(2, Decimal("2.1400"))]
    report = await build_report(ledger, HOSPITAL, cst(2026, 6, 30))
    assert [(f["seq"], f["price"]) for f in report["price_flags"]] == [(2, "2.1400")]


@pytest.mark.parametrize(("reported", "flag"), [
    ("33600", DemandFlag.OK),  # exactly 80 % of 42000
    ("33558", DemandFlag.BELOW_THRESHOLD),  # 79.9 %
    ("0", DemandFlag.NOT_REPORTED),
    (None, DemandFlag.NOT_REPORTED),
])
def test_reported_demand_against_last_year(reported, flag):
    assert demand_flag(None if reported is None else Decimal(reported), Decimal(42000)) is flag
    assert demand_flag(Decimal(5), None) is DemandFlag.NO_HISTORY


@pytest.mark.parametrize(("online", "offline", "ok"), [
    ("900", "100", True),  # 90 % exactly
    ("899", "101", False),  # 89.9 %
])
async def test_online_purchase_rate_for_drugs(ledger, online, offline, ok):
    await fold(ledger, [
        event(EventKind.RECEIPT, [(EXEMESTANE_WIN, online, "1")], at=cst(2026, 6, 2)),
        event(EventKind.RECEIPT, [(EXEMESTANE_PFIZER, offline, "1")], at=cst(2026, 6, 2),
              online=False)])
    report = await build_report(ledger, HOSPITAL, cst(2026, 6, 30))
    assert report["online_rate"]["drug"]["ok"] is ok
    assert ledger.online_rate(HOSPITAL, "drug") == Decimal(online) / Decimal(1000)


@pytest.mark.parametrize(("online", "ok"), [("800", True), ("799", False)])
async def test_online_purchase_rate_for_high_value_consumables(ledger, online, ok):
    stent = "C0201010010101000123"  # 20-character consumable code format
    await fold(ledger, [
        event(EventKind.RECEIPT, [(stent, online, "1")], at=cst(2026, 6, 2)),
        event(EventKind.RECEIPT, [(stent, str(1000 - int(online)), "1")], at=cst(2026, 6, 3),
              online=False)])
    report = await build_report(ledger, HOSPITAL, cst(2026, 6, 30))
    assert report["online_rate"]["consumable"]["ok"] is ok


async def test_monthly_report_json_and_csv(ledger):
    await fold(ledger, [
        event(EventKind.RECEIPT, [(EXEMESTANE_WIN, 3000, "2.1350")], at=cst(2026, 1, 20)),
        event(EventKind.RECEIPT, [(EXEMESTANE_WIN, 2000, "2.1350"),
                                  (EXEMESTANE_PFIZER, 500, "9.80")], at=cst(2026, 2, 10)),
    ])
    feb = await build_report(ledger, HOSPITAL, cst(2026, 7, 1), month="2026-02")
    item = next(i for i in feb["contracts"] if i["generic_name"] == "依西美坦片")
    assert item["period_received_qty"] == "2000"
    assert item["received_qty"] == "5000"  # cumulative to the end of February
    assert item["time_progress"] == "0.1616"  # 59 / 365
    assert item["completion"] == "0.1389"  # 5000 / 36000
    assert item["lagging"] is True
    assert item["qty_share"] == "0.8000"
    assert item["nonwinning_codes"] == [EXEMESTANE_PFIZER]
    assert item["demand_flag"] == "ok"  # 40000 reported vs 42000 last year = 95 %
    assert item["prepayment_min"] == "23058.00"  # 30 % × 36000 × 2.1350
    abi = next(i for i in feb["contracts"] if i["generic_name"] == "醋酸阿比特龙片")
    assert abi["demand_flag"] == "ok"  # 90000 / 110000 = 81.8 %
    assert all(i["generic_name"] != "他达拉非片" for i in feb["contracts"])  # cycle from March
    to_date = await build_report(ledger, HOSPITAL, cst(2026, 7, 1))
    tad = next(i for i in to_date["contracts"] if i["generic_name"] == "他达拉非片")
    assert tad["demand_flag"] == "below_threshold"  # 9000 / 12000 = 75 %
    assert tad["zero_purchase"] is True
    assert to_date["summary"]["zero_purchase_products"] == 2  # 他达拉非, 阿比特龙
    rows = list(csv.DictReader(io.StringIO(report_csv(feb).lstrip("\ufeff"))))
    assert {r["generic_name"] for r in rows} >= {"依西美坦片", "醋酸阿比特龙片"}
    assert next(r for r in rows if r["generic_name"] == "依西美坦片")["lagging"] == "True"
