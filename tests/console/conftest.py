"""A whole gateway with identities, and headless Chromium driven by Playwright.

Chromium comes from the system (Debian's ``chromium`` package), never downloaded by
Playwright. Without it (or without Playwright) the tests skip, saying why; with
``CI=true`` they fail instead.
"""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "mappings_api"))

from api_helpers import Gateway
from console_helpers import CHROMIUM, PEOPLE, contracts_csv
from helpers import HOSPITAL, HTTP_LISTENERS, ROOT, TIMINGS, free_port, make_config

from gateway.app import build_app


def _unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"console tests cannot run: {reason}")
    pytest.skip(reason)


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[Gateway]:
    """A gateway with identities configured, the simulator, the sample crosswalk and the
    contracts of ``contracts_csv``; a platform rejection makes a dead letter at once
    (max_attempts 1)."""
    sim_port = free_port()
    cfg = make_config(
        tmp_path, mllp_port=free_port(), http_port=0, simulator_port=sim_port,
        platform_url=f"http://127.0.0.1:{sim_port}/fsi/api/inventory",
        listeners=[*_mllp(tmp_path), *HTTP_LISTENERS],
        security={"identities": [p.entry() for p in PEOPLE]},
        ledger={"calendar_dir": str(ROOT / "config" / "calendar"),
                "rules": str(ROOT / "config" / "rules.yaml"),
                "contracts": str(contracts_csv(tmp_path))},
        destinations=[{"name": "nhsa", "profile": "nhsa-inventory",
                       "url": f"http://127.0.0.1:{sim_port}/fsi/api/inventory",
                       "timeout_s": 2, "max_attempts": 1, "backoff_initial_s": 0.05,
                       "backoff_max_s": 0.2}])
    mllp_port = cfg.listeners[0].port
    assert mllp_port is not None
    server = TestServer(build_app(cfg, timings=TIMINGS), host="127.0.0.1")
    await server.start_server()
    session = aiohttp.ClientSession()
    try:
        yield Gateway(server.app, server, mllp_port, session)
    finally:
        await session.close()
        await server.close()


def _mllp(tmp: Path) -> list[dict[str, Any]]:
    return [{"name": "his-mllp", "adapter": "hl7v2", "transport": "mllp", "host": "127.0.0.1",
             "port": free_port(), "config": {"facilities": {"ZJSRMYY": HOSPITAL}}}]


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    """Headless Chromium (the system's), one per test."""
    if not CHROMIUM.exists():
        _unavailable(f"{CHROMIUM} is missing (apt-get install chromium)")
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        _unavailable("playwright is not installed (pip install -e '.[test]')")
    async with async_playwright() as pw:
        args = ["--no-sandbox"] if os.geteuid() == 0 else []
        b = await pw.chromium.launch(executable_path=str(CHROMIUM), args=args, headless=True)
        try:
            yield b
        finally:
            await b.close()


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    """Where screenshots go: docs/console/ with JCGW_SCREENSHOTS=1, else a temporary
    directory (a normal run leaves the repository as it is)."""
    if os.environ.get("JCGW_SCREENSHOTS") == "1":
        out = ROOT / "docs" / "console"
    else:
        out = tmp_path / "screenshots"
    out.mkdir(parents=True, exist_ok=True)
    return out
