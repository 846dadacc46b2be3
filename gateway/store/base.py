"""What every store offers the gateway, whatever the database behind it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Protocol

import msgspec

from canonical.model import Event, Line
from gateway.store.browser_tables import Attempt

if TYPE_CHECKING:
    from gateway.store.audit_rows import AuditLogTables
    from gateway.store.browser_tables import BrowserTables
    from gateway.store.state import CatalogTables, CdsTables, CrosswalkTables, LedgerTables

__all__ = [
    "Attempt",
    "Balance",
    "Claim",
    "CommitResult",
    "DeliveryUpdate",
    "Incoming",
    "OutboxItem",
    "OutboxQuery",
    "OutboxRecord",
    "OutboxStats",
    "PlannedDelivery",
    "Purged",
    "ReplayResult",
    "Store",
    "Topic",
    "UnmappedItem",
]


class Topic(StrEnum):
    """What changed in the store; replicas hear of it (PostgreSQL NOTIFY) and catch up."""

    OUTBOX = "outbox"  # events committed or released, rows replayed: mirrors and ledger work
    CROSSWALK = "crosswalk"  # crosswalk entries changed (audit rows appended)
    CATALOG = "catalog"  # a national catalog version was stored
    LEDGER = "ledger"  # ledger changes appended (folds, contracts, deadlines)


class PlannedDelivery(msgspec.Struct, frozen=True):
    """One outbox row to create: which destination gets which unit of which event."""

    event_index: int
    destination: str
    unit: int = 0  # e.g. the line index for a profile that sends one line per request
    order_key: str = ""  # the profile's ordering key ("": the event's stream, in order)


class Incoming(msgspec.Struct, frozen=True):
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
    # per event (or empty: none): mapped, but a platform's mandatory field has no value.
    # Such an event counts in the ledger at once and waits, without outbox rows, until
    # the data is there (stored as held = 2; unmapped events are held = 1)
    incomplete: tuple[bool, ...] = ()
    # worked out before the commit for a big message, in a thread rather than in the
    # store's single writer (which every acknowledgement waits for): each event's stored
    # JSON and the raw bytes' SHA-256; empty: the store works them out
    bodies: tuple[bytes, ...] = ()
    digest: bytes = b""


class CommitResult(msgspec.Struct, frozen=True):
    """What the commit did."""

    duplicate: bool  # (sender, control id) was committed before: nothing stored now
    message_id: int
    # with ``duplicate``: the earlier message's bytes differ, so this is another message
    # under a control id already used, not a resend (refused, never silently dropped)
    reused: bool = False
    outbox_ids: tuple[int, ...] = ()
    event_seqs: tuple[int | None, ...] = ()  # per event; None: the event id was seen before


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
    first_failed_at: float | None = None  # the first charged failure (time budget)
    order_key: str = ""  # what it keeps its order with (see gateway.store.plan.order_scope)


@dataclass(frozen=True, slots=True)
class DeliveryUpdate:
    """The result of one delivery attempt."""

    outbox_id: int
    outcome: str  # "delivered" | "retry" | "dead"
    error: str = ""
    next_attempt_at: float = 0.0
    platform_ref: str = ""
    at: float = 0.0  # when it happened (delivered / dead; a charged retry's failure)
    # False when the platform looked down (circuit open): the try does not use up the
    # event's retry budget, which is meant for events the platform keeps refusing
    charge: bool = True
    tries: tuple[Attempt, ...] = ()  # the requests behind this outcome (delivery_attempts)


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


@dataclass(frozen=True, slots=True)
class Claim:
    """Outbox rows handed to one mirror worker, and when the next ones fall due."""

    items: list[OutboxItem]
    next_due: float | None = None  # unix time of the earliest waiting head row, if any


@dataclass(frozen=True, slots=True)
class OutboxQuery:
    """Which outbox rows an operator means (dead-letter listing, replay)."""

    ids: tuple[int, ...] = ()
    states: tuple[str, ...] = ("dead",)  # "pending" | "delivered" | "dead"
    destination: str | None = None
    hospital_id: str | None = None
    streams: tuple[str, ...] = ()  # event kinds, e.g. ("dispense",)
    since: float | None = None  # commit time, unix seconds, inclusive
    until: float | None = None  # exclusive
    limit: int = 1000
    id_from: int | None = None  # outbox ids, inclusive: a range an operator read off a listing
    id_to: int | None = None


@dataclass(frozen=True, slots=True)
class OutboxRecord:
    """One outbox row as an operator sees it."""

    id: int
    destination: str
    msgid: str
    hospital_id: str
    stream: str
    unit: int
    state: str
    attempts: int
    created_at: float
    next_attempt_at: float
    delivered_at: float | None
    last_error: str
    platform_ref: str
    event_id: str
    event: Event | None = None  # filled in by ``outbox_record`` (inspect), not by listings


@dataclass(frozen=True, slots=True)
class ReplayResult:
    """What a replay did: rows queued again, rows refused (already delivered)."""

    queued: tuple[int, ...] = ()
    refused: tuple[int, ...] = ()
    skipped: tuple[int, ...] = ()  # still pending: already on their way


@dataclass(frozen=True, slots=True)
class Purged:
    """What one retention pass removed."""

    raw_messages: int = 0  # messages whose raw bytes were dropped (the row stays: dedup)
    quarantined: int = 0  # quarantine rows deleted


@dataclass(frozen=True, slots=True)
class Balance:
    """Outbox units per destination by state, and events held for unmapped lines.

    received = delivered + queued + dead + held, where ``held`` counts events (their
    units are planned only when the crosswalk entry arrives).
    """

    delivered: dict[str, int] = field(default_factory=dict)
    queued: dict[str, int] = field(default_factory=dict)
    dead: dict[str, int] = field(default_factory=dict)
    held_events: int = 0

    def received(self, destination: str) -> int:
        """Everything the destination was given, in outbox units, plus held events."""
        return (self.delivered.get(destination, 0) + self.queued.get(destination, 0)
                + self.dead.get(destination, 0) + self.held_events)


class Store(Protocol):
    """Durable state of a deployment: messages, events, outbox, quarantine, and (in
    :attr:`crosswalk`, :attr:`catalogs`, :attr:`ledger`, :attr:`cds`) everything else a
    gateway keeps. Every replica sharing the store sees one state."""

    @property
    def shared(self) -> bool:
        """Several processes may share this store (PostgreSQL); False for SQLite."""
        ...

    @property
    def crosswalk(self) -> CrosswalkTables:
        """Crosswalk entries and audit."""
        ...

    @property
    def catalogs(self) -> CatalogTables:
        """National catalog versions."""
        ...

    @property
    def ledger(self) -> LedgerTables:
        """The 集采 ledger's tables."""
        ...

    @property
    def cds(self) -> CdsTables:
        """CDS cards, feedback and token ids."""
        ...

    @property
    def audit_log(self) -> AuditLogTables:
        """Who changed what: the append-only, hash-chained audit log."""
        ...

    @property
    def browser(self) -> BrowserTables:
        """The message browser's reads: messages, their answers and delivery attempts."""
        ...

    async def start(self) -> None:
        """Open the database and apply migrations."""

    async def close(self) -> None:
        """Flush pending commits and close."""

    async def commit(self, incoming: Incoming) -> CommitResult:
        """Commit raw message, events and outbox rows in one durable transaction."""
        ...

    def commit_then(self, incoming: Incoming,
                    done: Callable[[CommitResult | BaseException], None]) -> None:
        """:meth:`commit` with a callback: ``done`` hears the result or the StoreError."""
        ...

    @property
    def committed_listeners(self) -> list[Callable[[list[tuple[int, Event]]], None]]:
        """Called after each group commit of this process with its new (seq, event) pairs."""
        ...

    async def listen(self, on_change: Callable[[Topic], None]) -> None:
        """Call ``on_change(topic)`` after a change to the shared state, including changes
        other processes make (when the backend can tell; pollers catch up otherwise)."""
        ...

    async def quarantine(self, raw: bytes, *, peer: str, adapter: str, reason: str,
                         received_at: datetime) -> int:
        """Keep bytes that could not be taken, durably, with the reason (at most the
        store's ``quarantine_max_bytes`` of them, and their original size)."""
        ...

    async def purge(self, *, raw_before: float | None, quarantine_before: float | None,
                    now: float, batch: int = 500) -> Purged:
        """Drop the raw bytes of messages received before ``raw_before`` whose events are
        all delivered (never those of held, pending or dead-lettered events: a replay may
        need them), and delete quarantine rows received before ``quarantine_before``;
        None keeps them. Works in transactions of ``batch`` rows."""
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

    async def claim(self, destination: str, limit: int, now: float) -> Claim:
        """Rows due for delivery, oldest first, shared out between the hospitals.

        A row is left out while an earlier row of its ordering key (destination,
        hospital, ``order_key``) is a dead letter or waits for its back-off, so one
        failing event holds up its own key only. On a shared database the rows' lanes
        are leased to this process until :meth:`release` (or the lease's expiry, when
        the process died).
        """
        ...

    async def renew(self, destination: str, now: float) -> None:
        """Extend the leases held on ``destination`` while deliveries are in flight (a
        no-op where nothing is leased).

        Raises:
            StoreError: the leases could not be renewed and may lapse.
        """

    @property
    def renew_every_s(self) -> float | None:
        """How often :meth:`renew` is due while delivering (None: nothing is leased)."""
        ...

    async def release(self, destination: str) -> None:
        """Give back the lanes claimed for ``destination`` (a no-op where nothing is
        leased), so that any replica may take them next."""

    async def list_outbox(self, query: OutboxQuery) -> list[OutboxRecord]:
        """Outbox rows matching ``query`` (dead letters by default), oldest first."""
        ...

    async def outbox_record(self, outbox_id: int) -> OutboxRecord | None:
        """One row with its event, for inspection."""
        ...

    async def replay(self, query: OutboxQuery, *, to_destination: str | None = None,
                     force: bool = False, now: float = 0.0) -> ReplayResult:
        """Queue matching dead letters again (delivered ones only with ``force``).

        With ``to_destination`` the rows are queued for that destination under their
        original msgids instead of their own.
        """
        ...

    async def balance(self) -> Balance:
        """Units per destination and state, read in one snapshot."""
        ...

    async def release_held(
        self,
        remap: Callable[[Event], tuple[Event, int, tuple[PlannedDelivery, ...]]],
        hospital_id: str | None = None,
    ) -> list[Event]:
        """Map held events again, oldest first, and plan deliveries for the complete ones
        (``remap`` says how each is held now: 0 free, 1 unmapped, 2 mapped but lacking a
        platform's data — an unmapped event that is now so enters the ledger); returns
        the events released to be sent."""
        ...

    async def unmapped(self, hospital_id: str | None = None) -> list[UnmappedItem]:
        """The unmapped-item queue, most frequent first."""
        ...

    async def held_lines(self, hospital_id: str | None = None,
                         scan: int = 5000) -> dict[tuple[str, str], Line]:
        """The latest held line of each unmapped item (its unit, 批准文号, 本位码), read
        from the newest ``scan`` held events: what describes a queued item."""
        ...

    async def held_events(self, hospital_id: str | None = None,
                          limit: int = 100) -> list[Event]:
        """Held events, oldest first (what waits for a mapping or for mandatory data)."""
        ...
