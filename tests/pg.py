"""The real PostgreSQL server for store tests: skipped without one, failed under CI=true."""

from __future__ import annotations

import os

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
