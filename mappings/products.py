"""Product facts from the national catalog for lines whose message leaves them out.

Whether a product is prescription-only (处方药, the platform's ``rx_flag``) and who makes
it are properties of the product, listed in the national catalog under its code. A
mapped line whose message did not say takes them from there; what the message says
is never overridden. A manufacturer cell that PDF extraction cut or glued
(:func:`~mappings.normalize.is_clean_manufacturer`) is not used: a wrong maker sent to
the platform is worse than a held event.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from codes.catalog import CatalogEntry
from mappings.normalize import is_clean_manufacturer

__all__ = ["ProductFacts", "product_facts"]

# national code → (prescription-only or None when the catalog does not say, manufacturer)
ProductFacts = Mapping[str, tuple[bool | None, str]]


def product_facts(entries: Iterable[CatalogEntry]) -> dict[str, tuple[bool | None, str]]:
    """The facts the catalog ``entries`` give, for the codes that give any."""
    out: dict[str, tuple[bool | None, str]] = {}
    clean: dict[str, bool] = {}  # makers repeat across a catalog: each is judged once
    for e in entries:
        rx = None if not e.rx_flag else e.rx_flag == "1"
        maker = e.manufacturer
        if maker:
            ok = clean.get(maker)
            if ok is None:
                ok = clean[maker] = is_clean_manufacturer(maker)
            if not ok:
                maker = ""
        if rx is not None or maker:
            out[e.code] = (rx, maker)
    return out
