"""Working-day calendar and the deadlines built on it, at their boundaries."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest
from ledger_helpers import EXEMESTANE_PFIZER, HOSPITAL, cst, event, fold

from canonical.errors import ConfigError
from canonical.model import EventKind
from gateway.ledger import OrderState, filing_deadline, order_state, payment_deadline
from gateway.ledger.calendar import CalendarGapError, load_year


def test_2026_make_up_saturdays_work_and_holidays_rest(calendar):
    assert calendar.is_working_day(date(2026, 2, 14))  # Saturday, 春节 make-up
    assert calendar.is_working_day(date(2026, 2, 28))
    assert calendar.is_working_day(date(2026, 1, 4))  # Sunday, 元旦 make-up
    assert not calendar.is_working_day(date(2026, 2, 16))  # Monday in 春节
    assert not calendar.is_working_day(date(2026, 10, 7))  # Wednesday in 国庆
    assert not calendar.is_working_day(date(2026, 3, 7))  # ordinary Saturday
    assert calendar.is_working_day(date(2025, 2, 8))  # 2025 make-up Saturday
    assert not calendar.is_working_day(date(2025, 10, 8))


def test_seven_working_days_across_spring_festival_with_make_up_saturdays(calendar):
    # bought Friday 2026-02-13: Sat 14 (make-up) = 1, holiday 15–23, 24–27 = 2–5,
    # Sat 28 (make-up) = 6, Mon 3-02 = 7
    due = filing_deadline(cst(2026, 2, 13, 16), calendar)
    assert due.date() == date(2026, 3, 2)
    # on weekends alone it would have been 2026-02-24
    assert calendar.working_days_between(date(2026, 2, 13), date(2026, 3, 2)) == 7


def test_emergency_filing_gets_twenty_working_days(calendar):
    due = filing_deadline(cst(2026, 9, 18), calendar, emergency=True)
    # 9-20 (Sunday make-up) = 1, 9-21..24 = 2–5, 中秋 9-25..27 off, 9-28..30 = 6–8,
    # 国庆 10-01..07 off, 10-08, 10-09 = 9–10, 10-10 (Saturday make-up) = 11,
    # 10-12..16 = 12–16, 10-19..22 = 17–20
    assert calendar.working_days_between(date(2026, 9, 18), due.date()) == 20
    assert due.date() == date(2026, 10, 22)


async def test_filing_state_flips_one_microsecond_after_the_seventh_day(ledger):
    await fold(ledger, [event(EventKind.RECEIPT, [(EXEMESTANE_PFIZER, 100, "9.80")],
                              at=cst(2026, 2, 13, 16), online=False, doc="YJ-0001")])
    [d] = [d for d in await ledger.deadlines(HOSPITAL, cst(2026, 3, 2, 23, 59, 59))
           if d.kind == "filing"]
    assert d.state == "open"
    [d] = [d for d in await ledger.deadlines(HOSPITAL, cst(2026, 3, 3, 0, 0, 0))
           if d.kind == "filing"]
    assert d.state == "overdue"


async def test_filing_on_the_last_day_is_met(ledger):
    await fold(ledger, [event(EventKind.RECEIPT, [(EXEMESTANE_PFIZER, 100, "9.80")],
                              at=cst(2026, 2, 13, 16), online=False, doc="YJ-0002"),
                        event(EventKind.STOCK_CHANGE, [], at=cst(2026, 3, 2, 23, 59),
                              extra=(("filing_for", "YJ-0002"),))])
    [d] = [d for d in await ledger.deadlines(HOSPITAL, cst(2026, 4, 1))
           if d.kind == "filing"]
    assert d.state == "met"


def test_order_unanswered_48h_exactly_is_waiting_and_one_second_more_is_overdue():
    sent = cst(2026, 3, 2, 10)
    assert order_state(sent, sent + timedelta(hours=48)) is OrderState.WAITING
    assert order_state(sent, sent + timedelta(hours=48, seconds=1)) is OrderState.OVERDUE
    reminded = sent + timedelta(hours=50)
    assert order_state(sent, reminded + timedelta(hours=24),
                       reminded_at=reminded) is OrderState.REMINDED
    assert order_state(sent, reminded + timedelta(hours=24, seconds=1),
                       reminded_at=reminded) is OrderState.ESCALATE
    assert order_state(sent, sent + timedelta(days=9),
                       answered_at=sent + timedelta(hours=3)) is OrderState.ANSWERED


async def test_order_clock_in_the_ledger_closes_on_receipt(ledger):
    sent = cst(2026, 3, 2, 10)
    await fold(ledger, [event(EventKind.PURCHASE_ORDER, [(EXEMESTANE_PFIZER, 10, None)],
                              at=sent, doc="PO-77")])
    [d] = [d for d in await ledger.deadlines(HOSPITAL, sent + timedelta(hours=48, seconds=1))
           if d.kind == "order"]
    assert d.state == "overdue"
    assert d.detail["delay_list_due"].startswith("2026-03-05")  # 1 working day after 3-04
    assert await ledger.record_order_reminder(HOSPITAL, "PO-77", sent + timedelta(hours=49))
    [d] = [d for d in await ledger.deadlines(HOSPITAL, sent + timedelta(hours=73, seconds=1))
           if d.kind == "order"]
    assert d.state == "escalate"
    await fold(ledger, [event(EventKind.RECEIPT, [(EXEMESTANE_PFIZER, 10, "9.80")],
                              at=sent + timedelta(hours=80), doc="RK-9",
                              extra=(("order_no", "PO-77"),))])
    [d] = [d for d in await ledger.deadlines(HOSPITAL, sent + timedelta(days=5))
           if d.kind == "order"]
    assert d.state == "answered"
    assert ledger.open_orders() == []


@pytest.mark.parametrize(("accepted", "due"), [
    (cst(2026, 1, 31), date(2026, 2, 28)),  # end of next month comes before 30 days
    (cst(2026, 3, 10), date(2026, 4, 9)),  # 30 days come first
    (cst(2026, 12, 15), date(2027, 1, 14)),
])
def test_payment_due_is_the_earlier_of_30_days_and_end_of_next_month(accepted, due):
    assert payment_deadline(accepted).date() == due


def test_gap_year_is_an_error_naming_the_file(calendar):
    with pytest.raises(CalendarGapError, match=r"config/calendar/2027\.yaml"):
        calendar.is_working_day(date(2027, 1, 5))


async def test_off_platform_purchase_into_a_gap_year_gets_provisional_deadline(ledger):
    await fold(ledger, [event(EventKind.RECEIPT, [(EXEMESTANE_PFIZER, 5, "9.80")],
                              at=cst(2026, 12, 28), online=False, doc="YJ-YE")])
    [d] = [d for d in await ledger.deadlines(HOSPITAL, cst(2026, 12, 29))
           if d.kind == "filing"]
    assert d.detail["provisional"] is True
    assert d.due_at.date() == date(2027, 1, 6)


def test_bad_calendar_file_names_file_and_key(tmp_path: Path):
    p = tmp_path / "2027.yaml"
    p.write_text("year: 2027\nholidays:\n  - {name: 春节, from: '2027-02-31', to: 2027-02-10}\n"
                 "make_up_workdays: [2026-02-07]\n", encoding="utf-8")
    with pytest.raises(ConfigError) as exc:
        load_year(p)
    text = "\n".join(exc.value.problems)
    assert "2027.yaml: holidays[0].from" in text
    assert "make_up_workdays[0]" in text
    p.write_text("year: 2027\nholidays:\n  - {name: 春节, from: 2027-02-31}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"2027\.yaml"):
        load_year(p)
