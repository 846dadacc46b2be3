"""Which deadlines an event answers: pure functions of the event.

- A PAYMENT pays the receipts named in ``extra["receipt_no"]``: one or more receipt
  numbers separated by ``|`` (how the vendor engine joins a list and how an HL7 v2
  repetition is kept); several ``receipt_no`` pairs add up. Without any, the payment's
  own ``document_no`` is taken as the receipt it pays.
- A supplier's answer to an order (ORS^O06: ``extra["order_response"]``, accepted or
  refused) answers the order ``document_no`` names; it is an answer, not a new order.
- ``extra["order_no"]`` answers that order; so does ``extra["based_on"]``, the order a
  FHIR SupplyDelivery was delivered against.
"""

from __future__ import annotations

from canonical.model import Event, EventKind

__all__ = ["RECEIPT_SEPARATOR", "is_order_answer", "orders_answered", "receipts_paid"]

RECEIPT_SEPARATOR = "|"


def _values(event: Event, key: str) -> list[str]:
    return [v for k, v in event.extra if k == key]


def _unique(values: list[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(v for v in values if v))


def receipts_paid(event: Event) -> tuple[str, ...]:
    """The receipt numbers a PAYMENT settles, in the order named, each once."""
    named = [part.strip() for value in _values(event, "receipt_no")
             for part in value.split(RECEIPT_SEPARATOR)]
    found = _unique(named)
    if found:
        return found
    own = event.document_no or event.event_id
    return (own,)


def is_order_answer(event: Event) -> bool:
    """The supplier's answer to an order (it must not start an answer clock itself)."""
    return event.kind is EventKind.PURCHASE_ORDER and any(
        k == "order_response" for k, _ in event.extra)


def orders_answered(event: Event) -> tuple[str, ...]:
    """The orders whose 48 h answer clock ``event`` stops."""
    named = _values(event, "order_no") + _values(event, "based_on")
    if is_order_answer(event):
        named.insert(0, event.document_no or event.event_id)
    return _unique(named)
