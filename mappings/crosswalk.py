"""The crosswalk (对码): hospital item code → national medical-insurance code.

A crosswalk entry also converts quantities: hospitals count in their own unit
(a box of 24 tablets), the platform in the national minimum pricing unit (a
tablet), so each entry carries the factor between them. Mapping is a pure
function of an event, the crosswalk and the day.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from pathlib import Path

from gateway.model import Event, Line

__all__ = ["Crosswalk", "CrosswalkEntry", "CrosswalkFormatError", "map_event", "read_csv"]


class CrosswalkFormatError(ValueError):
    """A crosswalk file has a bad row; the message names the file, row and column."""


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

    def valid_on(self, day: date) -> bool:
        """Whether the entry applies on ``day``."""
        if self.valid_from is not None and day < self.valid_from:
            return False
        return not (self.valid_to is not None and day > self.valid_to)


class Crosswalk:
    """An in-memory index of crosswalk entries by (hospital, item code)."""

    __slots__ = ("_index",)

    def __init__(self, entries: Iterable[CrosswalkEntry] = ()) -> None:
        self._index: dict[tuple[str, str], list[CrosswalkEntry]] = {}
        for e in entries:
            self.add(e)

    def add(self, entry: CrosswalkEntry) -> None:
        """Add an entry (entries for other date ranges of the same item are kept)."""
        self._index.setdefault((entry.hospital_id, entry.item_code), []).append(entry)

    def lookup(self, hospital_id: str, item_code: str, day: date) -> CrosswalkEntry | None:
        """The entry valid on ``day``, the latest-starting one if ranges overlap."""
        found = self._index.get((hospital_id, item_code))
        if not found:
            return None
        if len(found) == 1:
            e = found[0]
            return e if e.valid_on(day) else None
        valid = [e for e in found if e.valid_on(day)]
        if not valid:
            return None
        return max(valid, key=lambda e: e.valid_from or date.min)

    def __len__(self) -> int:
        return sum(len(v) for v in self._index.values())


_PRICE_STEP = Decimal("0.0001")


def _map_line(line: Line, entry: CrosswalkEntry) -> Line:
    # spelled out rather than dataclasses.replace: this runs for every line on the hot path
    factor = entry.factor
    price = line.price
    return Line(
        line.seq, line.item_code, line.item_name, line.specification, line.manufacturer,
        line.quantity, line.unit, price, line.generic_name, line.dosage_form,
        line.approval_no, line.standard_code, line.lot_no, line.expiry, line.trace_codes,
        line.supplier, line.order_control,
        national_code=entry.national_code,
        national_quantity=line.quantity * factor,
        national_unit=entry.national_unit or line.unit,
        national_price=None if price is None else (price / factor).quantize(_PRICE_STEP),
    )


def map_event(event: Event, crosswalk: Crosswalk, day: date) -> tuple[Event, tuple[Line, ...]]:
    """Set the national code on every line the crosswalk knows.

    Returns:
        The event with mapped lines, and the lines that have no entry (the event
        must then be held, never sent with a guess).
    """
    mapped: list[Line] = []
    unmapped: list[Line] = []
    for line in event.lines:
        entry = crosswalk.lookup(event.hospital_id, line.item_code, day)
        if entry is None:
            unmapped.append(line)
            mapped.append(line)
        else:
            mapped.append(_map_line(line, entry))
    if len(unmapped) == len(mapped):
        return event, tuple(unmapped)
    return event.with_lines(tuple(mapped)), tuple(unmapped)


_COLUMNS = ("hospital_id", "item_code", "national_code")


def _parse_date(value: str, where: str) -> date | None:
    if not value.strip():
        return None
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise CrosswalkFormatError(f"{where}: {value!r} is not a date (YYYY-MM-DD)") from None


def read_csv(source: Path | str) -> list[CrosswalkEntry]:
    """Read crosswalk entries from a CSV file or CSV text (UTF-8, optional BOM).

    Columns: hospital_id, item_code, national_code, and optionally item_name,
    hospital_unit, national_unit, factor, valid_from, valid_to.

    Raises:
        CrosswalkFormatError: a required column is missing or a cell is malformed.
    """
    if isinstance(source, Path):
        name, text = str(source), source.read_text(encoding="utf-8-sig")
    else:
        name, text = "<crosswalk>", source.lstrip("\ufeff")
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in _COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise CrosswalkFormatError(f"{name}: missing column(s) {', '.join(missing)}")
    entries = []
    for n, row in enumerate(reader, start=2):
        where = f"{name} row {n}"
        for c in _COLUMNS:
            if not (row.get(c) or "").strip():
                raise CrosswalkFormatError(f"{where}: column {c} is empty")
        try:
            factor = Decimal((row.get("factor") or "1").strip() or "1")
        except InvalidOperation:
            raise CrosswalkFormatError(f"{where}: factor {row.get('factor')!r} is not a number") \
                from None
        if factor <= 0:
            raise CrosswalkFormatError(f"{where}: factor must be positive")
        entries.append(CrosswalkEntry(
            hospital_id=row["hospital_id"].strip(),
            item_code=row["item_code"].strip(),
            national_code=row["national_code"].strip(),
            item_name=(row.get("item_name") or "").strip(),
            hospital_unit=(row.get("hospital_unit") or "").strip(),
            national_unit=(row.get("national_unit") or "").strip(),
            factor=factor,
            valid_from=_parse_date(row.get("valid_from") or "", where),
            valid_to=_parse_date(row.get("valid_to") or "", where),
        ))
    return entries
