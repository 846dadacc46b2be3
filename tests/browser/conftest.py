"""Fixtures for the message browser: stores of both backends, the mirror's test rig."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

# the mirror tests' realistic events and their rig (mirror + platform simulator)
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "mirror"))

from pg import StoreFactory, backend_stores


@pytest.fixture(params=["sqlite", "postgres"])
async def make_store(request: pytest.FixtureRequest,
                     tmp_path: Path) -> AsyncIterator[StoreFactory]:
    """A factory of started stores of one backend; all closed afterwards."""
    async with backend_stores(request.param, tmp_path) as factory:
        yield factory
