"""The audit log in the SQLite store (``audit_log``)."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from gateway.security.audit import GENESIS, AuditDraft, AuditEntry, seal
from gateway.store.audit_rows import (
    AUDIT_COLUMNS,
    MAX_PAGE,
    AuditLogQuery,
    entry_args,
    entry_from_row,
    log_where,
)
from gateway.store.sqlite.access import SqliteAccess

__all__ = ["SqliteAuditLog"]


class SqliteAuditLog:
    """Append-only, hash-chained; the store's one writer thread serialises appends."""

    def __init__(self, store: SqliteAccess) -> None:
        self._store = store

    async def append(self, draft: AuditDraft) -> AuditEntry:
        """Seal ``draft`` onto the last entry and store it in one write transaction."""
        return (await self.append_many([draft]))[0]

    async def append_many(self, drafts: Sequence[AuditDraft]) -> list[AuditEntry]:
        """Seal and store ``drafts`` in order, in one write transaction."""
        def write(con: sqlite3.Connection) -> list[AuditEntry]:
            last = con.execute("SELECT id, hash FROM audit_log ORDER BY id DESC LIMIT 1"
                               ).fetchone()
            last_id, head = (int(last[0]), str(last[1])) if last else (0, GENESIS)
            out = []
            for draft in drafts:
                entry = seal(draft, last_id + 1, head)
                con.execute(f"INSERT INTO audit_log ({AUDIT_COLUMNS}) VALUES"
                            " (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", entry_args(entry))
                out.append(entry)
                last_id, head = entry.id, entry.hash
            return out
        return await self._store.write(write) if drafts else []

    async def entries(self, query: AuditLogQuery) -> list[AuditEntry]:
        """Entries matching ``query``, oldest first."""
        where, args = log_where(query, lambda n: "?")
        limit = max(0, min(query.limit, MAX_PAGE))

        def read(con: sqlite3.Connection) -> list[Any]:
            return con.execute(f"SELECT {AUDIT_COLUMNS} FROM audit_log WHERE {where}"
                               f" ORDER BY id LIMIT {limit}", args).fetchall()
        return [entry_from_row(r) for r in await self._store.read(read)]
