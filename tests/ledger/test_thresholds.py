"""The ledger's thresholds come from ``ledger.thresholds`` in the configuration: checked
by ``check-config`` with every problem at once, and each changes what the ledger says."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from ledger_helpers import DATA, EXEMESTANE_WIN, HOSPITAL, cst, event, fold

from canonical.errors import ConfigError
from canonical.model import EventKind
from gateway.cli.main import main
from gateway.config import parse_config
from gateway.ledger import Ledger, build_report, read_contracts
from gateway.ledger.calendar import WorkCalendar
from gateway.ledger.settings import ledger_settings
from gateway.rules import RuleSet
from gateway.store.sqlite import SqliteStore

STENT = "C0201010010101000123"  # 20-character consumable code format
CATHETER = "C0101010010101000456"


async def _ledger(store: SqliteStore, calendar: WorkCalendar, rules: RuleSet,
                  **thresholds: Any) -> Ledger:
    cfg = parse_config({"ledger": {"thresholds": thresholds}})
    lg = Ledger(store, ledger_settings(cfg.ledger.thresholds, calendar), rules)
    await lg.load()
    await lg.load_contracts(read_contracts(DATA / "contracts.csv"), cst(2026, 1, 1))
    return lg


def test_defaults_are_the_documents_figures() -> None:
    t = parse_config({}).ledger.thresholds
    assert (t.online_rate_drug, t.online_rate_consumable, t.high_value_prefixes,
            t.demand_threshold, t.prepayment_ratio, t.agreed_ratio_min, t.agreed_ratio_max,
            t.price_blue_max, t.price_yellow_max, t.price_reference) == (
        Decimal("0.90"), Decimal("0.80"), ("C",), Decimal("0.80"), Decimal("0.30"),
        Decimal("0.50"), Decimal("0.80"), Decimal("1.00"), Decimal("1.20"), "median")


def test_bad_thresholds_are_named_all_at_once() -> None:
    with pytest.raises(ConfigError) as exc:
        parse_config({"ledger": {"thresholds": {
            "online_rate_drug": 90, "high_value_prefixes": ["X01"], "price_reference": "mean",
            "prepayment_ratio": "thirty"}}}, "gw.yaml")
    text = "\n".join(exc.value.problems)
    assert "gw.yaml: ledger.thresholds.online_rate_drug: Input should be less than or equal " \
           "to 1 (write a share such as 0.9 for 90 %)" in text
    assert "ledger.thresholds.high_value_prefixes: 'X01' is not the start of a national " \
           "consumable code" in text
    assert "ledger.thresholds.price_reference:" in text
    assert "ledger.thresholds.prepayment_ratio:" in text
    with pytest.raises(ConfigError) as exc:
        parse_config({"ledger": {"thresholds": {"agreed_ratio_min": 0.8, "agreed_ratio_max": 0.7,
                                                "price_blue_max": 1.3}}}, "gw.yaml")
    assert exc.value.problems == [
        "gw.yaml: ledger.thresholds: agreed_ratio_min 0.8 is above agreed_ratio_max 0.7; "
        "price_blue_max 1.3 is above price_yellow_max 1.20"]


def test_check_config_validates_the_thresholds(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "gw.yaml"
    bad.write_text("ledger:\n  thresholds:\n    demand_threshold: 1.5\n", "utf-8")
    assert main(["check-config", "-c", str(bad)]) == 2
    assert "ledger.thresholds.demand_threshold" in capsys.readouterr().err


@pytest.mark.parametrize(("threshold", "ok"), [(None, True), ("0.95", False)])
async def test_online_rate_threshold(store: SqliteStore, calendar: WorkCalendar,
                                     rules: RuleSet, threshold: str | None, ok: bool) -> None:
    lg = await _ledger(store, calendar, rules,
                       **({} if threshold is None else {"online_rate_drug": threshold}))
    await fold(lg, [event(EventKind.RECEIPT, [(EXEMESTANE_WIN, 900, "1")], at=cst(2026, 6, 2)),
                    event(EventKind.RECEIPT, [(EXEMESTANE_WIN, 100, "1")], at=cst(2026, 6, 3),
                          online=False)])
    rate = (await build_report(lg, HOSPITAL, cst(2026, 6, 30)))["online_rate"]["drug"]
    assert (rate["rate"], rate["threshold"], rate["ok"]) == (
        "0.9000", threshold or "0.90", ok)


async def test_high_value_prefixes(store: SqliteStore, calendar: WorkCalendar,
                                   rules: RuleSet) -> None:
    lg = await _ledger(store, calendar, rules, high_value_prefixes=["C02"])
    await fold(lg, [event(EventKind.RECEIPT, [(STENT, 10, "100"), (CATHETER, 10, "5")],
                          at=cst(2026, 6, 2))])
    rate = (await build_report(lg, HOSPITAL, cst(2026, 6, 30)))["online_rate"]["consumable"]
    assert rate["total_amount"] == "1000"  # the stent counts, the catheter not
    assert lg.online_rate(HOSPITAL, "consumable") == 1


@pytest.mark.parametrize(("threshold", "flag"), [(None, "ok"), ("0.96", "below_threshold")])
async def test_demand_threshold(store: SqliteStore, calendar: WorkCalendar, rules: RuleSet,
                                threshold: str | None, flag: str) -> None:
    # 依西美坦片 reported 40000 against 42000 last year: 95.2 %
    lg = await _ledger(store, calendar, rules,
                       **({} if threshold is None else {"demand_threshold": threshold}))
    rep = await build_report(lg, HOSPITAL, cst(2026, 1, 2))
    item = next(i for i in rep["contracts"] if i["generic_name"] == "依西美坦片")
    assert item["demand_flag"] == flag


async def test_prepayment_ratio(store: SqliteStore, calendar: WorkCalendar,
                                rules: RuleSet) -> None:
    lg = await _ledger(store, calendar, rules, prepayment_ratio="0.4")
    rep = await build_report(lg, HOSPITAL, cst(2026, 1, 2))
    item = next(i for i in rep["contracts"] if i["generic_name"] == "依西美坦片")
    assert item["prepayment_min"] == "30744.00"  # 0.40 × 36000 × 2.1350
