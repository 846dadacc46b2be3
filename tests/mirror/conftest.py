"""Fixtures for the mirror tests: stores on SQLite and on the real PostgreSQL server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from pg import StoreFactory, backend_stores


@pytest.fixture(params=["sqlite", "postgres"])
async def make_store(request: pytest.FixtureRequest,
                     tmp_path: Path) -> AsyncIterator[StoreFactory]:
    """A factory of started stores of one backend; all closed afterwards."""
    async with backend_stores(request.param, tmp_path) as factory:
        yield factory
