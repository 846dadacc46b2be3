"""One crosswalk entry (对码记录) and the checks every way of making one goes through."""

from __future__ import annotations

from collections.abc import Callable, Container
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from canonical.errors import GatewayError

__all__ = [
    "CodeValidator",
    "CrosswalkEntry",
    "CrosswalkEntryError",
    "EntryKey",
    "describe_validity",
    "entry_from_dict",
    "entry_problems",
    "entry_to_dict",
]

CodeValidator = Callable[[str], "str | None"]
"""Returns why a national code is invalid, or None when it is valid (``codes.validate``)."""

EntryKey = tuple[str, str, "date | None"]
"""(hospital_id, item_code, valid_from): what identifies one entry for update and delete."""


class CrosswalkEntryError(GatewayError, ValueError):
    """An entry or a change to the crosswalk is refused; ``problems`` says every reason."""

    def __init__(self, problems: list[str] | tuple[str, ...]) -> None:
        super().__init__("; ".join(problems))
        self.problems = tuple(problems)


@dataclass(frozen=True, slots=True)
class CrosswalkEntry:
    """One hospital item's national code, valid over [valid_from, valid_to]."""

    hospital_id: str
    item_code: str
    national_code: str
    item_name: str = ""
    hospital_unit: str = ""
    national_unit: str = ""
    factor: Decimal = Decimal(1)  # national units per hospital unit
    valid_from: date | None = None
    valid_to: date | None = None

    @property
    def key(self) -> EntryKey:
        """The identity of this entry among the item's date ranges."""
        return (self.hospital_id, self.item_code, self.valid_from)

    def valid_on(self, day: date) -> bool:
        """Whether the entry applies on ``day``."""
        if self.valid_from is not None and day < self.valid_from:
            return False
        return not (self.valid_to is not None and day > self.valid_to)

    def overlaps(self, other: CrosswalkEntry) -> bool:
        """Whether the two validity ranges share at least one day."""
        lo = max(self.valid_from or date.min, other.valid_from or date.min)
        hi = min(self.valid_to or date.max, other.valid_to or date.max)
        return lo <= hi


def entry_problems(
    entry: CrosswalkEntry,
    *,
    validate_code: CodeValidator | None = None,
    known_codes: Container[str] | None = None,
) -> list[str]:
    """Every reason why ``entry`` cannot go into a crosswalk (empty when it can).

    Args:
        entry: the entry to check.
        validate_code: national-code validator, normally ``codes.validate``.
        known_codes: the national catalog's codes; when given, the code must be listed.

    Returns:
        Human-readable problems naming the field and the fix.
    """
    problems: list[str] = []
    what = f"{entry.hospital_id or '?'}/{entry.item_code or '?'}"
    for name in ("hospital_id", "item_code", "national_code"):
        value: str = getattr(entry, name)
        if not value:
            problems.append(f"{what}: {name} is empty")
        elif value != value.strip():
            problems.append(f"{what}: {name} {value!r} has surrounding spaces")
    code = entry.national_code
    if code and validate_code is not None:
        reason = validate_code(code)
        if reason is not None:
            problems.append(f"{what}: national code {code!r} is invalid: {reason}")
    if code and known_codes is not None and code not in known_codes:
        problems.append(f"{what}: national code {code!r} is not in the national catalog")
    if not entry.factor.is_finite() or entry.factor <= 0:
        problems.append(
            f"{what}: factor {entry.factor} must be a positive number "
            "(national units per hospital unit, e.g. 24 for a box of 24 tablets)"
        )
    if (
        entry.valid_from is not None
        and entry.valid_to is not None
        and entry.valid_from > entry.valid_to
    ):
        problems.append(f"{what}: valid_from {entry.valid_from} is after valid_to {entry.valid_to}")
    return problems


def entry_to_dict(entry: CrosswalkEntry) -> dict[str, str]:
    """A JSON-ready dict of the entry (decimals and dates as strings, absent dates as "")."""
    return {
        "hospital_id": entry.hospital_id,
        "item_code": entry.item_code,
        "national_code": entry.national_code,
        "item_name": entry.item_name,
        "hospital_unit": entry.hospital_unit,
        "national_unit": entry.national_unit,
        "factor": str(entry.factor),
        "valid_from": entry.valid_from.isoformat() if entry.valid_from else "",
        "valid_to": entry.valid_to.isoformat() if entry.valid_to else "",
    }


def entry_from_dict(data: dict[str, Any]) -> CrosswalkEntry:
    """Rebuild an entry written by :func:`entry_to_dict`."""
    return CrosswalkEntry(
        hospital_id=str(data["hospital_id"]),
        item_code=str(data["item_code"]),
        national_code=str(data["national_code"]),
        item_name=str(data.get("item_name") or ""),
        hospital_unit=str(data.get("hospital_unit") or ""),
        national_unit=str(data.get("national_unit") or ""),
        factor=Decimal(str(data.get("factor") or "1")),
        valid_from=date.fromisoformat(data["valid_from"]) if data.get("valid_from") else None,
        valid_to=date.fromisoformat(data["valid_to"]) if data.get("valid_to") else None,
    )


def describe_validity(entry: CrosswalkEntry) -> str:
    """The validity range as text, ``…`` for an open end."""
    lo = entry.valid_from.isoformat() if entry.valid_from else "…"
    hi = entry.valid_to.isoformat() if entry.valid_to else "…"
    return f"{lo}–{hi}"
