"""A morning's dispensing behind a slow platform, through an outage and a SIGKILL.

2,000 dispense lines of one hospital over 200 drugs, with 5 % of lines given back and
2 % corrected (3507 delete, then the upload again), against the simulator answering in
150 ms ± 50 ms and refusing, as the platform does, a return before its sale or a delete
of an upload it does not have. One drug is refused by the platform throughout: its sales
become dead letters, and only what must follow them waits.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from dispense_mix import dispense_mix, units
from factory import incoming
from helpers import eventually
from pg import PG_DSN, require_pg
from procs import backend_store, sigkill, spawn_gateway, write_gateway_config
from rig import start_simulator

from canonical.model import EventKind
from gateway.platforms.nhsa import unit_action
from gateway.platforms.simulator import SimulatorState
from gateway.store.base import OutboxQuery

SEED = 20261204
CONCURRENCY = 16


async def _prefill(store: Any) -> tuple[list[Any], str]:
    """Commit the mix, each event its own message; returns the events and the refused item."""
    events = dispense_mix(2000, 200, SEED)
    await store.start()
    try:
        for ev in events:
            await store.commit(incoming([ev], [("nhsa", units(ev))], control_id=ev.event_id))
    finally:
        await store.close()
    returned = {li.item_code for ev in events if ev.kind is EventKind.DISPENSE_RETURN
                for li in ev.lines}
    # a drug that is both sold and given back: its returns must wait behind dead sales
    poison = sorted(returned)[0]
    return events, poison


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_a_mix_behind_a_slow_platform_keeps_its_order_through_an_outage_and_a_kill(
        tmp_path: Path, backend: str) -> None:
    schema = f"jcgw_t_{uuid.uuid4().hex[:12]}"
    if backend == "postgres":
        await require_pg()
    store, store_cfg = backend_store(backend, tmp_path, schema, lease_s=2.0)
    events, poison = await _prefill(store)
    total = sum(units(ev) for ev in events)
    sim = SimulatorState()
    sim.set_faults({"latency_s": 0.15, "latency_jitter_s": 0.05, "reject_items": [poison]})
    server = await start_simulator(sim)
    cfg = write_gateway_config(tmp_path, "gw", store_cfg,
                               f"http://127.0.0.1:{server.port}/fsi/api/inventory",
                               concurrency=CONCURRENCY)
    log = tmp_path / "gateway.log"
    proc = spawn_gateway(cfg, log)
    kills = 0
    try:
        await eventually(lambda: len(sim.order) >= total // 4, timeout=90, interval=0.05,
                         what="a quarter delivered")
        sim.faults.down = True  # the platform goes away for a while
        await asyncio.sleep(1.5)
        sim.faults.down = False
        await eventually(lambda: len(sim.order) >= total // 2, timeout=90, interval=0.05,
                         what="half delivered")
        sigkill(proc)
        kills += 1
        proc = spawn_gateway(cfg, log)
        store, _ = backend_store(backend, tmp_path, schema, lease_s=2.0)
        await store.start()

        seen = {"accepted": -1, "since": time.monotonic()}

        async def settled() -> bool:
            # settled: every row accounted for, and the platform has heard nothing new for
            # three seconds (what still waits is held up, not on its way)
            if len(sim.order) != seen["accepted"]:
                seen.update(accepted=len(sim.order), since=time.monotonic())
                return False
            b = await store.balance()
            return (len(sim.order) + b.dead.get("nhsa", 0) + b.queued.get("nhsa", 0) == total
                    and time.monotonic() - seen["since"] > 3.0)
        await eventually(settled, timeout=180, interval=0.2, what="the outbox settled")
        dead = await store.list_outbox(OutboxQuery(states=("dead",), limit=5000))
        pending = await store.list_outbox(OutboxQuery(states=("pending",), limit=5000))
        delivered = await store.list_outbox(OutboxQuery(states=("delivered",), limit=5000))
        records = {r.id: await store.outbox_record(r.id) for r in [*dead, *pending]}
        await store.close()
    finally:
        sigkill(proc)
        await server.close()
        if backend == "postgres":
            import asyncpg

            con = await asyncpg.connect(PG_DSN)
            await con.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            await con.close()

    counts = sim.counts()
    # nothing out of order reached the platform: it refused nothing for order
    assert counts["order_violations"] == 0, counts["order_violations_by_kind"]
    assert {r["reason"] for r in sim.rejected} <= {"injected business rejection"}
    # exactly once: every delivered row is one msgid the platform accepted, no other
    assert {r.msgid for r in delivered} == set(sim.accepted)
    assert len(sim.order) == len(delivered)
    assert sim.duplicates <= kills * CONCURRENCY
    # the refused drug's sales are dead letters; only what must follow them waits
    assert dead and {_unit_item(records[r.id]) for r in dead} == {poison}
    assert pending and {_unit_item(records[r.id]) for r in pending} == {poison}
    waiting_kinds = {records[r.id].event.kind for r in pending}  # type: ignore[union-attr]
    assert EventKind.DISPENSE_RETURN in waiting_kinds  # a return behind its dead sale


def _unit_item(record: Any) -> str:
    """The hospital item of the line an outbox row sends."""
    return unit_action(record.event, record.unit)[1].item_code
