"""Price checks: negotiated-price colour bands, winning-price breaches, payment standard.

- R10 [JS 二(六)]: negotiated prices of one drug across hospitals are marked blue
  (reference), yellow (a reminder is pushed to the hospital) or red (monitored, regulators
  told). The bands are configurable multiples of a reference price (by default the median
  of the hospitals' negotiated prices); a price above the listed ceiling is an inversion.
- R11 [JS 二(五)]: winning products are bought at the winning price; paying more is flagged.
- R12 [JS 五(十一)]: the medical-insurance payment standard of a non-winning drug.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum
from statistics import median

__all__ = [
    "PriceBand",
    "PriceBands",
    "above_winning_price",
    "classify_negotiated_price",
    "payment_standard",
    "reference_price",
]

CENT = Decimal("0.01")


class PriceBand(StrEnum):
    """红黄蓝 marking of a negotiated price."""

    BLUE = "blue"  # reference: buying here is encouraged
    YELLOW = "yellow"  # reminder pushed to the hospital
    RED = "red"  # monitored; regulators are told


@dataclass(frozen=True, slots=True)
class PriceBands:
    """Band limits as multiples of the reference price (upper bounds inclusive)."""

    blue_max: Decimal = Decimal("1.00")
    yellow_max: Decimal = Decimal("1.20")

    def __post_init__(self) -> None:
        if not Decimal(0) < self.blue_max <= self.yellow_max:
            raise ValueError("bands need 0 < blue_max <= yellow_max")


def reference_price(prices: Sequence[Decimal], method: str = "median") -> Decimal:
    """The reference of a set of hospitals' negotiated prices: ``median`` or ``min``.

    Raises:
        ValueError: no prices, or an unknown method.
    """
    if not prices:
        raise ValueError("no negotiated prices to take a reference from")
    if method == "median":
        return Decimal(median(prices))
    if method == "min":
        return min(prices)
    raise ValueError(f"unknown reference method {method!r} (median or min)")


def classify_negotiated_price(price: Decimal, reference: Decimal,
                              bands: PriceBands = PriceBands()) -> PriceBand:
    """Mark a negotiated price blue, yellow or red against the reference."""
    if reference <= 0:
        raise ValueError("reference price must be positive")
    r = price / reference
    if r <= bands.blue_max:
        return PriceBand.BLUE
    if r <= bands.yellow_max:
        return PriceBand.YELLOW
    return PriceBand.RED


def above_winning_price(paid: Decimal, winning_price: Decimal,
                        tolerance: Decimal = Decimal(0)) -> bool:
    """Whether a winning product was bought above its winning price.

    Unit prices carry four decimals (a tablet at 2.1350 yuan), so the comparison is exact
    unless a ``tolerance`` is configured.
    """
    return paid > winning_price + tolerance


def payment_standard(last_year_price: Decimal, winning_price: Decimal, *, year: int = 0,
                     cut: Decimal = Decimal("0.30"), converge_years: int = 2) -> Decimal:
    """Payment standard of a non-winning drug under R12.

    Args:
        last_year_price: the drug's price at the end of last year.
        winning_price: the winning price of the same generic name.
        year: 0 for the current year, 1 and 2 for the following years.
        cut: the minimum cut for a drug above twice the winning price (30 %).
        converge_years: years over which that drug's standard reaches the winning price.

    Returns:
        Above 2 × winning: last year's price cut by ``cut`` now, then straight-line down
        to the winning price by ``converge_years``; between 1 × and 2 × (2 × included):
        the winning price; below: the actual price. Rounded to the cent.

    Raises:
        ValueError: a non-positive price or a negative year.
    """
    if last_year_price <= 0 or winning_price <= 0 or year < 0:
        raise ValueError("prices must be positive and year >= 0")
    if last_year_price < winning_price:
        result = last_year_price
    elif last_year_price <= 2 * winning_price:
        result = winning_price
    else:
        first = last_year_price * (1 - cut)
        if year >= converge_years:
            result = winning_price
        else:
            result = first - (first - winning_price) * Decimal(year) / Decimal(converge_years)
    return result.quantize(CENT, ROUND_HALF_UP)
