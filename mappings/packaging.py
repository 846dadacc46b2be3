"""Package quantities as hospital dictionaries write them.

A dictionary says how many dosage units a pack holds in many ways: ``24片/盒``,
``0.25g*24片``, ``12粒/板*2板/袋*1袋/盒``, ``10ml*5支``, ``3袋×4板``, ``48s``,
``每盒9袋``. The national catalog keeps one number (最小包装数量), so every
expression is reduced to that number: the strengths are taken out and the
remaining counts multiplied.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache
from typing import Final

__all__ = ["COUNT_UNITS", "normalize_multiplication", "pack_quantity"]

# Words that count dosage units or the containers holding them.
COUNT_UNITS: Final = ("片", "粒", "袋", "支", "丸", "瓶", "贴", "枚", "包", "板", "排", "盒",
                      "揿", "喷", "盒装", "小袋", "小盒", "条", "管", "只", "s", "t", "tab",
                      "tabs", "cap", "caps", "pcs")
_UNIT_ALTERNATION: Final = "|".join(sorted(COUNT_UNITS, key=len, reverse=True))

# "x" is a multiplication sign only before a number: 0.25gx24, x10
_TIMES: Final = re.compile(r"[×✕✖xX＊](?=\s*\d)|[×✕✖＊]")
_BRACKETED: Final = re.compile(r"[(（\[【][^)）\]】]*[)）\]】]")
# "每片含", "每袋装", "每30丸重": the strength that follows is per unit, not a count
_PER_UNIT: Final = re.compile(r"每\s*\d*\s*(?:[\u4e00-\u9fff]{1,2}?)(?:含|装|重|内含)")
_DOSE: Final = re.compile(
    r"\d+(?:\.\d+)?\s*(?:万iu|万u|万单位|mg|毫克|μg|ug|mcg|微克|kg|g|克|ml|毫升|l|iu|u|单位|%)"
    r"(?![a-z])(?:\s*[:：]\s*\d+(?:\.\d+)?\s*(?:mg|g|ml|克|毫克|毫升)(?![a-z]))?"
    rf"(?:\s*/\s*(?:{_UNIT_ALTERNATION}))?"
)
_PER_PACK: Final = re.compile(
    r"每\s*(?:盒|板|排|袋|包|瓶|小盒)\s*装?\s*(\d+)(?![\d.]|\s*(?:mg|g|ml|克|毫|l|μg|u|iu|万))")
# "每100丸" (a weight per hundred pills): not a pack
_PER_N: Final = re.compile(r"每\s*\d+")
_FACTOR: Final = re.compile(rf"(\*\s*)?(\d+(?:\.\d+)?)\s*({_UNIT_ALTERNATION})?(?![\d.])")
_LARGEST_PACK: Final = 10_000


def normalize_multiplication(text: str) -> str:
    """NFKC, lower case, and every multiplication sign written as ``*``."""
    t = unicodedata.normalize("NFKC", text)
    return _TIMES.sub("*", t).lower()


@lru_cache(maxsize=65536)
def pack_quantity(text: str) -> int | None:
    """The number of dosage units in one pack, or None when the text does not say.

    Examples: ``12粒/板*2板/袋*1袋/盒`` → 24, ``10ml*5支`` → 5, ``0.25g*24片`` → 24,
    ``24片/盒`` → 24, ``48s`` → 48, ``每盒9袋`` → 9, ``0.25g`` → None.
    """
    t = normalize_multiplication(text)
    t = _BRACKETED.sub(" ", t)
    factors: list[int] = []
    for m in _PER_PACK.finditer(t):
        factors.append(int(m.group(1)))
    t = _PER_PACK.sub(" ", t)
    t = _PER_UNIT.sub(" ", t)
    t = _DOSE.sub(" ", t)
    t = _PER_N.sub(" ", t)
    for m in _FACTOR.finditer(t):
        star, number, unit = m.groups()
        if "." in number:
            continue
        # a bare number counts only after "*" or when it is all the text says (a shifted
        # catalog cell holding just "10"); elsewhere it is a page number or a serial
        if unit or star or t.strip() == number:
            factors.append(int(number))
    if not factors:
        return None
    quantity = 1
    for factor in factors:
        quantity *= factor
    return quantity if 0 < quantity <= _LARGEST_PACK else None
