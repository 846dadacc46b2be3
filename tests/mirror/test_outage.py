"""Outage: the platform down for a stretch, then flapping, while 5,000 events arrive.

Afterwards every event is accepted exactly once as the simulator counts msgids,
in commit order per hospital and stream, and the only dead letters are the events
made to be rejected. The counts balance at every sampled moment.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from factory import HOSPITALS, REJECTED_CODE, dispense
from helpers import eventually
from rig import destination, make_rig, stop_rig

from gateway.mirror.worker import QUICK_WAIT_S
from gateway.platforms.simulator import SimulatorState
from gateway.store.base import OutboxQuery
from gateway.store.sqlite import SqliteStore

TOTAL = 5000
REJECT_EVERY = 250  # 20 events carry a code the platform refuses
HOSPITAL_SET = tuple(f"H3301{n:07d}" for n in range(12)) + HOSPITALS


async def test_outage_then_flapping_delivers_everything_once_in_order(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "gw.db")
    await store.start()
    sim = SimulatorState()
    # the quick tries wait as in production: the producer shares the event loop with the
    # mirror, which would only compete harder for it against a flapping platform
    rig = await make_rig(store, [destination(
        "nhsa", "{sim}/fsi/api/inventory", max_attempts=30, backoff_max_s=0.3,
        breaker_failures=10, batch_size=800, concurrency=32)], {"sim": sim},
        quick_wait_s=QUICK_WAIT_S)
    produced = 0  # commits that returned
    started = 0  # commits begun (one may be in flight while the balance is read)
    samples = 0

    async def produce() -> None:
        nonlocal produced, started
        for n in range(TOTAL):
            code = REJECTED_CODE if n % REJECT_EVERY == 7 else None
            ev = dispense(n, HOSPITAL_SET[n % len(HOSPITAL_SET)],
                          **({"code": code} if code else {}))
            started += 1
            await rig.send([ev])
            produced += 1
            if n % 50 == 0:
                await asyncio.sleep(0.01)  # ~4,000 events/s offered, in bursts

    async def balance_watch(stop: asyncio.Event) -> None:
        nonlocal samples
        while not stop.is_set():
            low = produced
            b = await store.balance()
            high = started
            assert low <= b.received("nhsa") <= high  # nothing vanishes, nothing appears
            samples += 1
            await asyncio.sleep(0.05)

    try:
        sim.faults.down = True
        stop = asyncio.Event()
        watcher = asyncio.create_task(balance_watch(stop))
        producer = asyncio.create_task(produce())
        # down until the circuit has opened and failed its probes a few times while a
        # backlog builds up …
        breaker = rig.mirror.breakers["nhsa"]
        await eventually(lambda: breaker.failed_probes >= 2 and produced >= 500, timeout=60,
                         interval=0.02, what="an outage with a backlog")
        assert sim.order == []
        sim.faults.down = False
        sim.faults.fail_ratio = 0.5  # flapping: half the calls fail
        # … then flapping until the platform has failed a good number of calls
        await eventually(lambda: sim.injected.get("fail", 0) > 100, timeout=60, interval=0.02,
                         what="over 100 calls failed while flapping")
        sim.faults.fail_ratio = 0.0
        await asyncio.wait_for(producer, 60)
        await rig.settle(timeout=90)
        stop.set()
        await watcher
    finally:
        await stop_rig(rig)
    rejected = TOTAL // REJECT_EVERY
    assert len(sim.order) == len(set(sim.order)) == TOTAL - rejected
    assert sim.injected.get("down", 0) > 0 and sim.injected.get("fail", 0) > 100
    dead = await store.list_outbox(OutboxQuery())
    assert len(dead) == rejected
    assert all("国家医保编码" in d.last_error for d in dead)
    # in order per ordering key (hospital, sale document, item): the platform saw each
    # key's msgids in commit order; different keys were free to overtake each other
    per_key: dict[tuple[str, str, str], list[str]] = {}
    for m in sim.order:
        sale = sim.accepted[m]["input"]["selinfo"]
        per_key.setdefault((m[:12], sale["rtal_docno"], sale["fixmedins_hilist_id"]),
                           []).append(m)
    assert all(ms == sorted(ms) for ms in per_key.values())
    b = await store.balance()
    assert b.received("nhsa") == produced == TOTAL
    assert (b.delivered["nhsa"], b.dead["nhsa"], b.queued) == (TOTAL - rejected, rejected, {})
    assert samples > 10
    await store.close()
