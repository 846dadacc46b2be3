"""Per winning product figures of a contract: quantities received, savings (结余) and the
fund's prepayment (R15), from the stored daily totals.

Savings = (reference price − winning price) × quantity of the product received (receipts
less returns); none for a product whose results give no reference price. The minimum
prepayment of a product = prepayment ratio × its part of the agreed volume
(:func:`product_volumes`) × its own winning price; the
shortfall is what of it has not been received (zero once met), none while nothing is
recorded as received.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from canonical.model import EventKind
from gateway.ledger.contracts import Contract
from gateway.ledger.product_terms import CENT, prepayment_due
from gateway.store.ledger_records import DailyRow

__all__ = ["PURCHASE_SIGN", "ProductFigures", "ReceiptIndex", "product_fields", "product_figures",
           "product_volumes"]

ZERO = Decimal(0)
# receipts count in, returns to the supplier out
PURCHASE_SIGN = {EventKind.RECEIPT.value: 1, EventKind.RETURN.value: -1}


def product_volumes(contract: Contract) -> dict[str, Decimal]:
    """Each winning product's part of the agreed volume: its own when the results give one;
    what the products with one leave, in equal parts, to the others."""
    given = {p.national_code: p.agreed_volume for p in contract.products
             if p.agreed_volume is not None}
    rest = [p.national_code for p in contract.products if p.agreed_volume is None]
    left = max(contract.agreed_volume - sum(given.values(), Decimal(0)), Decimal(0))
    share = left / len(rest) if rest else Decimal(0)
    return {p.national_code: given.get(p.national_code, share) for p in contract.products}


class ReceiptIndex:
    """Receipts less returns per (hospital, national code) and day, to sum over spans."""

    def __init__(self, rows: Iterable[DailyRow]) -> None:
        self._by: dict[tuple[str, str], list[tuple[date, Decimal, Decimal]]] = {}
        for r in rows:
            sign = PURCHASE_SIGN.get(r.kind)
            if sign is not None:
                self._by.setdefault((r.hospital_id, r.national_code), []).append(
                    (r.day, sign * r.qty, sign * r.amount))

    def total(self, hospital: str, code: str, since: date, until: date
              ) -> tuple[Decimal, Decimal]:
        """(quantity, amount) received from ``since`` to ``until``, both included."""
        qty = amount = ZERO
        for day, q, a in self._by.get((hospital, code), ()):
            if since <= day <= until:
                qty += q
                amount += a
        return qty, amount


@dataclass(frozen=True, slots=True)
class ProductFigures:
    """One winning product of a contract, to date and in the period asked for."""

    national_code: str
    reference_price: Decimal | None
    agreed_volume: Decimal  # its part of the contract's
    received_qty: Decimal  # the agreement year to date
    received_amount: Decimal
    period_qty: Decimal
    period_amount: Decimal
    savings: Decimal | None  # the agreement year to date
    period_savings: Decimal | None
    prepayment_min: Decimal
    prepayment_received: Decimal | None
    prepayment_shortfall: Decimal | None


def product_figures(contract: Contract, receipts: ReceiptIndex, since: date | None,
                    until: date, prepayment_ratio: Decimal) -> list[ProductFigures]:
    """The figures of each winning product of ``contract`` up to ``until``; the period's
    from ``since`` (the agreement year's start when None)."""
    volumes = product_volumes(contract)
    start = contract.period_start
    end = min(until, contract.period_end)
    period_start = max(start, since) if since is not None else start
    out = []
    for p in contract.products:
        qty, amount = receipts.total(contract.hospital_id, p.national_code, start, end)
        pqty, pamount = receipts.total(contract.hospital_id, p.national_code, period_start, end)
        saving = None if p.reference_price is None else p.reference_price - p.winning_price
        due = prepayment_due(volumes[p.national_code], p.winning_price, prepayment_ratio)
        got = p.prepayment_received
        out.append(ProductFigures(
            p.national_code, p.reference_price, volumes[p.national_code], qty, amount, pqty,
            pamount,
            None if saving is None else (saving * qty).quantize(CENT, ROUND_HALF_UP),
            None if saving is None else (saving * pqty).quantize(CENT, ROUND_HALF_UP),
            due, got, None if got is None else max(due - got, ZERO)))
    return out


def _sum(values: Iterable[Decimal | None]) -> Decimal | None:
    known = [v for v in values if v is not None]
    return sum(known, ZERO) if known else None


def _s(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def product_fields(item: dict[str, Any], figures: list[ProductFigures]) -> None:
    """Write ``figures`` into a report item: each product's into its entry of
    ``winning_products``, their totals into the item (savings and prepayment)."""
    by_code = {f.national_code: f for f in figures}
    for entry in item["winning_products"]:
        f = by_code[entry["national_code"]]
        entry.update({
            "reference_price": _s(f.reference_price), "agreed_volume": _s(f.agreed_volume),
            "received_qty": _s(f.received_qty),
            "received_amount": _s(f.received_amount), "period_received_qty": _s(f.period_qty),
            "period_received_amount": _s(f.period_amount), "savings": _s(f.savings),
            "period_savings": _s(f.period_savings), "prepayment_min": _s(f.prepayment_min),
            "prepayment_received": _s(f.prepayment_received),
            "prepayment_shortfall": _s(f.prepayment_shortfall)})
    item.update({
        "savings": _s(_sum(f.savings for f in figures)),
        "period_savings": _s(_sum(f.period_savings for f in figures)),
        "prepayment_min": _s(sum((f.prepayment_min for f in figures), ZERO)),
        "prepayment_received": _s(_sum(f.prepayment_received for f in figures)),
        "prepayment_shortfall": _s(_sum(f.prepayment_shortfall for f in figures)),
    })
