"""SQLite store: WAL, synchronous=FULL, and group commit.

One writer thread owns the write connection. Messages that arrive while a commit
is in flight wait in a list and go together in the next transaction, so many
concurrent senders share one fsync; nobody is acknowledged before the
transaction holding their message has returned from COMMIT.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import Any

import orjson

from canonical.errors import StoreError
from canonical.model import Event, EventKind, event_from_dict, event_json
from gateway.store.base import (
    Balance,
    Claim,
    CommitResult,
    DeliveryUpdate,
    Incoming,
    OutboxItem,
    OutboxQuery,
    OutboxRecord,
    OutboxStats,
    PlannedDelivery,
    ReplayResult,
    UnmappedItem,
)
from gateway.store.group_commit import GroupCommit, GroupCommitting
from gateway.store.msgid import MsgIdClock
from gateway.store.query import (
    ITEM_COLUMNS,
    RECORD_COLUMNS,
    item_from_row,
    outbox_where,
    record_from_row,
)
from gateway.store.unmapped import unmapped_changes

__all__ = ["Remap", "SqliteStore"]

# held event → (event mapped again, still held?, deliveries to plan)
Remap = Callable[[Event], tuple[Event, bool, tuple[PlannedDelivery, ...]]]

log = logging.getLogger(__name__)

SCHEMA_VERSION = 3

# version → statements; version 1 is schema_sqlite.sql
_MIGRATIONS: dict[int, str] = {
    2: "CREATE INDEX IF NOT EXISTS outbox_groups ON outbox"
       " (destination, hospital_id, stream, id) WHERE state = 0;",
    # when an event's delivery first failed (charged): the time-based retry budget
    3: "ALTER TABLE outbox ADD COLUMN first_failed_at REAL;",
}

_STATE = {"delivered": 1, "dead": 2}

_ROWS_PER_STATEMENT = 500  # × 8 columns, well under SQLite's variable limit


def _next_ids(con: sqlite3.Connection) -> tuple[int, int, int]:
    # one statement, not three: each SQLite call releases and retakes the GIL, and while
    # the event loop is busy retaking it can wait a whole switch interval
    row = con.execute("SELECT (SELECT max(id) FROM messages), (SELECT max(seq) FROM events),"
                      " (SELECT max(id) FROM outbox)").fetchone()
    return int(row[0] or 0) + 1, int(row[1] or 0) + 1, int(row[2] or 0) + 1


def _existing_messages(con: sqlite3.Connection,
                       keys: list[tuple[str, str]]) -> dict[tuple[str, str], int]:
    by_sender: dict[str, list[str]] = {}
    for sender, control_id in dict.fromkeys(keys):
        by_sender.setdefault(sender, []).append(control_id)
    found: dict[tuple[str, str], int] = {}
    for sender, ids in by_sender.items():  # sender = ? AND control_id IN (…) uses the index
        for i in range(0, len(ids), _ROWS_PER_STATEMENT):
            chunk = ids[i:i + _ROWS_PER_STATEMENT]
            marks = ",".join("?" * len(chunk))
            for mid, control_id in con.execute(
                    f"SELECT id, control_id FROM messages WHERE sender = ?"
                    f" AND control_id IN ({marks})", [sender, *chunk]):
                found[(sender, control_id)] = mid
    return found


def _missing_event_ids(con: sqlite3.Connection, event_ids: list[str]) -> set[str]:
    missing = set(event_ids)
    unique = list(missing)
    for i in range(0, len(unique), _ROWS_PER_STATEMENT):
        chunk = unique[i:i + _ROWS_PER_STATEMENT]
        marks = ",".join("?" * len(chunk))
        for (seen,) in con.execute(f"SELECT event_id FROM events WHERE event_id IN ({marks})",
                                   chunk):
            missing.discard(seen)
    return missing


def _insert_many(con: sqlite3.Connection, into: str, width: int,
                 rows: list[tuple[Any, ...]]) -> None:
    for i in range(0, len(rows), _ROWS_PER_STATEMENT):
        chunk = rows[i:i + _ROWS_PER_STATEMENT]
        row = "(" + ",".join("?" * width) + ")"
        con.execute(f"INSERT INTO {into} VALUES " + ",".join([row] * len(chunk)),
                    [v for r in chunk for v in r])


class SqliteStore(GroupCommitting):
    """The embedded default store."""

    def __init__(self, path: Path | str, *, group_commit_max: int = 2000,
                 on_batch: Callable[[int], None] | None = None) -> None:
        self.path = Path(path)
        self.group_commit_max = group_commit_max
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="sqlite-writer")
        self._reader = ThreadPoolExecutor(1, thread_name_prefix="sqlite-reader")
        self._wcon: sqlite3.Connection | None = None
        self._rcon: sqlite3.Connection | None = None
        self._group = GroupCommit(self._write_group, group_commit_max, on_batch)
        self._checkpointer: asyncio.Task[None] | None = None
        self._msgids = MsgIdClock()
        self.commits = 0  # transactions, for tests and metrics
        self.closed = False

    # -- lifecycle -------------------------------------------------------
    def _open(self) -> sqlite3.Connection:
        con = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        con.execute("PRAGMA journal_mode=WAL")
        con.execute("PRAGMA synchronous=FULL")
        con.execute("PRAGMA busy_timeout=10000")
        # checkpoints run on the reader thread (see _checkpoint) so a commit never waits
        # for the database file to be written back
        con.execute("PRAGMA wal_autocheckpoint=0")
        return con

    def _checkpoint_sync(self) -> None:
        con = self._rcon
        assert con is not None
        con.execute("PRAGMA wal_checkpoint(PASSIVE)")

    async def checkpoint(self) -> None:
        """Copy committed WAL pages into the database file without blocking writers."""
        await asyncio.get_running_loop().run_in_executor(self._reader, self._checkpoint_sync)

    async def _checkpoint_loop(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            try:
                await self.checkpoint()
            except sqlite3.Error as exc:
                log.warning("WAL checkpoint failed: %s", exc)

    def _migrate(self) -> None:
        con = self._wcon
        assert con is not None
        con.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        row = con.execute("SELECT max(version) FROM schema_version").fetchone()
        current = row[0] or 0
        if current > SCHEMA_VERSION:
            raise StoreError(f"{self.path} has schema version {current}, newer than this "
                             f"gateway's {SCHEMA_VERSION}: upgrade the gateway")
        if current < 1:
            sql = resources.files("gateway.store").joinpath("schema_sqlite.sql").read_text()
            con.executescript("BEGIN;" + sql + "INSERT INTO schema_version VALUES (1); COMMIT;")
            current = 1
        for version in range(current + 1, SCHEMA_VERSION + 1):
            con.executescript(f"BEGIN;{_MIGRATIONS[version]}"
                              f"INSERT INTO schema_version VALUES ({version}); COMMIT;")
        for hospital, msgid in con.execute(
                "SELECT hospital_id, max(msgid) FROM outbox GROUP BY hospital_id"):
            self._msgids.seed(hospital, msgid)

    def _start_sync(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._wcon = self._open()
        self._migrate()

    async def start(self) -> None:
        """Open both connections and apply the schema."""
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self._writer, self._start_sync)
            self._rcon = await loop.run_in_executor(self._reader, self._open)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open store {self.path}: {exc}") from exc
        self._checkpointer = asyncio.create_task(self._checkpoint_loop())

    async def close(self) -> None:
        """Wait for pending commits, then close."""
        if self._checkpointer is not None:
            self._checkpointer.cancel()
        await self._group.drain()
        loop = asyncio.get_running_loop()
        if self._wcon is not None:
            await loop.run_in_executor(self._writer, self._wcon.close)
        if self._rcon is not None:
            await loop.run_in_executor(self._reader, self._rcon.close)
        self._writer.shutdown(wait=True)
        self._reader.shutdown(wait=True)
        self.closed = True

    async def listen(self, on_commit: Callable[[], None]) -> None:
        """Nothing to do: one process owns a SQLite store, and its ingest path wakes the
        mirror itself."""

    # -- ingest ----------------------------------------------------------
    def _write_group(self, items: list[Incoming]) -> asyncio.Future[list[CommitResult]]:
        # the executor's future itself: no coroutine around it for every group
        return asyncio.get_running_loop().run_in_executor(self._writer, self._write_batch, items)

    def _write_batch(self, items: list[Incoming]) -> list[CommitResult]:
        con = self._wcon
        assert con is not None
        now = time.time()
        con.execute("BEGIN IMMEDIATE")
        try:
            results = self._write_rows(con, items, now)
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        self.commits += 1
        return results

    def _write_rows(self, con: sqlite3.Connection, items: list[Incoming],
                    now: float) -> list[CommitResult]:
        """Write a group in a few multi-row statements.

        Every SQLite step releases and retakes the GIL; one statement per table per group
        instead of one per row keeps the writer thread from fighting the event loop for it.
        Ids are assigned here, under the write lock, so no per-row lastrowid is needed.
        """
        known = _existing_messages(con, [(i.sender, i.control_id) for i in items])
        next_mid, next_seq, next_oid = _next_ids(con)
        fresh_events = _missing_event_ids(
            con, [e.event_id for i in items if (i.sender, i.control_id) not in known
                  for e in i.events])
        msg_rows: list[tuple[Any, ...]] = []
        event_rows: list[tuple[Any, ...]] = []
        outbox_rows: list[tuple[Any, ...]] = []
        results: list[CommitResult] = []
        for inc in items:
            key = (inc.sender, inc.control_id)
            if key in known:
                results.append(CommitResult(duplicate=True, message_id=known[key]))
                continue
            mid = known[key] = next_mid
            next_mid += 1
            msg_rows.append((mid, inc.sender, inc.control_id, inc.adapter, inc.message_type,
                             inc.peer, inc.received_at.timestamp(), inc.raw))
            seqs: list[int | None] = []
            for ev, held in zip(inc.events, inc.held, strict=True):
                if ev.event_id not in fresh_events:
                    seqs.append(None)  # the event was seen before
                    continue
                fresh_events.discard(ev.event_id)
                seqs.append(next_seq)
                event_rows.append((next_seq, ev.event_id, mid, ev.hospital_id, ev.kind.value,
                                   ev.occurred_at.isoformat(), int(held), event_json(ev)))
                next_seq += 1
                if held or ev.kind is EventKind.ITEM_MASTER:
                    note, forget = unmapped_changes(ev, held)
                    self._note_unmapped(con, ev.hospital_id, note, forget, now, int(held))
            outbox_ids = []
            for d in inc.deliveries:
                seq = seqs[d.event_index]
                if seq is None:
                    continue
                ev = inc.events[d.event_index]
                outbox_rows.append((next_oid, d.destination, seq, d.unit, ev.hospital_id,
                                    ev.stream, self._msgids.next(ev.hospital_id, now), now))
                outbox_ids.append(next_oid)
                next_oid += 1
            results.append(CommitResult(duplicate=False, message_id=mid,
                                        outbox_ids=tuple(outbox_ids), event_seqs=tuple(seqs)))
        _insert_many(con, "messages (id, sender, control_id, adapter, message_type, peer,"
                          " received_at, raw)", 8, msg_rows)
        _insert_many(con, "events (seq, event_id, message_id, hospital_id, kind, occurred_at,"
                          " held, body)", 8, event_rows)
        _insert_many(con, "outbox (id, destination, event_seq, unit, hospital_id, stream,"
                          " msgid, created_at)", 8, outbox_rows)
        return results

    @staticmethod
    def _note_unmapped(con: sqlite3.Connection, hospital_id: str, lines: Any,
                       forget: tuple[str, ...], now: float, count: int) -> None:
        for code in forget:
            con.execute("DELETE FROM unmapped WHERE hospital_id = ? AND item_code = ?",
                        (hospital_id, code))
        for line in lines:
            con.execute(
                "INSERT INTO unmapped (hospital_id, item_code, item_name, specification,"
                " manufacturer, occurrences, first_seen, last_seen) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (hospital_id, item_code) DO UPDATE SET"
                " occurrences = occurrences + excluded.occurrences, last_seen = excluded.last_seen",
                (hospital_id, line.item_code, line.item_name, line.specification,
                 line.manufacturer, count, now, now))

    async def quarantine(self, raw: bytes, *, peer: str, adapter: str, reason: str,
                         received_at: datetime) -> int:
        """Keep bytes that could not be taken, with the reason, durably."""
        def write() -> int:
            con = self._wcon
            assert con is not None
            cur = con.execute(
                "INSERT INTO quarantine (received_at, peer, adapter, reason, raw)"
                " VALUES (?, ?, ?, ?, ?)", (received_at.timestamp(), peer, adapter, reason, raw))
            return cur.lastrowid or 0
        try:
            return await asyncio.get_running_loop().run_in_executor(self._writer, write)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot quarantine: {exc}") from exc

    # -- outbox ----------------------------------------------------------
    async def pending(self, destination: str, limit: int) -> list[OutboxItem]:
        """The oldest undelivered rows of a destination, in commit order."""
        def read() -> list[OutboxItem]:
            con = self._rcon
            assert con is not None
            rows = con.execute(
                f"SELECT {ITEM_COLUMNS} FROM outbox o JOIN events e ON e.seq = o.event_seq"
                " WHERE o.destination = ? AND o.state = 0 ORDER BY o.id LIMIT ?",
                (destination, limit)).fetchall()
            return [item_from_row(destination, r) for r in rows]
        return await asyncio.get_running_loop().run_in_executor(self._reader, read)

    async def record_deliveries(self, updates: list[DeliveryUpdate]) -> None:
        """Store the outcomes of delivery attempts in one transaction."""
        if not updates:
            return
        def write() -> None:
            con = self._wcon
            assert con is not None
            con.execute("BEGIN IMMEDIATE")
            try:
                for u in updates:
                    if u.outcome == "retry":
                        con.execute(
                            "UPDATE outbox SET attempts = attempts + ?, last_error = ?,"
                            " next_attempt_at = ?, first_failed_at = CASE WHEN ? THEN"
                            " coalesce(first_failed_at, nullif(?, 0)) ELSE first_failed_at END"
                            " WHERE id = ? AND state = 0",
                            (int(u.charge), u.error, u.next_attempt_at, int(u.charge), u.at,
                             u.outbox_id))
                    else:
                        con.execute(
                            "UPDATE outbox SET attempts = attempts + 1, state = ?, last_error = ?,"
                            " delivered_at = ?, platform_ref = ? WHERE id = ? AND state = 0",
                            (_STATE[u.outcome], u.error, u.at, u.platform_ref, u.outbox_id))
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
        await asyncio.get_running_loop().run_in_executor(self._writer, write)

    async def stats(self, now: float) -> OutboxStats:
        """Outbox depth, oldest age and dead letters per destination; held events."""
        def read() -> OutboxStats:
            con = self._rcon
            assert con is not None
            depth: dict[str, int] = {}
            oldest: dict[str, float] = {}
            dead: dict[str, int] = {}
            for dest, n, first in con.execute(
                    "SELECT destination, count(*), min(created_at) FROM outbox WHERE state = 0"
                    " GROUP BY destination"):
                depth[dest] = n
                oldest[dest] = max(0.0, now - first)
            for dest, n in con.execute(
                    "SELECT destination, count(*) FROM outbox WHERE state = 2"
                    " GROUP BY destination"):
                dead[dest] = n
            held = con.execute("SELECT count(*) FROM events WHERE held = 1").fetchone()[0]
            return OutboxStats(depth, oldest, dead, held)
        return await asyncio.get_running_loop().run_in_executor(self._reader, read)

    async def unmapped(self, hospital_id: str | None = None) -> list[UnmappedItem]:
        """The unmapped-item queue, most frequent first."""
        def read() -> list[UnmappedItem]:
            con = self._rcon
            assert con is not None
            sql = ("SELECT hospital_id, item_code, item_name, specification, manufacturer,"
                   " occurrences, first_seen, last_seen FROM unmapped")
            args: tuple[str, ...] = ()
            if hospital_id:
                sql += " WHERE hospital_id = ?"
                args = (hospital_id,)
            return [UnmappedItem(*r) for r in con.execute(sql + " ORDER BY occurrences DESC",
                                                          args)]
        return await asyncio.get_running_loop().run_in_executor(self._reader, read)

    async def release_held(self, remap: Remap, hospital_id: str | None = None) -> list[Event]:
        """Map held events again, oldest first; those now complete get their outbox rows.

        ``remap`` returns the event with national codes, whether it is still held, and the
        deliveries to plan. Released events are committed in one transaction, in their
        original order, and returned.
        """
        def write() -> list[Event]:
            con = self._wcon
            assert con is not None
            now = time.time()
            sql = "SELECT seq, body FROM events WHERE held = 1"
            args: tuple[str, ...] = ()
            if hospital_id:
                sql += " AND hospital_id = ?"
                args = (hospital_id,)
            released: list[Event] = []
            con.execute("BEGIN IMMEDIATE")
            try:
                for seq, body in con.execute(sql + " ORDER BY seq", args).fetchall():
                    event, still_held, deliveries = remap(event_from_dict(orjson.loads(body)))
                    if still_held:
                        continue
                    con.execute("UPDATE events SET held = 0, body = ? WHERE seq = ?",
                                (event_json(event), seq))
                    for d in deliveries:
                        con.execute(
                            "INSERT INTO outbox (destination, event_seq, unit, hospital_id,"
                            " stream, msgid, created_at, next_attempt_at)"
                            " VALUES (?, ?, ?, ?, ?, ?, ?, 0)",
                            (d.destination, seq, d.unit, event.hospital_id, event.stream,
                             self._msgids.next(event.hospital_id, now), now))
                    for line in event.lines:
                        con.execute("DELETE FROM unmapped WHERE hospital_id = ? AND item_code = ?",
                                    (event.hospital_id, line.item_code))
                    released.append(event)
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
            return released
        return await asyncio.get_running_loop().run_in_executor(self._writer, write)

    async def events_after(self, seq: int, limit: int) -> list[tuple[int, Event]]:
        """Committed events after sequence number ``seq``, in commit order (ledger feed)."""
        def read() -> list[tuple[int, Event]]:
            con = self._rcon
            assert con is not None
            rows = con.execute("SELECT seq, body FROM events WHERE seq > ? ORDER BY seq LIMIT ?",
                               (seq, limit)).fetchall()
            return [(r[0], event_from_dict(orjson.loads(r[1]))) for r in rows]
        return await asyncio.get_running_loop().run_in_executor(self._reader, read)

    async def writable(self) -> bool:
        """Whether a write transaction can commit now."""
        def probe() -> bool:
            con = self._wcon
            assert con is not None
            con.execute("BEGIN IMMEDIATE")
            con.execute("ROLLBACK")
            return True
        try:
            return await asyncio.wait_for(
                asyncio.get_running_loop().run_in_executor(self._writer, probe), 5)
        except (sqlite3.Error, TimeoutError, RuntimeError):
            return False

    async def query(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """A read-only query on the reader connection (admin API, tests)."""
        def read() -> list[tuple[Any, ...]]:
            con = self._rcon
            assert con is not None
            return list(con.execute(sql, args).fetchall())
        return await asyncio.get_running_loop().run_in_executor(self._reader, read)

    # -- mirror claims, dead letters, replay -------------------------------
    async def claim(self, destination: str, limit: int, now: float) -> Claim:
        """Rows of the due FIFO groups, oldest first (one process: no lease needed)."""
        def read() -> Claim:
            con = self._rcon
            assert con is not None
            heads = con.execute(
                "SELECT o.hospital_id, o.stream, o.next_attempt_at FROM outbox o JOIN"
                " (SELECT min(id) AS id FROM outbox WHERE destination = ? AND state = 0"
                "  GROUP BY hospital_id, stream) h ON h.id = o.id ORDER BY o.id",
                (destination,)).fetchall()
            due = [(h, s) for h, s, at in heads if at <= now]
            waiting = [at for _, _, at in heads if at > now]
            next_due = min(waiting) if waiting else None
            items: list[OutboxItem] = []
            per_group = max(1, limit // max(1, len(due)))
            for hospital, stream in due:
                rows = con.execute(
                    f"SELECT {ITEM_COLUMNS} FROM outbox o"
                    " JOIN events e ON e.seq = o.event_seq WHERE o.destination = ?"
                    " AND o.state = 0 AND o.hospital_id = ? AND o.stream = ?"
                    " ORDER BY o.id LIMIT ?", (destination, hospital, stream, per_group))
                items.extend(item_from_row(destination, r) for r in rows)
            return Claim(items, next_due)
        return await asyncio.get_running_loop().run_in_executor(self._reader, read)

    async def list_outbox(self, query: OutboxQuery) -> list[OutboxRecord]:
        """Outbox rows matching ``query``, oldest first."""
        where, args = outbox_where(query, lambda n: "?")
        def read() -> list[OutboxRecord]:
            con = self._rcon
            assert con is not None
            rows = con.execute(
                f"SELECT {RECORD_COLUMNS} FROM outbox o JOIN events e ON e.seq = o.event_seq"
                f" WHERE {where} ORDER BY o.id LIMIT ?", (*args, query.limit)).fetchall()
            return [record_from_row(r) for r in rows]
        return await asyncio.get_running_loop().run_in_executor(self._reader, read)

    async def outbox_record(self, outbox_id: int) -> OutboxRecord | None:
        """One row with its event."""
        def read() -> OutboxRecord | None:
            con = self._rcon
            assert con is not None
            row = con.execute(
                f"SELECT {RECORD_COLUMNS}, e.body FROM outbox o JOIN events e"
                " ON e.seq = o.event_seq WHERE o.id = ?", (outbox_id,)).fetchone()
            return None if row is None else record_from_row(row[:-1], row[-1])
        return await asyncio.get_running_loop().run_in_executor(self._reader, read)

    async def replay(self, query: OutboxQuery, *, to_destination: str | None = None,
                     force: bool = False, now: float = 0.0) -> ReplayResult:
        """Queue matching rows again; delivered ones are refused unless ``force``."""
        where, args = outbox_where(query, lambda n: "?")
        now = now or time.time()
        def write() -> ReplayResult:
            con = self._wcon
            assert con is not None
            queued: list[int] = []
            refused: list[int] = []
            skipped: list[int] = []
            con.execute("BEGIN IMMEDIATE")
            try:
                rows = con.execute(
                    "SELECT o.id, o.destination, o.msgid, o.state, o.event_seq, o.unit,"
                    " o.hospital_id, o.stream FROM outbox o"
                    f" WHERE {where} ORDER BY o.id LIMIT ?", (*args, query.limit)).fetchall()
                for oid, dest, msgid, state, seq, unit, hospital, stream in rows:
                    target_id, target_state = oid, state
                    if to_destination and to_destination != dest:
                        other = con.execute(
                            "SELECT id, state FROM outbox WHERE destination = ? AND msgid = ?",
                            (to_destination, msgid)).fetchone()
                        if other is None:
                            cur = con.execute(
                                "INSERT INTO outbox (destination, event_seq, unit, hospital_id,"
                                " stream, msgid, created_at, next_attempt_at)"
                                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                                (to_destination, seq, unit, hospital, stream, msgid, now, now))
                            queued.append(cur.lastrowid or 0)
                            continue
                        target_id, target_state = other
                    if target_state == 0:
                        skipped.append(target_id)
                    elif target_state == 1 and not force:
                        refused.append(target_id)
                    else:
                        con.execute(
                            "UPDATE outbox SET state = 0, attempts = 0, next_attempt_at = ?,"
                            " last_error = '', delivered_at = NULL, first_failed_at = NULL"
                            " WHERE id = ?",
                            (now, target_id))
                        queued.append(target_id)
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
            return ReplayResult(tuple(queued), tuple(refused), tuple(skipped))
        return await asyncio.get_running_loop().run_in_executor(self._writer, write)

    async def balance(self) -> Balance:
        """Units per destination and state, and held events, in one read transaction."""
        def read() -> Balance:
            con = self._rcon
            assert con is not None
            by_state: dict[int, dict[str, int]] = {0: {}, 1: {}, 2: {}}
            con.execute("BEGIN")
            try:
                for dest, state, n in con.execute(
                        "SELECT destination, state, count(*) FROM outbox"
                        " GROUP BY destination, state"):
                    by_state[state][dest] = n
                held = con.execute("SELECT count(*) FROM events WHERE held = 1").fetchone()[0]
            finally:
                con.execute("COMMIT")
            return Balance(delivered=by_state[1], queued=by_state[0], dead=by_state[2],
                           held_events=held)
        return await asyncio.get_running_loop().run_in_executor(self._reader, read)
