"""The outbox side of the store contract, on SQLite and on the real PostgreSQL server."""

from __future__ import annotations

import asyncio
import re
import time

import msgspec
from factory import HOSPITALS, dispense, incoming

from canonical.model import EventKind, event_json
from gateway.store.base import DeliveryUpdate, OutboxQuery
from gateway.store.plan import raw_digest

MSGID = re.compile(r"^[A-Z0-9]{12}\d{14}\d{4}$")


async def _fill(store, n: int, hospital: str = HOSPITALS[0], start: int = 0,  # type: ignore[no-untyped-def]
                dests: tuple[str, ...] = ("nhsa",)) -> list[int]:
    ids: list[int] = []
    for i in range(start, start + n):
        ev = dispense(i, hospital)
        res = await store.commit(incoming([ev], [(d, 1) for d in dests][:1]))
        ids.extend(res.outbox_ids)
    return ids


async def test_commit_fixes_unique_msgids_and_a_resent_message_adds_nothing(make_store) -> None:
    store = await make_store()
    ids = await _fill(store, 30)
    again = await store.commit(incoming([dispense(0)], [("nhsa", 1)]))
    assert again.duplicate and again.outbox_ids == ()
    claim = await store.claim("nhsa", 100, time.time())
    msgids = [it.msgid for it in claim.items]
    assert [it.id for it in claim.items] == ids
    assert len(set(msgids)) == 30 and all(MSGID.match(m) for m in msgids)
    assert all(m.startswith(HOSPITALS[0]) for m in msgids)
    assert msgids == sorted(msgids)  # allocated in commit order


async def test_a_row_waiting_out_its_backoff_holds_up_its_own_key_only(make_store) -> None:
    store = await make_store()
    a = await _fill(store, 3, HOSPITALS[0])
    b = await _fill(store, 3, HOSPITALS[1], start=100)
    # the return of hospital 0's first sale: same ordering key (sale document and item)
    ret = (await store.commit(incoming([dispense(0, kind=EventKind.DISPENSE_RETURN)],
                                       [("nhsa", 1)], control_id="RDS-RETURN-0"))).outbox_ids
    assert len(ret) == 1
    now = time.time()
    await store.record_deliveries([DeliveryUpdate(a[0], "retry", "HTTP 503",
                                                  next_attempt_at=now + 60)])
    await store.release("nhsa")
    claim = await store.claim("nhsa", 100, now)
    # other sales of hospital 0 and all of hospital 1 go; the return waits for its sale
    assert [it.id for it in claim.items] == [*a[1:], *b]
    await store.release("nhsa")
    later = await store.claim("nhsa", 100, now + 61)
    assert [it.id for it in later.items if it.hospital_id == HOSPITALS[0]] == [*a, *ret]


async def test_a_dead_letter_holds_up_its_key_until_it_is_replayed(make_store) -> None:
    store = await make_store()
    sales = await _fill(store, 2, HOSPITALS[0])
    ret = (await store.commit(incoming([dispense(0, kind=EventKind.DISPENSE_RETURN)],
                                       [("nhsa", 1)], control_id="RDS-RETURN-0"))).outbox_ids
    assert len(ret) == 1
    now = time.time()
    await store.record_deliveries([DeliveryUpdate(sales[0], "dead", "infcode -1", at=now)])
    await store.release("nhsa")
    claim = await store.claim("nhsa", 100, now)
    assert [it.id for it in claim.items] == [sales[1]]  # not the return of the dead sale
    await store.release("nhsa")
    await store.replay(OutboxQuery(ids=(sales[0],)), now=now)
    again = await store.claim("nhsa", 100, time.time())
    assert [it.id for it in again.items] == [sales[0], sales[1], *ret]


async def test_uncharged_retry_keeps_the_budget_and_dead_letters_replay(make_store) -> None:
    store = await make_store()
    ids = await _fill(store, 4)
    now = time.time()
    await store.record_deliveries([
        DeliveryUpdate(ids[0], "retry", "circuit open", next_attempt_at=now, charge=False),
        DeliveryUpdate(ids[1], "retry", "HTTP 500", next_attempt_at=now),
        DeliveryUpdate(ids[2], "dead", "infcode -1: 医疗目录编码无效", at=now),
        DeliveryUpdate(ids[3], "delivered", at=now, platform_ref="P000000000003"),
    ])
    rows = {r.id: r for r in await store.list_outbox(OutboxQuery(states=()))}
    assert rows[ids[0]].attempts == 0 and rows[ids[1]].attempts == 1
    assert rows[ids[3]].state == "delivered" and rows[ids[3]].platform_ref == "P000000000003"
    dead = await store.list_outbox(OutboxQuery())
    assert [r.id for r in dead] == [ids[2]]
    assert "医疗目录编码无效" in dead[0].last_error
    rec = await store.outbox_record(ids[2])
    assert rec is not None and rec.event is not None and rec.event.document_no.startswith("CF")

    all_states = ("pending", "delivered", "dead")
    result = await store.replay(OutboxQuery(ids=(ids[2], ids[3]), states=all_states), now=now)
    assert result.queued == (ids[2],) and result.refused == (ids[3],)
    forced = await store.replay(OutboxQuery(ids=(ids[3],), states=all_states), force=True,
                                now=now)
    assert forced.queued == (ids[3],)
    back = await store.outbox_record(ids[3])
    assert back is not None and back.state == "pending" and back.attempts == 0
    assert (await store.balance()).queued == {"nhsa": 4}


async def test_the_failing_clock_starts_at_the_first_charged_failure_and_replay_resets_it(
        make_store) -> None:
    store = await make_store()
    ids = await _fill(store, 1)
    t0 = time.time()

    async def first_failed() -> float | None:
        return {i.id: i.first_failed_at for i in await store.pending("nhsa", 10)}[ids[0]]

    # the platform down for everyone (circuit open): the clock does not start
    await store.record_deliveries([DeliveryUpdate(ids[0], "retry", "circuit open",
                                                  next_attempt_at=t0, at=t0, charge=False)])
    assert await first_failed() is None
    # a charged retry that does not say when it failed does not start it at the epoch
    await store.record_deliveries([DeliveryUpdate(ids[0], "retry", "HTTP 500",
                                                  next_attempt_at=t0)])
    assert await first_failed() is None
    await store.record_deliveries([DeliveryUpdate(ids[0], "retry", "HTTP 500",
                                                  next_attempt_at=t0, at=t0 + 10)])
    await store.record_deliveries([DeliveryUpdate(ids[0], "retry", "HTTP 500",
                                                  next_attempt_at=t0, at=t0 + 20)])
    assert await first_failed() == t0 + 10  # the first charged failure, kept
    await store.record_deliveries([DeliveryUpdate(ids[0], "dead", "HTTP 500", at=t0 + 30)])
    await store.replay(OutboxQuery(ids=(ids[0],)), now=t0 + 40)
    assert await first_failed() is None  # a replay starts the budget afresh


async def test_item_masters_queue_unknown_items_and_take_deleted_ones_off(make_store) -> None:
    from msgspec.structs import replace

    from canonical.model import EventKind, OrderControl

    store = await make_store()
    unknown = dispense(1, item="Y0099001", code=None)  # type: ignore[arg-type]
    held = incoming([unknown], [])
    await store.commit(replace(held, held=(True,)))
    master = dispense(2, kind=EventKind.ITEM_MASTER, item="Y0099002", code=None,  # type: ignore[arg-type]
                      lines=1)
    gone = replace(master.lines[0], seq=2, item_code="Y0099001",
                   order_control=OrderControl.CANCEL)
    master = replace(master, lines=(master.lines[0], gone))
    await store.commit(incoming([master], []))
    queue = {u.item_code: u for u in await store.unmapped()}
    # the dispensed unknown item was deleted by the item master; its new item is queued,
    # with no occurrence (nothing was dispensed yet)
    assert set(queue) == {"Y0099002"} and queue["Y0099002"].occurrences == 0
    assert (await store.balance()).held_events == 1  # the item master itself is not held


async def test_replay_to_another_destination_keeps_the_original_msgid(make_store) -> None:
    store = await make_store()
    ids = await _fill(store, 2)
    now = time.time()
    await store.record_deliveries([DeliveryUpdate(i, "dead", "HTTP 400", at=now) for i in ids])
    result = await store.replay(OutboxQuery(hospital_id=HOSPITALS[0]), to_destination="backup",
                                now=now)
    assert len(result.queued) == 2
    copies = await store.list_outbox(OutboxQuery(states=("pending",), destination="backup"))
    originals = await store.list_outbox(OutboxQuery(destination="nhsa"))
    assert [c.msgid for c in copies] == [o.msgid for o in originals]
    again = await store.replay(OutboxQuery(hospital_id=HOSPITALS[0]), to_destination="backup",
                               now=now)
    assert again.queued == () and len(again.skipped) == 2  # already on their way


async def test_filters_by_time_range_hospital_and_stream(make_store) -> None:
    store = await make_store()
    a = await _fill(store, 2, HOSPITALS[0])
    cut = time.time()
    await asyncio.sleep(0.02)
    b = await _fill(store, 2, HOSPITALS[1], start=50)
    now = time.time()
    await store.record_deliveries([DeliveryUpdate(i, "dead", "x", at=now) for i in a + b])
    after = await store.list_outbox(OutboxQuery(since=cut))
    assert [r.id for r in after] == b
    before = await store.list_outbox(OutboxQuery(until=cut))
    assert [r.id for r in before] == a
    assert [r.id for r in await store.list_outbox(OutboxQuery(hospital_id=HOSPITALS[1]))] == b
    assert await store.list_outbox(OutboxQuery(streams=("receipt",))) == []
    assert len(await store.list_outbox(OutboxQuery(streams=("dispense",)))) == 4


async def test_balance_adds_up(make_store) -> None:
    store = await make_store()
    ids = await _fill(store, 5)
    now = time.time()
    await store.record_deliveries([DeliveryUpdate(ids[0], "delivered", at=now),
                                   DeliveryUpdate(ids[1], "dead", "x", at=now)])
    b = await store.balance()
    assert (b.delivered["nhsa"], b.queued["nhsa"], b.dead["nhsa"]) == (1, 3, 1)
    assert b.received("nhsa") == 5


async def test_held_events_are_released_in_order_with_fresh_msgids(make_store) -> None:
    from msgspec.structs import replace

    from gateway.store.base import PlannedDelivery

    store = await make_store()
    held = [replace(dispense(i), lines=tuple(
        replace(li, national_code=None) for li in dispense(i).lines))
        for i in range(3)]
    for ev in held:
        inc = incoming([ev], [("nhsa", 0)])
        await store.commit(replace(inc, held=(True,)))
    assert (await store.balance()).held_events == 3
    assert len(await store.unmapped()) == 1

    def remap(ev):  # type: ignore[no-untyped-def]
        mapped = dispense(int(ev.event_id.split("-")[2]))
        return mapped, False, (PlannedDelivery(0, "nhsa", 0),)
    released = await store.release_held(remap)
    assert [e.event_id for e in released] == [e.event_id for e in held]
    claim = await store.claim("nhsa", 10, time.time())
    assert [it.event.event_id for it in claim.items] == [e.event_id for e in held]
    assert len({it.msgid for it in claim.items}) == 3
    assert (await store.balance()).held_events == 0 and await store.unmapped() == []
    after = await store.query("SELECT event_id, held FROM events ORDER BY seq")
    assert [tuple(r) for r in after] == [(e.event_id, 0) for e in held]


async def test_a_held_event_mapped_but_lacking_platform_data_enters_the_ledger(
        make_store) -> None:
    """Mapped now, but a platform's mandatory field still has no value: it waits without
    outbox rows, as an event that arrived so does, and counts in the ledger at once (it
    used to stay held as unmapped, outside the ledger, and its deadlines never opened)."""
    from msgspec.structs import replace

    store = await make_store()
    ev = dispense(7)
    held = replace(ev, lines=tuple(replace(li, national_code=None) for li in ev.lines))
    await store.commit(replace(incoming([held], [("nhsa", 0)]), held=(True,)))
    assert len(await store.unmapped()) == 1

    def remap(e):  # type: ignore[no-untyped-def]
        return ev, 2, ()
    assert await store.release_held(remap) == []  # nothing to send yet
    (row,) = await store.query("SELECT held FROM events")
    assert tuple(row) == (2,)
    assert await store.unmapped() == []  # off the 对码 queue: it is mapped
    (pending,) = await store.query("SELECT count(*) FROM ledger_pending")
    assert tuple(pending) == (1,)
    assert await store.release_held(remap) == []  # again: nothing changes, queued once
    (pending,) = await store.query("SELECT count(*) FROM ledger_pending")
    assert tuple(pending) == (1,)
    assert (await store.balance()).held_events == 1
    assert (await store.claim("nhsa", 10, time.time())).items == []


async def test_the_rows_of_one_large_event_share_one_copy_of_it(make_store) -> None:
    """A 2,000-line dispense is 2,000 outbox rows: each used to carry its own decoded copy
    of the event (a 356 KB message took the process from 198 MB to 1.5 GB)."""
    store = await make_store()
    big = dispense(1, lines=2000)
    res = await store.commit(incoming([big], [("nhsa", 2000)]))
    assert len(res.outbox_ids) == 2000
    claim = await store.claim("nhsa", 500, time.time())
    assert len(claim.items) == 500
    assert len({id(it.event) for it in claim.items}) == 1
    assert claim.items[0].event == big and len(claim.items[0].event.lines) == 2000
    pending = await store.pending("nhsa", 2000)
    assert len({id(it.event) for it in pending}) == 1


async def test_a_large_event_just_committed_is_claimed_as_it_was_committed(make_store) -> None:
    """Its claims take the event this process committed instead of reading and decoding
    its JSON again (tens of milliseconds for 2,000 lines, holding the interpreter while
    acknowledgements wait); a held event, whose body changes when it is released, is
    read back as released."""
    from msgspec.structs import replace

    from gateway.store.base import PlannedDelivery

    store = await make_store()
    big = dispense(1, lines=300)
    await store.commit(incoming([big], [("nhsa", 300)]))
    unmapped = replace(dispense(2, lines=300), lines=tuple(
        replace(li, national_code=None) for li in dispense(2, lines=300).lines))
    await store.commit(replace(incoming([unmapped], [("nhsa", 0)]), held=(True,)))
    claim = await store.claim("nhsa", 1000, time.time())
    assert len(claim.items) == 300 and all(it.event is big for it in claim.items)
    await store.release("nhsa")
    mapped = dispense(2, lines=300)
    released = await store.release_held(
        lambda ev: (mapped, False, tuple(PlannedDelivery(0, "nhsa", u) for u in range(300))))
    assert [e.event_id for e in released] == [mapped.event_id]
    later = await store.claim("nhsa", 1000, time.time())
    fresh = [it.event for it in later.items if it.event.event_id == mapped.event_id]
    assert len(fresh) == 300 and fresh[0] == mapped
    assert fresh[0].lines[0].national_code is not None  # not the held body


async def test_an_incomplete_event_counts_in_the_ledger_once_and_waits_for_its_data(
        make_store) -> None:
    from gateway.store.base import Incoming, PlannedDelivery

    store = await make_store()
    ev = dispense(41)
    base = incoming([ev], [])
    res = await store.commit(Incoming(
        adapter=base.adapter, sender=base.sender, control_id=base.control_id,
        message_type=base.message_type, raw=base.raw, received_at=base.received_at,
        events=base.events, held=(False,), incomplete=(True,)))
    (seq,) = res.event_seqs
    assert res.outbox_ids == ()  # nothing goes out yet
    assert (await store.balance()).held_events == 1
    pending = await store.query("SELECT seq FROM ledger_pending")
    assert [r[0] for r in pending] == [seq]  # the ledger counts it at once
    assert [e.event_id for e in await store.held_events()] == [ev.event_id]
    # the data arrives: released, with its outbox row, and not queued for the ledger again
    before = len(await store.query("SELECT seq FROM ledger_pending"))
    released = await store.release_held(
        lambda e: (e, False, (PlannedDelivery(0, "nhsa", 0, "sale|x|y#1"),)))
    assert [e.event_id for e in released] == [ev.event_id]
    assert len(await store.query("SELECT seq FROM ledger_pending")) == before
    assert (await store.balance()).held_events == 0
    claim = await store.claim("nhsa", 10, time.time() + 1)
    assert [it.event.event_id for it in claim.items] == [ev.event_id]


async def test_bodies_worked_out_before_the_commit_are_stored_as_the_store_would(
        make_store) -> None:
    """A big message's event JSON and raw hash are worked out off the store's writer; what
    is stored (and how a resend or a reused control id is told) is the same."""
    store = await make_store()
    ev = dispense(7, lines=40)
    plain = incoming([ev], [("nhsa", 40)])
    ready = msgspec.structs.replace(plain, bodies=(event_json(ev),), digest=raw_digest(plain.raw))
    first = await store.commit(ready)
    assert len(first.outbox_ids) == 40
    claim = await store.claim("nhsa", 100, time.time())
    assert {it.event for it in claim.items} == {ev}  # the body reads back as the event
    again = await store.commit(plain)  # the same bytes resent, hashed by the store itself
    assert again.duplicate and not again.reused
    other = msgspec.structs.replace(plain, raw=plain.raw + b"\rNTE|1||changed")
    assert (await store.commit(other)).reused
