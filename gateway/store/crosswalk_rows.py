"""Crosswalk and catalog rows as both stores write and read them."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import orjson

from codes.catalog_files import VersionInfo
from gateway.store.state import AuditQuery, StoredAudit
from mappings.changes import AuditRecord
from mappings.crosswalk import Crosswalk
from mappings.entry import CrosswalkEntry

__all__ = ["ENTRY_COLUMNS", "audit_args", "audit_from_row", "audit_where",
           "crosswalk_from_rows", "entry_args", "entry_key_args", "version_info"]

# in the order entry_args gives them
ENTRY_COLUMNS = ("hospital_id, item_code, valid_from, national_code, item_name, hospital_unit,"
                 " national_unit, factor, valid_to")


def _day(text: str) -> date | None:
    return date.fromisoformat(text) if text else None


def _iso(day: date | None) -> str:
    return day.isoformat() if day else ""


def entry_args(e: CrosswalkEntry) -> tuple[str, ...]:
    """An entry as the values of :data:`ENTRY_COLUMNS` (dates as ISO text, '' when open;
    the factor as decimal text, so 0.1 stays 0.1)."""
    return (e.hospital_id, e.item_code, _iso(e.valid_from), e.national_code, e.item_name,
            e.hospital_unit, e.national_unit, str(e.factor), _iso(e.valid_to))


def entry_key_args(e: CrosswalkEntry) -> tuple[str, str, str]:
    """An entry's primary key values."""
    return (e.hospital_id, e.item_code, _iso(e.valid_from))


def crosswalk_from_rows(rows: Sequence[Sequence[Any]]) -> Crosswalk:
    """A crosswalk from rows selected with :data:`ENTRY_COLUMNS`."""
    return Crosswalk(
        CrosswalkEntry(h, i, n, name, hu, nu, Decimal(f), _day(vf), _day(vt))
        for h, i, vf, n, name, hu, nu, f, vt in rows)


def audit_args(r: AuditRecord) -> tuple[Any, ...]:
    """The columns of an audit row: at, user_name, action, hospital_id, item_code, record."""
    subject = r.after or r.before
    assert subject is not None  # every record names an entry
    return (r.at.isoformat(), r.user, r.action.value, subject.hospital_id, subject.item_code,
            orjson.dumps(r.to_dict()))


def audit_from_row(row: Sequence[Any]) -> StoredAudit:
    """An audit record from ``(id, record)``."""
    return StoredAudit(int(row[0]), AuditRecord.from_dict(orjson.loads(bytes(row[1]))))


def audit_where(query: AuditQuery, mark: Callable[[int], str]) -> tuple[str, list[Any]]:
    """A WHERE clause over ``crosswalk_audit`` for ``query`` (``since`` is checked by the
    caller: timestamps with offsets do not compare as text)."""
    where: list[str] = []
    args: list[Any] = []
    for column, value in (("hospital_id", query.hospital_id), ("item_code", query.item_code),
                          ("user_name", query.user)):
        if value:
            args.append(value)
            where.append(f"{column} = {mark(len(args))}")
    return " AND ".join(where) or "TRUE", args


def version_info(row: Sequence[Any]) -> VersionInfo:
    """A catalog version's index line from ``(kind, version, imported_at, entries, source)``."""
    kind, version, imported_at, entries, source = row
    return VersionInfo(version, datetime.fromisoformat(imported_at), int(entries), source,
                       f"catalog_versions/{kind}/{version}")
