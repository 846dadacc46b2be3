"""The message browser's rows and SQL, shared by the SQLite and PostgreSQL stores.

Everything here reads what ingest and the mirror already write (messages, events,
outbox, quarantine) plus ``delivery_attempts``, the platform's answer to each try.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from gateway.store.base import DeliveryUpdate
from gateway.store.browser_tables import (
    Attempt,
    AttemptRow,
    DeliveryRow,
    MessageQuery,
    MessageSummary,
    QuarantineRow,
)
from gateway.store.params import Params
from gateway.store.plan import OutboxState

__all__ = [
    "ATTEMPTS_KEPT",
    "ATTEMPT_COLUMNS",
    "MESSAGE_COLUMNS",
    "MESSAGE_STATES",
    "attempt_from_row",
    "attempt_rows",
    "delivery_from_row",
    "message_state",
    "message_where",
    "outcome_sql",
    "quarantine_from_row",
    "quarantine_where",
    "summaries",
]

# a row failing for days must not grow without end: its last tries say what is wrong
ATTEMPTS_KEPT = 50
ATTEMPT_COLUMNS = "outbox_id, at, outcome, http_status, code, message, latency_ms"
MESSAGE_STATES = ("acknowledged", "held", "quarantined", "delivered", "dead_letter", "pending")

_PENDING = int(OutboxState.PENDING)
_DELIVERED = int(OutboxState.DELIVERED)
_DEAD = int(OutboxState.DEAD)


def attempt_rows(updates: Sequence[DeliveryUpdate]) -> list[tuple[Any, ...]]:
    """The ``delivery_attempts`` rows of ``updates``, in :data:`ATTEMPT_COLUMNS` order."""
    return [_attempt_row(u.outbox_id, a) for u in updates for a in u.tries]


def _attempt_row(outbox_id: int, a: Attempt) -> tuple[Any, ...]:
    return (outbox_id, a.at, a.outcome, a.http_status, a.code[:200], a.message[:2000],
            a.latency_ms)


def message_state(held: bool, pending: int, delivered: int, dead: int) -> str:
    """One word for a message: the worst of its events' states wins."""
    if held:
        return "held"
    if dead:
        return "dead_letter"
    if pending:
        return "pending"
    if delivered:
        return "delivered"
    return "acknowledged"  # stored and answered AA, nothing to mirror


def _state_condition(state: str) -> str:
    """The SQL over ``messages m`` for a state; ``acknowledged`` is every stored message."""
    events = "SELECT 1 FROM events e WHERE e.message_id = m.id"
    rows = "SELECT 1 FROM events e JOIN outbox o ON o.event_seq = e.seq WHERE e.message_id = m.id"
    if state == "held":
        return f"EXISTS ({events} AND e.held <> 0)"
    if state == "dead_letter":
        return f"EXISTS ({rows} AND o.state = {_DEAD})"
    if state == "pending":
        return f"EXISTS ({rows} AND o.state = {_PENDING})"
    if state == "delivered":
        return (f"EXISTS ({rows} AND o.state = {_DELIVERED}) AND NOT EXISTS ({rows}"
                f" AND o.state <> {_DELIVERED}) AND NOT EXISTS ({events} AND e.held <> 0)")
    return "TRUE"


def message_where(query: MessageQuery, mark: Callable[[int], str],
                  contains: Callable[[str], str]) -> tuple[str, list[Any]]:
    """A WHERE clause over ``messages m``; ``mark(n)`` spells placeholder n,
    ``contains(p)`` the test that an event's ``e.body`` holds the bytes of placeholder p."""
    p = Params(mark)

    where: list[str] = []
    for column, value in (("m.sender", query.sender), ("m.adapter", query.adapter),
                          ("m.peer", query.peer), ("m.control_id", query.control_id)):
        if value:
            where.append(f"{column} = {p(value)}")
    events = "SELECT 1 FROM events e WHERE e.message_id = m.id"
    if query.event_id:
        where.append(f"EXISTS ({events} AND e.event_id = {p(query.event_id)})")
    if query.hospitals:
        where.append(f"EXISTS ({events} AND e.hospital_id IN"
                     f" ({', '.join(p(h) for h in query.hospitals)}))")
    if query.item:
        # an event's stored JSON is compact (msgspec): the exact key and value, quoted
        item = query.item.replace("\\", "\\\\").replace('"', '\\"')
        codes = [f'"item_code":"{item}"'.encode(), f'"national_code":"{item}"'.encode()]
        where.append(f"EXISTS ({events} AND ({' OR '.join(contains(p(c)) for c in codes)}))")
    if query.state and query.state != "acknowledged":
        where.append(_state_condition(query.state))
    if query.since is not None:
        where.append(f"m.received_at >= {p(query.since)}")
    if query.until is not None:
        where.append(f"m.received_at < {p(query.until)}")
    if query.after_id is not None:
        where.append(f"m.id < {p(query.after_id)}")
    return " AND ".join(where) or "TRUE", p.args


def quarantine_where(query: MessageQuery, mark: Callable[[int], str],
                     contains: Callable[[str], str]) -> tuple[str, list[Any]]:
    """A WHERE clause over ``quarantine q``: peer, adapter, time, and a control id found
    in the bytes (``contains(p)`` tests that ``q.raw`` holds placeholder p's bytes)."""
    p = Params(mark)

    where: list[str] = []
    if query.adapter:
        where.append(f"q.adapter = {p(query.adapter)}")
    if query.peer:
        where.append(f"q.peer = {p(query.peer)}")
    if query.control_id:
        where.append(contains(p(query.control_id.encode())))
    if query.since is not None:
        where.append(f"q.received_at >= {p(query.since)}")
    if query.until is not None:
        where.append(f"q.received_at < {p(query.until)}")
    if query.after_id is not None:
        where.append(f"q.id < {p(query.after_id)}")
    return " AND ".join(where) or "TRUE", p.args


MESSAGE_COLUMNS = ("m.id, m.sender, m.control_id, m.adapter, m.message_type, m.peer,"
                   " m.received_at")


def outcome_sql(ids: str) -> str:
    """Per message and hospital of the messages ``ids`` (a list of placeholders): held
    events, events, and outbox rows pending / delivered / dead."""
    return ("SELECT e.message_id, e.hospital_id, max(e.held), count(DISTINCT e.seq),"
            f" sum(CASE WHEN o.state = {_PENDING} THEN 1 ELSE 0 END),"
            f" sum(CASE WHEN o.state = {_DELIVERED} THEN 1 ELSE 0 END),"
            f" sum(CASE WHEN o.state = {_DEAD} THEN 1 ELSE 0 END)"
            " FROM events e LEFT JOIN outbox o ON o.event_seq = e.seq"
            f" WHERE e.message_id IN ({ids}) GROUP BY e.message_id, e.hospital_id")


def summaries(rows: Iterable[Any], outcomes: Iterable[Any]) -> list[MessageSummary]:
    """Listing rows (:data:`MESSAGE_COLUMNS`) with their :func:`outcome_sql` rows."""
    per: dict[int, list[Any]] = {}
    for o in outcomes:
        per.setdefault(int(o[0]), []).append(o)
    out = []
    for r in rows:
        mine = per.get(int(r[0]), [])
        state = message_state(any(int(o[2] or 0) for o in mine),
                              sum(int(o[4] or 0) for o in mine),
                              sum(int(o[5] or 0) for o in mine),
                              sum(int(o[6] or 0) for o in mine))
        out.append(MessageSummary(int(r[0]), r[1], r[2], r[3], r[4], r[5], float(r[6]),
                                  tuple(sorted(str(o[1]) for o in mine)),
                                  sum(int(o[3]) for o in mine), state))
    return out


def delivery_from_row(r: Any) -> DeliveryRow:
    """An outbox row selected with ``query.RECORD_COLUMNS``."""
    return DeliveryRow(int(r[0]), r[1], r[2], int(r[5]), r[13],
                       OutboxState(r[6]).name.lower(), int(r[7]), float(r[8]), float(r[9]),
                       None if r[10] is None else float(r[10]), r[11], r[12])


def quarantine_from_row(r: Any) -> QuarantineRow:
    """A ``quarantine`` row (its raw bytes last, when selected)."""
    return QuarantineRow(int(r[0]), float(r[1]), r[2], r[3], r[4], int(r[5] or 0),
                         bytes(r[6]) if len(r) > 6 else b"")


def attempt_from_row(r: Any) -> AttemptRow:
    """A ``delivery_attempts`` row selected with :data:`ATTEMPT_COLUMNS`."""
    return AttemptRow(int(r[0]), float(r[1]), r[2], None if r[3] is None else int(r[3]),
                      r[4], r[5], float(r[6]))
