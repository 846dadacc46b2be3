"""What the message browser reads from a store, whatever the database behind it.

Kept apart from the SQL (``browser_rows``) so the store protocol can name these types
without importing the rows that build on it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

__all__ = [
    "Attempt",
    "AttemptRow",
    "BrowserTables",
    "DeliveryRow",
    "EventRow",
    "MessageDetail",
    "MessageQuery",
    "MessageSummary",
    "QuarantineRow",
]


@dataclass(frozen=True, slots=True)
class Attempt:
    """One request to a platform and its answer, as the message browser shows it."""

    at: float  # unix seconds
    outcome: str  # "delivered" | "retry" | "rejected"
    http_status: int | None  # None: no HTTP answer (timeout, refused, payload not built)
    code: str  # the platform's business code (e.g. infcode), when its answer had one
    message: str
    latency_ms: float


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
class DeliveryRow:
    """An outbox row of a message: one destination's copy of one unit of an event."""

    id: int
    destination: str
    msgid: str
    unit: int
    event_id: str
    state: str  # pending | delivered | dead
    attempts: int
    created_at: float
    next_attempt_at: float
    delivered_at: float | None
    last_error: str
    platform_ref: str


@dataclass(frozen=True, slots=True)
class MessageDetail:
    """A message as stored, with its events, outbox rows and their delivery attempts."""

    summary: MessageSummary
    raw: bytes | None  # None once retention dropped the bytes
    events: tuple[EventRow, ...]
    outbox: tuple[DeliveryRow, ...]
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


