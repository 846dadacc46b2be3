"""R14's flagging as a pure function: the same answers whether a code's earlier sales are
stored or come in the same fold, including a first sale that is worked out only when
its code comes again."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from gateway.store.ledger_records import TraceSale
from gateway.store.trace_sales import flag_sales

H, CODE = "H33010200015", "81234567890123456789"


def _sale(event: str, qty: int, package: int = 14) -> TraceSale:
    return TraceSale(H, CODE, event, "XL02BGA045A001010104520", date(2026, 11, 23),
                     Decimal(qty), Decimal(package))


def test_a_code_sold_twice_in_one_fold_is_flagged_naming_the_first_sale() -> None:
    new, flags = flag_sales({}, [_sale("e1", 14), _sale("e2", 14)])
    assert [s.event_id for s in new] == ["e1", "e2"]
    assert [(f.first_event, f.event_id) for f in flags] == [("e1", "e2")]


def test_split_parts_in_one_fold_and_against_the_store_agree() -> None:
    parts = [_sale("e1", 7), _sale("e2", 7), _sale("e3", 1)]
    _, in_one = flag_sales({}, parts)
    _, stored_first = flag_sales({(H, CODE): parts[:2]}, parts[2:])
    assert [f.event_id for f in in_one] == [f.event_id for f in stored_first] == ["e3"]


def test_a_return_first_then_sales() -> None:
    _, flags = flag_sales({}, [_sale("r1", -14), _sale("e1", 14), _sale("e2", 7)])
    assert [f.event_id for f in flags] == ["e2"]


def test_ten_thousand_codes_sold_once_raise_nothing() -> None:
    sales = [TraceSale(H, f"8{i:019d}", "big", "XL02BGA045A001010104520",
                       date(2026, 11, 23), Decimal(1), Decimal(14)) for i in range(10_000)]
    new, flags = flag_sales({}, sales)
    assert len(new) == 10_000 and flags == []
