"""The crosswalk's own database: current entries and the audit trail of every change.

A separate SQLite file (``<data_dir>/crosswalk.db``, WAL, ``synchronous=FULL``) so that
editing the crosswalk never waits on, or competes with, the message store's group
commit. Each change is one transaction holding the entries' new state and the audit
records that explain it, so the two can never disagree after a crash.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import orjson

from canonical.errors import StoreError
from mappings.changes import AuditRecord
from mappings.crosswalk import Crosswalk
from mappings.entry import CrosswalkEntry

__all__ = ["SCHEMA_VERSION", "CrosswalkStore", "StoredAudit"]

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    hospital_id   TEXT NOT NULL,
    item_code     TEXT NOT NULL,
    valid_from    TEXT NOT NULL,  -- ISO date, '' when open
    national_code TEXT NOT NULL,
    item_name     TEXT NOT NULL,
    hospital_unit TEXT NOT NULL,
    national_unit TEXT NOT NULL,
    factor        TEXT NOT NULL,  -- decimal as text: no binary rounding of 0.1
    valid_to      TEXT NOT NULL,
    PRIMARY KEY (hospital_id, item_code, valid_from)
);
CREATE INDEX IF NOT EXISTS entries_code ON entries (national_code);
CREATE TABLE IF NOT EXISTS audit (
    id          INTEGER PRIMARY KEY,
    at          TEXT NOT NULL,
    user        TEXT NOT NULL,
    action      TEXT NOT NULL,
    hospital_id TEXT NOT NULL,
    item_code   TEXT NOT NULL,
    record      BLOB NOT NULL   -- AuditRecord.to_dict() as JSON
);
CREATE INDEX IF NOT EXISTS audit_item ON audit (hospital_id, item_code, id);
"""


@dataclass(frozen=True, slots=True)
class StoredAudit:
    """An audit record with its position in the trail (ascending with time of commit)."""

    id: int
    record: AuditRecord


def _day(text: str) -> date | None:
    return date.fromisoformat(text) if text else None


def _iso(day: date | None) -> str:
    return day.isoformat() if day else ""


class CrosswalkStore:
    """Entries and audit of the crosswalk in one SQLite file; every method is blocking.

    Callers on the event loop run the methods in an executor; a lock keeps the one
    connection to one thread at a time.
    """

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        try:
            self._con = sqlite3.connect(self.path, isolation_level=None,
                                        check_same_thread=False)
            self._con.execute("PRAGMA journal_mode=WAL")
            self._con.execute("PRAGMA synchronous=FULL")
            self._con.execute("PRAGMA busy_timeout=10000")
            self._migrate()
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open crosswalk database {self.path}: {exc}") from exc

    def _migrate(self) -> None:
        con = self._con
        con.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        current = con.execute("SELECT max(version) FROM schema_version").fetchone()[0] or 0
        if current > SCHEMA_VERSION:
            raise StoreError(f"{self.path} has crosswalk schema version {current}, newer than "
                             f"this gateway's {SCHEMA_VERSION}: upgrade the gateway")
        if current < 1:
            con.executescript("BEGIN;" + _SCHEMA + "INSERT INTO schema_version VALUES (1);"
                              "COMMIT;")

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            con = self._con
            con.execute("BEGIN IMMEDIATE")
            try:
                yield con
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._con.close()

    def is_new(self) -> bool:
        """True when the crosswalk has never held an entry (no entries and no audit)."""
        with self._lock:
            row = self._con.execute(
                "SELECT (SELECT count(*) FROM entries) + (SELECT count(*) FROM audit)").fetchone()
        return int(row[0]) == 0

    def load(self) -> Crosswalk:
        """The stored entries as a crosswalk."""
        with self._lock:
            rows = self._con.execute(
                "SELECT hospital_id, item_code, national_code, item_name, hospital_unit,"
                " national_unit, factor, valid_from, valid_to FROM entries").fetchall()
        return Crosswalk(
            CrosswalkEntry(h, i, n, name, hu, nu, Decimal(f), _day(vf), _day(vt))
            for h, i, n, name, hu, nu, f, vf, vt in rows)

    def apply(self, records: Sequence[AuditRecord]) -> list[int]:
        """Write the changes the records describe, and the records, in one transaction.

        Args:
            records: in the order the changes were made; ``before`` is removed and
                ``after`` written for each.

        Returns:
            The audit ids given to the records.

        Raises:
            StoreError: the transaction failed; nothing was written.
        """
        ids: list[int] = []
        try:
            with self._transaction() as con:
                for r in records:
                    if r.before is not None:
                        b = r.before
                        con.execute("DELETE FROM entries WHERE hospital_id = ? AND item_code = ?"
                                    " AND valid_from = ?",
                                    (b.hospital_id, b.item_code, _iso(b.valid_from)))
                    if r.after is not None:
                        a = r.after
                        con.execute(
                            "INSERT OR REPLACE INTO entries (hospital_id, item_code, valid_from,"
                            " national_code, item_name, hospital_unit, national_unit, factor,"
                            " valid_to) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                            (a.hospital_id, a.item_code, _iso(a.valid_from), a.national_code,
                             a.item_name, a.hospital_unit, a.national_unit, str(a.factor),
                             _iso(a.valid_to)))
                    subject = r.after or r.before
                    assert subject is not None  # every record names an entry
                    cur = con.execute(
                        "INSERT INTO audit (at, user, action, hospital_id, item_code, record)"
                        " VALUES (?, ?, ?, ?, ?, ?)",
                        (r.at.isoformat(), r.user, r.action.value, subject.hospital_id,
                         subject.item_code, orjson.dumps(r.to_dict())))
                    ids.append(cur.lastrowid or 0)
        except sqlite3.Error as exc:
            raise StoreError(f"crosswalk change not stored: {exc}") from exc
        return ids

    def audit(
        self,
        *,
        hospital_id: str | None = None,
        item_code: str | None = None,
        user: str | None = None,
        since: datetime | None = None,
        limit: int = 200,
    ) -> list[StoredAudit]:
        """Audit records, newest first, filtered by hospital, item, user and time."""
        where: list[str] = []
        args: list[object] = []
        for column, value in (("hospital_id", hospital_id), ("item_code", item_code),
                              ("user", user)):
            if value:
                where.append(f"{column} = ?")
                args.append(value)
        sql = "SELECT id, record FROM audit"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY id DESC LIMIT ?"
        args.append(limit if since is None else -1)
        with self._lock:
            rows = self._con.execute(sql, args).fetchall()
        out = [StoredAudit(i, AuditRecord.from_dict(orjson.loads(body))) for i, body in rows]
        if since is not None:
            # timestamps carry their offsets, so they compare as instants, not text
            out = [a for a in out if a.record.at >= since][:limit]
        return out
