"""Editing the crosswalk: create, update, delete, bulk import, each with its audit record.

Every change is a pure function from (crosswalk, change, who, when) to the new
crosswalk and an immutable :class:`AuditRecord`; the store persists both in one
transaction. A national code is checked through ``codes`` before it is accepted,
because a wrong code sends every later purchase of that item to the wrong
product on the provincial platform.
"""

from __future__ import annotations

from collections.abc import Container, Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from codes import validate
from mappings.crosswalk import Crosswalk
from mappings.entry import (
    CodeValidator,
    CrosswalkEntry,
    CrosswalkEntryError,
    EntryKey,
    describe_validity,
    entry_from_dict,
    entry_problems,
    entry_to_dict,
)

__all__ = [
    "AuditAction",
    "AuditRecord",
    "apply_import",
    "create_entry",
    "delete_entry",
    "replay_records",
    "update_entry",
]


class AuditAction(StrEnum):
    """What a change did to one entry."""

    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """Who changed which crosswalk entry, when, and what it was before and after."""

    at: datetime
    user: str
    action: AuditAction
    before: CrosswalkEntry | None
    after: CrosswalkEntry | None
    note: str = ""

    @property
    def hospital_id(self) -> str:
        """The hospital of the entry the record is about."""
        entry = self.after or self.before
        assert entry is not None  # every record names an entry
        return entry.hospital_id

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict for the audit table."""
        return {
            "at": self.at.isoformat(),
            "user": self.user,
            "action": self.action.value,
            "before": entry_to_dict(self.before) if self.before else None,
            "after": entry_to_dict(self.after) if self.after else None,
            "note": self.note,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AuditRecord:
        """Rebuild a record written by :meth:`to_dict`."""
        return cls(
            at=datetime.fromisoformat(data["at"]),
            user=data["user"],
            action=AuditAction(data["action"]),
            before=entry_from_dict(data["before"]) if data.get("before") else None,
            after=entry_from_dict(data["after"]) if data.get("after") else None,
            note=data.get("note") or "",
        )


def _problems(
    others: Iterable[CrosswalkEntry],
    entry: CrosswalkEntry,
    *,
    replacing: CrosswalkEntry | None,
    user: str,
    validate_code: CodeValidator | None,
    known_codes: Container[str] | None,
) -> list[str]:
    problems = entry_problems(entry, validate_code=validate_code, known_codes=known_codes)
    if not user.strip():
        problems.append("user is empty: every crosswalk change names who made it")
    for other in others:
        if replacing is not None and other.key == replacing.key:
            continue
        if other.overlaps(entry):
            problems.append(
                f"{entry.hospital_id}/{entry.item_code}: {describe_validity(entry)} overlaps "
                f"the entry valid {describe_validity(other)} (→ {other.national_code}); "
                "close that one with 失效日期 first or update it"
            )
    return problems


def _check(
    crosswalk: Crosswalk,
    entry: CrosswalkEntry,
    *,
    replacing: CrosswalkEntry | None,
    user: str,
    validate_code: CodeValidator | None,
    known_codes: Container[str] | None,
) -> None:
    problems = _problems(crosswalk.ranges(entry.hospital_id, entry.item_code), entry,
                         replacing=replacing, user=user, validate_code=validate_code,
                         known_codes=known_codes)
    if problems:
        raise CrosswalkEntryError(problems)


def create_entry(
    crosswalk: Crosswalk,
    entry: CrosswalkEntry,
    *,
    user: str,
    at: datetime,
    validate_code: CodeValidator | None = validate,
    known_codes: Container[str] | None = None,
    note: str = "",
) -> tuple[Crosswalk, AuditRecord]:
    """Add a new entry.

    Args:
        crosswalk: the current crosswalk (left unchanged).
        entry: the entry to add; its range must not overlap the item's other ranges.
        user: who makes the change.
        at: when (timezone-aware, from the caller's clock).
        validate_code: national-code validator (``codes.validate``); None skips it.
        known_codes: the catalog's national codes, to refuse codes not in it.
        note: free text kept in the audit record (e.g. "按2024版目录调整").

    Returns:
        The new crosswalk and the audit record.

    Raises:
        CrosswalkEntryError: with every problem (invalid code, bad factor, overlap …).
    """
    _check(crosswalk, entry, replacing=None, user=user, validate_code=validate_code,
           known_codes=known_codes)
    record = AuditRecord(at=at, user=user, action=AuditAction.CREATE, before=None, after=entry,
                         note=note)
    return crosswalk.with_changes(add=[entry]), record


def _existing(crosswalk: Crosswalk, key: EntryKey) -> CrosswalkEntry:
    found = crosswalk.get(key)
    if found is None:
        hospital, item, valid_from = key
        since = f" starting {valid_from}" if valid_from else " without a start date"
        ranges = crosswalk.ranges(hospital, item)
        known = ", ".join(describe_validity(e) for e in ranges) or "none"
        raise CrosswalkEntryError(
            [f"{hospital}/{item}: no entry{since} (entries of this item: {known})"])
    return found


def update_entry(
    crosswalk: Crosswalk,
    key: EntryKey,
    after: CrosswalkEntry,
    *,
    user: str,
    at: datetime,
    validate_code: CodeValidator | None = validate,
    known_codes: Container[str] | None = None,
    note: str = "",
) -> tuple[Crosswalk, AuditRecord]:
    """Replace the entry identified by ``key`` (hospital, item, valid_from) with ``after``.

    ``after`` must keep the hospital and item code; anything else may change,
    including the start date.

    Returns:
        The new crosswalk and the audit record (before = the replaced entry).

    Raises:
        CrosswalkEntryError: no such entry, nothing changed, the item would change,
            or ``after`` is invalid.
    """
    before = _existing(crosswalk, key)
    if (after.hospital_id, after.item_code) != (before.hospital_id, before.item_code):
        raise CrosswalkEntryError([
            f"{before.hospital_id}/{before.item_code}: an update cannot move the entry to "
            f"{after.hospital_id}/{after.item_code}; delete it and create the new one"])
    if after == before:
        raise CrosswalkEntryError([f"{before.hospital_id}/{before.item_code}: nothing changed"])
    _check(crosswalk, after, replacing=before, user=user, validate_code=validate_code,
           known_codes=known_codes)
    record = AuditRecord(at=at, user=user, action=AuditAction.UPDATE, before=before, after=after,
                         note=note)
    return crosswalk.with_changes(remove=[before], add=[after]), record


def delete_entry(
    crosswalk: Crosswalk,
    key: EntryKey,
    *,
    user: str,
    at: datetime,
    note: str = "",
) -> tuple[Crosswalk, AuditRecord]:
    """Remove the entry identified by ``key``; its lines become unmapped again.

    Returns:
        The new crosswalk and the audit record (after = None).

    Raises:
        CrosswalkEntryError: no such entry, or no user named.
    """
    before = _existing(crosswalk, key)
    if not user.strip():
        raise CrosswalkEntryError(["user is empty: every crosswalk change names who made it"])
    record = AuditRecord(at=at, user=user, action=AuditAction.DELETE, before=before, after=None,
                         note=note)
    return crosswalk.with_changes(remove=[before]), record


def apply_import(
    crosswalk: Crosswalk,
    entries: Iterable[CrosswalkEntry],
    *,
    user: str,
    at: datetime,
    validate_code: CodeValidator | None = validate,
    known_codes: Container[str] | None = None,
    note: str = "",
) -> tuple[Crosswalk, tuple[AuditRecord, ...]]:
    """Apply an imported file: new keys are created, changed ones updated, equal ones skipped.

    All or nothing: if any entry is refused, nothing is applied.

    Returns:
        The new crosswalk and one audit record per created or updated entry.

    Raises:
        CrosswalkEntryError: with the problems of every refused entry.
    """
    working: dict[tuple[str, str], list[CrosswalkEntry]] = {}
    removes: list[CrosswalkEntry] = []
    adds: dict[EntryKey, CrosswalkEntry] = {}
    records: list[AuditRecord] = []
    problems: list[str] = []
    for entry in entries:
        item = (entry.hospital_id, entry.item_code)
        current = working.get(item)
        if current is None:
            current = working[item] = list(crosswalk.ranges(*item))
        before = next((e for e in current if e.key == entry.key), None)
        if before == entry:
            continue
        found = _problems(current, entry, replacing=before, user=user, validate_code=validate_code,
                          known_codes=known_codes)
        if found:
            problems.extend(found)
            continue
        action = AuditAction.CREATE if before is None else AuditAction.UPDATE
        records.append(AuditRecord(at=at, user=user, action=action, before=before, after=entry,
                                   note=note))
        if before is not None:
            current.remove(before)
            # replacing a row added earlier in the same import only changes what is added
            if adds.pop(before.key, None) is None:
                removes.append(before)
        current.append(entry)
        adds[entry.key] = entry
    if problems:
        raise CrosswalkEntryError(problems)
    return crosswalk.with_changes(remove=removes, add=adds.values()), tuple(records)


def replay_records(crosswalk: Crosswalk, records: Iterable[AuditRecord]) -> Crosswalk:
    """The crosswalk after the changes ``records`` describe, in order (self unchanged).

    How a process catches up with changes made elsewhere: each record's ``before`` is
    removed and its ``after`` added, all in one copy of the crosswalk.
    """
    removes: dict[EntryKey, CrosswalkEntry] = {}
    adds: dict[EntryKey, CrosswalkEntry] = {}
    for r in records:
        if r.before is not None and adds.pop(r.before.key, None) is None:
            removes[r.before.key] = r.before
        if r.after is not None:
            adds[r.after.key] = r.after
    if not removes and not adds:
        return crosswalk
    return crosswalk.with_changes(remove=removes.values(), add=adds.values())
