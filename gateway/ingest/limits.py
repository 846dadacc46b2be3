"""Values a message may carry into the store: checked at the door, for every adapter.

A quantity or price far beyond anything a hospital buys is a typo or an attack; stored,
it would overflow the ledger's exact sums (integers in millionths) for every event after
it. Such a message is refused with the line and value named, before it is committed.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

from canonical.errors import MessageRejected
from canonical.model import Event

__all__ = ["MAX_PRICE", "MAX_QUANTITY", "check_values"]

MAX_QUANTITY = Decimal(10_000_000)  # units on one line (hospital or national units)
MAX_PRICE = Decimal(10_000_000)  # yuan per unit


def check_values(events: Iterable[Event]) -> None:
    """Refuse a line whose quantity or price is out of range.

    Raises:
        MessageRejected: naming the event's document, the line and the value.
    """
    for ev in events:
        for line in ev.lines:
            for name, value, limit in (("quantity", line.quantity, MAX_QUANTITY),
                                       ("price", line.price, MAX_PRICE),
                                       ("national_quantity", line.national_quantity,
                                        MAX_QUANTITY),
                                       ("national_price", line.national_price, MAX_PRICE)):
                if value is not None and abs(value) > limit:
                    where = f"line {line.seq} {name}"
                    raise MessageRejected(
                        f"{where} {value} is out of range (at most {limit}) in "
                        f"{ev.document_no or ev.event_id}", code="102", location=where,
                        reject=True)
