"""The audit log's hash chain: canonical encoding, hashing, verifying a run of entries.

Each entry's ``hash`` is SHA-256 over its predecessor's hash and the canonical JSON of its
own fields (id included), so an entry edited, deleted or moved breaks the chain at that
point: its own hash no longer matches, or the next entry's ``prev_hash`` names a hash that
is not the one before it. The first entry follows :data:`GENESIS`. Removing entries from
the end leaves a valid shorter chain; :attr:`Verdict.head` is what an operator keeps
elsewhere to notice that too.

Pure: the stores append and read entries, this module decides what they must hold.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

__all__ = ["GENESIS", "AuditDraft", "AuditEntry", "ChainVerifier", "Verdict", "canonical_json",
           "chain_hash", "format_at", "json_value", "seal", "verify"]

GENESIS = "0" * 64  # the prev_hash of the first entry

# the fields a hash covers, in the order the stores keep them
_FIELDS = ("id", "at", "identity", "role", "action", "target", "hospital_id", "before",
           "after", "detail")


def format_at(when: datetime) -> str:
    """An instant as the log writes it: UTC, microseconds, fixed width, so that the
    text sorts and compares as the instants do."""
    if when.tzinfo is None:
        raise ValueError("audit times must carry their offset")
    return when.astimezone(UTC).isoformat(timespec="microseconds")


def json_value(value: Any) -> Any:
    """``value`` as plain JSON data (decimals and dates as text): what the store keeps is
    exactly what was hashed."""
    if value is None:
        return None
    return json.loads(json.dumps(value, ensure_ascii=False, default=str, allow_nan=False))


def canonical_json(fields: dict[str, Any]) -> bytes:
    """Sorted keys, no blanks, UTF-8: one byte string per value, on every replica."""
    return json.dumps(fields, ensure_ascii=False, sort_keys=True, separators=(",", ":"),
                      allow_nan=False).encode("utf-8")


def chain_hash(prev_hash: str, fields: dict[str, Any]) -> str:
    """SHA-256 (hex) of the previous entry's hash followed by the fields' canonical JSON."""
    return hashlib.sha256(prev_hash.encode("ascii") + canonical_json(fields)).hexdigest()


@dataclass(frozen=True, slots=True)
class AuditDraft:
    """An entry before the store numbers and seals it."""

    identity: str
    role: str
    action: str  # e.g. "crosswalk.update", "mirror.replay", "config.start"
    target: str = ""  # what was acted on: "H0001/YP000123", a contract id, a file
    hospital_id: str = ""
    before: Any = None  # JSON data, or None where there was nothing
    after: Any = None
    detail: str = ""
    at: datetime = field(default_factory=lambda: datetime.now(UTC))


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One sealed entry of the log."""

    id: int
    at: str  # :func:`format_at`
    identity: str
    role: str
    action: str
    target: str
    hospital_id: str
    before: Any
    after: Any
    detail: str
    prev_hash: str
    hash: str

    def fields(self) -> dict[str, Any]:
        """What the hash covers."""
        return {name: getattr(self, name) for name in _FIELDS}

    def to_dict(self) -> dict[str, Any]:
        """The entry as JSON for the API."""
        return {**self.fields(), "prev_hash": self.prev_hash, "hash": self.hash}


def seal(draft: AuditDraft, entry_id: int, prev_hash: str) -> AuditEntry:
    """The entry ``draft`` becomes as number ``entry_id`` after the entry hashed
    ``prev_hash``."""
    values = {"id": entry_id, "at": format_at(draft.at), "identity": draft.identity,
              "role": draft.role, "action": draft.action, "target": draft.target,
              "hospital_id": draft.hospital_id, "before": json_value(draft.before),
              "after": json_value(draft.after), "detail": draft.detail}
    return AuditEntry(**values, prev_hash=prev_hash, hash=chain_hash(prev_hash, values))


@dataclass(frozen=True, slots=True)
class Verdict:
    """The outcome of walking a chain."""

    ok: bool
    entries: int
    broken_at: int | None = None
    reason: str = ""
    head: str = GENESIS  # the hash of the last entry that verified

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "entries": self.entries, "broken_at": self.broken_at,
                "reason": self.reason or None, "head": self.head}


class ChainVerifier:
    """Walks a chain page by page (oldest first) and stops at the first broken entry."""

    def __init__(self) -> None:
        self.count = 0
        self._last_id = 0
        self._head = GENESIS
        self._broken: tuple[int, str] | None = None

    @property
    def last_id(self) -> int:
        """The id of the last entry fed (where the next page starts)."""
        return self._last_id

    @property
    def broken(self) -> bool:
        return self._broken is not None

    def feed(self, entries: Iterable[AuditEntry]) -> bool:
        """Check the next entries; False once the chain is broken."""
        for entry in entries:
            if self._broken is not None:
                return False
            self.count += 1
            problem = self._problem(entry)
            if problem:
                self._broken = (entry.id, problem)
                return False
            self._last_id, self._head = entry.id, entry.hash
        return self._broken is None

    def _problem(self, entry: AuditEntry) -> str:
        expected_id = self._last_id + 1
        if entry.id != expected_id:
            return (f"entry {entry.id} follows entry {self._last_id}: entries "
                    f"{expected_id}–{entry.id - 1} are missing (deleted or renumbered)"
                    if entry.id > expected_id else
                    f"entry {entry.id} appears out of order after entry {self._last_id}")
        if entry.prev_hash != self._head:
            return ("its prev_hash is not the hash of the entry before it: an earlier entry "
                    "was deleted, replaced or reordered")
        if chain_hash(entry.prev_hash, entry.fields()) != entry.hash:
            return "its content does not match its hash: the entry was edited"
        return ""

    def verdict(self) -> Verdict:
        if self._broken is not None:
            at, why = self._broken
            return Verdict(False, self.count, at, why, self._head)
        return Verdict(True, self.count, head=self._head)


def verify(entries: Iterable[AuditEntry]) -> Verdict:
    """Walk ``entries`` (the whole log, oldest first)."""
    walker = ChainVerifier()
    walker.feed(entries)
    return walker.verdict()
