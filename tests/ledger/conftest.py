"""Fixtures for the ledger, rules and CDS tests: calendar, rules, a ledger with contracts."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from ledger_helpers import DATA, ROOT, cst

from gateway.ledger import Ledger, LedgerSettings, read_contracts
from gateway.ledger.calendar import WorkCalendar, load_calendar
from gateway.rules import RuleSet, load_rules
from gateway.store.sqlite import SqliteStore


@pytest.fixture(scope="session")
def calendar() -> WorkCalendar:
    """The shipped 2025 and 2026 calendars."""
    return load_calendar(ROOT / "config" / "calendar")


@pytest.fixture(scope="session")
def rules() -> RuleSet:
    """The shipped rule set."""
    return load_rules(ROOT / "config" / "rules.yaml")


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    """A started SQLite store on a fresh file."""
    st = SqliteStore(tmp_path / "gateway.db")
    await st.start()
    yield st
    if not st.closed:
        await st.close()


@pytest.fixture
async def ledger(store: SqliteStore, calendar: WorkCalendar, rules: RuleSet) -> Ledger:
    """A ledger on a fresh store with the sample contracts loaded."""
    lg = Ledger(store, LedgerSettings(calendar=calendar), rules)
    await lg.load()
    await lg.load_contracts(read_contracts(DATA / "contracts.csv"), cst(2026, 1, 1))
    return lg
