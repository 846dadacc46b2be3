"""The audit log in the PostgreSQL store, shared by every replica."""

from __future__ import annotations

from collections.abc import Sequence

from canonical.errors import StoreError
from gateway.security.audit import GENESIS, AuditDraft, AuditEntry, seal
from gateway.store.audit_rows import (
    AUDIT_COLUMNS,
    MAX_PAGE,
    AuditLogQuery,
    entry_args,
    entry_from_row,
    log_where,
)
from gateway.store.postgres.access import PostgresAccess
from gateway.store.postgres.driver import DB_ERRORS

__all__ = ["PostgresAuditLog"]


def _mark(n: int) -> str:
    return f"${n}"


class PostgresAuditLog:
    """Append-only, hash-chained; appenders of every replica take turns."""

    def __init__(self, store: PostgresAccess) -> None:
        self._store = store

    async def append(self, draft: AuditDraft) -> AuditEntry:
        """Seal ``draft`` onto the last entry and store it."""
        return (await self.append_many([draft]))[0]

    async def append_many(self, drafts: Sequence[AuditDraft]) -> list[AuditEntry]:
        """Seal and store ``drafts`` in order, in one transaction.

        The advisory lock (per schema, held to the end of the transaction) makes appenders
        take turns: a row lock on the last entry would not do, as two appenders could both
        find an empty log. Under read committed each turn sees the entry the previous one
        committed, so ids and hashes form one line.
        """
        if not drafts:
            return []
        try:
            async with self._store.pool.acquire() as con, con.transaction():
                await con.execute("SELECT pg_advisory_xact_lock(hashtext("
                                  "'jcgw-audit-log:' || current_schema()))")
                last = await con.fetchrow(
                    "SELECT id, hash FROM audit_log ORDER BY id DESC LIMIT 1")
                last_id, head = (int(last[0]), str(last[1])) if last else (0, GENESIS)
                out = []
                for draft in drafts:
                    entry = seal(draft, last_id + 1, head)
                    out.append(entry)
                    last_id, head = entry.id, entry.hash
                await con.executemany(
                    f"INSERT INTO audit_log ({AUDIT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6,"
                    " $7, $8, $9, $10, $11, $12)", [entry_args(e) for e in out])
        except DB_ERRORS as exc:
            raise StoreError(f"audit entries not stored: {exc}") from exc
        return out

    async def entries(self, query: AuditLogQuery) -> list[AuditEntry]:
        """Entries matching ``query``, oldest first."""
        where, args = log_where(query, _mark)
        limit = max(0, min(query.limit, MAX_PAGE))
        try:
            rows = await self._store.pool.fetch(
                f"SELECT {AUDIT_COLUMNS} FROM audit_log WHERE {where} ORDER BY id"
                f" LIMIT {limit}", *args)
        except DB_ERRORS as exc:
            raise StoreError(f"audit log not read: {exc}") from exc
        return [entry_from_row(r) for r in rows]
