"""PostgreSQL store (asyncpg) for a city- or province-level deployment.

Several gateway processes share one database. Ingest is group-committed like the
SQLite store. Delivery work is handed out by lane (destination, hospital, lane): every row of an
ordering key is in the lane its key hashes to. A process claims the lanes with a due
row with ``FOR UPDATE SKIP LOCKED`` and holds them under a lease (owner, lease_until),
renewed while its deliveries are in flight, until it has recorded the outcomes; a
process that dies leaves its lease to expire, and another takes the lane over and
resends the same rows under the same msgids. Because a lane belongs to one process at
a time, the order of each key holds across replicas.

The crosswalk, catalogs, ledger and CDS tables live in the same schema
(``gateway/store/postgres/crosswalk.py`` and its siblings). A change to state that processes
keep in memory is serialised by locking its row in ``state_heads`` and announced with a
``NOTIFY`` naming its topic, so every replica catches up at once; each process also polls.

Msgids are fixed at commit from a per-hospital counter row (``msgid_counter``),
locked in the committing transaction, so two replicas never hand out the same id,
whatever their clocks say. Schema changes are numbered migrations applied at start
under an advisory lock, so replicas starting together apply each once.
"""
from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

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
    lane_of,
    order_scope,
    outbox_rows,
    plan_release,
    quarantined_bytes,
    replay_action,
    unmapped_changes,
)
from gateway.store.postgres.audit_log import PostgresAuditLog
from gateway.store.postgres.browser import PostgresBrowser, record_attempts
from gateway.store.postgres.cds import PostgresCds
from gateway.store.postgres.crosswalk import PostgresCatalogs, PostgresCrosswalk
from gateway.store.postgres.driver import asyncpg
from gateway.store.postgres.ledger import PostgresLedger
from gateway.store.postgres.migrations import MIGRATIONS as MIGRATIONS
from gateway.store.postgres.migrations import SCHEMA_VERSION
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

__all__ = ["MIGRATIONS", "PostgresStore"]

log = logging.getLogger(__name__)

_PENDING = int(OutboxState.PENDING)
_DEAD = int(OutboxState.DEAD)
_STATE = {"retry": _PENDING, "delivered": int(OutboxState.DELIVERED), "dead": _DEAD}
_TOPICS = {t.value: t for t in Topic}


async def _add_lanes(con: Any, lanes: set[tuple[str, str, int]]) -> None:
    """Make sure every (destination, hospital, lane) of new outbox rows can be leased."""
    await con.executemany(
        "INSERT INTO outbox_lanes (destination, hospital_id, lane) VALUES ($1, $2, $3)"
        " ON CONFLICT DO NOTHING", sorted(lanes))


async def _bodies(con: Any, seqs: list[int]) -> list[tuple[int, bytes]]:
    """Each event's body once."""
    if not seqs:
        return []
    return [(r[0], r[1]) for r in await con.fetch(
        "SELECT seq, body FROM events WHERE seq = ANY($1::bigint[])", seqs)]


def _rowcount(status: str) -> int:
    """The row count of a command status such as ``UPDATE 500`` or ``DELETE 0``."""
    return int(status.rsplit(" ", 1)[-1])


def _mark(n: int) -> str:
    return f"${n}"


class PostgresStore(GroupCommitting):
    """The shared store: same interface as :class:`~gateway.store.sqlite.SqliteStore`."""

    shared = True

    def __init__(self, dsn: str, *, schema: str = "public", group_commit_max: int = 2000,
                 lease_s: float = 30.0, claim_groups: int = 1024, pool_max: int = 4,
                 owner: str | None = None,
                 on_batch: Callable[[int], None] | None = None,
                 quarantine_max_bytes: int = 1 << 20) -> None:
        if asyncpg is None:
            raise StoreError("the PostgreSQL store needs asyncpg: pip install "
                             "'jicai-gateway[pg]'")
        self.dsn = dsn
        self.schema = schema
        self.quarantine_max_bytes = quarantine_max_bytes
        self.group_commit_max = group_commit_max
        self.lease_s = lease_s
        self._decoded = DecodedEvents()  # events of claimed rows, decoded once
        self.claim_groups = claim_groups
        self.pool_max = pool_max
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._pool: Any = None
        self._listener: Any = None  # the connection that LISTENs for other replicas' changes
        self._listeners: list[Callable[[Topic], None]] = []
        # one channel per schema, so gateways sharing a server but not a schema stay apart;
        # hashed, because channel names stop at 63 bytes and schema names need not
        self.channel = "jcgw_" + hashlib.sha1(schema.encode()).hexdigest()[:16]
        self._closing = False
        self._relisten: asyncio.Task[None] | None = None
        self._group = GroupCommit(self._write_batch, group_commit_max, on_batch)
        self.commits = 0
        self.closed = False
        self.crosswalk = PostgresCrosswalk(self)
        self.catalogs = PostgresCatalogs(self)
        self.ledger = PostgresLedger(self)
        self.cds = PostgresCds(self)
        self.audit_log = PostgresAuditLog(self)
        self.browser = PostgresBrowser(self)

    @property
    def pool(self) -> Any:
        """The connection pool (for the table modules)."""
        return self._pool

    # -- lifecycle -------------------------------------------------------
    async def start(self) -> None:
        """Connect, create the schema if needed and apply pending migrations.

        Raises:
            StoreError: the server cannot be reached, or its schema is newer than ours.
        """
        try:
            con = await asyncpg.connect(self.dsn)
            try:
                await self._migrate(con)
            finally:
                await con.close()
            self._pool = await asyncpg.create_pool(
                self.dsn, min_size=2, max_size=self.pool_max,
                server_settings={"search_path": self.schema})
        except (OSError, asyncpg.PostgresError) as exc:
            raise StoreError(f"cannot open PostgreSQL store: {exc}") from exc

    async def _migrate(self, con: Any) -> None:
        async with con.transaction():
            # replicas starting at once: the first applies, the others wait and find it done
            await con.execute("SELECT pg_advisory_xact_lock(hashtext($1))",
                              f"jcgw-migrate:{self.schema}")
            await con.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
            await con.execute(f'SET LOCAL search_path TO "{self.schema}"')
            await con.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY,"
                " applied_at TIMESTAMPTZ NOT NULL DEFAULT now())")
            current = await con.fetchval("SELECT coalesce(max(version), 0)"
                                         " FROM schema_migrations")
            if current > SCHEMA_VERSION:
                raise StoreError(f"PostgreSQL schema {self.schema} is at version {current}, "
                                 f"newer than this gateway's {SCHEMA_VERSION}: upgrade it")
            for version in sorted(v for v in MIGRATIONS if current < v <= SCHEMA_VERSION):
                log.info("applying PostgreSQL migration %d to schema %s", version, self.schema)
                await con.execute(MIGRATIONS[version])
                await con.execute("INSERT INTO schema_migrations (version) VALUES ($1)", version)

    async def close(self) -> None:
        """Wait for pending commits, write the kept CDS cards, give back held leases, then
        close the pool."""
        await self._group.drain()
        if self._pool is not None:
            try:
                await self.cds.flush()
            except StoreError:
                log.exception("issued CDS cards could not be stored before closing")
        self._closing = True
        if self._relisten is not None:
            self._relisten.cancel()
        if self._listener is not None:
            with contextlib.suppress(OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                await self._listener.close()
            self._listener = None
        if self._pool is not None:
            try:
                await self._pool.execute(
                    "UPDATE outbox_lanes SET owner = '', lease_until = 0 WHERE owner = $1",
                    self.owner)
                await self._pool.execute("DELETE FROM replicas WHERE owner = $1", self.owner)
            except (OSError, asyncpg.PostgresError):
                log.warning("could not give back outbox leases; they expire by themselves")
            await self._pool.close()
        self.closed = True

    # -- change notification ---------------------------------------------
    async def lock_topic(self, con: Any, topic: Topic) -> int:
        """Take ``topic``'s lock for the rest of the transaction and bump its version.

        Writers of one topic commit one after another, so whatever they append (audit
        ids, ledger versions) ascends in commit order and a reader never skips a row.
        """
        version: int = await con.fetchval(
            "UPDATE state_heads SET version = version + 1 WHERE topic = $1 RETURNING version",
            topic.value)
        return version

    async def notify(self, con: Any, topic: Topic) -> None:
        """Announce ``topic`` to every replica when the transaction commits (never for one
        rolled back)."""
        await con.execute("SELECT pg_notify($1, $2)", self.channel, topic.value)

    def changed(self, topic: Topic) -> None:
        """Tell this process's listeners now (the NOTIFY reaches the other replicas)."""
        for listener in self._listeners:
            try:
                listener(topic)
            except Exception:  # one listener's failure must not stop the others
                log.exception("change listener failed for %s", topic)

    async def listen(self, on_change: Callable[[Topic], None]) -> None:
        """Call ``on_change(topic)`` whenever any replica changes shared state.

        Replicas hear of each other's changes at once instead of at their next poll
        (which stays the fallback while the listening connection is down; it is reopened
        by itself).
        """
        self._listeners.append(on_change)
        if (self._listener is None and self._relisten is None
                and not await self._open_listener()):
            self._relisten = asyncio.create_task(self._reopen_listener())

    def _heard(self, payload: str) -> None:
        topic = _TOPICS.get(payload, Topic.OUTBOX)
        self.changed(topic)

    async def _open_listener(self) -> bool:
        try:
            con = await asyncpg.connect(self.dsn, timeout=5)
            await con.add_listener(self.channel, lambda *args: self._heard(args[-1]))
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            log.warning("cannot LISTEN for other replicas' changes (%s); polling meanwhile",
                        exc)
            return False

        def lost(_: Any) -> None:
            if self._closing:
                return
            log.warning("LISTEN connection lost; polling until it is back")
            self._listener = None
            self._relisten = asyncio.get_running_loop().create_task(self._reopen_listener())

        con.add_termination_listener(lost)
        self._listener = con
        self._relisten = None
        for topic in Topic:  # changes may have come while nobody listened
            self.changed(topic)
        return True

    async def _reopen_listener(self) -> None:
        delay = 1.0
        while not self._closing:
            await asyncio.sleep(delay)
            if await self._open_listener():
                return
            delay = min(delay * 2, 60.0)

    # -- ingest ----------------------------------------------------------
    async def _write_batch(self, items: list[Incoming]) -> list[CommitResult]:
        now = time.time()
        async with self._pool.acquire() as con, con.transaction():
            staged: list[StagedMessage] = []
            for inc in items:
                message_id = await con.fetchval(
                    "INSERT INTO messages (sender, control_id, adapter, message_type, peer,"
                    " received_at, raw, raw_sha256) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
                    " ON CONFLICT (sender, control_id) DO NOTHING RETURNING id",
                    inc.sender, inc.control_id, inc.adapter, inc.message_type, inc.peer,
                    inc.received_at.timestamp(), inc.raw, incoming_digest(inc))
                if message_id is None:
                    known = await con.fetchrow(
                        "SELECT id, raw_sha256 FROM messages WHERE sender = $1"
                        " AND control_id = $2", inc.sender, inc.control_id)
                    staged.append(StagedMessage(inc, known[0], True, [],
                                                is_reuse(known[1], inc.raw)))
                    continue
                seqs: list[int | None] = []
                for i, (ev, held) in enumerate(zip(inc.events, inc.held, strict=True)):
                    seq = await con.fetchval(
                        "INSERT INTO events (event_id, message_id, hospital_id, kind,"
                        " occurred_at, held, body) VALUES ($1, $2, $3, $4, $5, $6, $7)"
                        " ON CONFLICT (event_id) DO NOTHING RETURNING seq",
                        ev.event_id, message_id, ev.hospital_id, ev.kind.value,
                        ev.occurred_at.isoformat(), held_value(inc, i), incoming_body(inc, i))
                    seqs.append(seq)
                    if seq is not None and (held or ev.kind is EventKind.ITEM_MASTER):
                        note, forget = unmapped_changes(ev, held)
                        await self._note_unmapped(con, ev.hospital_id, note, forget, now,
                                                  int(held))
                staged.append(StagedMessage(inc, message_id, False, seqs))
            pending = [seq for m in staged for seq, held in zip(m.seqs, m.incoming.held,
                                                                  strict=False)
                       if seq is not None and not held]
            if pending:  # for the ledger: committed, not held
                await con.execute("INSERT INTO ledger_pending (seq)"
                                  " SELECT unnest($1::bigint[])", pending)
            rows = outbox_rows(staged)
            msgids = await self._allocate(con, [r.hospital_id for r in rows], now)
            ids: list[int] = []
            if rows:
                ids = [r[0] for r in await con.fetch(
                    "INSERT INTO outbox (destination, event_seq, unit, hospital_id, stream,"
                    " msgid, created_at, order_key, order_scope, lane) SELECT * FROM"
                    " unnest($1::text[], $2::bigint[], $3::int[], $4::text[], $5::text[],"
                    " $6::text[], $7::float8[], $8::text[], $9::text[], $10::int[])"
                    " RETURNING id",
                    [r.destination for r in rows], [r.event_seq for r in rows],
                    [r.unit for r in rows], [r.hospital_id for r in rows],
                    [r.stream for r in rows], msgids, [now] * len(rows),
                    [r.order_key for r in rows], [r.order_scope for r in rows],
                    [r.lane for r in rows])]
                await _add_lanes(con, {(r.destination, r.hospital_id, r.lane) for r in rows})
                await self.notify(con, Topic.OUTBOX)
        self.commits += 1
        results = commit_results(staged, rows, ids)
        self._decoded.add_committed(items, results)
        return results

    @staticmethod
    async def _allocate(con: Any, hospitals: list[str], now: float) -> list[str]:
        """Msgids for the hospitals in order, from the locked per-hospital counters."""
        if not hospitals:
            return []
        clock = MsgIdClock()
        distinct = sorted(set(hospitals))  # one lock order for every replica: no deadlock
        await con.executemany(
            "INSERT INTO msgid_counter (hospital_id, last_second, last_seq) VALUES ($1, 0, -1)"
            " ON CONFLICT DO NOTHING", [(h,) for h in distinct])
        for r in await con.fetch(
                "SELECT hospital_id, last_second, last_seq FROM msgid_counter"
                " WHERE hospital_id = ANY($1::text[]) ORDER BY hospital_id FOR UPDATE",
                distinct):
            clock.restore(r[0], r[1], r[2])
        out = [clock.next(h, now) for h in hospitals]
        await con.executemany(
            "UPDATE msgid_counter SET last_second = $2, last_seq = $3 WHERE hospital_id = $1",
            [(h, *clock.position(h)) for h in distinct])
        return out

    @staticmethod
    async def _note_unmapped(con: Any, hospital_id: str, lines: tuple[Line, ...],
                             forget: tuple[str, ...], now: float, count: int) -> None:
        if forget:
            await con.execute("DELETE FROM unmapped WHERE hospital_id = $1"
                              " AND item_code = ANY($2::text[])", hospital_id, list(forget))
        for line in lines:
            await con.execute(
                "INSERT INTO unmapped (hospital_id, item_code, item_name, specification,"
                " manufacturer, occurrences, first_seen, last_seen)"
                " VALUES ($1, $2, $3, $4, $5, $7, $6, $6)"
                " ON CONFLICT (hospital_id, item_code) DO UPDATE SET"
                " occurrences = unmapped.occurrences + excluded.occurrences,"
                " last_seen = excluded.last_seen",
                hospital_id, line.item_code, line.item_name, line.specification,
                line.manufacturer, now, count)

    async def quarantine(self, raw: bytes, *, peer: str, adapter: str, reason: str,
                         received_at: datetime) -> int:
        """Keep bytes that could not be taken, with the reason, durably."""
        try:
            return int(await self._pool.fetchval(
                "INSERT INTO quarantine (received_at, peer, adapter, reason, raw, original_size)"
                " VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
                received_at.timestamp(), peer, adapter, reason,
                quarantined_bytes(raw, self.quarantine_max_bytes), len(raw)))
        except (OSError, asyncpg.PostgresError) as exc:
            raise StoreError(f"cannot quarantine: {exc}") from exc

    async def purge(self, *, raw_before: float | None, quarantine_before: float | None,
                    now: float, batch: int = 500) -> Purged:
        """Drop raw bytes past their retention (all events delivered) and old quarantine,
        ``batch`` rows per transaction; replicas doing it at once do the same work."""
        raw = kept = 0
        try:
            while raw_before is not None:
                n = _rowcount(await self._pool.execute(
                    "UPDATE messages SET raw = ''::bytea, raw_purged_at = $1 WHERE id IN ("
                    f"{purgeable_messages('$2')} LIMIT $3)", now, raw_before, batch))
                raw += n
                if n < batch:
                    break
            while quarantine_before is not None:
                n = _rowcount(await self._pool.execute(
                    "DELETE FROM quarantine WHERE id IN (SELECT id FROM quarantine"
                    " WHERE received_at < $1 LIMIT $2)", quarantine_before, batch))
                kept += n
                if n < batch:
                    break
        except (OSError, asyncpg.PostgresError) as exc:
            raise StoreError(f"retention purge failed: {exc}") from exc
        return Purged(raw, kept)

    # -- outbox ----------------------------------------------------------
    async def pending(self, destination: str, limit: int) -> list[OutboxItem]:
        """The oldest undelivered rows of a destination (a read; claims use :meth:`claim`)."""
        async with self._pool.acquire() as con:
            rows = await con.fetch(
                f"SELECT {ITEM_COLUMNS} FROM outbox o"
                f" WHERE o.destination = $1 AND o.state = {_PENDING} ORDER BY o.id LIMIT $2",
                destination, limit)
            bodies = await _bodies(con, event_seqs(rows))
        return items_from_rows(destination, rows, bodies)

    async def claim(self, destination: str, limit: int, now: float) -> Claim:
        """Lease the due lanes nobody else holds, and return their rows that may go.

        A replica takes at most its share of the destination's lanes (lanes ÷ live
        replicas, rounded up), so several replicas split the work between them; every row
        of an ordering key is in one lane, so one replica at a time holds a key's chain.
        """
        async with self._pool.acquire() as con:
            live, total = await con.fetchrow(
                "WITH me AS (INSERT INTO replicas (owner, seen_until) VALUES ($1, $2::float8 + $3)"
                " ON CONFLICT (owner) DO UPDATE SET seen_until = excluded.seen_until)"
                " SELECT (SELECT count(*) FROM replicas WHERE seen_until >= $2::float8"
                "         AND owner <> $1) + 1,"
                " (SELECT count(*) FROM outbox_lanes WHERE destination = $4)",
                self.owner, now, self.lease_s, destination)
            share = min(self.claim_groups, max(1, -(-total // live)))
            lanes = await con.fetch(
                "WITH cand AS ("
                " SELECT l.destination, l.hospital_id, l.lane FROM outbox_lanes l"
                " WHERE l.destination = $1 AND (l.lease_until < $2 OR l.owner = $3)"
                "  AND EXISTS (SELECT 1 FROM outbox o WHERE o.destination = l.destination"
                "   AND o.hospital_id = l.hospital_id AND o.lane = l.lane"
                f"   AND o.state = {_PENDING} AND o.next_attempt_at <= $2)"
                " ORDER BY l.lease_until LIMIT $4 FOR UPDATE SKIP LOCKED)"
                " UPDATE outbox_lanes l SET owner = $3, lease_until = $2 + $5 FROM cand"
                " WHERE l.destination = cand.destination AND l.hospital_id = cand.hospital_id"
                " AND l.lane = cand.lane RETURNING l.hospital_id, l.lane",
                destination, now, self.owner, share, self.lease_s)
            if not lanes:
                return Claim([])
            # a lane holds a few rows of a hospital's backlog: each may give a handful more
            # than its even share, and the oldest ``limit`` of them all are taken
            per_lane = max(8, limit // len(lanes))
            rows = await con.fetch(
                f"SELECT {ITEM_COLUMNS} FROM unnest($2::text[], $3::int[]) AS g(h, l)"
                " CROSS JOIN LATERAL (SELECT * FROM outbox o WHERE o.destination = $1"
                f"  AND o.state = {_PENDING} AND o.hospital_id = g.h AND o.lane = g.l"
                f"  AND o.next_attempt_at <= $5 AND {UNBLOCKED.format(now='$5')}"
                "  ORDER BY o.id LIMIT $4) o ORDER BY o.id LIMIT $6",
                destination, [g[0] for g in lanes], [g[1] for g in lanes], per_lane, now,
                limit)
            known, fetch = self._decoded.split(event_seqs(rows))
            bodies = await _bodies(con, fetch)
        return Claim(items_from_rows(destination, rows, bodies, known, self._decoded))

    async def renew(self, destination: str, now: float) -> None:
        """Extend this process's leases on ``destination``'s lanes while it delivers.

        Raises:
            StoreError: the database could not be reached; the leases may lapse.
        """
        try:
            await self._pool.execute(
                "UPDATE outbox_lanes SET lease_until = $3::float8 + $4::float8"
                " WHERE destination = $1 AND owner = $2", destination, self.owner, now,
                self.lease_s)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise StoreError(f"could not renew outbox leases: {exc}") from exc

    @property
    def renew_every_s(self) -> float | None:
        """How often a delivering process renews its leases (a third of a lease)."""
        return self.lease_s / 3

    async def release(self, destination: str) -> None:
        """Give back the lanes this process holds, so any replica may take them next."""
        await self._pool.execute(
            "UPDATE outbox_lanes SET owner = '', lease_until = $3"
            " WHERE destination = $1 AND owner = $2", destination, self.owner, time.time())

    async def record_deliveries(self, updates: list[DeliveryUpdate]) -> None:
        """Store the outcomes of delivery attempts in one statement."""
        if not updates:
            return
        async with self._pool.acquire() as con, con.transaction():
            # an outcome lost to a crash of the database server only sends its row again
            # (the platform answers "duplicate"): no need to wait for the WAL flush
            await con.execute("SET LOCAL synchronous_commit TO OFF")
            await self._record_outcomes(con, updates)
            await record_attempts(con, updates)

    async def _record_outcomes(self, con: Any, updates: list[DeliveryUpdate]) -> None:
        await con.execute(
            "UPDATE outbox o SET"
            " state = u.state,"
            " attempts = o.attempts + u.charge,"
            " last_error = u.err,"
            f" next_attempt_at = CASE WHEN u.state = {_PENDING} THEN u.next_at"
            " ELSE o.next_attempt_at END,"
            f" delivered_at = CASE WHEN u.state = {_PENDING} THEN o.delivered_at ELSE u.at END,"
            f" platform_ref = CASE WHEN u.state = {_PENDING} THEN o.platform_ref ELSE u.ref END,"
            f" delivered_by = CASE WHEN u.state = {_PENDING} THEN o.delivered_by ELSE $8 END,"
            f" first_failed_at = CASE WHEN u.state = {_PENDING} AND u.charge = 1"
            " THEN coalesce(o.first_failed_at, nullif(u.at, 0)) ELSE o.first_failed_at END"
            " FROM unnest($1::bigint[], $2::smallint[], $3::int[], $4::text[], $5::float8[],"
            " $6::float8[], $7::text[]) AS u(id, state, charge, err, next_at, at, ref)"
            f" WHERE o.id = u.id AND o.state = {_PENDING}",
            [u.outbox_id for u in updates], [_STATE[u.outcome] for u in updates],
            [int(u.charge) for u in updates], [u.error for u in updates],
            [u.next_attempt_at for u in updates], [u.at for u in updates],
            [u.platform_ref for u in updates], self.owner)

    async def stats(self, now: float) -> OutboxStats:
        """Outbox depth, oldest age and dead letters per destination; held events."""
        depth: dict[str, int] = {}
        oldest: dict[str, float] = {}
        dead: dict[str, int] = {}
        async with self._pool.acquire() as con:
            for dest, n, first in await con.fetch(
                    "SELECT destination, count(*), min(created_at) FROM outbox"
                    f" WHERE state = {_PENDING} GROUP BY destination"):
                depth[dest] = n
                oldest[dest] = max(0.0, now - first)
            for dest, n in await con.fetch(
                    f"SELECT destination, count(*) FROM outbox WHERE state = {_DEAD}"
                    " GROUP BY destination"):
                dead[dest] = n
            held = await con.fetchval("SELECT count(*) FROM events WHERE held <> 0")
        return OutboxStats(depth, oldest, dead, held)

    async def unmapped(self, hospital_id: str | None = None) -> list[UnmappedItem]:
        """The unmapped-item queue, most frequent first."""
        sql = ("SELECT hospital_id, item_code, item_name, specification, manufacturer,"
               " occurrences, first_seen, last_seen FROM unmapped")
        args: tuple[str, ...] = ()
        if hospital_id:
            sql += " WHERE hospital_id = $1"
            args = (hospital_id,)
        return [UnmappedItem(*r) for r in
                await self._pool.fetch(sql + " ORDER BY occurrences DESC", *args)]

    async def held_lines(self, hospital_id: str | None = None,
                         scan: int = 5000) -> dict[tuple[str, str], Line]:
        """The latest held line of each unmapped item (its unit, 批准文号, 本位码)."""
        if hospital_id:
            rows = await self._pool.fetch(
                "SELECT body FROM events WHERE held <> 0 AND held = 1 AND hospital_id = $1"
                " ORDER BY seq DESC LIMIT $2", hospital_id, scan)
        else:
            rows = await self._pool.fetch(
                "SELECT body FROM events WHERE held <> 0 AND held = 1"
                " ORDER BY seq DESC LIMIT $1", scan)
        return held_lines(r[0] for r in rows)

    async def held_events(self, hospital_id: str | None = None,
                          limit: int = 100) -> list[Event]:
        """Held events, oldest first."""
        rows = await self._pool.fetch(
            "SELECT body FROM events WHERE held <> 0 AND ($1::text IS NULL OR hospital_id = $1)"
            " ORDER BY seq LIMIT $2", hospital_id, limit)
        return [decode_event(bytes(r[0])) for r in rows]

    async def writable(self) -> bool:
        """Whether a write transaction can commit now."""
        async def probe() -> bool:
            async with self._pool.acquire() as con, con.transaction():
                await con.execute("SELECT 1 FROM schema_migrations LIMIT 1 FOR UPDATE")
            return True
        try:
            return await asyncio.wait_for(probe(), 5)
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
            return False

    async def query(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """A read-only query ($1, $2 … placeholders) for the admin API and tests."""
        async with self._pool.acquire() as con, con.transaction(readonly=True):
            return [tuple(r) for r in await con.fetch(sql, *args)]

    async def release_held(self, remap: Remap, hospital_id: str | None = None) -> list[Event]:
        """Map held events again, oldest first; those now complete get their outbox rows."""
        now = time.time()
        async with self._pool.acquire() as con, con.transaction():
            sql = "SELECT seq, body, held FROM events WHERE held <> 0"
            args: tuple[str, ...] = ()
            if hospital_id:
                sql += " AND hospital_id = $1"
                args = (hospital_id,)
            # FOR UPDATE: two replicas releasing at once must not plan rows twice
            rows = await con.fetch(sql + " ORDER BY seq FOR UPDATE", *args)
            unmapped = {r[0] for r in rows if r[2] == UNMAPPED}  # not in the ledger yet
            released = plan_release([(r[0], decode_event(r[1]), r[2]) for r in rows], remap)
            for r in released:
                await con.execute("UPDATE events SET held = $3, body = $2 WHERE seq = $1",
                                  r.seq, event_json(r.event), r.held)
                if r.seq in unmapped:
                    await con.execute("INSERT INTO ledger_pending (seq) VALUES ($1)", r.seq)
                await con.execute(
                    "DELETE FROM unmapped WHERE hospital_id = $1 AND item_code = ANY($2::text[])",
                    r.event.hospital_id, r.item_codes)
            planned = [(r.seq, r.event, d) for r in released for d in r.deliveries]
            msgids = await self._allocate(con, [ev.hospital_id for _, ev, _ in planned], now)
            for (seq, ev, d), msgid in zip(planned, msgids, strict=True):
                key = d.order_key or ev.stream
                scope = order_scope(key)
                await con.execute(
                    "INSERT INTO outbox (destination, event_seq, unit, hospital_id, stream,"
                    " msgid, created_at, order_key, order_scope, lane)"
                    " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                    d.destination, seq, d.unit, ev.hospital_id, ev.stream, msgid, now,
                    key, scope, lane_of(scope))
                await _add_lanes(con, {(d.destination, ev.hospital_id, lane_of(scope))})
            if released:  # outbox rows for the mirrors, queued events for the ledger
                await self.notify(con, Topic.OUTBOX)
        if released:
            self.changed(Topic.OUTBOX)
        return [r.event for r in released if not r.held]

    # -- dead letters and replay -------------------------------------------
    async def list_outbox(self, query: OutboxQuery) -> list[OutboxRecord]:
        """Outbox rows matching ``query``, oldest first."""
        where, args = outbox_where(query, _mark)
        rows = await self._pool.fetch(
            f"SELECT {RECORD_COLUMNS} FROM outbox o JOIN events e ON e.seq = o.event_seq"
            f" WHERE {where} ORDER BY o.id LIMIT {int(query.limit)}", *args)
        return [record_from_row(r) for r in rows]

    async def outbox_record(self, outbox_id: int) -> OutboxRecord | None:
        """One row with its event."""
        r = await self._pool.fetchrow(
            f"SELECT {RECORD_COLUMNS}, e.body FROM outbox o JOIN events e"
            " ON e.seq = o.event_seq WHERE o.id = $1", outbox_id)
        return None if r is None else record_from_row(r, r[-1])

    async def replay(self, query: OutboxQuery, *, to_destination: str | None = None,
                     force: bool = False, now: float = 0.0) -> ReplayResult:
        """Queue matching rows again; delivered ones are refused unless ``force``."""
        where, args = outbox_where(query, _mark)
        now = now or time.time()
        done: dict[ReplayAction, list[int]] = {a: [] for a in ReplayAction}
        async with self._pool.acquire() as con, con.transaction():
            rows = await con.fetch(
                "SELECT o.id, o.destination, o.msgid, o.state, o.event_seq, o.unit,"
                " o.hospital_id, o.stream, o.order_key, o.order_scope, o.lane FROM outbox o"
                f" WHERE {where} ORDER BY o.id LIMIT {int(query.limit)} FOR UPDATE", *args)
            for oid, dest, msgid, state, seq, unit, hospital, stream, key, scope, lane in rows:
                target_id, target_state = oid, state
                if to_destination and to_destination != dest:
                    other = await con.fetchrow(
                        "SELECT id, state FROM outbox WHERE destination = $1 AND msgid = $2"
                        " FOR UPDATE", to_destination, msgid)
                    if other is None:
                        new_id = await con.fetchval(
                            "INSERT INTO outbox (destination, event_seq, unit, hospital_id,"
                            " stream, msgid, created_at, next_attempt_at, order_key,"
                            " order_scope, lane) VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $8,"
                            " $9, $10) RETURNING id",
                            to_destination, seq, unit, hospital, stream, msgid, now, key,
                            scope, lane)
                        await _add_lanes(con, {(to_destination, hospital, lane)})
                        done[ReplayAction.QUEUE].append(new_id)
                        continue
                    target_id, target_state = other[0], other[1]
                action = replay_action(target_state, force)
                if action is ReplayAction.QUEUE:
                    await con.execute(
                        f"UPDATE outbox SET state = {_PENDING}, attempts = 0,"
                        " next_attempt_at = $2, last_error = '', delivered_at = NULL,"
                        " first_failed_at = NULL WHERE id = $1", target_id, now)
                done[action].append(target_id)
            if done[ReplayAction.QUEUE]:
                await self.notify(con, Topic.OUTBOX)
        if done[ReplayAction.QUEUE]:
            self.changed(Topic.OUTBOX)
        return ReplayResult(tuple(done[ReplayAction.QUEUE]), tuple(done[ReplayAction.REFUSE]),
                            tuple(done[ReplayAction.SKIP]))

    async def balance(self) -> Balance:
        """Units per destination and state, and held events, in one snapshot."""
        async with self._pool.acquire() as con, con.transaction(isolation="repeatable_read",
                                                                readonly=True):
            counts = await con.fetch(
                "SELECT destination, state, count(*) FROM outbox GROUP BY destination, state")
            held = await con.fetchval("SELECT count(*) FROM events WHERE held <> 0")
        return balance_from_counts([tuple(c) for c in counts], held)
