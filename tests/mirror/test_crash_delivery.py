"""SIGKILL a gateway process during delivery; on PostgreSQL also three replicas at once.

No event is lost; every resend after a crash carries the event's original msgid, so
the platform accepts each event once and counts the resends as duplicates.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import socket
import sqlite3
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest
from factory import HOSPITALS, dispense, incoming
from helpers import eventually
from pg import PG_DSN, require_pg
from procs import EXTRA_HOSPITALS, backend_store, sigkill, spawn_gateway, write_gateway_config
from rig import start_simulator

from gateway.platforms.simulator import SimulatorState
from gateway.store.plan import OutboxState
from gateway.store.postgres import PostgresStore

TOTAL = 1500
KILLS = 3
ALL = HOSPITALS + EXTRA_HOSPITALS


async def _prefill(store: Any, total: int) -> dict[str, str]:
    """Commit ``total`` dispenses; returns msgid → event id as fixed at commit."""
    await store.start()
    try:
        batch = [store.commit(incoming([dispense(n, ALL[n % len(ALL)])], [("nhsa", 1)]))
                 for n in range(total)]
        await asyncio.gather(*batch)
        rows = await store.query("SELECT o.msgid, e.event_id FROM outbox o JOIN events e"
                                 " ON e.seq = o.event_seq")
        return {r[0]: r[1] for r in rows}
    finally:
        await store.close()


async def _all_recorded(sqlite_path: Path | None = None, schema: str = "") -> bool:
    """Whether every outbox row has its outcome recorded, read from the gateways' database:
    then no gateway has anything left to send."""
    sql = "SELECT count(*) FROM {}outbox WHERE state = " + str(int(OutboxState.PENDING))
    if sqlite_path is not None:
        def pending() -> int:
            uri = f"file:{sqlite_path}?mode=ro"
            with contextlib.closing(sqlite3.connect(uri, uri=True)) as con:
                return int(con.execute(sql.format("")).fetchone()[0])
        return await asyncio.to_thread(pending) == 0
    import asyncpg

    con = await asyncpg.connect(PG_DSN)
    try:
        return await con.fetchval(sql.format(f'"{schema}".')) == 0
    finally:
        await con.close()


def _check_exactly_once(sim: SimulatorState, fixed: dict[str, str]) -> None:
    assert set(sim.accepted) == set(fixed)  # every event, under the msgid fixed at commit
    assert len(sim.order) == len(fixed)
    assert sum(sim.duplicate_msgids.values()) == sim.duplicates
    assert set(sim.duplicate_msgids) <= set(fixed)  # resends carried original msgids
    docs = [env["input"]["selinfo"]["rtal_docno"] for env in sim.accepted.values()]
    assert len(docs) == len(set(docs))  # no event under a second msgid either
    # each ordering key (hospital, sale document, item) in commit order
    per_key: dict[tuple[str, str, str], list[str]] = {}
    for m in sim.order:
        sale = sim.accepted[m]["input"]["selinfo"]
        per_key.setdefault((m[:12], sale["rtal_docno"], sale["fixmedins_hilist_id"]),
                           []).append(m)
    assert all(ms == sorted(ms) for ms in per_key.values())


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_sigkill_during_delivery_loses_nothing_and_resends_original_msgids(
        tmp_path: Path, backend: str) -> None:
    rng = random.Random(int(os.environ.get("CRASH_SEED", "5")))
    schema = f"jcgw_t_{uuid.uuid4().hex[:12]}"
    if backend == "postgres":
        await require_pg()
    store, store_cfg = backend_store(backend, tmp_path, schema, lease_s=1.0)
    fixed = await _prefill(store, TOTAL)
    sim = SimulatorState()
    sim.faults.latency_s = 0.002  # rounds last long enough to be cut in the middle
    server = await start_simulator(sim)
    cfg = write_gateway_config(tmp_path, "gw", store_cfg,
                               f"http://127.0.0.1:{server.port}/fsi/api/inventory")
    log = tmp_path / "gateway.log"
    proc = spawn_gateway(cfg, log)
    try:
        for k in range(KILLS):
            mark = len(sim.order)
            step = rng.randint(40, 160)
            await eventually(lambda m=mark, s=step: len(sim.order) >= m + s,  # type: ignore[misc]
                             timeout=60, interval=0.02,
                             what=f"delivery progress before kill {k + 1}")
            sigkill(proc)
            proc = spawn_gateway(cfg, log)
        await eventually(lambda: len(sim.order) >= TOTAL, timeout=120, interval=0.02,
                         what="all events delivered")
        # every outcome recorded: the gateway sends nothing more (and is stopped below)
        # before the platform's record is checked
        await eventually(lambda: _all_recorded(
            tmp_path / "gw.db" if backend == "sqlite" else None, schema),
            timeout=30, interval=0.05, what="every outbox row's outcome recorded")
    finally:
        sigkill(proc)
        await server.close()
    _check_exactly_once(sim, fixed)
    # outcomes are recorded as the answers arrive, and requests in flight plus answers
    # waiting for their write stay under the destination's concurrency together: a
    # restart resends at most that many, however slow the store's writes are (1,920
    # refused duplicates over 20 restarts when whole batches were resent)
    in_flight = 16  # the destination's concurrency (the default)
    assert sim.duplicates <= KILLS * in_flight, (sim.duplicates, KILLS)
    if backend == "postgres":
        import asyncpg

        con = await asyncpg.connect(PG_DSN)
        await con.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await con.close()


@pytest.mark.slow
async def test_three_replicas_on_postgres_one_killed_all_delivered_once(
        tmp_path: Path) -> None:
    await require_pg()
    import asyncpg

    schema = f"jcgw_t_{uuid.uuid4().hex[:12]}"
    fixed = await _prefill(PostgresStore(PG_DSN, schema=schema), 3000)
    sim = SimulatorState()
    sim.faults.latency_s = 0.002
    server = await start_simulator(sim)
    url = f"http://127.0.0.1:{server.port}/fsi/api/inventory"
    store_cfg = {"backend": "postgres", "postgres_dsn": PG_DSN, "postgres_schema": schema,
                 "lease_s": 1.5}
    procs = [spawn_gateway(write_gateway_config(tmp_path, f"gw{i}", store_cfg, url),
                           tmp_path / f"gw{i}.log") for i in range(3)]
    watch = await asyncpg.connect(PG_DSN)
    try:
        async def all_working() -> bool:
            working = await watch.fetchval(
                f'SELECT count(DISTINCT delivered_by) FROM "{schema}".outbox WHERE state = 1')
            return bool(working == 3)

        await eventually(all_working, timeout=30, interval=0.05,
                         what="every replica delivered something")
        assert len(sim.order) < 3000
        # kill a replica while it holds leases (not between two rounds): stop the one that
        # holds a lease now and look again while it cannot move; if it gave its leases back
        # in between, let it go on and try again (woken replicas race for the groups)
        async def stopped_lease_holder() -> tuple[subprocess.Popen[bytes], set[str]] | None:
            owner = await watch.fetchval(
                f'SELECT owner FROM "{schema}".outbox_lanes WHERE owner <> \'\''
                " AND lease_until > extract(epoch FROM clock_timestamp()) LIMIT 1")
            if not owner:
                return None
            proc = next(p for p in procs if p.pid == int(owner.split(":")[1]))
            proc.send_signal(signal.SIGSTOP)
            held = {r[0] for r in await watch.fetch(
                f'SELECT hospital_id FROM "{schema}".outbox_lanes WHERE owner LIKE $1'
                " AND lease_until > extract(epoch FROM clock_timestamp())",
                f"{socket.gethostname()}:{proc.pid}:%")}
            if not held:
                proc.send_signal(signal.SIGCONT)
                return None
            return proc, held

        victim, orphaned = await eventually(stopped_lease_holder, timeout=10, interval=0.002,
                                            what="a replica stopped while holding leases")
        dead = f"{socket.gethostname()}:{victim.pid}:"
        sigkill(victim)
        await eventually(lambda: len(sim.order) >= 3000, timeout=120, interval=0.02,
                         what="all events delivered")
        await eventually(lambda: _all_recorded(schema=schema), timeout=30, interval=0.05,
                         what="every outbox row's outcome recorded")
    finally:
        await watch.close()
        for p in procs:
            if p.poll() is None:
                sigkill(p)
        await server.close()
    _check_exactly_once(sim, fixed)
    con = await asyncpg.connect(PG_DSN)
    try:
        rows = await con.fetch(f'SELECT hospital_id, delivered_by, id FROM "{schema}".outbox'
                               " WHERE state = 1 ORDER BY id")
        leftover = await con.fetchval(f'SELECT count(*) FROM "{schema}".outbox WHERE state <> 1')
    finally:
        await con.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await con.close()
    assert leftover == 0
    owners = {r[1].split(":")[1] for r in rows}
    assert len(owners) == 3  # all three replicas delivered
    by_dead = [r for r in rows if r[1].startswith(dead)]
    assert by_dead
    last_dead = max(r[2] for r in by_dead)
    after = [r for r in rows if r[2] > last_dead]
    assert after and not any(r[1].startswith(dead) for r in after)
    # the groups the victim held under a live lease when it died were taken over
    assert orphaned, "the victim held no lease at its death (killed between rounds)"
    taken_over = {r[0] for r in after}
    assert orphaned <= taken_over
