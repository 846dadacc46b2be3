"""Moving a data directory of an earlier release into the store, once.

Earlier releases kept the crosswalk in ``<data_dir>/crosswalk.db`` (entries and audit)
and national catalog versions under ``<data_dir>/catalogs/<kind>/``. At the first start
of this release the store takes them over: the audit trail is replayed into the store
(so the entries and their whole history arrive together), the catalog versions are
stored in their import order, and the old file and folder are renamed ``*.imported`` so
that nothing reads them again. A store that already has a crosswalk is never touched.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from pathlib import Path

import orjson

from codes import CatalogKind
from codes.catalog_files import list_versions, load_version
from gateway.store.base import Store
from mappings.changes import AuditRecord

__all__ = ["import_legacy_catalogs", "import_legacy_crosswalk"]

log = logging.getLogger(__name__)


def _read_audit(path: Path) -> list[AuditRecord]:
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        rows = con.execute("SELECT record FROM audit ORDER BY id").fetchall()
    finally:
        con.close()
    return [AuditRecord.from_dict(orjson.loads(r[0])) for r in rows]


def _retire(path: Path) -> None:
    target = path.with_name(path.name + ".imported")
    path.rename(target)
    for suffix in ("-wal", "-shm"):
        side = path.with_name(path.name + suffix)
        if side.exists():
            side.rename(target.with_name(target.name + suffix))


async def import_legacy_crosswalk(data_dir: Path, store: Store) -> int:
    """Replay ``<data_dir>/crosswalk.db``'s audit trail into a store with no crosswalk.

    Returns:
        How many audit records were imported (0: nothing to import).
    """
    path = Path(data_dir) / "crosswalk.db"
    if not path.exists():
        return 0
    if not await store.crosswalk.is_new():
        log.warning("%s is left as it is: the store already holds a crosswalk", path)
        return 0
    records = await asyncio.get_running_loop().run_in_executor(None, _read_audit, path)
    if records:
        _, stored = await store.crosswalk.change(0, lambda missed: () if missed else records)
        if not stored:  # another replica's file was imported first
            log.warning("%s is left as it is: another gateway imported its crosswalk into the"
                        " store first", path)
            return 0
    _retire(path)
    log.info("crosswalk: %d audited change(s) moved from %s into the store", len(records), path)
    return len(records)


async def import_legacy_catalogs(data_dir: Path, store: Store) -> int:
    """Store the versions under ``<data_dir>/catalogs/`` that the store lacks (by label).

    Returns:
        How many versions were imported.
    """
    folder = Path(data_dir) / "catalogs"
    if not folder.is_dir():
        return 0
    loop = asyncio.get_running_loop()
    n = 0
    for kind in CatalogKind:
        # version by version, so that an import cut short goes on where it stopped
        stored = {v.version for v in await store.catalogs.versions(kind)}
        for info in list_versions(data_dir, kind):
            if info.version in stored:
                continue
            version = await loop.run_in_executor(None, load_version, data_dir, kind,
                                                 info.version)
            await store.catalogs.save(version)
            n += 1
    folder.rename(folder.with_name("catalogs.imported"))
    log.info("catalogs: %d version(s) moved from %s into the store", n, folder)
    return n
