"""What one message may carry into the store: checked at the door, for every adapter.

A quantity or price far beyond anything a hospital buys is a typo or an attack; stored,
it would overflow the ledger's exact sums (integers in millionths) for every event after
it. A message of more lines or traceability codes than any real one takes the gateway's
time and memory from every other sender. Such a message is refused, naming the limit and
where it was exceeded, before it is committed (limits: ``limits`` in the configuration).

Every traceability code (药品追溯码) is checked here too: a misread scan acknowledged and
stored would only be refused by the platform later, as a dead letter nobody at the
counter sees. The standard form is 20 digits starting with 8; GS1 element strings and
other codes of 20–100 characters pass only with ``limits.long_trace_codes``
(:func:`codes.trace.validate_trace_code` decides either way).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Final

from canonical.errors import MessageRejected
from canonical.model import Event, EventKind, Line, OrderControl
from codes.trace import (
    LONG_TRACE_MAX,
    STANDARD_TRACE_LENGTH,
    is_gs1_shaped,
    parse_gs1,
    validate_trace_code,
)

__all__ = ["DEFAULT_LIMITS", "Limits", "check_values"]


@dataclass(frozen=True, slots=True)
class Limits:
    """The limits of one message (``limits`` in the configuration)."""

    max_lines: int = 5_000
    max_trace_codes: int = 20_000
    max_quantity: Decimal = Decimal(10_000_000)
    max_price: Decimal = Decimal(10_000_000)
    # also GS1 element strings and other 20-100 character codes, not only 20 digits (8…)
    long_trace_codes: bool = False


DEFAULT_LIMITS = Limits()

# the standard code, and a line's codes joined by "\n" when each of them is one: one
# regex over a line is ~2.5x faster than one call per code for a line of 10,000 codes
_STANDARD: Final = re.compile(r"8\d{19}", re.ASCII)
_STANDARD_JOINED: Final = re.compile(r"8\d{19}(?:\n8\d{19})*", re.ASCII)
_SHOWN_MAX: Final = LONG_TRACE_MAX  # characters of a refused code quoted back


# kinds whose every line moves a positive quantity: a sale of -2 is acknowledged, then
# refused by the platform where nobody at the counter sees it. A stock change keeps its
# sign (a loss may be sent negative) and a stock-take may count zero, never below.
_POSITIVE_KINDS: Final = frozenset({
    EventKind.DISPENSE, EventKind.DISPENSE_RETURN, EventKind.RECEIPT, EventKind.RETURN,
    EventKind.PURCHASE_ORDER, EventKind.PRESCRIPTION, EventKind.PAYMENT})
# a cancelled or discontinued order line may come without its quantity
_WITHDRAWN: Final = frozenset({OrderControl.CANCEL, OrderControl.DISCONTINUE})


def _check_signs(ev: Event, line: Line) -> None:
    where = ev.document_no or ev.event_id
    for name, price in (("price", line.price), ("national_price", line.national_price)):
        if price is not None and price < 0:
            raise _refuse(f"line {line.seq} {name}", f"{price} is negative in {where}")
    if ev.kind is EventKind.STOCKTAKE:
        floor, words = "negative", "a count is never below zero"
    elif ev.kind in _POSITIVE_KINDS and (ev.order_control or line.order_control) \
            not in _WITHDRAWN:
        floor, words = "not positive", f"a {ev.kind} line moves more than zero"
    else:
        return
    for name, qty in (("quantity", line.quantity), ("national_quantity",
                                                    line.national_quantity)):
        if qty is None:
            continue
        if qty < 0 or (qty == 0 and floor == "not positive"):
            raise _refuse(f"line {line.seq} {name}", f"{qty} is {floor} in {where} ({words})")


def _refuse(where: str, what: str) -> MessageRejected:
    return MessageRejected(f"{where}: {what}", code="102", location=where, reject=True)


def _all_standard(codes: Sequence[str]) -> bool:
    """Whether every code is a standard 20-digit code, in one regex over the line. The
    length check makes the join exact: a code containing "\n" adds a separator the
    pattern would count, so the joined text would be longer than ``21 * n - 1``."""
    if len(codes) == 1:
        code = codes[0]
        return isinstance(code, str) and _STANDARD.fullmatch(code) is not None
    try:
        text = "\n".join(codes)
    except TypeError:  # not a string: the slow path says so
        return False
    return (len(text) == (STANDARD_TRACE_LENGTH + 1) * len(codes) - 1
            and _STANDARD_JOINED.fullmatch(text) is not None)


def _shown(code: str) -> str:
    if len(code) > _SHOWN_MAX:
        return f"{code[:_SHOWN_MAX]!r}… ({len(code)} characters)"
    return repr(code)


def _why_refused(code: str, long_codes: bool) -> str | None:
    """Why ``code`` is refused under the ``long_trace_codes`` setting, or None. With long
    codes off, a GS1 element string or a code of another format that the setting would
    let through is refused naming ``limits.long_trace_codes``."""
    reason = validate_trace_code(code, allow_long=long_codes)
    if reason is None or long_codes or not isinstance(code, str):
        return reason
    long_reason = validate_trace_code(code, allow_long=True)
    gs1 = parse_gs1(code)
    if isinstance(gs1, dict) and long_reason is None:
        return (f"a GS1 element string ((01) GTIN {gs1['01']}), accepted only with long trace "
                "codes: set limits.long_trace_codes: true")
    if is_gs1_shaped(code):
        # read as a GS1 element string when long codes are on, and refused even then
        return (f"{long_reason} (and GS1 element strings are accepted only with "
                "limits.long_trace_codes: true)")
    if long_reason is None and not (len(code) == STANDARD_TRACE_LENGTH and code.isdigit()):
        # a code of another format, not a mistyped standard one: the setting takes it
        return (f"not the standard {STANDARD_TRACE_LENGTH} digits starting with 8 but a code "
                f"of {len(code)} characters, accepted only with long trace codes: set "
                "limits.long_trace_codes: true")
    return reason


def _check_trace_codes(ev: Event, line: Line, long_codes: bool) -> None:
    """Refuse the line's first unacceptable code (the line failed the fast check)."""
    for i, code in enumerate(line.trace_codes, start=1):
        if isinstance(code, str) and _STANDARD.fullmatch(code):
            continue
        reason = _why_refused(code, long_codes)
        if reason is not None:
            raise _refuse(f"line {line.seq} trace_codes[{i}]",
                          f"trace code {_shown(str(code))} in "
                          f"{ev.document_no or ev.event_id} refused: {reason}")


def check_values(events: Iterable[Event], limits: Limits = DEFAULT_LIMITS) -> None:
    """Refuse a message beyond ``limits``, or with a traceability code that is not one,
    a negative price, or a quantity below zero (zero too, except on a stock-take, for
    every kind but a stock change, whose sign is its direction).

    Trace code positions count from 1, as lines do (``line 3 trace_codes[2]``: the
    line's second code, the second repetition of an HL7 v2 field).

    Raises:
        MessageRejected: naming the line (or the message) and the limit, or the line and
            the position of the first traceability code refused and why.
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
            if line.trace_codes and not _all_standard(line.trace_codes):
                _check_trace_codes(ev, line, limits.long_trace_codes)
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
            _check_signs(ev, line)
