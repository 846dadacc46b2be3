"""A slow, rate-limited platform: what goes out concurrently, what in order, and how fast.

The platform's limits are checked where the platform sees them: the simulator's arrival
times and the order in which it accepted each msgid.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from factory import HOSPITALS, dispense
from helpers import eventually
from pg import PG_DSN, require_pg
from rig import Rig, destination, make_rig, stop_rig

from canonical.model import EventKind, OrderControl
from gateway.platforms.simulator import SimulatorState
from gateway.store.base import OutboxQuery
from gateway.store.postgres import PostgresStore

RigFactory = Callable[..., Awaitable[Rig]]


async def test_the_platform_never_sees_more_than_the_configured_rate(any_rig) -> None:
    sim = SimulatorState()
    # the platform allows 50 a second and says so with 429 beyond it
    sim.set_faults({"latency_s": 0.01, "rate_limit_per_s": 50})
    rig = await any_rig([destination("nhsa", "{sim}/fsi/api/inventory",
                                     rate_limit_per_s=50, concurrency=32)], {"sim": sim})
    await rig.send([dispense(n, HOSPITALS[n % 2]) for n in range(150)])
    await rig.settle(timeout=30)
    assert len(sim.order) == 150 and sim.duplicates == 0
    # counted by the platform as the calls arrive: never more than 50 in any second
    counts = sim.counts()
    assert counts["max_per_s"] <= 50 and counts["rate_limited"] == 0


async def test_too_frequent_answers_slow_down_and_cost_no_retry_budget(any_rig) -> None:
    sim = SimulatorState()
    sim.set_faults({"fail_next": 6, "fail_status": 429})
    rig = await any_rig([destination("nhsa", "{sim}/fsi/api/inventory", max_attempts=2,
                                     breaker_failures=2)], {"sim": sim})
    await rig.send([dispense(n) for n in range(10)])
    await rig.settle(timeout=30)
    # six refusals with a budget of two tries and a circuit that opens after two
    # failures: neither was touched, since "too frequent" is not "wrong" or "down"
    assert len(sim.order) == 10
    assert not await rig.store.list_outbox(OutboxQuery())  # no dead letter
    pacing = rig.mirror.pacing["nhsa"]
    assert pacing.pacer.throttled_total >= 1 and pacing.pacer.current > 0
    sample = rig.mirror.metrics.registry.get_sample_value(
        "jcgw_mirror_throttled_total", {"destination": "nhsa"})
    assert sample is not None and sample >= 1


async def test_different_keys_go_out_together_the_same_key_strictly_in_order(any_rig) -> None:
    sim = SimulatorState()
    sim.set_faults({"latency_s": 0.15})
    rig = await any_rig([destination("nhsa", "{sim}/fsi/api/inventory")], {"sim": sim})
    sales = [dispense(n) for n in range(12)]
    # sale 0's chain: the sale, a correction (3507 delete, then upload), its return
    chain = [dispense(0, control=OrderControl.CHANGE, event_id="chg-0"),
             dispense(0, kind=EventKind.DISPENSE_RETURN)]
    ids = await rig.send(sales)
    chain_ids = await rig.send(chain)
    most = 0

    async def done() -> bool:
        nonlocal most
        most = max(most, rig.mirror.pacing["nhsa"].in_flight)
        return not (await rig.store.balance()).queued

    await eventually(done, timeout=20, interval=0.01, what="everything delivered")
    assert len(sim.order) == len(ids) + len(chain_ids)
    assert most > 4  # twelve independent sales did not wait for one another
    # the chain of sale 0, as the platform accepted it: sale, delete, upload, return
    docs = [(env["infno"], env["msgid"]) for env in (sim.accepted[m] for m in sim.order)
            if _doc(env) == sales[0].document_no]
    assert [infno for infno, _ in docs] == ["3505", "3507", "3505", "3506"]
    assert [m for _, m in docs] == sorted(m for _, m in docs)


def _doc(env: dict[str, Any]) -> str:
    data = env["input"]
    if "selinfo" in data:
        sel = data["selinfo"]
        return str(sel.get("medins_prod_sel_no") or sel["rtal_docno"])
    return str(data["data"]["fixmedins_bchno"]).rsplit("-", 1)[0]


async def test_a_dead_letter_holds_up_its_own_key_and_nothing_else(any_rig) -> None:
    sim = SimulatorState()
    sim.set_faults({"reject_items": ["Y0099999"]})
    rig = await any_rig([destination("nhsa", "{sim}/fsi/api/inventory")], {"sim": sim})
    poison = dispense(0, item="Y0099999")
    others = [dispense(n) for n in range(1, 6)]
    await rig.send([poison, *others])
    ret = await rig.send([dispense(0, item="Y0099999", kind=EventKind.DISPENSE_RETURN)])
    await eventually(lambda: len(sim.order) == 5, timeout=10, what="the other sales")
    await asyncio.sleep(0.3)  # time enough for the return to go, if it were let go
    dead = await rig.store.list_outbox(OutboxQuery())
    assert len(dead) == 1 and dead[0].event_id == poison.event_id
    pending = await rig.store.list_outbox(OutboxQuery(states=("pending",)))
    assert [r.id for r in pending] == list(ret)  # its return waits behind it, unsent
    assert all(env["infno"] == "3505" for env in sim.accepted.values())
    # the platform's master data is fixed; the operator replays: sale, then return
    sim.faults.reject_items = []
    await rig.store.replay(OutboxQuery(ids=(dead[0].id,)))
    rig.mirror.notify()
    await rig.settle(timeout=10)
    assert [sim.accepted[m]["infno"] for m in sim.order[-2:]] == ["3505", "3506"]


async def test_a_lease_is_renewed_while_a_slow_platform_answers(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Answers slower than the lease: the other replica never takes (and resends) rows
    the first still has in flight."""
    import uuid

    import asyncpg

    await require_pg()
    schema = f"jcgw_t_{uuid.uuid4().hex[:12]}"
    sim = SimulatorState()
    sim.set_faults({"latency_s": 1.5})
    stores = [PostgresStore(PG_DSN, schema=schema, lease_s=0.5, owner=f"replica-{i}")
              for i in range(2)]
    for s in stores:
        await s.start()
    rigs: list[Rig] = []
    try:
        for s in stores:
            rigs.append(await make_rig(s, [destination(
                "nhsa", "{sim}/fsi/api/inventory", timeout_s=5.0)], {"sim": sim}))
        await rigs[0].send([dispense(n, HOSPITALS[n % 2]) for n in range(24)])
        for r in rigs:
            r.mirror.notify()
        await rigs[0].settle(timeout=30)
        assert len(sim.order) == 24
        assert sim.duplicates == 0 and sim.calls == 24  # each row sent once, by one replica
    finally:
        for r in rigs:
            await stop_rig(r)
        for s in stores:
            await s.close()
        con = await asyncpg.connect(PG_DSN)
        await con.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await con.close()
