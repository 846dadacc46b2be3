"""Fixtures: several whole gateways sharing one PostgreSQL schema, and one platform."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from replica_helpers import Replicas


@pytest.fixture
async def replicas(pg_schema: str, tmp_path: Path) -> AsyncIterator[Replicas]:
    group = Replicas(tmp_path, pg_schema)
    await group.start_platform()
    try:
        yield group
    finally:
        await group.close()
