"""Per winning product terms of a results row: its reference price, its part of the agreed
volume and the fund's prepayment received for it.

``reference_price`` (参比价, 集采前价格): the price the hospital paid before 集采; savings
(结余) = (reference price − winning price) × quantity of the product received.

``product_agreed_volume`` (产品约定采购量): the product's part of the contract's agreed
volume, when the agreement splits it among the winners. Products without one share what
the others leave of the agreed volume equally (``products.product_volumes``): the fund's
minimum prepayment (R15: ≥ 30 % of the annual agreed amount) is then reckoned per
product at its own price.

``prepayment_received`` (已拨付预付款): what the fund has prepaid for the product in the
agreement year, recorded by importing the results again with the figure filled in.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, NamedTuple

__all__ = ["PRODUCT_ALIASES", "ProductTerms", "check_product_volumes", "prepayment_due",
           "product_terms"]

PRODUCT_ALIASES: dict[str, tuple[str, ...]] = {
    "reference_price": ("reference_price", "参比价", "参比价格", "集采前价格"),
    "product_agreed_volume": ("product_agreed_volume", "产品约定采购量",
                              "中选产品约定采购量"),
    "prepayment_received": ("prepayment_received", "已拨付预付款", "预付款到账金额",
                            "已收预付款"),
}

CENT = Decimal("0.01")

# the contracts module's number reader: (value, column, where, problems) → number or None
NumberReader = Callable[[Any, str, str, list[str]], Decimal | None]


class ProductTerms(NamedTuple):
    """The optional per-product columns of one row, in :class:`WinningProduct`'s order."""

    reference_price: Decimal | None
    agreed_volume: Decimal | None
    prepayment_received: Decimal | None


def product_terms(row: Mapping[str, Any], where: str, problems: list[str],
                  number: NumberReader) -> ProductTerms | None:
    """The per-product columns of a canonical row, or None after noting a problem."""
    before = len(problems)
    values: list[Decimal | None] = []
    for col in ("reference_price", "product_agreed_volume", "prepayment_received"):
        raw = row.get(col)
        if isinstance(raw, str) and raw.strip().endswith("%"):
            # the reader takes "70%" as 0.7, which only a ratio may be
            problems.append(f"{where}: {col}: {raw!r} is a percentage, not an amount")
            values.append(None)
            continue
        values.append(number(raw, col, where, problems))
    if len(problems) > before:
        return None
    return ProductTerms(*values)


def check_product_volumes(groups: Iterable[tuple[Decimal, Iterable[Decimal | None], int]],
                          problems: list[str]) -> None:
    """Products' own agreed volumes (None: not given) must not add up to more than their
    contract's agreed volume; ``groups`` holds (agreed volume, products' volumes, first
    row) per contract."""
    for agreed, volumes, row in groups:
        given = sum((v for v in volumes if v is not None), Decimal(0))
        if given > agreed:
            problems.append(f"row {row}: product_agreed_volume of the winning products adds "
                            f"up to {given}, more than the agreed volume {agreed}")


def prepayment_due(volume: Decimal, price: Decimal, prepayment_ratio: Decimal) -> Decimal:
    """The fund's minimum prepayment for a product's agreed volume at its price (R15), to
    the cent."""
    return (prepayment_ratio * volume * price).quantize(CENT, ROUND_HALF_UP)
