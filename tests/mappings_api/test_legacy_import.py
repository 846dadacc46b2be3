"""A data directory of an earlier release: crosswalk.db and catalogs/ move into the store once."""

from __future__ import annotations

import sqlite3
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import orjson
from helpers import DATA, HOSPITAL

from canonical.model import CHINA_TZ
from codes.catalog_files import import_catalog_file, save_version, version_from_import
from mappings.changes import AuditAction, AuditRecord
from mappings.entry import CrosswalkEntry

CATALOG = DATA / "codes" / "nhsa_drug_catalog_sample.csv"

# the schema of <data_dir>/crosswalk.db as earlier releases wrote it
_OLD_SCHEMA = """
CREATE TABLE schema_version (version INTEGER NOT NULL);
INSERT INTO schema_version VALUES (1);
CREATE TABLE entries (
    hospital_id TEXT NOT NULL, item_code TEXT NOT NULL, valid_from TEXT NOT NULL,
    national_code TEXT NOT NULL, item_name TEXT NOT NULL, hospital_unit TEXT NOT NULL,
    national_unit TEXT NOT NULL, factor TEXT NOT NULL, valid_to TEXT NOT NULL,
    PRIMARY KEY (hospital_id, item_code, valid_from));
CREATE TABLE audit (
    id INTEGER PRIMARY KEY, at TEXT NOT NULL, user TEXT NOT NULL, action TEXT NOT NULL,
    hospital_id TEXT NOT NULL, item_code TEXT NOT NULL, record BLOB NOT NULL);
"""


def _entry(item: str, code: str, name: str, factor: int) -> CrosswalkEntry:
    return CrosswalkEntry(HOSPITAL, item, code, item_name=name, hospital_unit="盒",
                          national_unit="片", factor=Decimal(factor))


def _old_data_dir(var: Path) -> list[AuditRecord]:
    """crosswalk.db with three changes (one item created then updated, one created then
    deleted, one created) and one catalog version, written as the old release wrote them."""
    var.mkdir(parents=True)
    at = datetime(2026, 3, 2, 9, 30, tzinfo=CHINA_TZ)
    anastrozole = _entry("Y0012345", "XL02BGA045A001010104520", "阿那曲唑片", 14)
    anastrozole_28 = _entry("Y0012345", "XL02BGA045A001010104520", "阿那曲唑片", 28)
    gone = _entry("Y0099999", "XL02BGA045A001010104641", "阿那曲唑片(海正)", 14)
    kept = _entry("Y0077001", "XL02BBB085A001010100665", "比卡鲁胺片", 28)
    records = [
        AuditRecord(at, "config-import", AuditAction.CREATE, None, anastrozole),
        AuditRecord(at, "药剂科 李娜", AuditAction.CREATE, None, gone),
        AuditRecord(at, "药剂科 李娜", AuditAction.CREATE, None, kept),
        AuditRecord(at, "信息科 王强", AuditAction.UPDATE, anastrozole, anastrozole_28,
                    note="按新版包装调整"),
        AuditRecord(at, "信息科 王强", AuditAction.DELETE, gone, None),
    ]
    con = sqlite3.connect(var / "crosswalk.db")
    con.executescript(_OLD_SCHEMA)
    for r in records:
        subject = r.after or r.before
        assert subject is not None
        con.execute("INSERT INTO audit (at, user, action, hospital_id, item_code, record)"
                    " VALUES (?, ?, ?, ?, ?, ?)", (r.at.isoformat(), r.user, r.action.value,
                                                   subject.hospital_id, subject.item_code,
                                                   orjson.dumps(r.to_dict())))
    for e in (anastrozole_28, kept):
        con.execute("INSERT INTO entries VALUES (?, ?, '', ?, ?, ?, ?, ?, '')",
                    (e.hospital_id, e.item_code, e.national_code, e.item_name,
                     e.hospital_unit, e.national_unit, str(e.factor)))
    con.commit()
    con.close()
    save_version(var, version_from_import(import_catalog_file(CATALOG), "2025-first",
                                          imported_at=at, source=CATALOG.name))
    return records


async def test_an_old_data_directory_moves_into_the_store_once(launcher) -> None:
    var = launcher.tmp / "var"
    _old_data_dir(var)
    gw = await launcher.start(crosswalk={})  # no seed CSV: the old database is the crosswalk
    _, found = await gw.api("GET", "/entries", expect=200)
    entries = {e["item_code"]: e for e in found["entries"]}
    assert set(entries) == {"Y0012345", "Y0077001"}  # the deleted item stays deleted
    assert entries["Y0012345"]["factor"] == "28"  # the update, not the first version
    _, history = await gw.api("GET", "/audit", params={"item": "Y0012345"}, expect=200)
    assert [(a["action"], a["user"], a["note"]) for a in history["audit"]] == [
        ("update", "信息科 王强", "按新版包装调整"), ("create", "config-import", "")]
    _, catalogs = await gw.api("GET", "/catalogs", expect=200)
    assert [(v["version"], v["entries"]) for v in catalogs["drug"]] == [("2025-first", 7703)]
    # the old files are kept under another name, and never read again
    assert not (var / "crosswalk.db").exists() and (var / "crosswalk.db.imported").exists()
    assert not (var / "catalogs").exists() and (var / "catalogs.imported").is_dir()
    await launcher.stop(gw)

    gw = await launcher.start(crosswalk={})
    _, again = await gw.api("GET", "/audit", expect=200)
    assert len(again["audit"]) == 5  # imported once, not twice
    _, catalogs = await gw.api("GET", "/catalogs", expect=200)
    assert len(catalogs["drug"]) == 1


async def test_an_old_crosswalk_is_not_imported_over_a_crosswalk_in_the_store(launcher) -> None:
    gw = await launcher.start()  # seeds the store from the sample CSV
    _, before = await gw.api("GET", "/entries", params={"limit": "1000"}, expect=200)
    await launcher.stop(gw)
    _old_data_dir(launcher.tmp / "var2")
    (launcher.tmp / "var2" / "crosswalk.db").rename(launcher.tmp / "var" / "crosswalk.db")
    gw = await launcher.start()
    _, after = await gw.api("GET", "/entries", params={"limit": "1000"}, expect=200)
    assert after == before
    assert (launcher.tmp / "var" / "crosswalk.db").exists()  # left for the operator to judge


async def test_catalog_versions_the_store_lacks_are_imported_one_by_one(
        launcher, tmp_path) -> None:
    """An import cut short (one version stored, the folder not yet renamed) goes on."""
    from codes.catalog_files import load_version
    from gateway.crosswalk.legacy import import_legacy_catalogs
    from gateway.store.sqlite import SqliteStore

    var = tmp_path / "old"
    var.mkdir()
    at = datetime(2026, 3, 2, 9, 30, tzinfo=CHINA_TZ)
    imported = import_catalog_file(CATALOG)
    for label in ("2025-first", "2025-second"):
        save_version(var, version_from_import(imported, label, imported_at=at,
                                              source=CATALOG.name))
    store = SqliteStore(tmp_path / "gw.db")
    await store.start()
    try:
        from codes import CatalogKind

        await store.catalogs.save(load_version(var, CatalogKind.DRUG, "2025-first"))
        assert await import_legacy_catalogs(var, store) == 1
        assert [v.version for v in await store.catalogs.versions(CatalogKind.DRUG)] == [
            "2025-first", "2025-second"]
        assert (var / "catalogs.imported").is_dir()
    finally:
        await store.close()
