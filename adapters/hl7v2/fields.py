"""Typed readers for HL7 v2 field values, shared by the message-type mappers.

Each reader raises :class:`~canonical.errors.MessageRejected` naming the field
(``RXE-10``) so the ACK's ERR segment points the sender at the exact place.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal, InvalidOperation

from adapters.hl7v2.layout import ZFields, ZLayout
from adapters.hl7v2.message import Segment, ascii_digits
from canonical.errors import MessageRejected
from canonical.model import Party

__all__ = ["Header", "ZFields", "ZLayout", "checked_date", "decimal", "flag01", "hl7_date",
           "party", "yes_no"]


def decimal(value: str, location: str) -> Decimal:
    """A finite decimal, or a rejection naming ``location``."""
    try:
        d = Decimal(value)
    except InvalidOperation:
        raise MessageRejected(f"{location} is not a number: {value!r}",
                              code="102", location=location) from None
    if not d.is_finite():
        raise MessageRejected(f"{location} is not a finite number: {value!r}",
                              code="102", location=location)
    return d


def hl7_date(value: str) -> str:
    """An HL7 DT/DTM as an ISO date (``20280814`` → ``2028-08-14``); other text unchanged."""
    if len(value) >= 8 and ascii_digits(value[:8]):
        return f"{value[0:4]}-{value[4:6]}-{value[6:8]}"
    return value


def checked_date(value: str, location: str) -> str:
    """An HL7 DT/DTM or ISO date as an ISO date, or a rejection naming ``location``.

    A date that cannot exist (``2028-31-10``, ``20280230``) is refused at the door: the
    platform would refuse it later, long after the sender could be told.
    """
    iso = hl7_date(value)
    try:
        if len(iso) < 10 or iso[4] != "-" or iso[7] != "-":
            raise ValueError(iso)
        date.fromisoformat(iso[:10])
    except ValueError:
        raise MessageRejected(f"{location} is not a date (YYYYMMDD): {value!r}",
                              code="102", location=location) from None
    return iso[:10]


# HL7 table 0136 says Y / N; hospital systems also send these
_YES = frozenset({"Y", "1", "T", "TRUE", "是"})
_NO = frozenset({"N", "0", "F", "FALSE", "否"})


def yes_no(value: str, location: str, meaning: str) -> bool | None:
    """A yes/no field (Y/N, 1/0, T/F, true/false, 是/否; any case); None when empty.

    Raises:
        MessageRejected: any other value, naming ``location`` and ``meaning`` (what the
            field is, e.g. ``rx_circ_flag 外配处方``), code 102.
    """
    if not value:
        return None
    key = value.strip().upper()
    if key in _YES:
        return True
    if key in _NO:
        return False
    raise MessageRejected(
        f"{location} ({meaning}) is {value!r}: not Y/N, 1/0, T/F, true/false or 是/否",
        code="102", location=location)


def flag01(value: str, location: str, meaning: str) -> str:
    """A yes/no field as the platforms' flags take it: "1", "0", or "" when empty.

    Raises:
        MessageRejected: as :func:`yes_no`.
    """
    answer = yes_no(value, location, meaning)
    if answer is None:
        return ""
    return "1" if answer else "0"


def party(seg: Segment | None, n: int) -> Party | None:
    """An XCN/XON/CE field as id^name (Chinese names come whole in the family part)."""
    if seg is None:
        return None
    pid, family, given = seg.components(n)
    if not (pid or family):
        return None
    if given.isdigit() or given.startswith("HL7"):  # XON-3 / CE-3 are not name parts
        given = ""
    return Party(pid, family + given)


class Header:
    """The MSH facts every event of a message shares."""

    __slots__ = ("control_id", "hospital_id", "occurred_at", "source")

    def __init__(self, hospital_id: str, source: str, control_id: str,
                 occurred_at: datetime) -> None:
        self.hospital_id = hospital_id
        self.source = source
        self.control_id = control_id
        self.occurred_at = occurred_at
