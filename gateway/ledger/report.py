"""The per-hospital report (一院一档): monthly or to date, as JSON and CSV [GZ 三].

Per project / batch / generic name: agreed volume and its completion, time progress,
winning share by quantity and amount, non-winning purchases, over-purchase, use share
against the agreed ratio, savings against the reference price and the fund's minimum
prepayment (R15) per winning product (``products.py``), reported demand against last year
(R9); per hospital: online purchase rates (R5), deadlines (R6–R8) and
purchases of winning products above the winning price.
"""

from __future__ import annotations

import csv
import functools
import io
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from canonical.model import EventKind
from gateway.ledger.calendar import local_date
from gateway.ledger.contracts import Contract, is_drug_code
from gateway.ledger.ledger import Ledger
from gateway.ledger.listing import last_platform_purchases, unpurchased_for_a_year
from gateway.ledger.metrics import Counters, contract_status, demand_flag, online_rate_ok, ratio
from gateway.ledger.price_watch import (
    band_rows,
    last_prices,
    payment_standards,
    winning_price_check,
)
from gateway.ledger.products import ReceiptIndex, product_fields, product_figures
from gateway.store.ledger_records import DailyRow

__all__ = ["CSV_COLUMNS", "build_report", "month_bounds", "report_csv"]


def _listed_since(ledger: Ledger, contract: Contract) -> date:
    """When the group was first contracted: the cycle start of the first agreement it
    continues (a renewal's products were listed before it began, R13)."""
    first, seen = contract, {contract.contract_id}
    while (prev := ledger.predecessor(first)) is not None and prev.contract_id not in seen:
        first = prev
        seen.add(prev.contract_id)
    return min(contract.cycle_start, first.cycle_start)


def month_bounds(month: str) -> tuple[date, date]:
    """First and last day of ``YYYY-MM``.

    Raises:
        ValueError: not a month.
    """
    first = date.fromisoformat(month + "-01")
    if first.year >= date.max.year:  # its month's end is past the last representable day
        raise ValueError(f"{month} is beyond the calendar")
    last = (first + timedelta(days=32)).replace(day=1) - timedelta(days=1)
    return first, last


def _r(value: Decimal | None, places: str = "0.0001") -> str | None:
    return None if value is None else str(value.quantize(Decimal(places), ROUND_HALF_UP))


def _online(ledger: Ledger, rows: list[DailyRow]) -> dict[str, Any]:
    tot: dict[str, list[Decimal]] = {"drug": [Decimal(0)] * 2, "consumable": [Decimal(0)] * 2}
    for r in rows:
        if r.kind not in (EventKind.RECEIPT.value, EventKind.RETURN.value):
            continue
        if is_drug_code(r.national_code):
            cat = "drug"
        elif r.national_code.startswith(ledger.settings.high_value_prefixes):
            cat = "consumable"
        else:
            continue
        sign = 1 if r.kind == EventKind.RECEIPT.value else -1
        tot[cat][1] += sign * r.amount
        if r.online:
            tot[cat][0] += sign * r.amount
    thresholds = {"drug": ledger.settings.online_rate_drug,
                  "consumable": ledger.settings.online_rate_consumable}
    out = {}
    for cat, (online, total) in tot.items():
        rate = ratio(online, total)
        out[cat] = {"online_amount": str(online), "total_amount": str(total),
                    "rate": _r(rate), "threshold": str(thresholds[cat]),
                    "ok": online_rate_ok(rate, thresholds[cat])}
    return out


async def build_report(ledger: Ledger, hospital_id: str, now: datetime,
                       month: str | None = None) -> dict[str, Any]:
    """The report of one hospital: to date (``month=None``) or for ``YYYY-MM``.

    Completion and time progress are read at the period's end (today for to-date);
    purchase figures (received, shares, non-winning) cover the period.

    Raises:
        ValueError: a malformed month.
    """
    today = local_date(now)
    if month is None:
        since, until = None, today
    else:
        since, until = month_bounds(month)
        until = min(until, today)
    # one row per agreement year that has begun (and overlaps the month asked for)
    contracts = [c for c in ledger.contracts(hospital_id)
                 if c.period_start <= until and (since is None or c.period_end >= since)]
    to_date = await ledger.daily_rows(hospital_id, None, until)
    # the agreement year before each (R9 compares demand with last year's purchases)
    previous = {c.contract_id: p for c in contracts if (p := ledger.predecessor(c)) is not None}
    counted = {c.contract_id: c for c in [*contracts, *previous.values()]}
    cumulative = ledger.fold_rows(to_date, counted.values())
    rows = to_date if since is None else [r for r in to_date if r.day >= since]
    period = cumulative if since is None else ledger.fold_rows(rows, contracts)
    last_bought = last_platform_purchases(to_date)  # R13
    before_cycle = functools.cache(lambda year: last_prices(to_date, year))  # R12
    receipts = ReceiptIndex(to_date)
    items = []
    summary = {"contracted_products": 0, "zero_purchase_products": 0,
               "below_time_progress": 0, "over_purchased": 0, "nonwinning_bought": 0,
               "at_risk": 0, "no_platform_purchase_one_year": 0}
    # the summary counts each product group once, by its latest agreement year begun (a
    # to-date report also lists the years before it)
    latest: dict[tuple[str, str, str, str], Contract] = {}
    for c in contracts:
        key = (c.project, c.batch, c.generic_key, c.form_key)
        if key not in latest or c.period_start > latest[key].period_start:
            latest[key] = c
    summarised = {c.contract_id for c in latest.values()}
    for c in sorted(contracts, key=lambda c: (c.project, c.batch, c.generic_key, c.form_key,
                                              c.period_start)):
        listed = _listed_since(ledger, c)
        st = contract_status(c, cumulative.get(c.contract_id, Counters()), until)
        pst = contract_status(c, period.get(c.contract_id, Counters()), until)
        flag = demand_flag(c.reported_demand, c.last_year_purchases,
                           ledger.settings.demand_threshold)
        use_ok = None if st.use_share is None else st.use_share >= c.agreed_ratio
        item = {
            "contract_id": c.contract_id, "project": c.project, "batch": c.batch,
            "generic_name": c.generic_name, "generic_key": c.generic_key,
            "dosage_form": c.dosage_form, "category": c.category,
            "winning_products": [{"national_code": p.national_code, "name": p.product_name,
                                  "winning_price": str(p.winning_price),
                                  "supplier": p.supplier,
                                  "last_platform_purchase": _iso(last_bought.get(
                                      p.national_code)),
                                  "no_platform_purchase_one_year": unpurchased_for_a_year(
                                      listed, last_bought.get(p.national_code), until),
                                  "stock": None if (s := ledger.stock(hospital_id,
                                                                      p.national_code)) is None
                                  else str(s),
                                  **winning_price_check(ledger.prices, hospital_id, p)}
                                 for p in c.products],
            "cycle_start": c.cycle_start.isoformat(), "cycle_end": c.cycle_end.isoformat(),
            "agreement_year": c.year_no, "year_start": c.period_start.isoformat(),
            "year_end": c.period_end.isoformat(), "renews": c.renews or None,
            "previous_year": None if (prev := previous.get(c.contract_id)) is None
            else prev.contract_id,
            "previous_year_received_qty": None if prev is None else str(
                cumulative.get(prev.contract_id, Counters()).received_qty),
            "agreed_volume": str(c.agreed_volume), "agreed_ratio": str(c.agreed_ratio),
            "received_qty": str(st.received_qty), "received_amount": str(st.received_amount),
            "completion": _r(st.completion), "time_progress": _r(st.time_progress),
            "lagging": st.lagging, "projected_completion": _r(st.projected_completion),
            "at_risk": st.at_risk, "over_purchased": st.over_purchased,
            "zero_purchase": st.zero_purchase,
            "period_received_qty": str(pst.received_qty),
            "period_received_amount": str(pst.received_amount),
            "qty_share": _r(pst.qty_share), "amount_share": _r(pst.amount_share),
            "nonwinning_qty": str(pst.nonwinning_qty),
            "nonwinning_amount": str(pst.nonwinning_amount),
            "nonwinning_codes": list(pst.nonwinning_codes),
            "use_share": _r(st.use_share), "use_share_meets_ratio": use_ok,
            "reported_demand": None if c.reported_demand is None else str(c.reported_demand),
            "last_year_purchases": None if c.last_year_purchases is None
            else str(c.last_year_purchases),
            "demand_flag": flag.value,
            "nonwinning_payment_standards": payment_standards(
                c, pst.nonwinning_codes, before_cycle(c.cycle_start.year - 1), until),
        }
        product_fields(item, product_figures(c, receipts, since, until,
                                             ledger.settings.prepayment_ratio))
        items.append(item)
        if c.contract_id not in summarised:
            continue
        summary["contracted_products"] += len(c.products)
        summary["zero_purchase_products"] += int(st.zero_purchase)
        summary["below_time_progress"] += int(st.lagging)
        summary["over_purchased"] += int(st.over_purchased)
        summary["nonwinning_bought"] += int(pst.nonwinning_qty > 0)
        summary["at_risk"] += int(st.at_risk)
        summary["no_platform_purchase_one_year"] += sum(
            unpurchased_for_a_year(listed, last_bought.get(p.national_code), until)
            for p in c.products)
    bands = band_rows(ledger.prices, hospital_id,
                      {p.national_code for c in contracts for p in c.products},
                      ledger.settings.price_bands, ledger.settings.price_reference)
    for band in ("yellow", "red"):
        summary[f"price_{band}"] = sum(b["band"] == band for b in bands)
    deadlines = [d.to_json() for d in await ledger.deadlines(hospital_id, now)
                 if since is None or local_date(d.opened_at) <= until]
    flags = [{"event_id": f.event_id, "seq": f.line, "national_code": f.national_code,
              "day": f.day.isoformat(), "price": str(f.price),
              "winning_price": str(f.winning_price)}
             for f in await ledger.price_flags(hospital_id)
             if (since is None or f.day >= since) and f.day <= until]
    trace = [{"trace_code": f.code, "national_code": f.national_code,
              "first_sale_event": f.first_event, "first_sale_day": f.first_day.isoformat(),
              "event_id": f.event_id, "day": f.day.isoformat()}
             for f in await ledger.trace_flags(hospital_id)
             if (since is None or f.day >= since) and f.day <= until]
    untraced = [{"event_id": u.event_id, "line": u.line, "national_code": u.national_code,
                 "day": u.day.isoformat()}
                for u in await ledger.untraced_sales(hospital_id)
                if (since is None or u.day >= since) and u.day <= until]
    summary["untraced_sales"] = len(untraced)
    return {
        "hospital_id": hospital_id, "as_of": now.isoformat(),
        "period": {"month": month, "from": since.isoformat() if since else None,
                   "to": until.isoformat()},
        "summary": summary, "contracts": items, "online_rate": _online(ledger, rows),
        "deadlines": deadlines, "price_flags": flags, "trace_flags": trace,
        "untraced_sales": untraced, "price_bands": bands,
    }


def _iso(day: date | None) -> str | None:
    return None if day is None else day.isoformat()


CSV_COLUMNS = ("contract_id", "project", "batch", "generic_name", "dosage_form",
               "agreement_year", "year_start", "year_end", "agreed_volume",
               "received_qty", "received_amount", "completion", "time_progress", "lagging",
               "projected_completion", "at_risk", "over_purchased", "zero_purchase",
               "period_received_qty", "period_received_amount", "qty_share", "amount_share",
               "nonwinning_qty", "nonwinning_amount", "use_share", "agreed_ratio",
               "use_share_meets_ratio", "prepayment_min", "reported_demand",
               "last_year_purchases", "demand_flag", "savings", "period_savings",
               "prepayment_received", "prepayment_shortfall")


def report_csv(report: dict[str, Any]) -> str:
    """The report's contract rows as CSV (UTF-8 with BOM so Excel shows the Chinese)."""
    buf = io.StringIO()
    buf.write("\ufeff")
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow(("hospital_id", "period_from", "period_to", *CSV_COLUMNS))
    p = report["period"]
    for item in report["contracts"]:
        w.writerow((report["hospital_id"], p["from"] or "", p["to"],
                    *("" if item[c] is None else item[c] for c in CSV_COLUMNS)))
    return buf.getvalue()
