"""The audit log in the store: its protocol, and its rows as both backends write and read.

The table is append-only: :meth:`AuditLogTables.append` reads the last entry and seals the
new one onto it (:func:`gateway.security.audit.seal`) inside a transaction that excludes
every other appender — the SQLite store's single writer, an advisory lock on PostgreSQL —
so the chain stays one line even when several replicas append at once.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from gateway.security.audit import AuditDraft, AuditEntry, format_at
from gateway.store.params import Params

__all__ = ["AUDIT_COLUMNS", "MAX_PAGE", "AuditLogQuery", "AuditLogTables", "entry_args",
           "entry_from_row", "log_where"]

MAX_PAGE = 1000  # entries one read returns at most

AUDIT_COLUMNS = ("id, at, identity, role, action, target, hospital_id, before, after, detail,"
                 " prev_hash, hash")


@dataclass(frozen=True, slots=True)
class AuditLogQuery:
    """Which entries an auditor asks for (oldest first, after ``after_id``)."""

    identity: str | None = None
    action: str | None = None  # exact, or a prefix ending in "." ("crosswalk.")
    hospital_id: str | None = None
    since: datetime | None = None  # inclusive
    until: datetime | None = None  # exclusive
    after_id: int = 0
    limit: int = 200


class AuditLogTables(Protocol):
    """The append-only, hash-chained log of who changed what."""

    async def append(self, draft: AuditDraft) -> AuditEntry:
        """Seal ``draft`` onto the last entry and store it, serialised with every other
        appender of the deployment.

        Raises:
            StoreError: nothing was stored.
        """
        ...

    async def append_many(self, drafts: Sequence[AuditDraft]) -> list[AuditEntry]:
        """:meth:`append` for several entries in one transaction, in order (a file import
        writes one entry per changed row without one commit each)."""
        ...

    async def entries(self, query: AuditLogQuery) -> list[AuditEntry]:
        """Entries matching ``query``, oldest first, at most ``min(limit, MAX_PAGE)``."""
        ...


def _json_text(value: Any) -> str | None:
    return None if value is None else json.dumps(value, ensure_ascii=False, sort_keys=True)


def entry_args(e: AuditEntry) -> tuple[Any, ...]:
    """The column values of an entry, in :data:`AUDIT_COLUMNS` order."""
    return (e.id, e.at, e.identity, e.role, e.action, e.target, e.hospital_id,
            _json_text(e.before), _json_text(e.after), e.detail, e.prev_hash, e.hash)


def entry_from_row(row: Sequence[Any]) -> AuditEntry:
    """An entry from a row of :data:`AUDIT_COLUMNS`."""
    before, after = (None if v is None else json.loads(v) for v in (row[7], row[8]))
    return AuditEntry(int(row[0]), str(row[1]), str(row[2]), str(row[3]), str(row[4]),
                      str(row[5]), str(row[6]), before, after, str(row[9]), str(row[10]),
                      str(row[11]))


def log_where(query: AuditLogQuery, mark: Callable[[int], str]) -> tuple[str, list[Any]]:
    """A WHERE clause over ``audit_log`` for ``query``; ``mark(n)`` spells placeholder n."""
    p = Params(mark)

    where = [f"id > {p(query.after_id)}"]
    if query.identity:
        where.append(f"identity = {p(query.identity)}")
    if query.action:
        if query.action.endswith("."):
            # a family of actions; the names are ours, no LIKE wildcards in them
            where.append(f"action LIKE {p(query.action + '%')}")
        else:
            where.append(f"action = {p(query.action)}")
    if query.hospital_id:
        where.append(f"hospital_id = {p(query.hospital_id)}")
    # times are stored in one fixed-width UTC form, so text order is time order
    if query.since is not None:
        where.append(f"at >= {p(format_at(query.since))}")
    if query.until is not None:
        where.append(f"at < {p(format_at(query.until))}")
    return " AND ".join(where), p.args
