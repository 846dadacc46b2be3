"""The NMPA drug standard code (药品本位码) and its link to the national drug code.

A 本位码 is 14 digits (``86`` country prefix, ``9`` for drugs, then a 5-digit
enterprise part, product serial and a check digit). Digits 4-8 are the
enterprise part, which the national code repeats as its last five characters.
Catalogs extracted from PDF often carry the reimbursement class glued to the
value (``86902816000048甲``); it is split off here rather than rejected.
"""

from __future__ import annotations

import re
from typing import Final

__all__ = [
    "enterprise_from_standard_code",
    "split_approval_and_standard_code",
    "split_standard_code",
]

_GLUED: Final = re.compile(r"\s*([甲乙丙]?)\s*(\d{14})\s*([甲乙丙]?)\s*", re.ASCII)
# Imported drugs: the approval number (国药准字HJ20140691) run together with the
# 本位码 (86901359000300), as PDF extraction leaves two adjacent cells.
_APPROVAL_GLUED: Final = re.compile(
    r"\s*((?:国药准字)?[A-Z]{1,2}\d{8})(86\d{12})([甲乙丙]?)\s*", re.ASCII
)


def split_standard_code(raw: str) -> tuple[str, str | None] | None:
    """Split a catalog cell into (14-digit 本位码, glued class 甲/乙/丙 or None).

    Returns:
        None when the cell holds no well-formed 本位码 (cut, shifted, or another value).
    """
    m = _GLUED.fullmatch(raw)
    if m is None:
        return None
    before, digits, after = m.groups()
    if before and after:
        return None
    return digits, (before or after or None)


def split_approval_and_standard_code(raw: str) -> tuple[str, str, str | None] | None:
    """Split ``国药准字HJ2014069186901359000300乙`` into (approval no., 本位码, class).

    Returns:
        None when the cell is not an approval number glued to a 本位码.
    """
    m = _APPROVAL_GLUED.fullmatch(raw)
    if m is None:
        return None
    approval, digits, cls = m.groups()
    return approval, digits, cls or None


def enterprise_from_standard_code(benweima: str) -> str | None:
    """Return the enterprise segment (digits 4-8) of a 本位码, or None if it is not one.

    Args:
        benweima: the 药品本位码, possibly with a glued class letter or blanks.

    Returns:
        Five digits equal to the last five characters of the matching national
        drug code, or None when the value is not a 14-digit 本位码.
    """
    parts = split_standard_code(benweima) if isinstance(benweima, str) else None
    if parts is None:
        return None
    return parts[0][3:8]
