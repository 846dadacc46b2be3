"""The crosswalk and the national catalogs in the SQLite store."""

from __future__ import annotations

import sqlite3
from typing import Any

from codes import CatalogError, CatalogKind, CatalogVersion
from codes.catalog_files import VersionInfo, check_label, version_from_bytes, version_to_bytes
from gateway.store.base import Topic
from gateway.store.crosswalk_rows import (
    ENTRY_COLUMNS,
    audit_args,
    audit_from_row,
    audit_where,
    crosswalk_from_rows,
    entry_args,
    entry_key_args,
    version_info,
)
from gateway.store.sqlite.access import SqliteAccess
from gateway.store.state import AuditQuery, Decide, StoredAudit
from mappings.crosswalk import Crosswalk

__all__ = ["SqliteCatalogs", "SqliteCrosswalk"]


class SqliteCrosswalk:
    """Crosswalk entries and their audit trail (``crosswalk_entries``, ``crosswalk_audit``)."""

    def __init__(self, store: SqliteAccess) -> None:
        self._store = store

    async def load(self) -> tuple[Crosswalk, int]:
        """Every entry, and the last audit id they include."""
        def read(con: sqlite3.Connection) -> tuple[Crosswalk, int]:
            con.execute("BEGIN")  # one snapshot for both
            try:
                rows = con.execute(f"SELECT {ENTRY_COLUMNS} FROM crosswalk_entries").fetchall()
                last = con.execute("SELECT coalesce(max(id), 0) FROM crosswalk_audit").fetchone()
            finally:
                con.execute("COMMIT")
            return crosswalk_from_rows(rows), int(last[0])
        return await self._store.read(read)

    async def is_new(self) -> bool:
        """True when the crosswalk never held an entry."""
        def read(con: sqlite3.Connection) -> bool:
            row = con.execute("SELECT (SELECT count(*) FROM crosswalk_entries)"
                              " + (SELECT count(*) FROM crosswalk_audit)").fetchone()
            return int(row[0]) == 0
        return await self._store.read(read)

    async def change(self, base: int, decide: Decide) -> tuple[list[StoredAudit],
                                                                list[StoredAudit]]:
        """Decide and store one change in one transaction (the single writer serialises)."""
        def write(con: sqlite3.Connection) -> tuple[list[StoredAudit], list[StoredAudit]]:
            missed = [audit_from_row(r) for r in con.execute(
                "SELECT id, record FROM crosswalk_audit WHERE id > ? ORDER BY id", (base,))]
            records = decide(missed)
            if not records:
                return missed, []
            con.execute("UPDATE state_heads SET version = version + 1 WHERE topic = ?",
                        (Topic.CROSSWALK.value,))
            stored = []
            for r in records:
                if r.before is not None:
                    con.execute("DELETE FROM crosswalk_entries WHERE hospital_id = ?"
                                " AND item_code = ? AND valid_from = ?",
                                entry_key_args(r.before))
                if r.after is not None:
                    con.execute(f"INSERT OR REPLACE INTO crosswalk_entries ({ENTRY_COLUMNS})"
                                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", entry_args(r.after))
                cur = con.execute(
                    "INSERT INTO crosswalk_audit (at, user_name, action, hospital_id,"
                    " item_code, record) VALUES (?, ?, ?, ?, ?, ?)", audit_args(r))
                stored.append(StoredAudit(cur.lastrowid or 0, r))
            return missed, stored
        missed, stored = await self._store.write(write)
        if stored:
            self._store.changed(Topic.CROSSWALK)
        return missed, stored

    async def changes_after(self, audit_id: int) -> list[StoredAudit]:
        """Audit records after ``audit_id``, oldest first."""
        def read(con: sqlite3.Connection) -> list[Any]:
            return con.execute("SELECT id, record FROM crosswalk_audit WHERE id > ?"
                               " ORDER BY id", (audit_id,)).fetchall()
        return [audit_from_row(r) for r in await self._store.read(read)]

    async def audit(self, query: AuditQuery) -> list[StoredAudit]:
        """Audit records matching ``query``, newest first."""
        where, args = audit_where(query, lambda n: "?")

        def read(con: sqlite3.Connection) -> list[Any]:
            return con.execute(f"SELECT id, record FROM crosswalk_audit WHERE {where}"
                               " ORDER BY id DESC", args).fetchall()
        found = [audit_from_row(r) for r in await self._store.read(read)]
        if query.since is not None:
            # timestamps carry their offsets, so they compare as instants, not as text
            found = [a for a in found if a.record.at >= query.since]
        return found[:query.limit]


class SqliteCatalogs:
    """Stored national catalog versions (``catalog_versions``)."""

    def __init__(self, store: SqliteAccess) -> None:
        self._store = store

    async def save(self, version: CatalogVersion) -> VersionInfo:
        """Store a version; one with the same label is replaced and moves to the end."""
        label = check_label(version.version)
        body = version_to_bytes(version)

        def write(con: sqlite3.Connection) -> None:
            position = con.execute(
                "UPDATE state_heads SET version = version + 1 WHERE topic = ?"
                " RETURNING version", (Topic.CATALOG.value,)).fetchone()[0]
            con.execute(
                "INSERT OR REPLACE INTO catalog_versions (kind, version, position, imported_at,"
                " entries, source, body) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (version.kind.value, label, position, version.imported_at.isoformat(),
                 len(version.entries), version.source, body))
        await self._store.write(write, Topic.CATALOG)
        return VersionInfo(label, version.imported_at, len(version.entries), version.source,
                           f"catalog_versions/{version.kind.value}/{label}")

    async def versions(self, kind: CatalogKind) -> list[VersionInfo]:
        """The stored versions of a kind, oldest import first."""
        def read(con: sqlite3.Connection) -> list[Any]:
            return con.execute(
                "SELECT kind, version, imported_at, entries, source FROM catalog_versions"
                " WHERE kind = ? ORDER BY position", (kind.value,)).fetchall()
        return [version_info(r) for r in await self._store.read(read)]

    async def load(self, kind: CatalogKind, version: str) -> CatalogVersion:
        """One stored version."""
        def read(con: sqlite3.Connection) -> Any:
            return con.execute("SELECT body FROM catalog_versions WHERE kind = ?"
                               " AND version = ?", (kind.value, version)).fetchone()
        row = await self._store.read(read)
        if row is None:
            raise CatalogError(f"no {kind} catalog version {version!r} is stored")
        return version_from_bytes(row[0], f"{kind} catalog version {version!r}")
