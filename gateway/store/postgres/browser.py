"""The message browser's reads in the PostgreSQL store."""

from __future__ import annotations

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
from gateway.store.postgres.access import PostgresAccess
from gateway.store.query import RECORD_COLUMNS

__all__ = ["PostgresBrowser", "record_attempts"]


async def record_attempts(con: Any, updates: Sequence[DeliveryUpdate]) -> None:
    """Append the updates' tries to ``delivery_attempts`` and keep the newest
    :data:`ATTEMPTS_KEPT` of each outbox row (inside the outcome's transaction)."""
    rows = attempt_rows(updates)
    if not rows:
        return
    await con.executemany(f"INSERT INTO delivery_attempts ({ATTEMPT_COLUMNS})"
                          " VALUES ($1, $2, $3, $4, $5, $6, $7)", rows)
    await con.execute(
        "DELETE FROM delivery_attempts d USING (SELECT id, row_number() OVER (PARTITION BY"
        " outbox_id ORDER BY id DESC) AS n FROM delivery_attempts"
        " WHERE outbox_id = ANY($1::bigint[])) old"
        f" WHERE d.id = old.id AND old.n > {ATTEMPTS_KEPT}", sorted({r[0] for r in rows}))


def _mark(n: int) -> str:
    return f"${n}"


def _contains(mark: str) -> str:
    return f"position({mark}::bytea in e.body) > 0"


async def _summaries(con: Any, rows: list[Any]) -> list[MessageSummary]:
    if not rows:
        return []
    ids = [int(r[0]) for r in rows]
    outcomes = await con.fetch(outcome_sql(", ".join(f"${i + 1}" for i in range(len(ids)))),
                               *ids)
    return summaries(rows, outcomes)


def _in_raw(mark: str) -> str:
    return f"position({mark}::bytea in q.raw) > 0"


class PostgresBrowser:
    """Each read in one repeatable-read transaction: a message and its outbox rows agree."""

    def __init__(self, store: PostgresAccess) -> None:
        self._store = store

    async def search(self, query: MessageQuery) -> list[MessageSummary]:
        """Messages matching ``query``, newest first."""
        where, args = message_where(query, _mark, _contains)
        async with self._store.pool.acquire() as con, con.transaction(
                isolation="repeatable_read", readonly=True):
            rows = await con.fetch(f"SELECT {MESSAGE_COLUMNS} FROM messages m WHERE {where}"
                                   f" ORDER BY m.id DESC LIMIT {int(query.limit)}", *args)
            return await _summaries(con, list(rows))

    async def message(self, message_id: int) -> MessageDetail | None:
        """One message with its events, outbox rows and delivery attempts."""
        async with self._store.pool.acquire() as con, con.transaction(
                isolation="repeatable_read", readonly=True):
            return await self._detail(con, message_id)

    async def _detail(self, con: Any, message_id: int) -> MessageDetail | None:
        row = await con.fetchrow(f"SELECT {MESSAGE_COLUMNS}, m.raw, m.raw_purged_at"
                                 " FROM messages m WHERE m.id = $1", message_id)
        if row is None:
            return None
        events = tuple(EventRow(int(r[0]), r[1], r[2], r[3], bool(r[4]), bytes(r[5]))
                       for r in await con.fetch(
                           "SELECT seq, event_id, hospital_id, kind, held, body FROM events"
                           " WHERE message_id = $1 ORDER BY seq", message_id))
        outbox = tuple(delivery_from_row(r) for r in await con.fetch(
            f"SELECT {RECORD_COLUMNS} FROM outbox o JOIN events e ON e.seq = o.event_seq"
            " WHERE e.message_id = $1 ORDER BY o.id", message_id))
        attempts = tuple(attempt_from_row(r) for r in await con.fetch(
            f"SELECT {ATTEMPT_COLUMNS} FROM delivery_attempts WHERE outbox_id = ANY($1::bigint[])"
            " ORDER BY outbox_id, id", [r.id for r in outbox])) if outbox else ()
        raw = None if row[8] is not None else bytes(row[7])
        summary = (await _summaries(con, [tuple(row)[:7]]))[0]
        return MessageDetail(summary, raw, events, outbox, attempts)

    async def search_quarantine(self, query: MessageQuery) -> list[QuarantineRow]:
        """Quarantine rows matching ``query``, newest first, without their bytes."""
        where, args = quarantine_where(query, _mark, _in_raw)
        rows = await self._store.pool.fetch(
            "SELECT q.id, q.received_at, q.peer, q.adapter, q.reason, q.original_size"
            f" FROM quarantine q WHERE {where} ORDER BY q.id DESC LIMIT {int(query.limit)}",
            *args)
        return [quarantine_from_row(r) for r in rows]

    async def quarantined(self, quarantine_id: int) -> QuarantineRow | None:
        """One quarantine row with its bytes."""
        r = await self._store.pool.fetchrow(
            "SELECT id, received_at, peer, adapter, reason, original_size, raw"
            " FROM quarantine WHERE id = $1", quarantine_id)
        return None if r is None else quarantine_from_row(r)
