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

__all__ = ["enterprise_from_standard_code", "split_standard_code"]

_GLUED: Final = re.compile(r"\s*([甲乙丙]?)\s*(\d{14})\s*([甲乙丙]?)\s*", re.ASCII)


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
