"""Message limits at the door: refused naming the limit, before anything is stored."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import pytest
from helpers import HOSPITAL, numbered_dispense

from adapters.hl7v2 import HL7v2Adapter
from canonical.errors import MessageRejected
from canonical.model import CHINA_TZ, Event
from gateway.ingest.limits import Limits, check_values


def _dispense(codes: int = 2, lines: int = 1) -> Event:
    raw = numbered_dispense(1)
    if codes != 2:
        many = "~".join(f"812345678901{i:08d}" for i in range(codes))
        raw = raw.replace(b"81234567890123456789~81234567890123456790", many.encode())
    adapter = HL7v2Adapter(HL7v2Adapter.config_model(facilities={"ZJSRMYY": HOSPITAL}))
    [ev] = adapter.parse(raw, received_at=datetime.now(CHINA_TZ)).events
    return ev.with_lines(tuple(ev.lines) * lines)


def test_a_message_within_the_limits_passes() -> None:
    check_values([_dispense(codes=10_000)])  # a real large dispense: 10,000 codes


@pytest.mark.parametrize(("event", "limits", "where", "words"), [
    (lambda: _dispense(codes=30), Limits(max_trace_codes=20), "line 1 trace_codes",
     "30 traceability codes, more than 20 (limits.max_trace_codes)"),
    (lambda: _dispense(lines=4), Limits(max_lines=3), "message",
     "more than 3 item lines in one message (limits.max_lines)"),
    (lambda: _dispense(), Limits(max_price=Decimal(10)), "line 1 price", "out of range"),
    (lambda: _dispense(), Limits(max_quantity=Decimal(1)), "line 1 quantity", "out of range"),
])
def test_a_message_beyond_a_limit_is_refused_naming_it(event, limits: Limits, where: str,  # type: ignore[no-untyped-def]
                                                       words: str) -> None:
    with pytest.raises(MessageRejected) as caught:
        check_values([event()], limits)
    assert caught.value.location == where and caught.value.reject
    assert words in caught.value.reason
