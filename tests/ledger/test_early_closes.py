"""A close folded before the event that opens its deadline: a payment before its
receipt (the receipt held for 对码, or simply later), a supplier's answer before the
order. The store keeps the close and the deadline opens closed at its time."""

from __future__ import annotations

from typing import Any

from ledger_helpers import DATA, EXEMESTANE_WIN, HOSPITAL, cst, event, fold

from canonical.model import EventKind
from gateway.ledger import Ledger, LedgerSettings
from gateway.ledger.calendar import WorkCalendar, load_year
from gateway.rules import RuleSet

LINE = [(EXEMESTANE_WIN, 140, "2.1350")]


async def _ledger(make_store: Any, calendar: WorkCalendar, rules: RuleSet) -> Ledger:
    lg = Ledger(await make_store(), LedgerSettings(calendar=calendar), rules)
    await lg.load()
    return lg


async def _found(lg: Ledger, kind: str, now: Any = None) -> dict[str, Any]:
    return {d.ref: d for d in await lg.deadlines(HOSPITAL, now or cst(2026, 12, 31, 12))
            if d.kind == kind}


async def test_payment_before_its_receipt_opens_the_payment_deadline_met(
        make_store: Any, calendar: WorkCalendar, rules: RuleSet) -> None:
    lg = await _ledger(make_store, calendar, rules)
    paid = cst(2026, 12, 2, 10)
    await fold(lg, [event(EventKind.PAYMENT, [], at=paid, doc="FK1",
                          extra=(("receipt_no", "RK1|RK2"),))])
    # a later payment naming the same receipt does not move the time it was paid
    await fold(lg, [event(EventKind.PAYMENT, [], at=cst(2026, 12, 9), doc="FK2",
                          extra=(("receipt_no", "RK1"),))])
    assert await _found(lg, "payment") == {}
    await fold(lg, [event(EventKind.RECEIPT, LINE, at=cst(2026, 12, 1), doc="RK1"),
                    event(EventKind.RECEIPT, LINE, at=cst(2026, 12, 1), doc="RK3")])
    found = await _found(lg, "payment")
    assert (found["RK1"].state, found["RK1"].closed_at) == ("met", paid)
    assert (found["RK3"].state, found["RK3"].closed_at) == ("open", None)
    # the close is used up: a receipt folded again under the same number opens nothing
    # new, and the other receipt named still waits for its own
    await fold(lg, [event(EventKind.RECEIPT, LINE, at=cst(2026, 12, 3), doc="RK2")])
    found = await _found(lg, "payment")
    assert (found["RK2"].state, found["RK2"].closed_at) == ("met", paid)
    assert found["RK1"].closed_at == paid


async def test_supplier_answer_before_the_order_opens_it_answered(
        make_store: Any, calendar: WorkCalendar, rules: RuleSet) -> None:
    lg = await _ledger(make_store, calendar, rules)
    answered = cst(2026, 12, 2, 15)
    await fold(lg, [event(EventKind.PURCHASE_ORDER, LINE, at=answered, doc="PO1",
                          extra=(("ack_code", "AA"), ("order_response", "OK")))])
    await fold(lg, [event(EventKind.PURCHASE_ORDER, LINE, at=cst(2026, 12, 2, 8), doc="PO1"),
                    event(EventKind.PURCHASE_ORDER, LINE, at=cst(2026, 12, 2, 8), doc="PO2")])
    found = await _found(lg, "order", cst(2026, 12, 10))
    assert (found["PO1"].state, found["PO1"].closed_at) == ("answered", answered)
    assert found["PO2"].state == "overdue"
    # the view of open orders (what reminders and the order report read) agrees, in
    # this process and in one built from the store
    assert [o.ref for o in lg.open_orders()] == ["PO2"]
    other = Ledger(lg.tables.store, LedgerSettings(calendar=calendar), rules)
    await other.load()
    assert [o.ref for o in other.open_orders()] == ["PO2"]


async def test_delay_list_due_without_its_years_calendar_is_provisional(
        make_store: Any, calendar: WorkCalendar, rules: RuleSet) -> None:
    lg = await _ledger(make_store, calendar, rules)
    # due 2027-01-01 09:00; the delay list's working day falls in 2027, which has no file
    await fold(lg, [event(EventKind.PURCHASE_ORDER, LINE, at=cst(2026, 12, 30), doc="PO7")])
    [order] = (await _found(lg, "order", cst(2027, 1, 2))).values()
    assert order.state == "overdue"
    assert order.detail["delay_list_due"].startswith("2027-01-04T23:59:59")  # Monday
    assert order.detail["delay_list_provisional"] is True
    lg.use_calendar(WorkCalendar([*(load_year(p) for p in
                                    sorted((DATA.parents[2] / "config" / "calendar")
                                           .glob("*.yaml"))),
                                  load_year(DATA / "calendar-2027" / "2027.yaml")]))
    [order] = (await _found(lg, "order", cst(2027, 1, 2))).values()
    assert "delay_list_provisional" not in order.detail
    assert order.detail["delay_list_due"].startswith("2027-01-04")
