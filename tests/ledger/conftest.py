"""Fixtures for the ledger, rules and CDS tests: calendar, rules, a ledger with contracts."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from ledger_helpers import DATA, ROOT, cst
from pg import PG_DSN, require_pg

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


@pytest.fixture(params=["sqlite", "postgres"])
async def make_store(request: pytest.FixtureRequest,
                     tmp_path: Path) -> AsyncIterator[Callable[..., Awaitable[Any]]]:
    """A factory of started stores of one backend on one database (on PostgreSQL, store
    instances sharing a schema are replicas); all closed afterwards."""
    from gateway.store.postgres import PostgresStore

    stores: list[Any] = []
    schema = ""
    if request.param == "postgres":
        await require_pg()
        schema = f"jcgw_t_{uuid.uuid4().hex[:12]}"

    async def factory(**kw: Any) -> Any:
        if request.param == "sqlite":
            st: Any = SqliteStore(tmp_path / "gateway.db")
        else:
            st = PostgresStore(PG_DSN, schema=schema, **kw)
        await st.start()
        stores.append(st)
        return st

    factory.backend = request.param  # type: ignore[attr-defined]
    try:
        yield factory
    finally:
        for st in stores:
            if not st.closed:
                await st.close()
        if schema:
            import asyncpg

            con = await asyncpg.connect(PG_DSN)
            await con.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            await con.close()


@pytest.fixture
async def deployment(store: SqliteStore, calendar: WorkCalendar) -> Ledger:
    """A city deployment's ledger: four hospitals' contracts with reference prices, one
    generic name's agreed volume split between its two winners and prepayments received."""
    lg = Ledger(store, LedgerSettings(calendar=calendar))
    await lg.load()
    await lg.load_contracts(read_contracts(DATA / "contracts_deployment.csv"), cst(2026, 1, 1))
    return lg
