"""What every store offers the gateway, whatever the database behind it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from ..model import Event

__all__ = [
    "CommitResult",
    "DeliveryUpdate",
    "Incoming",
    "OutboxItem",
    "OutboxStats",
    "PlannedDelivery",
    "Store",
    "UnmappedItem",
]


@dataclass(frozen=True, slots=True)
class PlannedDelivery:
    """One outbox row to create: which destination gets which unit of which event."""

    event_index: int
    destination: str
    unit: int = 0  # e.g. the line index for a profile that sends one line per request


@dataclass(frozen=True, slots=True)
class Incoming:
    """A parsed message ready to commit in one transaction."""

    adapter: str
    sender: str
    control_id: str
    message_type: str
    raw: bytes
    received_at: datetime
    events: tuple[Event, ...]
    held: tuple[bool, ...]  # per event: has unmapped lines
    deliveries: tuple[PlannedDelivery, ...] = ()
    peer: str = ""


@dataclass(frozen=True, slots=True)
class CommitResult:
    """What the commit did."""

    duplicate: bool
    message_id: int
    outbox_ids: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class OutboxItem:
    """A claimed outbox row with its event."""

    id: int
    destination: str
    msgid: str
    hospital_id: str
    stream: str
    unit: int
    attempts: int
    created_at: float  # unix seconds (commit time)
    next_attempt_at: float
    event: Event


@dataclass(frozen=True, slots=True)
class DeliveryUpdate:
    """The result of one delivery attempt."""

    outbox_id: int
    outcome: str  # "delivered" | "retry" | "dead"
    error: str = ""
    next_attempt_at: float = 0.0
    platform_ref: str = ""
    at: float = 0.0


@dataclass(frozen=True, slots=True)
class OutboxStats:
    """Queue depth per destination and the age of the oldest waiting row."""

    depth: dict[str, int] = field(default_factory=dict)
    oldest_age_s: dict[str, float] = field(default_factory=dict)
    dead: dict[str, int] = field(default_factory=dict)
    held_events: int = 0


@dataclass(frozen=True, slots=True)
class UnmappedItem:
    """A hospital item waiting for its crosswalk entry."""

    hospital_id: str
    item_code: str
    item_name: str
    specification: str
    manufacturer: str
    occurrences: int
    first_seen: float
    last_seen: float


class Store(Protocol):
    """Durable storage of messages, events, outbox and quarantine."""

    async def start(self) -> None:
        """Open the database and apply migrations."""

    async def close(self) -> None:
        """Flush pending commits and close."""

    async def commit(self, incoming: Incoming) -> CommitResult:
        """Commit raw message, events and outbox rows in one durable transaction."""
        ...

    async def quarantine(self, raw: bytes, *, peer: str, adapter: str, reason: str,
                         received_at: datetime) -> int:
        """Keep bytes that could not be taken, durably, with the reason."""
        ...

    async def pending(self, destination: str, limit: int) -> list[OutboxItem]:
        """The oldest undelivered rows of a destination, in commit order."""
        ...

    async def record_deliveries(self, updates: list[DeliveryUpdate]) -> None:
        """Store delivery outcomes."""

    async def stats(self, now: float) -> OutboxStats:
        """Outbox depth and age per destination."""
        ...

    async def writable(self) -> bool:
        """Whether a write can commit now (for /readyz)."""
        ...

    async def events_after(self, seq: int, limit: int) -> list[tuple[int, Event]]:
        """Committed events after sequence number ``seq``, in commit order."""
        ...

    async def unmapped(self, hospital_id: str | None = None) -> list[UnmappedItem]:
        """The unmapped-item queue, most frequent first."""
        ...
