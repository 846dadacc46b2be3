"""Boundaries of rules the README's rule table points at and no other test pins down."""

from __future__ import annotations

import pytest
from ledger_helpers import EXEMESTANE_PFIZER, EXEMESTANE_WIN, HOSPITAL, cst, event, fold

from canonical.model import EventKind
from gateway.ledger import Ledger, build_report


def _exemestane(report: dict) -> dict:
    return next(i for i in report["contracts"] if i["generic_name"] == "依西美坦片")


@pytest.mark.parametrize(("winning", "other", "meets"), [
    (700, 300, True),  # 70 % of the generic name's use: the agreed ratio exactly
    (699, 301, False),
])
async def test_r4_winning_use_share_against_the_agreed_ratio(ledger: Ledger, winning, other,
                                                             meets):
    await fold(ledger, [event(EventKind.DISPENSE, [(EXEMESTANE_WIN, winning, None),
                                                   (EXEMESTANE_PFIZER, other, None)],
                              at=cst(2026, 5, 7))])
    item = _exemestane(await build_report(ledger, HOSPITAL, cst(2026, 5, 31)))
    assert item["agreed_ratio"] == "0.70"
    assert item["use_share_meets_ratio"] is meets


async def test_r15_prepayment_is_30_percent_of_the_agreement_years_amount(ledger: Ledger):
    item = _exemestane(await build_report(ledger, HOSPITAL, cst(2026, 1, 2)))
    assert item["prepayment_min"] == "23058.00"  # 0.30 × 36000 × 2.1350
