"""R13 [JS 细则 二(四) 2]: "挂网产品1年无销售的，经省医疗保障部门审定后暂停该产品采购，并择期
作撤网处理".

The platform counts sales on the platform: what a hospital bought through it (online
receipts), not what it dispensed. A winning product the hospital has not bought on the
platform for a year — the 365 days up to and including the day asked about — risks
being suspended and then delisted; a product listed less than a year ago is not yet.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, timedelta

from canonical.model import EventKind
from gateway.store.ledger_records import DailyRow

__all__ = ["YEAR", "last_platform_purchases", "unpurchased_for_a_year"]

YEAR = timedelta(days=365)


def last_platform_purchases(rows: Iterable[DailyRow]) -> dict[str, date]:
    """The last day each national code was received through the platform."""
    last: dict[str, date] = {}
    for r in rows:
        if (r.kind == EventKind.RECEIPT.value and r.online and r.qty > 0
                and r.day > last.get(r.national_code, date.min)):
            last[r.national_code] = r.day
    return last


def unpurchased_for_a_year(listed_since: date, last_purchase: date | None,
                           as_of: date) -> bool:
    """No platform purchase in the year up to ``as_of`` of a product listed since
    ``listed_since``: exactly 365 days after the last purchase (or the listing) is a
    year without one."""
    since = listed_since if last_purchase is None else max(listed_since, last_purchase)
    return since <= as_of - YEAR
