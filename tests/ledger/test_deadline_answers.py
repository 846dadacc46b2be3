"""What closes a deadline, on both stores: payments naming several receipts, supplier
answers, deliveries against an order, the manual changes, and provisional deadlines
counted again with a newer calendar."""

from __future__ import annotations

from typing import Any

from ledger_helpers import DATA, EXEMESTANE_WIN, HOSPITAL, cst, event, fold

from canonical.model import EventKind
from gateway.ledger import Ledger, LedgerSettings
from gateway.ledger.answers import is_order_answer, orders_answered, receipts_paid
from gateway.ledger.calendar import WorkCalendar, load_year
from gateway.ledger.manual import CloseInput, close_input, update_one
from gateway.rules import RuleSet
from gateway.store.ledger_records import DeadlineUpdate

LINE = [(EXEMESTANE_WIN, 140, "2.1350")]


async def _ledger(make_store: Any, calendar: WorkCalendar, rules: RuleSet) -> Ledger:
    lg = Ledger(await make_store(), LedgerSettings(calendar=calendar), rules)
    await lg.load()
    return lg


async def _states(lg: Ledger, kind: str) -> dict[str, tuple[str, str | None]]:
    now = cst(2026, 12, 31, 12)
    return {d.ref: (d.state, None if d.closed_at is None else d.closed_at.isoformat())
            for d in await lg.deadlines(HOSPITAL, now) if d.kind == kind}


def test_receipts_paid_reads_every_receipt_named_once() -> None:
    pay = event(EventKind.PAYMENT, [], at=cst(2026, 12, 15), doc="FK1",
                extra=(("receipt_no", "RK1|RK2"), ("amount", "10"), ("receipt_no", " RK3 |RK1")))
    assert receipts_paid(pay) == ("RK1", "RK2", "RK3")
    assert receipts_paid(event(EventKind.PAYMENT, [], at=cst(2026, 12, 15), doc="RK9")) == (
        "RK9",)


def test_an_answer_is_told_from_an_order() -> None:
    answer = event(EventKind.PURCHASE_ORDER, LINE, at=cst(2026, 12, 2), doc="PO1",
                   extra=(("ack_code", "AA"), ("order_response", "UA")))
    order = event(EventKind.PURCHASE_ORDER, LINE, at=cst(2026, 12, 2), doc="PO1")
    delivery = event(EventKind.RECEIPT, LINE, at=cst(2026, 12, 3), doc="RK1",
                     extra=(("based_on", "PO1"),))
    assert is_order_answer(answer) and not is_order_answer(order)
    assert orders_answered(answer) == ("PO1",)
    assert orders_answered(order) == ()
    assert orders_answered(delivery) == ("PO1",)


async def test_one_payment_closes_each_receipt_it_names(
        make_store: Any, calendar: WorkCalendar, rules: RuleSet) -> None:
    lg = await _ledger(make_store, calendar, rules)
    await fold(lg, [event(EventKind.RECEIPT, LINE, at=cst(2026, 12, 1), doc=doc)
                    for doc in ("RK20261201001", "RK20261203002", "RK20261204003")])
    await fold(lg, [event(EventKind.PAYMENT, LINE, at=cst(2026, 12, 15, 14, 30),
                          doc="FK20261215001",
                          extra=(("receipt_no", "RK20261201001|RK20261203002"),))])
    paid = cst(2026, 12, 15, 14, 30).isoformat()
    assert await _states(lg, "payment") == {
        "RK20261201001": ("met", paid), "RK20261203002": ("met", paid),
        "RK20261204003": ("open", None)}


async def test_supplier_answer_closes_the_clock_and_opens_none(
        make_store: Any, calendar: WorkCalendar, rules: RuleSet) -> None:
    lg = await _ledger(make_store, calendar, rules)
    await fold(lg, [event(EventKind.PURCHASE_ORDER, LINE, at=cst(2026, 12, 2, 8), doc=doc)
                    for doc in ("PO1", "PO2")])
    assert {o.ref for o in lg.open_orders()} == {"PO1", "PO2"}
    refused = (("ack_code", "AA"), ("order_response", "UA"))
    await fold(lg, [
        event(EventKind.PURCHASE_ORDER, LINE, at=cst(2026, 12, 2, 15), doc="PO1",
              extra=refused),
        # an answer to an order this gateway never saw is not an order of its own
        event(EventKind.PURCHASE_ORDER, LINE, at=cst(2026, 12, 2, 15), doc="PO9",
              extra=(("order_response", "OK"),)),
        event(EventKind.RECEIPT, LINE, at=cst(2026, 12, 3), doc="RK5",
              extra=(("based_on", "PO2"),))])
    assert await _states(lg, "order") == {
        "PO1": ("answered", cst(2026, 12, 2, 15).isoformat()),
        "PO2": ("answered", cst(2026, 12, 3).isoformat())}
    assert lg.open_orders() == []


async def test_manual_updates_say_what_happened(
        make_store: Any, calendar: WorkCalendar, rules: RuleSet) -> None:
    lg = await _ledger(make_store, calendar, rules)
    await fold(lg, [event(EventKind.PURCHASE_ORDER, LINE, at=cst(2026, 12, 2, 8), doc="PO1")])
    remind = DeadlineUpdate(HOSPITAL, "order", "PO1", reminded_at=cst(2026, 12, 4, 9))
    outcome, before = await update_one(lg.tables, remind)
    assert outcome == "done" and before is not None and before.reminded_at is None
    await lg.catch_up()
    assert lg.open_orders()[0].reminded_at == cst(2026, 12, 4, 9)  # the view follows
    c: CloseInput = close_input({"hospital_id": HOSPITAL, "kind": "order", "ref": "PO1",
                                 "reason": "电话确认已发货", "at": "2026-12-04T11:00:00"},
                                cst(2026, 12, 5))
    assert c.at == cst(2026, 12, 4, 11)
    close = DeadlineUpdate(HOSPITAL, c.kind, c.ref, closed_at=c.at)
    assert (await update_one(lg.tables, close))[0] == "done"
    assert (await update_one(lg.tables, close))[0] == "closed"
    missing = DeadlineUpdate(HOSPITAL, "order", "PO404", closed_at=c.at)
    assert await update_one(lg.tables, missing) == ("unknown", None)
    await lg.catch_up()
    assert lg.open_orders() == []


async def test_provisional_deadline_counted_again_with_the_new_year(
        make_store: Any, calendar: WorkCalendar, rules: RuleSet) -> None:
    lg = await _ledger(make_store, calendar, rules)
    await fold(lg, [event(EventKind.RECEIPT, LINE, at=cst(2026, 12, 28, 11), doc="RK7",
                          online=False),
                    event(EventKind.RECEIPT, LINE, at=cst(2026, 12, 1), doc="RK8",
                          online=False)])
    [provisional] = await lg.provisional_deadlines()
    assert provisional.ref == "RK7" and provisional.due_at == cst(2027, 1, 6, 23, 59, 59
                                                                   ).replace(microsecond=999999)
    assert await lg.recount_provisional() == (0, 1)  # still no 2027 file
    version = lg.version
    lg.use_calendar(WorkCalendar([*(load_year(p) for p in
                                    sorted((DATA.parents[2] / "config" / "calendar")
                                           .glob("*.yaml"))),
                                  load_year(DATA / "calendar-2027" / "2027.yaml")]))
    assert await lg.recount_provisional() == (1, 0)
    assert await lg.provisional_deadlines() == []
    found = {d.ref: d for d in await lg.deadlines(HOSPITAL, cst(2027, 1, 7, 12))
             if d.kind == "filing"}
    assert found["RK7"].due_at.date().isoformat() == "2027-01-07"  # 元旦 off
    assert found["RK7"].provisional is False and found["RK7"].to_json()["provisional"] is False
    assert found["RK7"].state == "open"
    assert found["RK8"].due_at.date().isoformat() == "2026-12-10"  # untouched
    assert await lg.catch_up() == version + 1  # one logged version for the recount
