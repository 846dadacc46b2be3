"""The crosswalk index, lookups by day and pure event mapping."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from canonical.model import Event, EventKind, Line
from mappings.crosswalk import Crosswalk, CrosswalkEntry, map_event

H = "310100000001"
TADALAFIL = "XG04BET001A001041803307"
TADALAFIL_NEW = "XG04BET001A001010206988"


def entry(item: str, code: str, **kw: object) -> CrosswalkEntry:
    return CrosswalkEntry(hospital_id=H, item_code=item, national_code=code, **kw)  # type: ignore[arg-type]


def test_lookup_undated_entry_any_day_and_other_hospital_misses() -> None:
    cw = Crosswalk([entry("YP1", TADALAFIL)])
    assert cw.lookup(H, "YP1", date(1999, 1, 1)) == entry("YP1", TADALAFIL)
    assert cw.lookup("310100000002", "YP1", date(2024, 1, 1)) is None
    assert cw.lookup(H, "YP2", date(2024, 1, 1)) is None


def test_lookup_picks_the_range_valid_on_the_day() -> None:
    old = entry("YP1", TADALAFIL, valid_from=date(2023, 1, 1), valid_to=date(2024, 6, 30))
    new = entry("YP1", TADALAFIL_NEW, valid_from=date(2024, 7, 1))
    cw = Crosswalk([old, new])
    assert cw.lookup(H, "YP1", date(2024, 6, 30)) is old
    assert cw.lookup(H, "YP1", date(2024, 7, 1)) is new
    assert cw.lookup(H, "YP1", date(2022, 12, 31)) is None
    assert cw.ranges(H, "YP1") == (new, old)


def test_single_dated_entry_outside_its_range_is_not_found() -> None:
    cw = Crosswalk([entry("YP1", TADALAFIL, valid_to=date(2024, 1, 31))])
    assert cw.lookup(H, "YP1", date(2024, 2, 1)) is None
    assert cw.lookup(H, "YP1", date(2024, 1, 31)) is not None


def test_with_changes_leaves_the_original_untouched() -> None:
    a, b = entry("YP1", TADALAFIL), entry("YP2", TADALAFIL_NEW)
    cw = Crosswalk([a])
    new = cw.with_changes(remove=[a], add=[b])
    assert cw.lookup(H, "YP1", date(2024, 1, 1)) is a
    assert cw.lookup(H, "YP2", date(2024, 1, 1)) is None
    assert new.lookup(H, "YP1", date(2024, 1, 1)) is None
    assert new.lookup(H, "YP2", date(2024, 1, 1)) is b
    assert len(cw) == 1 and len(new) == 1
    new.add(entry("YP3", TADALAFIL))
    assert cw.lookup(H, "YP3", date(2024, 1, 1)) is None


def test_map_event_converts_quantity_and_price_and_reports_unmapped() -> None:
    cw = Crosswalk([entry("YP1", TADALAFIL, hospital_unit="盒", national_unit="片",
                         factor=Decimal(24))])
    event = Event(
        event_id="e1", kind=EventKind.DISPENSE, hospital_id=H, source="hl7v2:HIS",
        occurred_at=datetime(2024, 5, 1, 9, 30),
        lines=(Line(seq=1, item_code="YP1", quantity=Decimal(2), unit="盒",
                    price=Decimal("48.00")),
               Line(seq=2, item_code="YP9", quantity=Decimal(1))),
    )
    mapped, unmapped = map_event(event, cw, date(2024, 5, 1))
    first = mapped.lines[0]
    assert first.national_code == TADALAFIL
    assert first.national_quantity == Decimal(48)
    assert first.national_unit == "片"
    assert first.national_price == Decimal("2.0000")
    assert unmapped == (event.lines[1],)
    assert mapped.lines[1].national_code is None
    assert event.lines[0].national_code is None  # the input event is not changed
