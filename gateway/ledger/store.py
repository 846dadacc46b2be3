"""SQLite persistence of the ledger: its own file, WAL mode, survives a restart.

Quantities and amounts are stored as integers in millionths so that sums stay exact
(``Decimal`` in, ``Decimal`` out). The ledger writes from the gateway's commit path and
reads everything back into memory at start; no query runs per prescription.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson

__all__ = ["DailyRow", "DeadlineRow", "LedgerStore", "from_micros", "to_micros"]

_SCALE = Decimal(1_000_000)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS ledger_contracts (
  contract_id TEXT PRIMARY KEY, body BLOB NOT NULL, imported_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS ledger_applied (event_id TEXT PRIMARY KEY);
CREATE TABLE IF NOT EXISTS ledger_cursor (name TEXT PRIMARY KEY, seq INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS ledger_daily (
  hospital_id TEXT NOT NULL, national_code TEXT NOT NULL, kind TEXT NOT NULL,
  day TEXT NOT NULL, online INTEGER NOT NULL, qty INTEGER NOT NULL, amount INTEGER NOT NULL,
  PRIMARY KEY (hospital_id, national_code, kind, day, online));
CREATE TABLE IF NOT EXISTS ledger_stock (
  hospital_id TEXT NOT NULL, national_code TEXT NOT NULL, qty INTEGER NOT NULL,
  PRIMARY KEY (hospital_id, national_code));
CREATE TABLE IF NOT EXISTS ledger_deadlines (
  hospital_id TEXT NOT NULL, kind TEXT NOT NULL, ref TEXT NOT NULL,
  opened_at TEXT NOT NULL, due_at TEXT NOT NULL, closed_at TEXT, reminded_at TEXT,
  detail BLOB NOT NULL, PRIMARY KEY (hospital_id, kind, ref));
CREATE TABLE IF NOT EXISTS ledger_price_flags (
  event_id TEXT NOT NULL, seq INTEGER NOT NULL, hospital_id TEXT NOT NULL,
  national_code TEXT NOT NULL, day TEXT NOT NULL, price TEXT NOT NULL,
  winning_price TEXT NOT NULL, PRIMARY KEY (event_id, seq));
CREATE TABLE IF NOT EXISTS ledger_trace (
  hospital_id TEXT NOT NULL, code TEXT NOT NULL, event_id TEXT NOT NULL,
  national_code TEXT NOT NULL, day TEXT NOT NULL, PRIMARY KEY (hospital_id, code));
CREATE TABLE IF NOT EXISTS ledger_trace_flags (
  hospital_id TEXT NOT NULL, code TEXT NOT NULL, first_event TEXT NOT NULL,
  first_day TEXT NOT NULL, event_id TEXT NOT NULL, day TEXT NOT NULL,
  national_code TEXT NOT NULL, PRIMARY KEY (hospital_id, code, event_id));
CREATE TABLE IF NOT EXISTS cds_cards (
  uuid TEXT PRIMARY KEY, service TEXT NOT NULL, hospital_id TEXT NOT NULL,
  doctor TEXT NOT NULL, department TEXT NOT NULL, rule_id TEXT NOT NULL,
  national_code TEXT NOT NULL, suggestions BLOB NOT NULL, issued_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS cds_feedback (
  card TEXT NOT NULL, outcome TEXT NOT NULL, reason_code TEXT NOT NULL,
  reason_display TEXT NOT NULL, comment TEXT NOT NULL, accepted BLOB NOT NULL,
  at TEXT NOT NULL, PRIMARY KEY (card, outcome));
"""


def to_micros(value: Decimal) -> int:
    """Decimal → integer millionths (rounded half-even)."""
    return int((value * _SCALE).to_integral_value())


def from_micros(value: int) -> Decimal:
    """Integer millionths → Decimal."""
    return Decimal(value) / _SCALE


@dataclass(frozen=True, slots=True)
class DailyRow:
    """Per day, product, kind and online flag: the totals everything else derives from."""

    hospital_id: str
    national_code: str
    kind: str
    day: date
    online: bool
    qty: Decimal
    amount: Decimal


@dataclass(frozen=True, slots=True)
class DeadlineRow:
    """An open or closed deadline (filing, order answer, payment)."""

    hospital_id: str
    kind: str
    ref: str
    opened_at: datetime
    due_at: datetime
    closed_at: datetime | None
    reminded_at: datetime | None
    detail: dict[str, Any]


def _dt(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


class LedgerStore:
    """The ledger's SQLite tables, in their own file (``<data_dir>/ledger.db``)."""

    def __init__(self, path: Path | str) -> None:
        self.path = str(path)
        # the gateway calls apply() from one task at a time; the lock guards executor threads
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        """Close the connection."""
        self._db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; rolled back if the block raises."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    # -- writes inside a transaction ---------------------------------------------------

    def cursor(self, name: str = "events") -> int:
        """The last store event sequence number folded in (0 before any)."""
        row = self._db.execute("SELECT seq FROM ledger_cursor WHERE name = ?", (name,)).fetchone()
        return int(row[0]) if row else 0

    @staticmethod
    def set_cursor(db: sqlite3.Connection, seq: int, name: str = "events") -> None:
        """Move the feed cursor inside the transaction that applied the events."""
        db.execute("INSERT INTO ledger_cursor VALUES (?, ?) ON CONFLICT (name) DO UPDATE"
                   " SET seq = excluded.seq", (name, seq))

    @staticmethod
    def mark_applied(db: sqlite3.Connection, event_id: str) -> bool:
        """Record ``event_id``; False if it was applied before."""
        cur = db.execute("INSERT OR IGNORE INTO ledger_applied VALUES (?)", (event_id,))
        return cur.rowcount == 1

    @staticmethod
    def mark_applied_many(db: sqlite3.Connection, event_ids: Sequence[str]) -> set[str]:
        """Record event ids; returns those not applied before."""
        fresh: set[str] = set(event_ids)
        ids = list(fresh)
        for i in range(0, len(ids), 500):  # stay under SQLite's parameter limit
            chunk = ids[i:i + 500]
            marks = ",".join("?" * len(chunk))
            for (seen,) in db.execute(
                    f"SELECT event_id FROM ledger_applied WHERE event_id IN ({marks})", chunk):
                fresh.discard(seen)
        db.executemany("INSERT INTO ledger_applied VALUES (?)", [(e,) for e in fresh])
        return fresh

    @staticmethod
    def add_daily_many(db: sqlite3.Connection,
                       totals: Mapping[tuple[str, str, str, date, bool], Sequence[Decimal]]
                       ) -> None:
        """Add to many daily totals (key: hospital, code, kind, day, online)."""
        db.executemany(
            "INSERT INTO ledger_daily VALUES (?,?,?,?,?,?,?) ON CONFLICT DO UPDATE SET "
            "qty = qty + excluded.qty, amount = amount + excluded.amount",
            [(h, code, kind, day.isoformat(), int(online), to_micros(qty), to_micros(amount))
             for (h, code, kind, day, online), (qty, amount) in totals.items()])

    @staticmethod
    def add_daily(db: sqlite3.Connection, hospital_id: str, code: str, kind: str, day: date,
                  online: bool, qty: Decimal, amount: Decimal) -> None:
        """Add to one daily total."""
        db.execute(
            "INSERT INTO ledger_daily VALUES (?,?,?,?,?,?,?) ON CONFLICT DO UPDATE SET "
            "qty = qty + excluded.qty, amount = amount + excluded.amount",
            (hospital_id, code, kind, day.isoformat(), int(online), to_micros(qty),
             to_micros(amount)))

    @staticmethod
    def set_stock(db: sqlite3.Connection, hospital_id: str, code: str, qty: Decimal) -> None:
        """Store a product's current stock."""
        db.execute("INSERT OR REPLACE INTO ledger_stock VALUES (?,?,?)",
                   (hospital_id, code, to_micros(qty)))

    @staticmethod
    def open_deadline(db: sqlite3.Connection, row: DeadlineRow) -> bool:
        """Open a deadline unless one with the same key exists; True if opened."""
        cur = db.execute(
            "INSERT OR IGNORE INTO ledger_deadlines VALUES (?,?,?,?,?,?,?,?)",
            (row.hospital_id, row.kind, row.ref, row.opened_at.isoformat(),
             row.due_at.isoformat(), None, None, orjson.dumps(row.detail, default=str)))
        return cur.rowcount == 1

    @staticmethod
    def update_deadline(db: sqlite3.Connection, hospital_id: str, kind: str, ref: str, *,
                        closed_at: datetime | None = None,
                        reminded_at: datetime | None = None) -> bool:
        """Close a deadline or note its reminder; True if it existed and was open."""
        if closed_at is not None:
            cur = db.execute(
                "UPDATE ledger_deadlines SET closed_at=? WHERE hospital_id=? AND kind=? "
                "AND ref=? AND closed_at IS NULL",
                (closed_at.isoformat(), hospital_id, kind, ref))
        else:
            assert reminded_at is not None
            cur = db.execute(
                "UPDATE ledger_deadlines SET reminded_at=? WHERE hospital_id=? AND kind=? "
                "AND ref=? AND closed_at IS NULL",
                (reminded_at.isoformat(), hospital_id, kind, ref))
        return cur.rowcount == 1

    @staticmethod
    def add_price_flag(db: sqlite3.Connection, event_id: str, seq: int, hospital_id: str,
                       code: str, day: date, price: Decimal, winning: Decimal) -> None:
        """Record a purchase of a winning product above its winning price."""
        db.execute("INSERT OR IGNORE INTO ledger_price_flags VALUES (?,?,?,?,?,?,?)",
                   (event_id, seq, hospital_id, code, day.isoformat(), str(price), str(winning)))

    @staticmethod
    def record_sale_trace(db: sqlite3.Connection, hospital_id: str, code: str, event_id: str,
                          national_code: str, day: date) -> bool:
        """Note a traceability code sold; False (and a flag) if it was sold before (R14)."""
        cur = db.execute("INSERT OR IGNORE INTO ledger_trace VALUES (?,?,?,?,?)",
                         (hospital_id, code, event_id, national_code, day.isoformat()))
        if cur.rowcount == 1:
            return True
        first_event, first_day = db.execute(
            "SELECT event_id, day FROM ledger_trace WHERE hospital_id=? AND code=?",
            (hospital_id, code)).fetchone()
        if first_event == event_id:
            return True
        db.execute("INSERT OR IGNORE INTO ledger_trace_flags VALUES (?,?,?,?,?,?,?)",
                   (hospital_id, code, first_event, first_day, event_id, day.isoformat(),
                    national_code))
        return False

    def trace_flags(self, hospital_id: str) -> list[dict[str, Any]]:
        """Traceability codes sold more than once: returned, switched or counterfeit drugs."""
        with self._lock:
            rows = self._db.execute(
                "SELECT code, national_code, first_event, first_day, event_id, day FROM "
                "ledger_trace_flags WHERE hospital_id=? ORDER BY day", (hospital_id,)).fetchall()
        return [{"trace_code": c, "national_code": n, "first_sale_event": fe,
                 "first_sale_day": fd, "event_id": e, "day": d} for c, n, fe, fd, e, d in rows]

    # -- contracts ---------------------------------------------------------------------

    def save_contracts(self, items: Iterable[tuple[str, dict[str, Any]]], now: datetime) -> None:
        """Insert or replace contracts by id."""
        with self.transaction() as db:
            db.executemany("INSERT OR REPLACE INTO ledger_contracts VALUES (?,?,?)",
                           [(cid, orjson.dumps(body, default=str), now.isoformat())
                            for cid, body in items])

    def load_contracts(self) -> list[dict[str, Any]]:
        """Every stored contract body."""
        with self._lock:
            rows = self._db.execute("SELECT body FROM ledger_contracts").fetchall()
        return [orjson.loads(r[0]) for r in rows]

    # -- reads -------------------------------------------------------------------------

    def daily(self, hospital_id: str | None = None, *, since: date | None = None,
              until: date | None = None) -> list[DailyRow]:
        """Daily totals, optionally for one hospital and a day range (inclusive)."""
        sql = "SELECT * FROM ledger_daily WHERE 1=1"
        args: list[Any] = []
        if hospital_id is not None:
            sql += " AND hospital_id=?"
            args.append(hospital_id)
        if since is not None:
            sql += " AND day>=?"
            args.append(since.isoformat())
        if until is not None:
            sql += " AND day<=?"
            args.append(until.isoformat())
        with self._lock:
            rows = self._db.execute(sql, args).fetchall()
        return [DailyRow(h, c, k, date.fromisoformat(d), bool(o), from_micros(q), from_micros(a))
                for h, c, k, d, o, q, a in rows]

    def stock(self) -> dict[tuple[str, str], Decimal]:
        """Current stock per (hospital, national code)."""
        with self._lock:
            rows = self._db.execute("SELECT * FROM ledger_stock").fetchall()
        return {(h, c): from_micros(q) for h, c, q in rows}

    def deadlines(self, hospital_id: str | None = None, *,
                  open_only: bool = False) -> list[DeadlineRow]:
        """Deadlines, optionally one hospital's and only the open ones."""
        sql = "SELECT * FROM ledger_deadlines WHERE 1=1"
        args: list[Any] = []
        if hospital_id is not None:
            sql += " AND hospital_id=?"
            args.append(hospital_id)
        if open_only:
            sql += " AND closed_at IS NULL"
        with self._lock:
            rows = self._db.execute(sql + " ORDER BY due_at", args).fetchall()
        out = []
        for h, k, ref, opened, due, closed, reminded, detail in rows:
            opened_dt = datetime.fromisoformat(opened)
            due_dt = datetime.fromisoformat(due)
            out.append(DeadlineRow(h, k, ref, opened_dt, due_dt, _dt(closed), _dt(reminded),
                                   orjson.loads(detail)))
        return out

    def price_flags(self, hospital_id: str) -> list[dict[str, Any]]:
        """Purchases of winning products above the winning price."""
        with self._lock:
            rows = self._db.execute(
                "SELECT event_id, seq, national_code, day, price, winning_price FROM "
                "ledger_price_flags WHERE hospital_id=? ORDER BY day", (hospital_id,)).fetchall()
        return [{"event_id": e, "seq": s, "national_code": c, "day": d, "price": p,
                 "winning_price": w} for e, s, c, d, p, w in rows]

    # -- CDS cards and feedback --------------------------------------------------------

    def save_cards(self, rows: Sequence[tuple[Any, ...]]) -> None:
        """Store issued cards (uuid, service, hospital, doctor, department, rule, code,
        suggestion ids, issued_at)."""
        with self.transaction() as db:
            db.executemany("INSERT OR IGNORE INTO cds_cards VALUES (?,?,?,?,?,?,?,?,?)", rows)

    def card(self, uuid: str) -> tuple[Any, ...] | None:
        """One issued card's row."""
        with self._lock:
            row: tuple[Any, ...] | None = self._db.execute(
                "SELECT * FROM cds_cards WHERE uuid=?", (uuid,)).fetchone()
        return row

    def save_feedback(self, rows: Sequence[tuple[Any, ...]]) -> None:
        """Store feedback rows (card, outcome, reason code, display, comment, accepted, at)."""
        with self.transaction() as db:
            db.executemany("INSERT OR REPLACE INTO cds_feedback VALUES (?,?,?,?,?,?,?)", rows)

    def feedback_report_rows(self) -> list[tuple[Any, ...]]:
        """Cards joined with their feedback: doctor, department, rule, outcome, reason."""
        with self._lock:
            return self._db.execute(
                "SELECT c.doctor, c.department, c.rule_id, f.outcome, f.reason_code, "
                "f.reason_display FROM cds_cards c LEFT JOIN cds_feedback f ON f.card = c.uuid"
            ).fetchall()
