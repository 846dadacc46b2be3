"""Fixtures for the mirror tests: stores on SQLite and on the real PostgreSQL server."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from pg import StoreFactory, backend_stores
from rig import Rig, make_rig, stop_rig

from gateway.platforms.simulator import SimulatorState
from gateway.store.sqlite import SqliteStore

RigFactory = Callable[..., Awaitable[Rig]]


@pytest.fixture(params=["sqlite", "postgres"])
async def make_store(request: pytest.FixtureRequest,
                     tmp_path: Path) -> AsyncIterator[StoreFactory]:
    """A factory of started stores of one backend; all closed afterwards."""
    async with backend_stores(request.param, tmp_path) as factory:
        yield factory


@pytest.fixture
async def any_rig(make_store: StoreFactory) -> AsyncIterator[RigFactory]:
    """A factory of rigs (mirror, simulators) on a store of each backend; all stopped."""
    rigs: list[Rig] = []

    async def factory(dests: list[dict[str, Any]], sims: dict[str, SimulatorState],
                      **kw: Any) -> Rig:
        rig = await make_rig(await make_store(lease_s=5.0), dests, sims, **kw)
        rigs.append(rig)
        return rig
    yield factory
    for r in rigs:
        await stop_rig(r)


@pytest.fixture
async def sqlite_rig(tmp_path: Path) -> AsyncIterator[RigFactory]:
    """A factory of rigs on one SQLite store; all stopped and closed afterwards."""
    rigs: list[Rig] = []

    async def factory(dests: list[dict[str, Any]], sims: dict[str, SimulatorState]) -> Rig:
        store = SqliteStore(tmp_path / "gw.db")
        await store.start()
        rig = await make_rig(store, dests, sims)
        rigs.append(rig)
        return rig
    yield factory
    for r in rigs:
        await stop_rig(r)
        await r.store.close()
