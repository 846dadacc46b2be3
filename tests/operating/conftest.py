"""A whole gateway on loopback with the simulator alongside, for the operator's tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer
from helpers import TIMINGS, RunningGateway, free_port, make_config

from gateway.app import build_app


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[RunningGateway]:
    mllp_port, sim_port = free_port(), free_port()
    cfg = make_config(tmp_path, mllp_port=mllp_port, http_port=0, simulator_port=sim_port,
                      platform_url=f"http://127.0.0.1:{sim_port}/fsi/api/inventory")
    app = build_app(cfg, timings=TIMINGS)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield RunningGateway(app, server, mllp_port)
    finally:
        await server.close()
