"""Stored event JSON: what the stores write is what they read back, value for value."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import orjson
import pytest
from msgspec.structs import replace

from adapters.hl7v2 import HL7v2Adapter
from canonical.model import (
    CHINA_TZ,
    Event,
    Party,
    Patient,
    event_from_dict,
    event_json,
    event_to_dict,
)

DATA = Path(__file__).resolve().parents[1] / "data" / "hl7v2" / "valid"
ADAPTER = HL7v2Adapter({"facilities": {"ZJSRMYY": "H33010200001",
                                       "HZSDYYY": "H33010600017"}})


def _samples() -> list[Event]:
    out: list[Event] = []
    for path in sorted(DATA.glob("*.hl7")):
        out.extend(ADAPTER.parse(path.read_bytes(), received_at=datetime.now(CHINA_TZ)).events)
    return out


@pytest.mark.parametrize("event", _samples(), ids=lambda e: e.event_id)
def test_every_parsed_sample_survives_the_stored_json(event: Event) -> None:
    assert event_from_dict(orjson.loads(event_json(event))) == event


def test_every_field_survives_including_utc_times_and_mapped_quantities() -> None:
    base = _samples()[0]
    line = replace(base.lines[0], national_code="XL02BGA045A001010104520",
                   national_quantity=Decimal("28.0000"), national_unit="片",
                   national_price=Decimal("2.3500"), trace_codes=("81234567890123456789",),
                   supplier=Party("GYS001", "华东医药股份有限公司"))
    event = replace(base, lines=(line,), occurred_at=datetime(2026, 11, 23, 1, 2, 3, 456789,
                                                              tzinfo=UTC),
                    patient=Patient(id="0001234567", name="张伟", id_card="330102198001010016"),
                    pharmacist=Party("Y01", "王芳"), online=False, emergency=True,
                    extra=(("visit_type", "outpatient"),))
    stored = orjson.loads(event_json(event))
    assert stored == orjson.loads(orjson.dumps(event_to_dict(event), default=str)) | {
        "occurred_at": stored["occurred_at"]}
    back = event_from_dict(stored)
    assert back == event
    assert back.occurred_at == event.occurred_at and back.lines[0].national_price == \
        Decimal("2.3500")
    with pytest.raises(AttributeError):
        back.online = True  # type: ignore[misc]
