"""Deadlines the documents set, as pure functions of the start time and the calendar.

- Off-platform purchase: file within 7 working days, 20 in an emergency [GZ 四, JS 十].
- Order to a distributor: more than 48 h unanswered is reported; after the reminder,
  more than 24 h again escalates; the delay list is due within 1 working day [GZ 六].
- Payment: within 30 days of acceptance [HB 五(四)] and at the latest by the end of the
  month after acceptance [SX 五(四)]; the earlier of the two binds.
- A negotiation below the listed price lapses after 10 working days unconfirmed [JS 二(五)].

A day-based deadline ends with the last microsecond of its day in China time; a
deadline is missed when the moment checked is strictly after it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum

from gateway.ledger.calendar import CalendarGapError, WorkCalendar, end_of_day, local_date

__all__ = [
    "DeadlinePolicy",
    "OrderState",
    "delay_list_due",
    "filing_deadline",
    "filing_due",
    "negotiation_lapse",
    "order_state",
    "payment_deadline",
]


@dataclass(frozen=True, slots=True)
class DeadlinePolicy:
    """The numbers behind the deadlines; defaults are the documents' figures."""

    filing_working_days: int = 7
    filing_working_days_emergency: int = 20
    order_response: timedelta = timedelta(hours=48)
    order_after_reminder: timedelta = timedelta(hours=24)
    delay_list_working_days: int = 1
    payment_days: int = 30
    negotiation_confirm_working_days: int = 10


DEFAULT_POLICY = DeadlinePolicy()


def filing_deadline(
    purchased_at: datetime,
    calendar: WorkCalendar,
    *,
    emergency: bool = False,
    policy: DeadlinePolicy = DEFAULT_POLICY,
) -> datetime:
    """When the filing (备案) of an off-platform purchase is due.

    Raises:
        CalendarGapError: the count runs into a year without a calendar file.
    """
    n = policy.filing_working_days_emergency if emergency else policy.filing_working_days
    return end_of_day(calendar.add_working_days(local_date(purchased_at), n))


def _add_weekdays(start: date, n: int) -> date:
    day = start
    while n > 0:
        day += timedelta(days=1)
        if day.weekday() < 5:
            n -= 1
    return day


def filing_due(purchased_at: datetime, calendar: WorkCalendar, *, emergency: bool = False,
               policy: DeadlinePolicy = DEFAULT_POLICY) -> tuple[datetime, bool]:
    """When the filing is due, and whether that is provisional: a count that runs into a
    year without a calendar file is made on weekdays alone (holidays and 调休 unknown)
    until the file is added and the deadline counted again."""
    try:
        return filing_deadline(purchased_at, calendar, emergency=emergency, policy=policy), False
    except CalendarGapError:
        n = policy.filing_working_days_emergency if emergency else policy.filing_working_days
        return end_of_day(_add_weekdays(local_date(purchased_at), n)), True


def delay_list_due(order_due_at: datetime, calendar: WorkCalendar,
                   policy: DeadlinePolicy = DEFAULT_POLICY) -> tuple[datetime, bool]:
    """When the delay list of an order overdue since ``order_due_at`` is due, and whether
    that is provisional (counted on weekdays alone, as :func:`filing_due` does)."""
    n = policy.delay_list_working_days
    day = local_date(order_due_at)
    try:
        return end_of_day(calendar.add_working_days(day, n)), False
    except CalendarGapError:
        return end_of_day(_add_weekdays(day, n)), True


def _end_of_next_month(day: date) -> date:
    first_next = (day.replace(day=1) + timedelta(days=32)).replace(day=1)
    first_after = (first_next + timedelta(days=32)).replace(day=1)
    return first_after - timedelta(days=1)


def payment_deadline(accepted_at: datetime, policy: DeadlinePolicy = DEFAULT_POLICY) -> datetime:
    """When payment for goods accepted at ``accepted_at`` is due (calendar days)."""
    accepted = local_date(accepted_at)
    by_days = accepted + timedelta(days=policy.payment_days)
    return end_of_day(min(by_days, _end_of_next_month(accepted)))


def negotiation_lapse(
    proposed_at: datetime, calendar: WorkCalendar, policy: DeadlinePolicy = DEFAULT_POLICY
) -> datetime:
    """When an unconfirmed negotiation below the listed price lapses."""
    n = policy.negotiation_confirm_working_days
    day = calendar.add_working_days(local_date(proposed_at), n)
    return end_of_day(day)


class OrderState(StrEnum):
    """Where an order to a distributor stands."""

    ANSWERED = "answered"
    WAITING = "waiting"  # within 48 h
    OVERDUE = "overdue"  # more than 48 h unanswered: report it
    REMINDED = "reminded"  # reminder sent, within 24 h of it
    ESCALATE = "escalate"  # more than 24 h after the reminder, still unanswered


def order_state(
    sent_at: datetime,
    now: datetime,
    *,
    answered_at: datetime | None = None,
    reminded_at: datetime | None = None,
    policy: DeadlinePolicy = DEFAULT_POLICY,
) -> OrderState:
    """Classify an order: "more than 48 h" means strictly more (48 h exactly is on time)."""
    if answered_at is not None and answered_at <= now:
        return OrderState.ANSWERED
    if reminded_at is not None and reminded_at <= now:
        if now - reminded_at > policy.order_after_reminder:
            return OrderState.ESCALATE
        return OrderState.REMINDED
    if now - sent_at > policy.order_response:
        return OrderState.OVERDUE
    return OrderState.WAITING
