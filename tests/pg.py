"""The real PostgreSQL server for store tests: skipped without one, failed under CI=true."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

PG_DSN = os.environ.get("JCGW_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")


async def _pg_reachable() -> str | None:
    try:
        import asyncpg
    except ImportError:
        return "asyncpg is not installed (pip install -e '.[test]')"
    try:
        con = await asyncpg.connect(PG_DSN, timeout=5)
    except (OSError, asyncpg.PostgresError) as exc:
        return f"PostgreSQL at {PG_DSN} is unreachable: {exc}"
    await con.close()
    return None


async def require_pg() -> None:
    """Skip (or, under CI=true, fail) when the PostgreSQL server cannot be reached."""
    why = await _pg_reachable()
    if why is None:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{why}; CI must run the PostgreSQL tests (start the server first)")
    pytest.skip(why)


StoreFactory = Callable[..., Any]


@contextlib.asynccontextmanager
async def backend_stores(backend: str, tmp_path: Path) -> AsyncIterator[StoreFactory]:
    """A factory of started stores of one backend — the SQLite file ``tmp_path/gw.db``, or a
    fresh PostgreSQL schema (``factory.schema``) — all closed, and the schema dropped, on
    exit. Keyword arguments go to the PostgreSQL store."""
    from gateway.store.postgres import PostgresStore
    from gateway.store.sqlite import SqliteStore

    stores: list[Any] = []
    schema = ""
    if backend == "postgres":
        await require_pg()
        schema = f"jcgw_t_{uuid.uuid4().hex[:12]}"

    async def factory(**kw: Any) -> Any:
        store: Any = (SqliteStore(tmp_path / "gw.db") if backend == "sqlite"
                      else PostgresStore(PG_DSN, schema=schema, **kw))
        await store.start()
        stores.append(store)
        return store

    factory.backend = backend  # type: ignore[attr-defined]
    factory.schema = schema  # type: ignore[attr-defined]
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
