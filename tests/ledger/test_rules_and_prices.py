"""Every shipped rule at its boundary; rule-file errors; price checks (R10–R12)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from ledger_helpers import EXEMESTANE_PFIZER, EXEMESTANE_WIN, HOSPITAL, cst, event, fold

from adapters.base import Severity
from adapters.hl7v2.ack import AckHeader, build_ack
from canonical.errors import ConfigError
from canonical.model import EventKind
from gateway.ledger import DraftLine
from gateway.ledger.prices import (
    PriceBand,
    above_winning_price,
    classify_negotiated_price,
    payment_standard,
    reference_price,
)
from gateway.rules import RuleSet, rules_from_mapping

PFIZER = DraftLine(1, EXEMESTANE_PFIZER, "依西美坦片（辉瑞）")


def _ids(ledger, line, now):
    return [f.rule_id for f in ledger.evaluate_lines(HOSPITAL, [line], now)]


async def test_non_winning_warns_only_while_completion_is_below_time_progress(ledger):
    # 2026-04-01 is day 91 of 365; 36000 × 91/365 = 8975.34..., so 8976 keeps pace
    await fold(ledger, [event(EventKind.RECEIPT, [(EXEMESTANE_WIN, 8976, "2.1350")],
                              at=cst(2026, 3, 1))])
    assert "nonwinning-while-lagging" not in _ids(ledger, PFIZER, cst(2026, 4, 1))
    # one day later time progress is 92/365 = 25.2 % > 24.93 %: lagging
    findings = ledger.evaluate_lines(HOSPITAL, [PFIZER], cst(2026, 4, 2))
    [f] = [f for f in findings if f.rule_id == "nonwinning-while-lagging"]
    assert f.replacements[0].national_code == EXEMESTANE_WIN
    assert "24.9%" in f.detail and "25.2%" in f.detail
    assert f.block is False


async def test_winning_product_never_gets_the_switch_warning(ledger):
    line = DraftLine(1, EXEMESTANE_WIN, "依西美坦片")
    assert _ids(ledger, line, cst(2026, 9, 1)) == []


async def test_brand_name_prescription(ledger):
    assert "brand-instead-of-generic" in _ids(
        ledger, DraftLine(1, EXEMESTANE_PFIZER, "阿诺新"), cst(2026, 1, 2))
    assert "brand-instead-of-generic" not in _ids(
        ledger, DraftLine(1, EXEMESTANE_PFIZER, "依西美坦片(阿诺新)"), cst(2026, 1, 2))


async def test_winning_out_of_stock_replaces_the_switch_warning(ledger):
    await fold(ledger, [event(EventKind.STOCKTAKE, [(EXEMESTANE_WIN, 1, None)],
                              at=cst(2026, 5, 1))])
    assert "winning-out-of-stock" not in _ids(ledger, PFIZER, cst(2026, 5, 2))
    await fold(ledger, [event(EventKind.DISPENSE, [(EXEMESTANE_WIN, 1, None)],
                              at=cst(2026, 5, 2))])
    ids = _ids(ledger, PFIZER, cst(2026, 5, 2))
    assert "winning-out-of-stock" in ids
    assert "nonwinning-while-lagging" not in ids  # no switching to what is not there


async def test_contract_at_risk_from_the_30_day_run_rate(ledger):
    # ahead of time progress on 2026-03-02 (day 61: 16.7 %) thanks to one big January receipt,
    # but nothing in the last 30 days: projected completion stays at 7000/36000
    await fold(ledger, [event(EventKind.RECEIPT, [(EXEMESTANE_WIN, 7000, "2.1350")],
                              at=cst(2026, 1, 20))])
    ids = _ids(ledger, PFIZER, cst(2026, 3, 2))
    assert "contract-at-risk" in ids and "nonwinning-while-lagging" not in ids
    # a steady recent run rate that reaches the agreed volume: 100/day × 30 days
    days = [cst(2026, 2, d) for d in range(1, 29)] + [cst(2026, 3, 1), cst(2026, 3, 2, 8)]
    await fold(ledger, [event(EventKind.RECEIPT, [(EXEMESTANE_WIN, 100, "2.1350")], at=at)
                        for at in days])
    st = ledger.status(next(c for c in ledger.contracts(HOSPITAL)
                            if c.generic_name == "依西美坦片"), cst(2026, 3, 2))
    # 7000 + 3000 received, 100/day over the 304 days left → 40400 ≥ 36000
    assert st.projected_completion == Decimal(40400) / Decimal(36000)
    assert "contract-at-risk" not in _ids(ledger, PFIZER, cst(2026, 3, 2))


async def test_blocking_rule_turns_into_an_error_issue_and_ar(ledger):
    ledger.rules = rules_from_mapping({"rules": [{
        "id": "block-nonwinning", "title": "禁止", "severity": "critical", "block": True,
        "message": "{generic_name}", "when": {"fact": "is_non_winning", "value": True}}]}, "t")
    ev = event(EventKind.PRESCRIPTION, [(EXEMESTANE_PFIZER, 30, None)], at=cst(2026, 6, 1),
               name="依西美坦片")
    result = ledger.evaluate_prescription(ev, cst(2026, 6, 1))
    assert result.blocked
    assert result.issues[0].severity is Severity.ERROR


async def test_warning_goes_into_the_ack_as_err_with_warning_severity(ledger):
    ev = event(EventKind.PRESCRIPTION, [(EXEMESTANE_PFIZER, 30, None)], at=cst(2026, 6, 1),
               name="依西美坦片")
    result = ledger.evaluate_prescription(ev, cst(2026, 6, 1))
    assert not result.blocked
    [issue] = result.issues
    assert issue.severity is Severity.WARNING and issue.code == "nonwinning-while-lagging"
    ack = build_ack(AckHeader(control_id="RX0001", trigger="O11", version="2.5"), "AA",
                    result.issues, cst(2026, 6, 1))
    err = next(s for s in ack.split("\r") if s.startswith("ERR"))
    assert err.split("|")[4] == "W" and "依西美坦片" in err


async def test_hospital_codes_are_resolved_through_the_crosswalk(ledger):
    ledger.resolve_item = lambda h, item: EXEMESTANE_PFIZER if item == "HIS0001" else None
    ev = event(EventKind.PRESCRIPTION, [(None, 30, None)], at=cst(2026, 6, 1), name="依西美坦片")
    assert ledger.evaluate_prescription(ev, cst(2026, 6, 1)).issues


@pytest.mark.parametrize(("node", "needle"), [
    ({"id": "a", "title": "t", "severity": "loud", "message": "m",
      "when": {"fact": "lagging", "value": True}}, "rules[0] (a).severity"),
    ({"id": "a", "title": "t", "severity": "info", "message": "{nope}",
      "when": {"fact": "lagging", "value": True}}, "placeholder {nope}"),
    ({"id": "a", "title": "t", "severity": "info", "message": "m",
      "when": {"fact": "lagging", "op": "approx", "value": True}}, "when.op"),
    ({"id": "a", "title": "t", "severity": "info", "message": "m", "blok": True,
      "when": {"all": [{"fact": "completion", "value": "$nothing"}]}}, "unknown keys"),
])
def test_rule_file_errors_name_file_and_key(node, needle):
    with pytest.raises(ConfigError) as exc:
        rules_from_mapping({"rules": [node]}, "config/rules.yaml")
    text = "\n".join(exc.value.problems)
    assert "config/rules.yaml: rules[0]" in text and needle in text


def test_shipped_rules_load(rules: RuleSet):
    assert {r.id for r in rules.rules} == {"nonwinning-while-lagging", "brand-instead-of-generic",
                                           "winning-out-of-stock", "contract-at-risk",
                                           "winning-bought-off-price", "negotiated-price-red"}
    assert not any(r.block for r in rules.rules)  # warnings advise (GZ 二)


@pytest.mark.parametrize(("last", "year", "expected"), [
    ("20.00", 0, "10.00"),  # exactly 2 × (2 × included): the winning price
    ("20.01", 0, "14.01"),  # above 2 ×: cut by 30 %
    ("20.01", 1, "12.00"),  # halfway to the winning price
    ("20.01", 2, "10.00"),  # converged
    ("10.01", 0, "10.00"),
    ("9.99", 0, "9.99"),  # below the winning price: the actual price
])
def test_payment_standard_r12(last, year, expected):
    assert payment_standard(Decimal(last), Decimal("10.00"), year=year) == Decimal(expected)


def test_negotiated_price_bands_and_winning_price():
    ref = reference_price([Decimal("10"), Decimal("11"), Decimal("12")])
    assert ref == Decimal("11")
    assert classify_negotiated_price(Decimal("11.00"), ref) is PriceBand.BLUE
    assert classify_negotiated_price(Decimal("11.01"), ref) is PriceBand.YELLOW
    assert classify_negotiated_price(Decimal("13.20"), ref) is PriceBand.YELLOW  # 1.2 × exactly
    assert classify_negotiated_price(Decimal("13.21"), ref) is PriceBand.RED
    assert not above_winning_price(Decimal("2.1350"), Decimal("2.1350"))
    assert above_winning_price(Decimal("2.1351"), Decimal("2.1350"))
