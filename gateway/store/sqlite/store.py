"""SQLite store: WAL, synchronous=FULL, and group commit.

One writer thread owns the write connection. Messages that arrive while a commit
is in flight wait in a list and go together in the next transaction, so many
concurrent senders share one fsync; nobody is acknowledged before the
transaction holding their message has returned from COMMIT. The crosswalk,
catalogs, ledger and CDS tables live in the same file and write through the same
thread (:meth:`SqliteStore.write`).
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from functools import partial
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

from canonical.errors import StoreError
from canonical.model import Event, EventKind, Line, event_json
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
    Purged,
    ReplayResult,
    Topic,
    UnmappedItem,
)
from gateway.store.files import private_dir, private_file, tighten
from gateway.store.group_commit import GroupCommit, GroupCommitting
from gateway.store.msgid import MsgIdClock
from gateway.store.plan import (
    UNMAPPED,
    OutboxState,
    Remap,
    ReplayAction,
    StagedMessage,
    balance_from_counts,
    commit_results,
    held_value,
    incoming_body,
    incoming_digest,
    is_reuse,
    order_scope,
    outbox_rows,
    plan_release,
    quarantined_bytes,
    raw_digest,
    replay_action,
    unmapped_changes,
)
from gateway.store.query import (
    ITEM_COLUMNS,
    RECORD_COLUMNS,
    UNBLOCKED,
    DecodedEvents,
    decode_event,
    event_seqs,
    held_lines,
    items_from_rows,
    outbox_where,
    purgeable_messages,
    record_from_row,
)
from gateway.store.sqlite.audit_log import SqliteAuditLog
from gateway.store.sqlite.browser import SqliteBrowser, record_attempts
from gateway.store.sqlite.cds import SqliteCds
from gateway.store.sqlite.crosswalk import SqliteCatalogs, SqliteCrosswalk
from gateway.store.sqlite.ledger import SqliteLedger
from gateway.store.sqlite.migrations import MIGRATIONS, SCHEMA_VERSION

__all__ = ["SqliteStore"]

log = logging.getLogger(__name__)

_T = TypeVar("_T")

_PENDING = int(OutboxState.PENDING)
_DELIVERED = int(OutboxState.DELIVERED)
_DEAD = int(OutboxState.DEAD)
_FINAL = {"delivered": _DELIVERED, "dead": _DEAD}

_ROWS_PER_STATEMENT = 500  # × 8 columns, well under SQLite's variable limit


def _next_ids(con: sqlite3.Connection) -> tuple[int, int, int]:
    # one statement, not three: each SQLite call releases and retakes the GIL, and while
    # the event loop is busy retaking it can wait a whole switch interval
    row = con.execute("SELECT (SELECT max(id) FROM messages), (SELECT max(seq) FROM events),"
                      " (SELECT max(id) FROM outbox)").fetchone()
    return int(row[0] or 0) + 1, int(row[1] or 0) + 1, int(row[2] or 0) + 1


def _existing_messages(con: sqlite3.Connection, keys: list[tuple[str, str]]
                       ) -> dict[tuple[str, str], tuple[int, bytes | None]]:
    """The id and raw digest of each key already stored."""
    by_sender: dict[str, list[str]] = {}
    for sender, control_id in dict.fromkeys(keys):
        by_sender.setdefault(sender, []).append(control_id)
    found: dict[tuple[str, str], tuple[int, bytes | None]] = {}
    for sender, ids in by_sender.items():  # sender = ? AND control_id IN (…) uses the index
        for i in range(0, len(ids), _ROWS_PER_STATEMENT):
            chunk = ids[i:i + _ROWS_PER_STATEMENT]
            marks = ",".join("?" * len(chunk))
            for mid, control_id, digest in con.execute(
                    f"SELECT id, control_id, raw_sha256 FROM messages WHERE sender = ?"
                    f" AND control_id IN ({marks})", [sender, *chunk]):
                found[(sender, control_id)] = (mid, digest)
    return found


def _sha256(raw: bytes | None) -> bytes | None:
    return None if raw is None else raw_digest(raw)


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


def _bodies(con: sqlite3.Connection, seqs: list[int]) -> list[tuple[int, bytes]]:
    """Each event's body once."""
    found: list[tuple[int, bytes]] = []
    for i in range(0, len(seqs), _ROWS_PER_STATEMENT):
        chunk = seqs[i:i + _ROWS_PER_STATEMENT]
        marks = ",".join("?" * len(chunk))
        found.extend(con.execute(f"SELECT seq, body FROM events WHERE seq IN ({marks})", chunk))
    return found


def _note_unmapped(con: sqlite3.Connection, hospital_id: str, lines: tuple[Line, ...],
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


def _purge_raw(con: sqlite3.Connection, *, before: float, now: float, batch: int) -> int:
    return con.execute(
        "UPDATE messages SET raw = x'', raw_purged_at = ? WHERE id IN ("
        f"{purgeable_messages('?')} LIMIT ?)", (now, before, batch)).rowcount


def _purge_quarantine(con: sqlite3.Connection, *, before: float, batch: int) -> int:
    return con.execute("DELETE FROM quarantine WHERE id IN (SELECT id FROM quarantine"
                       " WHERE received_at < ? LIMIT ?)", (before, batch)).rowcount


class SqliteStore(GroupCommitting):
    """The embedded default store."""

    shared = False

    def __init__(self, path: Path | str, *, group_commit_max: int = 2000,
                 on_batch: Callable[[int], None] | None = None,
                 quarantine_max_bytes: int = 1 << 20) -> None:
        self.path = Path(path)
        self.group_commit_max = group_commit_max
        self.quarantine_max_bytes = quarantine_max_bytes
        self._decoded = DecodedEvents()  # events of claimed rows, decoded once
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="sqlite-writer")
        self._reader = ThreadPoolExecutor(1, thread_name_prefix="sqlite-reader")
        self._wcon: sqlite3.Connection | None = None
        self._rcon: sqlite3.Connection | None = None
        self._group = GroupCommit(self._write_group, group_commit_max, on_batch)
        self._checkpointer: asyncio.Task[None] | None = None
        self._msgids = MsgIdClock()
        self._listeners: list[Callable[[Topic], None]] = []
        self.commits = 0  # transactions, for tests and metrics
        self.closed = False
        self.crosswalk = SqliteCrosswalk(self)
        self.catalogs = SqliteCatalogs(self)
        self.ledger = SqliteLedger(self)
        self.cds = SqliteCds(self)
        self.audit_log = SqliteAuditLog(self)
        self.browser = SqliteBrowser(self)

    # -- lifecycle -------------------------------------------------------
    def _open(self) -> sqlite3.Connection:
        con = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        con.execute("PRAGMA journal_mode=WAL")
        con.execute("PRAGMA synchronous=FULL")
        con.execute("PRAGMA busy_timeout=10000")
        # checkpoints run on the reader thread (see _checkpoint) so a commit never waits
        # for the database file to be written back
        con.execute("PRAGMA wal_autocheckpoint=0")
        # for the migration that gives the messages stored before it their digest
        con.create_function("jcgw_sha256", 1, _sha256, deterministic=True)
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
            sql = resources.files("gateway.store.sqlite").joinpath("schema.sql").read_text()
            con.executescript("BEGIN;" + sql + "INSERT INTO schema_version VALUES (1); COMMIT;")
            current = 1
        for version in sorted(v for v in MIGRATIONS if current < v <= SCHEMA_VERSION):
            log.info("applying SQLite migration %d to %s", version, self.path)
            con.executescript(f"BEGIN;{MIGRATIONS[version]}"
                              f"INSERT INTO schema_version VALUES ({version}); COMMIT;")
        for hospital, msgid in con.execute(
                "SELECT hospital_id, max(msgid) FROM outbox GROUP BY hospital_id"):
            self._msgids.seed(hospital, msgid)

    def _start_sync(self) -> None:
        private_dir(self.path.parent)
        # SQLite gives the -wal and -shm files the database file's mode
        private_file(self.path)
        self._wcon = self._open()
        tighten(*(self.path.with_name(self.path.name + s) for s in ("-wal", "-shm")))
        self._migrate()

    async def start(self) -> None:
        """Open both connections and apply the schema; on failure nothing stays open.

        Raises:
            StoreError: the file cannot be opened, or its schema is newer than ours.
        """
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self._writer, self._start_sync)
            self._rcon = await loop.run_in_executor(self._reader, self._open)
        except (sqlite3.Error, StoreError) as exc:
            for con, pool in ((self._wcon, self._writer), (self._rcon, self._reader)):
                if con is not None:
                    await loop.run_in_executor(pool, con.close)
            self._writer.shutdown(wait=True)
            self._reader.shutdown(wait=True)
            self.closed = True
            if isinstance(exc, StoreError):
                raise
            raise StoreError(f"cannot open store {self.path}: {exc}") from exc
        self._checkpointer = asyncio.create_task(self._checkpoint_loop())

    async def close(self) -> None:
        """Wait for pending commits, then close."""
        if self._checkpointer is not None:
            self._checkpointer.cancel()
        await self._group.drain()
        if self._wcon is not None:
            try:
                await self.cds.flush()
            except StoreError:
                log.exception("issued CDS cards could not be stored before closing")
        loop = asyncio.get_running_loop()
        if self._wcon is not None:
            await loop.run_in_executor(self._writer, self._wcon.close)
        if self._rcon is not None:
            await loop.run_in_executor(self._reader, self._rcon.close)
        self._writer.shutdown(wait=True)
        self._reader.shutdown(wait=True)
        self.closed = True

    # -- running work on the connections (for the table modules) -----------
    async def read(self, fn: Callable[[sqlite3.Connection], _T]) -> _T:
        """Run ``fn`` on the reader connection (its own thread); wraps sqlite3 errors."""
        def run() -> _T:
            con = self._rcon
            assert con is not None
            return fn(con)
        try:
            return await asyncio.get_running_loop().run_in_executor(self._reader, run)
        except sqlite3.Error as exc:
            raise StoreError(f"store read failed: {exc}") from exc

    async def write(self, fn: Callable[[sqlite3.Connection], _T],
                    topic: Topic | None = None, *, lazy: bool = False) -> _T:
        """Run ``fn`` in one write transaction on the writer thread; on success tell the
        listeners about ``topic``.

        ``lazy``: commit without waiting for the disk (``synchronous=NORMAL`` for this
        transaction). Only for what may be lost in a power failure because losing it is
        harmless — delivery outcomes, which at worst send a row again under its msgid. A
        killed process loses nothing committed either way, and the next ordinary commit
        makes it durable.

        Raises:
            StoreError: the transaction failed and was rolled back.
        """
        def run() -> _T:
            con = self._wcon
            assert con is not None
            if lazy:
                con.execute("PRAGMA synchronous=NORMAL")
            con.execute("BEGIN IMMEDIATE")
            try:
                result = fn(con)
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
            finally:
                if lazy:
                    con.execute("PRAGMA synchronous=FULL")
            return result
        try:
            result = await asyncio.get_running_loop().run_in_executor(self._writer, run)
        except sqlite3.Error as exc:
            raise StoreError(f"store write failed: {exc}") from exc
        if topic is not None:
            self.changed(topic)
        return result

    async def listen(self, on_change: Callable[[Topic], None]) -> None:
        """Hear of changes: one process owns a SQLite store, so its own writes are all."""
        self._listeners.append(on_change)

    def changed(self, topic: Topic) -> None:
        """Tell the listeners that ``topic`` changed (after the transaction committed)."""
        for listener in self._listeners:
            try:
                listener(topic)
            except Exception:  # one listener's failure must not stop the others
                log.exception("change listener failed for %s", topic)

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
        self._decoded.add_committed(items, results)
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
        pending: list[tuple[int]] = []  # for the ledger: committed, not held
        staged: list[StagedMessage] = []
        for inc in items:
            key = (inc.sender, inc.control_id)
            if key in known:
                mid, digest = known[key]
                staged.append(StagedMessage(inc, mid, True, [], is_reuse(digest, inc.raw)))
                continue
            mid = next_mid
            digest = incoming_digest(inc)
            known[key] = (mid, digest)
            next_mid += 1
            msg_rows.append((mid, inc.sender, inc.control_id, inc.adapter, inc.message_type,
                             inc.peer, inc.received_at.timestamp(), inc.raw, digest))
            seqs: list[int | None] = []
            for i, (ev, held) in enumerate(zip(inc.events, inc.held, strict=True)):
                if ev.event_id not in fresh_events:
                    seqs.append(None)  # the event was seen before
                    continue
                fresh_events.discard(ev.event_id)
                seqs.append(next_seq)
                event_rows.append((next_seq, ev.event_id, mid, ev.hospital_id, ev.kind.value,
                                   ev.occurred_at.isoformat(), held_value(inc, i),
                                   incoming_body(inc, i)))
                if not held:
                    pending.append((next_seq,))
                next_seq += 1
                if held or ev.kind is EventKind.ITEM_MASTER:
                    note, forget = unmapped_changes(ev, held)
                    _note_unmapped(con, ev.hospital_id, note, forget, now, int(held))
            staged.append(StagedMessage(inc, mid, False, seqs))
        rows = outbox_rows(staged)
        ids = list(range(next_oid, next_oid + len(rows)))
        _insert_many(con, "messages (id, sender, control_id, adapter, message_type, peer,"
                          " received_at, raw, raw_sha256)", 9, msg_rows)
        _insert_many(con, "events (seq, event_id, message_id, hospital_id, kind, occurred_at,"
                          " held, body)", 8, event_rows)
        _insert_many(con, "ledger_pending (seq)", 1, pending)
        msgids = self._msgids.many([r.hospital_id for r in rows], now)
        _insert_many(con, "outbox (id, destination, event_seq, unit, hospital_id, stream,"
                          " msgid, created_at, order_key, order_scope)", 10,
                     [(oid, r.destination, r.event_seq, r.unit, r.hospital_id, r.stream,
                       msgid, now, r.order_key, r.order_scope)
                      for oid, r, msgid in zip(ids, rows, msgids, strict=True)])
        return commit_results(staged, rows, ids)

    async def quarantine(self, raw: bytes, *, peer: str, adapter: str, reason: str,
                         received_at: datetime) -> int:
        """Keep bytes that could not be taken, with the reason, durably."""
        kept = quarantined_bytes(raw, self.quarantine_max_bytes)

        def insert(con: sqlite3.Connection) -> int:
            cur = con.execute(
                "INSERT INTO quarantine (received_at, peer, adapter, reason, raw, original_size)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (received_at.timestamp(), peer, adapter, reason, kept, len(raw)))
            return cur.lastrowid or 0
        try:
            return await self.write(insert)
        except StoreError as exc:
            raise StoreError(f"cannot quarantine: {exc}") from exc

    async def purge(self, *, raw_before: float | None, quarantine_before: float | None,
                    now: float, batch: int = 500) -> Purged:
        """Drop raw bytes past their retention (all events delivered) and old quarantine,
        ``batch`` rows per write so that commits never wait long behind it."""
        raw = 0
        while raw_before is not None:
            n = await self.write(partial(_purge_raw, before=raw_before, now=now, batch=batch))
            raw += n
            if n < batch:
                break
        kept = 0
        while quarantine_before is not None:
            n = await self.write(partial(_purge_quarantine, before=quarantine_before,
                                         batch=batch))
            kept += n
            if n < batch:
                break
        return Purged(raw, kept)

    # -- outbox ----------------------------------------------------------
    async def pending(self, destination: str, limit: int) -> list[OutboxItem]:
        """The oldest undelivered rows of a destination, in commit order."""
        def read(con: sqlite3.Connection) -> list[OutboxItem]:
            rows = con.execute(
                f"SELECT {ITEM_COLUMNS} FROM outbox o"
                f" WHERE o.destination = ? AND o.state = {_PENDING} ORDER BY o.id LIMIT ?",
                (destination, limit)).fetchall()
            return items_from_rows(destination, rows, _bodies(con, event_seqs(rows)))
        return await self.read(read)

    async def record_deliveries(self, updates: list[DeliveryUpdate]) -> None:
        """Store the outcomes of delivery attempts in one transaction."""
        if not updates:
            return

        def update(con: sqlite3.Connection) -> None:
            for u in updates:
                if u.outcome == "retry":
                    con.execute(
                        "UPDATE outbox SET attempts = attempts + ?, last_error = ?,"
                        " next_attempt_at = ?, first_failed_at = CASE WHEN ? THEN"
                        " coalesce(first_failed_at, nullif(?, 0)) ELSE first_failed_at END"
                        f" WHERE id = ? AND state = {_PENDING}",
                        (int(u.charge), u.error, u.next_attempt_at, int(u.charge), u.at,
                         u.outbox_id))
                else:
                    con.execute(
                        "UPDATE outbox SET attempts = attempts + 1, state = ?, last_error = ?,"
                        f" delivered_at = ?, platform_ref = ? WHERE id = ? AND state = {_PENDING}",
                        (_FINAL[u.outcome], u.error, u.at, u.platform_ref, u.outbox_id))
            record_attempts(con, updates)
        # an outcome lost to a power failure only sends its row again (the platform
        # answers "duplicate"): it need not wait for the disk, and the ingest commits
        # that share the writer do not wait behind its fsync
        await self.write(update, lazy=True)

    async def release(self, destination: str) -> None:
        """Nothing is leased in a store one process owns."""

    async def renew(self, destination: str, now: float) -> None:
        """Nothing is leased in a store one process owns."""

    @property
    def renew_every_s(self) -> float | None:
        """Nothing is leased: nothing to renew."""
        return None

    async def stats(self, now: float) -> OutboxStats:
        """Outbox depth, oldest age and dead letters per destination; held events."""
        def read(con: sqlite3.Connection) -> OutboxStats:
            depth: dict[str, int] = {}
            oldest: dict[str, float] = {}
            dead: dict[str, int] = {}
            for dest, n, first in con.execute(
                    "SELECT destination, count(*), min(created_at) FROM outbox"
                    f" WHERE state = {_PENDING} GROUP BY destination"):
                depth[dest] = n
                oldest[dest] = max(0.0, now - first)
            for dest, n in con.execute(
                    f"SELECT destination, count(*) FROM outbox WHERE state = {_DEAD}"
                    " GROUP BY destination"):
                dead[dest] = n
            held = con.execute("SELECT count(*) FROM events WHERE held <> 0").fetchone()[0]
            return OutboxStats(depth, oldest, dead, held)
        return await self.read(read)

    async def unmapped(self, hospital_id: str | None = None) -> list[UnmappedItem]:
        """The unmapped-item queue, most frequent first."""
        def read(con: sqlite3.Connection) -> list[UnmappedItem]:
            sql = ("SELECT hospital_id, item_code, item_name, specification, manufacturer,"
                   " occurrences, first_seen, last_seen FROM unmapped")
            args: tuple[str, ...] = ()
            if hospital_id:
                sql += " WHERE hospital_id = ?"
                args = (hospital_id,)
            return [UnmappedItem(*r) for r in con.execute(sql + " ORDER BY occurrences DESC",
                                                          args)]
        return await self.read(read)

    async def held_lines(self, hospital_id: str | None = None,
                         scan: int = 5000) -> dict[tuple[str, str], Line]:
        """The latest held line of each unmapped item (its unit, 批准文号, 本位码)."""
        def read(con: sqlite3.Connection) -> list[tuple[Any, ...]]:
            # unmapped events only (held = 1); "held <> 0" lets the partial index serve
            if hospital_id:
                return con.execute("SELECT body FROM events WHERE held <> 0 AND held = 1"
                                   " AND hospital_id = ? ORDER BY seq DESC LIMIT ?",
                                   (hospital_id, scan)).fetchall()
            return con.execute("SELECT body FROM events WHERE held <> 0 AND held = 1"
                               " ORDER BY seq DESC LIMIT ?", (scan,)).fetchall()
        return held_lines(r[0] for r in await self.read(read))

    async def held_events(self, hospital_id: str | None = None,
                          limit: int = 100) -> list[Event]:
        """Held events, oldest first."""
        def read(con: sqlite3.Connection) -> list[Any]:
            return con.execute(
                "SELECT body FROM events WHERE held <> 0 AND (? IS NULL OR hospital_id = ?)"
                " ORDER BY seq LIMIT ?", (hospital_id, hospital_id, limit)).fetchall()
        return [decode_event(bytes(r[0])) for r in await self.read(read)]

    async def release_held(self, remap: Remap, hospital_id: str | None = None) -> list[Event]:
        """Map held events again, oldest first; those now complete get their outbox rows.

        ``remap`` returns the event with national codes, whether it is still held, and the
        deliveries to plan. Released events are committed in one transaction, in their
        original order, and returned.
        """
        def release(con: sqlite3.Connection) -> list[Event]:
            now = time.time()
            sql = "SELECT seq, body, held FROM events WHERE held <> 0"
            args: tuple[str, ...] = ()
            if hospital_id:
                sql += " AND hospital_id = ?"
                args = (hospital_id,)
            rows = con.execute(sql + " ORDER BY seq", args).fetchall()
            unmapped = {seq for seq, _, h in rows if h == UNMAPPED}  # not in the ledger yet
            released = plan_release([(seq, decode_event(body), h) for seq, body, h in rows],
                                    remap)
            for r in released:
                con.execute("UPDATE events SET held = ?, body = ? WHERE seq = ?",
                            (r.held, event_json(r.event), r.seq))
                if r.seq in unmapped:
                    con.execute("INSERT INTO ledger_pending (seq) VALUES (?)", (r.seq,))
                for d in r.deliveries:
                    con.execute(
                        "INSERT INTO outbox (destination, event_seq, unit, hospital_id,"
                        " stream, msgid, created_at, next_attempt_at, order_key, order_scope)"
                        " VALUES (?, ?, ?, ?, ?, ?, ?, 0, ?, ?)",
                        (d.destination, r.seq, d.unit, r.event.hospital_id, r.event.stream,
                         self._msgids.next(r.event.hospital_id, now), now,
                         d.order_key or r.event.stream,
                         order_scope(d.order_key or r.event.stream)))
                for code in r.item_codes:
                    con.execute("DELETE FROM unmapped WHERE hospital_id = ? AND item_code = ?",
                                (r.event.hospital_id, code))
            return [r.event for r in released if not r.held]
        released = await self.write(release)
        if released:
            self.changed(Topic.OUTBOX)
        return released

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
        """A read-only query on the reader connection, for tests and diagnostics."""
        return await self.read(lambda con: list(con.execute(sql, args).fetchall()))

    # -- mirror claims, dead letters, replay -------------------------------
    async def claim(self, destination: str, limit: int, now: float) -> Claim:
        """Due rows whose key is not held up, oldest first, shared out between the
        hospitals (one process: no lease needed)."""
        unblocked = UNBLOCKED.format(now="?")

        def read(con: sqlite3.Connection) -> Claim:
            hospitals = [h for (h,) in con.execute(
                "SELECT DISTINCT hospital_id FROM outbox WHERE destination = ?"
                f" AND state = {_PENDING}", (destination,))]
            waiting = con.execute(
                "SELECT min(next_attempt_at) FROM outbox WHERE destination = ?"
                f" AND state = {_PENDING} AND next_attempt_at > ?",
                (destination, now)).fetchone()[0]
            rows: list[Any] = []
            per_hospital = max(1, limit // max(1, len(hospitals)))
            for hospital in hospitals:
                rows.extend(con.execute(
                    f"SELECT {ITEM_COLUMNS} FROM outbox o WHERE o.destination = ?"
                    f" AND o.hospital_id = ? AND o.state = {_PENDING}"
                    f" AND o.next_attempt_at <= ? AND {unblocked} ORDER BY o.id LIMIT ?",
                    (destination, hospital, now, now, per_hospital)))
            rows.sort(key=lambda r: r[0])
            known, fetch = self._decoded.split(event_seqs(rows))
            items = items_from_rows(destination, rows, _bodies(con, fetch), known,
                                    self._decoded)
            return Claim(items, waiting)
        return await self.read(read)

    async def list_outbox(self, query: OutboxQuery) -> list[OutboxRecord]:
        """Outbox rows matching ``query``, oldest first."""
        where, args = outbox_where(query, lambda n: "?")

        def read(con: sqlite3.Connection) -> list[OutboxRecord]:
            rows = con.execute(
                f"SELECT {RECORD_COLUMNS} FROM outbox o JOIN events e ON e.seq = o.event_seq"
                f" WHERE {where} ORDER BY o.id LIMIT ?", (*args, query.limit)).fetchall()
            return [record_from_row(r) for r in rows]
        return await self.read(read)

    async def outbox_record(self, outbox_id: int) -> OutboxRecord | None:
        """One row with its event."""
        def read(con: sqlite3.Connection) -> OutboxRecord | None:
            row = con.execute(
                f"SELECT {RECORD_COLUMNS}, e.body FROM outbox o JOIN events e"
                " ON e.seq = o.event_seq WHERE o.id = ?", (outbox_id,)).fetchone()
            return None if row is None else record_from_row(row[:-1], row[-1])
        return await self.read(read)

    async def replay(self, query: OutboxQuery, *, to_destination: str | None = None,
                     force: bool = False, now: float = 0.0) -> ReplayResult:
        """Queue matching rows again; delivered ones are refused unless ``force``."""
        where, args = outbox_where(query, lambda n: "?")
        now = now or time.time()

        def replay(con: sqlite3.Connection) -> ReplayResult:
            done: dict[ReplayAction, list[int]] = {a: [] for a in ReplayAction}
            rows = con.execute(
                "SELECT o.id, o.destination, o.msgid, o.state, o.event_seq, o.unit,"
                " o.hospital_id, o.stream, o.order_key, o.order_scope FROM outbox o"
                f" WHERE {where} ORDER BY o.id LIMIT ?", (*args, query.limit)).fetchall()
            for oid, dest, msgid, state, seq, unit, hospital, stream, key, scope in rows:
                target_id, target_state = oid, state
                if to_destination and to_destination != dest:
                    other = con.execute(
                        "SELECT id, state FROM outbox WHERE destination = ? AND msgid = ?",
                        (to_destination, msgid)).fetchone()
                    if other is None:
                        cur = con.execute(
                            "INSERT INTO outbox (destination, event_seq, unit, hospital_id,"
                            " stream, msgid, created_at, next_attempt_at, order_key,"
                            " order_scope) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                            (to_destination, seq, unit, hospital, stream, msgid, now, now,
                             key, scope))
                        done[ReplayAction.QUEUE].append(cur.lastrowid or 0)
                        continue
                    target_id, target_state = other
                action = replay_action(target_state, force)
                if action is ReplayAction.QUEUE:
                    con.execute(
                        f"UPDATE outbox SET state = {_PENDING}, attempts = 0,"
                        " next_attempt_at = ?, last_error = '', delivered_at = NULL,"
                        " first_failed_at = NULL WHERE id = ?", (now, target_id))
                done[action].append(target_id)
            return ReplayResult(tuple(done[ReplayAction.QUEUE]),
                                tuple(done[ReplayAction.REFUSE]),
                                tuple(done[ReplayAction.SKIP]))
        result = await self.write(replay)
        if result.queued:
            self.changed(Topic.OUTBOX)
        return result

    async def balance(self) -> Balance:
        """Units per destination and state, and held events, in one read transaction."""
        def read(con: sqlite3.Connection) -> Balance:
            con.execute("BEGIN")
            try:
                counts = con.execute("SELECT destination, state, count(*) FROM outbox"
                                     " GROUP BY destination, state").fetchall()
                held = con.execute("SELECT count(*) FROM events WHERE held <> 0").fetchone()[0]
            finally:
                con.execute("COMMIT")
            return balance_from_counts(counts, held)
        return await self.read(read)
