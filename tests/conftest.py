"""Fixtures shared by every test module."""

from __future__ import annotations

import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from pg import PG_DSN, require_pg

from gateway.native import native_status


def pytest_configure(config: pytest.Config) -> None:
    # a compiled module older than its source would run the old code under test
    stale = native_status().stale
    if stale:
        pytest.exit(f"compiled modules are older than their source: {', '.join(stale)}; "
                    "rebuild them with `./scripts/test.sh` or `.venv/bin/pip install -e .`",
                    returncode=4)


@pytest.fixture
async def pg_schema() -> AsyncIterator[str]:
    """A fresh schema on the test server, dropped afterwards."""
    await require_pg()
    import asyncpg

    schema = f"jcgw_t_{uuid.uuid4().hex[:12]}"
    try:
        yield schema
    finally:
        con = await asyncpg.connect(PG_DSN)
        try:
            await con.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            await con.close()
