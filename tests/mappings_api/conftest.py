"""Fixtures: a whole gateway per test, restartable on the same data directory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from api_helpers import Gateway, Launcher


@pytest.fixture
async def launcher(tmp_path: Path) -> AsyncIterator[Launcher]:
    launch = Launcher(tmp_path)
    try:
        yield launch
    finally:
        for server, session in launch.running:
            await session.close()
            await server.close()


@pytest.fixture
async def gateway(launcher: Launcher) -> Gateway:
    return await launcher.start()
