"""Fixtures for the mirror tests: stores on SQLite and on the real PostgreSQL server."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from pg import PG_DSN, require_pg

StoreFactory = Callable[..., Any]


@pytest.fixture(params=["sqlite", "postgres"])
async def make_store(request: pytest.FixtureRequest,
                     tmp_path: Path) -> AsyncIterator[StoreFactory]:
    """A factory of started stores of one backend; all closed afterwards."""
    from gateway.store.postgres import PostgresStore
    from gateway.store.sqlite import SqliteStore

    stores: list[Any] = []
    schema = ""
    if request.param == "postgres":
        await require_pg()
        schema = f"jcgw_t_{uuid.uuid4().hex[:12]}"

    async def factory(**kw: Any) -> Any:
        if request.param == "sqlite":
            store: Any = SqliteStore(tmp_path / "gw.db")
        else:
            store = PostgresStore(PG_DSN, schema=schema, **kw)
        await store.start()
        stores.append(store)
        return store

    factory.backend = request.param  # type: ignore[attr-defined]
    try:
        yield factory
    finally:
        for s in stores:
            if not s.closed:
                await s.close()
        if schema:
            import asyncpg

            con = await asyncpg.connect(PG_DSN)
            await con.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            await con.close()
