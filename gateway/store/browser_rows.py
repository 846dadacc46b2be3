"""The message browser's rows and SQL, shared by the SQLite and PostgreSQL stores.

Everything here reads what ingest and the mirror already write (messages, events,
outbox, quarantine) plus ``delivery_attempts``, the platform's answer to each try.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from gateway.store.base import Attempt, DeliveryUpdate, OutboxRecord
from gateway.store.plan import OutboxState

__all__ = [
    "ATTEMPTS_KEPT",
    "ATTEMPT_COLUMNS",
    "MESSAGE_COLUMNS",
    "MESSAGE_STATES",
    "AttemptRow",
    "BrowserTables",
    "EventRow",
    "MessageDetail",
    "MessageQuery",
    "MessageSummary",
    "QuarantineRow",
    "attempt_from_row",
    "attempt_rows",
    "message_state",
    "message_where",
    "outcome_sql",
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


@dataclass(frozen=True, slots=True)
class MessageQuery:
    """Which messages an operator means; ``since``/``until`` are received times (unix s)."""

    sender: str | None = None
    adapter: str | None = None
    peer: str | None = None
    control_id: str | None = None
    event_id: str | None = None
    hospitals: tuple[str, ...] = ()  # any of them (an identity's scope, or the one named)
    item: str | None = None  # hospital item code or national code
    state: str | None = None
    since: float | None = None
    until: float | None = None
    after_id: int | None = None  # the cursor: ids below it (the listing is newest first)
    limit: int = 50


@dataclass(frozen=True, slots=True)
class MessageSummary:
    """One message in a listing, with what became of its events."""

    id: int
    sender: str
    control_id: str
    adapter: str
    message_type: str
    peer: str
    received_at: float
    hospitals: tuple[str, ...]
    events: int
    state: str


@dataclass(frozen=True, slots=True)
class AttemptRow:
    """One try at delivering an outbox row, with the platform's answer."""

    outbox_id: int
    at: float
    outcome: str
    http_status: int | None
    code: str
    message: str
    latency_ms: float


@dataclass(frozen=True, slots=True)
class EventRow:
    """A stored event: its JSON body as kept, whether it waits for 对码."""

    seq: int
    event_id: str
    hospital_id: str
    kind: str
    held: bool
    body: bytes


@dataclass(frozen=True, slots=True)
class MessageDetail:
    """A message as stored, with its events, outbox rows and their delivery attempts."""

    summary: MessageSummary
    raw: bytes | None  # None once retention dropped the bytes
    events: tuple[EventRow, ...]
    outbox: tuple[OutboxRecord, ...]
    attempts: tuple[AttemptRow, ...] = ()


@dataclass(frozen=True, slots=True)
class QuarantineRow:
    """Bytes the gateway could not take, with the reason."""

    id: int
    received_at: float
    peer: str
    adapter: str
    reason: str
    original_size: int
    raw: bytes = b""


class BrowserTables(Protocol):
    """The store's reads for the message browser."""

    async def search(self, query: MessageQuery) -> list[MessageSummary]:
        """Messages matching ``query``, newest first, at most ``query.limit``."""
        ...

    async def message(self, message_id: int) -> MessageDetail | None:
        """One message with everything that became of it."""
        ...

    async def search_quarantine(self, query: MessageQuery) -> list[QuarantineRow]:
        """Quarantine rows (without their bytes) matching ``query``, newest first."""
        ...

    async def quarantined(self, quarantine_id: int) -> QuarantineRow | None:
        """One quarantine row with its bytes."""
        ...


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
        return f"EXISTS ({events} AND e.held = 1)"
    if state == "dead_letter":
        return f"EXISTS ({rows} AND o.state = {_DEAD})"
    if state == "pending":
        return f"EXISTS ({rows} AND o.state = {_PENDING})"
    if state == "delivered":
        return (f"EXISTS ({rows} AND o.state = {_DELIVERED}) AND NOT EXISTS ({rows}"
                f" AND o.state <> {_DELIVERED}) AND NOT EXISTS ({events} AND e.held = 1)")
    return "TRUE"


def message_where(query: MessageQuery, mark: Callable[[int], str],
                  contains: Callable[[str], str]) -> tuple[str, list[Any]]:
    """A WHERE clause over ``messages m``; ``mark(n)`` spells placeholder n,
    ``contains(p)`` the test that an event's ``e.body`` holds the bytes of placeholder p."""
    args: list[Any] = []

    def p(value: Any) -> str:
        args.append(value)
        return mark(len(args))

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
    return " AND ".join(where) or "TRUE", args


def quarantine_where(query: MessageQuery, mark: Callable[[int], str]) -> tuple[str, list[Any]]:
    """A WHERE clause over ``quarantine q`` (it knows peer, adapter and time only)."""
    args: list[Any] = []

    def p(value: Any) -> str:
        args.append(value)
        return mark(len(args))

    where: list[str] = []
    if query.adapter:
        where.append(f"q.adapter = {p(query.adapter)}")
    if query.peer:
        where.append(f"q.peer = {p(query.peer)}")
    if query.since is not None:
        where.append(f"q.received_at >= {p(query.since)}")
    if query.until is not None:
        where.append(f"q.received_at < {p(query.until)}")
    if query.after_id is not None:
        where.append(f"q.id < {p(query.after_id)}")
    return " AND ".join(where) or "TRUE", args


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


def attempt_from_row(r: Any) -> AttemptRow:
    """A ``delivery_attempts`` row selected with :data:`ATTEMPT_COLUMNS`."""
    return AttemptRow(int(r[0]), float(r[1]), r[2], None if r[3] is None else int(r[3]),
                      r[4], r[5], float(r[6]))
