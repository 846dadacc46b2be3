"""The message browser's reads in the SQLite store."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from gateway.store.base import DeliveryUpdate
from gateway.store.browser_rows import (
    ATTEMPT_COLUMNS,
    ATTEMPTS_KEPT,
    MESSAGE_COLUMNS,
    attempt_from_row,
    attempt_rows,
    delivery_from_row,
    message_where,
    outcome_sql,
    quarantine_from_row,
    quarantine_where,
    summaries,
)
from gateway.store.browser_tables import (
    EventRow,
    MessageDetail,
    MessageQuery,
    MessageSummary,
    QuarantineRow,
)
from gateway.store.query import RECORD_COLUMNS
from gateway.store.sqlite.access import SqliteAccess

__all__ = ["SqliteBrowser", "record_attempts"]


def record_attempts(con: sqlite3.Connection, updates: Sequence[DeliveryUpdate]) -> None:
    """Append the updates' tries to ``delivery_attempts`` and keep the newest
    :data:`ATTEMPTS_KEPT` of each outbox row (inside the outcome's transaction)."""
    rows = attempt_rows(updates)
    if not rows:
        return
    con.executemany(f"INSERT INTO delivery_attempts ({ATTEMPT_COLUMNS})"
                    " VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
    for oid in {r[0] for r in rows}:
        con.execute("DELETE FROM delivery_attempts WHERE outbox_id = ? AND id <= (SELECT id"
                    " FROM delivery_attempts WHERE outbox_id = ? ORDER BY id DESC LIMIT 1"
                    f" OFFSET {ATTEMPTS_KEPT})", (oid, oid))


def _mark(_: int) -> str:
    return "?"


def _contains(mark: str) -> str:
    return f"instr(e.body, {mark}) > 0"


def _summaries(con: sqlite3.Connection, rows: list[Any]) -> list[MessageSummary]:
    if not rows:
        return []
    ids = [int(r[0]) for r in rows]
    outcomes = con.execute(outcome_sql(", ".join("?" * len(ids))), ids).fetchall()
    return summaries(rows, outcomes)


def _detail(con: sqlite3.Connection, message_id: int) -> MessageDetail | None:
    row = con.execute(f"SELECT {MESSAGE_COLUMNS}, m.raw, m.raw_purged_at FROM messages m"
                      " WHERE m.id = ?", (message_id,)).fetchone()
    if row is None:
        return None
    events = tuple(EventRow(int(s), i, h, k, bool(held), bytes(b)) for s, i, h, k, held, b
                   in con.execute("SELECT seq, event_id, hospital_id, kind, held, body"
                                  " FROM events WHERE message_id = ? ORDER BY seq",
                                  (message_id,)).fetchall())
    outbox_rows = con.execute(
        f"SELECT {RECORD_COLUMNS} FROM outbox o JOIN events e ON e.seq = o.event_seq"
        " WHERE e.message_id = ? ORDER BY o.id", (message_id,)).fetchall()
    outbox = tuple(delivery_from_row(r) for r in outbox_rows)
    ids = [r.id for r in outbox]
    attempts = tuple(attempt_from_row(r) for r in con.execute(
        f"SELECT {ATTEMPT_COLUMNS} FROM delivery_attempts WHERE outbox_id IN"
        f" ({', '.join('?' * len(ids))}) ORDER BY outbox_id, id", ids).fetchall()) if ids else ()
    raw = None if row[8] is not None else bytes(row[7])
    return MessageDetail(_summaries(con, [row[:7]])[0], raw, events, outbox, attempts)


def _in_raw(mark: str) -> str:
    return f"instr(q.raw, {mark}) > 0"


class SqliteBrowser:
    """Reads on the store's reader connection; the listing is bounded by its caller."""

    def __init__(self, store: SqliteAccess) -> None:
        self._store = store

    async def search(self, query: MessageQuery) -> list[MessageSummary]:
        """Messages matching ``query``, newest first."""
        where, args = message_where(query, _mark, _contains)

        def read(con: sqlite3.Connection) -> list[MessageSummary]:
            rows = con.execute(f"SELECT {MESSAGE_COLUMNS} FROM messages m WHERE {where}"
                               f" ORDER BY m.id DESC LIMIT {int(query.limit)}", args).fetchall()
            return _summaries(con, rows)
        return await self._store.read(read)

    async def message(self, message_id: int) -> MessageDetail | None:
        """One message with its events, outbox rows and delivery attempts."""
        return await self._store.read(lambda con: _detail(con, message_id))

    async def search_quarantine(self, query: MessageQuery) -> list[QuarantineRow]:
        """Quarantine rows matching ``query``, newest first, without their bytes."""
        where, args = quarantine_where(query, _mark, _in_raw)

        def read(con: sqlite3.Connection) -> list[QuarantineRow]:
            return [quarantine_from_row(r) for r in con.execute(
                "SELECT q.id, q.received_at, q.peer, q.adapter, q.reason, q.original_size"
                f" FROM quarantine q WHERE {where} ORDER BY q.id DESC"
                f" LIMIT {int(query.limit)}", args).fetchall()]
        return await self._store.read(read)

    async def quarantined(self, quarantine_id: int) -> QuarantineRow | None:
        """One quarantine row with its bytes."""
        def read(con: sqlite3.Connection) -> QuarantineRow | None:
            r = con.execute("SELECT id, received_at, peer, adapter, reason, original_size, raw"
                            " FROM quarantine WHERE id = ?", (quarantine_id,)).fetchone()
            return None if r is None else quarantine_from_row(r)
        return await self._store.read(read)
