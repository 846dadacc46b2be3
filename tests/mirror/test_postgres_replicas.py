"""PostgreSQL specifics: several processes on one database (leases, msgids, migrations)."""

from __future__ import annotations

import asyncio
import time

import asyncpg
from factory import HOSPITALS, dispense, incoming
from helpers import eventually
from pg import PG_DSN

from gateway.store.postgres import PostgresStore
from gateway.store.postgres.migrations import SCHEMA_VERSION


async def _two(schema: str, lease_s: float = 30.0) -> tuple[PostgresStore, PostgresStore]:
    a = PostgresStore(PG_DSN, schema=schema, lease_s=lease_s, owner="replica-a")
    b = PostgresStore(PG_DSN, schema=schema, lease_s=lease_s, owner="replica-b")
    await asyncio.gather(a.start(), b.start())  # both migrate at once: applied once
    return a, b


async def test_migrations_are_applied_once_and_versioned(pg_schema: str) -> None:
    a, b = await _two(pg_schema)
    try:
        con = await asyncpg.connect(PG_DSN)
        versions = await con.fetch(f'SELECT version FROM "{pg_schema}".schema_migrations'
                                   " ORDER BY version")
        await con.close()
        assert [v[0] for v in versions] == list(range(1, SCHEMA_VERSION + 1))
    finally:
        await a.close()
        await b.close()


async def test_two_replicas_allocate_distinct_msgids_for_one_hospital(pg_schema: str) -> None:
    a, b = await _two(pg_schema)
    try:
        async def fill(store: PostgresStore, base: int) -> None:
            await asyncio.gather(*(store.commit(incoming([dispense(base + i)], [("nhsa", 1)]))
                                   for i in range(200)))
        await asyncio.gather(fill(a, 0), fill(b, 10_000))
        rows = await a.query("SELECT msgid FROM outbox")
        msgids = [r[0] for r in rows]
        assert len(msgids) == 400 and len(set(msgids)) == 400
    finally:
        await a.close()
        await b.close()


async def test_lanes_are_leased_to_one_replica_and_taken_over_after_expiry(
        pg_schema: str) -> None:
    a, b = await _two(pg_schema, lease_s=0.5)
    try:
        for i, h in enumerate(HOSPITALS[:2]):
            for n in range(3):
                await a.commit(incoming([dispense(i * 100 + n, h)], [("nhsa", 1)]))
        now = time.time()
        a.claim_groups = 1
        first = await a.claim("nhsa", 100, now)
        second = await b.claim("nhsa", 100, now)
        rows_a = {it.id for it in first.items}
        rows_b = {it.id for it in second.items}
        # a holds one lane (one or more ordering keys), b the others: no row twice
        assert rows_a and rows_b and not rows_a & rows_b
        # replica a "dies" without recording anything: b gets its lane after the lease
        # (claims are told the time: b claims as it would 0.6 s later, without waiting)
        while_alive = await b.claim("nhsa", 100, time.time())
        assert not {it.id for it in while_alive.items} & rows_a
        await b.release("nhsa")
        taken = await b.claim("nhsa", 100, now + 0.6)
        assert rows_a | rows_b <= {it.id for it in taken.items}
        assert [it.msgid for it in taken.items if it.id in rows_a] == \
            [it.msgid for it in first.items]  # the same rows, the same msgids
    finally:
        await a.close()
        await b.close()


async def _commit_wakes_the_other(a: PostgresStore, b: PostgresStore,
                                  woke: asyncio.Event) -> list[int]:
    """B listens; A commits a message with one outbox row; B hears of it at once."""
    await b.listen(lambda topic: woke.set() if topic == "outbox" else None)
    woke.clear()  # listen() wakes once for rows committed while nobody listened
    res = await a.commit(incoming([dispense(1, HOSPITALS[0])], [("nhsa", 1)]))
    assert res.outbox_ids
    # far sooner than the 1 s a polling replica would take
    await asyncio.wait_for(woke.wait(), timeout=0.5)
    woke.clear()
    return list(res.outbox_ids)


async def test_a_replica_hears_at_once_of_rows_another_commits_or_replays(
        pg_schema: str) -> None:
    from gateway.store.base import DeliveryUpdate, OutboxQuery, Topic

    a, b = await _two(pg_schema)
    woke = asyncio.Event()
    try:
        ids = await _commit_wakes_the_other(a, b, woke)
        await a.record_deliveries([DeliveryUpdate(ids[0], "dead", "HTTP 400", at=time.time())])
        await a.replay(OutboxQuery(ids=tuple(ids)))
        await asyncio.wait_for(woke.wait(), timeout=0.5)
        # a message that creates no outbox rows wakes nobody: b hears of a notification sent
        # after its commit, and of nothing before it (they arrive in commit order)
        heard: list[Topic] = []
        await b.listen(heard.append)
        heard.clear()
        await a.commit(incoming([dispense(2, HOSPITALS[0])], []))
        con = await asyncpg.connect(PG_DSN)
        try:
            await con.execute("SELECT pg_notify($1, $2)", a.channel, Topic.CATALOG.value)
        finally:
            await con.close()
        await eventually(lambda: Topic.CATALOG in heard, what="the later notification heard")
        assert Topic.OUTBOX not in heard[:heard.index(Topic.CATALOG)]
    finally:
        await asyncio.gather(a.close(), b.close())


async def test_notifications_work_for_a_schema_name_near_postgresql_limits() -> None:
    import uuid

    from pg import require_pg

    await require_pg()
    schema = f"jcgw_t_{uuid.uuid4().hex}_{'province_hospital_replica'}"[:60]
    a, b = await _two(schema)
    try:
        await _commit_wakes_the_other(a, b, asyncio.Event())
    finally:
        await asyncio.gather(a.close(), b.close())
        con = await asyncpg.connect(PG_DSN)
        await con.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await con.close()
