"""What waits for what: ordering keys, scopes and the phases a claimed batch runs in."""

from __future__ import annotations

import time

from factory import HOSPITALS, dispense, incoming

from canonical.model import EventKind, OrderControl
from gateway.mirror.ordering import by_scope, phases
from gateway.platforms.nhsa import order_key
from gateway.store.base import DeliveryUpdate, OutboxItem
from gateway.store.plan import order_scope


def _item(i: int, key: str, hospital: str = HOSPITALS[0]) -> OutboxItem:
    return OutboxItem(id=i, destination="nhsa", msgid=f"M{i}", hospital_id=hospital,
                      stream="dispense", unit=0, attempts=0, created_at=0.0,
                      next_attempt_at=0.0, event=dispense(i), order_key=key)


def test_sale_lines_go_together_their_corrections_after_them_a_return_after_all() -> None:
    sale = dispense(1, lines=3)
    keys = [order_key(sale, u) for u in range(3)]
    assert len(set(keys)) == 3 and len({order_scope(k) for k in keys}) == 1
    change = dispense(1, lines=3, control=OrderControl.CHANGE, event_id="chg")
    # the correction of line 2: delete then re-upload, both on line 2's key
    assert order_key(change, 2) == order_key(change, 3) == keys[1]
    ret = dispense(1, kind=EventKind.DISPENSE_RETURN)
    assert order_key(ret, 0) == order_scope(keys[0])  # scope-wide
    other_doc = dispense(2)
    assert order_scope(order_key(other_doc, 0)) != order_scope(keys[0])


def test_a_scope_runs_as_phases_and_scopes_of_other_hospitals_apart() -> None:
    s = "sale|CF1|Y1"
    items = [_item(1, f"{s}#1"), _item(2, f"{s}#2"), _item(3, f"{s}#1"), _item(4, s),
             _item(5, f"{s}#3"), _item(6, f"{s}#3"), _item(7, f"{s}#1", HOSPITALS[1])]
    scopes = by_scope(items)
    assert set(scopes) == {(HOSPITALS[0], s), (HOSPITALS[1], s)}
    runs = phases(scopes[(HOSPITALS[0], s)])
    as_ids = [[[it.id for it in chain] for chain in phase] for phase in runs]
    # lines 1 and 2 together (line 1's correction after it), the return alone, then line 3
    assert as_ids == [[[1, 3], [2]], [[4]], [[5, 6]]]


async def test_a_line_backing_off_holds_up_the_return_not_the_other_lines(make_store) -> None:
    store = await make_store()
    sale = (await store.commit(incoming([dispense(0, lines=3)], [("nhsa", 3)]))).outbox_ids
    ret = (await store.commit(incoming([dispense(0, kind=EventKind.DISPENSE_RETURN)],
                                       [("nhsa", 1)], control_id="RDS-R0"))).outbox_ids
    later = (await store.commit(incoming([dispense(0, lines=3, control=OrderControl.CHANGE,
                                                   event_id="chg-0")],
                                         [("nhsa", 6)], control_id="RDS-C0"))).outbox_ids
    now = time.time()
    await store.record_deliveries([DeliveryUpdate(sale[1], "retry", "HTTP 503",
                                                  next_attempt_at=now + 60)])
    await store.release("nhsa")
    claim = await store.claim("nhsa", 100, now)
    # lines 1 and 3 go; the return waits for line 2, and the corrections for the return
    assert [it.id for it in claim.items] == [sale[0], sale[2]]
    await store.record_deliveries([DeliveryUpdate(i, "delivered", at=now)
                                   for i in (sale[0], sale[2])])
    await store.release("nhsa")
    again = await store.claim("nhsa", 100, now + 61)
    assert [it.id for it in again.items] == [sale[1], *ret, *later]


def test_decoded_events_are_kept_within_their_line_budget() -> None:
    from gateway.store.query import DecodedEvents

    kept = DecodedEvents(max_lines=5)
    big, small = dispense(1, lines=4), dispense(2, lines=2)
    kept.add(1, big)
    assert kept.split([1, 2]) == ({1: big}, [2])
    kept.add(2, small)  # 6 lines: the least recently claimed goes
    assert kept.split([1, 2]) == ({2: small}, [1])
    kept.add(3, dispense(3, lines=6))  # beyond the budget alone: never kept
    assert kept.split([3]) == ({}, [3])
