"""Finding codes in a national catalog the way a pharmacist looks for them: by national
code (or its start), 本位码, approval number (批准文号), name, generic or brand name, or
maker — several words must all be found; the best kinds of match first."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from codes.catalog import CatalogEntry

__all__ = ["CatalogHit", "search_catalog"]

# what the query matched, best first
_EXACT_CODE, _STANDARD_OR_APPROVAL, _CODE_PREFIX, _NAME_START, _WORDS = range(5)
_WHY = ("国家编码一致", "本位码或批准文号一致", "国家编码开头一致", "名称开头一致",
        "名称/厂家/规格包含")
_SPACE = re.compile(r"\s+")


@dataclass(frozen=True, slots=True)
class CatalogHit:
    """A catalog entry found, and why (in Chinese, for the console)."""

    entry: CatalogEntry
    rank: int
    reason: str


def _fold(text: str) -> str:
    return _SPACE.sub("", text).upper()


def _rank(entry: CatalogEntry, query: str, words: list[str]) -> int | None:
    code = entry.code.upper()
    if code == query:
        return _EXACT_CODE
    if query and query in (entry.standard_code, _fold(entry.approval_no)):
        return _STANDARD_OR_APPROVAL
    if len(query) >= 4 and code.startswith(query):
        return _CODE_PREFIX
    names = (entry.name, entry.generic_name, entry.product_name)
    text = _fold(" ".join((*names, entry.manufacturer, entry.specification, entry.packaging,
                           entry.approval_no, entry.dosage_form)))
    if not all(w in text for w in words):
        return None
    if any(_fold(n).startswith(words[0]) for n in names if n):
        return _NAME_START
    return _WORDS


def search_catalog(entries: Iterable[CatalogEntry], query: str,
                   limit: int = 50) -> list[CatalogHit]:
    """At most ``limit`` entries matching ``query``, best kind of match first, then by
    national code (the same query always lists the same codes in the same order)."""
    words = [_fold(w) for w in query.split() if w.strip()]
    if not words or limit <= 0:
        return []
    whole = _fold(query)
    found: list[tuple[int, str, CatalogEntry]] = []
    for entry in entries:
        rank = _rank(entry, whole, words)
        if rank is not None:
            found.append((rank, entry.code, entry))
    found.sort(key=lambda t: (t[0], t[1]))
    return [CatalogHit(e, r, _WHY[r]) for r, _, e in found[:limit]]
