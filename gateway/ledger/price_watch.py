"""Purchase prices the ledger watches: R10 bands, R11 winning prices, R12 payment standard.

- R10 [JS 二(六)]: the platform compares the negotiated price of one drug across public
  hospitals and marks each hospital's blue, yellow or red. Across the hospitals of one
  deployment, a hospital's price is its latest purchase price (amount ÷ quantity of its
  last day of receipts, per national minimum unit); the reference is the median (or the
  lowest) of the hospitals' prices, and the bands are multiples of it
  (``ledger.thresholds``). Winning products are not negotiated (R11) and not banded.
- R11 [JS 二(五)]: a winning product is bought at its winning (listed) price: above it is
  a breach, below it a renegotiation, which the documents forbid for winning products.
- R12 [JS 五(十一)]: the payment standard of a non-winning drug bought, from its price
  before the procurement (its last purchase price in the calendar year before the cycle
  began) and the winning price, converging over the cycle's years.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from canonical.model import EventKind
from gateway.ledger.contracts import Contract, WinningProduct, agreement_years, is_drug_code
from gateway.ledger.prices import (
    PriceBands,
    classify_negotiated_price,
    payment_standard,
    reference_price,
)
from gateway.store.ledger_records import DailyRow

__all__ = [
    "PRICE_FACTS",
    "BandedPrice",
    "PurchasePrices",
    "band_rows",
    "banded_price",
    "last_prices",
    "payment_standards",
    "price_facts",
    "winning_price_check",
]

ZERO = Decimal(0)
PLACES = Decimal("0.0001")

# the facts price_facts gives every prescription line (see gateway/rules/model.py FACTS)
PRICE_FACTS = ("purchase_price", "reference_price", "price_ratio", "price_band",
               "price_hospitals", "product_winning_price", "above_winning_price",
               "below_winning_price")


class PurchasePrices:
    """The latest purchase price of each product in each hospital (mutable, owned by the
    ledger's view and folded like its counters)."""

    def __init__(self) -> None:
        # national code → hospital → (day, quantity, amount) of its last day of receipts
        self._last: dict[str, dict[str, tuple[date, Decimal, Decimal]]] = {}

    def add(self, hospital: str, code: str, day: date, qty: Decimal, amount: Decimal) -> None:
        """Fold one day's receipts (a total or a delta of it) in."""
        by_hospital = self._last.setdefault(code, {})
        seen = by_hospital.get(hospital)
        if seen is None or day > seen[0]:
            by_hospital[hospital] = (day, qty, amount)
        elif day == seen[0]:
            by_hospital[hospital] = (day, seen[1] + qty, seen[2] + amount)

    def price(self, hospital: str, code: str) -> tuple[date, Decimal] | None:
        """(day, unit price) of the hospital's latest purchase of the product."""
        seen = self._last.get(code, {}).get(hospital)
        if seen is None or seen[1] <= 0:
            return None
        return seen[0], seen[2] / seen[1]

    def codes(self, hospital: str) -> list[str]:
        """The products the hospital has bought, by national code."""
        return sorted(code for code, by_hospital in self._last.items()
                      if hospital in by_hospital)

    def prices(self, code: str) -> dict[str, Decimal]:
        """Every hospital's latest unit price of the product."""
        out = {}
        for hospital in self._last.get(code, {}):
            found = self.price(hospital, code)
            if found is not None:
                out[hospital] = found[1]
        return out


@dataclass(frozen=True, slots=True)
class BandedPrice:
    """A hospital's negotiated price against the deployment's reference (R10)."""

    price: Decimal
    reference: Decimal
    hospitals: int  # how many hospitals' prices the reference is taken from
    band: str

    @property
    def ratio(self) -> Decimal:
        """price ÷ reference."""
        return self.price / self.reference


def banded_price(prices: PurchasePrices, hospital: str, code: str, bands: PriceBands,
                 method: str) -> BandedPrice | None:
    """The hospital's latest price of a drug, banded (None: not a drug, or not bought)."""
    if not is_drug_code(code):
        return None
    every = prices.prices(code)
    own = every.get(hospital)
    if own is None:
        return None
    reference = reference_price(list(every.values()), method)
    if reference <= 0:
        return None
    return BandedPrice(own, reference, len(every),
                       classify_negotiated_price(own, reference, bands).value)


def price_facts(prices: PurchasePrices, hospital: str, code: str,
                product: WinningProduct | None, bands: PriceBands, method: str
                ) -> dict[str, Any]:
    """The price facts of one prescription line (:data:`PRICE_FACTS`); ``product`` is
    the prescribed product when it is a winning one."""
    found = prices.price(hospital, code)
    paid = None if found is None else found[1]
    banded = None if product is not None else banded_price(prices, hospital, code, bands,
                                                            method)
    winning = None if product is None else product.winning_price
    return {
        "purchase_price": None if paid is None else paid.quantize(PLACES),
        "reference_price": None if banded is None else banded.reference.quantize(PLACES),
        "price_ratio": None if banded is None else banded.ratio,
        "price_band": None if banded is None else banded.band,
        "price_hospitals": 0 if banded is None else banded.hospitals,
        "product_winning_price": winning,
        "above_winning_price": paid is not None and winning is not None and paid > winning,
        "below_winning_price": paid is not None and winning is not None and paid < winning,
    }


def _money(value: Decimal | None) -> str | None:
    return None if value is None else str(value.quantize(PLACES))


def band_rows(prices: PurchasePrices, hospital: str, winning: Iterable[str],
              bands: PriceBands, method: str) -> list[dict[str, Any]]:
    """R10 for the report: each drug the hospital bought, but its winning products, with
    its latest price banded against the deployment's hospitals."""
    skip = set(winning)
    out = []
    for code in prices.codes(hospital):
        if code in skip:
            continue
        banded = banded_price(prices, hospital, code, bands, method)
        found = prices.price(hospital, code)
        if banded is None or found is None:
            continue
        out.append({"national_code": code, "last_purchase_day": found[0].isoformat(),
                    "purchase_price": _money(banded.price),
                    "reference_price": _money(banded.reference),
                    "ratio": _money(banded.ratio), "hospitals": banded.hospitals,
                    "band": banded.band})
    return out


def winning_price_check(prices: PurchasePrices, hospital: str, product: WinningProduct
                        ) -> dict[str, Any]:
    """R11 for the report: the hospital's latest price of a winning product against its
    winning price."""
    found = prices.price(hospital, product.national_code)
    paid = None if found is None else found[1]
    return {"purchase_price": _money(paid),
            "above_winning_price": paid is not None and paid > product.winning_price,
            "below_winning_price": paid is not None and paid < product.winning_price}


def last_prices(rows: Iterable[DailyRow], year: int) -> dict[str, Decimal]:
    """Each product's unit price on its last day of receipts in ``year``."""
    days: dict[str, tuple[date, Decimal, Decimal]] = {}
    for r in rows:
        if r.kind != EventKind.RECEIPT.value or r.day.year != year:
            continue
        seen = days.get(r.national_code)
        if seen is None or r.day > seen[0]:
            days[r.national_code] = (r.day, r.qty, r.amount)
        elif r.day == seen[0]:
            days[r.national_code] = (r.day, seen[1] + r.qty, seen[2] + r.amount)
    return {code: amount / qty for code, (_, qty, amount) in days.items() if qty > 0}


def payment_standards(contract: Contract, codes: Iterable[str],
                      last_year: Mapping[str, Decimal], as_of: date) -> list[dict[str, Any]]:
    """R12 for each non-winning product bought under ``contract``: its payment standard
    in the cycle's year ``as_of`` falls in, from its price in the calendar year before the
    cycle began (``last_year``; None without one to start from)."""
    winning = min(p.winning_price for p in contract.products)
    years = agreement_years(contract.cycle_start, contract.cycle_end)
    year = max(sum(1 for start, _ in years if start <= as_of) - 1, 0)
    out = []
    for code in sorted(codes):
        before = last_year.get(code)
        standard = (None if before is None or before <= 0 or winning <= 0
                    else payment_standard(before, winning, year=year))
        out.append({"national_code": code,
                    "last_year_price": None if before is None else str(before.quantize(PLACES)),
                    "winning_price": str(winning), "cycle_year": year,
                    "payment_standard": None if standard is None else str(standard)})
    return out
