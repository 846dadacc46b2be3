"""The crosswalk and the national catalogs in the PostgreSQL store."""

from __future__ import annotations

from canonical.errors import StoreError
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
from gateway.store.postgres.access import PostgresAccess
from gateway.store.postgres.driver import DB_ERRORS
from gateway.store.state import AuditQuery, Decide, StoredAudit
from mappings.crosswalk import Crosswalk

__all__ = ["PostgresCatalogs", "PostgresCrosswalk"]


def _mark(n: int) -> str:
    return f"${n}"


class PostgresCrosswalk:
    """Crosswalk entries and their audit trail, shared by every replica."""

    def __init__(self, store: PostgresAccess) -> None:
        self._store = store

    async def load(self) -> tuple[Crosswalk, int]:
        """Every entry, and the last audit id they include (read in one snapshot)."""
        async with self._store.pool.acquire() as con, con.transaction(
                isolation="repeatable_read", readonly=True):
            rows = await con.fetch(f"SELECT {ENTRY_COLUMNS} FROM crosswalk_entries")
            last = await con.fetchval("SELECT coalesce(max(id), 0) FROM crosswalk_audit")
        return crosswalk_from_rows(rows), int(last)

    async def is_new(self) -> bool:
        """True when the crosswalk never held an entry."""
        n = await self._store.pool.fetchval("SELECT (SELECT count(*) FROM crosswalk_entries)"
                                            " + (SELECT count(*) FROM crosswalk_audit)")
        return int(n) == 0

    async def change(self, base: int, decide: Decide) -> tuple[list[StoredAudit],
                                                                list[StoredAudit]]:
        """Decide and store one change in one transaction holding the crosswalk's lock, so
        a change through another replica can neither interleave nor be overtaken."""
        store = self._store
        try:
            async with store.pool.acquire() as con, con.transaction():
                await store.lock_topic(con, Topic.CROSSWALK)
                missed = [audit_from_row(r) for r in await con.fetch(
                    "SELECT id, record FROM crosswalk_audit WHERE id > $1 ORDER BY id", base)]
                records = decide(missed)
                stored = []
                for r in records:
                    if r.before is not None:
                        await con.execute("DELETE FROM crosswalk_entries WHERE hospital_id = $1"
                                          " AND item_code = $2 AND valid_from = $3",
                                          *entry_key_args(r.before))
                    if r.after is not None:
                        await con.execute(
                            f"INSERT INTO crosswalk_entries ({ENTRY_COLUMNS}) VALUES ($1, $2,"
                            " $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (hospital_id, item_code,"
                            " valid_from) DO UPDATE SET national_code = excluded.national_code,"
                            " item_name = excluded.item_name,"
                            " hospital_unit = excluded.hospital_unit,"
                            " national_unit = excluded.national_unit, factor = excluded.factor,"
                            " valid_to = excluded.valid_to", *entry_args(r.after))
                    audit_id = await con.fetchval(
                        "INSERT INTO crosswalk_audit (at, user_name, action, hospital_id,"
                        " item_code, record) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
                        *audit_args(r))
                    stored.append(StoredAudit(int(audit_id), r))
                if stored:
                    await store.notify(con, Topic.CROSSWALK)
        except DB_ERRORS as exc:
            raise StoreError(f"crosswalk change not stored: {exc}") from exc
        if stored:
            store.changed(Topic.CROSSWALK)
        return missed, stored

    async def changes_after(self, audit_id: int) -> list[StoredAudit]:
        """Audit records after ``audit_id``, oldest first."""
        rows = await self._store.pool.fetch(
            "SELECT id, record FROM crosswalk_audit WHERE id > $1 ORDER BY id", audit_id)
        return [audit_from_row(r) for r in rows]

    async def audit(self, query: AuditQuery) -> list[StoredAudit]:
        """Audit records matching ``query``, newest first."""
        where, args = audit_where(query, _mark)
        rows = await self._store.pool.fetch(
            f"SELECT id, record FROM crosswalk_audit WHERE {where} ORDER BY id DESC", *args)
        found = [audit_from_row(r) for r in rows]
        if query.since is not None:
            found = [a for a in found if a.record.at >= query.since]
        return found[:query.limit]


class PostgresCatalogs:
    """Stored national catalog versions, shared by every replica."""

    def __init__(self, store: PostgresAccess) -> None:
        self._store = store

    async def save(self, version: CatalogVersion) -> VersionInfo:
        """Store a version; one with the same label is replaced and moves to the end."""
        label = check_label(version.version)
        body = version_to_bytes(version)
        store = self._store
        async with store.pool.acquire() as con, con.transaction():
            position = await store.lock_topic(con, Topic.CATALOG)
            await con.execute(
                "INSERT INTO catalog_versions (kind, version, position, imported_at, entries,"
                " source, body) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (kind, version)"
                " DO UPDATE SET position = excluded.position,"
                " imported_at = excluded.imported_at, entries = excluded.entries,"
                " source = excluded.source, body = excluded.body",
                version.kind.value, label, position, version.imported_at.isoformat(),
                len(version.entries), version.source, body)
            await store.notify(con, Topic.CATALOG)
        store.changed(Topic.CATALOG)
        return VersionInfo(label, version.imported_at, len(version.entries), version.source,
                           f"catalog_versions/{version.kind.value}/{label}")

    async def versions(self, kind: CatalogKind) -> list[VersionInfo]:
        """The stored versions of a kind, oldest import first."""
        rows = await self._store.pool.fetch(
            "SELECT kind, version, imported_at, entries, source FROM catalog_versions"
            " WHERE kind = $1 ORDER BY position", kind.value)
        return [version_info(r) for r in rows]

    async def load(self, kind: CatalogKind, version: str) -> CatalogVersion:
        """One stored version."""
        body = await self._store.pool.fetchval(
            "SELECT body FROM catalog_versions WHERE kind = $1 AND version = $2",
            kind.value, version)
        if body is None:
            raise CatalogError(f"no {kind} catalog version {version!r} is stored")
        return version_from_bytes(bytes(body), f"{kind} catalog version {version!r}")
