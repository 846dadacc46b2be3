"""What one message may carry into the store: checked at the door, for every adapter.

A quantity or price far beyond anything a hospital buys is a typo or an attack; stored,
it would overflow the ledger's exact sums (integers in millionths) for every event after
it. A message of more lines or traceability codes than any real one takes the gateway's
time and memory from every other sender. Such a message is refused, naming the limit and
where it was exceeded, before it is committed (limits: ``limits`` in the configuration).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from canonical.errors import MessageRejected
from canonical.model import Event

__all__ = ["DEFAULT_LIMITS", "Limits", "check_values"]


@dataclass(frozen=True, slots=True)
class Limits:
    """The limits of one message (``limits`` in the configuration)."""

    max_lines: int = 5_000
    max_trace_codes: int = 20_000
    max_quantity: Decimal = Decimal(10_000_000)
    max_price: Decimal = Decimal(10_000_000)


DEFAULT_LIMITS = Limits()


def _refuse(where: str, what: str) -> MessageRejected:
    return MessageRejected(f"{where}: {what}", code="102", location=where, reject=True)


def check_values(events: Iterable[Event], limits: Limits = DEFAULT_LIMITS) -> None:
    """Refuse a message beyond ``limits``.

    Raises:
        MessageRejected: naming the line (or the message) and the limit.
    """
    lines = 0
    for ev in events:
        lines += len(ev.lines)
        if lines > limits.max_lines:
            raise MessageRejected(f"more than {limits.max_lines} item lines in one message"
                                  " (limits.max_lines)", code="102", location="message",
                                  reject=True)
        for line in ev.lines:
            if len(line.trace_codes) > limits.max_trace_codes:
                raise _refuse(f"line {line.seq} trace_codes",
                              f"{len(line.trace_codes)} traceability codes, more than "
                              f"{limits.max_trace_codes} (limits.max_trace_codes)")
            for name, value, limit in (("quantity", line.quantity, limits.max_quantity),
                                       ("price", line.price, limits.max_price),
                                       ("national_quantity", line.national_quantity,
                                        limits.max_quantity),
                                       ("national_price", line.national_price,
                                        limits.max_price)):
                if value is not None and abs(value) > limit:
                    raise _refuse(f"line {line.seq} {name}",
                                  f"{value} is out of range (at most {limit}) in "
                                  f"{ev.document_no or ev.event_id}")
