"""The ledger's tables in the SQLite store.

One process owns a SQLite store, so the ledger's lock is an asyncio lock: a fold session,
a contract import and a deadline update run one at a time, and every write goes through
the store's writer thread in one transaction that also bumps the ledger's version in
``state_heads`` and appends the change to ``ledger_changes``.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import sqlite3
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import date, datetime
from typing import Any

from canonical.errors import StoreError
from canonical.model import Event
from gateway.store.base import Topic
from gateway.store.ledger_records import (
    DailyRow,
    DeadlineRow,
    DeadlineUpdate,
    LedgerChange,
    LedgerImport,
    LedgerSnapshot,
    LedgerWrites,
    PriceFlag,
    TraceFlag,
    TraceSale,
    UntracedSale,
)
from gateway.store.ledger_rows import (
    CARD_COLUMNS,
    DEADLINE_COLUMNS,
    FEEDBACK_COLUMNS,
    KEEP_CHANGES,
    KEEP_CHANGES_S,
    PRUNE_EVERY,
    TRACE_COLUMNS,
    card_args,
    change_from_bytes,
    change_to_bytes,
    closed_early,
    contract_body,
    contract_from_bytes,
    daily_args,
    daily_from_row,
    daily_where,
    deadline_args,
    deadline_change,
    deadline_from_row,
    early_closes,
    feedback_args,
    price_flag_args,
    price_flag_from_row,
    reschedule_args,
    stock_args,
    stock_from_row,
    trace_flag_args,
    trace_flag_from_row,
    trace_sale_args,
    trace_sale_from_row,
    untraced_args,
    untraced_from_row,
)
from gateway.store.query import decode_event
from gateway.store.sqlite.access import SqliteAccess
from gateway.store.trace_sales import TraceKey, flag_sales

__all__ = ["SqliteLedger"]

log = logging.getLogger(__name__)

_CHUNK = 500  # values per IN (…): well under SQLite's variable limit
_LEDGER = Topic.LEDGER.value


def _head(con: sqlite3.Connection) -> int:
    return int(con.execute("SELECT version FROM state_heads WHERE topic = ?",
                           (_LEDGER,)).fetchone()[0])


def _bump(con: sqlite3.Connection, expected: int | None = None) -> int:
    version = int(con.execute("UPDATE state_heads SET version = version + 1 WHERE topic = ?"
                              " RETURNING version", (_LEDGER,)).fetchone()[0])
    if expected is not None and version != expected:
        # the session's lock was not respected: writing would log two changes as one
        raise StoreError(f"ledger version {version} where {expected} was expected")
    return version


def _log_change(con: sqlite3.Connection, tables: SqliteLedger, version: int,
                change: LedgerChange) -> None:
    now = time.time()
    con.execute("INSERT INTO ledger_changes (version, at, body) VALUES (?, ?, ?)",
                (version, now, change_to_bytes(change)))
    if version % tables.prune_every == 0:
        con.execute("DELETE FROM ledger_changes WHERE version <= ? AND at < ?",
                    (version - tables.keep_changes, now - tables.keep_changes_s))


def _changes_after(con: sqlite3.Connection,
                   version: int) -> list[tuple[int, LedgerChange]] | None:
    rows = con.execute("SELECT version, body FROM ledger_changes WHERE version > ?"
                       " ORDER BY version", (version,)).fetchall()
    if rows:
        if rows[0][0] != version + 1:
            return None  # pruned past ``version``
        return [(v, change_from_bytes(body)) for v, body in rows]
    return None if _head(con) > version else []


def _open_deadlines(con: sqlite3.Connection, rows: Sequence[DeadlineRow]) -> list[DeadlineRow]:
    found: dict[tuple[str, str, str], str] = {}
    for row in rows:
        early = con.execute("SELECT closed_at FROM ledger_early_closes WHERE hospital_id = ?"
                            " AND kind = ? AND ref = ?",
                            (row.hospital_id, row.kind, row.ref)).fetchone()
        if early is not None:
            found[(row.hospital_id, row.kind, row.ref)] = early[0]
    opened = []
    for row in closed_early(rows, found) if found else rows:
        cur = con.execute(f"INSERT OR IGNORE INTO ledger_deadlines ({DEADLINE_COLUMNS})"
                          " VALUES (?, ?, ?, ?, ?, ?, ?, ?)", deadline_args(row))
        if cur.rowcount == 1:
            opened.append(row)
            if (row.hospital_id, row.kind, row.ref) in found:
                con.execute("DELETE FROM ledger_early_closes WHERE hospital_id = ? AND kind = ?"
                            " AND ref = ?", (row.hospital_id, row.kind, row.ref))
    return opened


def _keep_early_closes(con: sqlite3.Connection, updates: Sequence[DeadlineUpdate],
                       done: Sequence[bool]) -> None:
    # a close that found its deadline already closed (an event folded again) is not kept:
    # only one whose deadline does not exist yet
    con.executemany("INSERT OR IGNORE INTO ledger_early_closes (hospital_id, kind, ref,"
                    " closed_at) SELECT ?1, ?2, ?3, ?4 WHERE NOT EXISTS (SELECT 1 FROM"
                    " ledger_deadlines WHERE hospital_id = ?1 AND kind = ?2 AND ref = ?3)",
                    early_closes(updates, done))


def _update_deadlines(con: sqlite3.Connection, updates: Sequence[DeadlineUpdate]) -> list[bool]:
    out = []
    for u in updates:
        if u.closed_at is not None:
            column, value = "closed_at", u.closed_at
        elif u.reminded_at is not None:
            column, value = "reminded_at", u.reminded_at
        else:
            out.append(False)
            continue
        cur = con.execute(f"UPDATE ledger_deadlines SET {column} = ? WHERE hospital_id = ?"
                          " AND kind = ? AND ref = ? AND closed_at IS NULL",
                          (value.isoformat(), u.hospital_id, u.kind, u.ref))
        out.append(cur.rowcount == 1)
    return out


_TRACE_CHUNK = 250  # traceability codes per transaction of their own (see _Session.commit)


def _stored_trace(con: sqlite3.Connection, sales: Sequence[TraceSale]
                  ) -> dict[TraceKey, list[TraceSale]]:
    """The stored sales and returns of the codes in ``sales``, in the order folded."""
    stored: dict[TraceKey, list[TraceSale]] = {}
    by_hospital: dict[str, list[str]] = {}
    for t in sales:
        by_hospital.setdefault(t.hospital_id, []).append(t.code)
    for hospital, codes in by_hospital.items():
        unique = sorted(set(codes))
        for i in range(0, len(unique), _CHUNK):
            chunk = unique[i:i + _CHUNK]
            marks = ",".join("?" * len(chunk))
            for r in con.execute(f"SELECT {TRACE_COLUMNS} FROM ledger_trace WHERE"
                                 f" hospital_id = ? AND code IN ({marks}) ORDER BY rowid",
                                 (hospital, *chunk)):
                sale = trace_sale_from_row(r)
                stored.setdefault((sale.hospital_id, sale.code), []).append(sale)
    return stored


def _write_trace(con: sqlite3.Connection, sales: Sequence[TraceSale]) -> None:
    if not sales:
        return
    new, flags = flag_sales(_stored_trace(con, sales), sales)
    con.executemany(f"INSERT OR IGNORE INTO ledger_trace ({TRACE_COLUMNS})"
                    " VALUES (?, ?, ?, ?, ?, ?, ?)", [trace_sale_args(t) for t in new])
    if flags:
        con.executemany("INSERT OR IGNORE INTO ledger_trace_flags (hospital_id, code,"
                        " first_event, first_day, event_id, day, national_code)"
                        " VALUES (?, ?, ?, ?, ?, ?, ?)", [trace_flag_args(f) for f in flags])
        log.warning("%d traceability code(s) sold beyond their package (events %s)",
                    len(flags), ", ".join(sorted({f.event_id for f in flags})[:10]))


def _mark_folded(con: sqlite3.Connection, seqs: Sequence[int]) -> None:
    marked = 0
    for i in range(0, len(seqs), _CHUNK):
        chunk = seqs[i:i + _CHUNK]
        marks = ",".join("?" * len(chunk))
        marked += con.execute(f"DELETE FROM ledger_pending WHERE seq IN ({marks})",
                              chunk).rowcount
    if marked != len(set(seqs)):
        raise StoreError(f"{len(set(seqs)) - marked} of the events to fold were folded already"
                         " or are held")


class _Session:
    """A fold under the in-process ledger lock."""

    def __init__(self, tables: SqliteLedger, version: int) -> None:
        self._tables = tables
        self._store = tables.store
        self.version = version
        self._done = False

    async def changes_after(self, version: int) -> list[tuple[int, LedgerChange]] | None:
        return await self._tables.changes_after(version)

    async def snapshot(self) -> LedgerSnapshot:
        return await self._tables.snapshot()

    async def unfolded(self, limit: int) -> list[int]:
        def read(con: sqlite3.Connection) -> list[int]:
            return [r[0] for r in con.execute(
                "SELECT seq FROM ledger_pending ORDER BY seq LIMIT ?",
                (limit,))]
        return await self._store.read(read)

    async def events(self, seqs: Sequence[int]) -> list[tuple[int, Event]]:
        wanted = list(seqs)

        def read(con: sqlite3.Connection) -> list[tuple[int, Event]]:
            found: dict[int, bytes] = {}
            for i in range(0, len(wanted), _CHUNK):
                chunk = wanted[i:i + _CHUNK]
                marks = ",".join("?" * len(chunk))
                found.update(con.execute(f"SELECT seq, body FROM events WHERE seq IN ({marks})",
                                         chunk).fetchall())
            # decoded here, on the reader thread, not on the event loop
            return [(s, decode_event(found[s])) for s in wanted]
        return await self._store.read(read) if wanted else []

    async def commit(self, writes: LedgerWrites) -> tuple[int, LedgerChange]:
        if self._done:
            raise StoreError("this fold session has ended")
        self._done = True
        tables = self._tables
        expected = self.version + 1
        sales = writes.trace_sales
        # The store has one writer, and the messages being acknowledged wait for it: a
        # dispense with 10,000 traceability codes written in the fold's transaction would
        # hold their commits for hundreds of milliseconds. Codes are written first, a
        # few hundred per transaction; that is safe to repeat (a fold cut short by a crash
        # runs again and finds its own codes, which are not "sold again").
        # Fold writes do not wait for the disk (lazy): what a power failure takes of them
        # is folded again, because the events leave ledger_pending in the same
        # transaction; waiting for an fsync per part held the messages' commits behind it.
        while len(sales) > _TRACE_CHUNK:
            part, sales = sales[:_TRACE_CHUNK], sales[_TRACE_CHUNK:]
            await self._store.write(functools.partial(_write_trace, sales=part), lazy=True)

        def write(con: sqlite3.Connection) -> tuple[int, LedgerChange]:
            version = _bump(con, expected)
            _mark_folded(con, writes.seqs)
            if writes.daily:
                con.executemany(
                    "INSERT INTO ledger_daily VALUES (?, ?, ?, ?, ?, ?, ?)"
                    " ON CONFLICT DO UPDATE SET qty = qty + excluded.qty,"
                    " amount = amount + excluded.amount", [daily_args(r) for r in writes.daily])
            if writes.stock:
                con.executemany("INSERT OR REPLACE INTO ledger_stock VALUES (?, ?, ?)",
                                [stock_args(*s) for s in writes.stock])
            opened = _open_deadlines(con, writes.deadlines)
            done = _update_deadlines(con, writes.deadline_updates)
            _keep_early_closes(con, writes.deadline_updates, done)
            if writes.price_flags:
                con.executemany("INSERT OR IGNORE INTO ledger_price_flags VALUES"
                                " (?, ?, ?, ?, ?, ?, ?)",
                                [price_flag_args(f) for f in writes.price_flags])
            if writes.untraced_sales:
                con.executemany("INSERT OR IGNORE INTO ledger_untraced VALUES (?, ?, ?, ?, ?)",
                                [untraced_args(u) for u in writes.untraced_sales])
            _write_trace(con, sales)
            orders, closed, reminded = deadline_change(writes.deadline_updates, done, opened)
            change = LedgerChange(daily=writes.daily, stock=writes.stock, orders_opened=orders,
                                  orders_closed=closed, orders_reminded=reminded)
            _log_change(con, tables, version, change)
            return version, change
        return await self._store.write(write, Topic.LEDGER, lazy=True)


class SqliteLedger:
    """The ledger's tables (``ledger_*``, the ``ledger_pending`` queue, the ledger's row
    of ``state_heads``)."""

    def __init__(self, store: SqliteAccess) -> None:
        self.store = store
        self.keep_changes = KEEP_CHANGES
        self.keep_changes_s = KEEP_CHANGES_S
        self.prune_every = PRUNE_EVERY
        self._lock = asyncio.Lock()

    async def pending(self) -> bool:
        """Whether any event waits to be folded."""
        return bool(await self.store.read(
            lambda con: con.execute("SELECT EXISTS (SELECT 1 FROM ledger_pending)").fetchone()[0]))

    async def poison(self, seq: int, reason: str, at: float) -> bool:
        """Take an event off the queue, keeping it with the reason."""
        def write(con: sqlite3.Connection) -> bool:
            if con.execute("DELETE FROM ledger_pending WHERE seq = ?", (seq,)).rowcount != 1:
                return False
            con.execute("INSERT OR REPLACE INTO ledger_poison VALUES (?, ?, ?)",
                        (seq, reason, at))
            return True
        async with self._lock:
            return await self.store.write(write)

    async def poisoned(self) -> list[tuple[int, str, float]]:
        """The events kept as poison, oldest first."""
        return await self.store.read(lambda con: [
            (int(s), str(r), float(a)) for s, r, a in con.execute(
                "SELECT seq, reason, at FROM ledger_poison ORDER BY seq")])

    async def refold(self, seqs: Sequence[int] | None = None) -> int:
        """Queue poison events to be folded again."""
        def write(con: sqlite3.Connection) -> int:
            chosen = [s for (s,) in con.execute("SELECT seq FROM ledger_poison")
                      if seqs is None or s in set(seqs)]
            con.executemany("INSERT OR IGNORE INTO ledger_pending VALUES (?)",
                            [(s,) for s in chosen])
            con.executemany("DELETE FROM ledger_poison WHERE seq = ?", [(s,) for s in chosen])
            return len(chosen)
        async with self._lock:
            n = await self.store.write(write)
        if n:
            self.store.changed(Topic.OUTBOX)  # the feed folds what is queued
        return n

    @asynccontextmanager
    async def folding(self) -> AsyncIterator[_Session]:
        """A fold session; other ledger writes of this process wait until it ends."""
        async with self._lock:
            yield _Session(self, await self.store.read(_head))

    async def snapshot(self) -> LedgerSnapshot:
        """Contracts, daily totals, stock and open orders, read in one transaction."""
        def read(con: sqlite3.Connection) -> LedgerSnapshot:
            con.execute("BEGIN")
            try:
                version = _head(con)
                contracts = [contract_from_bytes(r[0]) for r in con.execute(
                    "SELECT body FROM ledger_contracts ORDER BY contract_id")]
                daily = [daily_from_row(r) for r in con.execute("SELECT * FROM ledger_daily")]
                stock = [stock_from_row(r) for r in con.execute("SELECT * FROM ledger_stock")]
                orders = [deadline_from_row(r) for r in con.execute(
                    f"SELECT {DEADLINE_COLUMNS} FROM ledger_deadlines WHERE kind = 'order'"
                    " AND closed_at IS NULL")]
            finally:
                con.execute("COMMIT")
            return LedgerSnapshot(version, tuple(contracts), tuple(daily), tuple(stock),
                                  tuple(orders))
        return await self.store.read(read)

    async def changes_after(self, version: int) -> list[tuple[int, LedgerChange]] | None:
        """The logged changes after ``version``; None when they were pruned."""
        def read(con: sqlite3.Connection) -> list[tuple[int, LedgerChange]] | None:
            con.execute("BEGIN")  # the log and the head in one snapshot
            try:
                return _changes_after(con, version)
            finally:
                con.execute("COMMIT")
        return await self.store.read(read)

    async def save_contracts(self, items: Sequence[tuple[str, dict[str, Any]]],
                             now: datetime, retire: Sequence[str] = ()) -> int:
        """Insert or replace contracts by id, delete the ``retire`` ids; returns the new
        ledger version."""
        rows = [(cid, contract_body(body), now.isoformat()) for cid, body in items]

        def write(con: sqlite3.Connection) -> int:
            version = _bump(con)
            con.executemany("DELETE FROM ledger_contracts WHERE contract_id = ?",
                            [(cid,) for cid in retire])
            con.executemany("INSERT OR REPLACE INTO ledger_contracts VALUES (?, ?, ?)", rows)
            _log_change(con, self, version, LedgerChange(contracts=True))
            return version
        async with self._lock:
            return await self.store.write(write, Topic.LEDGER)

    async def update_deadlines(self, updates: Sequence[DeadlineUpdate]) -> list[bool]:
        """Close or remind deadlines; a new version when any was open."""
        def write(con: sqlite3.Connection) -> list[bool]:
            done = _update_deadlines(con, updates)
            if any(done):
                _, closed, reminded = deadline_change(updates, done)
                _log_change(con, self, _bump(con), LedgerChange(orders_closed=closed,
                                                                orders_reminded=reminded))
            return done
        async with self._lock:
            return await self.store.write(write, Topic.LEDGER)

    async def reschedule_deadlines(self, rows: Sequence[DeadlineRow]) -> int:
        """Set due time and detail of these deadlines; a new version when any existed."""
        def write(con: sqlite3.Connection) -> int:
            n = 0
            for row in rows:
                n += con.execute("UPDATE ledger_deadlines SET due_at = ?, detail = ? WHERE"
                                 " hospital_id = ? AND kind = ? AND ref = ?",
                                 reschedule_args(row)).rowcount
            if n:
                _log_change(con, self, _bump(con), LedgerChange())
            return n
        async with self._lock:
            return await self.store.write(write, Topic.LEDGER)

    async def daily(self, hospital_id: str | None = None, *, since: date | None = None,
                    until: date | None = None) -> list[DailyRow]:
        """Daily totals, optionally for one hospital and a day range (inclusive)."""
        where, args = daily_where(hospital_id, since, until, lambda n: "?")

        def read(con: sqlite3.Connection) -> list[DailyRow]:
            return [daily_from_row(r) for r in con.execute(
                f"SELECT * FROM ledger_daily WHERE {where}", args)]
        return await self.store.read(read)

    async def deadlines(self, hospital_id: str | None = None, *,
                        open_only: bool = False) -> list[DeadlineRow]:
        """Deadlines by due time."""
        sql = f"SELECT {DEADLINE_COLUMNS} FROM ledger_deadlines WHERE 1 = 1"
        args: list[Any] = []
        if hospital_id is not None:
            sql += " AND hospital_id = ?"
            args.append(hospital_id)
        if open_only:
            sql += " AND closed_at IS NULL"

        def read(con: sqlite3.Connection) -> list[DeadlineRow]:
            return [deadline_from_row(r) for r in con.execute(sql + " ORDER BY due_at", args)]
        return await self.store.read(read)

    async def price_flags(self, hospital_id: str) -> list[PriceFlag]:
        """Purchases of winning products above the winning price, by day."""
        def read(con: sqlite3.Connection) -> list[PriceFlag]:
            return [price_flag_from_row(r) for r in con.execute(
                "SELECT * FROM ledger_price_flags WHERE hospital_id = ? ORDER BY day, event_id,"
                " seq", (hospital_id,))]
        return await self.store.read(read)

    async def untraced_sales(self, hospital_id: str) -> list[UntracedSale]:
        """Drug sales without traceability codes once they were mandatory, by day."""
        def read(con: sqlite3.Connection) -> list[UntracedSale]:
            return [untraced_from_row(r) for r in con.execute(
                "SELECT * FROM ledger_untraced WHERE hospital_id = ? ORDER BY day, event_id,"
                " line", (hospital_id,))]
        return await self.store.read(read)

    async def trace_flags(self, hospital_id: str) -> list[TraceFlag]:
        """Traceability codes sold more than once, by day."""
        def read(con: sqlite3.Connection) -> list[TraceFlag]:
            return [trace_flag_from_row(r) for r in con.execute(
                "SELECT * FROM ledger_trace_flags WHERE hospital_id = ? ORDER BY day, code",
                (hospital_id,))]
        return await self.store.read(read)

    async def claim_notice(self, kind: str, key: str, at: float) -> bool:
        """Record a notice as sent; False when it was sent before."""
        def write(con: sqlite3.Connection) -> bool:
            return con.execute("INSERT OR IGNORE INTO ledger_notices VALUES (?, ?, ?)",
                               (kind, key, at)).rowcount == 1
        return await self.store.write(write)

    async def import_legacy(self, data: LedgerImport) -> None:
        """Take over an old ledger file's contracts, deadline decisions, cards and feedback
        (see the protocol)."""
        def write(con: sqlite3.Connection) -> None:
            con.executemany("INSERT OR IGNORE INTO ledger_contracts VALUES (?, ?, ?)",
                            [(cid, contract_body(body), at) for cid, body, at in data.contracts])
            con.executemany(f"INSERT INTO ledger_deadlines ({DEADLINE_COLUMNS})"
                            " VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO UPDATE SET"
                            " closed_at = coalesce(ledger_deadlines.closed_at,"
                            " excluded.closed_at), reminded_at ="
                            " coalesce(ledger_deadlines.reminded_at, excluded.reminded_at)",
                            [deadline_args(d) for d in data.deadlines])
            con.executemany(f"INSERT OR IGNORE INTO cds_cards ({CARD_COLUMNS}) VALUES"
                            " (?, ?, ?, ?, ?, ?, ?, ?, ?)", [card_args(c) for c in data.cards])
            con.executemany(f"INSERT OR IGNORE INTO cds_feedback ({FEEDBACK_COLUMNS}) VALUES"
                            " (?, ?, ?, ?, ?, ?, ?)", [feedback_args(f) for f in data.feedback])
            _log_change(con, self, _bump(con), LedgerChange(contracts=True))
        async with self._lock:
            await self.store.write(write, Topic.LEDGER)
