"""The ledger's tables in the PostgreSQL store, shared by every replica.

Every write of ledger state locks the ledger's row of ``state_heads`` (bumping its
version) for the rest of its transaction: a fold session holds it from before it reads
which events are unfolded until it has marked them folded, so two replicas never fold
one event, and versions ascend in commit order, so a reader of ``ledger_changes`` never
skips an entry. Each committed change is announced with ``NOTIFY`` (topic ``ledger``).
"""

from __future__ import annotations

import logging
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
from gateway.store.postgres.access import PostgresAccess
from gateway.store.postgres.driver import DB_ERRORS
from gateway.store.query import decode_event
from gateway.store.trace_sales import TraceKey, flag_sales

__all__ = ["PostgresLedger"]

log = logging.getLogger(__name__)


def _mark(n: int) -> str:
    return f"${n}"


def _columns(rows: Sequence[tuple[Any, ...]], width: int) -> list[list[Any]]:
    """Rows → one list per column, for ``unnest``."""
    return [list(c) for c in zip(*rows, strict=True)] if rows else [[] for _ in range(width)]


_DAILY = ("INSERT INTO ledger_daily (hospital_id, national_code, kind, day, online, qty, amount)"
          " SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::smallint[],"
          " $6::bigint[], $7::bigint[]) ON CONFLICT (hospital_id, national_code, kind, day,"
          " online) DO UPDATE SET qty = ledger_daily.qty + excluded.qty,"
          " amount = ledger_daily.amount + excluded.amount")
_STOCK = ("INSERT INTO ledger_stock (hospital_id, national_code, qty) SELECT * FROM"
          " unnest($1::text[], $2::text[], $3::bigint[]) ON CONFLICT (hospital_id,"
          " national_code) DO UPDATE SET qty = excluded.qty")
_DEADLINES = (f"INSERT INTO ledger_deadlines ({DEADLINE_COLUMNS}) SELECT * FROM unnest("
              "$1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],"
              " $7::text[], $8::bytea[]) ON CONFLICT DO NOTHING RETURNING hospital_id, kind, ref")
_EARLY = ("SELECT hospital_id, kind, ref, closed_at FROM ledger_early_closes WHERE"
          " (hospital_id, kind, ref) IN (SELECT * FROM unnest($1::text[], $2::text[],"
          " $3::text[]))")
_EARLY_APPLIED = ("DELETE FROM ledger_early_closes WHERE (hospital_id, kind, ref) IN"
                  " (SELECT * FROM unnest($1::text[], $2::text[], $3::text[]))")
# a close that found its deadline already closed (an event folded again) is not kept:
# only one whose deadline does not exist yet
_EARLY_KEEP = ("INSERT INTO ledger_early_closes (hospital_id, kind, ref, closed_at)"
               " SELECT $1::text, $2::text, $3::text, $4::text WHERE NOT EXISTS (SELECT 1 FROM"
               " ledger_deadlines WHERE hospital_id = $1 AND kind = $2 AND ref = $3)"
               " ON CONFLICT DO NOTHING")
_PRICE_FLAGS = ("INSERT INTO ledger_price_flags (event_id, seq, hospital_id, national_code, day,"
                " price, winning_price) SELECT * FROM unnest($1::text[], $2::int[], $3::text[],"
                " $4::text[], $5::text[], $6::text[], $7::text[]) ON CONFLICT DO NOTHING")
_UNTRACED = ("INSERT INTO ledger_untraced (event_id, line, hospital_id, national_code, day)"
             " SELECT * FROM unnest($1::text[], $2::int[], $3::text[], $4::text[], $5::text[])"
             " ON CONFLICT DO NOTHING")
_TRACE = (f"INSERT INTO ledger_trace ({TRACE_COLUMNS}) SELECT * FROM unnest($1::text[],"
          " $2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[], $7::bigint[])"
          " ON CONFLICT DO NOTHING")
_TRACE_STORED = (f"SELECT {TRACE_COLUMNS} FROM ledger_trace WHERE (hospital_id, code) IN"
                 " (SELECT * FROM unnest($1::text[], $2::text[])) ORDER BY n")
_TRACE_FLAGS = ("INSERT INTO ledger_trace_flags (hospital_id, code, first_event, first_day,"
                " event_id, day, national_code) SELECT * FROM unnest($1::text[], $2::text[],"
                " $3::text[], $4::text[], $5::text[], $6::text[], $7::text[])"
                " ON CONFLICT DO NOTHING")


async def _log_change(con: Any, tables: PostgresLedger, version: int,
                      change: LedgerChange) -> None:
    now = time.time()
    await con.execute("INSERT INTO ledger_changes (version, at, body) VALUES ($1, $2, $3)",
                      version, now, change_to_bytes(change))
    if version % tables.prune_every == 0:
        await con.execute("DELETE FROM ledger_changes WHERE version <= $1 AND at < $2",
                          version - tables.keep_changes, now - tables.keep_changes_s)
    await tables.store.notify(con, Topic.LEDGER)


async def _changes_after(con: Any, version: int,
                         head: int | None = None) -> list[tuple[int, LedgerChange]] | None:
    """The log after ``version`` (``head``: the last committed version, when known; a
    session's own row of ``state_heads`` already holds the version it is writing)."""
    rows = await con.fetch("SELECT version, body FROM ledger_changes WHERE version > $1"
                           " ORDER BY version", version)
    if rows:
        if rows[0][0] != version + 1:
            return None  # pruned past ``version``
        return [(int(v), change_from_bytes(bytes(body))) for v, body in rows]
    if head is None:
        head = int(await con.fetchval("SELECT version FROM state_heads WHERE topic = $1",
                                      Topic.LEDGER.value))
    return None if head > version else []


async def _snapshot(con: Any, version: int) -> LedgerSnapshot:
    contracts = [contract_from_bytes(bytes(r[0])) for r in await con.fetch(
        "SELECT body FROM ledger_contracts ORDER BY contract_id")]
    daily = [daily_from_row(r) for r in await con.fetch("SELECT * FROM ledger_daily")]
    stock = [stock_from_row(r) for r in await con.fetch("SELECT * FROM ledger_stock")]
    orders = [deadline_from_row(r) for r in await con.fetch(
        f"SELECT {DEADLINE_COLUMNS} FROM ledger_deadlines WHERE kind = 'order'"
        " AND closed_at IS NULL")]
    return LedgerSnapshot(version, tuple(contracts), tuple(daily), tuple(stock), tuple(orders))


async def _update_deadlines(con: Any, updates: Sequence[DeadlineUpdate]) -> list[bool]:
    out = []
    for u in updates:  # one by one: an order answered twice in a batch is closed once
        if u.closed_at is not None:
            column, value = "closed_at", u.closed_at
        elif u.reminded_at is not None:
            column, value = "reminded_at", u.reminded_at
        else:
            out.append(False)
            continue
        status = await con.execute(
            f"UPDATE ledger_deadlines SET {column} = $1 WHERE hospital_id = $2 AND kind = $3"
            " AND ref = $4 AND closed_at IS NULL", value.isoformat(), u.hospital_id, u.kind,
            u.ref)
        out.append(status == "UPDATE 1")
    return out


async def _write_totals(con: Any, writes: LedgerWrites) -> list[DeadlineRow]:
    """Daily totals, stock, deadlines opened, price flags and traceability sales."""
    if writes.daily:
        await con.execute(_DAILY, *_columns([daily_args(r) for r in writes.daily], 7))
    if writes.stock:
        await con.execute(_STOCK, *_columns([stock_args(*s) for s in writes.stock], 3))
    opened: list[DeadlineRow] = []
    if writes.deadlines:
        keys = [(d.hospital_id, d.kind, d.ref) for d in writes.deadlines]
        found = {(r[0], r[1], r[2]): r[3] for r in await con.fetch(_EARLY, *_columns(keys, 3))}
        rows = closed_early(writes.deadlines, found) if found else writes.deadlines
        inserted = {(r[0], r[1], r[2]) for r in await con.fetch(
            _DEADLINES, *_columns([deadline_args(d) for d in rows], 8))}
        applied = []
        for d in rows:  # the first of several rows with one key is the one kept
            key = (d.hospital_id, d.kind, d.ref)
            if key in inserted:
                inserted.discard(key)
                opened.append(d)
                if key in found:
                    applied.append(key)
        if applied:
            await con.execute(_EARLY_APPLIED, *_columns(applied, 3))
    if writes.price_flags:
        await con.execute(_PRICE_FLAGS,
                          *_columns([price_flag_args(f) for f in writes.price_flags], 7))
    if writes.untraced_sales:
        await con.execute(_UNTRACED,
                          *_columns([untraced_args(u) for u in writes.untraced_sales], 5))
    if writes.trace_sales:
        await _write_trace(con, writes.trace_sales)
    return opened


async def _write_trace(con: Any, sales: Sequence[TraceSale]) -> None:
    keys = sorted({(t.hospital_id, t.code) for t in sales})
    stored: dict[TraceKey, list[TraceSale]] = {}
    for r in await con.fetch(_TRACE_STORED, *_columns(keys, 2)):
        sale = trace_sale_from_row(r)
        stored.setdefault((sale.hospital_id, sale.code), []).append(sale)
    new, flags = flag_sales(stored, sales)
    # one statement each, so that ``n`` numbers the sales in the order folded
    await con.execute(_TRACE, *_columns([trace_sale_args(t) for t in new], 7))
    if flags:
        await con.execute(_TRACE_FLAGS, *_columns([trace_flag_args(f) for f in flags], 7))
        log.warning("%d traceability code(s) sold beyond their package (events %s)",
                    len(flags), ", ".join(sorted({f.event_id for f in flags})[:10]))


class _Locked:
    """A connection in a transaction that holds the ledger's lock."""

    def __init__(self, con: Any, tr: Any) -> None:
        self.con = con
        self.tr = tr
        self.version = 0  # the version this transaction writes (bumped when locking)
        self.committed = False

    async def commit(self) -> None:
        await self.tr.commit()
        self.committed = True


class _Session:
    """A fold holding the ledger's row lock in its own transaction."""

    def __init__(self, tables: PostgresLedger, locked: _Locked) -> None:
        self._tables = tables
        self._locked = locked
        self._con = locked.con
        self.version = locked.version - 1

    async def changes_after(self, version: int) -> list[tuple[int, LedgerChange]] | None:
        try:
            return await _changes_after(self._con, version, self.version)
        except DB_ERRORS as exc:
            raise StoreError(f"cannot read ledger changes: {exc}") from exc

    async def snapshot(self) -> LedgerSnapshot:
        # on the session's own connection: waiting for another from the pool while holding
        # the lock others wait for could leave no connection to give
        try:
            return await _snapshot(self._con, self.version)
        except DB_ERRORS as exc:
            raise StoreError(f"cannot read the ledger: {exc}") from exc

    async def unfolded(self, limit: int) -> list[int]:
        try:
            rows = await self._con.fetch("SELECT seq FROM ledger_pending ORDER BY seq LIMIT $1",
                                         limit)
        except DB_ERRORS as exc:
            raise StoreError(f"cannot read unfolded events: {exc}") from exc
        return [int(r[0]) for r in rows]

    async def events(self, seqs: Sequence[int]) -> list[tuple[int, Event]]:
        if not seqs:
            return []
        try:
            rows = await self._con.fetch("SELECT seq, body FROM events WHERE seq = ANY($1)",
                                         list(seqs))
        except DB_ERRORS as exc:
            raise StoreError(f"cannot read events: {exc}") from exc
        bodies = {int(s): bytes(b) for s, b in rows}
        return [(s, decode_event(bodies[s])) for s in seqs]

    async def commit(self, writes: LedgerWrites) -> tuple[int, LedgerChange]:
        if self._locked.committed:
            raise StoreError("this fold session has ended")
        con = self._con
        version = self._locked.version
        try:
            status = await con.execute("DELETE FROM ledger_pending WHERE seq = ANY($1)",
                                       list(writes.seqs))
            marked = int(status.rsplit(" ", 1)[1])
            if marked != len(set(writes.seqs)):
                raise StoreError(f"{len(set(writes.seqs)) - marked} of the events to fold were"
                                 " folded already or are held")
            opened = await _write_totals(con, writes)
            done = await _update_deadlines(con, writes.deadline_updates)
            early = early_closes(writes.deadline_updates, done)
            if early:
                await con.executemany(_EARLY_KEEP, early)
            orders, closed, reminded = deadline_change(writes.deadline_updates, done, opened)
            change = LedgerChange(daily=writes.daily, stock=writes.stock, orders_opened=orders,
                                  orders_closed=closed, orders_reminded=reminded)
            await _log_change(con, self._tables, version, change)
            await self._locked.commit()
        except StoreError:
            raise
        except DB_ERRORS as exc:
            raise StoreError(f"ledger fold not stored: {exc}") from exc
        self._tables.store.changed(Topic.LEDGER)
        return version, change


class PostgresLedger:
    """The ledger's tables."""

    def __init__(self, store: PostgresAccess) -> None:
        self.store = store
        self.keep_changes = KEEP_CHANGES
        self.keep_changes_s = KEEP_CHANGES_S
        self.prune_every = PRUNE_EVERY

    @asynccontextmanager
    async def _locked(self) -> AsyncIterator[_Locked]:
        """A transaction holding the ledger's lock; rolled back unless committed."""
        try:
            async with self.store.pool.acquire() as con:
                locked = _Locked(con, con.transaction())
                await locked.tr.start()
                try:
                    locked.version = await self.store.lock_topic(con, Topic.LEDGER)
                    yield locked
                finally:
                    if not locked.committed:
                        await locked.tr.rollback()
        except StoreError:
            raise
        except DB_ERRORS as exc:
            raise StoreError(f"ledger transaction failed: {exc}") from exc

    async def pending(self) -> bool:
        """Whether any event waits to be folded (no lock: a replica told of commits asks
        before it takes the ledger's lock)."""
        try:
            return bool(await self.store.pool.fetchval(
                "SELECT EXISTS (SELECT 1 FROM ledger_pending)"))
        except DB_ERRORS as exc:
            raise StoreError(f"cannot read the ledger's queue: {exc}") from exc

    async def poison(self, seq: int, reason: str, at: float) -> bool:
        """Take an event off the queue, keeping it with the reason."""
        try:
            async with self.store.pool.acquire() as con, con.transaction():
                status = await con.execute("DELETE FROM ledger_pending WHERE seq = $1", seq)
                if status != "DELETE 1":
                    return False
                await con.execute(
                    "INSERT INTO ledger_poison (seq, reason, at) VALUES ($1, $2, $3)"
                    " ON CONFLICT (seq) DO UPDATE SET reason = excluded.reason,"
                    " at = excluded.at", seq, reason, at)
        except DB_ERRORS as exc:
            raise StoreError(f"cannot keep the poison event: {exc}") from exc
        return True

    async def poisoned(self) -> list[tuple[int, str, float]]:
        """The events kept as poison, oldest first."""
        rows = await self._fetch("SELECT seq, reason, at FROM ledger_poison ORDER BY seq")
        return [(int(s), str(r), float(a)) for s, r, a in rows]

    async def refold(self, seqs: Sequence[int] | None = None) -> int:
        """Queue poison events to be folded again (every replica hears of it)."""
        try:
            async with self.store.pool.acquire() as con, con.transaction():
                rows = await con.fetch(
                    "DELETE FROM ledger_poison WHERE $1::bigint[] IS NULL OR seq = ANY($1)"
                    " RETURNING seq", None if seqs is None else list(seqs))
                chosen = [int(r[0]) for r in rows]
                await con.execute("INSERT INTO ledger_pending SELECT unnest($1::bigint[])"
                                  " ON CONFLICT DO NOTHING", chosen)
                if chosen:
                    await self.store.notify(con, Topic.OUTBOX)
        except DB_ERRORS as exc:
            raise StoreError(f"cannot queue the poison events again: {exc}") from exc
        if chosen:
            self.store.changed(Topic.OUTBOX)
        return len(chosen)

    @asynccontextmanager
    async def folding(self) -> AsyncIterator[_Session]:
        """A fold session holding the ledger's lock (other replicas' folds wait)."""
        async with self._locked() as locked:
            yield _Session(self, locked)

    async def snapshot(self) -> LedgerSnapshot:
        """Contracts, daily totals, stock and open orders, read in one snapshot."""
        try:
            async with self.store.pool.acquire() as con, con.transaction(
                    isolation="repeatable_read", readonly=True):
                version = await con.fetchval("SELECT version FROM state_heads WHERE topic = $1",
                                             Topic.LEDGER.value)
                return await _snapshot(con, int(version))
        except DB_ERRORS as exc:
            raise StoreError(f"cannot read the ledger: {exc}") from exc

    async def changes_after(self, version: int) -> list[tuple[int, LedgerChange]] | None:
        """The logged changes after ``version``; None when they were pruned."""
        try:
            async with self.store.pool.acquire() as con, con.transaction(
                    isolation="repeatable_read", readonly=True):
                return await _changes_after(con, version)
        except DB_ERRORS as exc:
            raise StoreError(f"cannot read ledger changes: {exc}") from exc

    async def save_contracts(self, items: Sequence[tuple[str, dict[str, Any]]],
                             now: datetime, retire: Sequence[str] = ()) -> int:
        """Insert or replace contracts by id, delete the ``retire`` ids; returns the new
        ledger version."""
        async with self._locked() as locked:
            if retire:
                await locked.con.execute(
                    "DELETE FROM ledger_contracts WHERE contract_id = ANY($1::text[])",
                    list(retire))
            await locked.con.executemany(
                "INSERT INTO ledger_contracts (contract_id, body, imported_at) VALUES ($1, $2,"
                " $3) ON CONFLICT (contract_id) DO UPDATE SET body = excluded.body,"
                " imported_at = excluded.imported_at",
                [(cid, contract_body(body), now.isoformat()) for cid, body in items])
            await _log_change(locked.con, self, locked.version, LedgerChange(contracts=True))
            await locked.commit()
        self.store.changed(Topic.LEDGER)
        return locked.version

    async def update_deadlines(self, updates: Sequence[DeadlineUpdate]) -> list[bool]:
        """Close or remind deadlines; a new version when any was open."""
        async with self._locked() as locked:
            done = await _update_deadlines(locked.con, updates)
            if not any(done):
                return done  # rolled back: no version used
            _, closed, reminded = deadline_change(updates, done)
            await _log_change(locked.con, self, locked.version, LedgerChange(
                orders_closed=closed, orders_reminded=reminded))
            await locked.commit()
        self.store.changed(Topic.LEDGER)
        return done

    async def reschedule_deadlines(self, rows: Sequence[DeadlineRow]) -> int:
        """Set due time and detail of these deadlines; a new version when any existed."""
        async with self._locked() as locked:
            n = 0
            for row in rows:
                status = await locked.con.execute(
                    "UPDATE ledger_deadlines SET due_at = $1, detail = $2 WHERE hospital_id = $3"
                    " AND kind = $4 AND ref = $5", *reschedule_args(row))
                n += int(status.split()[-1])
            if not n:
                return 0  # rolled back: no version used
            await _log_change(locked.con, self, locked.version, LedgerChange())
            await locked.commit()
        self.store.changed(Topic.LEDGER)
        return n

    async def _fetch(self, sql: str, *args: Any) -> list[Any]:
        try:
            return list(await self.store.pool.fetch(sql, *args))
        except DB_ERRORS as exc:
            raise StoreError(f"cannot read the ledger: {exc}") from exc

    async def daily(self, hospital_id: str | None = None, *, since: date | None = None,
                    until: date | None = None) -> list[DailyRow]:
        """Daily totals, optionally for one hospital and a day range (inclusive)."""
        where, args = daily_where(hospital_id, since, until, _mark)
        return [daily_from_row(r) for r in
                await self._fetch(f"SELECT * FROM ledger_daily WHERE {where}", *args)]

    async def deadlines(self, hospital_id: str | None = None, *,
                        open_only: bool = False) -> list[DeadlineRow]:
        """Deadlines by due time."""
        sql = f"SELECT {DEADLINE_COLUMNS} FROM ledger_deadlines WHERE 1 = 1"
        args: list[Any] = []
        if hospital_id is not None:
            args.append(hospital_id)
            sql += " AND hospital_id = $1"
        if open_only:
            sql += " AND closed_at IS NULL"
        return [deadline_from_row(r) for r in await self._fetch(sql + " ORDER BY due_at", *args)]

    async def price_flags(self, hospital_id: str) -> list[PriceFlag]:
        """Purchases of winning products above the winning price, by day."""
        return [price_flag_from_row(r) for r in await self._fetch(
            "SELECT * FROM ledger_price_flags WHERE hospital_id = $1 ORDER BY day, event_id, seq",
            hospital_id)]

    async def untraced_sales(self, hospital_id: str) -> list[UntracedSale]:
        """Drug sales without traceability codes once they were mandatory, by day."""
        return [untraced_from_row(r) for r in await self._fetch(
            "SELECT * FROM ledger_untraced WHERE hospital_id = $1 ORDER BY day, event_id, line",
            hospital_id)]

    async def trace_flags(self, hospital_id: str) -> list[TraceFlag]:
        """Traceability codes sold more than once, by day."""
        return [trace_flag_from_row(r) for r in await self._fetch(
            "SELECT * FROM ledger_trace_flags WHERE hospital_id = $1 ORDER BY day, code",
            hospital_id)]

    async def claim_notice(self, kind: str, key: str, at: float) -> bool:
        """Record a notice as sent; False when any replica sent it before."""
        try:
            claimed = await self.store.pool.fetchval(
                "INSERT INTO ledger_notices (kind, key, at) VALUES ($1, $2, $3)"
                " ON CONFLICT DO NOTHING RETURNING true", kind, key, at)
        except DB_ERRORS as exc:
            raise StoreError(f"cannot record the notice: {exc}") from exc
        return claimed is not None

    async def import_legacy(self, data: LedgerImport) -> None:
        """Take over an old ledger file's contracts, deadline decisions, cards and feedback
        (see the protocol)."""
        async with self._locked() as locked:
            con = locked.con
            await con.executemany(
                "INSERT INTO ledger_contracts (contract_id, body, imported_at) VALUES ($1, $2,"
                " $3) ON CONFLICT DO NOTHING",
                [(cid, contract_body(body), at) for cid, body, at in data.contracts])
            await con.executemany(
                f"INSERT INTO ledger_deadlines ({DEADLINE_COLUMNS}) VALUES ($1, $2, $3, $4, $5,"
                " $6, $7, $8) ON CONFLICT (hospital_id, kind, ref) DO UPDATE SET"
                " closed_at = coalesce(ledger_deadlines.closed_at, excluded.closed_at),"
                " reminded_at = coalesce(ledger_deadlines.reminded_at, excluded.reminded_at)",
                [deadline_args(d) for d in data.deadlines])
            await con.executemany(
                f"INSERT INTO cds_cards ({CARD_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7,"
                " $8, $9) ON CONFLICT DO NOTHING", [card_args(c) for c in data.cards])
            await con.executemany(
                f"INSERT INTO cds_feedback ({FEEDBACK_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6,"
                " $7) ON CONFLICT DO NOTHING", [feedback_args(f) for f in data.feedback])
            await _log_change(con, self, locked.version, LedgerChange(contracts=True))
            await locked.commit()
        self.store.changed(Topic.LEDGER)
