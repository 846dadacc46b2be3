"""A claim looks for the rows that hold others up among the few that can (dead letters and
rows given a time to wait for), not among every pending row of the scope: a 2,000-line
dispense is one scope, and its claims must not cost the square of its lines."""

from __future__ import annotations

import time
from pathlib import Path

from factory import HOSPITALS, dispense, incoming

from canonical.model import EventKind
from gateway.store.base import DeliveryUpdate
from gateway.store.query import UNBLOCKED
from gateway.store.sqlite import SqliteStore

LINES = 2_000


async def test_a_big_dispense_is_claimed_in_order_and_a_line_in_back_off_holds_up_only_what_waits_for_it(  # noqa: E501
        make_store) -> None:  # type: ignore[no-untyped-def]
    store = await make_store()
    big = list((await store.commit(incoming([dispense(1, lines=LINES)],
                                            [("nhsa", LINES)]))).outbox_ids)
    # the return of the whole sale: scope-wide, after every line of it
    ret = (await store.commit(incoming([dispense(1, kind=EventKind.DISPENSE_RETURN)],
                                       [("nhsa", 1)], control_id="RDS-RETURN-1"))).outbox_ids
    other = (await store.commit(incoming([dispense(2, HOSPITALS[0])], [("nhsa", 1)]))).outbox_ids
    now = time.time()
    await store.record_deliveries([DeliveryUpdate(big[2], "retry", "HTTP 503",
                                                  next_attempt_at=now + 60)])
    await store.release("nhsa")
    claimed = [it.id for it in (await store.claim("nhsa", 5_000, now)).items]
    # the other lines of the sale and the other sale go, in commit order; the return
    # waits for line 3
    assert sorted(claimed) == [*big[:2], *big[3:], *other]
    assert [i for i in claimed if i in set(big)] == [*big[:2], *big[3:]]
    await store.record_deliveries([DeliveryUpdate(i, "delivered", "", at=now)
                                   for i in claimed])
    await store.release("nhsa")
    later = await store.claim("nhsa", 5_000, now + 61)
    assert [it.id for it in later.items] == [big[2], *ret]


async def test_a_dead_line_holds_up_the_scope_wide_return_behind_it(make_store) -> None:  # type: ignore[no-untyped-def]
    store = await make_store()
    big = (await store.commit(incoming([dispense(1, lines=50)], [("nhsa", 50)]))).outbox_ids
    ret = (await store.commit(incoming([dispense(1, kind=EventKind.DISPENSE_RETURN)],
                                       [("nhsa", 1)], control_id="RDS-RETURN-1"))).outbox_ids
    now = time.time()
    await store.record_deliveries([DeliveryUpdate(big[10], "dead", "infcode -1", at=now)])
    claim = await store.claim("nhsa", 500, now)
    assert [it.id for it in claim.items] == [i for i in big if i != big[10]]
    assert ret[0] not in {it.id for it in claim.items}


async def test_sqlite_looks_for_blockers_in_their_own_index(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "gateway.db")
    await store.start()
    try:
        plan = await store.query(
            "EXPLAIN QUERY PLAN SELECT o.id FROM outbox o WHERE o.destination = ?"
            " AND o.hospital_id = ? AND o.state = 0 AND o.next_attempt_at <= ?"
            f" AND {UNBLOCKED.format(now='?')} ORDER BY o.id LIMIT ?",
            ("nhsa", HOSPITALS[0], 1.0, 1.0, 500))
    finally:
        await store.close()
    steps = [row[-1] for row in plan]
    assert any(s.startswith("SEARCH b USING INDEX outbox_blocking") for s in steps), steps
