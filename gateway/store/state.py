"""The store's tables beyond messages and outbox: crosswalk, catalogs, ledger, CDS.

Each part is a protocol that both backends implement over the deployment's one database
(the SQLite file, or the PostgreSQL schema every replica shares), so that a change made
through any replica is the state every replica reads. Changes that processes keep in
memory (crosswalk, catalogs, ledger view) are serialised per :class:`~gateway.store.base.Topic`
and announced with it; a process catches up by reading what was appended after the last
version it applied.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from canonical.errors import GatewayError
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
    "LedgerTables",
    "StaleCrosswalk",
    "StoredAudit",
]


class StaleCrosswalk(GatewayError):
    """A crosswalk change was decided on an older crosswalk than the store's: another
    change was stored first. Nothing was written; catch up and decide again."""


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

    async def apply(self, records: Sequence[AuditRecord], *, base: int) -> list[StoredAudit]:
        """Write the changes the records describe and the records, in one transaction.

        Changes are serialised across processes, so audit ids ascend in commit order;
        every process hears :attr:`~gateway.store.base.Topic.CROSSWALK` afterwards.

        Args:
            records: in the order the changes were made.
            base: the last audit id of the crosswalk the changes were decided on.

        Raises:
            StaleCrosswalk: a change was stored after ``base``; nothing was written.
            StoreError: nothing was written.
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
