"""PostgreSQL store (asyncpg) for a city- or province-level deployment.

Several gateway processes share one database. Ingest is group-committed like the
SQLite store. Delivery work is handed out by FIFO group (destination, hospital,
stream): a process claims the groups whose head row is due with ``FOR UPDATE SKIP
LOCKED`` and holds them under a lease (owner, lease_until) until it has recorded
the outcomes; a process that dies leaves its lease to expire, and another takes the
group over and resends the same rows under the same msgids. Because a group belongs
to one process at a time, FIFO per hospital and stream holds across replicas.

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

try:
    import asyncpg  # type: ignore[import-untyped]
except ImportError:  # pragma: no cover - the [pg] extra is not installed
    asyncpg = None

__all__ = ["MIGRATIONS", "PostgresStore"]

log = logging.getLogger(__name__)

MIGRATIONS: dict[int, str] = {
    1: """
CREATE TABLE messages (
    id           BIGSERIAL PRIMARY KEY,
    sender       TEXT NOT NULL,
    control_id   TEXT NOT NULL,
    adapter      TEXT NOT NULL,
    message_type TEXT NOT NULL,
    peer         TEXT NOT NULL DEFAULT '',
    received_at  DOUBLE PRECISION NOT NULL,
    raw          BYTEA NOT NULL,
    UNIQUE (sender, control_id)
);
CREATE TABLE events (
    seq          BIGSERIAL PRIMARY KEY,
    event_id     TEXT NOT NULL UNIQUE,
    message_id   BIGINT NOT NULL REFERENCES messages(id),
    hospital_id  TEXT NOT NULL,
    kind         TEXT NOT NULL,
    occurred_at  TEXT NOT NULL,
    held         SMALLINT NOT NULL DEFAULT 0,
    body         BYTEA NOT NULL
);
CREATE INDEX events_held ON events (seq) WHERE held = 1;
CREATE TABLE outbox (
    id              BIGSERIAL PRIMARY KEY,
    destination     TEXT NOT NULL,
    event_seq       BIGINT NOT NULL REFERENCES events(seq),
    unit            INTEGER NOT NULL DEFAULT 0,
    hospital_id     TEXT NOT NULL,
    stream          TEXT NOT NULL,
    msgid           TEXT NOT NULL,
    state           SMALLINT NOT NULL DEFAULT 0,
    attempts        INTEGER NOT NULL DEFAULT 0,
    created_at      DOUBLE PRECISION NOT NULL,
    next_attempt_at DOUBLE PRECISION NOT NULL DEFAULT 0,
    delivered_at    DOUBLE PRECISION,
    last_error      TEXT NOT NULL DEFAULT '',
    platform_ref    TEXT NOT NULL DEFAULT '',
    UNIQUE (destination, msgid)
);
CREATE INDEX outbox_group_pending ON outbox (destination, hospital_id, stream, id)
    WHERE state = 0;
CREATE INDEX outbox_msgid ON outbox (hospital_id, msgid);
CREATE TABLE outbox_groups (
    destination  TEXT NOT NULL,
    hospital_id  TEXT NOT NULL,
    stream       TEXT NOT NULL,
    owner        TEXT NOT NULL DEFAULT '',
    lease_until  DOUBLE PRECISION NOT NULL DEFAULT 0,
    PRIMARY KEY (destination, hospital_id, stream)
);
CREATE TABLE msgid_counter (
    hospital_id  TEXT PRIMARY KEY,
    last_second  BIGINT NOT NULL,
    last_seq     INTEGER NOT NULL
);
CREATE TABLE quarantine (
    id           BIGSERIAL PRIMARY KEY,
    received_at  DOUBLE PRECISION NOT NULL,
    peer         TEXT NOT NULL,
    adapter      TEXT NOT NULL,
    reason       TEXT NOT NULL,
    raw          BYTEA NOT NULL
);
CREATE TABLE unmapped (
    hospital_id   TEXT NOT NULL,
    item_code     TEXT NOT NULL,
    item_name     TEXT NOT NULL,
    specification TEXT NOT NULL,
    manufacturer  TEXT NOT NULL,
    occurrences   INTEGER NOT NULL,
    first_seen    DOUBLE PRECISION NOT NULL,
    last_seen     DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (hospital_id, item_code)
);
""",
    # which replica delivered a row: takeover after a crash is visible in the data
    2: "ALTER TABLE outbox ADD COLUMN delivered_by TEXT NOT NULL DEFAULT '';",
    # live replicas, so that each claims a fair share of the groups
    3: "CREATE TABLE replicas (owner TEXT PRIMARY KEY,"
       " seen_until DOUBLE PRECISION NOT NULL);",
    # when an event's delivery first failed (charged): the time-based retry budget
    4: "ALTER TABLE outbox ADD COLUMN first_failed_at DOUBLE PRECISION;",
}
SCHEMA_VERSION = max(MIGRATIONS)

_STATE = {"retry": 0, "delivered": 1, "dead": 2}

def _mark(n: int) -> str:
    return f"${n}"


class PostgresStore(GroupCommitting):
    """The shared store: same interface as :class:`~gateway.store.sqlite.SqliteStore`."""

    def __init__(self, dsn: str, *, schema: str = "public", group_commit_max: int = 2000,
                 lease_s: float = 30.0, claim_groups: int = 64, pool_max: int = 4,
                 owner: str | None = None,
                 on_batch: Callable[[int], None] | None = None) -> None:
        if asyncpg is None:
            raise StoreError("the PostgreSQL store needs asyncpg: pip install "
                             "'jicai-gateway[pg]'")
        self.dsn = dsn
        self.schema = schema
        self.group_commit_max = group_commit_max
        self.lease_s = lease_s
        self.claim_groups = claim_groups
        self.pool_max = pool_max
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._pool: Any = None
        self._listener: Any = None  # the connection that LISTENs for other replicas' rows
        # one channel per schema, so gateways sharing a server but not a schema stay apart;
        # hashed, because channel names stop at 63 bytes and schema names need not
        self.channel = "jcgw_outbox_" + hashlib.sha1(schema.encode()).hexdigest()[:16]
        self._closing = False
        self._relisten: asyncio.Task[None] | None = None
        self._group = GroupCommit(self._write_batch, group_commit_max, on_batch)
        self.commits = 0
        self.closed = False

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
            for version in range(current + 1, SCHEMA_VERSION + 1):
                log.info("applying PostgreSQL migration %d to schema %s", version, self.schema)
                await con.execute(MIGRATIONS[version])
                await con.execute("INSERT INTO schema_migrations (version) VALUES ($1)", version)

    async def close(self) -> None:
        """Wait for pending commits, give back held leases, then close the pool."""
        await self._group.drain()
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
                    "UPDATE outbox_groups SET owner = '', lease_until = 0 WHERE owner = $1",
                    self.owner)
                await self._pool.execute("DELETE FROM replicas WHERE owner = $1", self.owner)
            except (OSError, asyncpg.PostgresError):
                log.warning("could not give back outbox leases; they expire by themselves")
            await self._pool.close()
        self.closed = True

    async def _notify(self, con: Any) -> None:
        # sent when the transaction commits, never for one rolled back
        await con.execute("SELECT pg_notify($1, '')", self.channel)

    async def listen(self, on_commit: Callable[[], None]) -> None:
        """Call ``on_commit`` whenever any replica commits new or replayed outbox rows.

        Replicas wake at once instead of at their next poll (``idle_poll_s``, which stays
        the fallback while the listening connection is down; it is reopened by itself).
        """
        if not await self._open_listener(on_commit):
            self._relisten = asyncio.create_task(self._reopen_listener(on_commit))

    async def _open_listener(self, on_commit: Callable[[], None]) -> bool:
        try:
            con = await asyncpg.connect(self.dsn, timeout=5)
            await con.add_listener(self.channel, lambda *_: on_commit())
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            log.warning("cannot LISTEN for other replicas' commits (%s); polling meanwhile",
                        exc)
            return False

        def lost(_: Any) -> None:
            if self._closing:
                return
            log.warning("LISTEN connection lost; polling until it is back")
            self._listener = None
            self._relisten = asyncio.get_running_loop().create_task(
                self._reopen_listener(on_commit))

        con.add_termination_listener(lost)
        self._listener = con
        on_commit()  # rows may have come while nobody listened
        return True

    async def _reopen_listener(self, on_commit: Callable[[], None]) -> None:
        delay = 1.0
        while not self._closing:
            await asyncio.sleep(delay)
            if await self._open_listener(on_commit):
                return
            delay = min(delay * 2, 60.0)

    # -- ingest ----------------------------------------------------------
    async def _write_batch(self, items: list[Incoming]) -> list[CommitResult]:
        now = time.time()
        async with self._pool.acquire() as con, con.transaction():
            staged: list[tuple[int, bool, list[int | None]]] = []
            for inc in items:
                message_id = await con.fetchval(
                    "INSERT INTO messages (sender, control_id, adapter, message_type, peer,"
                    " received_at, raw) VALUES ($1, $2, $3, $4, $5, $6, $7)"
                    " ON CONFLICT (sender, control_id) DO NOTHING RETURNING id",
                    inc.sender, inc.control_id, inc.adapter, inc.message_type, inc.peer,
                    inc.received_at.timestamp(), inc.raw)
                if message_id is None:
                    message_id = await con.fetchval(
                        "SELECT id FROM messages WHERE sender = $1 AND control_id = $2",
                        inc.sender, inc.control_id)
                    staged.append((message_id, True, []))
                    continue
                seqs: list[int | None] = []
                for ev, held in zip(inc.events, inc.held, strict=True):
                    seq = await con.fetchval(
                        "INSERT INTO events (event_id, message_id, hospital_id, kind,"
                        " occurred_at, held, body) VALUES ($1, $2, $3, $4, $5, $6, $7)"
                        " ON CONFLICT (event_id) DO NOTHING RETURNING seq",
                        ev.event_id, message_id, ev.hospital_id, ev.kind.value,
                        ev.occurred_at.isoformat(), int(held), event_json(ev))
                    seqs.append(seq)
                    if seq is not None and (held or ev.kind is EventKind.ITEM_MASTER):
                        note, forget = unmapped_changes(ev, held)
                        await self._note_unmapped(con, ev.hospital_id, note, forget, now,
                                                  int(held))
                staged.append((message_id, False, seqs))
            rows = [(inc, d, seqs[d.event_index])
                    for inc, (_, dup, seqs) in zip(items, staged, strict=True)
                    if not dup for d in inc.deliveries if seqs[d.event_index] is not None]
            msgids = await self._allocate(con, [inc.events[d.event_index].hospital_id
                                                for inc, d, _ in rows], now)
            outbox_rows = []
            for (inc, d, seq), msgid in zip(rows, msgids, strict=True):
                ev = inc.events[d.event_index]
                outbox_rows.append((d.destination, seq, d.unit, ev.hospital_id, ev.stream,
                                    msgid, now))
            ids: list[int] = []
            if outbox_rows:
                cols = list(zip(*outbox_rows, strict=True))
                ids = [r[0] for r in await con.fetch(
                    "INSERT INTO outbox (destination, event_seq, unit, hospital_id, stream,"
                    " msgid, created_at) SELECT * FROM unnest($1::text[], $2::bigint[],"
                    " $3::int[], $4::text[], $5::text[], $6::text[], $7::float8[])"
                    " RETURNING id", *[list(c) for c in cols])]
                groups = sorted({(r[0], r[3], r[4]) for r in outbox_rows})
                await con.executemany(
                    "INSERT INTO outbox_groups (destination, hospital_id, stream)"
                    " VALUES ($1, $2, $3) ON CONFLICT DO NOTHING", groups)
                await self._notify(con)
        self.commits += 1
        results = []
        taken = iter(ids)
        for inc, (message_id, dup, seqs) in zip(items, staged, strict=True):
            n = 0 if dup else sum(1 for d in inc.deliveries if seqs[d.event_index] is not None)
            results.append(CommitResult(duplicate=dup, message_id=message_id,
                                        outbox_ids=tuple(next(taken) for _ in range(n)),
                                        event_seqs=tuple(seqs)))
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
    async def _note_unmapped(con: Any, hospital_id: str, lines: Any,
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
                "INSERT INTO quarantine (received_at, peer, adapter, reason, raw)"
                " VALUES ($1, $2, $3, $4, $5) RETURNING id",
                received_at.timestamp(), peer, adapter, reason, raw))
        except (OSError, asyncpg.PostgresError) as exc:
            raise StoreError(f"cannot quarantine: {exc}") from exc

    # -- outbox ----------------------------------------------------------
    async def pending(self, destination: str, limit: int) -> list[OutboxItem]:
        """The oldest undelivered rows of a destination (a read; claims use :meth:`claim`)."""
        rows = await self._pool.fetch(
            f"SELECT {ITEM_COLUMNS} FROM outbox o JOIN events e ON e.seq = o.event_seq"
            " WHERE o.destination = $1 AND o.state = 0 ORDER BY o.id LIMIT $2",
            destination, limit)
        return [item_from_row(destination, r) for r in rows]

    async def claim(self, destination: str, limit: int, now: float) -> Claim:
        """Lease the due groups nobody else holds, and return their first rows.

        A replica takes at most its share of the destination's groups (groups ÷ live
        replicas, rounded up), so several replicas split the work between them.
        """
        async with self._pool.acquire() as con:
            live, total = await con.fetchrow(
                "WITH me AS (INSERT INTO replicas (owner, seen_until) VALUES ($1, $2::float8 + $3)"
                " ON CONFLICT (owner) DO UPDATE SET seen_until = excluded.seen_until)"
                " SELECT (SELECT count(*) FROM replicas WHERE seen_until >= $2::float8"
                "         AND owner <> $1) + 1,"
                " (SELECT count(*) FROM outbox_groups WHERE destination = $4)",
                self.owner, now, self.lease_s, destination)
            share = min(self.claim_groups, max(1, -(-total // live)))
            groups = await con.fetch(
                "WITH cand AS ("
                " SELECT g.destination, g.hospital_id, g.stream FROM outbox_groups g"
                " WHERE g.destination = $1 AND (g.lease_until < $2 OR g.owner = $3)"
                "  AND (SELECT o.next_attempt_at FROM outbox o WHERE o.destination ="
                "   g.destination AND o.hospital_id = g.hospital_id AND o.stream = g.stream"
                "   AND o.state = 0 ORDER BY o.id LIMIT 1) <= $2"
                " ORDER BY g.lease_until LIMIT $4 FOR UPDATE SKIP LOCKED)"
                " UPDATE outbox_groups g SET owner = $3, lease_until = $2 + $5 FROM cand"
                " WHERE g.destination = cand.destination AND g.hospital_id = cand.hospital_id"
                " AND g.stream = cand.stream RETURNING g.hospital_id, g.stream",
                destination, now, self.owner, share, self.lease_s)
            if not groups:
                return Claim([])
            per_group = max(1, limit // len(groups))
            rows = await con.fetch(
                f"SELECT {ITEM_COLUMNS} FROM unnest($2::text[], $3::text[]) AS g(h, s)"
                " CROSS JOIN LATERAL (SELECT * FROM outbox x WHERE x.destination = $1"
                "  AND x.state = 0 AND x.hospital_id = g.h AND x.stream = g.s"
                "  ORDER BY x.id LIMIT $4) o JOIN events e ON e.seq = o.event_seq"
                " ORDER BY o.id",
                destination, [g[0] for g in groups], [g[1] for g in groups], per_group)
        return Claim([item_from_row(destination, r) for r in rows])

    async def release(self, destination: str) -> None:
        """Give back the groups this process holds, so any replica may take them next."""
        await self._pool.execute(
            "UPDATE outbox_groups SET owner = '', lease_until = $3"
            " WHERE destination = $1 AND owner = $2", destination, self.owner, time.time())

    async def record_deliveries(self, updates: list[DeliveryUpdate]) -> None:
        """Store the outcomes of delivery attempts in one statement."""
        if not updates:
            return
        await self._pool.execute(
            "UPDATE outbox o SET"
            " state = u.state,"
            " attempts = o.attempts + u.charge,"
            " last_error = u.err,"
            " next_attempt_at = CASE WHEN u.state = 0 THEN u.next_at ELSE o.next_attempt_at END,"
            " delivered_at = CASE WHEN u.state = 0 THEN o.delivered_at ELSE u.at END,"
            " platform_ref = CASE WHEN u.state = 0 THEN o.platform_ref ELSE u.ref END,"
            " delivered_by = CASE WHEN u.state = 0 THEN o.delivered_by ELSE $8 END,"
            " first_failed_at = CASE WHEN u.state = 0 AND u.charge = 1"
            " THEN coalesce(o.first_failed_at, nullif(u.at, 0)) ELSE o.first_failed_at END"
            " FROM unnest($1::bigint[], $2::smallint[], $3::int[], $4::text[], $5::float8[],"
            " $6::float8[], $7::text[]) AS u(id, state, charge, err, next_at, at, ref)"
            " WHERE o.id = u.id AND o.state = 0",
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
                    "SELECT destination, count(*), min(created_at) FROM outbox WHERE state = 0"
                    " GROUP BY destination"):
                depth[dest] = n
                oldest[dest] = max(0.0, now - first)
            for dest, n in await con.fetch(
                    "SELECT destination, count(*) FROM outbox WHERE state = 2"
                    " GROUP BY destination"):
                dead[dest] = n
            held = await con.fetchval("SELECT count(*) FROM events WHERE held = 1")
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

    async def release_held(
        self,
        remap: Callable[[Event], tuple[Event, bool, tuple[PlannedDelivery, ...]]],
        hospital_id: str | None = None,
    ) -> list[Event]:
        """Map held events again, oldest first; those now complete get their outbox rows."""
        now = time.time()
        released: list[tuple[int, Event, tuple[PlannedDelivery, ...]]] = []
        async with self._pool.acquire() as con, con.transaction():
            sql = "SELECT seq, body FROM events WHERE held = 1"
            args: tuple[str, ...] = ()
            if hospital_id:
                sql += " AND hospital_id = $1"
                args = (hospital_id,)
            # FOR UPDATE: two replicas releasing at once must not plan rows twice
            for seq, body in await con.fetch(sql + " ORDER BY seq FOR UPDATE", *args):
                event, still_held, deliveries = remap(event_from_dict(orjson.loads(body)))
                if still_held:
                    continue
                await con.execute("UPDATE events SET held = 0, body = $2 WHERE seq = $1",
                                  seq, event_json(event))
                await con.execute(
                    "DELETE FROM unmapped WHERE hospital_id = $1 AND item_code = ANY($2::text[])",
                    event.hospital_id, [li.item_code for li in event.lines])
                released.append((seq, event, deliveries))
            planned = [(seq, ev, d) for seq, ev, ds in released for d in ds]
            msgids = await self._allocate(con, [ev.hospital_id for _, ev, _ in planned], now)
            for (seq, ev, d), msgid in zip(planned, msgids, strict=True):
                await con.execute(
                    "INSERT INTO outbox (destination, event_seq, unit, hospital_id, stream,"
                    " msgid, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                    d.destination, seq, d.unit, ev.hospital_id, ev.stream, msgid, now)
                await con.execute(
                    "INSERT INTO outbox_groups (destination, hospital_id, stream)"
                    " VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                    d.destination, ev.hospital_id, ev.stream)
            if planned:
                await self._notify(con)
        return [ev for _, ev, _ in released]

    async def events_after(self, seq: int, limit: int) -> list[tuple[int, Event]]:
        """Committed events after sequence number ``seq``, in commit order (ledger feed)."""
        rows = await self._pool.fetch(
            "SELECT seq, body FROM events WHERE seq > $1 ORDER BY seq LIMIT $2", seq, limit)
        return [(r[0], event_from_dict(orjson.loads(r[1]))) for r in rows]

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
        queued: list[int] = []
        refused: list[int] = []
        skipped: list[int] = []
        async with self._pool.acquire() as con, con.transaction():
            rows = await con.fetch(
                "SELECT o.id, o.destination, o.msgid, o.state, o.event_seq, o.unit,"
                f" o.hospital_id, o.stream FROM outbox o WHERE {where} ORDER BY o.id"
                f" LIMIT {int(query.limit)} FOR UPDATE", *args)
            for oid, dest, msgid, state, seq, unit, hospital, stream in rows:
                target_id, target_state = oid, state
                if to_destination and to_destination != dest:
                    other = await con.fetchrow(
                        "SELECT id, state FROM outbox WHERE destination = $1 AND msgid = $2"
                        " FOR UPDATE", to_destination, msgid)
                    if other is None:
                        new_id = await con.fetchval(
                            "INSERT INTO outbox (destination, event_seq, unit, hospital_id,"
                            " stream, msgid, created_at, next_attempt_at)"
                            " VALUES ($1, $2, $3, $4, $5, $6, $7, $7) RETURNING id",
                            to_destination, seq, unit, hospital, stream, msgid, now)
                        await con.execute(
                            "INSERT INTO outbox_groups (destination, hospital_id, stream)"
                            " VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                            to_destination, hospital, stream)
                        queued.append(new_id)
                        continue
                    target_id, target_state = other[0], other[1]
                if target_state == 0:
                    skipped.append(target_id)
                elif target_state == 1 and not force:
                    refused.append(target_id)
                else:
                    await con.execute(
                        "UPDATE outbox SET state = 0, attempts = 0, next_attempt_at = $2,"
                        " last_error = '', delivered_at = NULL, first_failed_at = NULL"
                        " WHERE id = $1", target_id, now)
                    queued.append(target_id)
            if queued:
                await self._notify(con)
        return ReplayResult(tuple(queued), tuple(refused), tuple(skipped))

    async def balance(self) -> Balance:
        """Units per destination and state, and held events, in one snapshot."""
        by_state: dict[int, dict[str, int]] = {0: {}, 1: {}, 2: {}}
        async with self._pool.acquire() as con, con.transaction(isolation="repeatable_read",
                                                                readonly=True):
            for dest, state, n in await con.fetch(
                    "SELECT destination, state, count(*) FROM outbox GROUP BY destination,"
                    " state"):
                by_state[state][dest] = n
            held = await con.fetchval("SELECT count(*) FROM events WHERE held = 1")
        return Balance(delivered=by_state[1], queued=by_state[0], dead=by_state[2],
                       held_events=held)
