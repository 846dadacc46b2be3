"""A whole gateway in the test's event loop, with the simulator alongside."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer
from helpers import TIMINGS, RunningGateway, free_port, make_config

from gateway.app import build_app


@pytest.fixture
async def gateway(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[RunningGateway]:
    overrides: dict[str, Any] = getattr(request, "param", {})
    mllp_port, sim_port = free_port(), free_port()
    cfg = make_config(tmp_path, mllp_port=mllp_port, http_port=0, simulator_port=sim_port,
                      platform_url=f"http://127.0.0.1:{sim_port}/fsi/api/inventory", **overrides)
    app = build_app(cfg, timings=TIMINGS)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield RunningGateway(app, server, mllp_port)
    finally:
        await server.close()
