"""Ledger and CDS rows as both stores write and read them (columns in table order).

Days and times are ISO text, quantities and amounts integer millionths, prices decimal
text, JSON bodies bytes; the log's changes are msgspec JSON.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import msgspec
import orjson

from canonical.model import Event
from gateway.store.ledger_records import (
    CardRow,
    DailyRow,
    DeadlineRow,
    DeadlineUpdate,
    FeedbackRow,
    LedgerChange,
    PriceFlag,
    TraceFlag,
    TraceSale,
    UntracedSale,
    from_micros,
    to_micros,
)

__all__ = [
    "CARD_COLUMNS",
    "DEADLINE_COLUMNS",
    "FEEDBACK_COLUMNS",
    "KEEP_CHANGES",
    "KEEP_CHANGES_S",
    "PRUNE_EVERY",
    "TRACE_COLUMNS",
    "card_args",
    "card_from_row",
    "change_from_bytes",
    "change_to_bytes",
    "closed_early",
    "complete",
    "contract_body",
    "contract_from_bytes",
    "daily_args",
    "daily_from_row",
    "daily_where",
    "deadline_args",
    "deadline_change",
    "deadline_from_row",
    "early_closes",
    "feedback_args",
    "feedback_from_row",
    "price_flag_args",
    "price_flag_from_row",
    "reschedule_args",
    "stock_args",
    "stock_from_row",
    "trace_flag_args",
    "trace_flag_from_row",
    "trace_sale_args",
    "trace_sale_from_row",
    "untraced_args",
    "untraced_from_row",
]

# the log is kept for at least this many versions and this long; a process further
# behind rebuilds its view from a snapshot
KEEP_CHANGES = 10_000
KEEP_CHANGES_S = 3600.0
PRUNE_EVERY = 100  # versions between two prunings of the log

DEADLINE_COLUMNS = ("hospital_id, kind, ref, opened_at, due_at, closed_at, reminded_at,"
                    " detail")
CARD_COLUMNS = ("uuid, service, hospital_id, doctor, department, rule_id, national_code,"
                " suggestions, issued_at")
FEEDBACK_COLUMNS = "card, outcome, reason_code, reason_display, comment, accepted, at"

_encode = msgspec.json.Encoder()
_decode_change = msgspec.json.Decoder(LedgerChange)


def change_to_bytes(change: LedgerChange) -> bytes:
    """A change as logged."""
    return _encode.encode(change)


def change_from_bytes(body: bytes) -> LedgerChange:
    """A logged change."""
    return _decode_change.decode(body)


def complete(event: Event) -> bool:
    """Every line has its national code: the stored body will not change (a held event's
    body is rewritten when it is released)."""
    return all(line.national_code for line in event.lines)


def contract_body(body: dict[str, Any]) -> bytes:
    """A contract's stored body."""
    return orjson.dumps(body, default=str)


def contract_from_bytes(body: bytes) -> dict[str, Any]:
    """A stored contract body."""
    out: dict[str, Any] = orjson.loads(body)
    return out


def daily_args(r: DailyRow) -> tuple[str, str, str, str, int, int, int]:
    """``ledger_daily`` columns."""
    return (r.hospital_id, r.national_code, r.kind, r.day.isoformat(), int(r.online),
            to_micros(r.qty), to_micros(r.amount))


def daily_from_row(r: Any) -> DailyRow:
    """A ``ledger_daily`` row."""
    return DailyRow(r[0], r[1], r[2], date.fromisoformat(r[3]), bool(r[4]), from_micros(r[5]),
                    from_micros(r[6]))


def daily_where(hospital_id: str | None, since: date | None, until: date | None,
                mark: Any) -> tuple[str, list[Any]]:
    """A WHERE clause over ``ledger_daily``; ``mark(n)`` spells placeholder n."""
    where = ["1 = 1"]
    args: list[Any] = []
    for column, op, value in (("hospital_id", "=", hospital_id),
                              ("day", ">=", since and since.isoformat()),
                              ("day", "<=", until and until.isoformat())):
        if value is not None:
            args.append(value)
            where.append(f"{column} {op} {mark(len(args))}")
    return " AND ".join(where), args


def stock_args(hospital_id: str, code: str, qty: Decimal) -> tuple[str, str, int]:
    """``ledger_stock`` columns."""
    return hospital_id, code, to_micros(qty)


def stock_from_row(r: Any) -> tuple[str, str, Decimal]:
    """A ``ledger_stock`` row."""
    return r[0], r[1], from_micros(r[2])


def _dt(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _parse_dt(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def deadline_args(r: DeadlineRow) -> tuple[Any, ...]:
    """``ledger_deadlines`` columns (:data:`DEADLINE_COLUMNS`)."""
    return (r.hospital_id, r.kind, r.ref, r.opened_at.isoformat(), r.due_at.isoformat(),
            _dt(r.closed_at), _dt(r.reminded_at), orjson.dumps(r.detail, default=str))


def reschedule_args(r: DeadlineRow) -> tuple[Any, ...]:
    """Due time and detail, then the key: the arguments of a reschedule's UPDATE."""
    return (r.due_at.isoformat(), orjson.dumps(r.detail, default=str), r.hospital_id, r.kind,
            r.ref)


def deadline_from_row(r: Any) -> DeadlineRow:
    """A ``ledger_deadlines`` row (:data:`DEADLINE_COLUMNS`)."""
    return DeadlineRow(r[0], r[1], r[2], datetime.fromisoformat(r[3]),
                       datetime.fromisoformat(r[4]), _parse_dt(r[5]), _parse_dt(r[6]),
                       orjson.loads(r[7]))


def early_closes(updates: Sequence[DeadlineUpdate], done: Sequence[bool]
                 ) -> list[tuple[str, str, str, str]]:
    """``ledger_early_closes`` rows for the closes that found no open deadline: the
    store keeps those whose deadline does not exist yet (its event comes later, or was
    held), for the deadline to open closed."""
    return [(u.hospital_id, u.kind, u.ref, u.closed_at.isoformat())
            for u, ok in zip(updates, done, strict=True) if not ok and u.closed_at is not None]


def closed_early(rows: Sequence[DeadlineRow], found: Mapping[tuple[str, str, str], str]
                 ) -> list[DeadlineRow]:
    """``rows`` with the early closes ``found`` (key → closed_at) applied."""
    return [msgspec.structs.replace(r, closed_at=datetime.fromisoformat(at))
            if r.closed_at is None and (at := found.get((r.hospital_id, r.kind, r.ref)))
            else r for r in rows]


def deadline_change(updates: Sequence[DeadlineUpdate], done: Sequence[bool],
                    opened: Sequence[DeadlineRow] = ()) -> tuple[
        tuple[DeadlineRow, ...], tuple[tuple[str, str], ...], tuple[DeadlineUpdate, ...]]:
    """What deadline writes change in the view: the orders opened, closed and reminded
    (``done``: which updates found their deadline open)."""
    # an order opened already answered (its answer came first) never enters the view
    orders = tuple(r for r in opened if r.kind == "order" and r.closed_at is None)
    closed = tuple((u.hospital_id, u.ref) for u, ok in zip(updates, done, strict=True)
                   if ok and u.kind == "order" and u.closed_at is not None)
    reminded = tuple(u for u, ok in zip(updates, done, strict=True)
                     if ok and u.kind == "order" and u.closed_at is None)
    return orders, closed, reminded


def price_flag_args(f: PriceFlag) -> tuple[str, int, str, str, str, str, str]:
    """``ledger_price_flags`` columns."""
    return (f.event_id, f.line, f.hospital_id, f.national_code, f.day.isoformat(),
            str(f.price), str(f.winning_price))


def price_flag_from_row(r: Any) -> PriceFlag:
    """A ``ledger_price_flags`` row."""
    return PriceFlag(r[0], r[1], r[2], r[3], date.fromisoformat(r[4]), Decimal(r[5]),
                     Decimal(r[6]))


def untraced_args(u: UntracedSale) -> tuple[str, int, str, str, str]:
    """``ledger_untraced`` columns."""
    return (u.event_id, u.line, u.hospital_id, u.national_code, u.day.isoformat())


def untraced_from_row(r: Any) -> UntracedSale:
    """A ``ledger_untraced`` row."""
    return UntracedSale(r[0], r[1], r[2], r[3], date.fromisoformat(r[4]))


TRACE_COLUMNS = "hospital_id, code, event_id, national_code, day, qty, package"


def trace_sale_args(t: TraceSale) -> tuple[str, str, str, str, str, int, int]:
    """``ledger_trace`` columns (:data:`TRACE_COLUMNS`)."""
    return (t.hospital_id, t.code, t.event_id, t.national_code, t.day.isoformat(),
            to_micros(t.qty), to_micros(t.package))


def trace_sale_from_row(r: Any) -> TraceSale:
    """A ``ledger_trace`` row (:data:`TRACE_COLUMNS`)."""
    return TraceSale(r[0], r[1], r[2], r[3], date.fromisoformat(r[4]), from_micros(r[5]),
                     from_micros(r[6]))


def trace_flag_args(f: TraceFlag) -> tuple[str, str, str, str, str, str, str]:
    """``ledger_trace_flags`` columns."""
    return (f.hospital_id, f.code, f.first_event, f.first_day.isoformat(), f.event_id,
            f.day.isoformat(), f.national_code)


def trace_flag_from_row(r: Any) -> TraceFlag:
    """A ``ledger_trace_flags`` row."""
    return TraceFlag(r[0], r[1], r[2], date.fromisoformat(r[3]), r[4], date.fromisoformat(r[5]),
                     r[6])


def card_args(c: CardRow) -> tuple[Any, ...]:
    """``cds_cards`` columns (:data:`CARD_COLUMNS`)."""
    return (c.uuid, c.service, c.hospital_id, c.doctor, c.department, c.rule_id,
            c.national_code, orjson.dumps(list(c.suggestions)), c.issued_at.isoformat())


def card_from_row(r: Any) -> CardRow:
    """A ``cds_cards`` row (:data:`CARD_COLUMNS`)."""
    return CardRow(r[0], r[1], r[2], r[3], r[4], r[5], r[6], tuple(orjson.loads(r[7])),
                   datetime.fromisoformat(r[8]))


def feedback_args(f: FeedbackRow) -> tuple[Any, ...]:
    """``cds_feedback`` columns (:data:`FEEDBACK_COLUMNS`)."""
    return (f.card, f.outcome, f.reason_code, f.reason_display, f.comment,
            orjson.dumps(list(f.accepted)), f.at)


def feedback_from_row(r: Any) -> FeedbackRow:
    """A ``cds_feedback`` row (:data:`FEEDBACK_COLUMNS`)."""
    return FeedbackRow(r[0], r[1], r[2], r[3], r[4], tuple(orjson.loads(r[5])), r[6])
