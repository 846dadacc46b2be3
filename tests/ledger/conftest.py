"""Fixtures for the ledger, rules and CDS tests: calendar, rules, a ledger with contracts."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from ledger_helpers import DATA, ROOT, cst

from gateway.ledger import Ledger, LedgerSettings, LedgerStore, read_contracts
from gateway.ledger.calendar import WorkCalendar, load_calendar
from gateway.rules import RuleSet, load_rules


@pytest.fixture(scope="session")
def calendar() -> WorkCalendar:
    """The shipped 2025 and 2026 calendars."""
    return load_calendar(ROOT / "config" / "calendar")


@pytest.fixture(scope="session")
def rules() -> RuleSet:
    """The shipped rule set."""
    return load_rules(ROOT / "config" / "rules.yaml")


@pytest.fixture
def ledger(tmp_path: Path, calendar: WorkCalendar, rules: RuleSet) -> Iterator[Ledger]:
    """A ledger on a fresh file with the sample contracts loaded."""
    store = LedgerStore(tmp_path / "ledger.db")
    lg = Ledger(store, LedgerSettings(calendar=calendar), rules)
    lg.load_contracts(read_contracts(DATA / "contracts.csv"), cst(2026, 1, 1))
    yield lg
    store.close()
