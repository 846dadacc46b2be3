"""What the store keeps for the 集采 ledger and the CDS service, and the protocols it offers.

The ledger folds committed events exactly once across every process sharing the store:
a fold runs in a :class:`LedgerSession`, which holds the ledger's lock (on PostgreSQL the
``state_heads`` row of the ledger, so one process folds at a time); the events it folds
leave the ``ledger_pending`` queue (which every commit of a not held event, and every
release of a held one, adds to) in the same transaction that writes their effects, and what the
fold changed in the in-memory view (a :class:`LedgerChange`) is appended to a log under
the next ledger version. Every process, the folding one included, applies the log in
version order, so all views agree; a process that fell behind the oldest entry kept
rebuilds its view from a :class:`LedgerSnapshot`. Every other change of ledger state
(contracts, deadlines closed or reminded by hand, an old ledger file imported) takes the
same lock and appends to the same log, so each version has exactly one entry.

Quantities and amounts are stored as integers in millionths so that sums stay exact.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Protocol

import msgspec

from canonical.model import Event

__all__ = [
    "CardRow",
    "CdsTables",
    "DailyKey",
    "DailyRow",
    "DeadlineRow",
    "DeadlineUpdate",
    "FeedbackRow",
    "LedgerChange",
    "LedgerImport",
    "LedgerSession",
    "LedgerSnapshot",
    "LedgerTables",
    "LedgerWrites",
    "PriceFlag",
    "TraceFlag",
    "TraceSale",
    "UntracedSale",
    "from_micros",
    "to_micros",
]

_SCALE = Decimal(1_000_000)


def to_micros(value: Decimal) -> int:
    """Decimal → integer millionths (rounded half-even)."""
    return int((value * _SCALE).to_integral_value())


def from_micros(value: int) -> Decimal:
    """Integer millionths → Decimal."""
    return Decimal(value) / _SCALE


# (hospital, national code, event kind, day, online)
DailyKey = tuple[str, str, str, date, bool]


class DailyRow(msgspec.Struct, frozen=True):
    """Per day, product, kind and online flag: the totals everything else derives from."""

    hospital_id: str
    national_code: str
    kind: str
    day: date
    online: bool
    qty: Decimal
    amount: Decimal


class DeadlineRow(msgspec.Struct, frozen=True):
    """An open or closed deadline (filing, order answer, payment)."""

    hospital_id: str
    kind: str
    ref: str
    opened_at: datetime
    due_at: datetime
    closed_at: datetime | None
    reminded_at: datetime | None
    detail: dict[str, Any]


class DeadlineUpdate(msgspec.Struct, frozen=True):
    """Close a deadline, or note that its distributor was reminded (one of the two)."""

    hospital_id: str
    kind: str
    ref: str
    closed_at: datetime | None = None
    reminded_at: datetime | None = None


class PriceFlag(msgspec.Struct, frozen=True):
    """A purchase of a winning product above its winning price (``line``: the line's seq)."""

    event_id: str
    line: int
    hospital_id: str
    national_code: str
    day: date
    price: Decimal
    winning_price: Decimal


class UntracedSale(msgspec.Struct, frozen=True):
    """A drug sold without traceability codes once they were mandatory (``line``: the
    line's seq)."""

    event_id: str
    line: int
    hospital_id: str
    national_code: str
    day: date


class TraceSale(msgspec.Struct, frozen=True):
    """A traceability code sold, or returned (``qty`` below zero), by one event (R14).

    ``qty`` is the minimum units the code stood for in the event, ``package`` the minimum
    units of its package: a split package (拆零) is sold in several parts, and only what
    is sold beyond the package is flagged.
    """

    hospital_id: str
    code: str
    event_id: str
    national_code: str
    day: date
    qty: Decimal = Decimal(1)
    package: Decimal = Decimal(1)


class TraceFlag(msgspec.Struct, frozen=True):
    """A traceability code sold again: the first sale and the later one (R14)."""

    hospital_id: str
    code: str
    first_event: str
    first_day: date
    event_id: str
    day: date
    national_code: str


class LedgerChange(msgspec.Struct, frozen=True):
    """What one ledger version changed in the in-memory view, as appended to the log.

    ``daily`` are deltas of the daily totals; ``stock`` the new stock values;
    ``orders_opened`` / ``orders_closed`` / ``orders_reminded`` the distributor orders whose
    answer clock started, stopped or was reminded (as the store found them: an order
    already open is not opened again, one already closed is not closed again, one whose
    answer was folded first opens answered and is not among them);
    ``contracts`` says the contracts changed, or the state was replaced wholesale (an
    old ledger file imported): the view is rebuilt from a snapshot.
    """

    daily: tuple[DailyRow, ...] = ()
    stock: tuple[tuple[str, str, Decimal], ...] = ()
    orders_opened: tuple[DeadlineRow, ...] = ()
    orders_closed: tuple[tuple[str, str], ...] = ()
    orders_reminded: tuple[DeadlineUpdate, ...] = ()
    contracts: bool = False


class LedgerWrites(msgspec.Struct, frozen=True):
    """Everything one fold writes: planned by the ledger from its view, executed by the
    store in one transaction together with marking ``seqs`` folded.

    Deadlines are opened before the updates run, so an answer folded in the same batch
    as its order closes it whatever their order in the batch; a close folded in an
    earlier batch than its deadline is kept by the store and applied when it opens.
    """

    seqs: tuple[int, ...]
    daily: tuple[DailyRow, ...] = ()  # deltas, one per key
    stock: tuple[tuple[str, str, Decimal], ...] = ()  # new values, one per product
    deadlines: tuple[DeadlineRow, ...] = ()  # opened unless one with the key exists
    deadline_updates: tuple[DeadlineUpdate, ...] = ()  # in event order
    price_flags: tuple[PriceFlag, ...] = ()
    trace_sales: tuple[TraceSale, ...] = ()
    untraced_sales: tuple[UntracedSale, ...] = ()


class LedgerSnapshot(msgspec.Struct, frozen=True):
    """The ledger's stored state at one version: what a process builds its view from."""

    version: int
    contracts: tuple[dict[str, Any], ...]
    daily: tuple[DailyRow, ...]
    stock: tuple[tuple[str, str, Decimal], ...]
    open_orders: tuple[DeadlineRow, ...]


class CardRow(msgspec.Struct, frozen=True):
    """A CDS card issued to a prescriber."""

    uuid: str
    service: str
    hospital_id: str
    doctor: str
    department: str
    rule_id: str
    national_code: str
    suggestions: tuple[str, ...]
    issued_at: datetime


class FeedbackRow(msgspec.Struct, frozen=True):
    """What the prescriber did with a card (accepted / overridden, with the reason).

    ``at`` is the client's ``outcomeTimestamp`` as sent (or when the service received
    the feedback): kept as text, because it is the client's statement.
    """

    card: str
    outcome: str
    reason_code: str
    reason_display: str
    comment: str
    accepted: tuple[str, ...]
    at: str


class LedgerImport(msgspec.Struct, frozen=True):
    """What a ledger kept in its own file by earlier releases (``ledger.db``) knows that
    the store's events do not."""

    source: str
    contracts: tuple[tuple[str, dict[str, Any], str], ...] = ()  # id, body, imported_at
    deadlines: tuple[DeadlineRow, ...] = ()
    cards: tuple[CardRow, ...] = ()
    feedback: tuple[FeedbackRow, ...] = ()


class LedgerSession(Protocol):
    """One fold: the ledger's lock is held until the session ends.

    After :meth:`commit` the session is over (its transaction committed); leaving the
    session without a commit rolls everything back.
    """

    version: int  # the ledger's version in the store when the session began

    async def changes_after(self, version: int) -> list[tuple[int, LedgerChange]] | None:
        """The logged changes after ``version``, oldest first; None when the log no
        longer reaches back that far (rebuild from :meth:`LedgerTables.snapshot`)."""
        ...

    async def snapshot(self) -> LedgerSnapshot:
        """As :meth:`LedgerTables.snapshot`, read under the session's lock (at
        :attr:`version`)."""
        ...

    async def unfolded(self, limit: int) -> list[int]:
        """Sequence numbers of committed, not held, not yet folded events, ascending."""
        ...

    async def events(self, seqs: Sequence[int]) -> list[tuple[int, Event]]:
        """The events with these sequence numbers, in the order given."""
        ...

    async def commit(self, writes: LedgerWrites) -> tuple[int, LedgerChange]:
        """Execute ``writes``, mark the events folded and log the change, in one
        transaction; returns the new version (``version + 1``) and the change as logged.

        Raises:
            StoreError: nothing was written (an event was folded already, or the
                database failed).
        """
        ...


class LedgerTables(Protocol):
    """The ledger's tables."""

    async def pending(self) -> bool:
        """Whether any event waits to be folded (read without the ledger's lock)."""
        ...

    async def poison(self, seq: int, reason: str, at: float) -> bool:
        """Take an event that cannot be folded off the queue, keeping it with the reason
        (False when it is no longer queued: another process folded or poisoned it)."""
        ...

    async def poisoned(self) -> list[tuple[int, str, float]]:
        """The events kept as poison: (sequence number, reason, when), oldest first."""
        ...

    async def refold(self, seqs: Sequence[int] | None = None) -> int:
        """Queue poison events (these, or all) to be folded again; how many."""
        ...

    def folding(self) -> AbstractAsyncContextManager[LedgerSession]:
        """A fold session (one at a time across every process)."""
        ...

    async def snapshot(self) -> LedgerSnapshot:
        """Contracts, daily totals, stock and open orders at the current version."""
        ...

    async def changes_after(self, version: int) -> list[tuple[int, LedgerChange]] | None:
        """As :meth:`LedgerSession.changes_after`, without the lock."""
        ...

    async def save_contracts(self, items: Sequence[tuple[str, dict[str, Any]]],
                             now: datetime, retire: Sequence[str] = ()) -> int:
        """Insert or replace contracts by id, and delete those with the ids in ``retire``
        (stored under an id this release no longer gives them), in one transaction;
        returns the new ledger version."""
        ...

    async def update_deadlines(self, updates: Sequence[DeadlineUpdate]) -> list[bool]:
        """Close or remind deadlines (True for each that existed and was open); a new
        ledger version when any did."""
        ...

    async def reschedule_deadlines(self, rows: Sequence[DeadlineRow]) -> int:
        """Set the due time and detail of the stored deadlines with these rows' keys
        (a provisional deadline counted again once its year's calendar is known); how
        many there were. A new ledger version when any."""
        ...

    async def daily(self, hospital_id: str | None = None, *, since: date | None = None,
                    until: date | None = None) -> list[DailyRow]:
        """Daily totals, optionally for one hospital and a day range (inclusive)."""
        ...

    async def deadlines(self, hospital_id: str | None = None, *,
                        open_only: bool = False) -> list[DeadlineRow]:
        """Deadlines by due time."""
        ...

    async def price_flags(self, hospital_id: str) -> list[PriceFlag]:
        """Purchases of winning products above the winning price, by day."""
        ...

    async def trace_flags(self, hospital_id: str) -> list[TraceFlag]:
        """Traceability codes sold more than once (R14), by day."""
        ...

    async def untraced_sales(self, hospital_id: str) -> list[UntracedSale]:
        """Drug sales without traceability codes once they were mandatory, by day."""
        ...

    async def import_legacy(self, data: LedgerImport) -> None:
        """Take over what an old ledger file knows that the store's events do not, in one
        transaction (a new version that rebuilds every view): contracts, deadlines as
        closed or reminded by hand, CDS cards and feedback; what the store already has is
        kept (several replicas of an earlier release each had a file).

        Totals, stock and flags are not taken: the store folds every event again from its
        own events (the migration queued them all), with this release's rules — an old
        file counted held events' mapped lines before mapping and, on PostgreSQL, held only
        part of the deployment's events.
        """
        ...

    async def claim_notice(self, kind: str, key: str, at: float) -> bool:
        """Record that the notice ``key`` of ``kind`` (e.g. an overdue deadline's webhook)
        is being sent; False when it was already, by this process or another replica."""
        ...


class CdsTables(Protocol):
    """Cards issued, feedback on them, and the token ids already used.

    Issued cards are written in batches (within ``flush_interval_s``, and by
    :meth:`flush`, which the store's ``close`` awaits); until then :meth:`card` finds
    them in memory.
    """

    async def claim_jti(self, iss: str, jti: str, exp: float, now: float) -> bool:
        """Record a token id until ``exp``; False when it was used before (a replay),
        by this process or any other sharing the store.

        Raises:
            StoreError: the id could not be recorded (the token must be refused).
        """
        ...

    async def save_cards(self, rows: Sequence[CardRow]) -> None:
        """Keep issued cards for the next batch write."""

    async def card(self, uuid: str) -> CardRow | None:
        """One issued card."""
        ...

    async def save_feedback(self, rows: Sequence[FeedbackRow]) -> None:
        """Append feedback to each card's history (nothing is replaced; the same answer
        sent again, same outcome, time, reason and comment, is kept once)."""

    async def feedback_rows(self) -> list[tuple[CardRow, FeedbackRow | None]]:
        """Every card with its latest feedback, for the overrides report."""
        ...

    async def feedback_history(self, card: str) -> list[FeedbackRow]:
        """Every answer given to one card, in the order they arrived."""
        ...

    async def flush(self) -> None:
        """Write the cards (and, where kept in memory first, token ids) not written yet."""

