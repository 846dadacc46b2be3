"""What a commit, a release of held events and a replay do, decided once for every store.

The SQLite and PostgreSQL stores differ in how they talk to their database (ids assigned
under the write lock or by sequences, ``?`` or ``$1``), not in what they decide: which
message is a duplicate, which outbox rows a committed event gets, what a held event
changes in the 对码 queue, what a replay does to a row of each state, and how the counts
balance. Those decisions are pure functions here; the backends execute them.
"""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from enum import IntEnum, StrEnum
from typing import NamedTuple

from canonical.model import Event, EventKind, Line, OrderControl, event_json
from gateway.store.base import Balance, CommitResult, Incoming, PlannedDelivery

__all__ = [
    "INCOMPLETE",
    "LANES",
    "UNMAPPED",
    "NewOutboxRow",
    "OutboxState",
    "Release",
    "Remap",
    "ReplayAction",
    "StagedMessage",
    "balance_from_counts",
    "commit_results",
    "held_value",
    "incoming_body",
    "incoming_digest",
    "is_reuse",
    "lane_of",
    "order_scope",
    "outbox_rows",
    "plan_release",
    "quarantined_bytes",
    "raw_digest",
    "replay_action",
    "unmapped_changes",
]


class OutboxState(IntEnum):
    """An outbox row's state, as stored."""

    PENDING = 0
    DELIVERED = 1
    DEAD = 2


# held event → (event mapped again, how it is held now, deliveries to plan): False / 0
# released, True / 1 still unmapped, 2 (``INCOMPLETE``) mapped but a platform's mandatory
# field has no value yet
Remap = Callable[[Event], tuple[Event, int, tuple[PlannedDelivery, ...]]]
UNMAPPED = 1
INCOMPLETE = 2


@dataclass(slots=True)
class StagedMessage:
    """A message of a commit group once the store knows whether it is new.

    ``seqs`` has one entry per event: its sequence number, or None when the event id was
    committed before (by another message); empty for a duplicate message.
    """

    incoming: Incoming
    message_id: int
    duplicate: bool
    seqs: list[int | None]
    reused: bool = False  # a duplicate key whose stored bytes differ


def raw_digest(raw: bytes) -> bytes:
    """The SHA-256 stored with a message: what tells a resend from a reused control id."""
    return hashlib.sha256(raw).digest()


def incoming_digest(inc: Incoming) -> bytes:
    """The raw bytes' SHA-256, worked out before the commit or now."""
    return inc.digest or raw_digest(inc.raw)


def incoming_body(inc: Incoming, index: int) -> bytes:
    """The stored JSON of event ``index`` of ``inc``, worked out before the commit or now."""
    return inc.bodies[index] if inc.bodies else event_json(inc.events[index])


def is_reuse(stored_digest: bytes | None, raw: bytes) -> bool:
    """Whether ``raw`` is another message than the one stored under its key.

    A row without a digest (raw bytes never hashed) cannot tell: it counts as a resend,
    as every repeated key did before digests were stored.
    """
    return stored_digest is not None and bytes(stored_digest) != raw_digest(raw)


def quarantined_bytes(raw: bytes, max_bytes: int) -> bytes:
    """What the quarantine keeps of ``raw``: all of it up to ``max_bytes``, else its head
    and a marker saying so (a 2 GB stream of garbage must not fill the disk)."""
    if len(raw) <= max_bytes:
        return raw
    marker = f"\n[truncated by jicai-gateway: {max_bytes} of {len(raw)} bytes kept]"
    return raw[:max_bytes] + marker.encode()


class NewOutboxRow(NamedTuple):
    """An outbox row to insert (the store adds its id and msgid). A named tuple: a
    2,000-line dispense makes 2,000 of them inside the store's write."""

    message: int  # index of the staged message it belongs to
    destination: str
    event_seq: int
    unit: int
    hospital_id: str
    stream: str
    order_key: str
    order_scope: str
    lane: int


_GONE = frozenset({OrderControl.CANCEL, OrderControl.DISCONTINUE})


def held_value(incoming: Incoming, index: int) -> int:
    """What ``events.held`` stores for event ``index`` of ``incoming``: 1 unmapped (not
    in the ledger yet), 2 mapped but waiting for mandatory data (in the ledger), 0 free."""
    if incoming.held[index]:
        return 1
    return 2 if incoming.incomplete and incoming.incomplete[index] else 0


def unmapped_changes(event: Event, held: bool) -> tuple[tuple[Line, ...], tuple[str, ...]]:
    """The lines a committed event queues for mapping and the item codes it takes off.

    A held event queues its unmapped lines (each one an occurrence). An item master is
    never held: its unknown items are queued, and the items it deletes or deactivates
    leave the queue, since nobody should map an item that is going away.
    """
    if event.kind is EventKind.ITEM_MASTER:
        gone = tuple(li.item_code for li in event.lines if li.order_control in _GONE)
        keep = tuple(li for li in event.lines
                     if li.order_control not in _GONE and li.national_code is None)
        return keep, gone
    if held:
        return tuple(li for li in event.lines if li.national_code is None), ()
    return (), ()


def outbox_rows(staged: Sequence[StagedMessage]) -> list[NewOutboxRow]:
    """The outbox rows of a commit group: one per planned delivery of each new event."""
    rows: list[NewOutboxRow] = []
    for i, msg in enumerate(staged):
        if msg.duplicate:
            continue
        events = msg.incoming.events
        # per event, not per row: a 2,000-line dispense has 2,000 rows of one event
        keys = [(ev.hospital_id, ev.stream) for ev in events]
        for d in msg.incoming.deliveries:
            seq = msg.seqs[d.event_index]
            if seq is None:
                continue
            hospital_id, stream = keys[d.event_index]
            key = d.order_key or stream
            scope = order_scope(key)
            rows.append(NewOutboxRow(i, d.destination, seq, d.unit, hospital_id, stream,
                                     key, scope, lane_of(scope)))
    return rows


def order_scope(order_key: str) -> str:
    """The scope of an ordering key: ``"scope#part"`` or a scope-wide ``"scope"``.

    Two units (of one destination and hospital) keep their commit order when they share a
    scope and either have the same key or one of them is scope-wide: the lines of a sale
    (``sale|doc|item#1``, ``#2``) go out concurrently, each line before its own
    correction, and a return of that sale (``sale|doc|item``) after all of them.
    """
    return order_key.partition("#")[0]


LANES = 32  # leased shards of a hospital's outbox per destination (PostgreSQL)


def lane_of(scope: str) -> int:
    """The lane of an ordering scope: every row of a scope is in the same lane, so the
    replica holding the lane holds all that must keep its order (stable across processes)."""
    return zlib.crc32(scope.encode()) % LANES


def commit_results(staged: Sequence[StagedMessage], rows: Sequence[NewOutboxRow],
                   outbox_ids: Sequence[int]) -> list[CommitResult]:
    """Each message's result, given the ids the store gave ``rows`` (in order)."""
    ids: list[list[int]] = [[] for _ in staged]
    for row, oid in zip(rows, outbox_ids, strict=True):
        ids[row.message].append(oid)
    return [CommitResult(duplicate=True, message_id=m.message_id, reused=m.reused)
            if m.duplicate else
            CommitResult(duplicate=False, message_id=m.message_id, outbox_ids=tuple(ids[i]),
                         event_seqs=tuple(m.seqs))
            for i, m in enumerate(staged)]


@dataclass(frozen=True, slots=True)
class Release:
    """A held event the crosswalk now maps: its new body, the rows to plan, and ``held``
    0 (sent now) or ``INCOMPLETE`` (mapped, counted in the ledger, still waiting for a
    platform's mandatory data, as if it had arrived so)."""

    seq: int
    event: Event
    deliveries: tuple[PlannedDelivery, ...]
    held: int = 0

    @property
    def item_codes(self) -> list[str]:
        """The items that leave the 对码 queue with it."""
        return [li.item_code for li in self.event.lines]


def plan_release(held: Iterable[tuple[int, Event, int]], remap: Remap) -> list[Release]:
    """The held events (oldest first, with how each is held) that ``remap`` completes,
    and the unmapped ones it maps that still lack a platform's data (they enter the ledger
    now, as an event that arrived mapped and incomplete does); the others stay as they
    are."""
    out = []
    for seq, event, was in held:
        mapped, now, deliveries = remap(event)
        if not now:
            out.append(Release(seq, mapped, deliveries))
        elif now == INCOMPLETE and was == UNMAPPED:
            out.append(Release(seq, mapped, (), INCOMPLETE))
    return out


class ReplayAction(StrEnum):
    """What a replay does to one outbox row."""

    QUEUE = "queue"  # back to pending, budgets restarted
    SKIP = "skip"  # still pending: already on its way
    REFUSE = "refuse"  # delivered, and the operator did not force it


def replay_action(state: OutboxState | int, force: bool) -> ReplayAction:
    """The action for a row in ``state``."""
    if state == OutboxState.PENDING:
        return ReplayAction.SKIP
    if state == OutboxState.DELIVERED and not force:
        return ReplayAction.REFUSE
    return ReplayAction.QUEUE


def balance_from_counts(counts: Iterable[tuple[str, int, int]], held_events: int) -> Balance:
    """A :class:`Balance` from ``(destination, state, rows)`` counts."""
    by_state: dict[OutboxState, dict[str, int]] = {s: {} for s in OutboxState}
    for destination, state, n in counts:
        by_state[OutboxState(state)][destination] = n
    return Balance(delivered=by_state[OutboxState.DELIVERED],
                   queued=by_state[OutboxState.PENDING], dead=by_state[OutboxState.DEAD],
                   held_events=held_events)
