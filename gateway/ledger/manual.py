"""Deadlines changed by hand: a payment recorded, a distributor reminded, a deadline closed.

The HTTP API (``/ledger/payments``, ``/ledger/deadlines/reminders``,
``/ledger/deadlines/close``) and the command line (``jicai-gateway deadlines pay``,
``deadlines remind``, ``deadlines close``) read their input with the same parsers
(:func:`payment_input`, :func:`reminder_input`, :func:`close_input`: a bad field raises
:class:`InputError` naming it) and change the store with the same functions, so both
answer alike. A deadline is found by hospital, kind and reference; one not known is
``unknown`` (HTTP 404), one closed before is ``closed`` (HTTP 409).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

from gateway.ledger.calendar import CHINA_TZ
from gateway.store.ledger_records import DeadlineRow, DeadlineUpdate, LedgerTables

__all__ = [
    "KINDS",
    "CloseInput",
    "InputError",
    "Outcome",
    "PaymentInput",
    "ReminderInput",
    "close_input",
    "deadline_json",
    "find_deadline",
    "payment_input",
    "record_payment",
    "reminder_input",
    "update_one",
]

KINDS = ("filing", "order", "payment")
Outcome = Literal["done", "unknown", "closed"]


class InputError(ValueError):
    """A field of the input is missing or malformed; ``field`` names it."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


@dataclass(frozen=True, slots=True)
class PaymentInput:
    """A payment to a supplier: the receipts (入库单号) it settles."""

    hospital_id: str
    payment_no: str
    paid_at: datetime
    receipts: tuple[str, ...]
    amount: Decimal | None = None
    supplier: str = ""


@dataclass(frozen=True, slots=True)
class ReminderInput:
    """The distributor of an order was reminded."""

    hospital_id: str
    order_no: str
    at: datetime


@dataclass(frozen=True, slots=True)
class CloseInput:
    """A deadline closed by hand, and why (e.g. filed on paper)."""

    hospital_id: str
    kind: str
    ref: str
    reason: str
    at: datetime


def _text(body: Mapping[str, Any], name: str, *, required: bool = True) -> str:
    value = body.get(name)
    if value is None or value == "":
        if required:
            raise InputError(name, "is required")
        return ""
    if not isinstance(value, str) or not value.strip():
        raise InputError(name, f"must be a non-empty string, not {value!r}")
    return value.strip()


def _time(body: Mapping[str, Any], name: str, now: datetime) -> datetime:
    value = body.get(name)
    if value is None or value == "":
        return now
    if not isinstance(value, str):
        raise InputError(name, f"must be an ISO 8601 date-time string, not {value!r}")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise InputError(name, f"{value!r} is not an ISO 8601 date-time "
                               "(e.g. 2026-12-15T14:30:00+08:00)") from None
    # the hospital writes its own local time without a zone
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=CHINA_TZ)


def _mapping(body: Any) -> Mapping[str, Any]:
    if not isinstance(body, Mapping):
        raise InputError("body", "must be a JSON object")
    return body


def payment_input(body: Any, now: datetime) -> PaymentInput:
    """A payment from a JSON object: ``hospital_id``, ``payment_no``, ``receipts`` (a
    list of receipt numbers, or one), optional ``paid_at`` (default ``now``),
    ``amount``, ``supplier``.

    Raises:
        InputError: a field is missing or malformed.
    """
    b = _mapping(body)
    raw = b.get("receipts")
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, list) or not raw:
        raise InputError("receipts", "must name the receipts (入库单号) paid, as a list")
    receipts: list[str] = []
    for i, r in enumerate(raw):
        if not isinstance(r, str) or not r.strip():
            raise InputError(f"receipts[{i}]", f"must be a receipt number, not {r!r}")
        receipts.append(r.strip())
    amount = None
    if b.get("amount") not in (None, ""):
        try:
            amount = Decimal(str(b["amount"]))
        except InvalidOperation:
            raise InputError("amount", f"{b['amount']!r} is not a number") from None
        if not amount.is_finite() or amount < 0:
            raise InputError("amount", f"{b['amount']!r} is not an amount")
    return PaymentInput(_text(b, "hospital_id"), _text(b, "payment_no"),
                        _time(b, "paid_at", now), tuple(dict.fromkeys(receipts)), amount,
                        _text(b, "supplier", required=False))


def reminder_input(body: Any, now: datetime) -> ReminderInput:
    """A reminder from a JSON object: ``hospital_id``, ``order_no``, optional ``at``.

    Raises:
        InputError: a field is missing or malformed.
    """
    b = _mapping(body)
    return ReminderInput(_text(b, "hospital_id"), _text(b, "order_no"), _time(b, "at", now))


def close_input(body: Any, now: datetime) -> CloseInput:
    """A manual close from a JSON object: ``hospital_id``, ``kind`` (filing, order,
    payment), ``ref``, ``reason``, optional ``at``.

    Raises:
        InputError: a field is missing or malformed.
    """
    b = _mapping(body)
    kind = _text(b, "kind")
    if kind not in KINDS:
        raise InputError("kind", f"{kind!r} is not one of {', '.join(KINDS)}")
    return CloseInput(_text(b, "hospital_id"), kind, _text(b, "ref"), _text(b, "reason"),
                      _time(b, "at", now))


def deadline_json(row: DeadlineRow | None) -> dict[str, Any] | None:
    """A stored deadline as the audit log keeps it."""
    if row is None:
        return None
    return {"hospital_id": row.hospital_id, "kind": row.kind, "ref": row.ref,
            "due_at": row.due_at.isoformat(),
            "closed_at": None if row.closed_at is None else row.closed_at.isoformat(),
            "reminded_at": None if row.reminded_at is None else row.reminded_at.isoformat()}


async def find_deadline(tables: LedgerTables, hospital_id: str, kind: str, ref: str
                        ) -> DeadlineRow | None:
    """The stored deadline with this key, if any."""
    for row in await tables.deadlines(hospital_id):
        if row.kind == kind and row.ref == ref:
            return row
    return None


async def update_one(tables: LedgerTables, update: DeadlineUpdate
                     ) -> tuple[Outcome, DeadlineRow | None]:
    """Close or remind one deadline: what happened, and the deadline as it was before."""
    before = await find_deadline(tables, update.hospital_id, update.kind, update.ref)
    if before is None:
        return "unknown", None
    if before.closed_at is not None:
        return "closed", before
    [ok] = await tables.update_deadlines([update])
    return ("done" if ok else "closed"), before


async def record_payment(tables: LedgerTables, payment: PaymentInput
                         ) -> Sequence[tuple[str, Outcome, DeadlineRow | None]]:
    """Close the payment deadline of each receipt paid: (receipt, outcome, before)."""
    out = []
    for receipt in payment.receipts:
        outcome, before = await update_one(tables, DeadlineUpdate(
            payment.hospital_id, "payment", receipt, closed_at=payment.paid_at))
        out.append((receipt, outcome, before))
    return out
