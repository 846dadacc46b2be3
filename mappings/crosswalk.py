"""The crosswalk (对码): hospital item code → national medical-insurance code.

A crosswalk entry also converts quantities: hospitals count in their own unit
(a box of 24 tablets), the platform in the national minimum pricing unit (a
tablet), so each entry carries the factor between them. Mapping is a pure
function of an event, the crosswalk and the day.

Every message line goes through :meth:`Crosswalk.lookup`, so the index is a
plain dict per hospital keyed by item code. Most items have one entry without
dates, stored as the entry itself; otherwise the value holds the entry that
wins when ranges overlap, and the other ranges are only scanned when that one
is not valid on the day.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import date
from decimal import Decimal
from pathlib import Path

from canonical.breaks import take_break
from canonical.model import Event, Line
from codes import validate
from mappings._bulk import paused_gc
from mappings.entry import CodeValidator, CrosswalkEntry, EntryKey
from mappings.files import CrosswalkFormatError, read_csv
from mappings.products import ProductFacts

__all__ = [
    "Crosswalk",
    "CrosswalkEntry",
    "CrosswalkFormatError",
    "load_csv",
    "map_event",
    "read_csv",
]

_Range = tuple[date, date, CrosswalkEntry]
# (first range's from, to, entry, the other ranges): the first range is the one that
# starts latest, so it wins whenever it is valid.
_Slot = tuple[date, date, CrosswalkEntry, tuple[_Range, ...]]


def _slot(entries: list[CrosswalkEntry]) -> _Slot | CrosswalkEntry:
    if len(entries) == 1 and entries[0].valid_from is None and entries[0].valid_to is None:
        return entries[0]
    ordered = sorted(entries, key=lambda e: e.valid_from or date.min, reverse=True)
    ranges = [(e.valid_from or date.min, e.valid_to or date.max, e) for e in ordered]
    lo, hi, first = ranges[0]
    return (lo, hi, first, tuple(ranges[1:]))


class Crosswalk:
    """An index of crosswalk entries by (hospital, item code), for every hospital.

    Changes made through :mod:`mappings.changes` leave the original untouched and
    return a new crosswalk, so a reader holding the old one never sees half an edit.
    """

    __slots__ = ("_entries", "_index")

    def __init__(self, entries: Iterable[CrosswalkEntry] = ()) -> None:
        self._entries: dict[tuple[str, str], list[CrosswalkEntry]] = {}
        self._index: dict[str, dict[str, _Slot | CrosswalkEntry]] = {}
        with paused_gc():
            self._fill(entries)

    def _fill(self, entries: Iterable[CrosswalkEntry]) -> None:
        for e in entries:
            self._entries.setdefault((e.hospital_id, e.item_code), []).append(e)
        for (hospital, item), found in self._entries.items():
            self._index.setdefault(hospital, {})[item] = _slot(found)

    def add(self, entry: CrosswalkEntry) -> None:
        """Add an entry in place (entries for other date ranges of the same item are kept)."""
        key = (entry.hospital_id, entry.item_code)
        # a new list: crosswalks made by with_changes share the old ones
        found = [*self._entries.get(key, ()), entry]
        self._entries[key] = found
        # a new per-hospital dict: crosswalks made by with_changes share the old ones
        self._index[entry.hospital_id] = {**self._index.get(entry.hospital_id, {}),
                                          entry.item_code: _slot(found)}

    def lookup(self, hospital_id: str, item_code: str, day: date) -> CrosswalkEntry | None:
        """The entry valid on ``day``, the latest-starting one if ranges overlap."""
        items = self._index.get(hospital_id)
        if items is None:
            return None
        slot = items.get(item_code)
        if slot is None:
            return None
        if isinstance(slot, CrosswalkEntry):
            return slot
        lo, hi, first, others = slot
        if lo <= day <= hi:
            return first
        for lo, hi, entry in others:
            if lo <= day <= hi:
                return entry
        return None

    def ranges(self, hospital_id: str, item_code: str) -> tuple[CrosswalkEntry, ...]:
        """Every entry of one item, latest-starting first."""
        found = self._entries.get((hospital_id, item_code), ())
        return tuple(sorted(found, key=lambda e: e.valid_from or date.min, reverse=True))

    def get(self, key: EntryKey) -> CrosswalkEntry | None:
        """The entry with this (hospital_id, item_code, valid_from), if any."""
        hospital_id, item_code, valid_from = key
        for e in self._entries.get((hospital_id, item_code), ()):
            if e.valid_from == valid_from:
                return e
        return None

    def hospitals(self) -> list[str]:
        """The hospitals that have entries, sorted."""
        return sorted({h for h, _ in self._entries})

    def with_changes(
        self,
        *,
        remove: Iterable[CrosswalkEntry] = (),
        add: Iterable[CrosswalkEntry] = (),
    ) -> Crosswalk:
        """A new crosswalk with entries removed (matched by key) and added; self is unchanged."""
        new = Crosswalk.__new__(Crosswalk)
        new._entries = dict(self._entries)
        new._index = dict(self._index)
        touched: set[tuple[str, str]] = set()
        copied: set[str] = set()
        for e in remove:
            key = (e.hospital_id, e.item_code)
            kept = [x for x in new._entries.get(key, ()) if x.key != e.key]
            new._entries[key] = kept
            touched.add(key)
        for e in add:
            key = (e.hospital_id, e.item_code)
            new._entries[key] = [*new._entries.get(key, ()), e]
            touched.add(key)
        for key in touched:
            hospital, item = key
            if hospital not in copied:  # copy-on-write per hospital
                new._index[hospital] = dict(new._index.get(hospital, {}))
                copied.add(hospital)
            if new._entries[key]:
                new._index[hospital][item] = _slot(new._entries[key])
            else:
                del new._entries[key]
                new._index[hospital].pop(item, None)
        return new

    def __iter__(self) -> Iterator[CrosswalkEntry]:
        for found in self._entries.values():
            yield from found

    def __len__(self) -> int:
        return sum(len(v) for v in self._entries.values())


def load_csv(
    source: Path | str,
    *,
    hospital_id: str | None = None,
    validate_code: CodeValidator | None = validate,
) -> Crosswalk:
    """Read a crosswalk CSV file (or CSV text) into a :class:`Crosswalk`.

    Raises:
        CrosswalkFormatError: any row is malformed or two ranges of an item overlap.
    """
    return Crosswalk(read_csv(source, hospital_id=hospital_id, validate_code=validate_code))


_PRICE_STEP = Decimal("0.0001")


def _map_line(line: Line, entry: CrosswalkEntry, products: ProductFacts | None) -> Line:
    # spelled out rather than dataclasses.replace: this runs for every line on the hot path
    factor = entry.factor
    price = line.price
    rx_only, maker = line.rx_only, line.manufacturer
    if products is not None and (rx_only is None or not maker):
        facts = products.get(entry.national_code)
        if facts is not None:
            # the message's own word wins; the catalog fills what it left out
            rx_only = facts[0] if rx_only is None else rx_only
            maker = maker or facts[1]
    return Line(
        line.seq, line.item_code, line.item_name, line.specification, maker,
        line.quantity, line.unit, price, line.generic_name, line.dosage_form,
        line.approval_no, line.standard_code, line.lot_no, line.expiry, line.trace_codes,
        line.supplier, line.order_control,
        national_code=entry.national_code,
        national_quantity=line.quantity * factor,
        national_unit=entry.national_unit or line.unit,
        national_price=None if price is None else (price / factor).quantize(_PRICE_STEP),
        manu_date=line.manu_date, rx_only=rx_only, extra=line.extra,
    )


def map_event(event: Event, crosswalk: Crosswalk, day: date,
              products: ProductFacts | None = None) -> tuple[Event, tuple[Line, ...]]:
    """Set the national code on every line the crosswalk knows, and what the message
    left out of the product's facts (prescription-only, manufacturer) from ``products``.

    Returns:
        The event with mapped lines, and the lines that have no entry (the event
        must then be held, never sent with a guess).
    """
    mapped: list[Line] = []
    unmapped: list[Line] = []
    for line in event.lines:
        take_break()
        entry = crosswalk.lookup(event.hospital_id, line.item_code, day)
        if entry is None:
            unmapped.append(line)
            mapped.append(line)
        else:
            mapped.append(_map_line(line, entry, products))
    if len(unmapped) == len(mapped):
        return event, tuple(unmapped)
    return event.with_lines(tuple(mapped)), tuple(unmapped)
