"""The store's tables beyond messages and outbox: crosswalk, catalogs, ledger, CDS.

Each part is a protocol that both backends implement over the deployment's one database
(the SQLite file, or the PostgreSQL schema every replica shares), so that a change made
through any replica is the state every replica reads. Changes that processes keep in
memory (crosswalk, catalogs, ledger view) are serialised per :class:`~gateway.store.base.Topic`
and announced with it; a process catches up by reading what was appended after the last
version it applied.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from codes import CatalogKind, CatalogVersion
from codes.catalog_files import VersionInfo
from gateway.store.ledger_records import CdsTables, LedgerTables
from mappings.changes import AuditRecord
from mappings.crosswalk import Crosswalk

__all__ = [
    "AuditQuery",
    "CatalogTables",
    "CdsTables",
    "CrosswalkTables",
    "Decide",
    "LedgerTables",
    "StoredAudit",
]


# the changes stored since the caller's crosswalk → the records of the caller's change
Decide = Callable[[list["StoredAudit"]], Sequence[AuditRecord]]


@dataclass(frozen=True, slots=True)
class StoredAudit:
    """An audit record with its position in the trail (ascending in commit order)."""

    id: int
    record: AuditRecord


@dataclass(frozen=True, slots=True)
class AuditQuery:
    """Which audit records an operator asks for (newest first)."""

    hospital_id: str | None = None
    item_code: str | None = None
    user: str | None = None
    since: datetime | None = None
    limit: int = 200


class CrosswalkTables(Protocol):
    """The crosswalk's entries and the audit trail that explains every change."""

    async def load(self) -> tuple[Crosswalk, int]:
        """Every entry, and the id of the last audit record they include (0: none)."""
        ...

    async def is_new(self) -> bool:
        """True when the crosswalk never held an entry (no entries and no audit)."""
        ...

    async def change(self, base: int, decide: Decide) -> tuple[list[StoredAudit],
                                                                list[StoredAudit]]:
        """Decide and store one change, serialised with every other process's changes.

        In one transaction holding the crosswalk's lock: read the audit records after
        ``base`` (changes the caller has not applied yet), pass them to ``decide``, which
        returns the records of the new change decided on top of them, and store those
        (entries and audit). Audit ids ascend in commit order; every process hears
        :attr:`~gateway.store.base.Topic.CROSSWALK` afterwards.

        Returns:
            The records after ``base`` that ``decide`` saw, and the records stored.

        Raises:
            Whatever ``decide`` raises (nothing is stored); StoreError: nothing was stored.
        """
        ...

    async def changes_after(self, audit_id: int) -> list[StoredAudit]:
        """The audit records after ``audit_id``, oldest first: how to catch up."""
        ...

    async def audit(self, query: AuditQuery) -> list[StoredAudit]:
        """Audit records matching ``query``, newest first."""
        ...


class CatalogTables(Protocol):
    """Stored versions of the national drug and consumable catalogs."""

    async def save(self, version: CatalogVersion) -> VersionInfo:
        """Store a version (replacing one with the same label, which moves to the end).

        Raises:
            CatalogError: the label is unusable.
            StoreError: nothing was written.
        """
        ...

    async def versions(self, kind: CatalogKind) -> list[VersionInfo]:
        """The stored versions of a kind, oldest import first."""
        ...

    async def load(self, kind: CatalogKind, version: str) -> CatalogVersion:
        """One stored version.

        Raises:
            CatalogError: no such version is stored.
        """
        ...
