"""Comparing a hospital's way of writing a manufacturer with the catalog's.

Dictionaries abbreviate makers (扬子江药业集团有限公司 → 扬子江药业, 扬子江), drop the
province and the company type, or copy the name as the published catalog cut it out
of a PDF table (限公司同仁堂制药厂, 有限公司葵花药业集团(襄阳), a name glued to the next
row's). Both sides are reduced to their distinctive core
(:func:`mappings.normalize.manufacturer_core`) and compared as whole names first,
then as a short name inside the long one, then as fuzzy strings.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from rapidfuzz import fuzz

from mappings.normalize import manufacturer_core, normalize_text

__all__ = ["MakerMatch", "MakerMatchKind", "compare_makers", "maker_core"]

# A core of one character ("马" left of 金马药业 after a cut) says little on its own.
_SHORTEST_CONTAINED = 2


class MakerMatchKind(StrEnum):
    """How the hospital's maker was recognised in the catalog's."""

    SAME = "same"  # the same name, or the same core (扬子江药业集团有限公司 / 扬子江药业)
    ABBREVIATION = "abbreviation"  # a short name inside the catalog's (扬子江 in 扬子江药业集团)
    GARBLED = "garbled"  # a cut or glued name sharing most of the core
    SIMILAR = "similar"  # alike as strings only
    DIFFERENT = "different"


@dataclass(frozen=True, slots=True)
class MakerMatch:
    """A manufacturer comparison: 0–100 and how it was reached."""

    score: float
    kind: MakerMatchKind


_NO_MATCH = MakerMatch(0.0, MakerMatchKind.DIFFERENT)


def compare_makers(query_core: str, catalog_core: str) -> MakerMatch:
    """Compare two manufacturer cores (see :func:`manufacturer_core`).

    Examples: 扬子江 / 扬子江 → SAME 100; 扬子 / 扬子江 → ABBREVIATION 95;
    君现代 / 利君现代 → GARBLED 96; 恒瑞 / 华瑞 → SIMILAR 63.
    """
    if not query_core or not catalog_core:
        return _NO_MATCH
    if query_core == catalog_core:
        return MakerMatch(100.0, MakerMatchKind.SAME)
    shorter, longer = sorted((query_core, catalog_core), key=len)
    if len(shorter) >= _SHORTEST_CONTAINED and shorter in longer:
        coverage = len(shorter) / len(longer)
        kind = MakerMatchKind.ABBREVIATION if longer.startswith(shorter) \
            else MakerMatchKind.GARBLED
        return MakerMatch(85.0 + 15.0 * coverage, kind)
    score = float(fuzz.ratio(query_core, catalog_core))
    if min(len(query_core), len(catalog_core)) >= _SHORTEST_CONTAINED:
        # a cut on both sides: 利君现代中 / 君现代中药 still share a long run
        partial = fuzz.partial_ratio(shorter, longer) * (0.8 + 0.15 * len(shorter) / len(longer))
        score = max(score, partial)
    kind = MakerMatchKind.GARBLED if score >= 75 else (
        MakerMatchKind.SIMILAR if score >= 60 else MakerMatchKind.DIFFERENT)
    return MakerMatch(score, kind)


def maker_core(name: str) -> str:
    """The core of a hospital's maker text, "" when it is blank."""
    return manufacturer_core(name) if normalize_text(name) else ""
