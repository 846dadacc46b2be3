"""Outbox SQL and row reading shared by the SQLite and PostgreSQL stores."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import orjson

from canonical.model import Event, Line, event_from_dict
from gateway.store.base import CommitResult, Incoming, OutboxItem, OutboxQuery, OutboxRecord
from gateway.store.params import Params
from gateway.store.plan import OutboxState, held_value

__all__ = [
    "ITEM_COLUMNS",
    "RECORD_COLUMNS",
    "UNBLOCKED",
    "DecodedEvents",
    "decode_event",
    "event_seqs",
    "held_lines",
    "items_from_rows",
    "outbox_where",
    "purgeable_messages",
    "record_from_row",
]

_STATES = {s.name.lower(): s for s in OutboxState}

# the columns items_from_rows reads, over ``outbox o`` (the events are read once each:
# an event of 2,000 lines is 2,000 outbox rows, and must not be 2,000 copies in memory)
ITEM_COLUMNS = ("o.id, o.msgid, o.hospital_id, o.stream, o.unit, o.attempts, o.created_at,"
                " o.next_attempt_at, o.event_seq, o.first_failed_at, o.order_key")
# A pending row may go out only when no earlier row it waits for (same destination,
# hospital and scope) is a dead letter or waits for its back-off. It waits for an earlier
# row of its own key, for every earlier row when it is scope-wide or the earlier one is,
# and for every row before a scope-wide row that comes before it (which waits for them).
# ``{now}`` is the placeholder of the time; ``state <> 1`` is written out: it is what the
# partial index ``outbox_key_open`` covers.
#
# The rows that can hold others up are looked for in the partial index ``outbox_blocking``
# (dead letters, and pending rows that were ever given a time to wait for: a new row's
# ``next_attempt_at`` is 0), written out as its condition so that the planner takes it.
# Through ``outbox_key_open`` every pending row of the scope was visited for every row
# claimed: a claim of 500 rows of a 2,000-line dispense (one scope) took 16 ms of a core,
# against 0.3 ms now; blockers are few, and with none the check is one index probe.
_SAME_SCOPE = ("{a}.destination = o.destination AND {a}.hospital_id = o.hospital_id"
               " AND {a}.order_scope = o.order_scope AND {a}.state <> 1")
_BLOCKING = "(b.state = 2 OR (b.state = 0 AND b.next_attempt_at > 0))"
UNBLOCKED = (
    "NOT EXISTS (SELECT 1 FROM outbox b WHERE b.destination = o.destination"
    " AND b.hospital_id = o.hospital_id AND b.order_scope = o.order_scope"
    f" AND {_BLOCKING}"
    " AND b.id < o.id AND (b.state = 2 OR b.next_attempt_at > {now})"
    " AND (b.order_key = o.order_key OR b.order_key = b.order_scope"
    "  OR o.order_key = o.order_scope"
    f"  OR EXISTS (SELECT 1 FROM outbox w WHERE {_SAME_SCOPE.format(a='w')}"
    "   AND w.order_key = w.order_scope AND w.id > b.id AND w.id < o.id)))")
# the columns record_from_row reads
RECORD_COLUMNS = (
    "o.id, o.destination, o.msgid, o.hospital_id, o.stream, o.unit, o.state, o.attempts,"
    " o.created_at, o.next_attempt_at, o.delivered_at, o.last_error, o.platform_ref,"
    " e.event_id")


def purgeable_messages(before: str) -> str:
    """Ids of messages received before the placeholder ``before``, raw bytes still kept,
    none of whose events is held or has an outbox row that is not delivered, oldest first.

    ``state <> 1`` is written out: it is what the partial index ``outbox_unfinished``
    covers, and only an identical condition lets the planner use it.
    """
    assert int(OutboxState.DELIVERED) == 1
    return ("SELECT m.id FROM messages m WHERE m.raw_purged_at IS NULL"
            f" AND m.received_at < {before} AND NOT EXISTS (SELECT 1 FROM events e"
            " WHERE e.message_id = m.id AND (e.held <> 0 OR EXISTS (SELECT 1 FROM outbox o"
            " WHERE o.event_seq = e.seq AND o.state <> 1))) ORDER BY m.received_at")


def decode_event(body: bytes) -> Event:
    """An event from its stored JSON body."""
    return event_from_dict(orjson.loads(body))


def event_seqs(rows: Iterable[Any]) -> list[int]:
    """The distinct events of outbox rows selected with :data:`ITEM_COLUMNS`."""
    return list(dict.fromkeys(int(r[8]) for r in rows))


KEEP_COMMITTED_LINES = 64  # a smaller event decodes in well under a millisecond


class DecodedEvents:
    """Events decoded for claims, kept while their rows go out.

    A 2,000-line dispense is 2,000 outbox rows, claimed a batch at a time: without this,
    each claim would read its megabyte of JSON again and decode it again (tens of
    milliseconds holding the interpreter). Bounded by the lines it keeps; an event's body
    never changes once it has outbox rows, so what is kept is never stale.
    """

    def __init__(self, max_lines: int = 50_000) -> None:
        self.max_lines = max_lines
        self._events: OrderedDict[int, Event] = OrderedDict()
        self._lines = 0
        self._lock = threading.Lock()  # claims read in the store's threads

    def split(self, seqs: Iterable[int]) -> tuple[dict[int, Event], list[int]]:
        """(the events already decoded, the sequence numbers still to read)."""
        known: dict[int, Event] = {}
        fetch: list[int] = []
        with self._lock:
            for seq in seqs:
                ev = self._events.get(seq)
                if ev is None:
                    fetch.append(seq)
                else:
                    self._events.move_to_end(seq)
                    known[seq] = ev
        return known, fetch

    def add_committed(self, items: Sequence[Incoming], results: Sequence[CommitResult]
                      ) -> None:
        """Keep the big events just committed with outbox rows: the claims of a 2,000-line
        dispense then take it from here instead of decoding its megabyte of JSON, which
        held the interpreter (and so every acknowledgement) for tens of milliseconds just
        after the commit. A held event is not kept: its body changes when it is released."""
        for inc, result in zip(items, results, strict=True):
            for i, seq in enumerate(result.event_seqs):
                if (seq is not None and len(inc.events[i].lines) >= KEEP_COMMITTED_LINES
                        and not held_value(inc, i)):
                    self.add(seq, inc.events[i])

    def add(self, seq: int, event: Event) -> None:
        """Keep ``event``, forgetting the least recently claimed beyond the bound."""
        with self._lock:
            if seq in self._events or len(event.lines) > self.max_lines:
                return
            self._events[seq] = event
            self._lines += len(event.lines)
            while self._lines > self.max_lines:
                _, old = self._events.popitem(last=False)
                self._lines -= len(old.lines)


def items_from_rows(destination: str, rows: Iterable[Any],
                    bodies: Iterable[tuple[int, bytes]],
                    known: dict[int, Event] | None = None,
                    keep: DecodedEvents | None = None) -> list[OutboxItem]:
    """Outbox rows selected with :data:`ITEM_COLUMNS`, each with its event; ``bodies``
    holds each event once (by sequence number), decoded once and shared by its rows, and
    ``known`` the events decoded before (``keep`` keeps the newly decoded ones)."""
    events = dict(known or {})
    for seq, body in bodies:
        ev = events[int(seq)] = decode_event(bytes(body))
        if keep is not None:
            keep.add(int(seq), ev)
    return [OutboxItem(id=r[0], destination=destination, msgid=r[1], hospital_id=r[2],
                       stream=r[3], unit=r[4], attempts=r[5], created_at=r[6],
                       next_attempt_at=r[7], event=events[int(r[8])], first_failed_at=r[9],
                       order_key=r[10])
            for r in rows]


def record_from_row(r: Any, body: bytes | None = None) -> OutboxRecord:
    """An outbox row selected with :data:`RECORD_COLUMNS` (and its event's body, if given)."""
    return OutboxRecord(r[0], r[1], r[2], r[3], r[4], r[5], OutboxState(r[6]).name.lower(),
                        r[7], r[8], r[9], r[10], r[11], r[12], r[13],
                        event=None if body is None else decode_event(body))


def held_lines(bodies: Iterable[bytes]) -> dict[tuple[str, str], Line]:
    """The first unmapped line of each (hospital, item) in held event bodies (newest first)."""
    lines: dict[tuple[str, str], Line] = {}
    for body in bodies:
        event = decode_event(body)
        for line in event.lines:
            if line.national_code is None:
                lines.setdefault((event.hospital_id, line.item_code), line)
    return lines


def outbox_where(query: OutboxQuery, mark: Callable[[int], str]) -> tuple[str, list[Any]]:
    """A WHERE clause over ``outbox o`` for ``query``; ``mark(n)`` spells placeholder n.

    Raises:
        ValueError: an unknown state name.
    """
    p = Params(mark)

    unknown = set(query.states) - set(_STATES)
    if unknown:
        raise ValueError(f"unknown outbox state(s) {sorted(unknown)}; use {sorted(_STATES)}")
    where = []
    if query.states:
        where.append(f"o.state IN ({', '.join(p(int(_STATES[s])) for s in query.states)})")
    if query.ids:
        where.append(f"o.id IN ({', '.join(p(i) for i in query.ids)})")
    if query.destination:
        where.append(f"o.destination = {p(query.destination)}")
    if query.hospital_id:
        where.append(f"o.hospital_id = {p(query.hospital_id)}")
    if query.streams:
        where.append(f"o.stream IN ({', '.join(p(s) for s in query.streams)})")
    if query.since is not None:
        where.append(f"o.created_at >= {p(query.since)}")
    if query.until is not None:
        where.append(f"o.created_at < {p(query.until)}")
    if query.id_from is not None:
        where.append(f"o.id >= {p(query.id_from)}")
    if query.id_to is not None:
        where.append(f"o.id <= {p(query.id_to)}")
    return (" AND ".join(where) or "TRUE"), p.args
