"""What the store keeps for the 集采 ledger and the CDS service, and the protocols it offers.

The ledger folds committed events exactly once across every process sharing the store:
a fold runs in a :class:`LedgerSession`, which on PostgreSQL holds the ledger's lock, so
one process folds at a time; the events it folds are marked in the same transaction,
and what the fold changed in the in-memory view (a :class:`LedgerChange`) is appended
to a log under the next ledger version. Every process, the folding one included,
applies the log in version order, so all views agree.

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
    "LedgerSession",
    "LedgerSnapshot",
    "LedgerTables",
    "LedgerWrites",
    "PriceFlag",
    "TraceSale",
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
    """A purchase of a winning product above its winning price."""

    event_id: str
    seq: int
    hospital_id: str
    national_code: str
    day: date
    price: Decimal
    winning_price: Decimal


class TraceSale(msgspec.Struct, frozen=True):
    """A traceability code sold; a second sale of one code is flagged (R14)."""

    hospital_id: str
    code: str
    event_id: str
    national_code: str
    day: date


class LedgerChange(msgspec.Struct, frozen=True):
    """What one ledger version changed in the in-memory view, as appended to the log.

    ``daily`` are deltas of the daily totals; ``stock`` the new stock values;
    ``orders_opened`` / ``orders_closed`` / ``orders_reminded`` the distributor orders whose
    answer clock started, stopped or was reminded; ``contracts`` says the contracts
    changed (the view is rebuilt from the store).
    """

    daily: tuple[DailyRow, ...] = ()
    stock: tuple[tuple[str, str, Decimal], ...] = ()
    orders_opened: tuple[DeadlineRow, ...] = ()
    orders_closed: tuple[tuple[str, str], ...] = ()
    orders_reminded: tuple[DeadlineUpdate, ...] = ()
    contracts: bool = False


class LedgerWrites(msgspec.Struct, frozen=True):
    """Everything one fold writes: planned by the ledger from its view, executed by the
    store in one transaction together with marking ``seqs`` folded."""

    seqs: tuple[int, ...]
    daily: tuple[DailyRow, ...] = ()  # deltas, summed per key
    stock: tuple[tuple[str, str, Decimal], ...] = ()  # new values
    deadlines: tuple[DeadlineRow, ...] = ()  # opened unless one with the key exists
    deadline_updates: tuple[DeadlineUpdate, ...] = ()
    price_flags: tuple[PriceFlag, ...] = ()
    trace_sales: tuple[TraceSale, ...] = ()


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
    """What the prescriber did with a card (accepted / overridden, with the reason)."""

    card: str
    outcome: str
    reason_code: str
    reason_display: str
    comment: str
    accepted: tuple[str, ...]
    at: datetime


class LedgerSession(Protocol):
    """One fold: the ledger's lock is held until the session ends."""

    version: int  # the ledger's version in the store when the session began

    async def changes_after(self, version: int) -> list[tuple[int, LedgerChange]] | None:
        """The logged changes after ``version``, oldest first; None when the log no
        longer reaches back that far (rebuild from :meth:`LedgerTables.snapshot`)."""
        ...

    async def unfolded(self, limit: int) -> list[int]:
        """Sequence numbers of committed, not held, not yet folded events, ascending."""
        ...

    async def events(self, seqs: Sequence[int]) -> list[tuple[int, Event]]:
        """The events with these sequence numbers, in the order given."""
        ...

    async def commit(self, writes: LedgerWrites) -> tuple[int, LedgerChange]:
        """Execute ``writes``, mark the events folded and log the change, in one
        transaction; returns the new version and the change as logged."""
        ...


class LedgerTables(Protocol):
    """The ledger's tables."""

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
                             now: datetime) -> int:
        """Insert or replace contracts by id; returns the new ledger version."""
        ...

    async def update_deadlines(self, updates: Sequence[DeadlineUpdate]) -> list[bool]:
        """Close or remind deadlines (True for each that existed and was open)."""
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
        """Purchases of winning products above the winning price."""
        ...

    async def trace_flags(self, hospital_id: str) -> list[dict[str, Any]]:
        """Traceability codes sold more than once (R14)."""
        ...


class CdsTables(Protocol):
    """Cards issued, feedback on them, and the token ids already used."""

    async def claim_jti(self, iss: str, jti: str, exp: float, now: float) -> bool:
        """Record a token id until ``exp``; False when it was used before (a replay),
        by this process or any other sharing the store."""
        ...

    async def save_cards(self, rows: Sequence[CardRow]) -> None:
        """Store issued cards."""

    async def card(self, uuid: str) -> CardRow | None:
        """One issued card."""
        ...

    async def save_feedback(self, rows: Sequence[FeedbackRow]) -> None:
        """Store feedback (a later outcome for the same card replaces the earlier)."""

    async def feedback_rows(self) -> list[tuple[CardRow, FeedbackRow | None]]:
        """Every card with its feedback, for the overrides report."""
        ...
